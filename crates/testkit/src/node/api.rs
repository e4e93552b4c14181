//! How the node talks to "the API": the few things a kubelet needs (the pods bound to it, a
//! cheap change signal, the scheduler's binding for pods nobody bound, status updates, the
//! API's clock). [`FakeCluster`] implements it in-process, without recording calls (a kubelet's
//! traffic is not the traffic keyhole's tests count). A `kube::Client` implementation for a real
//! API server is the follow-up described in the module docs of [`crate::node`].

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Pod, PodStatus};

use crate::cluster::FakeCluster;
use crate::error::TestkitError;

/// The node's view of the Kubernetes API. Implementations must not call back into the node.
pub trait NodeApi: Send + Sync + 'static {
    /// A value that changes whenever any pod may have changed (a watch's resourceVersion).
    fn version(&self) -> String;
    /// Every pod whose `spec.nodeName` is `node`.
    fn pods_on(&self, node: &str) -> Result<Vec<Pod>, TestkitError>;
    /// Every pod with no `spec.nodeName` (for a node that also plays the scheduler).
    fn unscheduled_pods(&self) -> Result<Vec<Pod>, TestkitError>;
    /// Binds a pod to `node` (`pods/binding`); `false` if someone else bound it first.
    fn bind(&self, namespace: &str, name: &str, node: &str) -> Result<bool, TestkitError>;
    /// Replaces the status of the pod `namespace/name` if its uid is still `uid` (`pods/status`).
    fn update_status(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        status: &PodStatus,
    ) -> Result<(), TestkitError>;
    /// The API server's clock (timestamps in statuses).
    fn now(&self) -> Timestamp;
    /// Confirms the graceful deletion of a pod whose containers the node has stopped (a
    /// kubelet's final `DELETE` with grace period 0 and the pod's uid as precondition). A real
    /// API server keeps a deleted pod until then; the fake deletes at once, hence the default.
    fn confirm_deleted(&self, namespace: &str, name: &str, uid: &str) -> Result<(), TestkitError> {
        let _ = (namespace, name, uid);
        Ok(())
    }
}

impl NodeApi for FakeCluster {
    fn version(&self) -> String {
        self.resource_version()
    }

    fn pods_on(&self, node: &str) -> Result<Vec<Pod>, TestkitError> {
        Ok(self
            .objects::<Pod>()
            .into_iter()
            .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node))
            .collect())
    }

    fn unscheduled_pods(&self) -> Result<Vec<Pod>, TestkitError> {
        Ok(self
            .objects::<Pod>()
            .into_iter()
            .filter(|p| {
                p.spec
                    .as_ref()
                    .and_then(|s| s.node_name.as_deref())
                    .is_none_or(str::is_empty)
            })
            .collect())
    }

    fn bind(&self, namespace: &str, name: &str, node: &str) -> Result<bool, TestkitError> {
        self.bind_pod(namespace, name, node)
    }

    fn update_status(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        status: &PodStatus,
    ) -> Result<(), TestkitError> {
        let current = self.object::<Pod>(namespace, name);
        if current.and_then(|p| p.metadata.uid).as_deref() != Some(uid) {
            return Err(TestkitError::NotFound(format!(
                "pod {namespace}/{name} with uid {uid}"
            )));
        }
        self.set_pod_status(namespace, name, status).map(|_| ())
    }

    fn now(&self) -> Timestamp {
        self.clock().now()
    }
}
