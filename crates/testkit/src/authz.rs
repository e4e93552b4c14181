//! Identities and the RBAC authorizer. This is deliberately an implementation independent of
//! `keyhole-rbac`'s offline evaluator: it is what proves keyhole's Roles, so it re-derives
//! Kubernetes' rule matching (`k8s.io/kubernetes/pkg/registry/rbac/validation` and
//! `plugin/pkg/auth/authorizer/rbac`) rather than sharing code with the thing under test.

use std::fmt;

use serde_json::{Value, json};

use crate::resources::{RBAC, by_plural};
use crate::store::Store;

/// Who made a request, as the fake's authenticator decided.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identity {
    /// No credentials at all: `system:anonymous`, which may only read `/version` and the
    /// health endpoints (403 elsewhere), as with a kubeadm cluster's anonymous auth.
    Anonymous,
    /// A bearer token the fake rejects (unknown, expired, revoked, wrong audience): 401.
    Unauthenticated,
    /// The user's own kubeconfig: `kubernetes-admin` in `system:masters`, allowed everything.
    Admin,
    /// A ServiceAccount, authenticated by a token minted through TokenRequest.
    ServiceAccount {
        /// The ServiceAccount's namespace.
        namespace: String,
        /// The ServiceAccount's name.
        name: String,
    },
}

impl Identity {
    /// The Kubernetes username (`system:serviceaccount:NS:NAME` for a ServiceAccount).
    pub fn username(&self) -> String {
        match self {
            Self::Anonymous | Self::Unauthenticated => "system:anonymous".to_owned(),
            Self::Admin => "kubernetes-admin".to_owned(),
            Self::ServiceAccount { namespace, name } => {
                format!("system:serviceaccount:{namespace}:{name}")
            }
        }
    }

    /// The groups the authenticator attaches.
    pub fn groups(&self) -> Vec<String> {
        match self {
            Self::Anonymous | Self::Unauthenticated => vec!["system:unauthenticated".to_owned()],
            Self::Admin => vec![
                "system:masters".to_owned(),
                "system:authenticated".to_owned(),
            ],
            Self::ServiceAccount { namespace, .. } => vec![
                "system:serviceaccounts".to_owned(),
                format!("system:serviceaccounts:{namespace}"),
                "system:authenticated".to_owned(),
            ],
        }
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.username())
    }
}

/// The attributes an authorization decision is about.
#[derive(Debug, Clone, Default)]
pub(crate) struct Attributes {
    pub(crate) verb: String,
    pub(crate) resource_request: bool,
    pub(crate) group: String,
    pub(crate) resource: String,
    pub(crate) subresource: String,
    pub(crate) namespace: String,
    pub(crate) name: String,
    /// For non-resource requests.
    pub(crate) path: String,
}

/// The outcome, with the reason string the real RBAC authorizer gives on allow.
#[derive(Debug, Clone)]
pub(crate) struct Decision {
    pub(crate) allowed: bool,
    pub(crate) reason: String,
}

/// Rules every authenticated identity has through the default `system:basic-user`,
/// `system:discovery` and `system:public-info-viewer` ClusterRoleBindings.
fn basic_user_rules() -> Vec<Value> {
    vec![
        json!({"verbs": ["create"], "apiGroups": ["authorization.k8s.io"],
               "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]}),
        json!({"verbs": ["create"], "apiGroups": ["authentication.k8s.io"],
               "resources": ["selfsubjectreviews"]}),
        json!({"verbs": ["get"], "nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*",
               "/healthz", "/livez", "/openapi", "/openapi/*", "/readyz", "/version", "/version/"]}),
    ]
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn has(list: &[&str], want: &str) -> bool {
    list.contains(&want)
}

/// `VerbMatches`: the rule lists the verb or `*`.
fn verb_matches(rule: &Value, verb: &str) -> bool {
    let verbs = strings(&rule["verbs"]);
    has(&verbs, "*") || has(&verbs, verb)
}

/// `ResourceMatches`: `*`, the exact `resource[/subresource]`, or `*/subresource`.
fn resource_matches(rule: &Value, combined: &str, subresource: &str) -> bool {
    strings(&rule["resources"]).iter().any(|r| {
        *r == "*"
            || *r == combined
            || (!subresource.is_empty()
                && r.len() == subresource.len() + 2
                && r.starts_with("*/")
                && r.ends_with(subresource))
    })
}

/// `ResourceNameMatches`: no names means all; a request without a name never matches names.
fn name_matches(rule: &Value, name: &str) -> bool {
    let names = strings(&rule["resourceNames"]);
    if names.is_empty() {
        return true;
    }
    !name.is_empty() && has(&names, name)
}

fn non_resource_matches(rule: &Value, path: &str) -> bool {
    strings(&rule["nonResourceURLs"]).iter().any(|u| {
        *u == "*" || *u == path || (u.ends_with('*') && path.starts_with(&u[..u.len() - 1]))
    })
}

/// Whether one PolicyRule allows the request (`RuleAllows`).
pub(crate) fn rule_allows(rule: &Value, a: &Attributes) -> bool {
    if a.resource_request {
        let combined = if a.subresource.is_empty() {
            a.resource.clone()
        } else {
            format!("{}/{}", a.resource, a.subresource)
        };
        let groups = strings(&rule["apiGroups"]);
        verb_matches(rule, &a.verb)
            && (has(&groups, "*") || has(&groups, &a.group))
            && resource_matches(rule, &combined, &a.subresource)
            && name_matches(rule, &a.name)
    } else {
        verb_matches(rule, &a.verb) && non_resource_matches(rule, &a.path)
    }
}

/// `appliesToUser` for one binding subject.
fn subject_matches(subject: &Value, identity: &Identity, binding_ns: &str) -> bool {
    let kind = subject["kind"].as_str().unwrap_or("");
    let name = subject["name"].as_str().unwrap_or("");
    match kind {
        "User" => name == identity.username(),
        "Group" => identity.groups().iter().any(|g| g == name),
        "ServiceAccount" => {
            let ns = subject["namespace"]
                .as_str()
                .filter(|s| !s.is_empty())
                .unwrap_or(binding_ns);
            !ns.is_empty()
                && matches!(identity, Identity::ServiceAccount { namespace, name: n }
                    if namespace == ns && n == name)
        }
        _ => false,
    }
}

/// One rule with the sentence explaining where it came from.
pub(crate) struct SourcedRule {
    pub(crate) rule: Value,
    pub(crate) via: String,
}

fn binding_rules(
    store: &Store,
    binding: &Value,
    binding_ns: &str,
    out: &mut Vec<SourcedRule>,
    identity: &Identity,
) {
    let Some(subjects) = binding["subjects"].as_array() else {
        return;
    };
    let Some(subject) = subjects
        .iter()
        .find(|s| subject_matches(s, identity, binding_ns))
    else {
        return;
    };
    let role_ref = &binding["roleRef"];
    if role_ref["apiGroup"].as_str() != Some(RBAC) {
        return;
    }
    let role_name = role_ref["name"].as_str().unwrap_or("");
    let (role, role_kind) = match role_ref["kind"].as_str() {
        Some("Role") if !binding_ns.is_empty() => (
            by_plural(RBAC, "roles").and_then(|d| store.get(d, binding_ns, role_name)),
            "Role",
        ),
        Some("ClusterRole") => (
            by_plural(RBAC, "clusterroles").and_then(|d| store.get(d, "", role_name)),
            "ClusterRole",
        ),
        _ => return,
    };
    let Some(role) = role else { return };
    let binding_name = binding["metadata"]["name"].as_str().unwrap_or("");
    let binding_kind = if binding_ns.is_empty() {
        "ClusterRoleBinding".to_owned()
    } else {
        format!("RoleBinding \"{binding_name}/{binding_ns}\"")
    };
    let binding_desc = if binding_ns.is_empty() {
        format!("{binding_kind} \"{binding_name}\"")
    } else {
        binding_kind
    };
    let subject_desc = match subject["kind"].as_str() {
        Some("ServiceAccount") => format!(
            "ServiceAccount \"{}/{}\"",
            subject["name"].as_str().unwrap_or(""),
            subject["namespace"]
                .as_str()
                .filter(|s| !s.is_empty())
                .unwrap_or(binding_ns)
        ),
        Some(k) => format!("{k} \"{}\"", subject["name"].as_str().unwrap_or("")),
        None => String::new(),
    };
    for rule in role["rules"].as_array().into_iter().flatten() {
        out.push(SourcedRule {
            rule: rule.clone(),
            via: format!(
                "RBAC: allowed by {binding_desc} of {role_kind} \"{role_name}\" to {subject_desc}"
            ),
        });
    }
}

/// Every rule that applies to `identity` for requests in `namespace` ("" = cluster scope):
/// bindings in that namespace plus cluster role bindings plus the defaults.
pub(crate) fn rules_for(store: &Store, identity: &Identity, namespace: &str) -> Vec<SourcedRule> {
    let mut out = Vec::new();
    match identity {
        Identity::Unauthenticated => return out,
        Identity::Anonymous => {
            out.push(SourcedRule {
                rule: json!({"verbs": ["get"], "nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"]}),
                via: "RBAC: allowed by ClusterRoleBinding \"system:public-info-viewer\" of ClusterRole \"system:public-info-viewer\" to Group \"system:unauthenticated\"".to_owned(),
            });
            return out;
        }
        _ => {}
    }
    if let Some(crb) = by_plural(RBAC, "clusterrolebindings") {
        for b in store.list(crb, None) {
            binding_rules(store, b, "", &mut out, identity);
        }
    }
    if !namespace.is_empty()
        && let Some(rb) = by_plural(RBAC, "rolebindings")
    {
        for b in store.list(rb, Some(namespace)) {
            binding_rules(store, b, namespace, &mut out, identity);
        }
    }
    for rule in basic_user_rules() {
        out.push(SourcedRule {
            rule,
            via: "RBAC: allowed by ClusterRoleBinding \"system:basic-user\" of ClusterRole \"system:basic-user\" to Group \"system:authenticated\"".to_owned(),
        });
    }
    out
}

/// The authorization decision for one request.
pub(crate) fn authorize(store: &Store, identity: &Identity, a: &Attributes) -> Decision {
    match identity {
        Identity::Admin => Decision {
            allowed: true,
            reason: String::new(),
        },
        Identity::Unauthenticated => Decision {
            allowed: false,
            reason: String::new(),
        },
        Identity::Anonymous | Identity::ServiceAccount { .. } => {
            match rules_for(store, identity, &a.namespace)
                .into_iter()
                .find(|r| rule_allows(&r.rule, a))
            {
                Some(r) => Decision {
                    allowed: true,
                    reason: r.via,
                },
                None => Decision {
                    allowed: false,
                    reason: String::new(),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(verb: &str, resource: &str, sub: &str, name: &str) -> Attributes {
        Attributes {
            verb: verb.into(),
            resource_request: true,
            resource: resource.into(),
            subresource: sub.into(),
            namespace: "ns".into(),
            name: name.into(),
            ..Attributes::default()
        }
    }

    #[test]
    fn kubernetes_rule_matching() {
        let pinned = json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"], "resourceNames": ["a"]});
        assert!(rule_allows(&pinned, &attrs("get", "pods", "", "a")));
        assert!(!rule_allows(&pinned, &attrs("get", "pods", "", "b")));
        assert!(!rule_allows(&pinned, &attrs("list", "pods", "", "")));
        assert!(
            !rule_allows(&pinned, &attrs("get", "pods", "log", "a")),
            "subresource needs its own rule"
        );
        let star_sub = json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*/exec"]});
        assert!(rule_allows(
            &star_sub,
            &attrs("create", "pods", "exec", "a")
        ));
        assert!(!rule_allows(&star_sub, &attrs("create", "pods", "", "a")));
        let mut other_group = attrs("get", "pods", "", "a");
        other_group.group = "apps".into();
        assert!(!rule_allows(&pinned, &other_group));
        let nr = json!({"verbs": ["get"], "nonResourceURLs": ["/apis/*"]});
        let a = Attributes {
            verb: "get".into(),
            path: "/apis/x".into(),
            ..Attributes::default()
        };
        assert!(rule_allows(&nr, &a));
    }
}
