//! The audit trail of Keyhole runs: an append-only JSON Lines log whose records are hash-chained
//! (SHA-256, or HMAC-SHA256 under an [`AuditKey`]), checked by [`verify`] / [`verify_with`]
//! (`keyhole audit verify [--audit-key-file KEY] LOG`).
//!
//! # What the chain proves, and what it does not
//! Each record carries the hash of its own content and the hash of the record before it.
//! - **Plain chain** (no key): detects an edited, removed, inserted or reordered record *made
//!   by someone who does not rewrite every later record* — an accidental edit, a careless
//!   cover-up, a damaged file. It proves nothing against someone who can write the file and
//!   recomputes the chain: the algorithm is public, so a rewritten whole file verifies. Only a
//!   head hash kept elsewhere (see [`VerifyReport::head`]) exposes such a rewrite.
//! - **Keyed chain** (`--audit-key-file`): the hashes are HMACs under a secret key, so someone
//!   without the key cannot produce a log that verifies — not even by rewriting all of it.
//!   Someone who holds the key can.
//! - **Neither** detects records cut off the end of the log (the shorter log is a valid chain;
//!   compare its head with one kept elsewhere), the deletion of the whole file, or a false
//!   record written by keyhole itself: the chain shows the log was not changed after it was
//!   written, not that what was written is true.
//!
//! Appends take an exclusive lock on the file (`flock`), so concurrent keyhole runs sharing one
//! log interleave whole batches of records and keep one valid chain.
//!
//! What is recorded is chosen so the log can be shared with auditors: who ran the scan, what it
//! targeted, which objects were created and deleted, when the token expired, what the
//! verifications found — and never a secret (there is no event that carries a token).
//!
//! The post-scan audit ([`PostScan`]), run after a cluster scan's teardown, lives here too: the
//! run's records are present and verify, every object the run created answers 404 to a fresh
//! GET, no file, environment variable, memfd or log line holds the scoped token (searched by
//! [`TokenFingerprint`], which keeps hashes, not the token), and the target pods show no side
//! effect but the expected ephemeral container. It makes no Kubernetes call itself: the caller
//! passes pod snapshots and a function doing the GETs.

mod artifacts;
mod error;
mod event;
mod key;
mod log;
pub mod postscan;
mod target;

pub use artifacts::{
    Artifact, ArtifactKind, ArtifactScan, ArtifactScope, LogText, ScanLimits, TokenFingerprint,
    scan_artifacts,
};
pub use error::AuditError;
pub use event::{Event, ObjectRef};
pub use key::AuditKey;
pub use log::{
    AuditLog, GENESIS, Record, VerifyReport, verify, verify_str, verify_str_with, verify_with,
};
pub use postscan::{
    CheckId, EXIT_LEFTOVERS, EXIT_POSTSCAN_FAILED, Finding, Fresh, PostScan, PostScanReport,
    RunObject, VerifiedLog,
};
pub use target::{ContainerStatus, PodSnapshot, TargetPair};

/// The README's example, compiled and run by `cargo test --doc` so it never goes stale.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;
