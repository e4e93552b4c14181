//! Test support only: a stateful in-memory fake Kubernetes API server for Keyhole's cluster
//! tests. No product crate may depend on it.
//!
//! [`FakeCluster`] serves the REST semantics keyhole relies on (core/v1 pods with `status`,
//! `ephemeralcontainers`, `exec` and `log`; serviceaccounts and their `token` subresource;
//! secrets; configmaps; namespaces; RBAC roles, bindings and cluster roles; networkpolicies;
//! SelfSubjectAccessReview, SelfSubjectRulesReview and SelfSubjectReview), authenticates bearer
//! tokens and authorizes every ServiceAccount request through an RBAC implementation of its own,
//! records every call, and injects faults. Reach it in-process with
//! [`FakeCluster::client_admin`] / [`FakeCluster::client_for_token`] (a tower `Service` under
//! `kube::Client::new`), or over real HTTPS with [`FakeCluster::serve_https`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use k8s_openapi::api::core::v1::Pod;
//! use keyhole_testkit::{FakeCluster, Fault};
//!
//! let cluster = FakeCluster::new();
//! cluster.add_running_pod("prod", "web-0", &["app"])?;
//! cluster.faults().fail_call(0, Fault::Status(500));
//! let pods: kube::Api<Pod> = kube::Api::namespaced(cluster.client_admin(), "prod");
//! assert!(pods.get("web-0").await.is_err()); // call 0 fails
//! assert!(pods.get("web-0").await.is_ok());
//! cluster.clock().advance(std::time::Duration::from_secs(3600)); // tokens expire
//! # Ok(()) }
//! ```
//!
//! Not served: watch streams (405 after authorization), server-side apply field ownership (apply
//! is a strategic merge), `pods/attach`, `pods/portforward`, SPDY exec, list pagination, RBAC
//! escalation checks on Role/RoleBinding writes, and kinds other than those listed.
//!
//! [`node::Node`] is a test double of a Kubernetes node: it runs the pods bound to it as real
//! `runc` containers (root only), serving their exec, logs, ephemeral containers and status.

mod api;
mod authz;
mod clock;
mod cluster;
mod error;
mod exec;
mod faults;
mod https;
pub mod node;
mod objects;
mod patch;
mod qos;
mod resources;
mod selector;
mod service;
mod status;
mod store;
mod tokens;

pub use authz::Identity;
pub use clock::FakeClock;
pub use cluster::{FakeCluster, GcMode, ObjectRef};
pub use error::TestkitError;
pub use exec::{ExecRequest, ExecResponse};
pub use faults::{Fault, FaultRule, Faults, RecordedCall};
pub use https::{HttpsOptions, HttpsServer, ServerCert};
pub use service::{BoxError, FakeService, ResponseBody};
pub use tokens::API_AUDIENCE;

/// The README's example, compiled and run by `cargo test --doc` so it never goes stale.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;
