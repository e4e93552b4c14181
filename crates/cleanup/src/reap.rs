//! The reaper: removes keyhole-managed objects whose `expires-at` has passed, and orphans whose
//! run's ServiceAccount is gone. It covers what in-process cleanup cannot (SIGKILL, power loss,
//! a dead API server during teardown) and runs before every scan in its namespace.

use std::collections::BTreeSet;
use std::ops::ControlFlow::{Break, Continue};

use jiff::Timestamp;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::{Pod, Secret, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use keyhole_core::{
    EXPIRES_AT_ANNOTATION, Expiry, MANAGED_BY_LABEL, MANAGED_BY_VALUE, RUN_ID_LABEL,
};
use kube::api::{Api, ListParams};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;

use crate::teardown::{delete_one, verify_gone};
use crate::{CleanupAction, Created, ObjectKind, RetryPolicy};

/// Where the reaper looks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReapScope {
    /// One namespace.
    Namespace(String),
    /// Every namespace.
    All,
}

/// What the reaper found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReapReport {
    /// Objects selected for removal, with the reason (expired, orphaned, no valid expiry).
    pub selected: Vec<(Created, String)>,
    /// The deletion and verification steps (empty on a dry run).
    pub actions: Vec<CleanupAction>,
    /// Keyhole-managed objects left in place (not expired, owner present).
    pub kept: usize,
    /// Selected objects not verified gone.
    pub remaining: Vec<Created>,
    /// Kinds the reaper could not list (no `list` right, or no answer): their leftovers were
    /// neither seen nor removed. Empty when the reap covered every kind.
    pub unlisted: Vec<Unlisted>,
}

impl ReapReport {
    /// True when every kind was listed, so nothing was passed over unseen.
    pub fn is_complete(&self) -> bool {
        self.unlisted.is_empty()
    }
}

/// One kind the reaper could not list, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unlisted {
    /// The kind.
    pub kind: ObjectKind,
    /// `namespace NS` or `all namespaces`.
    pub scope: String,
    /// The API server's answer, or why the kind was not tried.
    pub reason: String,
}

impl std::fmt::Display for Unlisted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "could not list keyhole-managed {} in {} ({}): earlier runs' leftovers of that kind were not reaped; `keyhole reap` as someone allowed to list them removes them",
            self.kind.as_str(),
            self.scope,
            self.reason
        )
    }
}

struct Listed {
    object: Created,
    expires: Option<Timestamp>,
    run: Option<String>,
}

/// Why a list failed: a refusal (asking again will not help, the next kind may still work), or
/// a server that did not answer properly after every retry (the next kinds are not tried).
enum ListFailure {
    Refused(String),
    Unavailable(String),
}

async fn list_typed<K>(
    client: &Client,
    scope: &ReapScope,
    kind: ObjectKind,
    policy: &RetryPolicy,
) -> Result<Vec<Listed>, ListFailure>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = match scope {
        ReapScope::Namespace(ns) => Api::namespaced(client.clone(), ns),
        ReapScope::All => Api::all(client.clone()),
    };
    let lp = ListParams::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"));
    // Bounded like teardown: a hanging or failing server must not stall the run for ever.
    let list = policy
        .retry(|| async {
            match tokio::time::timeout(policy.call_timeout, api.list(&lp)).await {
                Ok(Ok(l)) => Break(Ok(l)),
                // Refusals do not go away by asking again.
                Ok(Err(kube::Error::Api(s))) if matches!(s.code, 401 | 403 | 404) => Break(Err(
                    ListFailure::Refused(keyhole_core::kube_error(&kube::Error::Api(s))),
                )),
                Ok(Err(e)) => Continue(keyhole_core::kube_error(&e)),
                Err(_) => Continue(format!("no answer within {:?}", policy.call_timeout)),
            }
        })
        .await
        .map_err(ListFailure::Unavailable)??;
    Ok(list
        .items
        .iter()
        .map(|o| {
            let m = o.meta();
            Listed {
                object: Created {
                    kind,
                    namespace: m.namespace.clone().unwrap_or_default(),
                    name: m.name.clone().unwrap_or_default(),
                    uid: m.uid.clone(),
                },
                expires: m
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(EXPIRES_AT_ANNOTATION))
                    .and_then(|v| Expiry::parse_annotation(v)),
                run: m.labels.as_ref().and_then(|l| l.get(RUN_ID_LABEL)).cloned(),
            }
        })
        .collect())
}

async fn list_kind(
    client: &Client,
    scope: &ReapScope,
    kind: ObjectKind,
    policy: &RetryPolicy,
) -> Result<Vec<Listed>, ListFailure> {
    match kind {
        ObjectKind::Pod => list_typed::<Pod>(client, scope, kind, policy).await,
        ObjectKind::NetworkPolicy => list_typed::<NetworkPolicy>(client, scope, kind, policy).await,
        ObjectKind::RoleBinding => list_typed::<RoleBinding>(client, scope, kind, policy).await,
        ObjectKind::Role => list_typed::<Role>(client, scope, kind, policy).await,
        ObjectKind::Secret => list_typed::<Secret>(client, scope, kind, policy).await,
        ObjectKind::ServiceAccount => {
            list_typed::<ServiceAccount>(client, scope, kind, policy).await
        }
    }
}

/// Removes keyhole-managed objects in `scope` that expired before `expired_before`, that carry
/// no valid expiry (anomalous: access without an end), or whose run's ServiceAccount no longer
/// exists. With `dry_run`, only reports what it would remove. Pass the current time as
/// `expired_before` normally; a later time lets tests and operators act "as of" that time.
///
/// Never fails: a kind it cannot list (a user allowed to create a run's objects need not be
/// allowed to list every object of the namespace) is a warning, logged and reported in
/// [`ReapReport::unlisted`], and the other kinds are still reaped. When ServiceAccounts could
/// not be listed, no object is judged an orphan (a live run's objects would look orphaned):
/// only expiry selects then. After a server that does not answer, the remaining kinds are
/// not tried, so a dead server costs one kind's retries, not six.
pub async fn reap(
    client: &Client,
    scope: &ReapScope,
    expired_before: Timestamp,
    dry_run: bool,
    policy: &RetryPolicy,
) -> ReapReport {
    let scope_text = match scope {
        ReapScope::Namespace(ns) => format!("namespace {ns}"),
        ReapScope::All => "all namespaces".to_string(),
    };
    let mut listed = Vec::new();
    let mut unlisted = Vec::new();
    let mut unavailable: Option<String> = None;
    for kind in ObjectKind::ALL {
        let failure = match &unavailable {
            Some(why) => format!("not tried: {why}"),
            None => match list_kind(client, scope, kind, policy).await {
                Ok(items) => {
                    listed.extend(items);
                    continue;
                }
                Err(ListFailure::Refused(why)) => why,
                Err(ListFailure::Unavailable(why)) => {
                    unavailable = Some(format!("listing {} failed before", kind.as_str()));
                    why
                }
            },
        };
        let u = Unlisted {
            kind,
            scope: scope_text.clone(),
            reason: failure,
        };
        tracing::warn!("{u}");
        unlisted.push(u);
    }
    let service_accounts_listed = !unlisted
        .iter()
        .any(|u| u.kind == ObjectKind::ServiceAccount);
    // Runs whose ServiceAccount still exists, per namespace.
    let live_runs: BTreeSet<(String, String)> = listed
        .iter()
        .filter(|l| l.object.kind == ObjectKind::ServiceAccount)
        .filter_map(|l| l.run.clone().map(|r| (l.object.namespace.clone(), r)))
        .collect();
    let mut report = ReapReport {
        unlisted,
        ..ReapReport::default()
    };
    for l in listed {
        let reason = match (l.expires, &l.run) {
            (None, _) => Some("no valid expires-at annotation".to_string()),
            (Some(t), _) if t < expired_before => Some(format!("expired at {t}")),
            (_, Some(run))
                if service_accounts_listed
                    && l.object.kind != ObjectKind::ServiceAccount
                    && !live_runs.contains(&(l.object.namespace.clone(), run.clone())) =>
            {
                Some(format!("orphan: the ServiceAccount of run {run} is gone"))
            }
            _ => None,
        };
        match reason {
            Some(r) => report.selected.push((l.object, r)),
            None => report.kept += 1,
        }
    }
    if dry_run {
        return report;
    }
    for (o, _) in &report.selected {
        report.actions.push(delete_one(client, o, policy).await);
    }
    for (o, _) in &report.selected {
        let action = verify_gone(client, o, policy).await;
        if let CleanupAction::StillPresent { object, .. } = &action {
            report.remaining.push(object.clone());
        }
        report.actions.push(action);
    }
    report
}
