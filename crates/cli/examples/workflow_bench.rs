//! The cost of one `keyhole scan` per workflow ON THE TEST NODE (`keyhole_testkit::node`, a
//! test double running the fake API server's pods as real runc containers), with a simulated
//! latency per API call, next to the InSpec-over-exec pattern gathering the same facts.
//!
//! `cargo run --release -p keyhole-cli --example workflow_bench -- MODE [LATENCY_MS]`, as root,
//! MODE one of `standard`, `distroless`, `sidecar`, `exec-per-command`. Prints one JSON line:
//! API calls, exec sessions, wall milliseconds and fact requests answered. `cargo xtask bench`
//! runs each mode in a process of its own under GNU time for its peak RSS and prints ratios.
//!
//! Every mode reads the same target: busybox `sleep` as UID 10001 (`prod/web-0`, container
//! `app`; with the scanner sidecar injected for `sidecar`), with the container-baseline plan.
//! - `standard`, `distroless`, `sidecar`: the whole `scan_cluster` (session setup, least
//!   privilege check, gathering, teardown and its verification, evaluation), timed from the
//!   first API call to the result. The sidecar gathers on its own schedule: its first frame is
//!   waited for before the clock starts, so its row is the cost of *reading* facts.
//! - `exec-per-command`: what `train-k8s-container` does per InSpec command — one
//!   `exec … -- /bin/sh -c CMD` per fact request (here: the fact script of that one request;
//!   a package manager's integrity check also reads the database files it is derived from, as
//!   `rpm -Va` is one command), with the user's client and no access session (in its favour).

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use keyhole_audit::AuditLog;
use keyhole_cli::cluster_scan::{ScanRequest, scan_cluster};
use keyhole_cli::session::{Audit, ScopedClients, SessionSpec};
use keyhole_core::{Expiry, Namespace, PodName, Run, RunId, ScanMode, ScanTarget, Ttl};
use keyhole_credentials::{ClusterEndpoint, ScopedToken};
use keyhole_engine::{FactError, FactPlan, Facts, Inputs, Profile, ShellScript, Waivers};
use keyhole_testkit::FakeCluster;
use keyhole_testkit::node::{Image, Images, Node, NodeOptions, rootfs};
use kube::Api;
use kube::api::AttachParams;
use secrecy::ExposeSecret as _;
use tokio::io::AsyncReadExt as _;

const NS: &str = "prod";
const POD: &str = "web-0";
const AGENT_IMAGE: &str = "ghcr.io/keyhole-scanner/keyhole-agent";
const WAIT: Duration = Duration::from_secs(120);

struct FakeScoped(FakeCluster);

impl ScopedClients for FakeScoped {
    fn client(&self, token: &ScopedToken) -> Result<kube::Client, keyhole_cli::SessionError> {
        Ok(self.0.client_for_token(token.secret().expose_secret()))
    }
}

fn images() -> Images {
    let cache = rootfs::cache_dir();
    let busybox = rootfs::busybox(&cache.join("busybox")).expect("the busybox tree");
    let agent = rootfs::agent(
        &cache.join("agent"),
        &rootfs::static_agent().expect("the static keyhole-agent builds"),
    )
    .expect("the agent tree");
    Images::new()
        .with("busybox:1.36", Image::new(busybox).cmd(["sh"]))
        .with(AGENT_IMAGE, Image::new(agent))
}

fn image() -> keyhole_scanners::ImageRef {
    keyhole_scanners::ImageRef::parse(&format!(
        "{AGENT_IMAGE}:0.1.0@sha256:2f1b6c0d9a4e7f3b8c5d1e6a9b0c4d7e2f5a8b1c3d6e9f0a2b4c6d8e0f1a3b5c"
    ))
    .expect("a valid image")
}

/// The target pod, as a user writes it; injected with the scanner sidecar for `sidecar`.
fn pod(sidecar: bool) -> Pod {
    let manifest = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {POD}\n  namespace: {NS}\nspec:\n  \
         containers:\n  - name: app\n    image: busybox:1.36\n    command: [sleep, \"3600\"]\n    \
         securityContext:\n      runAsUser: 10001\n      runAsGroup: 10001\n"
    );
    let text = if sidecar {
        keyhole_scanners::inject_sidecar(
            &manifest,
            &keyhole_scanners::InjectOptions {
                container: None,
                target_uid: None,
                target_gid: None,
                image: image(),
                time_limit_secs: 60,
            },
        )
        .expect("inject")
        .yaml
    } else {
        manifest
    };
    serde_norway::from_str(&text).expect("a pod")
}

fn run(mode: ScanMode) -> Run {
    let target = ScanTarget::pods(
        Namespace::new(NS).expect("valid"),
        [PodName::new(POD).expect("valid")],
        None,
    )
    .expect("valid target");
    let expiry = Expiry::new(Timestamp::now(), Ttl::default()).expect("valid expiry");
    Run::new(RunId::generate().expect("random id"), target, mode, expiry).expect("valid run")
}

/// Requests the facts answer with the script's "no answer" (a cut session): must be none.
fn unanswered(facts: &Facts) -> usize {
    facts
        .iter()
        .filter(|(_, a)| matches!(a, Err(FactError::Io(m)) if m.starts_with("the fact script gave no answer")))
        .count()
}

/// One `exec -- /bin/sh -c SCRIPT` per request of `plan` (the exec-per-command pattern).
async fn exec_per_command(client: &kube::Client, plan: &FactPlan) -> Facts {
    let api: Api<Pod> = Api::namespaced(client.clone(), NS);
    let mut facts = Facts::default();
    for request in plan.requests() {
        let mut one = FactPlan::new();
        one.add(request.clone());
        // A package manager's integrity is derived from its database files, read by other
        // requests of the plan: its one command carries those reads (as `rpm -Va` is one
        // command that reads the database itself).
        if matches!(request, keyhole_engine::FactRequest::ManagedIntegrity(_)) {
            for r in plan.requests() {
                if matches!(r, keyhole_engine::FactRequest::Read { .. }) {
                    one.add(r.clone());
                }
            }
        }
        let script = ShellScript::in_container().render(&one);
        let params = AttachParams::default()
            .container("app")
            .stdin(false)
            .stdout(true)
            .stderr(false);
        let mut process = api
            .exec(POD, ["/bin/sh", "-c", script.as_str()], &params)
            .await
            .expect("exec");
        let mut out = Vec::new();
        process
            .stdout()
            .expect("stdout")
            .read_to_end(&mut out)
            .await
            .expect("read");
        let _ = process.join().await;
        if let Some(a) = ShellScript::parse(&one, &out).get(request) {
            facts.insert(request.clone(), a.clone());
        }
    }
    facts
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "standard".into());
    let latency_ms: u64 = args.next().map_or(20, |a| a.parse().expect("LATENCY_MS"));

    let cluster = FakeCluster::new();
    cluster.create_namespace(NS);
    let node = Node::start(&cluster, images(), NodeOptions::default()).expect("the node starts");
    cluster
        .insert(&pod(mode == "sidecar"))
        .expect("the pod is created");
    node.wait_running(NS, POD, WAIT)
        .await
        .expect("the pod runs");
    let profile = Profile::builtin("container-baseline").expect("built in");
    let inputs = Inputs::defaults(&profile);
    let plan = keyhole_engine::plan(&profile, &inputs);
    if mode == "sidecar" {
        let log = node
            .container_log_path(NS, POD, keyhole_scanners::SIDECAR_NAME)
            .expect("a log");
        let deadline = Instant::now() + WAIT;
        while keyhole_engine::read_facts_frames(&std::fs::read_to_string(&log).unwrap_or_default())
            .newest()
            .is_none()
        {
            assert!(Instant::now() < deadline, "no frame from the sidecar");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    cluster.clear_calls();
    cluster
        .faults()
        .set_latency(Duration::from_millis(latency_ms));
    let dir = std::env::temp_dir().join(format!("keyhole-wbench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");

    let started = Instant::now();
    let (answered, missing) = if mode == "exec-per-command" {
        let facts = exec_per_command(&cluster.client_admin(), &plan).await;
        let wall = started.elapsed();
        let counted = counts(&cluster);
        // The same facts as keyhole's one session (gathered after the clock stopped).
        let target = keyhole_workflows::ContainerTarget {
            namespace: NS.into(),
            pod: POD.into(),
            container: "app".into(),
        };
        let one = keyhole_workflows::gather_standard(&cluster.client_admin(), &target, &plan)
            .await
            .expect("one exec session");
        let (per, all) = (comparable(&facts), comparable(&one));
        let differ: Vec<_> = per
            .iter()
            .zip(&all)
            .filter(|(a, b)| a != b)
            .map(|(a, b)| format!("per command: {a}\none session: {b}"))
            .collect();
        assert!(
            per.len() == all.len() && differ.is_empty(),
            "exec-per-command and the one session disagree ({} vs {} answers):\n{}",
            per.len(),
            all.len(),
            differ.join("\n")
        );
        let answered = (facts.len(), unanswered(&facts));
        return report(
            &mode, latency_ms, &plan, node, answered, wall, counted, &dir,
        );
    } else {
        let scan_mode = match mode.as_str() {
            "standard" => ScanMode::Standard,
            "distroless" => ScanMode::Distroless,
            "sidecar" => ScanMode::Sidecar,
            other => panic!("unknown mode {other:?}"),
        };
        let run = run(scan_mode);
        let audit = Audit::new(
            AuditLog::open(&dir.join("audit.jsonl")).expect("audit log"),
            run.id().as_str(),
        );
        let ca = base64::engine::general_purpose::STANDARD.encode(cluster.ca_pem());
        let request = ScanRequest {
            run: run.clone(),
            container: Some("app".into()),
            profile: profile.clone(),
            inputs: inputs.clone(),
            waivers: Waivers::none(),
            session: SessionSpec {
                run,
                cluster: ClusterEndpoint::new("https://127.0.0.1:6443", &ca).expect("endpoint"),
                audiences: vec![],
                command: vec![],
                work: None,
                policy: keyhole_cleanup::RetryPolicy {
                    call_timeout: Duration::from_secs(30),
                    ..keyhole_cleanup::RetryPolicy::default()
                },
            },
            distroless: Some(keyhole_workflows::DistrolessOptions {
                image: image(),
                target_uid: None,
                target_gid: None,
                allow_root: false,
                allow_shared_pid: false,
                namespace_restricted: false,
                poll: Duration::from_millis(100),
                wait: WAIT,
            }),
            max_age: Duration::from_secs(3600),
        };
        let outcome = scan_cluster(
            cluster.client_admin(),
            request,
            Arc::new(FakeScoped(cluster.clone())),
            audit,
        )
        .await
        .expect("the scan starts");
        assert_eq!(
            outcome.session.exit_code,
            0,
            "{mode}: {:?}",
            outcome.session.error.as_ref().map(ToString::to_string)
        );
        assert!(cluster.managed_objects().is_empty(), "objects left");
        let r = &outcome.results[0];
        (r.facts.len(), r.evaluated.unanswered + unanswered(&r.facts))
    };
    let wall = started.elapsed();
    let counted = counts(&cluster);
    report(
        &mode,
        latency_ms,
        &plan,
        node,
        (answered, missing),
        wall,
        counted,
        &dir,
    );
}

/// API calls and exec sessions so far (an exec counted by its call: the fake records the
/// session itself only once its stream has ended).
fn counts(cluster: &FakeCluster) -> (usize, usize) {
    let calls = cluster.calls();
    let execs = calls.iter().filter(|c| c.path.ends_with("/exec")).count();
    (calls.len(), execs)
}

/// The answers that must agree between two gathers of a running target: all but the process
/// files (`/proc/1/status` holds memory counters that change while it runs).
fn comparable(facts: &Facts) -> Vec<String> {
    facts
        .iter()
        .filter(|(r, _)| !matches!(r, keyhole_engine::FactRequest::Proc { .. }))
        .map(|(r, a)| format!("{r:?} {a:?}"))
        .collect()
}

/// Prints the JSON line of one mode (`answered` and `missing` requests, `counted` API calls and
/// exec sessions); stops the node.
#[allow(clippy::too_many_arguments)]
fn report(
    mode: &str,
    latency_ms: u64,
    plan: &FactPlan,
    node: Node,
    (answered, missing): (usize, usize),
    wall: Duration,
    (calls, execs): (usize, usize),
    dir: &std::path::Path,
) {
    let _ = std::fs::remove_dir_all(dir);
    node.shutdown().expect("the node leaves nothing");
    assert_eq!(missing, 0, "{mode}: requests left unanswered");
    println!(
        "{}",
        serde_json::json!({
            "mode": mode,
            "latency_ms": latency_ms,
            "requests": plan.len(),
            "answered": answered,
            "api_calls": calls,
            "exec_sessions": execs,
            "wall_ms": (wall.as_secs_f64() * 1e3 * 10.0).round() / 10.0,
        })
    );
}
