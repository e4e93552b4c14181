//! An offline RBAC evaluator with the Kubernetes authorizer's rule-matching semantics.
//!
//! [`allows`] follows upstream `RuleAllows` (`plugin/pkg/auth/authorizer/rbac`) and the
//! matchers of `pkg/apis/rbac/v1/evaluation_helpers.go`; [`role_allows`] adds the scoping of a
//! namespaced Role. With [`planned_requests`] (what a scan does) and [`dangerous_requests`]
//! (what it must never be able to do), tests can prove a Role is exact before any cluster is
//! involved, and the live check can replay the same lists through SelfSubjectAccessReview.

use std::fmt;

use k8s_openapi::api::rbac::v1::{PolicyRule, Role};
use keyhole_core::{Namespace, PodName, ScanMode};

use crate::RbacError;
use crate::rules::{grants, pinned_names};

/// The wildcard of every RBAC list (verbs, apiGroups, resources, nonResourceURLs).
const ALL: &str = "*";

/// A request as the authorizer sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Request {
    /// A request on an API resource (`/api/...`, `/apis/...`).
    Resource(ResourceRequest),
    /// A request on any other path (`/healthz`, `/version`, ...).
    NonResource {
        /// The lowercase HTTP verb (`get`, `post`, ...).
        verb: String,
        /// The URL path, e.g. `/healthz/ready`.
        path: String,
    },
}

impl Request {
    /// A non-resource request of `verb` on `path`.
    pub fn non_resource(verb: impl Into<String>, path: impl Into<String>) -> Self {
        Self::NonResource {
            verb: verb.into(),
            path: path.into(),
        }
    }
}

impl From<ResourceRequest> for Request {
    fn from(r: ResourceRequest) -> Self {
        Self::Resource(r)
    }
}

/// A request on an API resource, with the attributes RBAC looks at.
///
/// Build one with [`ResourceRequest::new`] and the chained setters:
/// `ResourceRequest::new("create", "pods").subresource("exec").name("web-0").namespace("prod")`.
/// A missing `name` means "any object" (as in `list`, `watch`, or `create` of a collection, or
/// a SelfSubjectAccessReview without a name); a missing `namespace` means cluster-wide.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceRequest {
    /// The verb, e.g. `get`, `list`, `create`, `escalate`.
    pub verb: String,
    /// The API group; `""` is the core group.
    pub api_group: String,
    /// The resource, e.g. `pods` (without the subresource).
    pub resource: String,
    /// The subresource, e.g. `exec`.
    pub subresource: Option<String>,
    /// The object's name, if the request names one.
    pub name: Option<String>,
    /// The namespace; `None` for cluster-scoped or all-namespace requests.
    pub namespace: Option<String>,
}

impl ResourceRequest {
    /// `verb` on `resource` in the core group, no subresource, any name, cluster-wide.
    pub fn new(verb: impl Into<String>, resource: impl Into<String>) -> Self {
        Self {
            verb: verb.into(),
            api_group: String::new(),
            resource: resource.into(),
            subresource: None,
            name: None,
            namespace: None,
        }
    }

    /// This request in API group `group` (e.g. `rbac.authorization.k8s.io`).
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.api_group = group.into();
        self
    }

    /// This request on subresource `subresource` (e.g. `exec`).
    pub fn subresource(mut self, subresource: impl Into<String>) -> Self {
        self.subresource = Some(subresource.into());
        self
    }

    /// This request on the object named `name`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// This request in namespace `namespace`.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// `resource` or `resource/subresource`, the spelling rules use.
    fn combined_resource(&self) -> String {
        match &self.subresource {
            Some(sub) if !sub.is_empty() => format!("{}/{sub}", self.resource),
            _ => self.resource.clone(),
        }
    }
}

impl fmt::Display for ResourceRequest {
    /// E.g. `create pods/exec "web-0" in namespace "prod"`, `list roles.rbac.authorization.k8s.io
    /// (any name) cluster-wide`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.verb, self.resource)?;
        if !self.api_group.is_empty() {
            write!(f, ".{}", self.api_group)?;
        }
        if let Some(sub) = &self.subresource {
            write!(f, "/{sub}")?;
        }
        match &self.name {
            Some(n) => write!(f, " {n:?}")?,
            None => f.write_str(" (any name)")?,
        }
        match &self.namespace {
            Some(ns) => write!(f, " in namespace {ns:?}"),
            None => f.write_str(" cluster-wide"),
        }
    }
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Resource(r) => r.fmt(f),
            Self::NonResource { verb, path } => write!(f, "{verb} {path:?}"),
        }
    }
}

/// `list` holds `*` or `wanted`.
fn matches_exact_or_all(list: &[String], wanted: &str) -> bool {
    list.iter().any(|v| v == ALL || v == wanted)
}

/// Upstream `ResourceMatches`: `*`, the exact `resource/subresource`, or `*/subresource` when the
/// request has a subresource. Any other `*` is literal: `pods/*` matches only a subresource
/// named `*`.
fn resource_matches(rule: &[String], combined: &str, subresource: &str) -> bool {
    rule.iter().any(|r| {
        r == ALL
            || r == combined
            || (!subresource.is_empty() && r.strip_prefix("*/") == Some(subresource))
    })
}

/// Upstream `ResourceNameMatches`: no names = any name; otherwise the request's name must be
/// listed. A request without a name compares as `""` (as upstream does), so it only matches a
/// rule that lists the empty name.
fn resource_name_matches(rule: &[String], name: &str) -> bool {
    rule.is_empty() || rule.iter().any(|n| n == name)
}

/// Upstream `NonResourceURLMatches`: `*`, the exact path, or a path starting with the rule up to
/// its trailing `*`s (`/healthz/*` matches `/healthz/ready`, not `/healthz`).
fn non_resource_url_matches(rule: &[String], path: &str) -> bool {
    rule.iter().any(|u| {
        u == ALL || u == path || (u.ends_with('*') && path.starts_with(u.trim_end_matches('*')))
    })
}

/// Whether `rule` allows `req` (upstream `RuleAllows`). Resource rules never match
/// non-resource requests and vice versa; verbs and groups are case-sensitive.
fn rule_allows(rule: &PolicyRule, req: &Request) -> bool {
    let none: &[String] = &[];
    match req {
        Request::Resource(r) => {
            matches_exact_or_all(&rule.verbs, &r.verb)
                && matches_exact_or_all(rule.api_groups.as_deref().unwrap_or(none), &r.api_group)
                && resource_matches(
                    rule.resources.as_deref().unwrap_or(none),
                    &r.combined_resource(),
                    r.subresource.as_deref().unwrap_or(""),
                )
                && resource_name_matches(
                    rule.resource_names.as_deref().unwrap_or(none),
                    r.name.as_deref().unwrap_or(""),
                )
        }
        Request::NonResource { verb, path } => {
            matches_exact_or_all(&rule.verbs, verb)
                && non_resource_url_matches(rule.non_resource_urls.as_deref().unwrap_or(none), path)
        }
    }
}

/// Whether any of `rules` allows `req`, by the Kubernetes RBAC authorizer's matching:
///
/// - verbs and apiGroups: `*` or equal;
/// - resources: `*`, equal to `resource` or `resource/subresource`, or `*/subresource` when the
///   request has a subresource (`pods/*` is not a wildcard);
/// - resourceNames: empty allows every name, otherwise the request must name a listed object
///   (so `list`, `watch` and `create` without a name never match);
/// - nonResourceURLs: `*`, equal, or a prefix ending in `*`.
///
/// Scope (which namespace a rule applies in) is not part of a rule; see [`role_allows`].
pub fn allows(rules: &[PolicyRule], req: &Request) -> bool {
    rules.iter().any(|rule| rule_allows(rule, req))
}

/// Whether `role` allows `req`: [`allows`] on its rules, and only for resource requests in the
/// Role's own namespace. A Role never grants anything outside its namespace, cluster-wide, or on
/// non-resource URLs (the authorizer only consults RoleBindings of the request's namespace).
pub fn role_allows(role: &Role, req: &Request) -> bool {
    let Request::Resource(r) = req else {
        return false;
    };
    let Some(ns) = role
        .metadata
        .namespace
        .as_deref()
        .filter(|ns| !ns.is_empty())
    else {
        return false;
    };
    r.namespace.as_deref() == Some(ns) && allows(role.rules.as_deref().unwrap_or_default(), req)
}

/// Exactly the requests a scan in `mode` makes on `pods` in `namespace`: every verb of every
/// rule of [`rules`](crate::rules), on every pod by name (pods sorted and deduplicated), in rule
/// order.
///
/// # Errors
/// As [`rules`](crate::rules): `auto` mode or no pods.
pub fn planned_requests(
    mode: ScanMode,
    namespace: &Namespace,
    pods: &[PodName],
) -> Result<Vec<ResourceRequest>, RbacError> {
    let grants = grants(mode)?;
    let pods = pinned_names(pods)?;
    let mut out = Vec::new();
    for g in grants {
        for verb in g.verbs {
            for pod in &pods {
                let mut r = ResourceRequest::new(*verb, g.resource)
                    .name(pod.as_str())
                    .namespace(namespace.as_str());
                r.subresource = g.subresource.map(str::to_string);
                out.push(r);
            }
        }
    }
    Ok(out)
}

/// A pod name that is not in `pods`: the stand-in for "some other pod of the namespace".
fn outsider_pod(pods: &[PodName]) -> String {
    let taken = |n: &str| pods.iter().any(|p| p.as_str() == n);
    let base = "keyhole-not-a-target";
    if !taken(base) {
        return base.to_string();
    }
    // At most pods.len() suffixes can be taken, so this ends.
    (0..)
        .map(|i| format!("{base}-{i}"))
        .find(|n| !taken(n))
        .expect("an unbounded range yields a free name")
}

/// A namespace other than `namespace`: the most sensitive one, unless it is the target.
fn other_namespace(namespace: &Namespace) -> &'static str {
    if namespace.as_str() == "kube-system" {
        "default"
    } else {
        "kube-system"
    }
}

/// Requests that a scan's Role must deny in every mode, each with the reason it must.
///
/// The list is fixed (it does not grow with the number of pods): exec, debug containers, logs
/// and reads on a pod that is not a target; attach, port-forward, proxy and changes on a target
/// pod; listing, watching and creating pods; secrets, configmaps, service-account tokens;
/// creating or changing Roles and RoleBindings (including `escalate` and `bind`); the scan's
/// rights in another namespace; and cluster-wide requests. Requests without a name ask for
/// "any object", as a SelfSubjectAccessReview without a name does. The target-pod entries use
/// the first pod (sorted) and are left out when `pods` is empty.
pub fn dangerous_requests(
    namespace: &Namespace,
    pods: &[PodName],
) -> Vec<(String, ResourceRequest)> {
    const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
    let ns = namespace.as_str();
    let outsider = outsider_pod(pods);
    let other_ns = other_namespace(namespace);
    let here = |verb: &str, resource: &str| ResourceRequest::new(verb, resource).namespace(ns);
    let mut out: Vec<(String, ResourceRequest)> = Vec::new();
    let mut deny = |why: &str, r: ResourceRequest| out.push((why.to_string(), r));

    // The scan's own rights, on a pod that is not a target.
    let why = "the scan may only touch its target pods, not another pod of the namespace";
    deny(why, here("get", "pods").name(&outsider));
    for verb in ["create", "get"] {
        deny(why, here(verb, "pods").subresource("exec").name(&outsider));
    }
    for verb in ["get", "patch"] {
        let r = here(verb, "pods").subresource("ephemeralcontainers");
        deny(why, r.name(&outsider));
    }
    deny(why, here("get", "pods").subresource("log").name(&outsider));

    // Other ways into a target pod that no mode uses.
    if let Some(target) = pods.iter().min().map(PodName::as_str) {
        let why = "no scan mode attaches to, port-forwards to or proxies into a target pod";
        for (verb, sub) in [
            ("create", "attach"),
            ("get", "attach"),
            ("create", "portforward"),
            ("get", "proxy"),
        ] {
            deny(why, here(verb, "pods").subresource(sub).name(target));
        }
        let why = "the scan must not change or delete the pod it scans";
        for verb in ["update", "patch", "delete"] {
            deny(why, here(verb, "pods").name(target));
        }
        let why = "the scan's rights end at its namespace; the same pod name elsewhere is \
                   another pod";
        let there = |verb: &str| ResourceRequest::new(verb, "pods").namespace(other_ns);
        deny(why, there("get").name(target));
        deny(why, there("create").subresource("exec").name(target));
        deny(why, there("get").subresource("exec").name(target));
        deny(
            why,
            there("patch")
                .subresource("ephemeralcontainers")
                .name(target),
        );
        deny(why, there("get").subresource("log").name(target));
    }

    let why = "the scan must not enumerate or watch the namespace's pods";
    deny(why, here("list", "pods"));
    deny(why, here("watch", "pods"));
    let why = "creating pods would run any image as any service account of the namespace";
    deny(why, here("create", "pods"));
    let why = "the scan must not change or delete pods";
    for verb in ["update", "patch", "delete", "deletecollection"] {
        deny(why, here(verb, "pods"));
    }
    let why = "secrets hold credentials the scan has no use for";
    for verb in ["get", "list", "watch"] {
        deny(why, here(verb, "secrets"));
    }
    let why = "configmaps may hold configuration the scan has no use for";
    deny(why, here("get", "configmaps"));
    deny(why, here("list", "configmaps"));
    let why = "minting tokens would let the scan act as another service account";
    deny(why, here("create", "serviceaccounts").subresource("token"));
    deny(
        why,
        here("create", "serviceaccounts")
            .subresource("token")
            .name("default"),
    );
    let why = "changing RBAC would let the scan grant itself more rights";
    for resource in ["roles", "rolebindings"] {
        for verb in ["create", "update", "patch", "delete", "escalate", "bind"] {
            deny(why, here(verb, resource).group(RBAC_GROUP));
        }
    }
    let why = "a namespaced Role must grant nothing in another namespace";
    deny(
        why,
        ResourceRequest::new("list", "pods").namespace(other_ns),
    );
    deny(
        why,
        ResourceRequest::new("get", "secrets").namespace(other_ns),
    );
    let why = "a namespaced Role must grant nothing cluster-wide";
    deny(why, ResourceRequest::new("list", "pods"));
    deny(why, ResourceRequest::new("get", "namespaces").name(ns));
    deny(why, ResourceRequest::new("list", "nodes"));
    deny(
        why,
        ResourceRequest::new("create", "clusterrolebindings").group(RBAC_GROUP),
    );
    deny(why, ResourceRequest::new("impersonate", "serviceaccounts"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(s: &str) -> PodName {
        PodName::new(s).unwrap()
    }

    #[test]
    fn outsider_avoids_every_target() {
        assert_eq!(outsider_pod(&[pod("web-0")]), "keyhole-not-a-target");
        let taken = [pod("keyhole-not-a-target"), pod("keyhole-not-a-target-0")];
        assert_eq!(outsider_pod(&taken), "keyhole-not-a-target-1");
    }

    #[test]
    fn other_namespace_differs() {
        for ns in ["kube-system", "default", "prod"] {
            let ns = Namespace::new(ns).unwrap();
            assert_ne!(other_namespace(&ns), ns.as_str());
        }
    }
}
