//! The distroless scanner's identity ON THE TEST NODE (`keyhole_testkit::node`, a test double
//! running the fake API server's pods as real runc containers):
//!
//! - a target whose UID only its image says (the pod spec does not): the UID probe reads it
//!   from `/proc/1/status` as `nobody` with no capabilities, and the scan succeeds as that UID;
//! - a root target with runtime-default capabilities (`--scanner-as-target-root`): the scanner
//!   gets exactly the target's capability set — its runc config says so, and a process started
//!   with the scanner's securityContext has the target's `CapEff` in its `/proc/self/status`.
//!
//! Needs root, `runc`, `busybox-static` and `rustc` (see `node_scan.rs`).

use k8s_openapi::api::core::v1::{EphemeralContainer, Pod};
use keyhole_core::ScanMode;
use keyhole_engine::Profile;
use keyhole_testkit::node::{Image, rootfs};
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use crate::cluster_scan::{distroless_options, scan_with};
use crate::node_scan::{
    WAIT, assert_ok, node, oci_config, pid_of, same_as_local_pid_scan, start_pod,
};
use crate::support::{NS, POD};

/// The ephemeral containers of `prod/web-0`, in the order they were added.
fn ephemeral(cluster: &keyhole_testkit::FakeCluster) -> Vec<EphemeralContainer> {
    let pod: Pod = cluster.object(NS, POD).unwrap();
    pod.spec
        .and_then(|s| s.ephemeral_containers)
        .unwrap_or_default()
}

/// The `CapEff:` value of a `/proc/PID/status` text.
fn cap_eff(status: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .unwrap_or_else(|| panic!("no CapEff in {status:?}"))
        .trim()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distroless_on_the_node_learns_a_uid_only_the_image_says_with_a_probe() {
    let (cluster, node) = node();
    let distroless = rootfs::distroless(&rootfs::cache_dir().join("distroless")).unwrap();
    node.add_image(
        "registry.example/distroless-user",
        Image::new(distroless)
            .entrypoint(["/pause"])
            .user(10001, 10001),
    );
    start_pod(
        &cluster,
        &node,
        json!({"containers": [{"name": "app", "image": "registry.example/distroless-user:1"}]}),
    )
    .await;
    let pid = pid_of(&node, "app");
    let profile = Profile::builtin("container-baseline").unwrap();
    // No --target-uid: the pod spec says nothing, the probe must find 10001.
    let s = scan_with(
        &cluster,
        &profile,
        ScanMode::Distroless,
        distroless_options(),
    )
    .await;
    assert_ok(&s);
    let o = &s.outcome;
    same_as_local_pid_scan(
        &o.results[0].facts,
        &o.results[0].evaluated,
        pid,
        Some(10001),
    );
    let eph = ephemeral(&cluster);
    assert_eq!(eph.len(), 2, "the probe, then the scanner");
    assert!(eph[0].name.ends_with("-probe"), "{}", eph[0].name);
    // As runc ran them: the probe as nobody with nothing, the scanner as the target.
    let probe = oci_config(&node, &eph[0].name);
    assert_eq!(probe["process"]["user"]["uid"], 65534, "{probe}");
    assert_eq!(probe["process"]["noNewPrivileges"], true);
    let scanner = oci_config(&node, &eph[1].name);
    assert_eq!(scanner["process"]["user"]["uid"], 10001, "{scanner}");
    assert_eq!(scanner["process"]["user"]["gid"], 10001, "{scanner}");
    for cfg in [&probe, &scanner] {
        for set in ["bounding", "effective", "permitted"] {
            let caps = &cfg["process"]["capabilities"][set];
            assert!(
                caps.as_array().is_some_and(Vec::is_empty),
                "{set} capabilities: {caps}"
            );
        }
    }
    for c in &eph {
        assert_eq!(
            node.wait_terminated(NS, POD, &c.name, WAIT).await.unwrap(),
            0,
            "{}",
            c.name
        );
    }
    assert_eq!(
        o.traces.len(),
        2,
        "both stay and are reported: {:?}",
        o.traces
    );
    assert!(o.traces[0].contains("UID probe"), "{:?}", o.traces);
    assert!(cluster.managed_objects().is_empty());
    node.shutdown().expect("the node leaves nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distroless_on_the_node_a_root_target_is_scanned_with_exactly_its_capabilities() {
    let (cluster, node) = node();
    // Root with the runtime's default set: the spec does not settle it, so it is probed.
    start_pod(
        &cluster,
        &node,
        json!({"containers": [{"name": "app", "image": "busybox:1.36",
            "command": ["sleep", "3600"]}]}),
    )
    .await;
    let pid = pid_of(&node, "app");
    let target_status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let target_caps = cap_eff(&target_status);
    assert_ne!(
        target_caps, "0000000000000000",
        "the target holds capabilities"
    );
    let profile = Profile::builtin("container-baseline").unwrap();
    let opts = keyhole_workflows::DistrolessOptions {
        allow_root: true,
        ..distroless_options()
    };
    let s = scan_with(&cluster, &profile, ScanMode::Distroless, opts).await;
    assert_ok(&s);
    let o = &s.outcome;
    // Read as root with the target's set, the facts are the local root scan's.
    same_as_local_pid_scan(&o.results[0].facts, &o.results[0].evaluated, pid, None);

    let eph = ephemeral(&cluster);
    assert_eq!(eph.len(), 2, "the probe (capabilities), then the scanner");
    let scanner = &eph[1];
    let cfg = oci_config(&node, &scanner.name);
    assert_eq!(cfg["process"]["user"]["uid"], 0, "{cfg}");
    assert_eq!(cfg["process"]["noNewPrivileges"], true, "{cfg}");
    // The target's own runc config, as the node ran it: the scanner's sets are exactly its.
    let target_cfg = oci_config(&node, "app");
    for set in ["bounding", "effective", "permitted"] {
        let mut want: Vec<String> =
            serde_json::from_value(target_cfg["process"]["capabilities"][set].clone()).unwrap();
        let mut got: Vec<String> =
            serde_json::from_value(cfg["process"]["capabilities"][set].clone()).unwrap();
        want.sort();
        got.sort();
        assert!(!want.is_empty());
        assert_eq!(got, want, "{set}");
    }

    // A process with the scanner's exact securityContext (busybox, to print its own status):
    // its CapEff is the target's.
    let twin = EphemeralContainer {
        name: "twin".into(),
        image: Some("busybox:1.36".into()),
        command: Some(vec![
            "sh".into(),
            "-c".into(),
            "cat /proc/self/status".into(),
        ]),
        target_container_name: Some("app".into()),
        security_context: scanner.security_context.clone(),
        ..EphemeralContainer::default()
    };
    let api: Api<Pod> = Api::namespaced(cluster.client_admin(), NS);
    api.patch_ephemeral_containers(
        POD,
        &PatchParams::default(),
        &Patch::Strategic(json!({"spec": {"ephemeralContainers": [twin]}})),
    )
    .await
    .unwrap();
    assert_eq!(
        node.wait_terminated(NS, POD, "twin", WAIT).await.unwrap(),
        0
    );
    let log = std::fs::read_to_string(node.container_log_path(NS, POD, "twin").unwrap()).unwrap();
    assert_eq!(
        cap_eff(&log),
        target_caps,
        "the scanner's CapEff is the target's"
    );
    assert!(log.contains("NoNewPrivs:\t1"), "{log}");
    assert!(cluster.managed_objects().is_empty());
    node.shutdown().expect("the node leaves nothing");
}
