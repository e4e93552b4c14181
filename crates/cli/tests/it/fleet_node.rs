//! The fleet scan ON THE TEST NODE (`keyhole_testkit::node`): 50 busybox pods over 3
//! namespaces run as real runc containers (`sleep` as PID 1), scanned in standard mode with a
//! bounded concurrency through the library entry point (`keyhole_cli::fleet::scan_fleet`), so
//! every exec is a real `runc exec` of the fact script. One pod is killed MID-SCAN: a watcher
//! waits until the exec's shell runs inside that container's PID namespace, stops it there
//! (so the script cannot finish first on a fast machine), then kills the container. Expected: 49 results with their HDF, one clear error naming the killed pod, every
//! session torn down and verified (the audit log says so too), nothing keyhole manages left,
//! each namespace's Role pinning exactly that namespace's pods (written out by hand below), and
//! no runc container of the node left once it stops.
//!
//! Needs root, `runc` and `busybox-static` (the node's tree); a missing tool fails the test.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::rbac::v1::Role;
use keyhole_audit::AuditLog;
use keyhole_cli::fleet::{FleetRequest, Scope, resolve_fleet, scan_fleet};
use keyhole_cli::session::{Audit, ScopedClients};
use keyhole_core::{LabelSelector, Namespace, ScanMode, Ttl};
use keyhole_engine::{Inputs, Profile, Waivers};
use keyhole_testkit::FakeCluster;
use keyhole_testkit::node::{Image, Images, Node, NodeOptions, rootfs};

use crate::cluster_scan::require_root;
use crate::fleet::{every_run_cleaned_up, targets};
use crate::node_scan::{freeze_exec, slow_tree};
use crate::support::{FakeScoped, audit_records, endpoint, fast_policy, scratch};

/// The pod killed mid-scan.
const FAILING: (&str, &str) = ("pay", "api-7");
/// Sessions and pods gathered at once: bounded, and below the 50 pods (2 shared cores).
const CONCURRENCY: usize = 3;
const WAIT: Duration = Duration::from_secs(120);

/// The node's images: the busybox tree, and for the pod killed mid-scan the same tree with
/// 20 000 more files, so its gather lasts long enough for the watcher to see it on any machine
/// (the plain tree's script can finish within one of the watcher's polls).
fn images() -> Images {
    let busybox = rootfs::busybox(&rootfs::cache_dir().join("busybox")).expect("the busybox tree");
    Images::new()
        .with("busybox:1.36", Image::new(busybox).cmd(["sh"]))
        .with("busybox-slow:1.36", Image::new(slow_tree()).cmd(["sh"]))
}

/// Creates `ns/name`, a busybox container whose PID 1 is `sleep` (the node binds it).
fn add_pod(c: &FakeCluster, ns: &str, name: &str) {
    let image = if (ns, name) == FAILING {
        "busybox-slow:1.36"
    } else {
        "busybox:1.36"
    };
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"scan": "yes"}},
        "spec": {"automountServiceAccountToken": false,
                 "containers": [{"name": "app", "image": image,
                                 "command": ["sleep", "3600"]}]},
    }))
    .unwrap();
    c.insert(&pod).unwrap();
}

/// One Role's grants: (resource, verb, resourceNames).
type Grants = BTreeSet<(String, String, Vec<String>)>;

/// Every keyhole Role present now: namespace -> name -> grants, merged into `seen`.
fn record_roles(c: &FakeCluster, seen: &Mutex<BTreeMap<String, BTreeMap<String, Grants>>>) {
    let mut seen = seen.lock().unwrap();
    for r in c.objects::<Role>() {
        let ns = r.metadata.namespace.clone().unwrap_or_default();
        let name = r.metadata.name.clone().unwrap_or_default();
        let entry = seen.entry(ns).or_default().entry(name).or_default();
        for rule in r.rules.unwrap_or_default() {
            for res in rule.resources.clone().unwrap_or_default() {
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

/// The runc containers whose id starts with `prefix`.
fn runc_containers(prefix: &str) -> Vec<String> {
    let out = std::process::Command::new("runc")
        .args(["list", "-q"])
        .output()
        .expect("runc runs (apt-get install -y runc)");
    assert!(out.status.success(), "runc list: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fleet_on_the_node_fifty_pods_one_killed_mid_scan_forty_nine_results_nothing_left() {
    require_root();
    let started = Instant::now();
    let c = FakeCluster::new();
    for (ns, pods) in targets() {
        c.create_namespace(ns);
        for pod in pods {
            add_pod(&c, ns, pod);
        }
    }
    let node = Arc::new(
        Node::start(&c, images(), NodeOptions::default())
            .unwrap_or_else(|e| panic!("the node cannot start: {e}")),
    );
    let prefix = node.id_prefix().to_owned();
    for (ns, pods) in targets() {
        for pod in pods {
            node.wait_running(ns, pod, WAIT)
                .await
                .unwrap_or_else(|e| panic!("{ns}/{pod} does not run: {e}"));
        }
    }
    let up = started.elapsed();
    let init = node
        .container_pid(FAILING.0, FAILING.1, "app")
        .expect("the failing pod's container runs");

    // The watcher: records every keyhole Role while the fleet runs, and kills the failing
    // pod's container once its exec's shell runs in it (the fact script is then mid-way).
    let stop = Arc::new(AtomicBool::new(false));
    let roles: Arc<Mutex<BTreeMap<String, BTreeMap<String, Grants>>>> = Arc::default();
    let watcher = {
        let (c, node, stop, roles) = (c.clone(), node.clone(), stop.clone(), roles.clone());
        std::thread::spawn(move || {
            let mut killed = false;
            while !stop.load(Ordering::SeqCst) {
                record_roles(&c, &roles);
                if !killed && freeze_exec(init) {
                    node.kill_container(FAILING.0, FAILING.1, "app")
                        .expect("the failing pod still runs when its exec begins");
                    killed = true;
                }
                std::thread::sleep(Duration::from_micros(500));
            }
            killed
        })
    };

    let user = c.client_admin();
    let selector = LabelSelector::parse("scan=yes").unwrap();
    let resolved = resolve_fleet(&user, &Scope::All, &selector).await.unwrap();
    assert_eq!(resolved.values().map(Vec::len).sum::<usize>(), 50);
    let profile = Profile::builtin("container-baseline").unwrap();
    let request = FleetRequest {
        targets: resolved,
        mode: ScanMode::Standard,
        ttl: Ttl::default(),
        container: None,
        inputs: Inputs::defaults(&profile),
        profile,
        waivers: Waivers::none(),
        cluster: endpoint(&c),
        audiences: vec![],
        policy: keyhole_cleanup::RetryPolicy {
            call_timeout: Duration::from_secs(30),
            ..fast_policy()
        },
        distroless: None,
        max_age: Duration::from_secs(3600),
        concurrency: CONCURRENCY,
        precheck: Some(keyhole_precheck::Policy::builtin()),
    };
    let dir = scratch("fleet-node-audit");
    let log_path = dir.join("audit.jsonl");
    let audit = Audit::new(AuditLog::open(&log_path).unwrap(), "fleet-node");
    let scoped = {
        let c = c.clone();
        Arc::new(move |_: &Namespace| FakeScoped::new(&c) as Arc<dyn ScopedClients>)
    };
    let scan_started = Instant::now();
    let o = scan_fleet(user, request, scoped, audit, None).await;
    let scanned_in = scan_started.elapsed();
    stop.store(true, Ordering::SeqCst);
    let killed = watcher.join().expect("the watcher ends");
    assert!(
        killed,
        "the failing pod's exec was never seen running: nothing was killed mid-scan"
    );

    // 49 results with their HDF; one clear error naming the killed pod.
    assert_eq!(o.targets.len(), 50);
    let mut errors = Vec::new();
    for t in &o.targets {
        let key = (t.namespace.as_str(), t.pod.as_str());
        if key == FAILING {
            assert!(t.result.is_none(), "a result from a killed container");
            assert_eq!(t.exit_code, 3);
            let e = t.error.clone().expect("an error");
            eprintln!("the killed pod's error: {e}");
            assert!(e.contains("pay/api-7"), "the error names the pod: {e}");
            // Mid-scan: the exec ran and its script was cut off, not refused up front.
            assert!(e.contains("before the fact script finished"), "{e}");
            errors.push(e);
            continue;
        }
        assert_eq!(t.exit_code, 0, "{key:?}: {:?}", t.error);
        assert!(t.error.is_none(), "{key:?}: {:?}", t.error);
        let r = t.result.as_ref().expect("a result");
        assert_eq!(r.target.container, "app");
        assert_eq!(r.evaluated.unanswered, 0, "{key:?}");
        let hdf = serde_json::to_value(&r.evaluated.execution).unwrap();
        let controls = hdf["profiles"][0]["controls"]
            .as_array()
            .unwrap_or_else(|| panic!("{key:?}: no controls in the HDF"));
        assert!(!controls.is_empty(), "{key:?}: an empty HDF");
        assert!(
            controls
                .iter()
                .all(|ctl| ctl["results"].as_array().is_some_and(|r| !r.is_empty())),
            "{key:?}: a control without results"
        );
    }
    assert_eq!(errors.len(), 1);
    assert_eq!(o.exit_code(), 3);
    // The kill is what the node reports: the container ended with SIGKILL's code.
    let code = node
        .wait_terminated(FAILING.0, FAILING.1, "app", WAIT)
        .await
        .unwrap();
    assert_eq!(code, 137);
    // Each pod was exec'd exactly once, the killed one included (it was mid-scan).
    let mut execs: Vec<(String, String)> = c
        .execs()
        .into_iter()
        .map(|e| (e.namespace, e.pod))
        .collect();
    execs.sort();
    let mut want: Vec<(String, String)> = targets()
        .into_iter()
        .flat_map(|(ns, pods)| pods.iter().map(move |p| (ns.to_owned(), (*p).to_owned())))
        .collect();
    want.sort();
    assert_eq!(execs, want);

    // Every session torn down and verified; nothing keyhole manages left.
    assert_eq!(o.sessions.len(), 3);
    for s in &o.sessions {
        assert!(
            s.outcome.cleanup.is_clean(),
            "{}: {:?}",
            s.namespace,
            s.outcome.cleanup
        );
    }
    assert!(o.all_clean());
    assert!(c.managed_objects().is_empty(), "{:?}", c.managed_objects());
    let ended = every_run_cleaned_up(&audit_records(&log_path));
    assert_eq!(ended.len(), 3);
    for s in &o.sessions {
        let want = if s.namespace.as_str() == FAILING.0 {
            3
        } else {
            0
        };
        assert_eq!(ended[s.run_id.as_str()], want, "{}", s.namespace);
    }

    // Least privilege, written out by hand: each namespace had one Role, granting pods get and
    // pods/exec create+get on exactly that namespace's pods.
    let roles = roles.lock().unwrap();
    assert_eq!(
        roles.keys().map(String::as_str).collect::<Vec<_>>(),
        ["ops", "pay", "shop"]
    );
    for (ns, pods) in targets() {
        let by_name = &roles[ns];
        assert_eq!(by_name.len(), 1, "{ns}: one Role, one session");
        let names: Vec<String> = pods.iter().map(ToString::to_string).collect();
        let want: Grants = [
            ("pods", "get"),
            ("pods/exec", "create"),
            ("pods/exec", "get"),
        ]
        .into_iter()
        .map(|(r, v)| (r.to_owned(), v.to_owned(), names.clone()))
        .collect();
        assert_eq!(by_name.values().next().unwrap(), &want, "{ns}");
    }

    // The node stops and leaves no runc container behind.
    Arc::try_unwrap(node)
        .expect("the watcher is done")
        .shutdown()
        .expect("the node leaves nothing");
    assert_eq!(runc_containers(&prefix), Vec::<String>::new());
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!(
        "fleet on the node: pods up in {up:?}, fleet scanned in {scanned_in:?}, total {:?}",
        started.elapsed()
    );
}
