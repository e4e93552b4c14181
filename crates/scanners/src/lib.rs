//! Keyhole's scanner containers as Kubernetes specs: the ephemeral debug container of the
//! distroless workflow, the scanner sidecar and the scan pod of the sidecar workflow, and the
//! injection of the sidecar into a user's workload manifest.
//!
//! Nothing here talks to a cluster. Every container Keyhole adds runs as the target's uid with
//! all capabilities dropped, no privilege escalation, a read-only root filesystem and the
//! runtime's default seccomp and AppArmor profiles ([`hardened_security_context`]): reading
//! `/proc/<pid>/root` of the target needs ptrace read access, which the kernel grants to the
//! same uid (and gid) without extra capabilities.

#![forbid(unsafe_code)]

mod debug;
mod error;
mod image;
mod inject;
mod security;
mod sidecar;
mod yaml;

pub use debug::{SCAN_END_MARGIN_SECS, debug_container, ephemeral_patch, scan_time_limit_secs};
pub use error::ScannerError;
pub use image::{DEFAULT_SCANNER_IMAGE, ImageRef};
pub use inject::{InjectOptions, Injected, inject_sidecar};
pub use security::hardened_security_context;
pub use sidecar::{SIDECAR_NAME, TARGET_CONTAINER_NAME, sidecar_container, sidecar_pod};
pub use yaml::to_yaml;

/// The README's example, compiled and run by `cargo test --doc` so it never goes stale.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;
