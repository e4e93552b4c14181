//! `keyhole scan -l SELECTOR -A`: a fleet of 50 pods over 3 namespaces against the testkit fake,
//! one of them failing mid-scan (its exec fails). The other 49 are scanned for real (the fake's
//! exec handler runs the fact script it receives with the host's `/bin/sh`), every session is
//! torn down and verified, each namespace's Role pins exactly that namespace's matching pods
//! (written out by hand below), concurrency stays within its bound, and the exit code is the
//! failing pod's. The binary is run too, over HTTPS, for its files, summary and exit code.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::rbac::v1::Role;
use keyhole_audit::{AuditLog, Event, Record};
use keyhole_cli::fleet::summary::{Context, FleetSummary, Verdict};
use keyhole_cli::fleet::{FleetEvent, FleetRequest, Scope, resolve_fleet, scan_fleet};
use keyhole_cli::session::{Audit, ScopedClients};
use keyhole_core::{LabelSelector, Namespace, ScanMode, Ttl};
use keyhole_engine::{Inputs, Profile, Waivers};
use keyhole_testkit::{ExecRequest, ExecResponse, FakeCluster, Identity};

use crate::support::{FakeScoped, Served, audit_records, endpoint, fast_policy, finish, scratch};

/// The matching pods, by namespace, written out by hand: what each namespace's Role must pin.
const SHOP: [&str; 20] = [
    "web-0", "web-1", "web-10", "web-11", "web-12", "web-13", "web-14", "web-15", "web-16",
    "web-17", "web-18", "web-19", "web-2", "web-3", "web-4", "web-5", "web-6", "web-7", "web-8",
    "web-9",
];
const PAY: [&str; 15] = [
    "api-0", "api-1", "api-10", "api-11", "api-12", "api-13", "api-14", "api-2", "api-3", "api-4",
    "api-5", "api-6", "api-7", "api-8", "api-9",
];
const OPS: [&str; 15] = [
    "job-0", "job-1", "job-10", "job-11", "job-12", "job-13", "job-14", "job-2", "job-3", "job-4",
    "job-5", "job-6", "job-7", "job-8", "job-9",
];
/// Pods the selector must not match: one beside the targets in two namespaces, and one in a
/// namespace with no target at all (which must get no session).
const DECOYS: [(&str, &str); 3] = [("shop", "db-0"), ("pay", "db-0"), ("other", "db-0")];
/// The pod made to fail mid-scan.
const FAILING: (&str, &str) = ("pay", "api-7");
/// Below the test runtime's 4 worker threads (the fake's exec handler blocks one each), so an
/// unbounded fleet would show more execs at once.
const CONCURRENCY: usize = 2;

/// Two controls with answers that do not depend on the host: `/` exists (passes), a file no
/// system has exists (fails).
const PROFILE: &str = r#"
name: fleet-test
version: 1.0.0
controls:
  - id: FLEET-001
    title: the root directory exists
    impact: 0.5
    checks:
      - file: /
        exists: true
  - id: FLEET-002
    title: a file no system has exists
    impact: 0.7
    checks:
      - file: /keyhole-fleet-test-absent
        exists: true
"#;

/// The 50 targets, by namespace (also the node fleet's, `fleet_node.rs`).
pub(crate) fn targets() -> BTreeMap<&'static str, &'static [&'static str]> {
    BTreeMap::from([("ops", &OPS[..]), ("pay", &PAY[..]), ("shop", &SHOP[..])])
}

/// Each session's namespace and the pods its Role pinned, in session order.
fn session_pods(o: &keyhole_cli::fleet::FleetOutcome) -> Vec<(String, Vec<String>)> {
    o.sessions
        .iter()
        .map(|s| {
            (
                s.namespace.to_string(),
                s.pods.iter().map(ToString::to_string).collect(),
            )
        })
        .collect()
}

fn add_pod(c: &FakeCluster, ns: &str, name: &str, scan: &str) {
    c.create_namespace(ns);
    let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"scan": scan, "app": "x"}},
        "spec": {"containers": [{"name": "app", "image": "registry.example/app:1.0"}],
                 "nodeName": "fake-node"},
    }))
    .unwrap();
    c.insert(&pod).unwrap();
    c.set_pod_running(ns, name).unwrap();
}

/// The 50 targets and the decoys.
fn fleet_cluster() -> FakeCluster {
    let c = FakeCluster::new();
    for (ns, pods) in targets() {
        for pod in pods {
            add_pod(&c, ns, pod, "yes");
        }
    }
    for (ns, pod) in DECOYS {
        add_pod(&c, ns, pod, "no");
    }
    c
}

/// Runs the fact script on the host's `/bin/sh`, as a container's shell would.
fn run_script(req: &ExecRequest) -> ExecResponse {
    assert_eq!(
        req.command,
        ["/bin/sh", "-s"],
        "the standard workflow's shell"
    );
    let mut child = Command::new("/bin/sh")
        .arg("-s")
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("/bin/sh starts");
    let mut stdin = child.stdin.take().unwrap();
    let input = req.stdin.clone();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    let _ = writer.join();
    ExecResponse {
        stdout: out.stdout,
        stderr: out.stderr,
        exit_code: out.status.code().unwrap_or(128),
    }
}

/// One Role's grants: (resource, verb, resourceNames).
type Grants = BTreeSet<(String, String, Vec<String>)>;

/// What the exec handler saw.
#[derive(Default)]
struct Seen {
    /// Every keyhole Role present during any exec: namespace -> name -> (resource, verb) ->
    /// resourceNames.
    roles: Mutex<BTreeMap<String, BTreeMap<String, Grants>>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

/// The exec handler: records the Roles that exist and how many execs run at once, fails
/// [`FAILING`], and answers every other pod by running the script.
fn handler(
    c: &FakeCluster,
    seen: Arc<Seen>,
) -> impl Fn(&ExecRequest) -> ExecResponse + Send + Sync + 'static {
    let c = c.clone();
    move |req| {
        let now = seen.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        seen.max_in_flight.fetch_max(now, Ordering::SeqCst);
        {
            let mut roles = seen.roles.lock().unwrap();
            for r in c.objects::<Role>() {
                let ns = r.metadata.namespace.clone().unwrap_or_default();
                let name = r.metadata.name.clone().unwrap_or_default();
                let entry = roles.entry(ns).or_default().entry(name).or_default();
                for rule in r.rules.unwrap_or_default() {
                    for res in &rule.resources.clone().unwrap_or_default() {
                        for verb in &rule.verbs {
                            entry.insert((
                                res.clone(),
                                verb.clone(),
                                rule.resource_names.clone().unwrap_or_default(),
                            ));
                        }
                    }
                }
            }
        }
        // Hold the exec a little so that concurrent ones overlap.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let out = if (req.namespace.as_str(), req.pod.as_str()) == FAILING {
            ExecResponse::failure(1, "keyhole-test: the container went away mid-scan\n")
        } else {
            run_script(req)
        };
        seen.in_flight.fetch_sub(1, Ordering::SeqCst);
        out
    }
}

fn request(
    c: &FakeCluster,
    targets: BTreeMap<Namespace, Vec<keyhole_core::PodName>>,
) -> FleetRequest {
    let profile = Profile::from_yaml_str(PROFILE, "fleet-test.yaml").unwrap();
    FleetRequest {
        targets,
        mode: ScanMode::Standard,
        ttl: Ttl::default(),
        container: None,
        inputs: Inputs::defaults(&profile),
        profile,
        waivers: Waivers::none(),
        cluster: endpoint(c),
        audiences: vec![],
        policy: keyhole_cleanup::RetryPolicy {
            call_timeout: std::time::Duration::from_secs(20),
            ..fast_policy()
        },
        distroless: None,
        max_age: std::time::Duration::from_secs(3600),
        concurrency: CONCURRENCY,
        precheck: Some(keyhole_precheck::Policy::builtin()),
    }
}

/// `(namespace, pod)` of every target, from the hand-written lists.
fn all_targets() -> BTreeSet<(String, String)> {
    targets()
        .into_iter()
        .flat_map(|(ns, pods)| pods.iter().map(move |p| (ns.to_string(), p.to_string())))
        .collect()
}

/// Each run's records: it created objects, deleted every one of them, verified none remains,
/// and ended; returns run id -> the recorded exit code.
pub(crate) fn every_run_cleaned_up(records: &[Record]) -> BTreeMap<String, i32> {
    let mut by_run: BTreeMap<&str, Vec<&Record>> = BTreeMap::new();
    for r in records {
        by_run.entry(&r.run_id).or_default().push(r);
    }
    let mut ended = BTreeMap::new();
    for (run, rs) in by_run {
        let objects = |created: bool| -> BTreeSet<String> {
            rs.iter()
                .filter_map(|r| match (&r.event, created) {
                    (Event::ObjectCreated(o), true) | (Event::ObjectDeleted(o), false) => {
                        Some(format!("{} {:?}/{}", o.kind, o.namespace, o.name))
                    }
                    _ => None,
                })
                .collect()
        };
        let created = objects(true);
        assert_eq!(created.len(), 4, "run {run}: SA, anchor, Role, RoleBinding");
        assert_eq!(
            created,
            objects(false),
            "run {run}: every created object deleted"
        );
        // The post-scan audit's record, when it ran, follows run_ended.
        let mut rs = rs;
        if rs
            .last()
            .is_some_and(|r| matches!(r.event, Event::PostScanAudited { .. }))
        {
            rs.pop();
        }
        let n = rs.len();
        match &rs[n - 2].event {
            Event::CleanupVerified { remaining } => {
                assert!(remaining.is_empty(), "run {run} left {remaining:?}")
            }
            e => panic!("run {run}: expected cleanup_verified, got {e:?}"),
        }
        match &rs[n - 1].event {
            Event::RunEnded { exit_code, .. } => {
                ended.insert(run.to_string(), *exit_code);
            }
            e => panic!("run {run}: expected run_ended, got {e:?}"),
        }
    }
    ended
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_pods_over_three_namespaces_one_failing_forty_nine_results_nothing_left() {
    let c = fleet_cluster();
    let seen = Arc::new(Seen::default());
    c.set_exec_handler(handler(&c, seen.clone()));
    let user = c.client_admin();

    // Resolved with the user's credentials, across namespaces; the decoys are not matched.
    let selector = LabelSelector::parse("scan=yes").unwrap();
    let resolved = resolve_fleet(&user, &Scope::All, &selector).await.unwrap();
    let got: BTreeSet<(String, String)> = resolved
        .iter()
        .flat_map(|(ns, pods)| pods.iter().map(move |p| (ns.to_string(), p.to_string())))
        .collect();
    assert_eq!(got, all_targets());
    assert_eq!(got.len(), 50);
    // One namespace only with -n; no match at all is an error, not an empty fleet.
    let pay = resolve_fleet(
        &user,
        &Scope::Namespace(Namespace::new("pay").unwrap()),
        &selector,
    )
    .await
    .unwrap();
    assert_eq!(pay.len(), 1);
    assert_eq!(pay.values().next().unwrap().len(), PAY.len());
    let none = LabelSelector::parse("scan=never").unwrap();
    assert!(resolve_fleet(&user, &Scope::All, &none).await.is_err());

    let dir = scratch("fleet-audit");
    let log_path = dir.join("audit.jsonl");
    let audit = Audit::new(AuditLog::open(&log_path).unwrap(), "fleet");
    let events: Arc<Mutex<Vec<FleetEvent>>> = Arc::default();
    let on_event = {
        let events = events.clone();
        Arc::new(move |e| events.lock().unwrap().push(e))
    };
    let scoped = {
        let c = c.clone();
        Arc::new(move |_: &Namespace| FakeScoped::new(&c) as Arc<dyn ScopedClients>)
    };
    let o = scan_fleet(user, request(&c, resolved), scoped, audit, Some(on_event)).await;

    // One session per namespace, pinning exactly that namespace's targets; all torn down.
    let sessions: BTreeMap<String, Vec<String>> = session_pods(&o).into_iter().collect();
    let expected: BTreeMap<String, Vec<String>> = targets()
        .into_iter()
        .map(|(ns, pods)| {
            let mut v: Vec<String> = pods.iter().map(ToString::to_string).collect();
            v.sort();
            (ns.to_string(), v)
        })
        .collect();
    assert_eq!(sessions, expected);
    assert_eq!(o.sessions.len(), 3);
    for s in &o.sessions {
        assert!(
            s.outcome.cleanup.is_clean(),
            "{}: {:?}",
            s.namespace,
            s.outcome.cleanup
        );
        let access = s.outcome.access.as_ref().expect("least privilege verified");
        assert!(
            access
                .checked
                .iter()
                .all(|ch| ch.allowed == ch.expected_allowed)
        );
    }
    assert!(o.all_clean());
    assert!(c.managed_objects().is_empty(), "{:?}", c.managed_objects());
    // The audit log verifies, and says the same for each of the 3 runs.
    let records = audit_records(&log_path);
    let ended = every_run_cleaned_up(&records);
    assert_eq!(ended.len(), 3);
    let ids: BTreeSet<String> = o.sessions.iter().map(|s| s.run_id.to_string()).collect();
    assert_eq!(ended.keys().cloned().collect::<BTreeSet<_>>(), ids);
    // The failing pod's session says so in the audit log; the others ended with 0.
    for s in &o.sessions {
        let want = if s.namespace.as_str() == FAILING.0 {
            3
        } else {
            0
        };
        assert_eq!(ended[s.run_id.as_str()], want, "{}", s.namespace);
    }

    // 49 results, 1 clear error; the exit code is the failing pod's.
    assert_eq!(o.targets.len(), 50);
    for t in &o.targets {
        let key = (t.namespace.as_str(), t.pod.as_str());
        if key == FAILING {
            assert!(t.result.is_none());
            assert_eq!(t.exit_code, 3);
            let e = t.error.as_deref().unwrap();
            assert!(
                e.contains("exec session into pay/api-7 (app) failed") && e.contains("exit code 1"),
                "{e}"
            );
        } else {
            assert_eq!(t.exit_code, 0, "{key:?}: {:?}", t.error);
            let r = t.result.as_ref().expect("a result");
            assert_eq!(r.target.container, "app");
            assert_eq!(r.evaluated.unanswered, 0);
        }
    }
    assert_eq!(o.exit_code(), 3);
    // Each pod was exec'd once, by its own namespace's scoped identity; decoys never.
    let execs = c.execs();
    assert_eq!(execs.len(), 50);
    for e in &execs {
        assert!(
            matches!(&e.identity, Identity::ServiceAccount { namespace, .. } if *namespace == e.namespace),
            "{e:?}"
        );
        assert!(all_targets().contains(&(e.namespace.clone(), e.pod.clone())));
    }
    // Concurrency: bounded, and really concurrent.
    let max = seen.max_in_flight.load(Ordering::SeqCst);
    assert!(
        (2..=CONCURRENCY).contains(&max),
        "at most {CONCURRENCY} execs at once, saw {max}"
    );
    // Progress: every target reported done exactly once; every session's end.
    let events = events.lock().unwrap();
    let mut done: Vec<(String, String, bool)> = events
        .iter()
        .filter_map(|e| match e {
            FleetEvent::TargetDone { namespace, pod, ok } => {
                Some((namespace.clone(), pod.clone(), *ok))
            }
            FleetEvent::SessionEnded { .. } => None,
        })
        .collect();
    done.sort();
    assert_eq!(done.len(), 50);
    assert_eq!(done.iter().filter(|d| !d.2).count(), 1);
    assert!(done.contains(&(FAILING.0.into(), FAILING.1.into(), false)));
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, FleetEvent::SessionEnded { clean: true, .. }))
            .count(),
        3
    );

    // Least privilege, written out by hand: each namespace's Role grants pods get and
    // pods/exec create+get on exactly that namespace's matching pods; no other namespace (the
    // decoys' "other") ever had a keyhole Role.
    let roles = seen.roles.lock().unwrap();
    assert_eq!(
        roles.keys().map(String::as_str).collect::<Vec<_>>(),
        ["ops", "pay", "shop"]
    );
    for (ns, pods) in targets() {
        let by_name = &roles[ns];
        assert_eq!(by_name.len(), 1, "{ns}: one Role, one session");
        let mut names: Vec<String> = pods.iter().map(ToString::to_string).collect();
        names.sort();
        let want: Grants = [
            ("pods", "get"),
            ("pods/exec", "create"),
            ("pods/exec", "get"),
        ]
        .into_iter()
        .map(|(r, v)| (r.to_string(), v.to_string(), names.clone()))
        .collect();
        assert_eq!(by_name.values().next().unwrap(), &want, "{ns}");
    }

    // The combined summary: 49 scanned (1 passed and 1 failed control each, 50% compliance),
    // 1 error, exit 3.
    let scope = Scope::All;
    let cx = Context {
        selector: "scan=yes",
        scope: &scope,
        concurrency: CONCURRENCY,
        profile: "fleet-test 1.0.0",
        threshold: None,
    };
    let s = FleetSummary::build(&o, cx);
    assert_eq!(s.exit_code, 3);
    assert_eq!(
        (
            s.totals.targets,
            s.totals.scanned,
            s.totals.errors,
            s.totals.below_threshold
        ),
        (50, 49, 1, 0)
    );
    assert_eq!((s.totals.sessions, s.totals.sessions_clean), (3, 3));
    let rows = s.by_target();
    let failing = rows["pay/api-7"];
    assert_eq!(
        (failing.verdict, failing.exit_code, failing.counts),
        (Verdict::Error, 3, None)
    );
    for (name, row) in &rows {
        if *name == "pay/api-7" {
            continue;
        }
        let c = row.counts.expect("counts");
        assert_eq!(
            (
                row.verdict,
                c.passed,
                c.failed,
                c.error,
                row.compliance,
                row.exit_code
            ),
            (Verdict::Scanned, 1, 1, 0, Some(50), 0),
            "{name}"
        );
    }
    // The JSON report says the same; the text names the error.
    let json: serde_json::Value = serde_json::from_str(&s.to_json().unwrap()).unwrap();
    assert_eq!(json["exit_code"], 3);
    assert_eq!(json["totals"]["scanned"], 49);
    assert_eq!(json["targets"].as_array().unwrap().len(), 50);
    let text = s.to_text();
    assert!(text.contains("49 scanned, 1 error(s)"), "{text}");
    assert!(text.contains("pay/api-7 (exit 3)"), "{text}");

    // With a threshold no result meets (no failed control allowed): each of the 49 exits 1,
    // and the fleet still exits 3, the worse code.
    let threshold =
        keyhole_hdf::Threshold::from_yaml_str("failed:\n  total:\n    max: 0\n").unwrap();
    let s = FleetSummary::build(
        &o,
        Context {
            threshold: Some(&threshold),
            ..cx
        },
    );
    assert_eq!(s.totals.below_threshold, 49);
    assert!(
        s.targets
            .iter()
            .filter(|t| t.pod != "api-7")
            .all(|t| t.verdict == Verdict::Fail && t.exit_code == 1)
    );
    assert_eq!(s.exit_code, 3);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--mode auto` in a fleet: the pods without a shell get a second session of their namespace,
/// distroless, whose Role pins only them, created only after the standard session's objects
/// are verified gone; the pods with a shell keep their standard results. (The fake runs no
/// agent, so the distroless pods end in a clear error when the wait runs out: what is tested
/// here is who gets which access when.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_gives_the_shell_less_pods_a_distroless_session_of_their_own_after_the_first_is_gone()
{
    let c = FakeCluster::new();
    for pod in ["web-0", "slim-0", "slim-1"] {
        add_pod(&c, "shop", pod, "yes");
    }
    c.set_exec_handler(|req| {
        if req.pod.starts_with("slim-") {
            ExecResponse::failure(127, "/bin/sh: not found\n")
        } else {
            run_script(req)
        }
    });
    let user = c.client_admin();
    let resolved = resolve_fleet(
        &user,
        &Scope::All,
        &LabelSelector::parse("scan=yes").unwrap(),
    )
    .await
    .unwrap();
    let mut req = request(&c, resolved);
    req.mode = ScanMode::Auto;
    let mut opts = crate::cluster_scan::distroless_options();
    opts.target_uid = Some(10001);
    opts.wait = std::time::Duration::from_millis(300);
    req.distroless = Some(opts);
    let dir = scratch("fleet-auto");
    let log_path = dir.join("audit.jsonl");
    let audit = Audit::new(AuditLog::open(&log_path).unwrap(), "fleet");
    let scoped = {
        let c = c.clone();
        Arc::new(move |_: &Namespace| FakeScoped::new(&c) as Arc<dyn ScopedClients>)
    };
    let o = scan_fleet(user, req, scoped, audit, None).await;

    let sessions: Vec<(ScanMode, Vec<String>)> = o
        .sessions
        .iter()
        .map(|s| (s.mode, s.pods.iter().map(ToString::to_string).collect()))
        .collect();
    assert_eq!(
        sessions,
        [
            (
                ScanMode::Standard,
                vec!["slim-0".into(), "slim-1".into(), "web-0".into()]
            ),
            (ScanMode::Distroless, vec!["slim-0".into(), "slim-1".into()]),
        ]
    );
    assert!(o.all_clean());
    assert!(c.managed_objects().is_empty());
    let by_pod: BTreeMap<&str, _> = o.targets.iter().map(|t| (t.pod.as_str(), t)).collect();
    assert_eq!(by_pod["web-0"].mode, ScanMode::Standard);
    assert!(by_pod["web-0"].result.is_some());
    assert_eq!(by_pod["web-0"].exit_code, 0);
    for slim in ["slim-0", "slim-1"] {
        let t = by_pod[slim];
        assert_eq!(t.mode, ScanMode::Distroless, "{slim}");
        assert_eq!(t.exit_code, 3, "{slim}");
        assert_eq!(t.run_id.as_ref(), Some(&o.sessions[1].run_id));
    }
    // The debug containers stay in the pod specs, and are reported.
    assert_eq!(o.sessions[1].traces.len(), 2, "{:?}", o.sessions[1].traces);
    // The distroless access was created only after the standard one was verified gone.
    let records = audit_records(&log_path);
    let (first, second) = (o.sessions[0].run_id.as_str(), o.sessions[1].run_id.as_str());
    let gone = records
        .iter()
        .position(|r| r.run_id == first && matches!(r.event, Event::CleanupVerified { .. }))
        .unwrap();
    let created = records
        .iter()
        .position(|r| r.run_id == second && matches!(r.event, Event::ObjectCreated(_)))
        .unwrap();
    assert!(
        gone < created,
        "distroless access created before the standard one was gone"
    );
    every_run_cleaned_up(&records);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A pod running privileged.
fn add_privileged_pod(c: &FakeCluster, ns: &str, name: &str) {
    c.create_namespace(ns);
    let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"scan": "yes"}},
        "spec": {"containers": [{"name": "app", "image": "registry.example/app:1.0",
                                 "securityContext": {"privileged": true}}],
                 "nodeName": "fake-node"},
    }))
    .unwrap();
    c.insert(&pod).unwrap();
    c.set_pod_running(ns, name).unwrap();
}

/// The pre-scan verification in a fleet: each pod is judged with the user's credentials
/// before its namespace's session; a privileged pod's abort (built-in policy) is that pod's
/// exit 5 and it is left out of the Role, a namespace whose every pod aborts gets no session
/// and no write call at all; and the network checks, judged from the socket tables gathered
/// with the facts, can abort a scanned pod's verdict afterwards (its results withheld).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pre_scan_aborts_are_per_pod_left_out_of_every_role_and_exit_5() {
    let c = FakeCluster::new();
    add_pod(&c, "shop", "web-0", "yes");
    add_privileged_pod(&c, "shop", "web-1");
    add_privileged_pod(&c, "lab", "lab-0");
    let seen = Arc::new(Seen::default());
    c.set_exec_handler(handler(&c, seen.clone()));
    let user = c.client_admin();
    let selector = LabelSelector::parse("scan=yes").unwrap();
    let dir = scratch("fleet-precheck");
    let log_path = dir.join("audit.jsonl");
    let scoped = {
        let c = c.clone();
        Arc::new(move |_: &Namespace| FakeScoped::new(&c) as Arc<dyn ScopedClients>)
            as keyhole_cli::fleet::ScopedFor
    };
    let resolved = resolve_fleet(&user, &Scope::All, &selector).await.unwrap();
    let audit = Audit::new(AuditLog::open(&log_path).unwrap(), "fleet");
    let o = scan_fleet(
        user.clone(),
        request(&c, resolved),
        scoped.clone(),
        audit,
        None,
    )
    .await;
    let by: BTreeMap<String, _> = o
        .targets
        .iter()
        .map(|t| (format!("{}/{}", t.namespace, t.pod), t))
        .collect();
    for aborted in ["shop/web-1", "lab/lab-0"] {
        let t = by[aborted];
        assert_eq!(t.exit_code, 5, "{aborted}");
        assert!(t.result.is_none() && t.run_id.is_none(), "{aborted}");
        let e = t.error.as_deref().unwrap();
        assert!(
            e.contains("pre-scan verification aborted") && e.contains("privileged"),
            "{e}"
        );
        assert!(t.precheck.as_ref().is_some_and(|v| v.aborts()));
    }
    let web = by["shop/web-0"];
    assert_eq!(web.exit_code, 0, "{:?}", web.error);
    assert!(web.result.is_some());
    assert!(web.precheck.as_ref().is_some_and(|v| !v.aborts()));
    assert_eq!(o.exit_code(), 5);
    // One session, in shop, pinning web-0 only; nothing ever written in lab.
    let sessions = session_pods(&o);
    assert_eq!(sessions, [("shop".to_string(), vec!["web-0".to_string()])]);
    let roles = seen.roles.lock().unwrap().clone();
    let names: Vec<&Vec<String>> = roles["shop"]
        .values()
        .flat_map(|g| g.iter().map(|(_, _, n)| n))
        .collect();
    assert!(
        names.iter().all(|n| *n == &vec!["web-0".to_string()]),
        "{roles:?}"
    );
    assert_eq!(roles.keys().collect::<Vec<_>>(), ["shop"]);
    let lab: Vec<String> = c
        .calls()
        .iter()
        .filter(|call| {
            call.path.contains("/namespaces/lab/") || call.path.ends_with("/namespaces/lab")
        })
        .map(|call| format!("{} {}", call.method, call.path))
        .collect();
    assert_eq!(
        lab,
        ["GET /api/v1/namespaces/lab/pods/lab-0"],
        "only the pre-scan read"
    );
    assert!(c.managed_objects().is_empty());
    // The abort is in the audit log, with its own run id.
    let records = audit_records(&log_path);
    assert!(records.iter().any(|r| matches!(&r.event,
        Event::RunEnded { exit_code: 5, outcome } if outcome.contains("lab") && outcome.contains("privileged"))));

    // The network checks: a listener exists in this network namespace (the fact script runs
    // on this host), and a policy that aborts on any listener withholds web-0's results.
    let _listener = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let policy = keyhole_precheck::Policy::from_yaml_str(
        "checks:\n  network-listeners: abort\n",
        "test-policy.yaml",
    )
    .unwrap();
    let only_web0 = BTreeMap::from([(
        Namespace::new("shop").unwrap(),
        vec![keyhole_core::PodName::new("web-0").unwrap()],
    )]);
    let mut req = request(&c, only_web0);
    req.precheck = Some(policy);
    let audit = Audit::new(AuditLog::open(&log_path).unwrap(), "fleet");
    let o = scan_fleet(user, req, scoped, audit, None).await;
    let t = &o.targets[0];
    assert_eq!(t.exit_code, 5, "{:?}", t.error);
    assert!(t.result.is_none());
    let e = t.error.as_deref().unwrap();
    assert!(
        e.contains("network checks aborted") && e.contains("network-listeners"),
        "{e}"
    );
    assert!(o.all_clean() && c.managed_objects().is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

/// The binary's small fleet over HTTPS: `pay/api-7` (fails mid-scan), `pay/api-1` and
/// `shop/web-0` labelled `scan=yes`, `shop/db-0` not; the profile file beside it.
async fn small_fleet(name: &str) -> (FakeCluster, Served, std::path::PathBuf) {
    let c = FakeCluster::new();
    add_pod(&c, "pay", "api-7", "yes");
    add_pod(&c, "pay", "api-1", "yes");
    add_pod(&c, "shop", "web-0", "yes");
    add_pod(&c, "shop", "db-0", "no");
    let seen = Arc::new(Seen::default());
    c.set_exec_handler(handler(&c, seen));
    let served = Served::with(name, c.clone(), |s| s.kubeconfig_yaml_admin()).await;
    let profile = served.dir.join("profile.yaml");
    std::fs::write(&profile, PROFILE).unwrap();
    (c, served, profile)
}

/// The binary: `keyhole scan -l scan=yes -A --out DIR/hdf.json --fleet-report DIR/fleet.json`
/// over HTTPS (stderr is not a terminal: no progress bar), on a small fleet with one failing
/// pod: one HDF per scanned target named with its namespace, the summary on stdout, the report
/// file, exit 3; and a threshold makes the healthy-only fleet exit 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_scans_a_fleet_writes_one_hdf_per_target_and_exits_with_the_worst_code() {
    let (c, served, profile) = small_fleet("fleet-bin").await;
    let out = served.dir.join("hdf.json");
    let report = served.dir.join("fleet.json");
    let markdown = served.dir.join("fleet.md");
    let args = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "scan",
            "-l",
            "scan=yes",
            "-A",
            "--mode",
            "standard",
            "--concurrency",
            "2",
            "--kubeconfig",
            served.kubeconfig.to_str().unwrap(),
            "--audit-log",
            served.audit.to_str().unwrap(),
            "--profile",
            profile.to_str().unwrap(),
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        v.extend(extra.iter().map(ToString::to_string));
        v
    };
    let a = args(&[
        "--out",
        out.to_str().unwrap(),
        "--fleet-report",
        report.to_str().unwrap(),
    ]);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let f = finish(served.keyhole(&a, &[]).spawn().unwrap()).await;
    assert_eq!(
        f.code,
        Some(3),
        "stdout:\n{}\nstderr:\n{}",
        f.stdout,
        f.stderr
    );
    assert!(f.stdout.contains("2 scanned, 1 error(s)"), "{}", f.stdout);
    assert!(f.stdout.contains("pay/api-7 (exit 3)"), "{}", f.stdout);
    // Not a terminal: no progress bar drawing on stderr.
    assert!(!f.stderr.contains("/3 targets"), "{}", f.stderr);
    for (ns, pod) in [("pay", "api-1"), ("shop", "web-0")] {
        let hdf = served.dir.join(format!("hdf.{ns}.{pod}.json"));
        let exec = keyhole_hdf::Execution::from_json_slice(&std::fs::read(&hdf).unwrap()).unwrap();
        assert_eq!(exec.profiles[0].controls.len(), 2, "{}", hdf.display());
        assert_eq!(
            exec.profiles[1].name,
            "keyhole-precheck",
            "{}",
            hdf.display()
        );
    }
    assert!(!served.dir.join("hdf.pay.api-7.json").exists());
    assert!(!served.dir.join("hdf.shop.db-0.json").exists());
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(json["exit_code"], 3);
    assert_eq!(json["scope"], "all namespaces");
    assert_eq!(json["sessions"].as_array().unwrap().len(), 2);
    assert!(
        json["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["cleanup_verified"] == true)
    );
    assert!(c.managed_objects().is_empty());

    // Only the healthy namespace, a threshold they cannot meet, a Markdown report: exit 1.
    let threshold = served.dir.join("threshold.yaml");
    std::fs::write(&threshold, "failed:\n  total:\n    max: 0\n").unwrap();
    let mut a = args(&[
        "--threshold",
        threshold.to_str().unwrap(),
        "--fleet-report",
        markdown.to_str().unwrap(),
        "--quiet",
    ]);
    // `-n shop` instead of `-A`.
    let i = a.iter().position(|x| x == "-A").unwrap();
    a.splice(i..=i, ["-n".to_string(), "shop".to_string()]);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let f = finish(served.keyhole(&a, &[]).spawn().unwrap()).await;
    assert_eq!(
        f.code,
        Some(1),
        "stdout:\n{}\nstderr:\n{}",
        f.stdout,
        f.stderr
    );
    assert!(
        f.stdout
            .contains("1 scanned, 0 error(s), 1 below the threshold"),
        "{}",
        f.stdout
    );
    let md = std::fs::read_to_string(&markdown).unwrap();
    assert!(
        md.contains("| shop/web-0 | app | standard | proceed | fail |"),
        "{md}"
    );
    assert!(c.managed_objects().is_empty());

    // On a terminal (a pty from script(1)) the progress bar is drawn on stderr; --quiet hides it.
    let tty = async |quiet: bool| {
        let mut a = args(&[]);
        if quiet {
            a.push("--quiet".into());
        }
        let mut line = shell_quote(env!("CARGO_BIN_EXE_keyhole"));
        for x in &a {
            line.push(' ');
            line.push_str(&shell_quote(x));
        }
        let out = tokio::process::Command::new("script")
            .args(["-qec", &line, "/dev/null"])
            .env_remove("KUBECONFIG")
            .env_remove("KEYHOLE_LOG")
            .env("HOME", &served.dir)
            .env("TMPDIR", &served.dir)
            .env("XDG_STATE_HOME", served.dir.join("state"))
            .env("TERM", "xterm")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(std::time::Duration::from_secs(60), out)
            .await
            .expect("keyhole ends within 60 s")
            .expect("script(1) runs (util-linux)");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, shown) = tty(false).await;
    assert_eq!(code, Some(3), "{shown}");
    assert!(
        shown.contains("/3 targets"),
        "no progress bar on a terminal:\n{shown}"
    );
    let (code, shown) = tty(true).await;
    assert_eq!(code, Some(3), "{shown}");
    assert!(
        !shown.contains("/3 targets"),
        "--quiet draws no bar:\n{shown}"
    );
    assert!(shown.contains("2 scanned, 1 error(s)"), "{shown}");
    assert!(c.managed_objects().is_empty());

    // A dry run needs no cluster and sends nothing.
    let calls = c.calls().len();
    let dry = finish(
        served
            .keyhole(&["scan", "-l", "scan=yes", "-A", "--dry-run"], &[])
            .spawn()
            .unwrap(),
    )
    .await;
    assert_eq!(dry.code, Some(0), "{}", dry.stderr);
    assert!(
        dry.stdout
            .contains("the pods of all namespaces matching scan=yes"),
        "{}",
        dry.stdout
    );
    assert_eq!(c.calls().len(), calls);

    // -A needs -l; --concurrency is bounded.
    let bad = finish(
        served
            .keyhole(&["scan", "web-0", "-A"], &[])
            .spawn()
            .unwrap(),
    )
    .await;
    assert_eq!(bad.code, Some(2), "{}", bad.stderr);
    let bad = finish(
        served
            .keyhole(&["scan", "-l", "a=b", "--concurrency", "0"], &[])
            .spawn()
            .unwrap(),
    )
    .await;
    assert_eq!(bad.code, Some(2), "{}", bad.stderr);
}

/// `s` as one word for sh(1).
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// SIGINT in the middle of a fleet (the binary, concurrency 1, three namespaces): the session
/// being scanned tears down, the namespaces not started yet never get a session (no write
/// call), nothing is left, and the exit code is 130 for every target.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_tears_the_running_session_down_and_starts_no_other() {
    let c = FakeCluster::new();
    for (ns, pod) in [
        ("a-ns", "p-0"),
        ("a-ns", "p-1"),
        ("b-ns", "p-0"),
        ("c-ns", "p-0"),
    ] {
        add_pod(&c, ns, pod, "yes");
    }
    // Each exec takes a while, so the signal lands while the first session gathers.
    c.set_exec_handler(|req| {
        std::thread::sleep(std::time::Duration::from_millis(300));
        run_script(req)
    });
    let served = Served::with("fleet-sigint", c.clone(), |s| s.kubeconfig_yaml_admin()).await;
    let profile = served.dir.join("profile.yaml");
    std::fs::write(&profile, PROFILE).unwrap();
    let child = served
        .keyhole(
            &served.as_user(&[
                "scan",
                "-l",
                "scan=yes",
                "-A",
                "--mode",
                "standard",
                "--concurrency",
                "1",
                "--profile",
                profile.to_str().unwrap(),
            ]),
            &[],
        )
        .spawn()
        .unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while c.execs().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no exec arrived");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    crate::support::kill(child.id().expect("running"), "-INT");
    let f = finish(child).await;
    assert_eq!(
        f.code,
        Some(130),
        "stdout:\n{}\nstderr:\n{}",
        f.stdout,
        f.stderr
    );
    assert!(c.managed_objects().is_empty(), "{:?}", c.managed_objects());
    // Only the first namespace (in order: a-ns) ever had anything written.
    let written: BTreeSet<String> = c
        .calls()
        .iter()
        .filter(|call| call.method != "GET")
        .filter_map(|call| {
            call.path
                .split("/namespaces/")
                .nth(1)
                .and_then(|rest| rest.split('/').next())
                .map(str::to_string)
        })
        .collect();
    assert_eq!(written.into_iter().collect::<Vec<_>>(), ["a-ns"]);
    assert!(
        f.stdout.contains("not scanned: stopped by SIGINT"),
        "{}",
        f.stdout
    );
    let records = audit_records(&served.audit);
    every_run_cleaned_up(&records);
}

/// A session whose teardown cannot finish (every delete of its Role fails, and no garbage
/// collector removes it behind the ServiceAccount) makes its targets
/// exit 4 and the fleet exit 4 (worse than anything else), while the other namespace's
/// session is torn down and verified as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incomplete_cleanup_is_the_fleets_exit_4_and_the_other_sessions_still_clean_up() {
    use keyhole_testkit::{Fault, FaultRule};
    let c = FakeCluster::new();
    add_pod(&c, "pay", "api-0", "yes");
    add_pod(&c, "shop", "web-0", "yes");
    add_pod(&c, "shop", "web-1", "yes");
    c.set_exec_handler(run_script);
    // No garbage collector: the Role outlives its ServiceAccount, as when the collector lags.
    c.set_gc_mode(keyhole_testkit::GcMode::Manual);
    c.faults().fail_matching(
        FaultRule::new(Fault::Status(500))
            .method("DELETE")
            .path("/apis/rbac.authorization.k8s.io/v1/namespaces/pay/roles/*"),
    );
    let user = c.client_admin();
    let resolved = resolve_fleet(
        &user,
        &Scope::All,
        &LabelSelector::parse("scan=yes").unwrap(),
    )
    .await
    .unwrap();
    let dir = scratch("fleet-leftover");
    let audit = Audit::new(AuditLog::open(&dir.join("audit.jsonl")).unwrap(), "fleet");
    let scoped = {
        let c = c.clone();
        Arc::new(move |_: &Namespace| FakeScoped::new(&c) as Arc<dyn ScopedClients>)
    };
    let o = scan_fleet(user, request(&c, resolved), scoped, audit, None).await;
    let clean: BTreeMap<String, bool> = o
        .sessions
        .iter()
        .map(|s| (s.namespace.to_string(), s.outcome.cleanup.is_clean()))
        .collect();
    assert_eq!(
        clean,
        BTreeMap::from([("pay".to_string(), false), ("shop".to_string(), true)])
    );
    let codes: BTreeMap<String, i32> = o
        .targets
        .iter()
        .map(|t| (format!("{}/{}", t.namespace, t.pod), t.exit_code))
        .collect();
    assert_eq!(
        codes,
        BTreeMap::from([
            ("pay/api-0".to_string(), 4),
            ("shop/web-0".to_string(), 0),
            ("shop/web-1".to_string(), 0),
        ])
    );
    assert_eq!(o.exit_code(), 4);
    // What is left is exactly pay's Role.
    let left: Vec<(String, Option<String>)> = c
        .managed_objects()
        .into_iter()
        .map(|r| (r.kind, r.namespace))
        .collect();
    assert_eq!(left, [("Role".to_string(), Some("pay".to_string()))]);
    let scope = Scope::All;
    let s = FleetSummary::build(
        &o,
        Context {
            selector: "scan=yes",
            scope: &scope,
            concurrency: CONCURRENCY,
            profile: "fleet-test 1.0.0",
            threshold: None,
        },
    );
    assert_eq!((s.exit_code, s.totals.sessions_clean), (4, 1));
    assert!(
        s.to_text().contains("INCOMPLETE cleanup of run"),
        "{}",
        s.to_text()
    );
    assert!(
        s.to_markdown().contains("INCOMPLETE: Role pay/"),
        "{}",
        s.to_markdown()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The post-scan audit runs per namespace after its teardown: a target changed during the
/// scan (here: its pod rewritten by the "kubelet" while the exec runs) is a finding that makes
/// that namespace's results exit 6, while the other namespace stays 0; the HDF carries the
/// `keyhole-postscan` profile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_changed_during_the_scan_is_its_namespaces_post_scan_finding_exit_6() {
    let c = FakeCluster::new();
    add_pod(&c, "pay", "api-0", "yes");
    add_pod(&c, "shop", "web-0", "yes");
    let kubelet = c.clone();
    c.set_exec_handler(move |req| {
        if req.namespace == "shop" {
            // A container restart, as the kubelet reports it.
            kubelet
                .set_container_terminated("shop", "web-0", "app", 137)
                .unwrap();
            kubelet.set_pod_running("shop", "web-0").unwrap();
        }
        run_script(req)
    });
    let served = Served::with("fleet-postscan", c.clone(), |s| s.kubeconfig_yaml_admin()).await;
    let profile = served.dir.join("profile.yaml");
    std::fs::write(&profile, PROFILE).unwrap();
    let out = served.dir.join("hdf.json");
    let f = finish(
        served
            .keyhole(
                &served.as_user(&[
                    "scan",
                    "-l",
                    "scan=yes",
                    "-A",
                    "--mode",
                    "standard",
                    "--profile",
                    profile.to_str().unwrap(),
                    "--out",
                    out.to_str().unwrap(),
                    "--format",
                    "json",
                ]),
                &[],
            )
            .spawn()
            .unwrap(),
    )
    .await;
    assert_eq!(
        f.code,
        Some(6),
        "stdout:\n{}\nstderr:\n{}",
        f.stdout,
        f.stderr
    );
    let json: serde_json::Value = serde_json::from_str(&f.stdout).unwrap();
    let codes: BTreeMap<String, i64> = json["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                format!(
                    "{}/{}",
                    t["namespace"].as_str().unwrap(),
                    t["pod"].as_str().unwrap()
                ),
                t["exit_code"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        codes,
        BTreeMap::from([("pay/api-0".to_string(), 0), ("shop/web-0".to_string(), 6)])
    );
    assert!(
        f.stderr.contains("keyhole: warning: shop: "),
        "{}",
        f.stderr
    );
    let hdf = keyhole_hdf::Execution::from_json_slice(
        &std::fs::read(served.dir.join("hdf.shop.web-0.json")).unwrap(),
    )
    .unwrap();
    let names: Vec<&str> = hdf.profiles.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        ["fleet-test", "keyhole-precheck", "keyhole-postscan"]
    );
    assert!(c.managed_objects().is_empty());
}

/// `--format sarif` with several targets is ONE SARIF document (a code-scanning upload takes
/// one): for a fleet, one run with each rule once, the scanned targets' failures located at
/// them, the failed pod an error notification; for a scan of several pods in one namespace,
/// the same. `--report` with `-l` stays refused (the fleet report is `--fleet-report`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_targets_give_one_sarif_log_and_one_json_array() {
    use crate::precheck_gate::{assert_valid, sarif_schema};

    let (c, served, profile) = small_fleet("fleet-sarif").await;
    let run = async |targets: &[&str]| {
        let mut a: Vec<&str> = vec!["scan"];
        a.extend(targets);
        a.extend([
            "--mode",
            "standard",
            "--format",
            "sarif",
            "--kubeconfig",
            served.kubeconfig.to_str().unwrap(),
            "--audit-log",
            served.audit.to_str().unwrap(),
            "--profile",
            profile.to_str().unwrap(),
        ]);
        finish(served.keyhole(&a, &[]).spawn().unwrap()).await
    };

    let f = run(&["-l", "scan=yes", "-A"]).await;
    assert_eq!(f.code, Some(3), "stderr:\n{}", f.stderr);
    let log: serde_json::Value = serde_json::from_str(&f.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{}", f.stdout));
    assert_valid(sarif_schema(), &log, "the fleet's SARIF log");
    assert_eq!(log["runs"].as_array().unwrap().len(), 1);
    let r = &log["runs"][0];
    let rules: Vec<&str> = r["tool"]["driver"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap())
        .collect();
    let unique: BTreeSet<&str> = rules.iter().copied().collect();
    assert_eq!(unique.len(), rules.len(), "each rule once: {rules:?}");
    assert_eq!(
        r["properties"]["targets"],
        serde_json::json!(["pay/api-1/app", "shop/web-0/app", "pay/api-7"])
    );
    // One run per namespace, each in the audit log.
    let run_ids: Vec<String> = r["properties"]["runIds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(run_ids.len(), 2, "{run_ids:?}");
    let logged: BTreeSet<String> = audit_records(&served.audit)
        .into_iter()
        .map(|x| x.run_id)
        .collect();
    assert!(run_ids.iter().all(|id| logged.contains(id)), "{run_ids:?}");
    let inv = &r["invocations"][0];
    assert_eq!(inv["executionSuccessful"], false);
    let notes = inv["toolExecutionNotifications"].as_array().unwrap();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0]["level"], "error");
    let text = notes[0]["message"]["text"].as_str().unwrap();
    assert!(text.starts_with("pay/api-7: "), "{text}");
    // Every result is located at a scanned target, never at the failed one.
    for res in r["results"].as_array().unwrap() {
        let at = res["locations"][0]["logicalLocations"][0]["fullyQualifiedName"]
            .as_str()
            .unwrap();
        assert!(["pay/api-1/app", "shop/web-0/app"].contains(&at), "{at}");
    }
    assert!(c.managed_objects().is_empty());

    // Two pods of one namespace in one scan: one document too.
    let f = run(&["api-1", "api-7", "-n", "pay"]).await;
    assert_eq!(f.code, Some(3), "stderr:\n{}", f.stderr);
    let log: serde_json::Value = serde_json::from_str(&f.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{}", f.stdout));
    assert_valid(sarif_schema(), &log, "the two pods' SARIF log");
    assert!(!f.stdout.contains("== "), "{}", f.stdout);
    let r = &log["runs"][0];
    assert_eq!(r["invocations"][0]["executionSuccessful"], false);
    assert!(c.managed_objects().is_empty());

    // And `--format json` with several pods and no --out: one JSON array of their HDF, in pod
    // order.
    add_pod(&c, "pay", "api-2", "yes");
    let mut a: Vec<&str> = vec!["scan", "api-2", "api-1", "-n", "pay"];
    a.extend([
        "--mode",
        "standard",
        "--format",
        "json",
        "--kubeconfig",
        served.kubeconfig.to_str().unwrap(),
        "--audit-log",
        served.audit.to_str().unwrap(),
        "--profile",
        profile.to_str().unwrap(),
    ]);
    let f = finish(served.keyhole(&a, &[]).spawn().unwrap()).await;
    assert_eq!(f.code, Some(0), "stderr:\n{}", f.stderr);
    let docs: Vec<keyhole_hdf::Execution> = serde_json::from_str(&f.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON array ({e}):\n{}\nstderr:\n{}",
            f.stdout, f.stderr
        )
    });
    let ids: Vec<Option<&str>> = docs
        .iter()
        .map(|d| d.platform.target_id.as_deref())
        .collect();
    assert_eq!(
        ids,
        [Some("pod/pay/api-1/app"), Some("pod/pay/api-2/app")],
        "{}",
        f.stdout
    );
    assert!(c.managed_objects().is_empty());

    // --report stays a single scan's.
    let report = served.dir.join("r.md");
    let f = run(&["-l", "scan=yes", "-A", "--report", report.to_str().unwrap()]).await;
    assert_eq!(f.code, Some(2), "{}", f.stderr);
    assert!(f.stderr.contains("--fleet-report"), "{}", f.stderr);
}
