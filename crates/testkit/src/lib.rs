//! Test support only: an in-memory fake Kubernetes API server (tower `Service` for
//! `kube::Client::new`, and over HTTPS on 127.0.0.1), fault injection, recorded calls, and helpers
//! that run real local containers with `runc`. No product crate may depend on it.
//!
//! Not implemented yet (issue "secure scan session"): this crate exports nothing so far.
