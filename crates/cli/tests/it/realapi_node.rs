//! The cluster workflows end to end against the REAL control plane and its test node
//! (`cargo xtask cluster up` registers `keyhole_testkit::node::RealNode` with the real
//! `kube-apiserver`): the real API server authorizes, admits and proxies keyhole's exec (as
//! SPDY/3.1) and log requests to the node's kubelet endpoint, and the node runs the pods as
//! runc containers. The workflow scenarios are `scenarios.rs`'s, which `node_scan.rs` runs
//! against the fake; here the real server judges them. Then what only a real server shows: the
//! exec stream translation, and graceful deletion confirmed by the node.
//!
//! Run with `cargo xtask realapi`, or after `cargo xtask cluster up`:
//! `eval "$(cargo xtask cluster env)"` then
//! `cargo test -p keyhole-cli --test it realapi_node -- --ignored`. Needs root (the local
//! `--pid` scan reads the container's processes); a missing node or variable fails the test.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use keyhole_cli::session::TlsScopedClients;
use kube::api::Api;
use serde_json::json;

use crate::cluster_scan::require_root;
use crate::realapi::{admin, delete_namespace, eventually, namespace};
use crate::scenarios::{self, POD, Server};

const NODE_ENV: &str = "KEYHOLE_REALAPI_NODE";

/// The registered test node's name; a missing variable fails the test.
fn node_name() -> String {
    std::env::var(NODE_ENV).unwrap_or_else(|_| {
        panic!(
            "{NODE_ENV} is not set: no test node is registered with the control plane (cargo \
             xtask cluster up starts one when run as root)"
        )
    })
}

/// A fresh namespace on the real server, and the scoped clients a real cluster gets (HTTPS,
/// its CA, the minted token); pods are bound to the node when `bind`, else the node binds them
/// with the scheduler's identity.
async fn server(prefix: &str, bind: bool) -> Server {
    let (admin, endpoint) = admin().await;
    let ns = namespace(&admin, prefix, false).await;
    Server {
        admin,
        endpoint: endpoint.clone(),
        scoped: Arc::new(TlsScopedClients {
            cluster: endpoint,
            namespace: ns.clone(),
        }),
        namespace: ns,
        node: bind.then(node_name),
    }
}

fn busybox() -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": POD},
        "spec": {"containers": [{"name": "app", "image": "busybox:1.36",
            "command": ["sleep", "3600"]}]},
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real control plane and its node: run cargo xtask realapi"]
async fn realapi_node_standard_scan_gives_the_local_pid_hdf_and_changes_nothing() {
    require_root();
    let s = server("node-std", true).await;
    scenarios::standard(&s).await;
    delete_namespace(&s.admin, &s.namespace).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real control plane and its node: run cargo xtask realapi"]
async fn realapi_node_distroless_scan_runs_the_agent_as_the_target_uid_and_gives_the_local_pid_hdf()
{
    require_root();
    let s = server("node-dl", true).await;
    scenarios::distroless(&s).await;
    delete_namespace(&s.admin, &s.namespace).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real control plane and its node: run cargo xtask realapi"]
async fn realapi_node_auto_falls_back_to_distroless_when_the_target_has_no_shell() {
    require_root();
    let s = server("node-auto", true).await;
    scenarios::auto_without_a_shell(&s).await;
    delete_namespace(&s.admin, &s.namespace).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real control plane and its node: run cargo xtask realapi"]
async fn realapi_node_sidecar_scan_reads_the_sidecars_log_and_gives_the_local_pid_hdf() {
    require_root();
    // The injected pod names no node: the node binds it with the scheduler's identity.
    let s = server("node-sc", false).await;
    scenarios::sidecar(&s).await;
    let bound = s.pod().await.spec.unwrap().node_name;
    assert_eq!(bound.as_deref(), Some(node_name().as_str()));
    delete_namespace(&s.admin, &s.namespace).await;
}

/// A process's stdio and exit code through the real API server to the node and back: the
/// client's WebSocket (v5) is translated by the API server into SPDY/3.1 streams toward the
/// node's kubelet endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real control plane and its node: run cargo xtask realapi"]
async fn realapi_node_exec_streams_stdin_stdout_stderr_and_the_exit_code() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let s = server("node-exec", true).await;
    s.start(busybox()).await;
    let (admin, ns) = (s.admin.clone(), s.namespace.clone());
    let pods: Api<Pod> = Api::namespaced(admin.clone(), &ns);
    let ap = kube::api::AttachParams::default()
        .container("app")
        .stdin(true)
        .stdout(true)
        .stderr(true);
    let mut p = pods
        .exec(
            POD,
            ["sh", "-c", "tr a-z A-Z; echo to-stderr >&2; exit 3"],
            &ap,
        )
        .await
        .unwrap();
    let mut stdin = p.stdin().unwrap();
    // More than one SPDY data frame each way (32 KiB chunks).
    let input = "abcdefgh\n".repeat(20_000);
    let (mut out, mut err) = (p.stdout().unwrap(), p.stderr().unwrap());
    let status = p.take_status().unwrap();
    let writer = tokio::spawn(async move {
        stdin.write_all(input.as_bytes()).await.unwrap();
        stdin.shutdown().await.unwrap();
    });
    let (mut o, mut e) = (String::new(), String::new());
    let (ro, re) = tokio::join!(out.read_to_string(&mut o), err.read_to_string(&mut e));
    ro.unwrap();
    re.unwrap();
    writer.await.unwrap();
    assert_eq!(o, "ABCDEFGH\n".repeat(20_000));
    assert_eq!(e, "to-stderr\n");
    let status = status.await.expect("an exit Status");
    assert_eq!(
        status.reason.as_deref(),
        Some("NonZeroExitCode"),
        "{status:?}"
    );
    let causes = status.details.and_then(|d| d.causes).unwrap_or_default();
    assert!(
        causes
            .iter()
            .any(|c| c.reason.as_deref() == Some("ExitCode") && c.message.as_deref() == Some("3")),
        "{causes:?}"
    );
    p.join().await.unwrap();
    delete_namespace(&admin, &ns).await;
}

/// Deleting a pod on the real server: the node stops its containers, then confirms the
/// deletion (the API server keeps a gracefully deleted pod until its node does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real control plane and its node: run cargo xtask realapi"]
async fn realapi_node_a_deleted_pod_loses_its_containers_then_disappears() {
    // `runc state` answers only root: as a user, "gone" would be every container.
    crate::cluster_scan::require_root();
    let s = server("node-del", true).await;
    let pod = s.start(busybox()).await;
    let (admin, ns) = (s.admin.clone(), s.namespace.clone());
    let id = pod.status.unwrap().container_statuses.unwrap()[0]
        .container_id
        .clone()
        .unwrap();
    let id = id.trim_start_matches("runc://").to_owned();
    let runc_has = |id: &str| {
        std::process::Command::new("runc")
            .args(["state", id])
            .output()
            .expect("runc runs")
            .status
            .success()
    };
    assert!(runc_has(&id), "runc runs {id} before the pod is deleted");
    let pods: Api<Pod> = Api::namespaced(admin.clone(), &ns);
    pods.delete(POD, &kube::api::DeleteParams::default())
        .await
        .unwrap();
    eventually(
        Duration::from_secs(30),
        "the pod is gone from the API server",
        || async { pods.get_opt(POD).await.unwrap().is_none() },
    )
    .await;
    assert!(!runc_has(&id), "runc still has {id}");
    delete_namespace(&admin, &ns).await;
}
