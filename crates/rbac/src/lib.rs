//! Least-privilege RBAC for one Keyhole scan, and an offline evaluator to prove it.
//!
//! A scan runs with a ServiceAccount of its own, bound by a RoleBinding to a Role that grants
//! exactly what the scan mode needs on exactly the target pods (every rule pins
//! `resourceNames`; no wildcard anywhere). Role and RoleBinding are owned by the ServiceAccount,
//! so deleting it cascades; every object carries the run's labels and its `expires-at`
//! annotation, because Kubernetes has no TTL for RBAC objects.
//!
//! - [`rules`] gives the Role's rules for a mode and pods;
//! - [`service_account`], [`role`], [`role_binding`] and [`owner_reference`] build the objects of
//!   a [`Run`](keyhole_core::Run);
//! - [`eval`] evaluates rules offline with the Kubernetes RBAC authorizer's matching semantics,
//!   and lists the requests a scan makes ([`eval::planned_requests`]) and those it must never be
//!   allowed ([`eval::dangerous_requests`]);
//! - [`apply`] creates a run's objects with the user's client and [`verify_access`] proves,
//!   with the scoped client, that the access is exactly the plan; [`plan`] computes the same
//!   creates offline (one sequence, [`apply_with`], serves both).

#![forbid(unsafe_code)]

mod error;
pub mod eval;
mod live;
mod objects;
mod rules;

pub use error::RbacError;
pub use live::{
    AccessReport, Applied, ApplyEvent, Checked, Creatable, Creator, PlannedCreate, apply,
    apply_with, placeholder_uid, plan, verify_access,
};
pub use objects::{owner_reference, role, role_binding, service_account};
pub use rules::rules;

/// The README's example, compiled and run by `cargo test --doc` so it never goes stale.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;
