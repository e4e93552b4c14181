//! The cost of a secure access session: API calls and wall time of each phase against the
//! testkit fake with a simulated latency per call (default 20 ms; `access_bench MS` to change).
//!
//! `cargo run -p keyhole-cli --example access_bench`. Phases, each timed on its own with the
//! library calls `keyhole access` makes: preflight (who am I, reap the namespace), setup
//! (ServiceAccount, anchor Secret, Role, RoleBinding, TokenRequest), verification (least
//! privilege with the scoped identity), teardown (delete in reverse order, verify each gone);
//! then the whole `run_session` with the command `true`.

use std::ffi::OsString;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use jiff::Timestamp;
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use keyhole_audit::AuditLog;
use keyhole_cleanup::{ReapScope, Registry, RetryPolicy, reap, teardown};
use keyhole_cli::session::{Audit, ScopedClients, SessionSpec, run_session};
use keyhole_core::{Expiry, Namespace, PodName, Run, RunId, ScanMode, ScanTarget, Ttl};
use keyhole_credentials::{ClusterEndpoint, ScopedToken};
use keyhole_rbac::ApplyEvent;
use keyhole_testkit::FakeCluster;
use kube::api::{Api, PostParams};
use secrecy::ExposeSecret as _;

struct FakeScoped(FakeCluster);

impl ScopedClients for FakeScoped {
    fn client(&self, token: &ScopedToken) -> Result<kube::Client, keyhole_cli::SessionError> {
        Ok(self.0.client_for_token(token.secret().expose_secret()))
    }
}

fn new_run() -> Run {
    let target = ScanTarget::pods(
        Namespace::new("prod").expect("valid"),
        [PodName::new("web-0").expect("valid")],
        None,
    )
    .expect("valid target");
    let expiry = Expiry::new(Timestamp::now(), Ttl::default()).expect("valid expiry");
    Run::new(
        RunId::generate().expect("random id"),
        target,
        ScanMode::Standard,
        expiry,
    )
    .expect("valid run")
}

/// Calls made and time taken by one phase.
struct Phase {
    name: &'static str,
    calls: usize,
    time: Duration,
}

async fn measure<T>(
    cluster: &FakeCluster,
    name: &'static str,
    f: impl Future<Output = T>,
) -> (T, Phase) {
    let before = cluster.calls().len();
    let start = Instant::now();
    let out = f.await;
    let phase = Phase {
        name,
        calls: cluster.calls().len() - before,
        time: start.elapsed(),
    };
    (out, phase)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let latency_ms: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20);
    let latency = Duration::from_millis(latency_ms);
    let policy = RetryPolicy::default();

    // The phases one by one.
    let cluster = FakeCluster::new();
    cluster
        .add_running_pod("prod", "web-0", &["app"])
        .expect("pod");
    cluster.faults().set_latency(latency);
    let user = cluster.client_admin();
    let run = new_run();
    let registry = Registry::new();
    let (_, pre) = measure(&cluster, "preflight (who am I, reap)", async {
        Api::<SelfSubjectReview>::all(user.clone())
            .create(&PostParams::default(), &SelfSubjectReview::default())
            .await
            .expect("SelfSubjectReview");
        reap(
            &user,
            &ReapScope::Namespace("prod".into()),
            Timestamp::now(),
            false,
            &policy,
        )
        .await;
    })
    .await;
    let run_id = run.id().to_string();
    let (token, setup) = measure(&cluster, "setup (4 objects + token)", async {
        let applied = keyhole_rbac::apply(
            &user,
            &run,
            |owner| keyhole_credentials::anchor_secret(&run, owner),
            &mut |e| match e {
                ApplyEvent::Attempt(c) => {
                    registry.attempting(c.kind, &c.namespace, &c.name, &run_id)
                }
                ApplyEvent::Created(c) => registry.register(c),
            },
        )
        .await
        .expect("apply");
        keyhole_credentials::mint(&user, &run, &[], &applied.anchor_uid, Timestamp::now())
            .await
            .expect("mint")
    })
    .await;
    let scoped = cluster.client_for_token(token.secret().expose_secret());
    let (_, verify) = measure(&cluster, "verification (least privilege)", async {
        keyhole_rbac::verify_access(&scoped, &run)
            .await
            .expect("verified")
    })
    .await;
    let (report, down) = measure(&cluster, "teardown (delete + verify gone)", async {
        teardown(&user, &registry, &policy).await
    })
    .await;
    assert!(report.is_clean() && cluster.managed_objects().is_empty());

    println!("keyhole access, simulated API latency {latency_ms} ms per call");
    let phases = [&pre, &setup, &verify, &down];
    for p in phases {
        println!(
            "  {:<34} {:>2} calls {:>7.1} ms",
            p.name,
            p.calls,
            p.time.as_secs_f64() * 1e3
        );
    }
    let core = [&setup, &verify, &down];
    println!(
        "  {:<34} {:>2} calls {:>7.1} ms",
        "setup + verification + teardown",
        core.iter().map(|p| p.calls).sum::<usize>(),
        core.iter().map(|p| p.time.as_secs_f64()).sum::<f64>() * 1e3
    );

    // The whole session, as `keyhole access` runs it (with the command `true`).
    let cluster = FakeCluster::new();
    cluster
        .add_running_pod("prod", "web-0", &["app"])
        .expect("pod");
    cluster.faults().set_latency(latency);
    let dir = std::env::temp_dir().join(format!("keyhole-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let run = new_run();
    let audit = Audit::new(
        AuditLog::open(&dir.join("audit.jsonl")).expect("audit log"),
        run.id().as_str(),
    );
    let ca = base64::engine::general_purpose::STANDARD.encode(cluster.ca_pem());
    let spec = SessionSpec {
        run,
        cluster: ClusterEndpoint::new("https://127.0.0.1:6443", &ca).expect("endpoint"),
        audiences: vec![],
        command: vec![OsString::from("true")],
        work: None,
        policy,
    };
    let start = Instant::now();
    let outcome = run_session(
        cluster.client_admin(),
        spec,
        Arc::new(FakeScoped(cluster.clone())),
        audit,
    )
    .await
    .expect("session");
    let total = start.elapsed();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(outcome.exit_code, 0);
    println!(
        "  {:<34} {:>2} calls {:>7.1} ms",
        "whole session (command: true)",
        cluster.calls().len(),
        total.as_secs_f64() * 1e3
    );
}
