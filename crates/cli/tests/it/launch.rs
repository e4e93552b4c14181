//! `keyhole scan --mode sidecar --launch IMAGE` through the library
//! (`keyhole_cli::cluster_scan::scan_cluster_launch`): the scan pod is created behind its
//! NetworkPolicy — applied first, read back, verified — scanned through its sidecar's log with
//! the scoped identity, and deleted with everything else.
//!
//! On the fake with a stand-in kubelet (a test double answering the scan pod with a real facts
//! frame), then on the runc test node with the real agent sidecar, and with an image the node
//! cannot pull.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use keyhole_audit::AuditLog;
use keyhole_cli::cluster_scan::{ScanOutcome, ScanRequest, scan_cluster_launch};
use keyhole_cli::launch::Launch;
use keyhole_cli::session::{Audit, SessionSpec};
use keyhole_core::ScanMode;
use keyhole_engine::{FactSource as _, Inputs, LocalRoot, Profile, Waivers};
use keyhole_testkit::FakeCluster;
use keyhole_testkit::node::{Image, rootfs};
use serde_json::json;

use crate::cluster_scan::is_scoped;
use crate::support::{FakeScoped, NS, POD, audit_records, endpoint, fast_policy, run, scratch};

const APP: &str = "registry.example/shop/web:1.4.2";

fn launch(scanner: &str, wait: Duration) -> Launch {
    Launch {
        image: keyhole_scanners::ImageRef::parse(APP).unwrap(),
        scanner: keyhole_scanners::ImageRef::parse(scanner).unwrap(),
        uid: 10001,
        gid: Some(10001),
        poll: Duration::from_millis(20),
        wait,
    }
}

async fn scan(
    cluster: &FakeCluster,
    l: Launch,
) -> (ScanOutcome, Vec<keyhole_audit::Record>, keyhole_core::Run) {
    let dir = scratch("launch-audit");
    let log_path = dir.join("audit.jsonl");
    let run = run(ScanMode::Sidecar);
    let audit = Audit::new(AuditLog::open(&log_path).unwrap(), run.id().as_str());
    let profile = Profile::builtin("container-baseline").unwrap();
    let request = ScanRequest {
        run: run.clone(),
        container: None,
        profile: profile.clone(),
        inputs: Inputs::defaults(&profile),
        waivers: Waivers::none(),
        session: SessionSpec {
            run: run.clone(),
            cluster: endpoint(cluster),
            audiences: vec![],
            command: vec![],
            work: None,
            policy: keyhole_cleanup::RetryPolicy {
                call_timeout: Duration::from_secs(20),
                ..fast_policy()
            },
        },
        distroless: None,
        max_age: Duration::from_secs(3600),
    };
    let outcome = scan_cluster_launch(
        cluster.client_admin(),
        request,
        l,
        FakeScoped::new(cluster),
        audit,
    )
    .await
    .expect("the scan starts");
    (outcome, audit_records(&log_path), run)
}

/// What the stand-in kubelet saw: the NetworkPolicy present when the pod first appeared, and
/// the pod.
struct Seen {
    policy_first: Option<NetworkPolicy>,
    pod: Pod,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launch_on_the_fake_creates_the_pod_behind_its_policy_reads_its_log_and_deletes_both() {
    let cluster = FakeCluster::new();
    cluster.create_namespace(NS);
    // A real frame: the engine's facts of a busybox root for the profile's plan.
    let root = scratch("launch-root");
    crate::cluster_scan::rootfs(&root, true);
    let profile = Profile::builtin("container-baseline").unwrap();
    let plan = keyhole_engine::plan(&profile, &Inputs::defaults(&profile));
    let frame = keyhole_engine::encode_facts_frame(
        &LocalRoot::directory(&root).unwrap().gather(&plan),
        Timestamp::now(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let kubelet = {
        let (cluster, stop) = (cluster.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Some(pod) = cluster.object::<Pod>(NS, POD) {
                    let policy_first = cluster.objects::<NetworkPolicy>().into_iter().next();
                    cluster.set_pod_running(NS, POD).unwrap();
                    cluster.set_pod_log(NS, POD, keyhole_scanners::SIDECAR_NAME, &frame);
                    return Some(Seen { policy_first, pod });
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            None
        })
    };
    let (o, records, run) = scan(
        &cluster,
        launch(
            "ghcr.io/keyhole-scanner/keyhole-agent:0.1.0@sha256:2f1b6c0d9a4e7f3b8c5d1e6a9b0c4d7e2f5a8b1c3d6e9f0a2b4c6d8e0f1a3b5c",
            Duration::from_secs(20),
        ),
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    let seen = kubelet.join().unwrap().expect("the scan pod was created");
    assert_eq!(
        o.session.exit_code,
        0,
        "{:?}",
        o.session.error.as_ref().map(ToString::to_string)
    );
    assert_eq!(o.results.len(), 1);
    assert_eq!(o.results[0].target.container, "target");
    assert_eq!(o.results[0].evaluated.unanswered, 0);

    // The policy was there, isolating the pod, before the pod existed (written out by hand).
    let np = seen.policy_first.expect("the NetworkPolicy came first");
    let np = serde_json::to_value(&np).unwrap();
    assert_eq!(np["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    assert!(
        np["spec"]["ingress"].as_array().is_none_or(Vec::is_empty),
        "{np}"
    );
    assert!(
        np["spec"]["egress"].as_array().is_none_or(Vec::is_empty),
        "{np}"
    );
    let pod = serde_json::to_value(&seen.pod).unwrap();
    for (k, v) in np["spec"]["podSelector"]["matchLabels"]
        .as_object()
        .unwrap()
    {
        assert_eq!(
            &pod["metadata"]["labels"][k], v,
            "the policy selects the pod"
        );
    }
    // The scan pod, as the API server got it.
    let spec = &pod["spec"];
    assert_eq!(spec["restartPolicy"], "Never");
    assert_eq!(spec["activeDeadlineSeconds"], 600, "the run's TTL (10m)");
    assert_eq!(spec["shareProcessNamespace"], true);
    assert_eq!(spec["automountServiceAccountToken"], false);
    let names: Vec<&str> = spec["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["target", keyhole_scanners::SIDECAR_NAME]);
    assert_eq!(spec["containers"][0]["image"], APP);
    assert_eq!(spec["containers"][0]["securityContext"]["runAsUser"], 10001);
    assert_eq!(
        pod["metadata"]["ownerReferences"][0]["name"],
        run.object_name().to_string(),
        "owned by the run's ServiceAccount"
    );

    // The calls: the policy created, read back, then the pod — by the user; the scoped
    // identity only read the pod and its log.
    let calls = cluster.calls();
    let at = |method: &str, suffix: &str| {
        calls
            .iter()
            .position(|c| c.method == method && c.path.ends_with(suffix))
            .unwrap_or_else(|| panic!("no {method} …{suffix}"))
    };
    let np_post = at("POST", "/networkpolicies");
    let np_get = calls
        .iter()
        .position(|c| c.method == "GET" && c.path.contains("/networkpolicies/"))
        .expect("the policy is read back");
    let pod_post = at("POST", "/pods");
    assert!(
        np_post < np_get && np_get < pod_post,
        "policy, verified, then pod"
    );
    assert!(!is_scoped(&calls[pod_post].identity));
    for c in calls.iter().filter(|c| is_scoped(&c.identity)) {
        let shape = format!("{} {}", c.verb, c.path);
        assert!(
            shape.ends_with("selfsubjectrulesreviews")
                || shape == format!("get /api/v1/namespaces/{NS}/pods/{POD}")
                || shape == format!("get /api/v1/namespaces/{NS}/pods/{POD}/log"),
            "unexpected scoped call {shape}"
        );
    }
    // Everything deleted with the rest, and the audit log says so.
    assert!(
        cluster.managed_objects().is_empty(),
        "{:?}",
        cluster.managed_objects()
    );
    assert!(cluster.object::<Pod>(NS, POD).is_none());
    let created = crate::support::audited_objects(&records, true);
    let deleted = crate::support::audited_objects(&records, false);
    for kind in ["NetworkPolicy", "Pod"] {
        assert!(created.iter().any(|c| c.contains(kind)), "{created:?}");
        assert!(deleted.iter().any(|c| c.contains(kind)), "{deleted:?}");
    }
    crate::support::clean_ending(&records);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launch_on_the_node_scans_a_real_image_and_leaves_nothing() {
    let (cluster, node) = crate::node_scan::node();
    let busybox = rootfs::busybox(&rootfs::cache_dir().join("busybox")).unwrap();
    node.add_image(
        "registry.example/shop/web",
        Image::new(busybox).cmd(["sleep", "3600"]),
    );
    let (o, records, _) = scan(
        &cluster,
        launch(
            &format!(
                "{}:0.1.0@sha256:2f1b6c0d9a4e7f3b8c5d1e6a9b0c4d7e2f5a8b1c3d6e9f0a2b4c6d8e0f1a3b5c",
                crate::node_scan::AGENT_IMAGE
            ),
            Duration::from_secs(60),
        ),
    )
    .await;
    assert_eq!(
        o.session.exit_code,
        0,
        "{:?}",
        o.session.error.as_ref().map(ToString::to_string)
    );
    let r = &o.results[0];
    assert_eq!(r.evaluated.unanswered, 0);
    // The agent read the image's files (a busybox tree), not nothing.
    let answered_ok = r.facts.iter().filter(|(_, a)| a.is_ok()).count();
    assert!(
        answered_ok > 10,
        "the facts are the image's: {answered_ok} answered"
    );
    assert!(cluster.execs().is_empty(), "no exec");
    assert!(
        cluster.managed_objects().is_empty(),
        "{:?}",
        cluster.managed_objects()
    );
    // The node stops the deleted pod's containers on its next pass.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while node.container_pid(NS, POD, "target").is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "the scan pod's containers still run after its deletion"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    crate::support::clean_ending(&records);
    node.shutdown().expect("the node leaves nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launch_of_an_image_the_node_cannot_pull_fails_fast_and_leaves_nothing() {
    let (cluster, node) = crate::node_scan::node();
    let started = std::time::Instant::now();
    let (o, records, _) = scan(
        &cluster,
        launch(
            &format!("{}:0.1.0", crate::node_scan::AGENT_IMAGE),
            Duration::from_secs(60),
        ),
    )
    .await;
    assert_eq!(o.session.exit_code, keyhole_cli::session::EXIT_SETUP_FAILED);
    let e = o.session.error.as_ref().unwrap().to_string();
    assert!(e.contains("ErrImagePull"), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "waited for the deadline: {e}"
    );
    assert!(o.results.is_empty());
    assert!(
        cluster.managed_objects().is_empty(),
        "{:?}",
        cluster.managed_objects()
    );
    crate::support::clean_ending(&records);
    node.shutdown().expect("the node leaves nothing");
}

/// The binary refuses a `--launch` it cannot honour before reading any kubeconfig, exit 2.
#[test]
fn launch_arguments_are_checked_before_anything_is_sent() {
    for (args, want) in [
        (
            &["--mode", "standard", "--target-uid", "1"][..],
            "--mode sidecar",
        ),
        (&["--mode", "sidecar"][..], "--target-uid"),
    ] {
        let mut all = vec!["scan", "web-0", "-n", "prod", "--launch", APP];
        all.extend_from_slice(args);
        let r = crate::keyhole(&all, None);
        assert_eq!(r.code, 2, "{all:?}: {}", r.stderr);
        assert!(r.stderr.contains(want), "{all:?}: {}", r.stderr);
    }
    let r = crate::keyhole(
        &[
            "scan",
            "web-0",
            "web-1",
            "-n",
            "prod",
            "--mode",
            "sidecar",
            "--launch",
            APP,
            "--target-uid",
            "1",
        ],
        None,
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("exactly one TARGET"), "{}", r.stderr);
}
