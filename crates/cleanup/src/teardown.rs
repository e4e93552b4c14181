//! The one teardown path: delete in reverse creation order, then verify every object is gone.

use std::future::Future;
use std::ops::ControlFlow::{self, Break, Continue};
use std::time::Duration;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::{Pod, Secret, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, DeleteParams, Preconditions, PropagationPolicy};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;

use keyhole_core::RUN_ID_LABEL;

use crate::registry::Entry;
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
    pub(crate) fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt).unwrap_or(u32::MAX);
        self.first_delay.saturating_mul(factor).min(self.max_delay)
    }

    /// The one retry loop of cleanup: runs `attempt` up to `attempts` times, with the backoff
    /// between tries, until it answers `Break(value)`; `Continue(why)` asks for another try,
    /// and after the last one the last `why` is the error.
    pub(crate) async fn retry<T, F, Fut>(&self, mut attempt: F) -> Result<T, String>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = ControlFlow<T, String>>,
    {
        let mut last = String::new();
        for n in 0..self.attempts.max(1) {
            if n > 0 {
                tokio::time::sleep(self.delay(n - 1)).await;
            }
            match attempt().await {
                ControlFlow::Break(value) => return Ok(value),
                ControlFlow::Continue(why) => last = why,
            }
        }
        Err(last)
    }
}

/// What teardown did, one entry per step, in order: the cleanup log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CleanupAction {
    /// Deleted.
    Deleted(Created),
    /// Already gone (404), e.g. removed by garbage collection through its owner.
    AlreadyGone(Created),
    /// The name now belongs to another object (uid precondition failed, or a pending creation
    /// whose name is held by an object without this run's label): left alone.
    Replaced(Created),
    /// A creation whose answer was lost did not take effect (404 by name): nothing to delete.
    NeverCreated(Created),
    /// Deletion failed after every attempt.
    DeleteFailed {
        /// The object.
        object: Created,
        /// The last error.
        error: String,
    },
    /// Verified gone (GET → 404, or a different uid).
    VerifiedGone(Created),
    /// Still present after every verification attempt (or, for a creation whose answer was
    /// lost, not known to be absent).
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
            Self::NeverCreated(o) => write!(f, "never created: {o}"),
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
    /// GET found an object of that name (ours, unless its uid differs from the one asked for).
    Present {
        uid: Option<String>,
        run_label: Option<String>,
        terminating: bool,
    },
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
        Err(e) => Err(keyhole_core::kube_error(&e)),
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
            Ok(Answer::Present {
                uid: meta.uid.clone(),
                run_label: meta
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(RUN_ID_LABEL))
                    .cloned(),
                terminating: meta.deletion_timestamp.is_some(),
            })
        }
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(Answer::NotFound),
        Err(e) => Err(keyhole_core::kube_error(&e)),
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
///
/// A 409 answer means the uid precondition failed — or, on some servers and proxies, a
/// transient conflict. Concluding "replaced" from the 409 alone would leave our object behind,
/// so the object is read back: another uid (or none) means it was replaced (or is gone), our
/// uid means the delete is retried.
pub(crate) async fn delete_one(
    client: &Client,
    o: &Created,
    policy: &RetryPolicy,
) -> CleanupAction {
    let timeout = policy.call_timeout;
    policy
        .retry(|| async {
            match call(client, o, true, timeout).await {
                Ok(Answer::Done) => Break(CleanupAction::Deleted(o.clone())),
                Ok(Answer::NotFound) => Break(CleanupAction::AlreadyGone(o.clone())),
                Ok(Answer::Conflict) => match call(client, o, false, timeout).await {
                    Ok(Answer::NotFound) => Break(CleanupAction::AlreadyGone(o.clone())),
                    Ok(Answer::Present { uid, .. }) if o.uid.is_some() && uid != o.uid => {
                        Break(CleanupAction::Replaced(o.clone()))
                    }
                    Ok(_) => Continue("conflict (409) on delete; the object is still ours".into()),
                    Err(e) => Continue(e),
                },
                Ok(Answer::Present { .. }) => unreachable!("delete never answers Present"),
                Err(e) => Continue(e),
            }
        })
        .await
        .unwrap_or_else(|error| CleanupAction::DeleteFailed {
            object: o.clone(),
            error,
        })
}

/// Checks that one object is gone, retrying while it is still terminating or the server fails.
pub(crate) async fn verify_gone(
    client: &Client,
    o: &Created,
    policy: &RetryPolicy,
) -> CleanupAction {
    policy
        .retry(|| async {
            match call(client, o, false, policy.call_timeout).await {
                Ok(Answer::NotFound) => Break(CleanupAction::VerifiedGone(o.clone())),
                // Same name, another uid: ours is gone and the name was reused.
                Ok(Answer::Present { uid, .. }) if o.uid.is_some() && uid != o.uid => {
                    Break(CleanupAction::VerifiedGone(o.clone()))
                }
                Ok(Answer::Present { terminating, .. }) => {
                    Continue(if terminating { "terminating" } else { "exists" }.to_string())
                }
                Ok(Answer::Done | Answer::Conflict) => unreachable!("get never answers these"),
                Err(e) => Continue(e),
            }
        })
        .await
        .unwrap_or_else(|detail| CleanupAction::StillPresent {
            object: o.clone(),
            detail,
        })
}

/// How a creation whose answer was lost turned out.
enum Resolved {
    /// It exists and carries the run's label: ours, now with its uid.
    Ours(Created),
    /// Settled without deleting anything (never created, or the name is someone else's).
    Settled(CleanupAction),
}

/// Finds out whether a creation whose answer was lost took effect, by name and run label.
async fn resolve_pending(
    client: &Client,
    o: &Created,
    run_id: &str,
    policy: &RetryPolicy,
) -> Resolved {
    policy
        .retry(|| async {
            match call(client, o, false, policy.call_timeout).await {
                Ok(Answer::NotFound) => {
                    Break(Resolved::Settled(CleanupAction::NeverCreated(o.clone())))
                }
                Ok(Answer::Present { uid, run_label, .. }) => {
                    Break(if run_label.as_deref() == Some(run_id) && uid.is_some() {
                        Resolved::Ours(Created { uid, ..o.clone() })
                    } else {
                        Resolved::Settled(CleanupAction::Replaced(o.clone()))
                    })
                }
                Ok(Answer::Done | Answer::Conflict) => unreachable!("get never answers these"),
                Err(e) => Continue(e),
            }
        })
        .await
        .unwrap_or_else(|last| {
            Resolved::Settled(CleanupAction::StillPresent {
                object: o.clone(),
                detail: format!("a creation whose answer was lost could not be checked: {last}"),
            })
        })
}

/// Deletes every registered object in reverse creation order, then verifies each is gone.
/// Creations whose answer was lost ([`Registry::attempting`]) are looked up by name first and
/// deleted only when they carry the run's label. Runs at most once per registry: later calls
/// return a report with `already_done`.
pub async fn teardown(client: &Client, registry: &Registry, policy: &RetryPolicy) -> CleanupReport {
    if !registry.claim_teardown() {
        return CleanupReport {
            already_done: true,
            ..CleanupReport::default()
        };
    }
    let mut report = CleanupReport::default();
    let mut to_verify = Vec::new();
    for entry in registry.entries().iter().rev() {
        let object = match entry {
            Entry::Confirmed(o) => o.clone(),
            Entry::Pending { object, run_id } => {
                match resolve_pending(client, object, run_id, policy).await {
                    Resolved::Ours(o) => o,
                    Resolved::Settled(action) => {
                        if let CleanupAction::StillPresent { object, .. } = &action {
                            report.remaining.push(object.clone());
                        }
                        report.actions.push(action);
                        continue;
                    }
                }
            }
        };
        report
            .actions
            .push(delete_one(client, &object, policy).await);
        to_verify.push(object);
    }
    for o in &to_verify {
        let action = verify_gone(client, o, policy).await;
        if let CleanupAction::StillPresent { object, .. } = &action {
            report.remaining.push(object.clone());
        }
        report.actions.push(action);
    }
    report
}
