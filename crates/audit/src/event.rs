//! What the audit log records.

use serde::{Deserialize, Serialize};

/// A Kubernetes object a run created or deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    /// `Kind` (e.g. `ServiceAccount`).
    pub kind: String,
    /// Namespace (empty for cluster-scoped objects).
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The uid the API server assigned, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
}

/// One auditable event. There is deliberately no variant that can carry a token or any other
/// credential: the log is meant to be shared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A run began.
    RunStarted {
        /// Who ran it, as the API server sees the user (SelfSubjectReview username).
        identity: String,
        /// `namespace/pod[,pod...]`.
        target: String,
        /// The scan mode.
        mode: String,
        /// When the run's access expires (RFC 3339).
        expires_at: String,
    },
    /// An object was created.
    ObjectCreated(ObjectRef),
    /// An object was deleted (or found already gone).
    ObjectDeleted(ObjectRef),
    /// A scoped token was issued (its expiry only, never the token).
    TokenIssued {
        /// The ServiceAccount it belongs to.
        service_account: String,
        /// Expiry from the token's own `exp` claim (RFC 3339).
        expires_at: String,
    },
    /// A least-privilege verification: one request checked with the scoped identity.
    AccessVerified {
        /// The request, e.g. `create pods/exec web-0 in prod`.
        request: String,
        /// Whether the plan wants it allowed.
        expected_allowed: bool,
        /// What the API server answered.
        allowed: bool,
    },
    /// Cleanup finished and checked that every object is gone.
    CleanupVerified {
        /// Objects still present after deletion and retries (empty when clean).
        remaining: Vec<ObjectRef>,
    },
    /// A run ended.
    RunEnded {
        /// The process exit code.
        exit_code: i32,
        /// A one-line outcome.
        outcome: String,
    },
    /// The post-scan audit ran, after the run ended (its checks of the run's records, of
    /// cleanup with fresh GETs, of credential artifacts and of the target). Recorded after
    /// `run_ended` because it can change the process's exit code, which the log then says.
    PostScanAudited {
        /// How many checks ran (not-applicable ones included).
        checks: u32,
        /// Each failed check, `post-scan CHECK: what, and where` (paths, names and token
        /// fingerprints, never a credential).
        findings: Vec<String>,
        /// The audit's own code: 0 when every check passed, 4 for leftovers, 6 for other
        /// findings. The process exits with the worse of it and the run's code.
        exit_code: i32,
    },
}
