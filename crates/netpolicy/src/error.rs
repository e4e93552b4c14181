//! The one error type of `keyhole-netpolicy`.

/// What can be wrong with a network isolation input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetpolError {
    /// The API server endpoint is not `CIDR:PORT` / `IP:PORT`.
    #[error(
        "invalid API server endpoint {value:?}: {reason} (expected e.g. 10.96.0.1/32:443 or [fd00::1]:6443)"
    )]
    InvalidEndpoint {
        /// The rejected input.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
}
