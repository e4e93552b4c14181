//! References to the objects a run creates, shared by the crates that create, record, delete
//! and audit them.

/// The kinds of object Keyhole creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKind {
    /// core/v1 ServiceAccount.
    ServiceAccount,
    /// core/v1 Secret (the token's anchor).
    Secret,
    /// rbac/v1 Role.
    Role,
    /// rbac/v1 RoleBinding.
    RoleBinding,
    /// networking/v1 NetworkPolicy.
    NetworkPolicy,
    /// core/v1 Pod (a scan pod).
    Pod,
}

impl ObjectKind {
    /// Every kind, in the order the reaper visits them.
    pub const ALL: [ObjectKind; 6] = [
        Self::Pod,
        Self::NetworkPolicy,
        Self::RoleBinding,
        Self::Role,
        Self::Secret,
        Self::ServiceAccount,
    ];

    /// The `Kind` name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ServiceAccount => "ServiceAccount",
            Self::Secret => "Secret",
            Self::Role => "Role",
            Self::RoleBinding => "RoleBinding",
            Self::NetworkPolicy => "NetworkPolicy",
            Self::Pod => "Pod",
        }
    }
}

/// One created object.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Created {
    /// Its kind.
    pub kind: ObjectKind,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// The uid the API server assigned; deletion is preconditioned on it.
    pub uid: Option<String>,
}

impl std::fmt::Display for Created {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.kind.as_str(), self.namespace, self.name)
    }
}
