//! The fault matrix of `keyhole scan`, per workflow (standard, distroless, sidecar): every API
//! call index of the scan × {500, 403, 409, hang, dropped connection, dropped answer after the
//! call took effect}, on the testkit fake. Whatever fails, zero keyhole-managed objects remain,
//! the exit code is the documented one for the phase the failed call belongs to, the audit log
//! verifies and ends with that code, and no result is evaluated from a failed gathering. Then
//! the exec stream cut at every interesting byte offset (`Faults::drop_exec_after`).
//!
//! The documented exit codes, by the phase of the failed call:
//! - the user's reads before anything is created (the reaper's lists of earlier runs'
//!   leftovers, the post-scan audit's snapshot of the targets) and everything from the first
//!   DELETE on (teardown, its verification, the read-back of the pods for traces and the
//!   audit): retried or reported as a warning — exit 0, the scan's result stands;
//! - every other call (who-am-I, the creates, the token, the least-privilege check, and each
//!   call of the gathering with the scoped identity): exit 3 (`EXIT_SETUP_FAILED`), no result.
//!
//! The facts are real (a busybox root read by the engine) for the plan the product sends,
//! recorded once per plan and replayed: the standard exec handler gives the real script's
//! output from a namespaced busybox process, the distroless stand-in kubelet (a test double)
//! answers the ephemeral container with the engine's frame for the plan in its environment, the
//! sidecar's log holds the frame of the profile's plan. A hang on a scoped call ends at the scoped client's
//! timeout, as kube's read timeout ends it against a real server (there: 295 s).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use keyhole_audit::AuditLog;
use keyhole_cli::cluster_scan::{ScanRequest, scan_cluster};
use keyhole_cli::session::{Audit, EXIT_SETUP_FAILED, ScopedClients, SessionSpec};
use keyhole_core::ScanMode;
use keyhole_credentials::ScopedToken;
use keyhole_engine::{FactSource as _, Inputs, LocalRoot, Profile, Waivers};
use keyhole_testkit::{ExecRequest, ExecResponse, FakeCluster, Fault, Identity, RecordedCall};
use secrecy::ExposeSecret as _;

use crate::cluster_scan::{Container, distroless_options, exec_in, pod_running_as, require_root};
use crate::support::{NS, POD, audit_records, endpoint, fast_policy, run, scratch};

const FAULTS: [Fault; 6] = [
    Fault::Status(500),
    Fault::Status(403),
    Fault::Status(409),
    Fault::Hang,
    Fault::DropConnection,
    Fault::DropAfterApply,
];

/// How long a scoped call may go unanswered (kube's read timeout, shortened for the fake).
const SCOPED_TIMEOUT: Duration = Duration::from_millis(700);

/// Scoped clients from the fake whose calls give up after [`SCOPED_TIMEOUT`].
struct TimedScoped(FakeCluster);

impl ScopedClients for TimedScoped {
    fn client(&self, token: &ScopedToken) -> Result<kube::Client, keyhole_cli::SessionError> {
        let svc = tower::ServiceBuilder::new()
            .timeout(SCOPED_TIMEOUT)
            .service(
                self.0
                    .service(Some(token.secret().expose_secret().to_string())),
            );
        Ok(kube::Client::new(svc, "default"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Workflow {
    Standard,
    Distroless,
    Sidecar,
}

/// The busybox root the facts are read from, and the frame of its facts (the engine's, for
/// the container-baseline plan), made once.
fn frame() -> String {
    static FRAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    FRAME
        .get_or_init(|| {
            let root = root();
            let profile = Profile::builtin("container-baseline").unwrap();
            let plan = keyhole_engine::plan(&profile, &Inputs::defaults(&profile));
            let facts = LocalRoot::directory(&root).unwrap().gather(&plan);
            keyhole_engine::encode_facts_frame(&facts, Timestamp::now())
        })
        .clone()
}

/// The agent's answer to the plan it was given (JSON, as in `KEYHOLE_FACT_PLAN`): one frame
/// of the engine's facts of the busybox root, cached per plan.
fn frame_for(plan_json: &str) -> String {
    static SEEN: std::sync::Mutex<Vec<(String, String)>> = std::sync::Mutex::new(Vec::new());
    let mut seen = SEEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, f)) = seen.iter().find(|(p, _)| p == plan_json) {
        return f.clone();
    }
    let plan: keyhole_engine::FactPlan = serde_json::from_str(plan_json).expect("a fact plan");
    let facts = LocalRoot::directory(root()).unwrap().gather(&plan);
    let frame = keyhole_engine::encode_facts_frame(&facts, Timestamp::now());
    seen.push((plan_json.to_string(), frame.clone()));
    frame
}

fn root() -> std::path::PathBuf {
    static ROOT: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| {
        let root = scratch("faults-root");
        crate::cluster_scan::rootfs(&root, true);
        root
    })
    .clone()
}

/// The real answer to an exec: the received script run in a namespaced busybox process
/// (started for it, then stopped), recorded per script and replayed — whatever plan the
/// product sends, it gets that plan's real answer.
fn real_exec(req: &ExecRequest) -> ExecResponse {
    static SEEN: std::sync::Mutex<Vec<(Vec<u8>, ExecResponse)>> = std::sync::Mutex::new(Vec::new());
    let mut seen = SEEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, r)) = seen.iter().find(|(s, _)| *s == req.stdin) {
        return r.clone();
    }
    require_root();
    let container = Container::start(&root());
    let out = exec_in(container.pid)(req);
    drop(container);
    assert_eq!(out.exit_code, 0, "{}", String::from_utf8_lossy(&out.stderr));
    seen.push((req.stdin.clone(), out.clone()));
    out
}

/// A stand-in kubelet (test double) for ephemeral containers: answers each one added to
/// `prod/web-0` with the real frame and exit 0, until `stop`.
fn kubelet(cluster: FakeCluster, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut answered: Vec<String> = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let pod: Option<Pod> = cluster.object(NS, POD);
            for ec in pod
                .and_then(|p| p.spec)
                .and_then(|s| s.ephemeral_containers)
                .into_iter()
                .flatten()
            {
                if answered.contains(&ec.name) {
                    continue;
                }
                let plan = ec
                    .env
                    .iter()
                    .flatten()
                    .find(|e| e.name == "KEYHOLE_FACT_PLAN");
                let frame = frame_for(plan.and_then(|e| e.value.as_deref()).unwrap_or("{}"));
                let _ = cluster.set_pod_running(NS, POD);
                cluster.set_pod_log(NS, POD, &ec.name, &frame);
                let _ = cluster.set_container_terminated(NS, POD, &ec.name, 0);
                answered.push(ec.name);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    })
}

/// A fresh fake with the workflow's target ready.
fn target(w: Workflow) -> FakeCluster {
    match w {
        Workflow::Standard => {
            let c = crate::support::cluster();
            c.set_exec_handler(real_exec);
            c
        }
        Workflow::Distroless => pod_running_as(Some(10001), false),
        Workflow::Sidecar => {
            let c = FakeCluster::new();
            c.create_namespace(NS);
            let pod: Pod = serde_json::from_value(serde_json::json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": POD, "namespace": NS},
                "spec": {"shareProcessNamespace": true, "containers": [
                    {"name": "app", "image": "registry.example/app:1.0"},
                    {"name": keyhole_scanners::SIDECAR_NAME, "image": "registry.example/agent:1.0"},
                ]},
            }))
            .unwrap();
            c.insert(&pod).unwrap();
            c.set_pod_running(NS, POD).unwrap();
            c.set_pod_log(NS, POD, keyhole_scanners::SIDECAR_NAME, &frame());
            c
        }
    }
}

fn mode(w: Workflow) -> ScanMode {
    match w {
        Workflow::Standard => ScanMode::Standard,
        Workflow::Distroless => ScanMode::Distroless,
        Workflow::Sidecar => ScanMode::Sidecar,
    }
}

struct Cell {
    outcome: keyhole_cli::cluster_scan::ScanOutcome,
    records: Vec<keyhole_audit::Record>,
}

/// One scan of `w` against `cluster` (with its stand-in kubelet for distroless).
async fn scan(cluster: &FakeCluster, w: Workflow) -> Cell {
    scan_inner(cluster, w, w == Workflow::Distroless).await
}

/// [`scan`], with the stand-in kubelet only when `with_kubelet` (else the caller answers).
async fn scan_inner(cluster: &FakeCluster, w: Workflow, with_kubelet: bool) -> Cell {
    let stop = Arc::new(AtomicBool::new(false));
    let k = with_kubelet.then(|| kubelet(cluster.clone(), stop.clone()));
    let dir = scratch("faults-audit");
    let log_path = dir.join("audit.jsonl");
    let run = run(mode(w));
    let audit = Audit::new(AuditLog::open(&log_path).unwrap(), run.id().as_str());
    let profile = Profile::builtin("container-baseline").unwrap();
    let request = ScanRequest {
        run: run.clone(),
        container: None,
        profile: profile.clone(),
        inputs: Inputs::defaults(&profile),
        waivers: Waivers::none(),
        session: SessionSpec {
            run,
            cluster: endpoint(cluster),
            audiences: vec![],
            command: vec![],
            work: None,
            policy: keyhole_cleanup::RetryPolicy {
                call_timeout: Duration::from_millis(500),
                ..fast_policy()
            },
        },
        distroless: Some(keyhole_workflows::DistrolessOptions {
            wait: Duration::from_secs(10),
            ..distroless_options()
        }),
        max_age: Duration::from_secs(3600),
    };
    let outcome = scan_cluster(
        cluster.client_admin(),
        request,
        Arc::new(TimedScoped(cluster.clone())),
        audit,
    )
    .await
    .expect("the scan starts");
    stop.store(true, Ordering::Relaxed);
    if let Some(k) = k {
        k.join().unwrap();
    }
    let records = audit_records(&log_path);
    let _ = std::fs::remove_dir_all(&dir);
    Cell { outcome, records }
}

/// `who verb path-shape` of a call (names and the run id left out).
fn shape(c: &RecordedCall) -> String {
    let who = if matches!(c.identity, Identity::ServiceAccount { .. }) {
        "scoped"
    } else {
        "user"
    };
    let parts: Vec<&str> = c.path.split('/').collect();
    // The kind (and subresource) of the path: the segments that are not names.
    let kinds = [
        "pods",
        "exec",
        "log",
        "ephemeralcontainers",
        "serviceaccounts",
        "token",
        "secrets",
        "roles",
        "rolebindings",
        "networkpolicies",
        "selfsubjectreviews",
        "selfsubjectrulesreviews",
        "namespaces",
    ];
    let kind: Vec<&str> = parts
        .iter()
        .filter(|p| kinds.contains(p))
        .copied()
        .filter(|p| *p != "namespaces" || parts.len() == 4)
        .collect();
    format!("{who} {} {}", c.method, kind.join("/"))
}

/// The documented exit code of a scan whose call `index` failed, from the calls of that scan.
fn expected_exit(calls: &[RecordedCall], index: usize) -> i32 {
    let Some(failed) = calls.get(index) else {
        return 0; // this run made fewer calls: nothing failed
    };
    // The first create: the run's ServiceAccount.
    let first_create = calls
        .iter()
        .position(|c| c.method == "POST" && c.path.ends_with("/serviceaccounts"))
        .unwrap_or(usize::MAX);
    let first_delete = calls
        .iter()
        .position(|c| c.method == "DELETE")
        .unwrap_or(usize::MAX);
    // The user's reads before anything is created (the reaper's lists, the post-scan audit's
    // snapshot of the targets) are best effort; who-am-I (a POST) is not.
    let read_before = index < first_create && failed.method == "GET";
    if read_before || index >= first_delete {
        0
    } else {
        EXIT_SETUP_FAILED
    }
}

/// Runs one cell; returns what went wrong, if anything.
async fn cell(w: Workflow, index: usize, fault: Fault) -> Result<(), String> {
    let cluster = target(w);
    cluster.faults().fail_call(index, fault);
    let c = scan(&cluster, w).await;
    let calls = cluster.calls();
    let o = &c.outcome;
    let at = format!(
        "{w:?} call {index} ({}) × {fault:?}",
        calls.get(index).map(shape).unwrap_or_else(|| "none".into())
    );
    let left = cluster.managed_objects();
    if !left.is_empty() {
        return Err(format!("{at}: left {left:?}"));
    }
    let want = expected_exit(&calls, index);
    let got = o.session.exit_code;
    if got != want {
        return Err(format!(
            "{at}: exit {got} (want {want}): {:?}",
            o.session.error.as_ref().map(ToString::to_string)
        ));
    }
    match want {
        0 if o.results.len() != 1 => return Err(format!("{at}: exit 0 without a result")),
        EXIT_SETUP_FAILED if !o.results.is_empty() => {
            return Err(format!("{at}: a failed gathering was evaluated"));
        }
        EXIT_SETUP_FAILED if o.session.error.is_none() => {
            return Err(format!("{at}: a failure without a message"));
        }
        _ => {}
    }
    let (code, _) = crate::support::clean_ending(&c.records);
    if code != got {
        return Err(format!("{at}: the audit log ends with exit {code}"));
    }
    // An ephemeral container that reached the pod spec is reported (it cannot be removed).
    if w == Workflow::Distroless {
        let pod: Pod = cluster.object(NS, POD).unwrap();
        let added = pod
            .spec
            .and_then(|s| s.ephemeral_containers)
            .map_or(0, |v| v.len());
        let reported = o
            .traces
            .iter()
            .filter(|t| !t.contains("could not check"))
            .count();
        let unchecked = o.traces.iter().any(|t| t.contains("could not check"));
        if added != reported && !unchecked {
            return Err(format!(
                "{at}: {added} added, {reported} reported: {:?}",
                o.traces
            ));
        }
    }
    Ok(())
}

async fn matrix(w: Workflow) {
    // The baseline: a clean scan, and how many calls it makes.
    let baseline = target(w);
    let c = scan(&baseline, w).await;
    assert_eq!(
        c.outcome.session.exit_code,
        0,
        "{w:?} baseline: {:?}",
        c.outcome.session.error.as_ref().map(ToString::to_string)
    );
    assert_eq!(c.outcome.results.len(), 1);
    assert_eq!(c.outcome.results[0].evaluated.unanswered, 0);
    assert!(baseline.managed_objects().is_empty());
    let calls = baseline.calls();
    let shapes: Vec<String> = calls.iter().map(shape).collect();
    eprintln!("{w:?}: {} calls: {shapes:?}", calls.len());
    // The gathering is in the matrix: the scoped identity's reads of the target are there.
    let scoped_gather = shapes
        .iter()
        .filter(|s| s.starts_with("scoped") && !s.contains("selfsubjectrulesreviews"))
        .count();
    assert!(scoped_gather >= 2, "{w:?}: {shapes:?}");

    let permits = Arc::new(tokio::sync::Semaphore::new(3));
    let mut cells = tokio::task::JoinSet::new();
    for index in 0..calls.len() {
        for fault in FAULTS {
            let permits = permits.clone();
            cells.spawn(async move {
                let _permit = permits.acquire_owned().await.expect("never closed");
                // `scan_cluster`'s future is not `Send` (it borrows the request, whose session
                // spec is not `Sync`): each cell runs on a runtime of its own.
                tokio::task::spawn_blocking(move || {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("a runtime")
                        .block_on(cell(w, index, fault))
                })
                .await
                .expect("a cell panicked")
            });
        }
    }
    let mut failures = Vec::new();
    let mut total = 0;
    while let Some(r) = cells.join_next().await {
        total += 1;
        if let Err(e) = r.expect("a cell panicked") {
            failures.push(e);
        }
    }
    assert_eq!(total, calls.len() * FAULTS.len());
    assert!(
        failures.is_empty(),
        "{w:?}: {} of {total} cells failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!(
        "{w:?} fault matrix: {} calls × {} faults = {total} scans, all clean",
        calls.len(),
        FAULTS.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standard_every_call_times_every_fault_leaves_nothing_behind() {
    matrix(Workflow::Standard).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distroless_every_call_times_every_fault_leaves_nothing_behind() {
    matrix(Workflow::Distroless).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecar_every_call_times_every_fault_leaves_nothing_behind() {
    matrix(Workflow::Sidecar).await;
}

/// The exec stream cut after 0, 1 and half the bytes of the script's output: each is a scan
/// error (never facts with holes), nothing is left, the audit log says exit 3. Cut one byte
/// short (the last newline), every answer has arrived whole: the scan may stand, but only with
/// exactly the facts of the complete output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standard_exec_cut_mid_stream_is_a_scan_error_and_leaves_nothing() {
    // A clean scan first: its facts, and the length of the script's real output.
    let baseline = target(Workflow::Standard);
    let clean = scan(&baseline, Workflow::Standard).await;
    assert_eq!(clean.outcome.session.exit_code, 0);
    let complete = &clean.outcome.results[0].facts;
    let len = real_exec(&baseline.execs()[0]).stdout.len();
    assert!(len > 2);
    for bytes in [0, 1, len / 2, len - 1] {
        let cluster = target(Workflow::Standard);
        cluster.faults().drop_exec_after(bytes);
        let c = scan(&cluster, Workflow::Standard).await;
        let o = &c.outcome;
        assert!(cluster.managed_objects().is_empty(), "cut at {bytes}");
        let code = crate::support::clean_ending(&c.records).0;
        assert_eq!(code, o.session.exit_code, "cut at {bytes}");
        if bytes == len - 1 && o.session.exit_code == 0 {
            let got: Vec<_> = o.results[0].facts.iter().collect();
            let want: Vec<_> = complete.iter().collect();
            assert_eq!(
                got, want,
                "cut one byte short: only the complete facts may stand"
            );
            continue;
        }
        assert_eq!(o.session.exit_code, EXIT_SETUP_FAILED, "cut at {bytes}");
        let e = o.session.error.as_ref().unwrap().to_string();
        assert!(
            e.contains("before the fact script finished"),
            "cut at {bytes}: {e}"
        );
        assert!(o.results.is_empty(), "cut at {bytes}");
    }
}

/// The distroless agent's frame truncated (the log cut mid-frame) or corrupted (one byte of
/// its JSON changed, its checksum no longer matching), and the sidecar's only frame likewise:
/// each a scan error naming the damage, nothing evaluated, nothing left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_or_corrupted_frames_are_scan_errors_and_leave_nothing() {
    let good = frame();
    let truncated: String = good[..good.len() * 2 / 3].to_string();
    // Flip one character of the JSON body (not of the begin/end lines).
    let at = good.find("\"answers\"").expect("the frame holds answers") + 3;
    let mut corrupted = good.clone().into_bytes();
    corrupted[at] ^= 0x01;
    let corrupted = String::from_utf8(corrupted).unwrap();
    for (case, log) in [("truncated", truncated), ("corrupted", corrupted)] {
        for w in [Workflow::Distroless, Workflow::Sidecar] {
            let cluster = target(w);
            if w == Workflow::Sidecar {
                cluster.set_pod_log(NS, POD, keyhole_scanners::SIDECAR_NAME, &log);
            }
            let c = if w == Workflow::Distroless {
                // A stand-in kubelet that answers with the damaged log.
                let stop = Arc::new(AtomicBool::new(false));
                let answer = {
                    let (cluster, stop, log) = (cluster.clone(), stop.clone(), log.clone());
                    std::thread::spawn(move || {
                        while !stop.load(Ordering::Relaxed) {
                            let pod: Pod = cluster.object(NS, POD).unwrap();
                            if let Some(ec) = pod
                                .spec
                                .and_then(|s| s.ephemeral_containers)
                                .and_then(|v| v.into_iter().next())
                            {
                                cluster.set_pod_running(NS, POD).unwrap();
                                cluster.set_pod_log(NS, POD, &ec.name, &log);
                                cluster
                                    .set_container_terminated(NS, POD, &ec.name, 0)
                                    .unwrap();
                                return;
                            }
                            std::thread::sleep(Duration::from_millis(1));
                        }
                    })
                };
                let c = scan_inner(&cluster, w, false).await;
                stop.store(true, Ordering::Relaxed);
                answer.join().unwrap();
                c
            } else {
                scan(&cluster, w).await
            };
            let o = &c.outcome;
            assert_eq!(o.session.exit_code, EXIT_SETUP_FAILED, "{w:?} {case}");
            let e = o.session.error.as_ref().unwrap().to_string();
            assert!(e.contains("damaged"), "{w:?} {case}: {e}");
            assert!(o.results.is_empty(), "{w:?} {case}");
            assert!(cluster.managed_objects().is_empty(), "{w:?} {case}");
            crate::support::clean_ending(&c.records);
        }
    }
}
