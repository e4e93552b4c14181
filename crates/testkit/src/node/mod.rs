//! A **test double of a Kubernetes node**: it runs the pods bound to it as real `runc`
//! containers on this machine, as a kubelet with containerd would. It is not a kubelet and not
//! Kubernetes; it exists so that keyhole's cluster workflows can be tested against real
//! processes, real namespaces and real permission checks.
//!
//! What it does, per pod bound to it (`spec.nodeName` = the node's name; with
//! [`NodeOptions::adopt_unscheduled`] it also binds pods nobody bound, as the scheduler would):
//!
//! - one runc container per container, from the root filesystem of its image ([`Images`]: image
//!   reference → directory), each on its own overlay so the image is never written;
//!   `config.json` from `runc spec` with the TOOLS.md edits (no rlimits, no `linux.resources`,
//!   no terminal), the pod's and container's securityContext mapped as containerd maps it
//!   (`runAsUser`/`runAsGroup`/`supplementalGroups`/`fsGroup` → user and groups, `capabilities`
//!   add/drop over containerd's 14 defaults, `allowPrivilegeEscalation: false` →
//!   `noNewPrivileges`, `readOnlyRootFilesystem` → read-only root), env, command and args;
//! - the pod's containers share the first container's network, IPC and UTS namespaces, and with
//!   `shareProcessNamespace: true` its PID namespace (there is no pause container, so the first
//!   container is PID 1, where Kubernetes would show `pause`);
//! - ephemeral containers (added through `pods/ephemeralcontainers`) start in the PID namespace
//!   of their `targetContainerName`, with their securityContext mapped the same way;
//! - pod status from the real processes: `Running` with `containerStatuses` /
//!   `ephemeralContainerStatuses` running, then terminated with the real exit code; `Succeeded`
//!   or `Failed` once every container ended (**no restarts**, whatever the `restartPolicy`);
//!   `activeDeadlineSeconds` (on the API's clock, so a fake clock advance triggers it) kills
//!   the pod's containers and fails it with `DeadlineExceeded`;
//!   `ErrImagePull` for an unregistered image, `CreateContainerConfigError` for a spec it
//!   cannot honour (`runAsNonRoot` as root, `privileged`, env `valueFrom`);
//! - `pods/exec` (WebSocket v4/v5; SPDY/3.1 from a real API server) becomes `runc exec` in the
//!   named container, streamed both ways (stdin as it arrives, stdout/stderr as they are
//!   written, then the exit Status); the process inherits the container's user, capabilities
//!   and `noNewPrivileges`, as a CRI exec;
//! - `pods/log` serves each container's stdout and stderr (one combined file, as the kubelet's),
//!   with `container=`, `tailLines` and `limitBytes`;
//! - deleting a pod kills and deletes its containers and removes their files; [`Node::shutdown`]
//!   (and dropping the node) does that for every pod and verifies that `runc list` shows none
//!   of the node's containers and no overlay of it stays mounted.
//!
//! Not modelled: volumes (so no service-account token is ever mounted), init containers,
//! restarts, probes, resource limits and cgroups settings, seccomp and AppArmor profiles, image
//! config groups (`supplementalGroupsPolicy`), `/etc/hosts` and `resolv.conf`, TTY exec,
//! `sinceSeconds`/`timestamps`/`follow` on logs, pod IPs, graceful termination (deletion is
//! immediate in the fake and the node answers it with SIGKILL). A container killed by the test process dying
//! without unwinding (abort, SIGKILL) is left behind: `runc list` shows it by its id prefix.
//!
//! # The API boundary
//!
//! The node reads and writes the cluster only through [`NodeApi`] (pods bound to it, a change
//! signal, binding, status updates, the clock, confirming deletions); [`FakeCluster`]
//! implements it in-process and the API server reaches the node's containers through the
//! kubelet's two endpoints, which the fake calls in-process (`exec`, `log`). For a real API
//! server, [`RealNode`] puts together [`KubeNodeApi`] (the same loop over `kube::Client`s, as
//! `system:node:<name>`), the registration of its `Node` object and Lease, and an HTTPS
//! kubelet serving `/exec/…` (WebSocket, or SPDY/3.1 as the API server's stream translator
//! speaks it) and `/containerLogs/…` to the API server only. `cargo xtask cluster up` runs it
//! as a process (the `node` example of this crate).
//!
//! # Use
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use keyhole_testkit::FakeCluster;
//! use keyhole_testkit::node::{Image, Images, Node, NodeOptions, rootfs};
//!
//! let cluster = FakeCluster::new();
//! let root = rootfs::busybox(&rootfs::cache_dir().join("busybox"))?;
//! let images = Images::new().with("busybox:1.36", Image::new(root));
//! let node = Node::start(&cluster, images, NodeOptions::default())?;
//! // Create pods with spec.nodeName = node.name() (or rely on adopt_unscheduled), then:
//! node.wait_running("prod", "web-0", std::time::Duration::from_secs(10)).await?;
//! node.shutdown()?;
//! # Ok(()) }
//! ```

mod api;
mod image;
mod kubelet;
mod oci;
mod real;
pub mod rootfs;
mod runc;
mod spdy;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;

pub use api::NodeApi;
pub use image::{Image, Images};
pub use real::{KubeNodeApi, RealNode, RealNodeConfig};

use crate::cluster::FakeCluster;
use crate::error::TestkitError;
use kubelet::{Shared, lock};

/// How a [`Node`] behaves.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// The node's name (pods bind to it through `spec.nodeName`). Default `keyhole-node`.
    pub name: String,
    /// Also bind pods with no `spec.nodeName`, as the scheduler would (so a pod created through
    /// the API, like keyhole's `--launch` scan pod, runs here). Default `true`. Seeded pods meant
    /// for the simulated kubelet need a `nodeName` of their own (`add_running_pod` sets one).
    pub adopt_unscheduled: bool,
    /// How often the kubelet loop looks at the API and the processes. Default 20 ms.
    pub poll: Duration,
    /// Where bundles, overlays and logs go (a fresh directory is created inside). Default the
    /// system temporary directory.
    pub workdir_parent: Option<PathBuf>,
}

impl Default for NodeOptions {
    fn default() -> Self {
        Self {
            name: "keyhole-node".to_owned(),
            adopt_unscheduled: true,
            poll: Duration::from_millis(20),
            workdir_parent: None,
        }
    }
}

/// A test double of a Kubernetes node running pods as real runc containers (see the module
/// documentation). Stop it with [`Node::shutdown`]; dropping it does the same, ignoring errors.
pub struct Node {
    shared: Arc<Shared>,
    api: Arc<dyn NodeApi>,
    cluster: Option<FakeCluster>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    last_error: Arc<std::sync::Mutex<Option<String>>>,
    workdir: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("name", &self.shared.name)
            .field("id_prefix", &self.shared.id_prefix)
            .finish_non_exhaustive()
    }
}

impl Node {
    /// Starts a node serving `cluster`'s pods bound to `options.name`: exec, logs and ephemeral
    /// containers of those pods go to real containers from then on. Needs root and `runc`
    /// (errors say so).
    pub fn start(
        cluster: &FakeCluster,
        images: Images,
        options: NodeOptions,
    ) -> Result<Self, TestkitError> {
        if cluster.has_kubelet(&options.name) {
            return Err(TestkitError::Node(format!(
                "a node named {:?} already serves this cluster; give the second one another NodeOptions::name",
                options.name
            )));
        }
        let mut node = Self::start_with_api(Arc::new(cluster.clone()), images, options)?;
        cluster.attach_kubelet(&node.shared.name, node.shared.clone());
        node.cluster = Some(cluster.clone());
        Ok(node)
    }

    /// Starts a node against any [`NodeApi`]. Nothing serves its exec and log endpoints: that
    /// is the caller's (see the module documentation).
    pub fn start_with_api(
        api: Arc<dyn NodeApi>,
        images: Images,
        options: NodeOptions,
    ) -> Result<Self, TestkitError> {
        runc::require_root()?;
        let runc = runc::Runc::new()?;
        let mut builder = tempfile::Builder::new();
        builder.prefix("keyhole-node-");
        let workdir = match &options.workdir_parent {
            Some(p) => {
                std::fs::create_dir_all(p)?;
                builder.tempdir_in(p)?
            }
            None => builder.tempdir()?,
        };
        let template = runc.spec_template(&workdir.path().join("template"))?;
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let id_prefix = format!(
            "khnode-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        );
        let shared = Arc::new(Shared::new(
            options.name.clone(),
            runc,
            images,
            workdir.path().to_path_buf(),
            template,
            id_prefix,
            options.adopt_unscheduled,
        ));
        let stop = Arc::new(AtomicBool::new(false));
        let last_error = Arc::new(std::sync::Mutex::new(None));
        let thread = {
            let (shared, api, stop, last_error) = (
                shared.clone(),
                api.clone(),
                stop.clone(),
                last_error.clone(),
            );
            let poll = options.poll;
            std::thread::Builder::new()
                .name(format!("node-{}", options.name))
                .spawn(move || {
                    let mut seen = String::new();
                    let mut last_pass = Instant::now();
                    while !stop.load(Ordering::SeqCst) {
                        // A pass when the API changed, and at least every 200 ms for the
                        // processes; otherwise only the cheap change check.
                        let version = api.version();
                        let busy = shared_has_live(&shared);
                        if version != seen
                            || busy
                            || last_pass.elapsed() > Duration::from_millis(200)
                        {
                            seen = version;
                            last_pass = Instant::now();
                            let r = shared.reconcile(api.as_ref());
                            *lock(&last_error) = r.err().map(|e| e.to_string());
                        }
                        std::thread::sleep(poll);
                    }
                })?
        };
        Ok(Self {
            shared,
            api,
            cluster: None,
            stop,
            thread: Some(thread),
            last_error,
            workdir: Some(workdir),
        })
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The prefix of every runc container id this node creates (`khnode-PID-N`).
    pub fn id_prefix(&self) -> &str {
        &self.shared.id_prefix
    }

    /// Every runc id this node started so far.
    pub fn container_ids(&self) -> Vec<String> {
        lock(&self.shared.started_ids).clone()
    }

    /// Registers (or replaces) an image while the node runs.
    pub fn add_image(&self, reference: impl Into<String>, image: Image) {
        lock(&self.shared.images).insert(reference, image);
    }

    /// Forgets an image: containers created from now on with it are `ErrImagePull` (an
    /// ephemeral container that never starts).
    pub fn remove_image(&self, reference: &str) {
        lock(&self.shared.images).remove(reference);
    }

    /// Kills a running container (regular or ephemeral) with SIGKILL, as if it crashed or was
    /// OOM-killed; its status becomes terminated with exit code 137 and, with no container left
    /// running, the pod `Failed`. Errors when it is not running.
    pub fn kill_container(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
    ) -> Result<(), TestkitError> {
        if self.shared.kill_container(namespace, pod, container) {
            Ok(())
        } else {
            Err(TestkitError::Node(format!(
                "container {container:?} of pod {namespace}/{pod} is not running on this node"
            )))
        }
    }

    /// The host PID of a running container's init (for tests that look from outside).
    pub fn container_pid(&self, namespace: &str, pod: &str, container: &str) -> Option<u32> {
        let pods = lock(&self.shared.pods);
        let p = pods.get(&(namespace.to_owned(), pod.to_owned()))?;
        p.containers.iter().find(|c| c.name == container)?.pid
    }

    /// The file holding a container's stdout and stderr (what `pods/log` serves).
    pub fn container_log_path(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
    ) -> Option<PathBuf> {
        let pods = lock(&self.shared.pods);
        let p = pods.get(&(namespace.to_owned(), pod.to_owned()))?;
        Some(
            p.containers
                .iter()
                .find(|c| c.name == container)?
                .log
                .clone(),
        )
    }

    /// The last error of the kubelet loop (API unreachable…), if its last pass failed.
    pub fn last_error(&self) -> Option<String> {
        lock(&self.last_error).clone()
    }

    /// Waits until `pred` holds for the pod as the API reports it; returns that pod. Fails
    /// with the pod's last status after `timeout`.
    pub async fn wait_pod(
        &self,
        namespace: &str,
        name: &str,
        timeout: Duration,
        pred: impl Fn(&Pod) -> bool,
    ) -> Result<Pod, TestkitError> {
        let deadline = Instant::now() + timeout;
        loop {
            let pod = self.api.pods_on(&self.shared.name)?.into_iter().find(|p| {
                p.metadata.namespace.as_deref() == Some(namespace)
                    && p.metadata.name.as_deref() == Some(name)
            });
            if let Some(p) = &pod
                && pred(p)
            {
                return Ok(pod.unwrap_or_default());
            }
            if Instant::now() > deadline {
                return Err(TestkitError::Node(format!(
                    "pod {namespace}/{name} did not reach the expected state within {timeout:?}; \
                     last seen status: {}; node loop error: {}",
                    pod.and_then(|p| p.status)
                        .map(|s| serde_json::to_string(&s).unwrap_or_default())
                        .unwrap_or_else(|| "(not on this node)".into()),
                    self.last_error().unwrap_or_else(|| "none".into())
                )));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until the pod is `Running` with every regular container running.
    pub async fn wait_running(
        &self,
        namespace: &str,
        name: &str,
        timeout: Duration,
    ) -> Result<Pod, TestkitError> {
        self.wait_pod(namespace, name, timeout, |p| {
            let st = p.status.clone().unwrap_or_default();
            st.phase.as_deref() == Some("Running")
                && st
                    .container_statuses
                    .iter()
                    .flatten()
                    .all(|c| c.state.as_ref().and_then(|s| s.running.as_ref()).is_some())
        })
        .await
    }

    /// Waits until a container (regular or ephemeral) has terminated; returns its exit code.
    pub async fn wait_terminated(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        timeout: Duration,
    ) -> Result<i32, TestkitError> {
        let code = |p: &Pod| {
            let st = p.status.clone().unwrap_or_default();
            st.container_statuses
                .into_iter()
                .flatten()
                .chain(st.ephemeral_container_statuses.into_iter().flatten())
                .find(|c| c.name == container)
                .and_then(|c| c.state?.terminated)
                .map(|t| t.exit_code)
        };
        let p = self
            .wait_pod(namespace, pod, timeout, |p| code(p).is_some())
            .await?;
        Ok(code(&p).unwrap_or_default())
    }

    /// Stops the node: kills and deletes every container it started, unmounts their roots,
    /// removes its files, detaches from the fake API server, and verifies that `runc list` shows
    /// none of its containers and nothing of it stays mounted (the error lists what leaked).
    pub fn shutdown(mut self) -> Result<(), TestkitError> {
        self.stop_all()
    }

    fn stop_all(&mut self) -> Result<(), TestkitError> {
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        self.stop.store(true, Ordering::SeqCst);
        let _ = thread.join();
        if let Some(cluster) = self.cluster.take() {
            cluster.detach_kubelet(&self.shared.name);
        }
        let pods: Vec<_> = std::mem::take(&mut *lock(&self.shared.pods))
            .into_values()
            .collect();
        for rt in pods {
            self.shared.teardown(rt);
        }
        let mut leaks = Vec::new();
        match self.shared.runc.list() {
            Ok(ids) => leaks.extend(
                ids.into_iter()
                    .filter(|id| id.starts_with(&format!("{}-", self.shared.id_prefix))),
            ),
            Err(e) => leaks.push(format!("(runc list failed: {e})")),
        }
        let workdir = self.workdir.take();
        if let Some(dir) = &workdir {
            leaks.extend(mounts_under(dir.path()));
        }
        if let Some(dir) = workdir
            && leaks.is_empty()
        {
            dir.close()?;
        }
        if leaks.is_empty() {
            Ok(())
        } else {
            Err(TestkitError::Node(format!(
                "the node left containers or mounts behind: {}",
                leaks.join(", ")
            )))
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.stop_all();
    }
}

/// Whether any container has a live process (then the loop passes every tick to see exits).
fn shared_has_live(shared: &Shared) -> bool {
    lock(&shared.pods)
        .values()
        .any(|p| p.containers.iter().any(|c| c.pid.is_some()))
}

/// Mount points at or under `dir` (from `/proc/self/mountinfo`).
fn mounts_under(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let prefix = dir.to_string_lossy().into_owned();
    text.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&prefix))
        .map(str::to_owned)
        .collect()
}
