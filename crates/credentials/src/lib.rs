//! Short-lived credentials for one scan: the bound TokenRequest, its anchor object, and the
//! kubeconfig template of the scoped client.
//!
//! Offline: the TokenRequest and anchor objects and the kubeconfig template, with the TLS policy
//! built in (no code path can produce a config that skips certificate verification). Live:
//! minting the token with the user's client and checking its claims before use, the scoped
//! `kube::Client`, the scoped kubeconfig for a child process handed over through a sealed memfd,
//! and process hardening (no core dumps, non-dumpable) while secrets are held. Secrets live in
//! `secrecy` types: zeroized on drop, redacted in `Debug`.

mod claims;
mod client;
mod error;
mod handoff;
mod kubeconfig;
mod process;
mod token;

pub use claims::{CLOCK_SKEW_SECS, Claims, ExpectedClaims, check_claims, decode_claims};
pub use client::{
    ScopedToken, expected_claims, mint, scoped_client, scoped_config, scoped_kubeconfig,
};
pub use handoff::ChildKubeconfig;
pub use process::harden_process;

pub use error::CredentialsError;
pub use kubeconfig::{ClusterEndpoint, TOKEN_PLACEHOLDER, kubeconfig_template};
pub use token::{anchor_secret, token_expiration_seconds, token_request};

/// The README's example, compiled and run by `cargo test --doc` so it never goes stale.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;
