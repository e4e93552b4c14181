//! The flows behind the `keyhole` binary that talk to a cluster, as a library a Rust program
//! (and the tests, against the fake API server of `keyhole-testkit`) can call with any client:
//! the verified access [`session`] and the cluster scan built on it ([`cluster_scan`]) and its pre-scan gate ([`prescan`]), whose
//! per-mode fact gathering lives in `keyhole-workflows`. Libraries here never print: errors are
//! typed ([`SessionError`], [`cluster_scan::ScanError`]) and diagnostics go through `tracing`;
//! the binary decides what reaches the terminal. Many pods at once (`-l SELECTOR -A`) are
//! [`fleet`]: one session per namespace, bounded concurrency, a combined summary.

pub mod cluster_scan;
mod error;
pub mod fleet;
pub mod launch;
pub mod postscan;
pub mod prescan;
pub mod session;

pub use error::SessionError;
