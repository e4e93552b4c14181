//! `FakeCluster`: the shared state behind both transports, and the test-facing API (clients,
//! clock, faults, recorded calls, object assertions, exec and log scripting).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use jiff::Timestamp;
use k8s_openapi::Resource;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::clock::FakeClock;
use crate::error::TestkitError;
use crate::exec::{ExecHandler, ExecRequest, ExecResponse};
use crate::faults::{Faults, RecordedCall};
use crate::https::{CertificateAuthority, HttpsOptions, HttpsServer};
use crate::objects::{self, DeleteOpts, Deleted};
use crate::resources::{RESOURCES, ResourceDef, by_kind, by_plural};
use crate::service::FakeService;
use crate::store::{Store, random_bytes};
use crate::tokens::{self, TokenRecord};

/// When the garbage collector deletes dependents whose owners are gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GcMode {
    /// Right after every delete (background propagation, collapsed to zero delay).
    #[default]
    Immediate,
    /// Only when the test calls [`FakeCluster::collect_garbage`]: models the real collector's
    /// lag, so "verify every object is gone" code has to retry.
    Manual,
}

/// Every piece of mutable server state, behind one lock (never held across an await).
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) store: Store,
    pub(crate) tokens: HashMap<String, TokenRecord>,
    pub(crate) admin_token: String,
    pub(crate) calls: Vec<RecordedCall>,
    /// Index of the next call (not `calls.len()`: clearing the record keeps the count).
    pub(crate) next_call: usize,
    pub(crate) execs: Vec<ExecRequest>,
    /// (namespace, pod, container) → log text.
    pub(crate) logs: BTreeMap<(String, String, String), String>,
    pub(crate) server_minor: u32,
    pub(crate) gc: GcMode,
    /// Names of the nodes a real kubelet (`crate::node::Node`) serves: their pods' containers
    /// are started and reported by it, not by the simulated kubelet.
    pub(crate) kubelet_nodes: BTreeSet<String>,
    pub(crate) ca_pem: String,
}

/// The shared core both transports serve.
pub(crate) struct Inner {
    state: Mutex<State>,
    pub(crate) clock: FakeClock,
    pub(crate) faults: Faults,
    pub(crate) exec_handler: Mutex<Option<ExecHandler>>,
    /// node name → its kubelet's endpoints (never locked while `state` is wanted next).
    pub(crate) kubelets: Mutex<BTreeMap<String, Arc<dyn Kubelet>>>,
    pub(crate) ca: CertificateAuthority,
}

/// What the API server asks of a node's kubelet: its `/exec` and `/containerLogs` endpoints,
/// called in-process (a real API server proxies them over HTTPS).
pub(crate) trait Kubelet: Send + Sync {
    /// Starts `request.command` in the container; the session streams its stdio. Must be called
    /// inside a tokio runtime.
    fn exec(&self, request: &ExecRequest) -> Result<tokio::process::Child, String>;
    /// The container's log so far, or `None` when the node has no such container.
    fn log(&self, namespace: &str, pod: &str, container: &str) -> Option<Vec<u8>>;
}

impl Inner {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The kubelet serving the node `pod` is bound to, if a real one does.
    pub(crate) fn kubelet_for(&self, namespace: &str, pod: &str) -> Option<Arc<dyn Kubelet>> {
        let node = {
            let st = self.lock();
            let def = by_plural("", "pods")?;
            st.store.get(def, namespace, pod)?["spec"]["nodeName"]
                .as_str()?
                .to_owned()
        };
        self.kubelets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&node)
            .cloned()
    }
}

/// A stateful in-memory Kubernetes API server for tests. Cheap to clone (clones share state).
///
/// A new cluster has the namespaces `default`, `kube-system` and `kube-public` (each with its
/// `default` ServiceAccount and `kube-root-ca.crt` ConfigMap), serves Kubernetes 1.35 and its
/// clock starts at the current wall-clock second.
#[derive(Clone)]
pub struct FakeCluster {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for FakeCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeCluster").finish_non_exhaustive()
    }
}

impl Default for FakeCluster {
    fn default() -> Self {
        Self::new()
    }
}

fn def_of<K: Resource>() -> &'static ResourceDef {
    by_kind(K::API_VERSION, K::KIND).unwrap_or_else(|| {
        panic!(
            "keyhole-testkit does not serve {}/{}",
            K::API_VERSION,
            K::KIND
        )
    })
}

impl FakeCluster {
    /// A fresh cluster (see the type's documentation for what it starts with).
    pub fn new() -> Self {
        let now = Timestamp::now();
        let start = Timestamp::from_second(now.as_second()).unwrap_or(now);
        Self::with_start_time(start)
    }

    /// A fresh cluster whose clock starts at `start`.
    pub fn with_start_time(start: Timestamp) -> Self {
        let ca = CertificateAuthority::generate("keyhole-testkit cluster CA");
        let admin_token = format!(
            "admin-{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<24>())
        );
        let state = State {
            store: Store::default(),
            tokens: HashMap::new(),
            admin_token,
            calls: Vec::new(),
            next_call: 0,
            execs: Vec::new(),
            logs: BTreeMap::new(),
            server_minor: 35,
            gc: GcMode::Immediate,
            kubelet_nodes: BTreeSet::new(),
            ca_pem: ca.cert_pem(),
        };
        let inner = Arc::new(Inner {
            state: Mutex::new(state),
            clock: FakeClock::new(start),
            faults: Faults::default(),
            exec_handler: Mutex::new(None),
            kubelets: Mutex::new(BTreeMap::new()),
            ca,
        });
        let cluster = Self { inner };
        for ns in ["default", "kube-system", "kube-public"] {
            cluster.create_namespace(ns);
        }
        cluster
    }

    pub(crate) fn inner(&self) -> &Arc<Inner> {
        &self.inner
    }

    // ------------------------------------------------------------ clients

    /// A `kube::Client` with the admin identity (the user's own broad kubeconfig), talking to
    /// the in-process `Service`. Needs a tokio runtime.
    pub fn client_admin(&self) -> kube::Client {
        self.client_for_token(&self.admin_token())
    }

    /// A `kube::Client` that sends `token` as its bearer token (in-process `Service`).
    pub fn client_for_token(&self, token: &str) -> kube::Client {
        kube::Client::new(self.service(Some(token.to_owned())), "default")
    }

    /// A `kube::Client` that sends no credentials at all.
    pub fn client_anonymous(&self) -> kube::Client {
        kube::Client::new(self.service(None), "default")
    }

    /// The in-process tower `Service`, for callers that build their own stack with
    /// `kube::Client::new`. `token` is added as `Authorization: Bearer` unless the request
    /// already carries an Authorization header.
    pub fn service(&self, token: Option<String>) -> FakeService {
        FakeService::new(self.inner.clone(), token)
    }

    /// The admin bearer token.
    pub fn admin_token(&self) -> String {
        self.inner.lock().admin_token.clone()
    }

    /// Serves this cluster over real HTTPS on 127.0.0.1 with a certificate from the cluster CA.
    pub async fn serve_https(&self) -> Result<HttpsServer, TestkitError> {
        self.serve_https_with(HttpsOptions::default()).await
    }

    /// Serves this cluster over HTTPS with the given certificate knobs (expired, other CA).
    pub async fn serve_https_with(
        &self,
        options: HttpsOptions,
    ) -> Result<HttpsServer, TestkitError> {
        HttpsServer::start(self.clone(), options).await
    }

    /// The cluster CA certificate (PEM): what a kubeconfig's `certificate-authority-data` holds.
    pub fn ca_pem(&self) -> String {
        self.inner.ca.cert_pem()
    }

    // ------------------------------------------------------------ knobs

    /// The fake clock (shared; advancing it expires tokens).
    pub fn clock(&self) -> FakeClock {
        self.inner.clock.clone()
    }

    /// Fault injection and latency controls.
    pub fn faults(&self) -> Faults {
        self.inner.faults.clone()
    }

    /// The Kubernetes minor version served (1.`minor`). It decides how WebSocket `pods/exec` is
    /// authorized: before 1.35 the upgrade GET needs only `get`; from 1.35 on it needs `get` and
    /// `create` on `pods/exec`.
    pub fn set_server_minor_version(&self, minor: u32) {
        self.inner.lock().server_minor = minor;
    }

    /// Chooses when the garbage collector runs.
    pub fn set_gc_mode(&self, mode: GcMode) {
        self.inner.lock().gc = mode;
    }

    /// Runs the garbage collector to a fixpoint now; returns how many objects it deleted.
    pub fn collect_garbage(&self) -> usize {
        let now = self.inner.clock.now();
        objects::collect_garbage(&mut self.inner.lock(), now)
    }

    /// Scripts `pods/exec`: `handler` receives the command, container and the whole stdin and
    /// returns stdout, stderr and the exit code. Without a handler, exec answers a failure that
    /// says so. Pods bound to a running [`crate::node::Node`] are not scripted: their exec runs
    /// in the real container.
    pub fn set_exec_handler<F>(&self, handler: F)
    where
        F: Fn(&ExecRequest) -> ExecResponse + Send + Sync + 'static,
    {
        *self
            .inner
            .exec_handler
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(handler));
    }

    /// Sets the text `pods/log` returns for one container (pods on a running
    /// [`crate::node::Node`] serve their real logs instead).
    pub fn set_pod_log(&self, namespace: &str, pod: &str, container: &str, text: &str) {
        self.inner.lock().logs.insert(
            (namespace.to_owned(), pod.to_owned(), container.to_owned()),
            text.to_owned(),
        );
    }

    // ------------------------------------------------------------ assertions

    /// Every call received so far, in arrival order.
    pub fn calls(&self) -> Vec<RecordedCall> {
        self.inner.lock().calls.clone()
    }

    /// Forgets the recorded calls (indices for [`Faults::fail_call`] keep counting from the
    /// total, so a test can clear after setup and still address later calls by index).
    pub fn clear_calls(&self) {
        self.inner.lock().calls.clear();
    }

    /// Every exec session that reached the handler stage (authorized and upgraded).
    pub fn execs(&self) -> Vec<ExecRequest> {
        self.inner.lock().execs.clone()
    }

    /// Every stored object of type `K`, in (namespace, name) order.
    pub fn objects<K: Resource + DeserializeOwned>(&self) -> Vec<K> {
        let def = def_of::<K>();
        let st = self.inner.lock();
        st.store
            .list(def, None)
            .filter_map(|v| serde_json::from_value(v.clone()).ok())
            .collect()
    }

    /// One stored object of type `K` (namespace is ignored for cluster-scoped kinds).
    pub fn object<K: Resource + DeserializeOwned>(&self, namespace: &str, name: &str) -> Option<K> {
        let def = def_of::<K>();
        let ns = if def.namespaced { namespace } else { "" };
        let st = self.inner.lock();
        st.store
            .get(def, ns, name)
            .and_then(|v| serde_json::from_value(v.clone()).ok())
    }

    /// Every stored object labelled `app.kubernetes.io/managed-by: keyhole`, of any kind.
    pub fn managed_objects(&self) -> Vec<ObjectRef> {
        let st = self.inner.lock();
        st.store
            .objects
            .iter()
            .filter(|(_, o)| {
                o["metadata"]["labels"][keyhole_core::MANAGED_BY_LABEL].as_str()
                    == Some(keyhole_core::MANAGED_BY_VALUE)
            })
            .map(|((r, ns, name), o)| ObjectRef {
                api_version: RESOURCES[*r].api_version(),
                kind: RESOURCES[*r].kind.to_owned(),
                namespace: (!ns.is_empty()).then(|| ns.clone()),
                name: name.clone(),
                uid: o["metadata"]["uid"].as_str().unwrap_or("").to_owned(),
            })
            .collect()
    }

    // ------------------------------------------------------------ seeding (no API call)

    /// Creates an object as the admin would, without going through the API (not recorded, no
    /// faults). Server-side defaulting and validation apply. Returns the stored object.
    pub fn insert<K>(&self, object: &K) -> Result<K, TestkitError>
    where
        K: Resource + Serialize + DeserializeOwned,
    {
        let def = def_of::<K>();
        let value = serde_json::to_value(object)?;
        let ns = if def.namespaced {
            value["metadata"]["namespace"]
                .as_str()
                .filter(|s| !s.is_empty())
                .unwrap_or("default")
                .to_owned()
        } else {
            String::new()
        };
        let now = self.inner.clock.now();
        let stored = objects::create(&mut self.inner.lock(), now, def, &ns, value, false)
            .map_err(|e| TestkitError::Rejected(e.body.to_string()))?;
        Ok(serde_json::from_value(stored)?)
    }

    /// Creates a namespace (with its default ServiceAccount and root-CA ConfigMap) unless it
    /// exists.
    pub fn create_namespace(&self, name: &str) {
        let now = self.inner.clock.now();
        let mut st = self.inner.lock();
        if let Some(def) = by_plural("", "namespaces")
            && st.store.get(def, "", name).is_none()
        {
            let _ = objects::create(
                &mut st,
                now,
                def,
                "",
                json!({"metadata": {"name": name}}),
                false,
            );
        }
    }

    /// Creates a pod that the simulated kubelet reports Running and Ready, with one container
    /// per name (image `registry.example/NAME:1.0`), running as ServiceAccount `default`.
    pub fn add_running_pod(
        &self,
        namespace: &str,
        name: &str,
        containers: &[&str],
    ) -> Result<k8s_openapi::api::core::v1::Pod, TestkitError> {
        self.create_namespace(namespace);
        let spec_containers: Vec<Value> = containers
            .iter()
            .map(|c| json!({"name": c, "image": format!("registry.example/{c}:1.0")}))
            .collect();
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace},
            // Bound at creation, so a real node adopting unscheduled pods never takes it.
            "spec": {"containers": spec_containers, "nodeName": "fake-node"},
        });
        let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(pod)?;
        self.insert(&pod)?;
        self.set_pod_running(namespace, name)
    }

    /// Makes the simulated kubelet report a pod Running with every container running and
    /// ready (and each ephemeral container running).
    pub fn set_pod_running(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<k8s_openapi::api::core::v1::Pod, TestkitError> {
        let now = self.inner.clock.now();
        let started = objects::timestamp(now);
        self.modify_stored::<k8s_openapi::api::core::v1::Pod>(namespace, name, |pod| {
            let status_of = |c: &Value, ready: bool| {
                json!({
                    "name": c["name"], "image": c["image"],
                    "imageID": format!("{}@sha256:{}", c["image"].as_str().unwrap_or(""), "0".repeat(64)),
                    "containerID": format!("containerd://{}", "f".repeat(64)),
                    "ready": ready, "started": true, "restartCount": 0,
                    "state": {"running": {"startedAt": started}},
                })
            };
            let spec = &pod["spec"];
            let containers: Vec<Value> = spec["containers"].as_array().into_iter().flatten().map(|c| status_of(c, true)).collect();
            let ephemeral: Vec<Value> = spec["ephemeralContainers"].as_array().into_iter().flatten().map(|c| status_of(c, false)).collect();
            let mut status = json!({
                "phase": "Running",
                "qosClass": pod["status"]["qosClass"].clone(),
                "podIP": "10.244.0.10",
                "hostIP": "172.18.0.2",
                "startTime": started,
                "conditions": [
                    {"type": "Initialized", "status": "True", "lastTransitionTime": started},
                    {"type": "Ready", "status": "True", "lastTransitionTime": started},
                    {"type": "ContainersReady", "status": "True", "lastTransitionTime": started},
                    {"type": "PodScheduled", "status": "True", "lastTransitionTime": started},
                ],
                "containerStatuses": containers,
            });
            if !ephemeral.is_empty() {
                status["ephemeralContainerStatuses"] = Value::Array(ephemeral);
            }
            pod["status"] = status;
            if pod["spec"]["nodeName"].is_null() {
                pod["spec"]["nodeName"] = json!("fake-node");
            }
        })
    }

    /// Marks one container (regular or ephemeral) of a pod terminated with `exit_code`, as the
    /// kubelet would report it.
    pub fn set_container_terminated(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        exit_code: i32,
    ) -> Result<k8s_openapi::api::core::v1::Pod, TestkitError> {
        let at = objects::timestamp(self.inner.clock.now());
        self.modify_stored::<k8s_openapi::api::core::v1::Pod>(namespace, pod, |p| {
            for field in [
                "containerStatuses",
                "ephemeralContainerStatuses",
                "initContainerStatuses",
            ] {
                for s in p["status"][field].as_array_mut().into_iter().flatten() {
                    if s["name"] == container {
                        s["ready"] = json!(false);
                        s["state"] = json!({"terminated": {
                            "exitCode": exit_code,
                            "reason": if exit_code == 0 { "Completed" } else { "Error" },
                            "startedAt": at, "finishedAt": at,
                        }});
                    }
                }
            }
        })
    }

    /// Replaces a pod's whole `status` (as a kubelet's status update would; bumps
    /// resourceVersion, not recorded as an API call).
    pub fn set_pod_status(
        &self,
        namespace: &str,
        name: &str,
        status: &k8s_openapi::api::core::v1::PodStatus,
    ) -> Result<k8s_openapi::api::core::v1::Pod, TestkitError> {
        let status = serde_json::to_value(status)?;
        self.modify_stored::<k8s_openapi::api::core::v1::Pod>(namespace, name, |p| {
            p["status"] = status;
        })
    }

    /// Sets `spec.nodeName` of a pod that has none (what the scheduler's binding does); returns
    /// whether it bound it.
    pub(crate) fn bind_pod(
        &self,
        namespace: &str,
        name: &str,
        node: &str,
    ) -> Result<bool, TestkitError> {
        let mut bound = false;
        self.modify_stored::<k8s_openapi::api::core::v1::Pod>(namespace, name, |p| {
            if p["spec"]["nodeName"].as_str().is_none_or(str::is_empty) {
                p["spec"]["nodeName"] = json!(node);
                bound = true;
            }
        })?;
        Ok(bound)
    }

    /// The global resourceVersion: changes whenever any object does.
    pub(crate) fn resource_version(&self) -> String {
        self.inner.lock().store.current_rv()
    }

    /// Makes `node` served by a real kubelet (exec, logs and ephemeral containers go to it).
    pub(crate) fn attach_kubelet(&self, node: &str, kubelet: Arc<dyn Kubelet>) {
        self.inner.lock().kubelet_nodes.insert(node.to_owned());
        self.inner
            .kubelets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(node.to_owned(), kubelet);
    }

    /// Whether a real kubelet serves `node`.
    pub(crate) fn has_kubelet(&self, node: &str) -> bool {
        self.inner.lock().kubelet_nodes.contains(node)
    }

    /// Undoes [`FakeCluster::attach_kubelet`].
    pub(crate) fn detach_kubelet(&self, node: &str) {
        self.inner.lock().kubelet_nodes.remove(node);
        self.inner
            .kubelets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(node);
    }

    /// Edits a stored object in place (as a controller would; bumps resourceVersion).
    fn modify_stored<K>(
        &self,
        namespace: &str,
        name: &str,
        edit: impl FnOnce(&mut Value),
    ) -> Result<K, TestkitError>
    where
        K: Resource + DeserializeOwned,
    {
        let def = def_of::<K>();
        let ns = if def.namespaced { namespace } else { "" };
        let mut st = self.inner.lock();
        let rv = st.store.next_rv();
        let key = (crate::store::index_of(def), ns.to_owned(), name.to_owned());
        let obj = st
            .store
            .objects
            .get_mut(&key)
            .ok_or_else(|| TestkitError::NotFound(format!("{} {ns}/{name}", def.kind)))?;
        edit(obj);
        obj["metadata"]["resourceVersion"] = json!(rv);
        Ok(serde_json::from_value(obj.clone())?)
    }

    /// Deletes an object as the admin would (no API call), with background propagation.
    /// Returns whether it existed.
    pub fn remove<K: Resource>(&self, namespace: &str, name: &str) -> bool {
        let def = def_of::<K>();
        let ns = if def.namespaced { namespace } else { "" };
        let now = self.inner.clock.now();
        matches!(
            objects::delete(
                &mut self.inner.lock(),
                now,
                def,
                ns,
                name,
                &DeleteOpts::default()
            ),
            Ok(Deleted::Gone(_) | Deleted::Pending(_))
        )
    }

    /// Mints a token for a ServiceAccount as TokenRequest would (no API call, not recorded).
    pub fn issue_token(
        &self,
        namespace: &str,
        service_account: &str,
        ttl: Duration,
    ) -> Result<String, TestkitError> {
        let now = self.inner.clock.now();
        let body = json!({"spec": {"expirationSeconds": ttl.as_secs()}});
        let out = tokens::token_request(
            &mut self.inner.lock(),
            now,
            namespace,
            service_account,
            &body,
        )
        .map_err(|e| TestkitError::Rejected(e.body.to_string()))?;
        Ok(out["status"]["token"].as_str().unwrap_or("").to_owned())
    }

    /// Creates a ServiceAccount (no API call) and returns a token for it.
    pub fn service_account_with_token(
        &self,
        namespace: &str,
        name: &str,
        ttl: Duration,
    ) -> Result<String, TestkitError> {
        self.create_namespace(namespace);
        let sa: k8s_openapi::api::core::v1::ServiceAccount =
            serde_json::from_value(json!({"metadata": {"name": name, "namespace": namespace}}))?;
        if self
            .object::<k8s_openapi::api::core::v1::ServiceAccount>(namespace, name)
            .is_none()
        {
            self.insert(&sa)?;
        }
        self.issue_token(namespace, name, ttl)
    }
}

/// A reference to a stored object (for leak assertions).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ObjectRef {
    /// `v1`, `rbac.authorization.k8s.io/v1`, ...
    pub api_version: String,
    /// `Pod`, `Role`, ...
    pub kind: String,
    /// Namespace; `None` for cluster-scoped kinds.
    pub namespace: Option<String>,
    /// Object name.
    pub name: String,
    /// Object uid.
    pub uid: String,
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {ns}/{}", self.kind, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}
