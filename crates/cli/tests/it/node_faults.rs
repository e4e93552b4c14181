//! Workflow faults ON THE TEST NODE (`keyhole_testkit::node`, a test double running the fake
//! API server's pods as real runc containers), beside those of `node_scan.rs` (agent image
//! missing, target killed as the scanner is added or before the exec):
//!
//! - the standard workflow's exec session cut mid-stream (`Faults::drop_exec_after`: the
//!   WebSocket closes and the node kills its `runc exec`);
//! - the standard target killed while its one exec runs;
//! - the distroless scanner container killed while it runs.
//!
//! Each is a scan error with the documented exit code 3, no result, every object deleted and
//! verified gone, the audit log ending with that code.

use std::sync::Arc;
use std::time::Instant;

use keyhole_core::ScanMode;
use keyhole_engine::Profile;
use keyhole_testkit::FakeCluster;
use keyhole_testkit::node::{Image, Node};
use serde_json::json;

use crate::cluster_scan::scan_in;
use crate::node_scan::{
    WAIT, assert_failed_clean, freeze_exec, node, pid_of, slow_tree, start_pod, stop_process,
};
use crate::support::{NS, POD};

/// `prod/web-0` running the slow tree's busybox `sleep`, as `uid` when given.
async fn busybox_target(cluster: &FakeCluster, node: &Node, uid: Option<u32>) {
    node.add_image("registry.example/slow", Image::new(slow_tree()).cmd(["sh"]));
    let mut c = json!({"name": "app", "image": "registry.example/slow:1",
        "command": ["sleep", "3600"]});
    if let Some(u) = uid {
        c["securityContext"] = json!({"runAsUser": u, "runAsGroup": u});
    }
    start_pod(cluster, node, json!({"containers": [c]})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standard_on_the_node_with_the_exec_cut_mid_stream_fails_and_leaves_nothing() {
    let (cluster, node) = node();
    busybox_target(&cluster, &node, None).await;
    let pid = pid_of(&node, "app");
    cluster.faults().drop_exec_after(4096);
    let profile = Profile::builtin("container-baseline").unwrap();
    let s = scan_in(&cluster, &profile, ScanMode::Standard).await;
    let e = assert_failed_clean(&s, &cluster);
    eprintln!("exec cut: {e}");
    assert!(e.contains("before the fact script finished"), "{e}");
    assert!(
        e.contains("dropped"),
        "says the connection was dropped: {e}"
    );
    assert_eq!(cluster.execs().len(), 1, "no retry");
    assert_eq!(pid_of(&node, "app"), pid, "the target kept running");
    node.shutdown().expect("the node leaves nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standard_on_the_node_with_the_target_killed_during_the_exec_fails_and_leaves_nothing() {
    let (cluster, node) = node();
    busybox_target(&cluster, &node, None).await;
    let target_pid = pid_of(&node, "app");
    let node = Arc::new(node);
    let killer = {
        let node = node.clone();
        std::thread::spawn(move || {
            let deadline = Instant::now() + WAIT;
            // The exec's shell is running inside the target's PID namespace: stop it there,
            // then kill the container.
            while !freeze_exec(target_pid) {
                assert!(Instant::now() < deadline, "no exec started");
                std::thread::yield_now();
            }
            node.kill_container(NS, POD, "app")
                .expect("the target runs");
        })
    };
    let profile = Profile::builtin("container-baseline").unwrap();
    let s = scan_in(&cluster, &profile, ScanMode::Standard).await;
    killer.join().unwrap();
    let e = assert_failed_clean(&s, &cluster);
    eprintln!("target killed mid-exec: {e}");
    assert!(e.contains("before the fact script finished"), "{e}");
    assert!(!e.contains("no shell"), "misdiagnosed as distroless: {e}");
    assert_eq!(cluster.execs().len(), 1, "no retry");
    Arc::try_unwrap(node)
        .expect("the killer is done")
        .shutdown()
        .expect("the node leaves nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distroless_on_the_node_with_the_scanner_killed_fails_and_leaves_nothing() {
    let (cluster, node) = node();
    busybox_target(&cluster, &node, Some(10001)).await;
    let node = Arc::new(node);
    let killer = {
        let (cluster, node) = (cluster.clone(), node.clone());
        std::thread::spawn(move || {
            let deadline = Instant::now() + WAIT;
            loop {
                let pod: k8s_openapi::api::core::v1::Pod = cluster.object(NS, POD).unwrap();
                let name = pod
                    .spec
                    .and_then(|s| s.ephemeral_containers)
                    .and_then(|v| v.into_iter().next())
                    .map(|c| c.name);
                if let Some(name) = name
                    && let Some(pid) = node.container_pid(NS, POD, &name)
                {
                    // Stopped where it is first, so a fast agent cannot finish before
                    // `runc kill` lands (SIGKILL still ends a stopped process).
                    stop_process(pid);
                    return node.kill_container(NS, POD, &name).is_ok();
                }
                assert!(Instant::now() < deadline, "the scanner never ran");
                std::thread::yield_now();
            }
        })
    };
    let profile = Profile::builtin("container-baseline").unwrap();
    let s = crate::cluster_scan::scan_with(
        &cluster,
        &profile,
        ScanMode::Distroless,
        crate::node_scan::fault_options(),
    )
    .await;
    let killed = killer.join().unwrap();
    assert!(
        killed,
        "the agent ended before it could be killed: this test needs a slower gather"
    );
    let e = assert_failed_clean(&s, &cluster);
    eprintln!("scanner killed: {e}");
    assert!(
        e.contains("exited with 137 (killed: SIGKILL"),
        "SIGKILL's exit code: {e}"
    );
    assert!(!e.ends_with(": "), "an empty reason: {e}");
    assert_eq!(s.outcome.traces.len(), 1, "{:?}", s.outcome.traces);
    Arc::try_unwrap(node)
        .expect("the killer is done")
        .shutdown()
        .expect("the node leaves nothing");
}
