//! Applying a run's RBAC objects with the user's client, and proving with the *scoped* client
//! that the access is exactly what was planned.

use std::collections::BTreeMap;
use std::future::Future;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::authorization::v1::{
    ResourceRule, SelfSubjectRulesReview, SelfSubjectRulesReviewSpec,
};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::rbac::v1::PolicyRule;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use keyhole_core::{Created, ObjectKind, Run};
use kube::api::{Api, PostParams};
use kube::{Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::eval::{Request, ResourceRequest, allows, dangerous_requests, planned_requests};
use crate::{RbacError, owner_reference, role, role_binding, service_account};

/// The uids of what [`apply`] created, which later steps bind to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The run's ServiceAccount.
    pub service_account_uid: String,
    /// The anchor Secret the token is bound to.
    pub anchor_uid: String,
}

/// What a create needs of an object type.
pub trait Creatable:
    Resource<Scope = NamespaceResourceScope, DynamicType = ()>
    + Clone
    + DeserializeOwned
    + Serialize
    + std::fmt::Debug
    + Send
    + Sync
{
}

impl<K> Creatable for K where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug
        + Send
        + Sync
{
}

/// Where [`apply_with`] sends a run's creates: the API server ([`apply`]) or an offline record
/// ([`plan`]). One sequence serves both, so `keyhole plan` shows the very order, owner
/// references and bodies a live run sends.
pub trait Creator: Send {
    /// Creates `obj` (of `kind`) in namespace `ns`; returns it with the uid it was given.
    fn create<K: Creatable>(
        &mut self,
        ns: &str,
        obj: &K,
        kind: ObjectKind,
    ) -> impl Future<Output = Result<Created, RbacError>> + Send;
}

/// The live [`Creator`]: the user's client.
struct ApiCreator<'a>(&'a Client);

impl Creator for ApiCreator<'_> {
    async fn create<K: Creatable>(
        &mut self,
        ns: &str,
        obj: &K,
        kind: ObjectKind,
    ) -> Result<Created, RbacError> {
        let name = obj.meta().name.clone().unwrap_or_default();
        let api: Api<K> = Api::namespaced(self.0.clone(), ns);
        let created = api.create(&PostParams::default(), obj).await.map_err(|e| {
            let message = match &e {
                kube::Error::Api(s) if s.code == 409 => format!(
                    "{} already exists (another run with the same id?); run `keyhole reap -n {ns}` and retry",
                    s.message
                ),
                _ => keyhole_core::kube_error(&e),
            };
            RbacError::Api {
                action: format!("creating {} {ns}/{name}", kind.as_str()),
                message,
            }
        })?;
        Ok(Created {
            kind,
            namespace: ns.to_string(),
            name,
            uid: created.meta().uid.clone(),
        })
    }
}

/// One create of a [`plan`]: the API call and the object it sends.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedCreate {
    /// The kind created.
    pub kind: ObjectKind,
    /// The collection it is POSTed to, e.g. `/api/v1/namespaces/prod/serviceaccounts`.
    pub path: String,
    /// The object, as sent.
    pub body: serde_json::Value,
}

/// The offline [`Creator`]: records each create and answers with a placeholder uid.
#[derive(Default)]
struct Recorder(Vec<PlannedCreate>);

/// The uid a [`plan`] shows for an object the API server has not created yet.
pub fn placeholder_uid(kind: &str, name: &str) -> String {
    format!("<uid of {kind} {name}, assigned at creation>")
}

impl Creator for Recorder {
    async fn create<K: Creatable>(
        &mut self,
        ns: &str,
        obj: &K,
        kind: ObjectKind,
    ) -> Result<Created, RbacError> {
        let name = obj.meta().name.clone().unwrap_or_default();
        self.0.push(PlannedCreate {
            kind,
            path: K::url_path(&(), Some(ns)),
            body: serde_json::to_value(obj).expect("Kubernetes objects always serialize"),
        });
        Ok(Created {
            kind,
            namespace: ns.to_string(),
            uid: Some(placeholder_uid(kind.as_str(), &name)),
            name,
        })
    }
}

/// What [`apply`] reports, as it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyEvent {
    /// A create is about to be sent (`uid` is `None`). If its answer is lost the object may
    /// exist anyway: record it so cleanup can look it up by name (and the run label).
    Attempt(Created),
    /// The API server confirmed a creation (with the uid it assigned).
    Created(Created),
}

async fn create_reported<C: Creator, K: Creatable>(
    creator: &mut C,
    ns: &str,
    obj: &K,
    kind: ObjectKind,
    on_event: &mut (dyn FnMut(ApplyEvent) + Send),
) -> Result<Created, RbacError> {
    on_event(ApplyEvent::Attempt(Created {
        kind,
        namespace: ns.to_string(),
        name: obj.meta().name.clone().unwrap_or_default(),
        uid: None,
    }));
    let created = creator.create(ns, obj, kind).await?;
    on_event(ApplyEvent::Created(created.clone()));
    Ok(created)
}

/// Creates, with the user's client and in this order, the run's ServiceAccount, the anchor
/// Secret built by `anchor` (given the owner reference to the ServiceAccount), the Role and the
/// RoleBinding. `on_event` hears of each create *before* it is sent ([`ApplyEvent::Attempt`])
/// and right after the API server confirmed it ([`ApplyEvent::Created`]), before anything else
/// can fail, so the cleanup registry never misses an object — not even one whose answer was
/// lost.
pub async fn apply(
    user: &Client,
    run: &Run,
    anchor: impl FnOnce(OwnerReference) -> Secret + Send,
    on_event: &mut (dyn FnMut(ApplyEvent) + Send),
) -> Result<Applied, RbacError> {
    apply_with(&mut ApiCreator(user), run, anchor, on_event).await
}

/// The creates of [`apply`], computed offline: the same sequence run against a recorder that
/// answers with [placeholder uids](placeholder_uid). What `keyhole plan` prints.
///
/// # Errors
/// [`RbacError::UnresolvedMode`] while the run's mode is still `auto`.
pub fn plan(
    run: &Run,
    anchor: impl FnOnce(OwnerReference) -> Secret + Send,
) -> Result<(Vec<PlannedCreate>, Applied), RbacError> {
    let mut recorder = Recorder::default();
    let mut ignore = |_: ApplyEvent| {};
    let applied = {
        let fut = std::pin::pin!(apply_with(&mut recorder, run, anchor, &mut ignore));
        // The recorder never waits, so one poll runs the whole sequence.
        match fut.poll(&mut std::task::Context::from_waker(std::task::Waker::noop())) {
            std::task::Poll::Ready(r) => r?,
            std::task::Poll::Pending => unreachable!("the offline recorder never waits"),
        }
    };
    Ok((recorder.0, applied))
}

/// The one sequence of a run's creates (see [`apply`]), sent to `creator`.
pub async fn apply_with<C: Creator>(
    creator: &mut C,
    run: &Run,
    anchor: impl FnOnce(OwnerReference) -> Secret + Send,
    on_event: &mut (dyn FnMut(ApplyEvent) + Send),
) -> Result<Applied, RbacError> {
    let ns = run.namespace().as_str();
    // The Role needs a concrete mode: refuse `auto` before anything is created.
    crate::rules(run.mode(), run.pods())?;
    let sa = create_reported(
        creator,
        ns,
        &service_account(run),
        ObjectKind::ServiceAccount,
        on_event,
    )
    .await?;
    let sa_uid = sa.uid.clone().ok_or_else(|| RbacError::Api {
        action: format!("creating ServiceAccount {ns}/{}", sa.name),
        message: "the API server returned no uid".into(),
    })?;
    let owner = owner_reference(run, &sa_uid);
    let secret = create_reported(creator, ns, &anchor(owner), ObjectKind::Secret, on_event).await?;
    let anchor_uid = secret.uid.clone().ok_or_else(|| RbacError::Api {
        action: format!("creating Secret {ns}/{}", secret.name),
        message: "the API server returned no uid".into(),
    })?;
    create_reported(
        creator,
        ns,
        &role(run, &sa_uid)?,
        ObjectKind::Role,
        on_event,
    )
    .await?;
    create_reported(
        creator,
        ns,
        &role_binding(run, &sa_uid),
        ObjectKind::RoleBinding,
        on_event,
    )
    .await?;
    Ok(Applied {
        service_account_uid: sa_uid,
        anchor_uid,
    })
}

/// One verified request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// The request.
    pub request: ResourceRequest,
    /// Whether the plan wants it allowed.
    pub expected_allowed: bool,
    /// Whether the scoped identity has it.
    pub allowed: bool,
}

/// Everything [`verify_access`] checked (all matching, or it would have failed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessReport {
    /// Each request, planned ones first.
    pub checked: Vec<Checked>,
    /// API calls made (one SelfSubjectRulesReview per namespace involved).
    pub api_calls: usize,
}

fn to_policy_rule(r: ResourceRule) -> PolicyRule {
    PolicyRule {
        api_groups: r.api_groups,
        resources: r.resources,
        resource_names: r.resource_names,
        verbs: r.verbs,
        non_resource_urls: None,
    }
}

async fn rules_in(scoped: &Client, namespace: &str) -> Result<Vec<PolicyRule>, RbacError> {
    let review = SelfSubjectRulesReview {
        spec: SelfSubjectRulesReviewSpec {
            namespace: Some(namespace.to_string()),
        },
        ..SelfSubjectRulesReview::default()
    };
    let api: Api<SelfSubjectRulesReview> = Api::all(scoped.clone());
    let answer = api
        .create(&PostParams::default(), &review)
        .await
        .map_err(|e| RbacError::Api {
            action: format!("reviewing the scoped identity's rules in namespace {namespace}"),
            message: keyhole_core::kube_error(&e),
        })?;
    let status = answer.status.ok_or_else(|| RbacError::Api {
        action: format!("reviewing the scoped identity's rules in namespace {namespace}"),
        message: "the API server returned no status".into(),
    })?;
    if status.incomplete {
        // An authorizer that cannot list its rules (e.g. a webhook) could allow more than it
        // says: least privilege cannot be proven, so the run stops.
        return Err(RbacError::CannotVerify {
            namespace: namespace.to_string(),
            reason: status
                .evaluation_error
                .unwrap_or_else(|| "the rule list is incomplete".into()),
        });
    }
    Ok(status
        .resource_rules
        .into_iter()
        .map(to_policy_rule)
        .collect())
}

fn describe(rule: &PolicyRule) -> String {
    let list = |v: &Option<Vec<String>>| v.as_deref().unwrap_or_default().join(",");
    format!(
        "apiGroups=[{}] resources=[{}] verbs=[{}] resourceNames=[{}]",
        rule.api_groups.as_deref().unwrap_or_default().join(","),
        list(&rule.resources),
        rule.verbs.join(","),
        list(&rule.resource_names)
    )
}

/// Proves with the *scoped* client that it can do every request the run's mode needs and none
/// of [`dangerous_requests`]: one SelfSubjectRulesReview per namespace involved, evaluated
/// offline with [`allows`]. Cluster-wide requests are judged against the target namespace's
/// rules, which include every cluster-wide grant (a safe over-approximation). The first
/// mismatch aborts with the request and the rule that allows it.
pub async fn verify_access(scoped: &Client, run: &Run) -> Result<AccessReport, RbacError> {
    let ns = run.namespace().as_str();
    let planned = planned_requests(run.mode(), run.namespace(), run.pods())?;
    let dangerous = dangerous_requests(run.namespace(), run.pods());
    let mut rules: BTreeMap<String, Vec<PolicyRule>> = BTreeMap::new();
    rules.insert(ns.to_string(), rules_in(scoped, ns).await?);
    for (_, r) in &dangerous {
        if let Some(other) = &r.namespace
            && !rules.contains_key(other)
        {
            let fetched = rules_in(scoped, other).await?;
            rules.insert(other.clone(), fetched);
        }
    }
    let api_calls = rules.len();
    let mut checked = Vec::new();
    let cases = planned
        .into_iter()
        .map(|r| (r, true))
        .chain(dangerous.into_iter().map(|(_, r)| (r, false)));
    for (request, expected_allowed) in cases {
        let applicable = &rules[request.namespace.as_deref().unwrap_or(ns)];
        let req = Request::Resource(request.clone());
        let allowed = allows(applicable, &req);
        if allowed != expected_allowed {
            let rule = applicable
                .iter()
                .find(|r| allows(std::slice::from_ref(*r), &req))
                .map(describe);
            return Err(RbacError::AccessMismatch {
                request: request.to_string(),
                expected_allowed,
                rule,
            });
        }
        checked.push(Checked {
            request,
            expected_allowed,
            allowed,
        });
    }
    Ok(AccessReport { checked, api_calls })
}
