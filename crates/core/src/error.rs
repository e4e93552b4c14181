//! The one error type of `keyhole-core`.

/// Everything that can be wrong with a value before Keyhole acts on it.
///
/// Messages are one line, name the offending input and say what would be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoreError {
    /// A Kubernetes name breaks the DNS-1123 rules for its kind.
    #[error("invalid {kind} name {value:?}: {reason}")]
    InvalidName {
        /// What the name is for (`namespace`, `pod`, `container`, ...).
        kind: &'static str,
        /// The rejected input.
        value: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// A label selector could not be parsed or holds an invalid key or value.
    #[error("invalid label selector {value:?}: {reason}")]
    InvalidSelector {
        /// The rejected input.
        value: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// A scan mode other than the four Keyhole knows.
    #[error("unknown scan mode {0:?}: expected one of standard, distroless, sidecar, auto")]
    UnknownMode(String),
    /// A run id that is not 10 lowercase letters/digits starting with a letter.
    #[error("invalid run id {0:?}: expected 10 characters a-z/0-9 starting with a letter")]
    InvalidRunId(String),
    /// A TTL that cannot be parsed or lies outside the allowed window.
    #[error("invalid ttl {value:?}: {reason}")]
    InvalidTtl {
        /// The rejected input.
        value: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A duration that cannot be parsed.
    #[error("invalid duration {value:?}: {reason}")]
    InvalidDuration {
        /// The rejected input.
        value: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A target that names no pod.
    #[error("a scan target needs at least one pod name or a label selector")]
    EmptyTarget,
    /// A target still given by a label selector where pod names are needed; resolve it against
    /// the cluster first (Role rules can only pin names).
    #[error(
        "the target's label selector must be resolved to pod names first (Role rules can only pin names)"
    )]
    UnresolvedSelector,
    /// The operating system's random source failed; no run id or private name can be made.
    #[error("the system random source failed ({0}); cannot make a run id or a private name")]
    Random(String),
    /// An expiry time past what a timestamp can represent.
    #[error("expiry time out of range")]
    TimeOutOfRange,
}
