//! The resources the fake serves, and the parse of a request path into Kubernetes'
//! `RequestInfo` (verb, group, resource, subresource, namespace, name): the same attributes the
//! real authorizer sees.

use http::Method;

/// One served resource type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ResourceDef {
    pub(crate) group: &'static str,
    pub(crate) version: &'static str,
    pub(crate) plural: &'static str,
    pub(crate) kind: &'static str,
    pub(crate) namespaced: bool,
    /// Create-only review resources: never stored.
    pub(crate) review: bool,
}

impl ResourceDef {
    pub(crate) fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

const fn stored(
    group: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
) -> ResourceDef {
    ResourceDef {
        group,
        version: "v1",
        plural,
        kind,
        namespaced,
        review: false,
    }
}

const fn review(group: &'static str, plural: &'static str, kind: &'static str) -> ResourceDef {
    ResourceDef {
        group,
        version: "v1",
        plural,
        kind,
        namespaced: false,
        review: true,
    }
}

pub(crate) const RBAC: &str = "rbac.authorization.k8s.io";

/// Everything the fake serves. The index into this table is the storage key's first part.
pub(crate) const RESOURCES: &[ResourceDef] = &[
    stored("", "namespaces", "Namespace", false),
    stored("", "pods", "Pod", true),
    stored("", "serviceaccounts", "ServiceAccount", true),
    stored("", "secrets", "Secret", true),
    stored("", "configmaps", "ConfigMap", true),
    stored(RBAC, "roles", "Role", true),
    stored(RBAC, "rolebindings", "RoleBinding", true),
    stored(RBAC, "clusterroles", "ClusterRole", false),
    stored(RBAC, "clusterrolebindings", "ClusterRoleBinding", false),
    stored(
        "networking.k8s.io",
        "networkpolicies",
        "NetworkPolicy",
        true,
    ),
    review(
        "authorization.k8s.io",
        "selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
    ),
    review(
        "authorization.k8s.io",
        "selfsubjectrulesreviews",
        "SelfSubjectRulesReview",
    ),
    review(
        "authentication.k8s.io",
        "selfsubjectreviews",
        "SelfSubjectReview",
    ),
];

/// Finds a resource by API group and plural.
pub(crate) fn by_plural(group: &str, plural: &str) -> Option<&'static ResourceDef> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.plural == plural)
}

/// Finds a resource by apiVersion and kind (for ownerReferences and typed lookups).
pub(crate) fn by_kind(api_version: &str, kind: &str) -> Option<&'static ResourceDef> {
    RESOURCES
        .iter()
        .find(|r| r.kind == kind && r.api_version() == api_version)
}

/// The attributes of one request, as Kubernetes' `RequestInfoFactory` derives them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RequestInfo {
    pub(crate) is_resource_request: bool,
    pub(crate) path: String,
    pub(crate) verb: String,
    pub(crate) api_group: String,
    pub(crate) api_version: String,
    pub(crate) namespace: String,
    pub(crate) resource: String,
    pub(crate) subresource: String,
    pub(crate) name: String,
}

/// Parses path + query (already split) into request attributes. Mirrors
/// `k8s.io/apiserver/pkg/endpoints/request/requestinfo.go`.
pub(crate) fn request_info(method: &Method, path: &str, query: &[(String, String)]) -> RequestInfo {
    let mut info = RequestInfo {
        path: path.to_owned(),
        verb: method.as_str().to_lowercase(),
        ..RequestInfo::default()
    };
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let rest: &[&str] = match parts.as_slice() {
        ["api", version, rest @ ..] if !rest.is_empty() => {
            info.api_version = (*version).to_owned();
            rest
        }
        ["apis", group, version, rest @ ..] if !rest.is_empty() => {
            info.api_group = (*group).to_owned();
            info.api_version = (*version).to_owned();
            rest
        }
        _ => return info,
    };
    info.is_resource_request = true;
    let mut rest = rest;
    if rest[0] == "namespaces" && rest.len() > 1 {
        info.namespace = rest[1].to_owned();
        if rest.len() > 2 && rest[2] != "status" && rest[2] != "finalize" {
            rest = &rest[2..];
        }
    }
    info.resource = rest[0].to_owned();
    if let Some(name) = rest.get(1) {
        info.name = (*name).to_owned();
    }
    if let Some(sub) = rest.get(2) {
        info.subresource = (*sub).to_owned();
    }
    // A namespace's own name is its "namespace" for the request, as in the real factory.
    if info.resource == "namespaces" && rest.len() > 1 && rest[0] == "namespaces" {
        info.namespace = info.name.clone();
    }
    let watch = query
        .iter()
        .any(|(k, v)| k == "watch" && (v == "true" || v == "1"));
    info.verb = match *method {
        Method::GET if watch => "watch",
        Method::GET if info.name.is_empty() => "list",
        Method::GET | Method::HEAD => "get",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if info.name.is_empty() => "deletecollection",
        Method::DELETE => "delete",
        _ => "",
    }
    .to_owned();
    info
}

/// Splits a raw query string into decoded pairs (tolerates kube's leading `&`).
pub(crate) fn parse_query(query: Option<&str>) -> Vec<(String, String)> {
    let Some(q) = query else { return Vec::new() };
    q.split('&')
        .filter(|s| !s.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_the_request_info_factory() {
        let q = parse_query(Some("&container=a&command=sh&command=-c"));
        assert_eq!(q[0], ("container".into(), "a".into()));
        let i = request_info(&Method::GET, "/api/v1/namespaces/ns/pods/p/exec", &q);
        assert_eq!(
            (i.verb.as_str(), i.resource.as_str(), i.subresource.as_str()),
            ("get", "pods", "exec")
        );
        assert_eq!((i.namespace.as_str(), i.name.as_str()), ("ns", "p"));
        let i = request_info(&Method::GET, "/api/v1/namespaces/ns/pods", &[]);
        assert_eq!(i.verb, "list");
        let i = request_info(&Method::GET, "/api/v1/namespaces/ns", &[]);
        assert_eq!(
            (i.resource.as_str(), i.name.as_str(), i.namespace.as_str()),
            ("namespaces", "ns", "ns")
        );
        let i = request_info(
            &Method::GET,
            "/apis/rbac.authorization.k8s.io/v1/namespaces/ns/roles",
            &[("watch".into(), "true".into())],
        );
        assert_eq!((i.verb.as_str(), i.api_group.as_str()), ("watch", RBAC));
        let i = request_info(&Method::DELETE, "/api/v1/namespaces/ns/secrets", &[]);
        assert_eq!(i.verb, "deletecollection");
        let i = request_info(&Method::GET, "/version", &[]);
        assert!(!i.is_resource_request);
        assert_eq!(percent_decode("a%3Db%2Cc+d"), "a=b,c d");
        assert_eq!(percent_decode("100%"), "100%");
    }
}
