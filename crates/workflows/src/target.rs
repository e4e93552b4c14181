//! Which container of which pod a workflow reaches, checked against the pod as the API server
//! reports it (read with the scoped client: the scoped Role grants `pods` get on the target).

use k8s_openapi::api::core::v1::Pod;
use kube::Api;

use crate::WorkflowError;

/// One container to scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerTarget {
    /// Namespace of the pod.
    pub namespace: String,
    /// Pod name.
    pub pod: String,
    /// Container name.
    pub container: String,
}

impl ContainerTarget {
    /// The target as HDF names it (`platform.target_id`, and the pre-scan and post-scan
    /// profiles' platform): `pod/NAMESPACE/POD/CONTAINER`.
    #[must_use]
    pub fn hdf_id(&self) -> String {
        format!("pod/{}/{}/{}", self.namespace, self.pod, self.container)
    }
}

impl std::fmt::Display for ContainerTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{} ({})", self.namespace, self.pod, self.container)
    }
}

/// The annotation `kubectl` honours to pick a pod's default container.
const DEFAULT_CONTAINER_ANNOTATION: &str = "kubectl.kubernetes.io/default-container";

/// Reads pod `namespace/pod` with `scoped` and settles which container to scan: `container`
/// when given (it must exist), else the pod's `kubectl.kubernetes.io/default-container`, else
/// its only container. The container must be running.
pub async fn resolve_container(
    scoped: &kube::Client,
    namespace: &str,
    pod: &str,
    container: Option<&str>,
) -> Result<ContainerTarget, WorkflowError> {
    let api: Api<Pod> = Api::namespaced(scoped.clone(), namespace);
    let p = api.get(pod).await.map_err(|e| WorkflowError::Api {
        action: format!("reading pod {namespace}/{pod} with the scoped identity"),
        message: keyhole_core::kube_error(&e),
    })?;
    let names: Vec<String> = p
        .spec
        .as_ref()
        .map(|s| s.containers.iter().map(|c| c.name.clone()).collect())
        .unwrap_or_default();
    let annotated = p
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DEFAULT_CONTAINER_ANNOTATION))
        .cloned();
    let chosen = match (container, annotated, names.as_slice()) {
        (Some(c), _, _) => {
            if !names.iter().any(|n| n == c) {
                return Err(WorkflowError::Container(format!(
                    "pod {namespace}/{pod} has no container {c:?} (it has: {})",
                    names.join(", ")
                )));
            }
            c.to_string()
        }
        (None, Some(a), _) if names.contains(&a) => a,
        (None, _, [only]) => only.clone(),
        (None, _, _) => {
            return Err(WorkflowError::Container(format!(
                "pod {namespace}/{pod} has {} containers ({}): choose one with -c CONTAINER",
                names.len(),
                names.join(", ")
            )));
        }
    };
    let state = p
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|v| v.iter().find(|s| s.name == chosen))
        .and_then(|s| s.state.clone());
    let running = state.as_ref().is_some_and(|s| s.running.is_some());
    if !running {
        let why = match &state {
            Some(s) if s.waiting.is_some() => format!(
                "waiting: {}",
                s.waiting
                    .as_ref()
                    .and_then(|w| w.reason.clone())
                    .unwrap_or_default()
            ),
            Some(s) if s.terminated.is_some() => "terminated".to_string(),
            _ => "no status reported".to_string(),
        };
        return Err(WorkflowError::NotRunning {
            namespace: namespace.to_string(),
            pod: pod.to_string(),
            container: chosen,
            state: why,
        });
    }
    Ok(ContainerTarget {
        namespace: namespace.to_string(),
        pod: pod.to_string(),
        container: chosen,
    })
}
