//! Keyhole's scan workflows against a cluster: how the facts of the engine's fact plan are
//! gathered from a container **with the run's scoped client only**, and evaluated on the
//! user's side with the user's profile.
//!
//! Facts cross the cluster boundary, verdicts do not: a workflow returns [`keyhole_engine::Facts`]
//! and [`evaluate`] turns them into HDF with the same evaluator a local `keyhole scan --pid`
//! uses, so every workflow gives the same HDF as the local scan of the same container.
//!
//! Why a crate of its own: `keyhole-scanners` builds Kubernetes specs and edits manifests with
//! no IO at all (a downstream project can reuse it offline); the workflows here talk to the API
//! server (exec sessions, pod reads) and need an async runtime. The access session around a
//! workflow (scoped identity, verified least privilege, teardown, audit) is the caller's
//! (`keyhole_cli::session`): this crate only ever sees the scoped [`kube::Client`] it is given,
//! so it cannot use the user's own credentials by mistake.
//!
//! - **standard** ([`gather_standard`]): exactly one exec session running the engine's
//!   [`ShellScript`](keyhole_engine::ShellScript) fed on stdin.
//! - **distroless** ([`gather_distroless`]): one ephemeral container running `keyhole-agent`
//!   with the fact plan, as the target's UID with nothing more (learned by a first probe
//!   container when neither the pod spec nor the caller says it; see [`identity`]); its one checksummed frame of
//!   facts is read from `pods/log` after `pods` get reports it terminated.
//! - **sidecar** ([`read_sidecar`]): the newest complete frame of an injected scanner
//!   sidecar's log, with `pods/log` get only, refused when older than the caller allows.

mod distroless;
mod error;
mod evaluate;
pub mod identity;
mod sidecar;
mod standard;
mod target;

pub use distroless::{
    DistrolessOptions, PROBE_UID, distroless_container, gather_distroless, probe_container,
    probe_container_name,
};
pub use error::WorkflowError;
pub use evaluate::{Evaluated, evaluate};
pub use sidecar::read_sidecar;
pub use standard::{MAX_SCRIPT_OUTPUT, SHELL, gather_standard};
pub use target::{ContainerTarget, resolve_container};

/// The README's example, compiled by `cargo test --doc` so it never goes stale.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;
