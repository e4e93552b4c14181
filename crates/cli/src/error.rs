//! The one error type of the session library.

use std::time::Duration;

/// Why a session (or the work it ran) failed. No variant carries a token or any other secret.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// SelfSubjectReview with the user's credentials failed (the cluster cannot be reached, or
    /// does not accept the user's credentials).
    #[error("asking the API server who you are (SelfSubjectReview) failed: {0}")]
    Identity(String),
    /// A setup step got no answer in time.
    #[error(
        "{step}: the API server did not answer within {limit:?}; retry, or raise KEYHOLE_API_TIMEOUT for a slow cluster"
    )]
    Timeout {
        /// The step.
        step: &'static str,
        /// The bound.
        limit: Duration,
    },
    /// Reaping earlier runs' leftovers failed.
    #[error("reaping earlier runs' leftovers: {0}")]
    Reap(#[source] keyhole_cleanup::CleanupError),
    /// Creating or verifying the run's RBAC objects failed.
    #[error(transparent)]
    Rbac(#[from] keyhole_rbac::RbacError),
    /// Minting or checking the scoped token failed.
    #[error(transparent)]
    Credentials(#[from] keyhole_credentials::CredentialsError),
    /// The scoped client could not be built from the token.
    #[error("building the scoped client: {0}")]
    ScopedClient(#[source] keyhole_credentials::CredentialsError),
    /// A scoped client could not be made (test or custom [`crate::session::ScopedClients`]).
    #[error("building the scoped client: {0}")]
    ScopedClientOther(String),
    /// The scoped kubeconfig could not be handed to the child.
    #[error("handing the scoped kubeconfig to the command: {0}")]
    Handoff(#[source] keyhole_credentials::CredentialsError),
    /// `keyhole access` was given no command.
    #[error("no command to run: give it after `--`")]
    NoCommand,
    /// The command could not be started.
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The in-process work (a scan) failed; its own error says what to do.
    #[error("{0}")]
    Work(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Signal handlers could not be installed (nothing was created).
    #[error(transparent)]
    Guard(keyhole_cleanup::CleanupError),
    /// keyhole itself panicked; cleanup still ran.
    #[error("internal error (panic): {0}")]
    Panicked(String),
}
