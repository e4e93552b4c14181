//! The node against a **real** `kube-apiserver`: [`KubeNodeApi`] (the [`NodeApi`] over
//! `kube::Client`s), the registration of a `Node` object (address, kubelet port, `Ready`, a
//! renewed Lease), and the kubelet's HTTPS endpoints the API server calls for `pods/exec` and
//! `pods/log` ([`RealNode`] puts the three together).
//!
//! Identities. The node reads and writes as `system:node:<name>` in `system:nodes` (a client
//! certificate): the Node authorizer and NodeRestriction admission then judge it as they judge a
//! kubelet (it may list and watch only the pods bound to it, patch their status, create and
//! update its own Node and Lease). Binding pods nobody bound is the scheduler's right, not a
//! node's (`pods/binding` is refused to `system:nodes`), so [`RealNodeConfig::scheduler`] is a
//! second client (`system:kube-scheduler` in the local control plane); without it the node
//! binds nothing.
//!
//! The kubelet server trusts only the API server: the client certificate must chain to the
//! client CA **and** be exactly [`RealNodeConfig::apiserver_client_cert_pem`]
//! (`--kubelet-client-certificate`). Its serving certificate is issued by the CA the API server
//! trusts for kubelets (`--kubelet-certificate-authority`).
//!
//! Exec. Since Kubernetes 1.30 the API server translates a client's WebSocket
//! (`v5.channel.k8s.io`) exec into SPDY/3.1 toward the kubelet (feature gate
//! `TranslateStreamCloseWebsocketRequests`, beta, on by default; `super::spdy` serves that).
//! With the gate off it passes the client's WebSocket straight through, which the node serves
//! with the session of `crate::exec` (v5 or v4): both paths work on 1.34 and 1.37.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt as _;
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Node as NodeObj, Pod, PodStatus};
use kube::Client;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions, WatchParams,
};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::api::NodeApi;
use super::kubelet::Shared;
use super::{Images, Node, NodeOptions};
use crate::cluster::Kubelet as _;
use crate::error::TestkitError;
use crate::exec::{ExecRequest, ExecStart, accept_key};

/// How long one API call of the node's loop may take before the pass fails (and is retried).
const CALL_TIMEOUT: Duration = Duration::from_secs(20);
/// How often the node renews its Lease and its `Ready` heartbeat.
const HEARTBEAT: Duration = Duration::from_secs(10);

/// What a node needs to join a real API server.
#[derive(Clone)]
pub struct RealNodeConfig {
    /// The node's own client (`system:node:<name>`, group `system:nodes`).
    pub node: kube::Config,
    /// A client allowed to create `pods/binding` (the scheduler), to bind pods nobody bound;
    /// `None`: the node runs only pods that name it in `spec.nodeName`.
    pub scheduler: Option<kube::Config>,
    /// The kubelet serving certificate (PEM), for `127.0.0.1`, from the kubelet CA.
    pub serving_cert_pem: String,
    /// Its private key (PEM).
    pub serving_key_pem: String,
    /// The CA of client certificates (the API server's `--client-ca-file`).
    pub client_ca_pem: String,
    /// The one client certificate the kubelet server accepts: the API server's
    /// `--kubelet-client-certificate` (PEM).
    pub apiserver_client_cert_pem: String,
}

impl std::fmt::Debug for RealNodeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys and client credentials stay out of logs.
        f.debug_struct("RealNodeConfig")
            .field("server", &self.node.cluster_url)
            .field("binds_unscheduled", &self.scheduler.is_some())
            .finish_non_exhaustive()
    }
}

fn node_err(what: &str, e: impl std::fmt::Display) -> TestkitError {
    TestkitError::Node(format!("{what}: {e}"))
}

/// A tokio runtime on a thread of its own: the node's loop is synchronous ([`NodeApi`]), the
/// kube client and the kubelet server are async.
struct Runtime {
    handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Runtime {
    fn start() -> Result<Self, TestkitError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = rt.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("node-api".to_owned())
            .spawn(move || {
                let _ = rt.block_on(stopped);
            })?;
        Ok(Self {
            handle,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Runs `fut` on the runtime and waits for it from any thread (also from inside another
    /// runtime: it blocks that thread, never enters this runtime).
    fn call<T: Send + 'static>(
        &self,
        fut: impl Future<Output = Result<T, TestkitError>> + Send + 'static,
    ) -> Result<T, TestkitError> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.handle.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv_timeout(CALL_TIMEOUT).map_err(|_| {
            TestkitError::Node(format!(
                "the API server did not answer within {CALL_TIMEOUT:?}"
            ))
        })?
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The [`NodeApi`] over a real API server (see the module documentation for the identities).
pub struct KubeNodeApi {
    rt: Arc<Runtime>,
    node: Client,
    scheduler: Option<Client>,
    name: String,
    /// Bumped on every watch event of the pods bound to the node (and unscheduled ones when
    /// binding): the loop's cheap change signal.
    changes: Arc<AtomicU64>,
}

impl std::fmt::Debug for KubeNodeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeNodeApi")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl KubeNodeApi {
    fn new(rt: Arc<Runtime>, config: &RealNodeConfig, name: &str) -> Result<Self, TestkitError> {
        let (node_cfg, sched_cfg) = (config.node.clone(), config.scheduler.clone());
        // The clients spawn their buffer task: build them inside the runtime.
        let (node, scheduler) = rt.call(async move {
            let node = Client::try_from(node_cfg)?;
            let scheduler = sched_cfg.map(Client::try_from).transpose()?;
            Ok((node, scheduler))
        })?;
        let api = Self {
            rt,
            node,
            scheduler,
            name: name.to_owned(),
            changes: Arc::new(AtomicU64::new(0)),
        };
        api.rt.handle.spawn(watch_changes(
            Api::all(api.node.clone()),
            format!("spec.nodeName={name}"),
            api.changes.clone(),
        ));
        if let Some(s) = &api.scheduler {
            api.rt.handle.spawn(watch_changes(
                Api::all(s.clone()),
                "spec.nodeName=".to_owned(),
                api.changes.clone(),
            ));
        }
        Ok(api)
    }
}

/// Bumps `changes` on every event of a pod watch with `fields`, re-watching when it ends.
async fn watch_changes(pods: Api<Pod>, fields: String, changes: Arc<AtomicU64>) {
    loop {
        let wp = WatchParams::default().fields(&fields).timeout(240);
        if let Ok(stream) = pods.watch(&wp, "0").await {
            let mut stream = std::pin::pin!(stream);
            while let Some(ev) = stream.next().await {
                changes.fetch_add(1, Ordering::SeqCst);
                if ev.is_err() {
                    break;
                }
            }
        }
        changes.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

impl NodeApi for KubeNodeApi {
    fn version(&self) -> String {
        self.changes.load(Ordering::SeqCst).to_string()
    }

    fn pods_on(&self, node: &str) -> Result<Vec<Pod>, TestkitError> {
        let pods: Api<Pod> = Api::all(self.node.clone());
        let lp = ListParams::default().fields(&format!("spec.nodeName={node}"));
        self.rt.call(async move { Ok(pods.list(&lp).await?.items) })
    }

    fn unscheduled_pods(&self) -> Result<Vec<Pod>, TestkitError> {
        let Some(s) = &self.scheduler else {
            return Ok(Vec::new());
        };
        let pods: Api<Pod> = Api::all(s.clone());
        let lp = ListParams::default().fields("spec.nodeName=");
        self.rt.call(async move { Ok(pods.list(&lp).await?.items) })
    }

    fn bind(&self, namespace: &str, name: &str, node: &str) -> Result<bool, TestkitError> {
        let Some(s) = &self.scheduler else {
            return Ok(false);
        };
        let pods: Api<Pod> = Api::namespaced(s.clone(), namespace);
        let body = json!({
            "apiVersion": "v1", "kind": "Binding",
            "metadata": {"name": name, "namespace": namespace},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        });
        let name = name.to_owned();
        self.rt.call(async move {
            match pods
                .create_subresource::<_, serde_json::Value>(
                    "binding",
                    &name,
                    &PostParams::default(),
                    &body,
                )
                .await
            {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e.into()),
            }
        })
    }

    fn update_status(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        status: &PodStatus,
    ) -> Result<(), TestkitError> {
        let pods: Api<Pod> = Api::namespaced(self.node.clone(), namespace);
        // The uid in the patch is a precondition: a pod recreated under the same name refuses it.
        let patch = json!({"metadata": {"uid": uid}, "status": status});
        let name = name.to_owned();
        self.rt.call(async move {
            pods.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            Ok(())
        })
    }

    fn now(&self) -> Timestamp {
        // The API server runs on this machine (loopback): its clock is this one.
        Timestamp::now()
    }

    fn confirm_deleted(&self, namespace: &str, name: &str, uid: &str) -> Result<(), TestkitError> {
        let pods: Api<Pod> = Api::namespaced(self.node.clone(), namespace);
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(uid.to_owned()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        let name = name.to_owned();
        self.rt.call(async move {
            match pods.delete(&name, &dp).await {
                Ok(_) => Ok(()),
                // Already gone, or another pod under that name now: nothing of ours to confirm.
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
                Err(e) => Err(e.into()),
            }
        })
    }
}

/// A [`Node`] registered with a real API server, with its kubelet HTTPS endpoint. Stop it with
/// [`RealNode::shutdown`]; dropping it does the same, ignoring errors.
pub struct RealNode {
    node: Option<Node>,
    port: u16,
    /// Keeps the kubelet server and the heartbeat running (they stop with it).
    _rt: Arc<Runtime>,
}

impl std::fmt::Debug for RealNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RealNode")
            .field("node", &self.node)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl RealNode {
    /// Starts the node, its kubelet server on `127.0.0.1`, and registers the `Node` object
    /// `options.name` (created, or its status replaced when it exists), `Ready`. Needs root and
    /// `runc` (as [`Node::start`]).
    pub fn start(
        config: RealNodeConfig,
        images: Images,
        options: NodeOptions,
    ) -> Result<Self, TestkitError> {
        let rt = Arc::new(Runtime::start()?);
        let name = options.name.clone();
        let api = Arc::new(KubeNodeApi::new(rt.clone(), &config, &name)?);
        let node_client = api.node.clone();
        let node = Node::start_with_api(api, images, options)?;
        let tls = server_tls(&config)?;
        let expected_client = first_cert(&config.apiserver_client_cert_pem)?;
        let shared = node.shared.clone();
        let port = rt.call(async move {
            let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
            let port = listener.local_addr()?.port();
            tokio::spawn(serve_kubelet(listener, tls, expected_client, shared));
            Ok(port)
        })?;
        let (client, node_name) = (node_client.clone(), name.clone());
        rt.call(async move { register(&client, &node_name, port).await })?;
        rt.handle.spawn(heartbeat(node_client, name));
        Ok(Self {
            node: Some(node),
            port,
            _rt: rt,
        })
    }

    /// The kubelet port (`status.daemonEndpoints.kubeletEndpoint.Port`).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The node (its containers, for tests that look from outside).
    pub fn node(&self) -> &Node {
        self.node
            .as_ref()
            .unwrap_or_else(|| unreachable!("the node is only taken by shutdown"))
    }

    /// Stops the node as [`Node::shutdown`] does (every container killed and deleted, nothing
    /// left mounted), then its kubelet server. The `Node` object stays (a node may not delete
    /// itself under the Node authorizer); its heartbeat stops.
    pub fn shutdown(mut self) -> Result<(), TestkitError> {
        match self.node.take() {
            Some(n) => n.shutdown(),
            None => Ok(()),
        }
    }
}

impl Drop for RealNode {
    fn drop(&mut self) {
        if let Some(n) = self.node.take() {
            let _ = n.shutdown();
        }
    }
}

/// Creates the Node object (or replaces the status of an existing one).
async fn register(client: &Client, name: &str, port: u16) -> Result<(), TestkitError> {
    let nodes: Api<NodeObj> = Api::all(client.clone());
    let status = node_status(port);
    let obj: NodeObj = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {
            "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
            "kubernetes.io/arch": std::env::consts::ARCH,
        }},
        "spec": {},
        "status": status,
    }))?;
    match nodes.create(&PostParams::default(), &obj).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => return Err(node_err("cannot register the Node object", e)),
    }
    // Create may keep or drop status depending on the release: always write it.
    nodes
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(&json!({ "status": status })),
        )
        .await
        .map_err(|e| node_err("cannot write the Node status", e))?;
    Ok(())
}

fn node_status(port: u16) -> serde_json::Value {
    let now = crate::objects::timestamp(Timestamp::now());
    let resources = json!({"cpu": "2", "memory": "4Gi", "pods": "110"});
    json!({
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        "capacity": resources, "allocatable": resources,
        "conditions": [{
            "type": "Ready", "status": "True", "reason": "KubeletReady",
            "message": "keyhole-testkit node is posting ready status",
            "lastHeartbeatTime": now, "lastTransitionTime": now,
        }],
        "nodeInfo": {
            "machineID": "", "systemUUID": "", "bootID": "", "kernelVersion": "",
            "osImage": "keyhole-testkit node", "containerRuntimeVersion": "runc://",
            "kubeletVersion": "v0.0.0-keyhole-testkit", "kubeProxyVersion": "",
            "operatingSystem": "linux", "architecture": std::env::consts::ARCH,
        },
    })
}

/// Renews the node's Lease (`kube-node-lease/<name>`) and its `Ready` heartbeat. Nothing in the
/// local control plane evicts a silent node (no node lifecycle controller runs), but a real
/// cluster's would: the node keeps both fresh as a kubelet does.
async fn heartbeat(client: Client, name: String) {
    use k8s_openapi::api::coordination::v1::Lease;
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let nodes: Api<NodeObj> = Api::all(client);
    loop {
        let now = Timestamp::now();
        let micro = now.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
        let lease = json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": name, "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": micro},
        });
        let renewed = leases
            .patch(&name, &PatchParams::default(), &Patch::Merge(&lease))
            .await;
        if matches!(renewed, Err(kube::Error::Api(ref s)) if s.code == 404)
            && let Ok(l) = serde_json::from_value::<Lease>(lease)
        {
            let _ = leases.create(&PostParams::default(), &l).await;
        }
        let ts = crate::objects::timestamp(now);
        let beat = json!({"status": {"conditions": [{
            "type": "Ready", "status": "True", "reason": "KubeletReady",
            "message": "keyhole-testkit node is posting ready status",
            "lastHeartbeatTime": ts,
        }]}});
        let _ = nodes
            .patch_status(&name, &PatchParams::default(), &Patch::Strategic(&beat))
            .await;
        tokio::time::sleep(HEARTBEAT).await;
    }
}

fn first_cert(pem: &str) -> Result<CertificateDer<'static>, TestkitError> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()
        .ok_or_else(|| TestkitError::Tls("no certificate in the PEM".to_owned()))?
        .map_err(|e| TestkitError::Tls(e.to_string()))
}

/// The kubelet server's TLS: its serving certificate, and a client certificate required and
/// verified against the client CA.
fn server_tls(config: &RealNodeConfig) -> Result<TlsAcceptor, TestkitError> {
    let tls = |e: &dyn std::fmt::Display| TestkitError::Tls(e.to_string());
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(config.serving_cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| tls(&e))?;
    let key =
        PrivateKeyDer::from_pem_slice(config.serving_key_pem.as_bytes()).map_err(|e| tls(&e))?;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(config.client_ca_pem.as_bytes()) {
        roots.add(c.map_err(|e| tls(&e))?).map_err(|e| tls(&e))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| tls(&e))?;
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls(&e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| tls(&e))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

type Body = Full<Bytes>;

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Accepts TLS connections from the API server (and nobody else) and serves the kubelet's
/// exec and log endpoints.
async fn serve_kubelet(
    listener: TcpListener,
    tls: TlsAcceptor,
    expected_client: CertificateDer<'static>,
    shared: Arc<Shared>,
) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let (tls, expected, shared) = (tls.clone(), expected_client.clone(), shared.clone());
        tokio::spawn(async move {
            let Ok(stream) = tls.accept(tcp).await else {
                return;
            };
            // Chained to the client CA is not enough: only the API server's own certificate.
            let peer = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first());
            if peer != Some(&expected) {
                return;
            }
            let svc = hyper::service::service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, std::convert::Infallible>(route(shared, req)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .with_upgrades()
                .await;
        });
    }
}

/// The query as (key, value) pairs, percent-decoded.
fn query(req: &Request<hyper::body::Incoming>) -> Vec<(String, String)> {
    req.uri()
        .query()
        .map(|q| {
            url_pairs(q)
                .into_iter()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn url_pairs(q: &str) -> Vec<(std::borrow::Cow<'_, str>, std::borrow::Cow<'_, str>)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains(['%', '+']) {
        return s.into();
    }
    let hex = |c: u8| (c as char).to_digit(16);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'+', _, _) => out.push(b' '),
            (b'%', Some(h), Some(l)) => {
                // Two hex digits make one byte (< 256).
                out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                i += 2;
            }
            (c, _, _) => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned().into()
}

fn route(shared: Arc<Shared>, mut req: Request<hyper::body::Incoming>) -> Response<Body> {
    let path: Vec<String> = req
        .uri()
        .path()
        .trim_start_matches('/')
        .split('/')
        .map(|s| percent_decode(s).into_owned())
        .collect();
    let q = query(&req);
    let flag = |k: &str| q.iter().any(|(n, v)| n == k && (v == "1" || v == "true"));
    let param = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    match path.as_slice() {
        [ep, ns, pod, container] if ep == "containerLogs" && req.method() == http::Method::GET => {
            let Some(mut log) = shared.log(ns, pod, container) else {
                return text(
                    StatusCode::NOT_FOUND,
                    format!("container {container:?} of pod {ns}/{pod} is not on this node"),
                );
            };
            if let Some(n) = param("tailLines").and_then(|n| n.parse::<usize>().ok()) {
                let starts: Vec<usize> = std::iter::once(0)
                    .chain(
                        log.iter()
                            .enumerate()
                            .filter(|(i, b)| **b == b'\n' && i + 1 < log.len())
                            .map(|(i, _)| i + 1),
                    )
                    .collect();
                let from = if n == 0 {
                    log.len()
                } else {
                    starts[starts.len().saturating_sub(n)]
                };
                log.drain(..from);
            }
            if let Some(n) = param("limitBytes").and_then(|n| n.parse::<usize>().ok()) {
                log.truncate(n);
            }
            text(StatusCode::OK, log)
        }
        [ep, ns, pod, container]
            if ep == "exec"
                && (req.method() == http::Method::GET || req.method() == http::Method::POST) =>
        {
            let h = |n: header::HeaderName| {
                req.headers()
                    .get(n)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_ascii_lowercase()
            };
            let upgrade = h(header::UPGRADE);
            let command: Vec<String> = q
                .iter()
                .filter(|(k, _)| k == "command")
                .map(|(_, v)| v.clone())
                .collect();
            if command.is_empty() {
                return text(
                    StatusCode::BAD_REQUEST,
                    "you must specify at least 1 command",
                );
            }
            let request = ExecRequest {
                namespace: ns.clone(),
                pod: pod.clone(),
                container: container.clone(),
                command,
                stdin: Vec::new(),
                tty: flag("tty"),
                // The kubelet does not learn who asked: the API server authorized it.
                identity: crate::Identity::Anonymous,
            };
            if upgrade == "spdy/3.1" {
                return spdy_upgrade(shared, &mut req, request, &flag);
            }
            let key = req
                .headers()
                .get(header::SEC_WEBSOCKET_KEY)
                .map(|k| k.as_bytes().to_vec());
            let (true, Some(key)) = (upgrade == "websocket", key) else {
                return text(StatusCode::BAD_REQUEST, "Upgrade request required");
            };
            let offered = h(header::SEC_WEBSOCKET_PROTOCOL);
            let offered: Vec<&str> = offered.split(',').map(str::trim).collect();
            let protocol = if offered.contains(&"v5.channel.k8s.io") {
                "v5.channel.k8s.io"
            } else if offered.contains(&"v4.channel.k8s.io") {
                "v4.channel.k8s.io"
            } else {
                return text(
                    StatusCode::BAD_REQUEST,
                    "the keyhole-testkit node speaks only v5.channel.k8s.io and v4.channel.k8s.io",
                );
            };
            let start = ExecStart {
                request,
                want_stdin: flag("input"),
                want_stdout: flag("output"),
                want_stderr: flag("error"),
                protocol,
                accept_key: accept_key(&key),
            };
            let Some(on_upgrade) = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>()
            else {
                return text(StatusCode::BAD_REQUEST, "Upgrade request required");
            };
            let mut res = Response::new(Full::new(Bytes::new()));
            *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            let hs = res.headers_mut();
            hs.insert(header::UPGRADE, http::HeaderValue::from_static("websocket"));
            hs.insert(
                header::CONNECTION,
                http::HeaderValue::from_static("Upgrade"),
            );
            if let Ok(v) = http::HeaderValue::from_str(&start.accept_key) {
                hs.insert(header::SEC_WEBSOCKET_ACCEPT, v);
            }
            hs.insert(
                header::SEC_WEBSOCKET_PROTOCOL,
                http::HeaderValue::from_static(protocol),
            );
            tokio::spawn(async move {
                if let Ok(io) = on_upgrade.await {
                    crate::exec::serve_node_exec(shared.as_ref(), io, start).await;
                }
            });
            res
        }
        _ => text(StatusCode::NOT_FOUND, "not found"),
    }
}

/// Answers a SPDY/3.1 exec upgrade (what the API server sends with its stream translator on)
/// and runs the session on the upgraded connection.
fn spdy_upgrade(
    shared: Arc<Shared>,
    req: &mut Request<hyper::body::Incoming>,
    request: ExecRequest,
    flag: &dyn Fn(&str) -> bool,
) -> Response<Body> {
    if request.tty {
        return text(
            StatusCode::BAD_REQUEST,
            "tty exec is not supported by the keyhole-testkit node",
        );
    }
    let offered = req
        .headers()
        .get_all("x-stream-protocol-version")
        .iter()
        .filter_map(|v| v.to_str().ok());
    let Some(protocol) = super::spdy::negotiate(offered) else {
        return text(
            StatusCode::FORBIDDEN,
            "unable to upgrade: unable to negotiate protocol: the keyhole-testkit node speaks \
             v5.channel.k8s.io and v4.channel.k8s.io",
        );
    };
    let Some(on_upgrade) = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>() else {
        return text(StatusCode::BAD_REQUEST, "Upgrade request required");
    };
    let exec = super::spdy::SpdyExec {
        request,
        want_stdin: flag("input"),
        want_stdout: flag("output"),
        want_stderr: flag("error"),
    };
    let mut res = Response::new(Full::new(Bytes::new()));
    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let hs = res.headers_mut();
    hs.insert(
        header::CONNECTION,
        http::HeaderValue::from_static("Upgrade"),
    );
    hs.insert(header::UPGRADE, http::HeaderValue::from_static("SPDY/3.1"));
    hs.insert(
        "x-stream-protocol-version",
        http::HeaderValue::from_static(protocol),
    );
    tokio::spawn(async move {
        if let Ok(io) = on_upgrade.await {
            super::spdy::serve(shared.as_ref(), TokioIo::new(io), exec).await;
        }
    });
    res
}

#[cfg(test)]
mod tests {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    };
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    struct Ca {
        params: CertificateParams,
        key: KeyPair,
        pem: String,
    }

    fn ca(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let pem = params.self_signed(&key).unwrap().pem();
        Ca { params, key, pem }
    }

    /// (certificate PEM, key PEM) issued by `ca`.
    fn leaf(ca: &Ca, cn: &str, server: bool) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let sans = if server {
            vec!["127.0.0.1".to_owned()]
        } else {
            vec![]
        };
        let mut params = CertificateParams::new(sans).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![if server {
            ExtendedKeyUsagePurpose::ServerAuth
        } else {
            ExtendedKeyUsagePurpose::ClientAuth
        }];
        let cert = params
            .signed_by(&key, &Issuer::from_params(&ca.params, &ca.key))
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// One HTTP request to the kubelet server presenting `client` (or no certificate); what
    /// came back before the connection ended (empty when the server closed it unanswered).
    async fn ask(port: u16, node_ca: &str, client: Option<&(String, String)>) -> String {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(first_cert(node_ca).unwrap()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = match client {
            Some((cert, key)) => builder
                .with_client_auth_cert(
                    vec![first_cert(cert).unwrap()],
                    PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
                )
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let Ok(mut tls) = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
        else {
            return String::new();
        };
        let req =
            "GET /containerLogs/prod/web-0/app HTTP/1.1\r\nHost: node\r\nConnection: close\r\n\r\n";
        if tls.write_all(req.as_bytes()).await.is_err() {
            return String::new();
        }
        let mut out = Vec::new();
        let _ = tls.read_to_end(&mut out).await;
        String::from_utf8_lossy(&out).into_owned()
    }

    /// The kubelet endpoint answers the API server's client certificate only: not another
    /// certificate of the same client CA, not a client without one.
    #[tokio::test]
    async fn the_kubelet_server_answers_only_the_api_servers_certificate() {
        let (client_ca, node_ca) = (ca("client CA"), ca("node CA"));
        let apiserver = leaf(&client_ca, "kube-apiserver-kubelet-client", false);
        let intruder = leaf(&client_ca, "system:node:other", false);
        let serving = leaf(&node_ca, "keyhole-node", true);
        let config = RealNodeConfig {
            node: kube::Config::new("https://127.0.0.1:1".parse().unwrap()),
            scheduler: None,
            serving_cert_pem: serving.0,
            serving_key_pem: serving.1,
            client_ca_pem: client_ca.pem.clone(),
            apiserver_client_cert_pem: apiserver.0.clone(),
        };
        let workdir = tempfile::tempdir().unwrap();
        let runc = super::super::runc::Runc::new()
            .unwrap_or_else(|e| panic!("the node's kubelet state needs runc: {e}"));
        let shared = Arc::new(Shared::new(
            "keyhole-node".into(),
            runc,
            Images::new(),
            workdir.path().to_path_buf(),
            serde_json::Value::Null,
            "khtest".into(),
            false,
        ));
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(serve_kubelet(
            listener,
            server_tls(&config).unwrap(),
            first_cert(&config.apiserver_client_cert_pem).unwrap(),
            shared,
        ));

        let answer = ask(port, &node_ca.pem, Some(&apiserver)).await;
        assert!(
            answer.starts_with("HTTP/1.1 404"),
            "the API server is answered (no such container here): {answer:?}"
        );
        assert!(answer.contains("is not on this node"), "{answer:?}");
        assert_eq!(ask(port, &node_ca.pem, Some(&intruder)).await, "");
        assert_eq!(ask(port, &node_ca.pem, None).await, "");
        server.abort();
    }
}
