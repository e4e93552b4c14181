//! The node's kubelet loop: make the runc containers match the pods bound to the node, and
//! report what the real processes do as pod status.
//!
//! Lock discipline: `Shared::pods` is never held while calling [`NodeApi`] (the fake API server
//! calls [`Kubelet::log`] while holding its own lock).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, Pod, PodStatus};
use serde_json::{Value, json};

use super::api::NodeApi;
use super::image::Images;
use super::oci::{self, Join};
use super::runc::Runc;
use crate::cluster::Kubelet;
use crate::error::TestkitError;
use crate::exec::ExecRequest;

/// How long a container may take to reach `running` before it counts as failed to start.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// What a container is doing, in the kubelet's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CState {
    Waiting {
        reason: String,
        message: String,
    },
    Running {
        started: Timestamp,
    },
    Terminated {
        exit_code: i32,
        reason: String,
        message: Option<String>,
        started: Option<Timestamp>,
        finished: Timestamp,
    },
}

/// One container (regular or ephemeral) of a pod on this node.
#[derive(Debug)]
pub(crate) struct ContainerRt {
    pub(crate) name: String,
    image: String,
    ephemeral: bool,
    /// The runc id, once `runc run` was started.
    pub(crate) id: Option<String>,
    /// The overlay mount point (the container's root), once mounted.
    rootfs: Option<PathBuf>,
    pub(crate) log: PathBuf,
    /// The foreground `runc run`, while it lives.
    child: Option<Child>,
    /// The container's init, as the host numbers it, once running.
    pub(crate) pid: Option<u32>,
    pub(crate) state: CState,
}

/// One pod on this node.
#[derive(Debug)]
pub(crate) struct PodRt {
    uid: String,
    dir: PathBuf,
    started: Timestamp,
    pub(crate) containers: Vec<ContainerRt>,
    last_status: Option<Value>,
    /// `activeDeadlineSeconds` passed (on the API's clock): every container was killed.
    deadline_exceeded: bool,
}

/// State shared by the node's thread, its kubelet endpoints and its owner.
pub(crate) struct Shared {
    pub(crate) name: String,
    pub(crate) runc: Runc,
    pub(crate) images: Mutex<Images>,
    pub(crate) pods: Mutex<BTreeMap<(String, String), PodRt>>,
    pub(crate) workdir: PathBuf,
    pub(crate) template: Value,
    pub(crate) id_prefix: String,
    next_id: AtomicU64,
    /// Every runc id this node ever started (leak checks).
    pub(crate) started_ids: Mutex<Vec<String>>,
    pub(crate) adopt_unscheduled: bool,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn exit_code(st: std::process::ExitStatus) -> i32 {
    st.code()
        .unwrap_or_else(|| 128 + std::os::unix::process::ExitStatusExt::signal(&st).unwrap_or(0))
}

fn terminated(
    exit_code: i32,
    started: Option<Timestamp>,
    now: Timestamp,
    message: Option<String>,
) -> CState {
    CState::Terminated {
        exit_code,
        reason: if exit_code == 0 { "Completed" } else { "Error" }.to_owned(),
        message,
        started,
        finished: now,
    }
}

/// The last few lines of a log (why a container failed to start: runc writes there too).
fn log_tail(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(5)..].join("\n");
    (!tail.is_empty()).then_some(tail)
}

impl Shared {
    pub(crate) fn new(
        name: String,
        runc: Runc,
        images: Images,
        workdir: PathBuf,
        template: Value,
        id_prefix: String,
        adopt_unscheduled: bool,
    ) -> Self {
        Self {
            name,
            runc,
            images: Mutex::new(images),
            pods: Mutex::new(BTreeMap::new()),
            workdir,
            template,
            id_prefix,
            next_id: AtomicU64::new(0),
            started_ids: Mutex::new(Vec::new()),
            adopt_unscheduled,
        }
    }

    /// One pass of the kubelet loop.
    pub(crate) fn reconcile(&self, api: &dyn NodeApi) -> Result<(), TestkitError> {
        if self.adopt_unscheduled {
            for p in api.unscheduled_pods()? {
                let (ns, name) = (
                    p.metadata.namespace.unwrap_or_default(),
                    p.metadata.name.unwrap_or_default(),
                );
                // Someone else may bind it or delete it in between: both are fine.
                let _ = api.bind(&ns, &name, &self.name);
            }
        }
        let pods = api.pods_on(&self.name)?;
        let now = api.now();
        let mut want: BTreeMap<(String, String), Pod> = BTreeMap::new();
        let mut deleting = Vec::new();
        for p in pods {
            if p.metadata.deletion_timestamp.is_some() {
                deleting.push((
                    p.metadata.namespace.clone().unwrap_or_default(),
                    p.metadata.name.clone().unwrap_or_default(),
                    p.metadata.uid.clone().unwrap_or_default(),
                ));
                continue;
            }
            let key = (
                p.metadata.namespace.clone().unwrap_or_default(),
                p.metadata.name.clone().unwrap_or_default(),
            );
            want.insert(key, p);
        }
        let mut updates = Vec::new();
        let gone: Vec<PodRt> = {
            let mut map = lock(&self.pods);
            let stale: Vec<(String, String)> = map
                .iter()
                .filter(|(k, rt)| {
                    want.get(*k).and_then(|p| p.metadata.uid.as_deref()) != Some(rt.uid.as_str())
                })
                .map(|(k, _)| k.clone())
                .collect();
            let gone = stale.iter().filter_map(|k| map.remove(k)).collect();
            for (key, pod) in &want {
                let rt = map
                    .entry(key.clone())
                    .or_insert_with(|| self.new_pod(pod, now));
                self.sync_pod(pod, rt, now);
                let mut status = status_of(rt);
                // The API server sets the QoS class at admission and refuses to see it change.
                if let Some(qos) = pod.status.as_ref().and_then(|s| s.qos_class.clone()) {
                    status.qos_class = Some(qos);
                }
                let value = serde_json::to_value(&status)?;
                if rt.last_status.as_ref() != Some(&value) {
                    rt.last_status = Some(value);
                    updates.push((key.clone(), rt.uid.clone(), status));
                }
            }
            gone
        };
        for rt in gone {
            self.teardown(rt);
        }
        // Their containers are gone (torn down above, or never started here): the deletion
        // may complete. A failure is retried on the next pass, which sees the pod again.
        for (ns, name, uid) in deleting {
            let _ = api.confirm_deleted(&ns, &name, &uid);
        }
        let mut refused = None;
        for ((ns, name), uid, status) in updates {
            if let Err(e) = api.update_status(&ns, &name, &uid, &status) {
                // Deleted meanwhile, or the write failed: the next pass retries; the error is
                // the pass's (`Node::last_error`) so a refused status does not go unseen.
                refused.get_or_insert(TestkitError::Node(format!(
                    "the status of pod {ns}/{name} was not written: {e}"
                )));
                if let Some(rt) = lock(&self.pods).get_mut(&(ns, name)) {
                    rt.last_status = None;
                }
            }
        }
        refused.map_or(Ok(()), Err)
    }

    fn new_pod(&self, pod: &Pod, now: Timestamp) -> PodRt {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let rt = PodRt {
            dir: self.workdir.join("pods").join(&uid),
            uid,
            started: now,
            containers: Vec::new(),
            last_status: None,
            deadline_exceeded: false,
        };
        let _ = std::fs::create_dir_all(rt.dir.join("logs"));
        rt
    }

    /// Starts what the pod asks for and is not started yet; notes processes that ended.
    fn sync_pod(&self, pod: &Pod, rt: &mut PodRt, now: Timestamp) {
        let spec = pod.spec.clone().unwrap_or_default();
        if rt.containers.is_empty() {
            for c in &spec.containers {
                let joins = self.joins_for(pod, rt, None);
                let crt = self.start(pod, rt, c, false, &joins, now);
                rt.containers.push(crt);
            }
        }
        for e in spec.ephemeral_containers.iter().flatten() {
            if rt.containers.iter().any(|c| c.name == e.name) {
                continue;
            }
            let c: Container = match serde_json::to_value(e).and_then(serde_json::from_value) {
                Ok(c) => c,
                Err(_) => continue,
            };
            let joins = self.joins_for(pod, rt, e.target_container_name.as_deref());
            let crt = self.start(pod, rt, &c, true, &joins, now);
            rt.containers.push(crt);
        }
        // The kubelet ends a pod that outlived its activeDeadlineSeconds.
        if let Some(limit) = spec.active_deadline_seconds
            && !rt.deadline_exceeded
            && now.as_second() - rt.started.as_second() >= limit
        {
            rt.deadline_exceeded = true;
            for c in &rt.containers {
                if c.child.is_some()
                    && let Some(id) = &c.id
                {
                    self.runc.kill(id);
                }
            }
        }
        for c in &mut rt.containers {
            if let Some(child) = c.child.as_mut()
                && let Ok(Some(st)) = child.try_wait()
            {
                c.child = None;
                c.pid = None;
                let started = match &c.state {
                    CState::Running { started } => Some(*started),
                    _ => None,
                };
                c.state = terminated(exit_code(st), started, now, None);
            }
        }
    }

    /// The namespaces a new container joins: the pod's network, IPC and UTS (held by its first
    /// container: there is no pause container), and the PID namespace of the target
    /// (ephemeral `targetContainerName`) or, with `shareProcessNamespace`, of the first
    /// container.
    fn joins_for(&self, pod: &Pod, rt: &PodRt, target: Option<&str>) -> Vec<Join> {
        let first = rt
            .containers
            .iter()
            .find(|c| !c.ephemeral)
            .and_then(|c| c.pid);
        let Some(first) = first else {
            return Vec::new();
        };
        let mut joins: Vec<Join> = ["network", "ipc", "uts"]
            .into_iter()
            .map(|kind| Join { kind, pid: first })
            .collect();
        let shared_pid = pod
            .spec
            .as_ref()
            .and_then(|s| s.share_process_namespace)
            .unwrap_or(false);
        let target_pid = target
            .and_then(|t| rt.containers.iter().find(|c| c.name == t))
            .and_then(|c| c.pid);
        if let Some(pid) = target_pid.or(shared_pid.then_some(first)) {
            joins.push(Join { kind: "pid", pid });
        }
        joins
    }

    fn waiting(
        name: &str,
        image: &str,
        ephemeral: bool,
        log: PathBuf,
        reason: &str,
        message: String,
    ) -> ContainerRt {
        ContainerRt {
            name: name.to_owned(),
            image: image.to_owned(),
            ephemeral,
            id: None,
            rootfs: None,
            log,
            child: None,
            pid: None,
            state: CState::Waiting {
                reason: reason.to_owned(),
                message,
            },
        }
    }

    /// Creates and starts one container; whatever goes wrong is its status, never a panic.
    fn start(
        &self,
        pod: &Pod,
        rt: &PodRt,
        c: &Container,
        ephemeral: bool,
        joins: &[Join],
        now: Timestamp,
    ) -> ContainerRt {
        let image_ref = c.image.clone().unwrap_or_default();
        let log = rt.dir.join("logs").join(format!("{}.log", c.name));
        let _ = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log);
        let image = lock(&self.images).resolve(&image_ref).cloned();
        let Some(image) = image else {
            return Self::waiting(
                &c.name,
                &image_ref,
                ephemeral,
                log,
                "ErrImagePull",
                format!(
                    "image {image_ref:?} is not registered with the keyhole-testkit node (Node::add_image)"
                ),
            );
        };
        let process = match oci::process(pod, c, &image) {
            Ok(p) => p,
            Err(e) => {
                return Self::waiting(
                    &c.name,
                    &image_ref,
                    ephemeral,
                    log,
                    "CreateContainerConfigError",
                    e.0,
                );
            }
        };
        let n = self.next_id.fetch_add(1, Ordering::SeqCst);
        let id = format!("{}-{n}", self.id_prefix);
        let dir = rt.dir.join("containers").join(&c.name);
        let mut crt = Self::waiting(
            &c.name,
            &image_ref,
            ephemeral,
            log.clone(),
            "ContainerCreating",
            String::new(),
        );
        let result = (|| -> Result<(), String> {
            let rootfs = mount_overlay(&image.rootfs, &dir)?;
            crt.rootfs = Some(rootfs.clone());
            let bundle = dir.join("bundle");
            std::fs::create_dir_all(&bundle).map_err(|e| e.to_string())?;
            let hostname = pod.metadata.name.clone().unwrap_or_default();
            let config = oci::config(&self.template, &process, &rootfs, &hostname, joins);
            std::fs::write(bundle.join("config.json"), config.to_string())
                .map_err(|e| e.to_string())?;
            lock(&self.started_ids).push(id.clone());
            let mut child = self
                .runc
                .run(&id, &bundle, &log)
                .map_err(|e| e.to_string())?;
            crt.id = Some(id.clone());
            match self.runc.wait_running(&id, &mut child, START_TIMEOUT) {
                Ok(pid) => {
                    crt.child = Some(child);
                    crt.pid = Some(pid);
                    crt.state = CState::Running { started: now };
                }
                Err(Some(st)) => {
                    // The process may have run and ended already, or runc failed to start it.
                    crt.state = terminated(exit_code(st), None, now, log_tail(&log));
                }
                Err(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    self.runc.delete(&id);
                    return Err(format!("runc did not start {id} within {START_TIMEOUT:?}"));
                }
            }
            Ok(())
        })();
        if let Err(message) = result {
            crt.state = CState::Waiting {
                reason: "CreateContainerError".to_owned(),
                message,
            };
        }
        crt
    }

    /// Sends SIGKILL to one running container (a fault for tests); false if it does not run.
    pub(crate) fn kill_container(&self, namespace: &str, pod: &str, container: &str) -> bool {
        let pods = lock(&self.pods);
        let id = pods
            .get(&(namespace.to_owned(), pod.to_owned()))
            .and_then(|p| p.containers.iter().find(|c| c.name == container))
            .filter(|c| c.child.is_some())
            .and_then(|c| c.id.clone());
        match id {
            Some(id) => {
                self.runc.kill(&id);
                true
            }
            None => false,
        }
    }

    /// Kills and deletes a pod's containers, unmounts their roots, removes its files.
    pub(crate) fn teardown(&self, mut rt: PodRt) {
        for c in &rt.containers {
            if c.child.is_some()
                && let Some(id) = &c.id
            {
                self.runc.kill(id);
            }
        }
        for c in &mut rt.containers {
            if let Some(mut child) = c.child.take() {
                let deadline = Instant::now() + Duration::from_secs(5);
                while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(5));
                }
                let _ = child.kill();
                let _ = child.wait();
            }
            if let Some(id) = &c.id {
                self.runc.delete(id);
            }
            if let Some(root) = c.rootfs.take() {
                let _ = rustix::mount::unmount(&root, rustix::mount::UnmountFlags::DETACH);
            }
        }
        let _ = std::fs::remove_dir_all(&rt.dir);
    }
}

/// An overlay of `lower` with upper and work directories under `dir`; returns the mount point.
fn mount_overlay(lower: &Path, dir: &Path) -> Result<PathBuf, String> {
    if !lower.is_dir() {
        return Err(format!(
            "image root filesystem {} is not a directory",
            lower.display()
        ));
    }
    let (upper, work, merged) = (dir.join("upper"), dir.join("work"), dir.join("rootfs"));
    for d in [&upper, &work, &merged] {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        upper.display(),
        work.display()
    );
    if data.contains(['\0'])
        || [lower, &upper, &work]
            .iter()
            .any(|p| p.to_string_lossy().contains([',', ':']))
    {
        return Err(format!("overlay paths may not contain ',' or ':': {data}"));
    }
    let data = std::ffi::CString::new(data).map_err(|e| e.to_string())?;
    rustix::mount::mount(
        "overlay",
        &merged,
        "overlay",
        rustix::mount::MountFlags::empty(),
        data.as_c_str(),
    )
    .map_err(|e| format!("cannot mount the overlay root at {}: {e}", merged.display()))?;
    Ok(merged)
}

fn ts(t: Timestamp) -> String {
    crate::objects::timestamp(t)
}

fn container_status(c: &ContainerRt) -> Value {
    let state = match &c.state {
        CState::Waiting { reason, message } => {
            let mut w = json!({"reason": reason});
            if !message.is_empty() {
                w["message"] = json!(message);
            }
            json!({"waiting": w})
        }
        CState::Running { started } => json!({"running": {"startedAt": ts(*started)}}),
        CState::Terminated {
            exit_code,
            reason,
            message,
            started,
            finished,
        } => {
            let mut t = json!({"exitCode": exit_code, "reason": reason,
                "startedAt": ts(started.unwrap_or(*finished)), "finishedAt": ts(*finished)});
            if let Some(m) = message {
                t["message"] = json!(m);
            }
            json!({"terminated": t})
        }
    };
    let running = matches!(c.state, CState::Running { .. });
    let mut s = json!({
        "name": c.name, "image": c.image, "imageID": image_id(&c.image),
        "ready": running && !c.ephemeral,
        "restartCount": 0,
        "started": running,
        "state": state,
    });
    if let Some(id) = &c.id {
        s["containerID"] = json!(format!("runc://{id}"));
    }
    s
}

/// The `imageID` a runtime reports for `image`: the repository and the digest it runs. An image
/// pinned by digest runs that digest; for a tag, this test double has no registry manifest, so
/// it stands in the SHA-256 of the reference (stable per reference, as a pulled tag would be).
/// Never empty: a real runtime always reports one, and the pre-scan check reads it.
pub(crate) fn image_id(image: &str) -> String {
    use sha2::Digest as _;
    let (named, digest) = match image.split_once("@sha256:") {
        Some((named, d)) => (named, d.to_owned()),
        None => (image, hex::encode(sha2::Sha256::digest(image.as_bytes()))),
    };
    // The repository without its tag (a ':' after the last '/'; a registry port comes before).
    let slash = named.rfind('/').map_or(0, |i| i + 1);
    let repo = match named[slash..].find(':') {
        Some(i) => &named[..slash + i],
        None => named,
    };
    format!("{repo}@sha256:{digest}")
}

/// The pod status the real processes give.
fn status_of(rt: &PodRt) -> PodStatus {
    let regular: Vec<&ContainerRt> = rt.containers.iter().filter(|c| !c.ephemeral).collect();
    let running = regular
        .iter()
        .filter(|c| matches!(c.state, CState::Running { .. }))
        .count();
    let exits: Vec<i32> = regular
        .iter()
        .filter_map(|c| match c.state {
            CState::Terminated { exit_code, .. } => Some(exit_code),
            _ => None,
        })
        .collect();
    // No restarts on this node: once every container ended, the pod is done.
    let phase = if running > 0 {
        "Running"
    } else if !regular.is_empty() && exits.len() == regular.len() {
        if exits.iter().all(|c| *c == 0) {
            "Succeeded"
        } else {
            "Failed"
        }
    } else {
        "Pending"
    };
    let phase = if rt.deadline_exceeded {
        "Failed"
    } else {
        phase
    };
    let ready = if !regular.is_empty() && running == regular.len() {
        "True"
    } else {
        "False"
    };
    let since = ts(rt.started);
    let mut status = json!({
        "phase": phase,
        "hostIP": "127.0.0.1",
        "startTime": since,
        // No qosClass: the API server computed it at admission and refuses a status that
        // changes it; one that leaves it out keeps it.
        "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": since},
            {"type": "Initialized", "status": "True", "lastTransitionTime": since},
            {"type": "ContainersReady", "status": ready, "lastTransitionTime": since},
            {"type": "Ready", "status": ready, "lastTransitionTime": since},
        ],
        "containerStatuses": regular.iter().map(|c| container_status(c)).collect::<Vec<_>>(),
    });
    if rt.deadline_exceeded {
        status["reason"] = json!("DeadlineExceeded");
        status["message"] = json!("Pod was active on the node longer than the specified deadline");
    }
    let eph: Vec<Value> = rt
        .containers
        .iter()
        .filter(|c| c.ephemeral)
        .map(container_status)
        .collect();
    if !eph.is_empty() {
        status["ephemeralContainerStatuses"] = Value::Array(eph);
    }
    serde_json::from_value(status).unwrap_or_default()
}

impl Kubelet for Shared {
    fn exec(&self, request: &ExecRequest) -> Result<tokio::process::Child, String> {
        if request.tty {
            return Err("tty exec is not supported by the keyhole-testkit node".to_owned());
        }
        let id = {
            let pods = lock(&self.pods);
            let pod = pods
                .get(&(request.namespace.clone(), request.pod.clone()))
                .ok_or_else(|| {
                    format!(
                        "pod {}/{} is not running on node {}",
                        request.namespace, request.pod, self.name
                    )
                })?;
            let c = pod
                .containers
                .iter()
                .find(|c| c.name == request.container)
                .ok_or_else(|| format!("container not found ({:?})", request.container))?;
            match (&c.state, &c.id) {
                (CState::Running { .. }, Some(id)) => id.clone(),
                _ => return Err(format!("container {:?} is not running", request.container)),
            }
        };
        self.runc
            .exec(&id, &request.command)
            .spawn()
            .map_err(|e| format!("cannot run runc exec: {e}"))
    }

    fn log(&self, namespace: &str, pod: &str, container: &str) -> Option<Vec<u8>> {
        let path = {
            let pods = lock(&self.pods);
            let p = pods.get(&(namespace.to_owned(), pod.to_owned()))?;
            p.containers
                .iter()
                .find(|c| c.name == container)?
                .log
                .clone()
        };
        std::fs::read(path).ok()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn image_ids_name_the_repository_and_a_digest() {
        let d = "ab".repeat(32);
        assert_eq!(
            super::image_id(&format!("localhost:5000/agent:0.1@sha256:{d}")),
            format!("localhost:5000/agent@sha256:{d}")
        );
        let tagged = super::image_id("busybox:1.36");
        assert!(tagged.starts_with("busybox@sha256:"), "{tagged}");
        assert_eq!(tagged.len(), "busybox@sha256:".len() + 64);
        assert_eq!(tagged, super::image_id("busybox:1.36"), "stable");
        assert_ne!(tagged, super::image_id("busybox:1.37"));
    }
}
