//! Short-lived credentials for one scan: the bound TokenRequest, its anchor object, and the
//! kubeconfig template of the scoped client.
//!
//! This part is offline: it builds the objects and text that the live part (minting the token,
//! checking its claims, handing the kubeconfig to a child process without a plain file) will
//! use. The TLS policy is enforced here already, so no code path can produce a kubeconfig that
//! skips certificate verification.

mod error;
mod kubeconfig;
mod token;

pub use error::CredentialsError;
pub use kubeconfig::{ClusterEndpoint, TOKEN_PLACEHOLDER, kubeconfig_template};
pub use token::{anchor_secret, token_expiration_seconds, token_request};
