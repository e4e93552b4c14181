//! The append-only, hash-chained audit log and the post-scan security audit.
//!
//! Not implemented yet (issue "secure scan session"): this crate exports nothing so far.
