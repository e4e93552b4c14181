//! Integration tests of `keyhole-rbac`, in one binary: evaluator tables, builders with
//! snapshots, properties over arbitrary namespaces, pods, modes and TTLs, and the live apply
//! and verification against the testkit fake.

mod eval_table;
mod live;
mod objects;
mod props;

use keyhole_core::{Expiry, Namespace, PodName, Run, RunId, ScanMode, ScanTarget, Ttl};

/// A valid pod name.
fn pod(name: &str) -> PodName {
    PodName::new(name).unwrap()
}

/// A valid namespace.
fn ns(name: &str) -> Namespace {
    Namespace::new(name).unwrap()
}

/// A run with a fixed id, `ttl_secs` after `issued_at` (Unix seconds).
fn run_at(
    mode: ScanMode,
    namespace: &Namespace,
    pods: &[PodName],
    issued_at: i64,
    ttl_secs: u64,
) -> Run {
    let target = ScanTarget::pods(namespace.clone(), pods.iter().cloned(), None).unwrap();
    let ttl = Ttl::new(std::time::Duration::from_secs(ttl_secs)).unwrap();
    let issued = jiff::Timestamp::from_second(issued_at).unwrap();
    Run::new(
        RunId::parse("abcdefghij").unwrap(),
        target,
        mode,
        Expiry::new(issued, ttl).unwrap(),
    )
    .unwrap()
}

/// The snapshot run: namespace `prod`, pods `web-0` and `web-1`, issued 2026-11-26T14:00:00Z
/// for 10 minutes.
fn sample_run(mode: ScanMode) -> Run {
    run_at(
        mode,
        &ns("prod"),
        &[pod("web-1"), pod("web-0")],
        1_795_701_600,
        600,
    )
}

/// Checks a generated object: no `*` anywhere in its JSON, then a YAML snapshot under `name`.
fn check<T: k8s_openapi::serde::Serialize>(name: &str, value: &T) {
    let json = serde_json::to_string(value).unwrap();
    assert!(!json.contains('*'), "{name} holds a '*': {json}");
    insta::assert_yaml_snapshot!(name, value);
}
