//! The one teardown path: delete in reverse creation order, then verify every object is gone.

use std::time::Duration;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::{Pod, Secret, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, DeleteParams, Preconditions, PropagationPolicy};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;

use crate::{Created, ObjectKind, Registry};

/// How hard teardown tries. Bounded on purpose: a dead API server must not keep the process (and
/// the user's terminal) forever; what is left is reported and later reaped by expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per call (≥ 1).
    pub attempts: u32,
    /// Delay before the first retry; doubled each time up to `max_delay`.
    pub first_delay: Duration,
    /// Longest delay between attempts.
    pub max_delay: Duration,
    /// Timeout of one API call (a hanging server counts as a failed attempt).
    pub call_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 5,
            first_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
            call_timeout: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt).unwrap_or(u32::MAX);
        self.first_delay.saturating_mul(factor).min(self.max_delay)
    }
}

/// What teardown did, one entry per step, in order: the cleanup log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CleanupAction {
    /// Deleted.
    Deleted(Created),
    /// Already gone (404), e.g. removed by garbage collection through its owner.
    AlreadyGone(Created),
    /// The name now belongs to another object (uid precondition failed): left alone.
    Replaced(Created),
    /// Deletion failed after every attempt.
    DeleteFailed {
        /// The object.
        object: Created,
        /// The last error.
        error: String,
    },
    /// Verified gone (GET → 404, or a different uid).
    VerifiedGone(Created),
    /// Still present after every verification attempt.
    StillPresent {
        /// The object.
        object: Created,
        /// The last observation.
        detail: String,
    },
}

impl std::fmt::Display for CleanupAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Deleted(o) => write!(f, "deleted {o}"),
            Self::AlreadyGone(o) => write!(f, "already gone: {o}"),
            Self::Replaced(o) => write!(f, "left alone (name now used by another object): {o}"),
            Self::DeleteFailed { object, error } => write!(f, "could not delete {object}: {error}"),
            Self::VerifiedGone(o) => write!(f, "verified gone: {o}"),
            Self::StillPresent { object, detail } => {
                write!(f, "STILL PRESENT: {object} ({detail})")
            }
        }
    }
}

/// The outcome of a teardown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanupReport {
    /// Every step, in order.
    pub actions: Vec<CleanupAction>,
    /// Objects that could not be verified gone; empty when cleanup is complete.
    pub remaining: Vec<Created>,
    /// True when another trigger had already run the teardown (this call did nothing).
    pub already_done: bool,
}

impl CleanupReport {
    /// True when every registered object is verified gone.
    pub fn is_clean(&self) -> bool {
        self.remaining.is_empty()
    }
}

/// The answer of one delete or get.
enum Answer {
    Done,
    NotFound,
    Conflict,
    /// GET found an object with another uid: ours is gone.
    OtherUid,
    /// GET found our object (perhaps terminating).
    Present(String),
}

async fn delete_typed<K>(client: &Client, o: &Created) -> Result<Answer, String>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), &o.namespace);
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        preconditions: o.uid.clone().map(|uid| Preconditions {
            uid: Some(uid),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(&o.name, &dp).await {
        Ok(_) => Ok(Answer::Done),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(Answer::NotFound),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(Answer::Conflict),
        Err(e) => Err(e.to_string()),
    }
}

async fn get_typed<K>(client: &Client, o: &Created) -> Result<Answer, String>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), &o.namespace);
    match api.get(&o.name).await {
        Ok(obj) => {
            let meta = obj.meta();
            if o.uid.is_some() && meta.uid != o.uid {
                Ok(Answer::OtherUid)
            } else {
                let state = if meta.deletion_timestamp.is_some() {
                    "terminating"
                } else {
                    "exists"
                };
                Ok(Answer::Present(state.to_string()))
            }
        }
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(Answer::NotFound),
        Err(e) => Err(e.to_string()),
    }
}

async fn call(
    client: &Client,
    o: &Created,
    delete: bool,
    timeout: Duration,
) -> Result<Answer, String> {
    let fut = async {
        match (o.kind, delete) {
            (ObjectKind::ServiceAccount, true) => delete_typed::<ServiceAccount>(client, o).await,
            (ObjectKind::Secret, true) => delete_typed::<Secret>(client, o).await,
            (ObjectKind::Role, true) => delete_typed::<Role>(client, o).await,
            (ObjectKind::RoleBinding, true) => delete_typed::<RoleBinding>(client, o).await,
            (ObjectKind::NetworkPolicy, true) => delete_typed::<NetworkPolicy>(client, o).await,
            (ObjectKind::Pod, true) => delete_typed::<Pod>(client, o).await,
            (ObjectKind::ServiceAccount, false) => get_typed::<ServiceAccount>(client, o).await,
            (ObjectKind::Secret, false) => get_typed::<Secret>(client, o).await,
            (ObjectKind::Role, false) => get_typed::<Role>(client, o).await,
            (ObjectKind::RoleBinding, false) => get_typed::<RoleBinding>(client, o).await,
            (ObjectKind::NetworkPolicy, false) => get_typed::<NetworkPolicy>(client, o).await,
            (ObjectKind::Pod, false) => get_typed::<Pod>(client, o).await,
        }
    };
    tokio::time::timeout(timeout, fut)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {timeout:?}")))
}

/// Deletes one object, retrying transient failures.
pub(crate) async fn delete_one(
    client: &Client,
    o: &Created,
    policy: &RetryPolicy,
) -> CleanupAction {
    let mut last = String::new();
    for attempt in 0..policy.attempts.max(1) {
        if attempt > 0 {
            tokio::time::sleep(policy.delay(attempt - 1)).await;
        }
        match call(client, o, true, policy.call_timeout).await {
            Ok(Answer::Done) => return CleanupAction::Deleted(o.clone()),
            Ok(Answer::NotFound) => return CleanupAction::AlreadyGone(o.clone()),
            Ok(Answer::Conflict) => return CleanupAction::Replaced(o.clone()),
            Ok(Answer::OtherUid | Answer::Present(_)) => unreachable!("delete never answers these"),
            Err(e) => last = e,
        }
    }
    CleanupAction::DeleteFailed {
        object: o.clone(),
        error: last,
    }
}

/// Checks that one object is gone, retrying while it is still terminating or the server fails.
pub(crate) async fn verify_gone(
    client: &Client,
    o: &Created,
    policy: &RetryPolicy,
) -> CleanupAction {
    let mut last = String::new();
    for attempt in 0..policy.attempts.max(1) {
        if attempt > 0 {
            tokio::time::sleep(policy.delay(attempt - 1)).await;
        }
        match call(client, o, false, policy.call_timeout).await {
            Ok(Answer::NotFound | Answer::OtherUid) => {
                return CleanupAction::VerifiedGone(o.clone());
            }
            Ok(Answer::Present(state)) => last = state,
            Ok(Answer::Done | Answer::Conflict) => unreachable!("get never answers these"),
            Err(e) => last = e,
        }
    }
    CleanupAction::StillPresent {
        object: o.clone(),
        detail: last,
    }
}

/// Deletes every registered object in reverse creation order, then verifies each is gone.
/// Runs at most once per registry: later calls return a report with `already_done`.
pub async fn teardown(client: &Client, registry: &Registry, policy: &RetryPolicy) -> CleanupReport {
    if !registry.claim_teardown() {
        return CleanupReport {
            already_done: true,
            ..CleanupReport::default()
        };
    }
    let objects = registry.objects();
    let mut report = CleanupReport::default();
    for o in objects.iter().rev() {
        report.actions.push(delete_one(client, o, policy).await);
    }
    for o in objects.iter().rev() {
        let action = verify_gone(client, o, policy).await;
        if let CleanupAction::StillPresent { object, .. } = &action {
            report.remaining.push(object.clone());
        }
        report.actions.push(action);
    }
    report
}
