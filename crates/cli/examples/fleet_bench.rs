//! The cost of a fleet scan: wall time, API calls and peak memory of `keyhole scan -l … -A`
//! (the library's `scan_fleet`, as the binary runs it) over PODS pods spread over NAMESPACES
//! namespaces of the testkit fake, with a simulated latency per API call, at one concurrency.
//!
//! `cargo run --release -p keyhole-cli --example fleet_bench -- PODS NAMESPACES LATENCY_MS
//! CONCURRENCY` prints one JSON line: `pods`, `namespaces`, `latency_ms`, `concurrency`,
//! `wall_ms`, `api_calls`, `peak_rss_kib` (this process's `VmHWM`, the fake API server
//! included), `results`, `sessions`. The pre-scan verification runs with the built-in policy, as
//! in the binary. Run it once per concurrency: `cargo xtask bench` does, and
//! reports the ratios. Each pod's exec answers with the fact script's real output (the script
//! run once on this machine's `/bin/sh` before timing starts), so the cost measured is the
//! API's and keyhole's, not the shell's.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use keyhole_audit::AuditLog;
use keyhole_cleanup::RetryPolicy;
use keyhole_cli::fleet::{FleetRequest, Scope, resolve_fleet, scan_fleet};
use keyhole_cli::session::{Audit, ScopedClients};
use keyhole_core::{LabelSelector, Namespace, ScanMode, Ttl};
use keyhole_credentials::{ClusterEndpoint, ScopedToken};
use keyhole_engine::{Inputs, Profile, ShellScript, Waivers};
use keyhole_testkit::{ExecResponse, FakeCluster};
use secrecy::ExposeSecret as _;

/// A small profile: the measurement is of the fleet machinery, not of the engine.
const PROFILE: &str = r#"
name: fleet-bench
version: 1.0.0
controls:
  - id: BENCH-001
    title: the root directory exists
    impact: 0.5
    checks:
      - file: /
        exists: true
  - id: BENCH-002
    title: os-release is not world-writable
    impact: 0.7
    checks:
      - file: /etc/os-release
        mode: {max: '0644'}
"#;

struct FakeScoped(FakeCluster);

impl ScopedClients for FakeScoped {
    fn client(&self, token: &ScopedToken) -> Result<kube::Client, keyhole_cli::SessionError> {
        Ok(self.0.client_for_token(token.secret().expose_secret()))
    }
}

fn arg(i: usize, default: u64) -> u64 {
    std::env::args()
        .nth(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

/// The fact script's output for `profile` on this machine.
fn script_output(profile: &Profile, inputs: &Inputs) -> Vec<u8> {
    // The plan the fleet sends: the profile's, with the socket tables of the network checks.
    let plan = keyhole_cli::prescan::with_network_tables(keyhole_engine::plan(profile, inputs));
    let script = ShellScript::in_container().render(&plan);
    let mut child = Command::new("/bin/sh")
        .arg("-s")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("/bin/sh starts");
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(script.as_bytes());
    });
    let out = child.wait_with_output().expect("/bin/sh ends");
    let _ = writer.join();
    assert!(out.status.success(), "the fact script failed");
    out.stdout
}

/// This process's peak resident set (`VmHWM`), KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let pods = arg(1, 200);
    let namespaces = arg(2, 4).max(1);
    let latency_ms = arg(3, 20);
    let concurrency = usize::try_from(arg(4, 8)).unwrap_or(8).max(1);

    let profile = Profile::from_yaml_str(PROFILE, "fleet-bench.yaml").expect("profile");
    let inputs = Inputs::defaults(&profile);
    let answer = script_output(&profile, &inputs);
    let cluster = FakeCluster::new();
    for i in 0..pods {
        let ns = format!("team-{}", i % namespaces);
        let name = format!("app-{i}");
        cluster.create_namespace(&ns);
        let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": {"fleet": "bench"}},
            "spec": {"containers": [{"name": "app", "image": "registry.example/app:1.0"}],
                     "nodeName": "fake-node"},
        }))
        .expect("pod");
        cluster.insert(&pod).expect("insert");
        cluster.set_pod_running(&ns, &name).expect("running");
    }
    cluster.set_exec_handler(move |_| ExecResponse::stdout(answer.clone()));
    cluster
        .faults()
        .set_latency(Duration::from_millis(latency_ms));

    let dir = std::env::temp_dir().join(format!("keyhole-fleet-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let audit = Audit::new(
        AuditLog::open(&dir.join("audit.jsonl")).expect("audit log"),
        "fleet",
    );
    let ca = base64::engine::general_purpose::STANDARD.encode(cluster.ca_pem());
    let user = cluster.client_admin();
    let start = Instant::now();
    let targets: BTreeMap<Namespace, Vec<keyhole_core::PodName>> = resolve_fleet(
        &user,
        &Scope::All,
        &LabelSelector::parse("fleet=bench").expect("selector"),
    )
    .await
    .expect("resolved");
    let request = FleetRequest {
        targets,
        mode: ScanMode::Standard,
        ttl: Ttl::default(),
        container: None,
        profile,
        inputs,
        waivers: Waivers::none(),
        cluster: ClusterEndpoint::new("https://127.0.0.1:6443", &ca).expect("endpoint"),
        audiences: vec![],
        policy: RetryPolicy::default(),
        distroless: None,
        max_age: Duration::from_secs(3600),
        concurrency,
        precheck: Some(keyhole_precheck::Policy::builtin()),
    };
    let scoped = {
        let c = cluster.clone();
        Arc::new(move |_: &Namespace| Arc::new(FakeScoped(c.clone())) as Arc<dyn ScopedClients>)
    };
    let outcome = scan_fleet(user, request, scoped, audit, None).await;
    let wall = start.elapsed();
    let _ = std::fs::remove_dir_all(&dir);
    let results = outcome
        .targets
        .iter()
        .filter(|t| t.result.is_some())
        .count();
    assert_eq!(
        results,
        usize::try_from(pods).unwrap_or(0),
        "every pod scanned"
    );
    assert!(outcome.all_clean() && cluster.managed_objects().is_empty());
    println!(
        "{}",
        serde_json::json!({
            "pods": pods,
            "namespaces": namespaces,
            "latency_ms": latency_ms,
            "concurrency": concurrency,
            "wall_ms": wall.as_secs_f64() * 1e3,
            "api_calls": cluster.calls().len(),
            "peak_rss_kib": peak_rss_kib(),
            "results": results,
            "sessions": outcome.sessions.len(),
        })
    );
}
