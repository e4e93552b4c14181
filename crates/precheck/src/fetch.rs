//! The one IO of the crate: reading the target pod with the user's credentials.

use k8s_openapi::api::core::v1::Pod;
use kube::{Api, Client};

use crate::PrecheckError;

/// Reads pod `name` in `namespace` with `client` (the user's own credentials: nothing exists
/// yet to scope them). `Ok(None)` when the pod does not exist; judge that with
/// [`crate::evaluate_missing`], anything else with [`crate::evaluate`]. A GET only: nothing is
/// written to the cluster.
///
/// # Errors
/// [`PrecheckError::Fetch`] when the API server answers anything but the pod or a 404.
pub async fn fetch(
    client: Client,
    namespace: &str,
    name: &str,
) -> Result<Option<Pod>, PrecheckError> {
    tracing::debug!(namespace, name, "precheck: reading the target pod");
    Api::<Pod>::namespaced(client, namespace)
        .get_opt(name)
        .await
        .map_err(|source| PrecheckError::Fetch {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            source,
        })
}
