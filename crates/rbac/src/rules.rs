//! What each scan mode may do, as Role rules.

use k8s_openapi::api::rbac::v1::PolicyRule;
use keyhole_core::{PodName, ScanMode};

use crate::RbacError;

/// One permission of a scan: some verbs on one (sub)resource of the target pods, core group.
pub(crate) struct Grant {
    /// The resource, e.g. `pods`.
    pub(crate) resource: &'static str,
    /// The subresource, e.g. `exec`, if any.
    pub(crate) subresource: Option<&'static str>,
    /// The verbs, sorted.
    pub(crate) verbs: &'static [&'static str],
}

impl Grant {
    /// The rule spelling: `resource` or `resource/subresource`.
    fn combined(&self) -> String {
        match self.subresource {
            Some(sub) => format!("{}/{sub}", self.resource),
            None => self.resource.to_string(),
        }
    }
}

/// Reading the pod: its status, containers and (distroless) the debug container's state.
const POD_GET: Grant = Grant {
    resource: "pods",
    subresource: None,
    verbs: &["get"],
};

/// Reading a container's log: distroless and sidecar results come back on it, so those modes
/// need no exec right at all.
const LOG_GET: Grant = Grant {
    resource: "pods",
    subresource: Some("log"),
    verbs: &["get"],
};

/// The grants of each concrete mode; `auto` has none until it is decided.
pub(crate) fn grants(mode: ScanMode) -> Result<&'static [Grant], RbacError> {
    const STANDARD: &[Grant] = &[
        POD_GET,
        // WebSocket exec is authorized as `get` before Kubernetes 1.35 and as `create` from
        // 1.35 on; both are needed to work across versions.
        Grant {
            resource: "pods",
            subresource: Some("exec"),
            verbs: &["create", "get"],
        },
    ];
    const DISTROLESS: &[Grant] = &[
        POD_GET,
        // `patch` adds the debug container (the only way to add one); `get` reads the
        // subresource back.
        Grant {
            resource: "pods",
            subresource: Some("ephemeralcontainers"),
            verbs: &["get", "patch"],
        },
        LOG_GET,
    ];
    const SIDECAR: &[Grant] = &[POD_GET, LOG_GET];
    match mode {
        ScanMode::Standard => Ok(STANDARD),
        ScanMode::Distroless => Ok(DISTROLESS),
        ScanMode::Sidecar => Ok(SIDECAR),
        ScanMode::Auto => Err(RbacError::UnresolvedMode),
    }
}

/// `pods` sorted and deduplicated, refusing an empty list: a rule with no `resourceNames`
/// would match every pod of the namespace.
pub(crate) fn pinned_names(pods: &[PodName]) -> Result<Vec<&PodName>, RbacError> {
    let mut names: Vec<&PodName> = pods.iter().collect();
    names.sort();
    names.dedup();
    if names.is_empty() {
        return Err(RbacError::NoPods);
    }
    Ok(names)
}

/// The Role rules of a scan in `mode` on `pods`.
///
/// One rule per (sub)resource, sorted by resource, each with `apiGroups: [""]`, sorted verbs and
/// `resourceNames` = the pods (sorted, deduplicated):
///
/// | mode | rules |
/// |---|---|
/// | standard | `pods` get; `pods/exec` create, get |
/// | distroless | `pods` get; `pods/ephemeralcontainers` get, patch; `pods/log` get |
/// | sidecar | `pods` get; `pods/log` get |
///
/// # Errors
/// [`RbacError::UnresolvedMode`] for [`ScanMode::Auto`], [`RbacError::NoPods`] for no pods.
pub fn rules(mode: ScanMode, pods: &[PodName]) -> Result<Vec<PolicyRule>, RbacError> {
    let grants = grants(mode)?;
    let names: Vec<String> = pinned_names(pods)?
        .into_iter()
        .map(|p| p.to_string())
        .collect();
    let mut rules: Vec<PolicyRule> = grants
        .iter()
        .map(|g| {
            let mut verbs: Vec<String> = g.verbs.iter().map(|v| v.to_string()).collect();
            verbs.sort();
            PolicyRule {
                api_groups: Some(vec![String::new()]),
                resources: Some(vec![g.combined()]),
                resource_names: Some(names.clone()),
                verbs,
                non_resource_urls: None,
            }
        })
        .collect();
    rules.sort_by(|a, b| a.resources.cmp(&b.resources));
    Ok(rules)
}
