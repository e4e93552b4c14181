//! Cleanup that survives every way a run can end.
//!
//! Every object a run creates is [registered](Registry::register) in creation order — and
//! announced [before its create is sent](Registry::attempting), so an object whose creation
//! answer was lost is still found (by name, and deleted only if it carries the run's label). One
//! teardown path ([`teardown`]) deletes them in reverse order — each with a uid precondition, so
//! a same-named object that someone else created meanwhile is never touched — and then
//! *verifies* that each is gone (GET → 404) with bounded retries. Every trigger ends in that
//! same path: normal end, error, panic, SIGINT/SIGTERM/SIGHUP, and a timer at the run's expiry
//! ([`run_guarded`], which runs the work as a task so that even a panic ends in teardown).
//! There is no drop guard: teardown is async and cannot run from `Drop`; a caller that drops
//! the `run_guarded` future itself is left to the reaper. What even that cannot cover
//! (SIGKILL, power loss) is found later by [`reap`] through the `expires-at` annotation and the
//! run labels.

mod error;
mod guard;
mod reap;
mod registry;
mod teardown;

pub use error::CleanupError;
pub use guard::{Ending, Guarded, run_guarded};
pub use keyhole_core::{Created, ObjectKind};
pub use reap::{ReapReport, ReapScope, Unlisted, reap};
pub use registry::Registry;
pub use teardown::{CleanupAction, CleanupReport, RetryPolicy, teardown};

/// The README's example, compiled and run by `cargo test --doc` so it never goes stale.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;
