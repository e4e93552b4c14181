//! The one error type of `keyhole-rbac`.

/// Why a scan's RBAC objects cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RbacError {
    /// The scan mode is still `auto`, which is only decided at scan time, so it has no fixed
    /// rules.
    #[error(
        "scan mode auto has no fixed RBAC rules: decide it first (standard if the target has a \
         working sh, else distroless) and build the Role for that mode"
    )]
    UnresolvedMode,
    /// No target pod was given, so there is no name to pin in `resourceNames` (and a rule
    /// without names would grant every pod in the namespace).
    #[error(
        "no target pods: Role rules must pin pod names in resourceNames; resolve the target to \
         at least one pod name first"
    )]
    NoPods,
    /// The API server refused or failed a call.
    #[error("{action} failed: {message}")]
    Api {
        /// What was being done.
        action: String,
        /// The server's (or transport's) message.
        message: String,
    },
    /// The scoped identity can do something the plan does not allow, or cannot do something
    /// the scan needs: the run aborts before any scan.
    #[error(
        "least-privilege check failed: {request} is {} for the scoped identity but the plan says it must be {}{}; aborting",
        if *expected_allowed { "denied" } else { "allowed" },
        if *expected_allowed { "allowed" } else { "denied" },
        rule.as_ref().map(|r| format!(" (granted by rule {r})")).unwrap_or_default()
    )]
    AccessMismatch {
        /// The request.
        request: String,
        /// What the plan wants.
        expected_allowed: bool,
        /// The rule that grants it, when it is wrongly allowed.
        rule: Option<String>,
    },
    /// The cluster's authorizer cannot list the identity's rules completely, so least privilege
    /// cannot be proven.
    #[error(
        "cannot verify least privilege in namespace {namespace}: {reason}; refusing to scan with access that cannot be checked"
    )]
    CannotVerify {
        /// The namespace reviewed.
        namespace: String,
        /// The authorizer's explanation.
        reason: String,
    },
}
