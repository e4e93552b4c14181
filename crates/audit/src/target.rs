//! Side effects on the target: a pod read before the scan and again after teardown, compared.
//!
//! Snapshots are taken from the pod's JSON (any `k8s-openapi` version serializes to the same
//! shape), so this crate needs no Kubernetes client: the caller reads the pod.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::AuditError;

/// One container's status as the kubelet reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerStatus {
    /// `container`, `init` or `ephemeral`.
    pub kind: &'static str,
    /// Container name.
    pub name: String,
    /// `restartCount`.
    pub restart_count: i64,
    /// `containerID` (a new one means a new container process).
    pub container_id: Option<String>,
    /// `imageID`.
    pub image_id: Option<String>,
    /// The state in one phrase: `running since T`, `waiting (REASON)`, `terminated (exit N)`.
    pub state: String,
    /// `ready`.
    pub ready: bool,
}

/// What the post-scan audit compares of a pod.
#[derive(Debug, Clone, PartialEq)]
pub struct PodSnapshot {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `metadata.uid` (another uid: the pod was replaced).
    pub uid: Option<String>,
    /// `metadata.resourceVersion`.
    pub resource_version: Option<String>,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `metadata.annotations`.
    pub annotations: BTreeMap<String, String>,
    /// `spec` without `ephemeralContainers` (compared whole).
    pub spec: Value,
    /// Ephemeral containers in the spec: (name, image).
    pub ephemeral: Vec<(String, String)>,
    /// Container statuses (regular, init and ephemeral).
    pub statuses: Vec<ContainerStatus>,
}

fn str_map(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
        .collect()
}

fn state_of(s: &Value) -> String {
    if let Some(r) = s.get("running") {
        format!("running since {}", r["startedAt"].as_str().unwrap_or("?"))
    } else if let Some(w) = s.get("waiting") {
        format!("waiting ({})", w["reason"].as_str().unwrap_or("no reason"))
    } else if let Some(t) = s.get("terminated") {
        format!("terminated (exit {})", t["exitCode"].as_i64().unwrap_or(-1))
    } else {
        "unknown".into()
    }
}

impl PodSnapshot {
    /// A snapshot of a Pod given as JSON (`serde_json::to_value(&pod)`).
    pub fn from_json(pod: &Value) -> Result<Self, AuditError> {
        let bad = |reason: &str| AuditError::Snapshot {
            reason: reason.into(),
        };
        let meta = pod.get("metadata").ok_or_else(|| bad("no metadata"))?;
        let name = meta["name"]
            .as_str()
            .ok_or_else(|| bad("no metadata.name"))?;
        let mut spec = pod.get("spec").cloned().unwrap_or(Value::Null);
        let ephemeral = match spec.as_object_mut() {
            Some(m) => m.remove("ephemeralContainers"),
            None => None,
        };
        let ephemeral = ephemeral
            .as_ref()
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|c| {
                (
                    c["name"].as_str().unwrap_or_default().to_owned(),
                    c["image"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        let mut statuses = Vec::new();
        for (field, kind) in [
            ("initContainerStatuses", "init"),
            ("containerStatuses", "container"),
            ("ephemeralContainerStatuses", "ephemeral"),
        ] {
            for s in pod["status"][field].as_array().into_iter().flatten() {
                statuses.push(ContainerStatus {
                    kind,
                    name: s["name"].as_str().unwrap_or_default().to_owned(),
                    restart_count: s["restartCount"].as_i64().unwrap_or(0),
                    container_id: s["containerID"].as_str().map(str::to_owned),
                    image_id: s["imageID"].as_str().map(str::to_owned),
                    state: state_of(&s["state"]),
                    ready: s["ready"].as_bool().unwrap_or(false),
                });
            }
        }
        Ok(Self {
            namespace: meta["namespace"].as_str().unwrap_or_default().to_owned(),
            name: name.to_owned(),
            uid: meta["uid"].as_str().map(str::to_owned),
            resource_version: meta["resourceVersion"].as_str().map(str::to_owned),
            labels: str_map(&meta["labels"]),
            annotations: str_map(&meta["annotations"]),
            spec,
            ephemeral,
            statuses,
        })
    }

    /// `namespace/name`.
    #[must_use]
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// One target pod before and after the scan.
#[derive(Debug, Clone)]
pub struct TargetPair {
    /// `namespace/name`.
    pub pod: String,
    /// Read before anything was created (or why it could not be).
    pub before: Result<PodSnapshot, String>,
    /// Read after teardown: `Ok(None)` when the pod is gone (or why it could not be read).
    pub after: Result<Option<PodSnapshot>, String>,
    /// Ephemeral containers the scan added on purpose (distroless: the run's debug container).
    pub expected_ephemeral: Vec<String>,
}

/// What changed on one pod, per aspect; empty vectors mean unchanged.
#[derive(Debug, Clone, Default)]
pub(crate) struct PodDiff {
    /// The pod is gone, was replaced, or its spec or metadata changed.
    pub identity: Vec<String>,
    /// Restart counts that changed.
    pub restarts: Vec<String>,
    /// Container states, ids or readiness that changed.
    pub containers: Vec<String>,
    /// Ephemeral containers added that were not expected.
    pub ephemeral: Vec<String>,
    /// The resourceVersion change, when nothing the scan did explains it.
    pub resource_version: Vec<String>,
    /// Notes on the scan's own ephemeral container.
    pub ephemeral_notes: Vec<String>,
    /// Notes on a resourceVersion change the scan's own container explains.
    pub rv_notes: Vec<String>,
}

pub(crate) fn diff(
    before: &PodSnapshot,
    after: Option<&PodSnapshot>,
    expected: &[String],
) -> PodDiff {
    let mut d = PodDiff::default();
    let pod = before.key();
    let Some(after) = after else {
        d.identity
            .push(format!("{pod}: the pod is gone after the scan"));
        return d;
    };
    if before.uid != after.uid {
        d.identity.push(format!(
            "{pod}: replaced (uid {} before, {} after)",
            before.uid.as_deref().unwrap_or("?"),
            after.uid.as_deref().unwrap_or("?")
        ));
    }
    if before.spec != after.spec {
        d.identity.push(format!(
            "{pod}: the spec changed (other than ephemeral containers)"
        ));
    }
    if before.labels != after.labels {
        d.identity.push(format!("{pod}: labels changed"));
    }
    if before.annotations != after.annotations {
        d.identity.push(format!("{pod}: annotations changed"));
    }
    let added: Vec<&(String, String)> = after
        .ephemeral
        .iter()
        .filter(|(n, _)| !before.ephemeral.iter().any(|(b, _)| b == n))
        .collect();
    let mut expected_added = false;
    for (name, image) in &added {
        if expected.contains(name) {
            expected_added = true;
            d.ephemeral_notes.push(format!(
                "{pod}: ephemeral container {name} ({image}) added by the scan, as expected"
            ));
        } else {
            d.ephemeral.push(format!(
                "{pod}: unexpected ephemeral container {name} ({image}) added during the scan"
            ));
        }
    }
    for (name, _) in &before.ephemeral {
        if !after.ephemeral.iter().any(|(a, _)| a == name) {
            d.identity
                .push(format!("{pod}: ephemeral container {name} disappeared"));
        }
    }
    for b in &before.statuses {
        let Some(a) = after
            .statuses
            .iter()
            .find(|a| a.kind == b.kind && a.name == b.name)
        else {
            d.containers.push(format!(
                "{pod}: {} {} has no status after the scan",
                b.kind, b.name
            ));
            continue;
        };
        let c = format!("{pod}: {} {}", b.kind, b.name);
        if a.restart_count != b.restart_count {
            d.restarts.push(format!(
                "{c}: restartCount {} before, {} after",
                b.restart_count, a.restart_count
            ));
        }
        if a.container_id != b.container_id {
            d.containers.push(format!(
                "{c}: containerID {} before, {} after",
                b.container_id.as_deref().unwrap_or("none"),
                a.container_id.as_deref().unwrap_or("none")
            ));
        }
        if a.image_id != b.image_id {
            d.containers.push(format!(
                "{c}: imageID {} before, {} after",
                b.image_id.as_deref().unwrap_or("none"),
                a.image_id.as_deref().unwrap_or("none")
            ));
        }
        if a.state != b.state {
            d.containers
                .push(format!("{c}: {} before, {} after", b.state, a.state));
        }
        if a.ready != b.ready {
            d.containers
                .push(format!("{c}: ready {} before, {} after", b.ready, a.ready));
        }
    }
    for a in &after.statuses {
        let new = !before
            .statuses
            .iter()
            .any(|b| b.kind == a.kind && b.name == a.name);
        let ours = a.kind == "ephemeral" && expected.contains(&a.name);
        if new && !ours && !d.ephemeral.iter().any(|m| m.contains(&a.name)) {
            d.containers.push(format!(
                "{pod}: {} {} appeared during the scan",
                a.kind, a.name
            ));
        }
    }
    if before.resource_version != after.resource_version {
        let rv = format!(
            "{pod}: resourceVersion {} before, {} after",
            before.resource_version.as_deref().unwrap_or("?"),
            after.resource_version.as_deref().unwrap_or("?")
        );
        if expected_added {
            d.rv_notes.push(format!(
                "{rv} (the expected ephemeral container changed it)"
            ));
        } else {
            d.resource_version.push(format!(
                "{rv}: the pod changed and the scan added nothing to it"
            ));
        }
    }
    d
}
