//! Pre-scan verification of a target pod, run with the user's credentials before Keyhole
//! creates anything: target integrity (running, ready, not restarting, the running image is
//! the pinned one), privileged status (privileged, privilege escalation, dangerous
//! capabilities, host namespaces, hostPath, root, `/proc`, seccomp and AppArmor), image source
//! (registry/repository allowlist, `latest` or no digest) and network connections (listening
//! sockets and peers from `/proc/<pid>/net`, against allowed ports and CIDRs).
//!
//! A [`Policy`] (YAML, `docs/precheck.md`, built-in default [`DEFAULT_POLICY_YAML`]) says per
//! check `abort`, `warn` or `ignore`. The [`Verdict`] holds every check with its evidence, a
//! [`Decision`], and converts to an HDF profile named `keyhole-precheck` ([`Verdict::to_hdf`]).
//! An abort exits [`EXIT_PRECHECK_ABORT`].
//!
//! The flow: [`fetch`] (the one IO, a GET) → [`evaluate`] (pure) → later, with the scan's
//! socket tables, [`check_network`] → [`Verdict::merge`].

mod check;
mod error;
mod fetch;
mod image;
mod net;
mod pod;
mod policy;
mod verdict;

pub use check::{CheckGroup, CheckId, Severity};
pub use error::PrecheckError;
pub use fetch::fetch;
pub use image::{ImageName, image_id_digest, is_sha256_digest};
pub use net::{MAX_SOCKETS, NetworkFacts, ProcNetTable, Socket, SocketRole, check_network};
pub use pod::{evaluate, evaluate_missing};
pub use policy::{Action, DEFAULT_POLICY_YAML, Policy, PortRule, Transport};
pub use verdict::{
    CheckResult, Decision, EXIT_PRECHECK_ABORT, Evidence, Outcome, PROFILE_NAME, TargetInfo,
    Verdict,
};

/// The README's example, compiled and run by `cargo test --doc` so it never goes stale.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;
