//! The program behind `cargo xtask demo`: a LOCAL SANDBOX, not Kubernetes. keyhole-testkit's
//! fake API server over HTTPS on loopback, with its test node running the pods as real `runc`
//! containers on this machine, three workloads (a container with a shell, a true distroless
//! one with a single static binary, a pod injected by `keyhole sidecar inject`), a kubeconfig
//! for the fake, and the real `keyhole scan` binary run on each in its workflow. Each HDF is
//! written to `OUT/<mode>.json`; the last lines give, per workload, its mode, its controls, the
//! objects keyhole created and the objects left.
//!
//! `demo KEYHOLE_BINARY OUT_DIR`. Needs root, `runc` and `busybox-static`, and builds the
//! static agent (`target/static`) when it is not built yet; `cargo xtask demo` prepares all
//! of that. Exit status 1 when a scan failed or left an object behind.

use std::path::Path;
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use keyhole_audit::{Event, Record};
use keyhole_hdf::{ControlStatus, Execution};
use keyhole_testkit::FakeCluster;
use keyhole_testkit::node::{Image, Images, Node, NodeOptions, rootfs};
use serde_json::json;

const NS: &str = "demo";
const WAIT: Duration = Duration::from_secs(60);
/// The images of the sandbox's "registry" (the node serves each from a local tree).
const BUSYBOX: &str = "busybox:1.36";
const DISTROLESS: &str = "registry.example/distroless:1.0";
/// The agent image: the node serves any tag or digest of it, so `keyhole scan`'s default
/// image (and `keyhole sidecar inject`'s) runs the static agent built from this checkout.
const AGENT: &str = "ghcr.io/keyhole-scanner/keyhole-agent";

/// One workload and what scanning it gave.
struct Line {
    mode: &'static str,
    pod: &'static str,
    exit: Option<i32>,
    controls: usize,
    failed: usize,
    created: usize,
    left: usize,
}

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(keyhole), Some(out)) = (args.next(), args.next()) else {
        eprintln!("usage: demo KEYHOLE_BINARY OUT_DIR (run it through `cargo xtask demo`)");
        return ExitCode::from(2);
    };
    if !rustix::process::geteuid().is_root() {
        eprintln!(
            "demo: the sandbox's node runs pods as runc containers and needs root (cargo xtask demo uses sudo -n)"
        );
        return ExitCode::from(2);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match rt.block_on(demo(Path::new(&keyhole), Path::new(&out))) {
        Ok(lines) => {
            println!();
            println!("== summary (local sandbox, not Kubernetes)");
            println!(
                "{:<11} {:<13} {:>8} {:>7} {:>16} {:>13}",
                "mode", "pod", "controls", "failed", "objects created", "objects left"
            );
            for l in &lines {
                println!(
                    "{:<11} {:<13} {:>8} {:>7} {:>16} {:>13}",
                    l.mode, l.pod, l.controls, l.failed, l.created, l.left
                );
            }
            let bad = lines.iter().any(|l| l.exit != Some(0) || l.left > 0);
            if bad {
                eprintln!("demo: a scan failed or left objects behind (see above)");
                return ExitCode::from(1);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("demo: {e}");
            ExitCode::from(1)
        }
    }
}

fn images() -> Result<Images, String> {
    let cache = rootfs::cache_dir();
    let busybox = rootfs::busybox(&cache.join("busybox")).map_err(|e| e.to_string())?;
    let distroless = rootfs::distroless(&cache.join("distroless")).map_err(|e| e.to_string())?;
    let agent = rootfs::agent(
        &cache.join("agent"),
        &rootfs::static_agent().map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    Ok(Images::new()
        .with(BUSYBOX, Image::new(busybox).cmd(["sh"]))
        .with(DISTROLESS, Image::new(distroless).entrypoint(["/pause"]))
        .with(AGENT, Image::new(agent)))
}

fn pod(name: &str, spec: serde_json::Value) -> Result<Pod, String> {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NS},
        "spec": spec,
    }))
    .map_err(|e| e.to_string())
}

/// The sidecar workload as a user makes it: a plain manifest through `keyhole sidecar inject`.
fn injected(keyhole: &Path) -> Result<Pod, String> {
    use std::io::Write as _;
    let manifest = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: sidecar-0\n  namespace: {NS}\nspec:\n  \
         containers:\n  - name: app\n    image: {BUSYBOX}\n    command: [sleep, \"3600\"]\n    \
         securityContext:\n      runAsUser: 10001\n      runAsGroup: 10001\n"
    );
    println!("$ keyhole sidecar inject -  (a busybox pod running as 10001)");
    let mut child = std::process::Command::new(keyhole)
        .args(["sidecar", "inject", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", keyhole.display()))?;
    child
        .stdin
        .take()
        .ok_or("no stdin")?
        .write_all(manifest.as_bytes())
        .map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("keyhole sidecar inject failed ({})", out.status));
    }
    serde_norway::from_slice(&out.stdout).map_err(|e| format!("the injected manifest: {e}"))
}

async fn wait_for_sidecar_frame(node: &Node) -> Result<(), String> {
    let log = node
        .container_log_path(NS, "sidecar-0", keyhole_scanners::SIDECAR_NAME)
        .ok_or("the sidecar has no log")?;
    let deadline = Instant::now() + WAIT;
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if keyhole_engine::read_facts_frames(&text).newest().is_some() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the sidecar logged no facts within {WAIT:?}: {text}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The audit records of `log` from line `from` on.
fn records_since(log: &Path, from: usize) -> Vec<Record> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .skip(from)
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

async fn demo(keyhole: &Path, out: &Path) -> Result<Vec<Line>, String> {
    println!("== keyhole demo: a LOCAL SANDBOX, not Kubernetes");
    println!(
        "   an in-process fake API server (keyhole-testkit) over HTTPS on loopback, and a test \
         node that runs its pods as runc containers on this machine"
    );
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let images = images()?;
    let cluster = FakeCluster::new();
    cluster.create_namespace(NS);
    let node = Node::start(
        &cluster,
        images,
        NodeOptions {
            name: "keyhole-demo-node".into(),
            ..NodeOptions::default()
        },
    )
    .map_err(|e| format!("the node cannot start: {e}"))?;
    let server = cluster
        .serve_https()
        .await
        .map_err(|e| format!("the HTTPS server: {e}"))?;
    let kubeconfig = out.join("kubeconfig");
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&kubeconfig)
            .map_err(|e| e.to_string())?;
        std::io::Write::write_all(
            &mut f,
            server.kubeconfig_yaml(&cluster.admin_token()).as_bytes(),
        )
        .map_err(|e| e.to_string())?;
    }
    println!(
        "   API server {} ; kubeconfig {}",
        server.url(),
        kubeconfig.display()
    );

    let workloads = [
        pod(
            "shell-0",
            json!({"containers": [{"name": "app", "image": BUSYBOX, "command": ["sleep", "3600"]}]}),
        )?,
        pod(
            "distroless-0",
            json!({"containers": [{"name": "app", "image": DISTROLESS,
                "securityContext": {"runAsUser": 10001, "runAsGroup": 10001}}]}),
        )?,
        injected(keyhole)?,
    ];
    for p in &workloads {
        cluster.insert(p).map_err(|e| e.to_string())?;
    }
    for name in ["shell-0", "distroless-0", "sidecar-0"] {
        node.wait_running(NS, name, WAIT)
            .await
            .map_err(|e| format!("{name} does not run: {e}"))?;
    }
    wait_for_sidecar_frame(&node).await?;
    println!(
        "   running: shell-0 (busybox, has sh), distroless-0 (one static binary, no shell), \
         sidecar-0 (busybox + the injected scanner sidecar)"
    );

    let audit = out.join("audit.jsonl");
    let mut lines = Vec::new();
    for (mode, pod) in [
        ("standard", "shell-0"),
        ("distroless", "distroless-0"),
        ("sidecar", "sidecar-0"),
    ] {
        let hdf = out.join(format!("{mode}.json"));
        let _ = std::fs::remove_file(&hdf);
        let before = std::fs::read_to_string(&audit)
            .map(|t| t.lines().count())
            .unwrap_or(0);
        println!();
        println!(
            "$ keyhole scan pod/{pod} -n {NS} --mode {mode} --out {}",
            hdf.display()
        );
        let run = tokio::process::Command::new(keyhole)
            .args(["scan", &format!("pod/{pod}"), "-n", NS, "--mode", mode])
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("--audit-log")
            .arg(&audit)
            .arg("--out")
            .arg(&hdf)
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| format!("cannot run {}: {e}", keyhole.display()))?;
        print!("{}", String::from_utf8_lossy(&run.stdout));
        eprint!("{}", String::from_utf8_lossy(&run.stderr));
        let (controls, failed) = match std::fs::read_to_string(&hdf)
            .ok()
            .and_then(|t| Execution::from_json_str(&t).ok())
        {
            Some(x) => {
                let cs = x
                    .profiles
                    .first()
                    .map(|p| p.controls.as_slice())
                    .unwrap_or_default();
                (
                    cs.len(),
                    cs.iter()
                        .filter(|c| c.status() == ControlStatus::Failed)
                        .count(),
                )
            }
            None => (0, 0),
        };
        let created = records_since(&audit, before)
            .iter()
            .filter(|r| matches!(r.event, Event::ObjectCreated(_)))
            .count();
        lines.push(Line {
            mode,
            pod,
            exit: run.status.code(),
            controls,
            failed,
            created,
            left: cluster.managed_objects().len(),
        });
    }
    drop(server);
    node.shutdown()
        .map_err(|e| format!("the node did not stop cleanly: {e}"))?;
    Ok(lines)
}
