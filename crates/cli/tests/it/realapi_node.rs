//! The cluster workflows end to end against the REAL control plane and its test node
//! (`cargo xtask cluster up` registers `keyhole_testkit::node::RealNode` with the real
//! `kube-apiserver`): the real API server authorizes, admits and proxies keyhole's exec and log
//! requests to the node's kubelet endpoint, and the node runs the pods as runc containers. Each
//! scenario is the one `node_scan.rs` runs against the fake (same library entry point, same
//! comparison with the local `--pid` scan of the same container), with the real server judging.
//!
//! Run with `cargo xtask realapi`, or after `cargo xtask cluster up`:
//! `eval "$(cargo xtask cluster env)"` then
//! `cargo test -p keyhole-cli --test it realapi_node -- --ignored`. Needs root (the local
//! `--pid` scan reads the container's processes); a missing node or variable fails the test.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use keyhole_cli::session::TlsScopedClients;
use keyhole_core::ScanMode;
use keyhole_engine::Profile;
use kube::Client;
use kube::api::{Api, LogParams, PostParams};
use serde_json::json;

use crate::cluster_scan::{Scanned, distroless_options, require_root, scan_against};
use crate::node_scan::{
    assert_ok, distroless_target, injected_pod, root_state, same_as_local_pid_scan,
};
use crate::realapi::{admin, delete_namespace, eventually, managed, namespace, new_run};

const NODE_ENV: &str = "KEYHOLE_REALAPI_NODE";
const POD: &str = "web-0";

/// The registered test node's name; a missing variable fails the test.
fn node_name() -> String {
    std::env::var(NODE_ENV).unwrap_or_else(|_| {
        panic!(
            "{NODE_ENV} is not set: no test node is registered with the control plane (cargo \
             xtask cluster up starts one when run as root)"
        )
    })
}

/// Creates `ns/web-0` from `spec`, bound to the node, and waits until every container runs;
/// returns the pod.
async fn start_pod(admin: &Client, ns: &str, mut spec: serde_json::Value) -> Pod {
    spec["nodeName"] = json!(node_name());
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": POD, "namespace": ns},
        "spec": spec,
    }))
    .unwrap();
    create_and_wait(admin, pod).await
}

/// Creates `pod` (no ServiceAccount token: the node mounts no volumes) and waits until every
/// container runs on the node; returns it.
async fn create_and_wait(admin: &Client, mut pod: Pod) -> Pod {
    let ns = pod.metadata.namespace.clone().unwrap();
    pod.spec.as_mut().unwrap().automount_service_account_token = Some(false);
    let pods: Api<Pod> = Api::namespaced(admin.clone(), &ns);
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let p = pods.get(POD).await.unwrap();
        let st = p.status.clone().unwrap_or_default();
        let running = st.phase.as_deref() == Some("Running")
            && st
                .container_statuses
                .iter()
                .flatten()
                .all(|c| c.state.as_ref().and_then(|s| s.running.as_ref()).is_some());
        if running {
            return p;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the target pod does not run on the node: {st:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The host PID of a running container of the pod, from its status' `runc://ID` through
/// `runc state` (the node is another process: its runc containers are this machine's).
fn pid_of(pod: &Pod, container: &str) -> u32 {
    let id = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.name == container))
        .and_then(|c| c.container_id.clone())
        .unwrap_or_else(|| panic!("container {container} has no containerID"));
    let id = id
        .strip_prefix("runc://")
        .unwrap_or_else(|| panic!("not a runc container: {id}"));
    let out = std::process::Command::new("runc")
        .args(["state", id])
        .output()
        .expect("runc runs (apt-get install -y runc)");
    assert!(out.status.success(), "runc state {id}: {out:?}");
    let state: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    u32::try_from(state["pid"].as_u64().unwrap()).unwrap()
}

/// Runs one scan of `ns/web-0` in `mode` as the admin, with the scoped clients a real cluster
/// gets (HTTPS, the cluster's CA, the minted token).
async fn scan(admin: &Client, ns: &str, mode: ScanMode) -> Scanned {
    let (_, endpoint) = crate::realapi::admin().await;
    let profile = Profile::builtin("container-baseline").unwrap();
    scan_against(
        admin.clone(),
        endpoint.clone(),
        Arc::new(TlsScopedClients {
            cluster: endpoint,
            namespace: ns.to_owned(),
        }),
        new_run(ns, mode),
        &profile,
        distroless_options(),
    )
    .await
}

/// After the scan, the run left nothing keyhole manages in the namespace (the real server's
/// answer, not the scan's own).
async fn nothing_left(admin: &Client, ns: &str) {
    eventually(
        Duration::from_secs(30),
        "keyhole's objects are gone from the namespace",
        || async { managed(admin, ns).await.is_empty() },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real control plane and its node: run cargo xtask realapi"]
async fn realapi_node_standard_scan_gives_the_local_pid_hdf_and_changes_nothing() {
    require_root();
    let (admin, _) = admin().await;
    let ns = namespace(&admin, "node-std", false).await;
    let pod = start_pod(
        &admin,
        &ns,
        json!({"containers": [{"name": "app", "image": "busybox:1.36",
            "command": ["sleep", "3600"]}]}),
    )
    .await;
    let pid = pid_of(&pod, "app");
    let before = root_state(pid);

    let s = scan(&admin, &ns, ScanMode::Standard).await;
    assert_ok(&s);
    let r = &s.outcome.results;
    assert_eq!(r.len(), 1);
    assert_eq!(
        (r[0].target.pod.as_str(), r[0].target.container.as_str()),
        (POD, "app")
    );
    assert_eq!(r[0].evaluated.unanswered, 0);
    same_as_local_pid_scan(&r[0].facts, &r[0].evaluated, pid, None);
    let after = Api::<Pod>::namespaced(admin.clone(), &ns)
        .get(POD)
        .await
        .unwrap();
    assert_eq!(pid_of(&after, "app"), pid, "the target kept running");
    assert_eq!(
        root_state(pid),
        before,
        "the scan changed the target's files"
    );
    nothing_left(&admin, &ns).await;
    delete_namespace(&admin, &ns).await;
}

/// The exit code of a container (regular or ephemeral) once the node reports it terminated.
async fn wait_terminated(admin: &Client, ns: &str, container: &str) -> i32 {
    let pods: Api<Pod> = Api::namespaced(admin.clone(), ns);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let st = pods.get(POD).await.unwrap().status.unwrap_or_default();
        let code = st
            .container_statuses
            .into_iter()
            .flatten()
            .chain(st.ephemeral_container_statuses.into_iter().flatten())
            .find(|c| c.name == container)
            .and_then(|c| c.state?.terminated)
            .map(|t| t.exit_code);
        if let Some(code) = code {
            return code;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{container} did not terminate"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real control plane and its node: run cargo xtask realapi"]
async fn realapi_node_distroless_scan_runs_the_agent_as_the_target_uid_and_gives_the_local_pid_hdf()
{
    require_root();
    let (admin, _) = admin().await;
    let ns = namespace(&admin, "node-dl", false).await;
    let pod = start_pod(&admin, &ns, distroless_target()).await;
    let pid = pid_of(&pod, "app");
    let before = root_state(pid);

    let s = scan(&admin, &ns, ScanMode::Distroless).await;
    assert_ok(&s);
    let o = &s.outcome;
    assert_eq!(o.results.len(), 1);
    same_as_local_pid_scan(
        &o.results[0].facts,
        &o.results[0].evaluated,
        pid,
        Some(10001),
    );
    assert_eq!(
        root_state(pid),
        before,
        "the scan changed the target's files"
    );
    // The scanner as the REAL API server stored it (after its validation): the target's
    // identity and nothing more (written out by hand).
    let pod = Api::<Pod>::namespaced(admin.clone(), &ns)
        .get(POD)
        .await
        .unwrap();
    let eph = pod.spec.unwrap().ephemeral_containers.unwrap();
    assert_eq!(eph.len(), 1, "exactly one ephemeral container");
    let sc = serde_json::to_value(eph[0].security_context.as_ref().unwrap()).unwrap();
    assert_eq!(sc["runAsUser"], 10001);
    assert_eq!(sc["runAsGroup"], 10001);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    assert!(sc["capabilities"]["add"].is_null());
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(eph[0].target_container_name.as_deref(), Some("app"));
    // It ran on the node (the log keyhole read came from it through the API server) and ended
    // with 0.
    assert_eq!(wait_terminated(&admin, &ns, &eph[0].name).await, 0);
    assert_eq!(
        o.traces,
        [format!("{ns}/{POD}: ephemeral container {}", eph[0].name)],
        "the outcome reports the ephemeral container"
    );
    nothing_left(&admin, &ns).await;
    delete_namespace(&admin, &ns).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real control plane and its node: run cargo xtask realapi"]
async fn realapi_node_sidecar_scan_reads_the_sidecars_log_and_gives_the_local_pid_hdf() {
    require_root();
    let (admin, _) = admin().await;
    let ns = namespace(&admin, "node-sc", false).await;
    // The injected pod names no node: the node binds it with the scheduler's identity.
    let mut pod = injected_pod();
    pod.metadata.namespace = Some(ns.clone());
    let pod = create_and_wait(&admin, pod).await;
    assert_eq!(
        pod.spec.as_ref().unwrap().node_name.as_deref(),
        Some(node_name().as_str())
    );
    let pid = pid_of(&pod, "app");
    // The sidecar's first complete frame, read through the API server's pods/log.
    let pods: Api<Pod> = Api::namespaced(admin.clone(), &ns);
    let lp = LogParams {
        container: Some(keyhole_scanners::SIDECAR_NAME.to_owned()),
        ..LogParams::default()
    };
    eventually(
        Duration::from_secs(60),
        "the sidecar writes a frame to its log",
        || async {
            let text = pods.logs(POD, &lp).await.unwrap_or_default();
            keyhole_engine::read_facts_frames(&text).newest().is_some()
        },
    )
    .await;

    let s = scan(&admin, &ns, ScanMode::Sidecar).await;
    assert_ok(&s);
    let o = &s.outcome;
    assert_eq!(o.results.len(), 1);
    same_as_local_pid_scan(
        &o.results[0].facts,
        &o.results[0].evaluated,
        pid,
        Some(10001),
    );
    assert!(o.traces.is_empty());
    nothing_left(&admin, &ns).await;
    delete_namespace(&admin, &ns).await;
}

/// A process's stdio and exit code through the real API server to the node and back: the
/// client's WebSocket (v5) is translated by the API server into SPDY/3.1 streams toward the
/// node's kubelet endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real control plane and its node: run cargo xtask realapi"]
async fn realapi_node_exec_streams_stdin_stdout_stderr_and_the_exit_code() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let (admin, _) = admin().await;
    let ns = namespace(&admin, "node-exec", false).await;
    start_pod(
        &admin,
        &ns,
        json!({"containers": [{"name": "app", "image": "busybox:1.36",
            "command": ["sleep", "3600"]}]}),
    )
    .await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real control plane and its node: run cargo xtask realapi"]
async fn realapi_node_auto_falls_back_to_distroless_when_the_target_has_no_shell() {
    require_root();
    let (admin, _) = admin().await;
    let ns = namespace(&admin, "node-auto", false).await;
    let pod = start_pod(&admin, &ns, distroless_target()).await;
    let pid = pid_of(&pod, "app");

    let s = scan(&admin, &ns, ScanMode::Auto).await;
    assert_ok(&s);
    let o = &s.outcome;
    assert_eq!(o.mode.0, ScanMode::Distroless, "{}", o.mode.1);
    assert!(o.mode.1.contains("no shell"), "{}", o.mode.1);
    same_as_local_pid_scan(
        &o.results[0].facts,
        &o.results[0].evaluated,
        pid,
        Some(10001),
    );
    assert_eq!(o.traces.len(), 1, "{:?}", o.traces);
    nothing_left(&admin, &ns).await;
    delete_namespace(&admin, &ns).await;
}

/// Deleting a pod on the real server: the node stops its containers, then confirms the
/// deletion (the API server keeps a gracefully deleted pod until its node does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real control plane and its node: run cargo xtask realapi"]
async fn realapi_node_a_deleted_pod_loses_its_containers_then_disappears() {
    let (admin, _) = admin().await;
    let ns = namespace(&admin, "node-del", false).await;
    let pod = start_pod(
        &admin,
        &ns,
        json!({"containers": [{"name": "app", "image": "busybox:1.36",
            "command": ["sleep", "3600"]}]}),
    )
    .await;
    let id = pod.status.unwrap().container_statuses.unwrap()[0]
        .container_id
        .clone()
        .unwrap();
    let id = id.trim_start_matches("runc://").to_owned();
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
    let state = std::process::Command::new("runc")
        .args(["state", &id])
        .output()
        .expect("runc runs");
    assert!(!state.status.success(), "runc still has {id}");
    delete_namespace(&admin, &ns).await;
}
