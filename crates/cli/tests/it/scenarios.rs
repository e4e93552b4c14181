//! The cluster workflows as scenarios written once and run against two servers: the fake API
//! server with the test node in-process (`node_scan.rs`) and the real `kube-apiserver` with the
//! test node registered to it (`realapi_node.rs`). A scenario talks to the server only through
//! its API as the admin (creating the target, reading it back, listing what keyhole left) and
//! runs keyhole through the library entry point with the server's scoped clients; each test
//! adds what only its server can show (the fake's recorded calls and execs).
//!
//! Each scenario starts `web-0` in [`Server::namespace`], scans it, and checks the result
//! against the local `--pid` scan of the same container (`node_scan::same_as_local_pid_scan`).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use keyhole_cli::session::ScopedClients;
use keyhole_core::{Namespace, PodName, Run, RunId, ScanMode, ScanTarget};
use keyhole_credentials::ClusterEndpoint;
use keyhole_engine::Profile;
use kube::Client;
use kube::api::{Api, ListParams, LogParams, PostParams};
use serde_json::json;

use crate::cluster_scan::{Scanned, distroless_options, scan_against};
use crate::node_scan::{
    assert_ok, distroless_target, injected_pod, root_state, same_as_local_pid_scan,
};

/// The target pod's name in every scenario.
pub(crate) const POD: &str = "web-0";
const WAIT: Duration = Duration::from_secs(60);

/// One API server with a test node, as the scenarios see it.
pub(crate) struct Server {
    /// The admin's client (the user keyhole runs as).
    pub(crate) admin: Client,
    /// The endpoint written into the scoped kubeconfig.
    pub(crate) endpoint: ClusterEndpoint,
    /// How scoped clients are made for this server.
    pub(crate) scoped: Arc<dyn ScopedClients>,
    /// The namespace of the target (it exists, with its `default` ServiceAccount).
    pub(crate) namespace: String,
    /// The node to bind the target to (`None`: leave it to the node to bind).
    pub(crate) node: Option<String>,
}

impl Server {
    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.admin.clone(), &self.namespace)
    }

    /// Creates `pod` in the namespace (bound to [`Server::node`] when set; no ServiceAccount
    /// token: the node mounts no volumes) and waits until every container runs.
    pub(crate) async fn start(&self, mut pod: Pod) -> Pod {
        pod.metadata.namespace = Some(self.namespace.clone());
        let spec = pod.spec.as_mut().unwrap();
        spec.automount_service_account_token = Some(false);
        if let Some(n) = &self.node {
            spec.node_name = Some(n.clone());
        }
        self.pods()
            .create(&PostParams::default(), &pod)
            .await
            .unwrap();
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let p = self.pods().get(POD).await.unwrap();
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
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `web-0` as the server stores it now.
    pub(crate) async fn pod(&self) -> Pod {
        self.pods().get(POD).await.unwrap()
    }

    /// One scan of `web-0` in `mode` through the library entry point.
    pub(crate) async fn scan(&self, mode: ScanMode) -> Scanned {
        let target = ScanTarget::pods(
            Namespace::new(&self.namespace).unwrap(),
            [PodName::new(POD).unwrap()],
            None,
        )
        .unwrap();
        let expiry =
            keyhole_core::Expiry::new(jiff::Timestamp::now(), keyhole_core::Ttl::default())
                .unwrap();
        let run = Run::new(RunId::generate().unwrap(), target, mode, expiry).unwrap();
        let profile = Profile::builtin("container-baseline").unwrap();
        scan_against(
            self.admin.clone(),
            self.endpoint.clone(),
            self.scoped.clone(),
            run,
            &profile,
            distroless_options(),
        )
        .await
    }

    /// The exit code of a container (regular or ephemeral) once the node reports it ended.
    pub(crate) async fn wait_terminated(&self, container: &str) -> i32 {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let st = self.pod().await.status.unwrap_or_default();
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
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until nothing keyhole manages is left in the namespace (the server's answer).
    pub(crate) async fn nothing_left(&self) {
        let lp = ListParams::default().labels("app.kubernetes.io/managed-by=keyhole");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let mut left = Vec::new();
            macro_rules! list {
                ($t:ty) => {
                    for o in Api::<$t>::namespaced(self.admin.clone(), &self.namespace)
                        .list(&lp)
                        .await
                        .unwrap()
                        .items
                    {
                        left.push(o.metadata.name.unwrap_or_default());
                    }
                };
            }
            list!(k8s_openapi::api::core::v1::ServiceAccount);
            list!(k8s_openapi::api::core::v1::Secret);
            list!(k8s_openapi::api::rbac::v1::Role);
            list!(k8s_openapi::api::rbac::v1::RoleBinding);
            list!(k8s_openapi::api::networking::v1::NetworkPolicy);
            list!(Pod);
            if left.is_empty() {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "keyhole left {left:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The host PID of a running container of `pod`, from its `runc://ID` through `runc state`
/// (the node's runc containers are this machine's, whichever process runs the node).
pub(crate) fn pid_of(pod: &Pod, container: &str) -> u32 {
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

fn pod_of(spec: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": POD},
        "spec": spec,
    }))
    .unwrap()
}

/// Standard: a busybox target scanned through one exec gives the local `--pid` scan's facts
/// and HDF; the target keeps running, its files unchanged, nothing of keyhole's left.
pub(crate) async fn standard(s: &Server) -> Scanned {
    let pod = s
        .start(pod_of(json!({"containers": [{"name": "app",
            "image": "busybox:1.36", "command": ["sleep", "3600"]}]})))
        .await;
    let pid = pid_of(&pod, "app");
    let before = root_state(pid);
    let scanned = s.scan(ScanMode::Standard).await;
    assert_ok(&scanned);
    let r = &scanned.outcome.results;
    assert_eq!(r.len(), 1);
    assert_eq!(
        (r[0].target.pod.as_str(), r[0].target.container.as_str()),
        (POD, "app")
    );
    assert_eq!(r[0].evaluated.unanswered, 0);
    same_as_local_pid_scan(&r[0].facts, &r[0].evaluated, pid, None);
    assert_eq!(
        pid_of(&s.pod().await, "app"),
        pid,
        "the target kept running"
    );
    assert_eq!(
        root_state(pid),
        before,
        "the scan changed the target's files"
    );
    s.nothing_left().await;
    scanned
}

/// Distroless: the agent runs in an ephemeral container as the target's UID with nothing more
/// (as the server stored it), ends with 0, and its facts (read back through `pods/log`) give
/// the local `--pid` scan's HDF read as that UID; the target's files are unchanged.
pub(crate) async fn distroless(s: &Server) -> Scanned {
    let pod = s.start(pod_of(distroless_target())).await;
    let pid = pid_of(&pod, "app");
    let before = root_state(pid);
    let scanned = s.scan(ScanMode::Distroless).await;
    assert_ok(&scanned);
    let o = &scanned.outcome;
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
    // The scanner as the server stored it: the target's identity and nothing more (by hand).
    let eph = s.pod().await.spec.unwrap().ephemeral_containers.unwrap();
    assert_eq!(eph.len(), 1, "exactly one ephemeral container");
    let sc = serde_json::to_value(eph[0].security_context.as_ref().unwrap()).unwrap();
    assert_eq!(sc["runAsUser"], 10001);
    assert_eq!(sc["runAsGroup"], 10001);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    assert!(sc["capabilities"]["add"].is_null());
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(eph[0].target_container_name.as_deref(), Some("app"));
    assert_eq!(s.wait_terminated(&eph[0].name).await, 0);
    assert_eq!(
        o.traces,
        [format!(
            "{}/{POD}: ephemeral container {}",
            s.namespace, eph[0].name
        )],
        "the outcome reports the ephemeral container"
    );
    s.nothing_left().await;
    scanned
}

/// Auto: a target without a shell makes the standard attempt fail as "no shell" and the scan
/// fall back to distroless, with the local `--pid` scan's HDF.
pub(crate) async fn auto_without_a_shell(s: &Server) -> Scanned {
    let pod = s.start(pod_of(distroless_target())).await;
    let pid = pid_of(&pod, "app");
    let scanned = s.scan(ScanMode::Auto).await;
    assert_ok(&scanned);
    let o = &scanned.outcome;
    assert_eq!(o.mode.0, ScanMode::Distroless, "{}", o.mode.1);
    assert!(o.mode.1.contains("no shell"), "{}", o.mode.1);
    same_as_local_pid_scan(
        &o.results[0].facts,
        &o.results[0].evaluated,
        pid,
        Some(10001),
    );
    assert_eq!(o.traces.len(), 1, "{:?}", o.traces);
    s.nothing_left().await;
    scanned
}

/// Sidecar: the injected pod (bound by the node when the server does not name one) runs the
/// agent beside the app; the scan reads the sidecar's log only and gives the local `--pid`
/// scan's HDF read as the app's UID.
pub(crate) async fn sidecar(s: &Server) -> Scanned {
    let pod = s.start(injected_pod()).await;
    let pid = pid_of(&pod, "app");
    let lp = LogParams {
        container: Some(keyhole_scanners::SIDECAR_NAME.to_owned()),
        ..LogParams::default()
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let text = s.pods().logs(POD, &lp).await.unwrap_or_default();
        if keyhole_engine::read_facts_frames(&text).newest().is_some() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no frame from the sidecar: {text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let scanned = s.scan(ScanMode::Sidecar).await;
    assert_ok(&scanned);
    let o = &scanned.outcome;
    assert_eq!(o.results.len(), 1);
    same_as_local_pid_scan(
        &o.results[0].facts,
        &o.results[0].evaluated,
        pid,
        Some(10001),
    );
    assert!(o.traces.is_empty());
    s.nothing_left().await;
    scanned
}
