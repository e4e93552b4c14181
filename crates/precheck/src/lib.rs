//! Pre-scan verification of a target pod: running, privileged or not, image digest and source,
//! network exposure; a verdict with reasons that can abort the scan.
//!
//! Not implemented yet: this crate is a placeholder in the workspace layout so that the crate
//! boundaries of `docs/architecture.md` exist from the start. It exports nothing.
