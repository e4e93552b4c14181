//! The one error type of `keyhole-cleanup`.

/// Failures of the cleanup machinery itself (failed deletions are data in
/// [`CleanupReport`](crate::CleanupReport), not errors: cleanup goes on past them).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CleanupError {
    /// Listing objects for the reaper failed.
    #[error("listing keyhole-managed {kind} in {scope} failed: {message}")]
    List {
        /// The kind listed.
        kind: &'static str,
        /// Namespace or "all namespaces".
        scope: String,
        /// The API error.
        message: String,
    },
    /// Installing a signal handler failed.
    #[error("cannot install the {signal} handler: {message}")]
    Signal {
        /// Which signal.
        signal: &'static str,
        /// The OS error.
        message: String,
    },
}
