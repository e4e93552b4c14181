//! The Kubernetes objects of one run: ServiceAccount, Role and RoleBinding.

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use keyhole_core::Run;

use crate::{RbacError, rules};

/// Name, namespace, labels and annotations shared by every object of `run`.
fn metadata(run: &Run, owner: Option<OwnerReference>) -> ObjectMeta {
    ObjectMeta {
        name: Some(run.object_name().to_string()),
        namespace: Some(run.namespace().to_string()),
        labels: Some(run.labels()),
        annotations: Some(run.annotations()),
        owner_references: owner.map(|o| vec![o]),
        ..ObjectMeta::default()
    }
}

/// The run's ServiceAccount, `keyhole-<run id>` in the target namespace.
///
/// `automountServiceAccountToken: false`: the scan gets its token by TokenRequest, so no pod
/// should ever mount a long-lived one for this account.
pub fn service_account(run: &Run) -> ServiceAccount {
    ServiceAccount {
        metadata: metadata(run, None),
        automount_service_account_token: Some(false),
        ..ServiceAccount::default()
    }
}

/// A reference to the run's ServiceAccount (whose uid is `sa_uid`), making the Role and
/// RoleBinding its dependents so that deleting the account deletes them too.
///
/// Neither `controller` nor `blockOwnerDeletion` is set: background cascading deletion needs
/// neither, and `blockOwnerDeletion` would need extra rights on the owner. `sa_uid` is the
/// uid the API server gave the ServiceAccount; offline plans pass a placeholder.
pub fn owner_reference(run: &Run, sa_uid: &str) -> OwnerReference {
    OwnerReference {
        api_version: "v1".to_string(),
        kind: "ServiceAccount".to_string(),
        name: run.object_name().to_string(),
        uid: sa_uid.to_string(),
        controller: None,
        block_owner_deletion: None,
    }
}

/// The run's Role: [`rules`] for the run's mode and pods, owned by the ServiceAccount with
/// uid `sa_uid` (see [`owner_reference`]).
///
/// # Errors
/// [`RbacError::UnresolvedMode`] while the run's mode is still `auto`.
pub fn role(run: &Run, sa_uid: &str) -> Result<Role, RbacError> {
    Ok(Role {
        metadata: metadata(run, Some(owner_reference(run, sa_uid))),
        rules: Some(rules(run.mode(), run.pods())?),
    })
}

/// The run's RoleBinding: binds the run's Role to the run's ServiceAccount (and nothing else),
/// owned by that ServiceAccount (uid `sa_uid`, see [`owner_reference`]).
pub fn role_binding(run: &Run, sa_uid: &str) -> RoleBinding {
    let name = run.object_name().to_string();
    RoleBinding {
        metadata: metadata(run, Some(owner_reference(run, sa_uid))),
        role_ref: RoleRef {
            // `.into()`: this field is a String up to Kubernetes 1.35 and optional from 1.36 on;
            // the binary, not this crate, picks the version.
            api_group: "rbac.authorization.k8s.io".to_string().into(),
            kind: "Role".to_string(),
            name: name.clone(),
        },
        subjects: Some(vec![Subject {
            // ServiceAccount subjects live in the core group, which is spelled by omission.
            api_group: None,
            kind: "ServiceAccount".to_string(),
            name,
            namespace: Some(run.namespace().to_string()),
        }]),
    }
}
