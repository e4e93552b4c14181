//! The crate's one error type.

/// Failures of the testkit's own setup helpers (not API answers: those are HTTP Status bodies).
#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    /// Binding the loopback listener or another socket operation failed.
    #[error("keyhole-testkit: I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// Generating a certificate or building the TLS configuration failed.
    #[error("keyhole-testkit: TLS setup failed: {0}")]
    Tls(String),
    /// An object did not round-trip through JSON (a type the fake does not serve?).
    #[error("keyhole-testkit: JSON conversion failed: {0}")]
    Json(#[from] serde_json::Error),
    /// The fake's server-side validation refused a seeded object; the Status body says why.
    #[error("keyhole-testkit: the fake API server refused the object: {0}")]
    Rejected(String),
    /// A helper was pointed at an object that does not exist.
    #[error("keyhole-testkit: not found: {0}")]
    NotFound(String),
    /// An injected dropped-connection fault (what the in-process `Service` returns).
    #[error("keyhole-testkit: connection dropped (injected fault)")]
    ConnectionDropped,
    /// Reading a request or writing a response failed at the HTTP layer.
    #[error("keyhole-testkit: HTTP transport error: {0}")]
    Transport(String),
    /// The test node (real runc containers) could not do what was asked; the message says why
    /// and, for a missing tool or privilege, how to get it.
    #[error("keyhole-testkit node: {0}")]
    Node(String),
    /// Building a `kube::Client` for the HTTPS server failed.
    #[error("keyhole-testkit: building the kube client failed: {0}")]
    Client(#[from] kube::Error),
}
