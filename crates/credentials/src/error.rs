//! The one error type of `keyhole-credentials`.

/// What can be wrong with the inputs of a scoped credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialsError {
    /// The API server URL is not `https://` (the scoped token must never cross the network in
    /// clear text).
    #[error("refusing API server {0:?}: only https:// URLs are allowed for the scoped client")]
    InsecureServer(String),
    /// The API server URL has no host or carries user info, a path, a query or a fragment.
    #[error("invalid API server URL {url:?}: {reason}")]
    InvalidServer {
        /// The rejected URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No certificate authority data: the server certificate could not be verified.
    #[error(
        "no CA data for the cluster: the scoped client verifies the API server certificate and needs the cluster CA (certificate-authority-data)"
    )]
    MissingCa,
    /// The CA data is not base64-encoded PEM.
    #[error("the cluster CA data is not a base64-encoded PEM certificate: {0}")]
    InvalidCa(String),
    /// The minted token does not say what was asked (subject, expiry, audience, binding).
    #[error("the API server returned a token that does not match the request: {0}; aborting")]
    TokenClaims(String),
    /// The TokenRequest answer carried no token.
    #[error("the API server answered the TokenRequest without a token")]
    NoToken,
    /// The API server refused or failed a call.
    #[error("{action} failed: {message}")]
    Api {
        /// What was being done.
        action: String,
        /// The server's (or transport's) message.
        message: String,
    },
    /// An operating-system call for secret handling failed (memfd, prctl, rlimit, files).
    #[error("{action} failed: {message}")]
    Os {
        /// What was being done.
        action: &'static str,
        /// The OS error.
        message: String,
    },
}
