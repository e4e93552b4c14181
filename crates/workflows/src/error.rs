//! The one error type of the workflows.

/// Why a workflow could not gather the facts of a container. Problems *of the target's files*
/// are never this: they are [`keyhole_engine::FactError`]s inside the facts.
#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    /// An API call failed (with the scoped client).
    #[error("{action} failed: {message}")]
    Api {
        /// What was being done, e.g. `reading pod prod/web-0`.
        action: String,
        /// The API server's or the client's message.
        message: String,
    },
    /// The pod has no container of that name, or no way to choose one.
    #[error("{0}")]
    Container(String),
    /// The container is not running, so there is nothing to exec into or read.
    #[error(
        "container {container} of pod {namespace}/{pod} is not running ({state}); scan it once it runs"
    )]
    NotRunning {
        /// Namespace.
        namespace: String,
        /// Pod.
        pod: String,
        /// Container.
        container: String,
        /// What the kubelet reports instead.
        state: String,
    },
    /// The target container has no `/bin/sh`: the standard workflow cannot run there.
    #[error(
        "container {container} of pod {namespace}/{pod} has no shell ({detail}): scan it with \
         --mode distroless (an ephemeral container reads it from outside), or --mode auto"
    )]
    NoShell {
        /// Namespace.
        namespace: String,
        /// Pod.
        pod: String,
        /// Container.
        container: String,
        /// What the exec reported.
        detail: String,
    },
    /// The exec session failed or ended without a usable answer.
    #[error("the exec session into {namespace}/{pod} ({container}) failed: {detail}")]
    Exec {
        /// Namespace.
        namespace: String,
        /// Pod.
        pod: String,
        /// Container.
        container: String,
        /// What went wrong.
        detail: String,
    },
    /// The distroless workflow must not run against this target as asked.
    #[error("{0}")]
    Refused(String),
    /// The ephemeral container did not deliver one complete, checksummed frame of facts.
    #[error("the scanner container {container} in {namespace}/{pod}: {detail}")]
    Agent {
        /// Namespace.
        namespace: String,
        /// Pod.
        pod: String,
        /// The ephemeral container.
        container: String,
        /// What went wrong.
        detail: String,
    },
}
