//! The audit trail of Keyhole runs: an append-only JSON Lines log whose records are hash-chained
//! (SHA-256), so that editing, removing or reordering any record is detected by
//! [`verify`] (`keyhole audit verify LOG`).
//!
//! What is recorded is chosen so the log can be shared with auditors: who ran the scan, what it
//! targeted, which objects were created and deleted, when the token expired, what the
//! verifications found — and never a secret (there is no event that carries a token).
//!
//! The post-scan audit (cleanup complete, no credential artifacts, no side effects) will live
//! here too; it is not implemented yet.

mod error;
mod event;
mod log;

pub use error::AuditError;
pub use event::{Event, ObjectRef};
pub use log::{AuditLog, GENESIS, Record, VerifyReport, verify, verify_str};

/// The README's example, compiled and run by `cargo test --doc` so it never goes stale.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;
