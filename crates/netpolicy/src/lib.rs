//! Network isolation for scanner pods: a default-deny NetworkPolicy whose only egress is the API
//! server (and DNS when asked), and Pod Security Admission labels for a dedicated scanner
//! namespace.
//!
//! NetworkPolicies select pods, not containers: they cannot isolate an ephemeral or sidecar
//! container from the rest of its pod. Those containers therefore make no network connections
//! at all; the policies here are for pods that Keyhole itself runs.

mod endpoint;
mod error;
mod policy;

pub use endpoint::ApiEndpoint;
pub use error::NetpolError;
pub use policy::{
    PodSecurityLevel, pod_security_labels, scanner_namespace, scanner_network_policy, selects,
};

/// The README's example, compiled and run by `cargo test --doc` so it never goes stale.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;
