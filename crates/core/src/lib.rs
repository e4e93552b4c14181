//! IO-free types shared by every Keyhole crate.
//!
//! Nothing here talks to a cluster or a filesystem: these are the validated values that the IO
//! crates pass around. A bad name or TTL is rejected here, before any object is built, so the
//! error names the problem instead of surfacing later as an API server 422.

#![forbid(unsafe_code)]

mod duration;
mod error;
#[cfg(feature = "kube")]
mod kube_error;
mod meta;
mod mode;
mod names;
mod object;
mod plan;
mod run;
mod target;
mod ttl;

pub use duration::parse_duration;
pub use error::CoreError;
#[cfg(feature = "kube")]
pub use kube_error::kube_error;
pub use meta::{
    EXPIRES_AT_ANNOTATION, Expiry, MANAGED_BY_LABEL, MANAGED_BY_VALUE, RUN_ID_LABEL,
    TARGET_ANNOTATION, run_labels,
};
pub use mode::ScanMode;
pub use names::{ContainerName, LabelSelector, Name, Namespace, PodName};
pub use object::{Created, ObjectKind};
pub use plan::Run;
pub use run::{RunId, random_bytes};
pub use target::{PodSelection, ScanTarget};
pub use ttl::Ttl;

/// The environment marker that `keyhole sidecar inject` puts on the scanned app container,
/// `KEYHOLE_SCAN_TARGET=<container name>`, and by which the agent finds that container's
/// processes (`/proc/PID/environ`) when a pod has several app containers.
pub const SCAN_TARGET_ENV: &str = "KEYHOLE_SCAN_TARGET";

/// The README's example, compiled and run by `cargo test --doc` so it never goes stale.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;
