//! The one error type of `keyhole-cleanup`.

/// Failures of the cleanup machinery itself (failed deletions are data in
/// [`CleanupReport`](crate::CleanupReport), and kinds the reaper could not list are data in
/// [`ReapReport`](crate::ReapReport), not errors: cleanup goes on past them).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CleanupError {
    /// Installing a signal handler failed.
    #[error("cannot install the {signal} handler: {message}")]
    Signal {
        /// Which signal.
        signal: &'static str,
        /// The OS error.
        message: String,
    },
}
