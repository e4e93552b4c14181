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
}
