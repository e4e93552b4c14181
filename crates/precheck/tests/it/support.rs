//! Fixture pods and small helpers.

use k8s_openapi::api::core::v1::Pod;
use keyhole_precheck::{CheckId, Outcome, Policy, Verdict, evaluate};

/// A fixture pod from `tests/fixtures/NAME.yaml`.
pub(crate) fn pod(name: &str) -> Pod {
    let path = format!("{}/tests/fixtures/{name}.yaml", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The hardened pod with `edit` applied.
pub(crate) fn hardened_with(edit: impl FnOnce(&mut Pod)) -> Pod {
    let mut p = pod("hardened");
    edit(&mut p);
    p
}

/// The outcome of `check` in `v`.
pub(crate) fn outcome(v: &Verdict, check: CheckId) -> Outcome {
    v.get(check)
        .unwrap_or_else(|| panic!("{check} missing"))
        .outcome
}

/// Evaluates container `app` under the built-in policy.
pub(crate) fn eval_app(p: &Pod) -> Verdict {
    evaluate(p, "app", &Policy::builtin())
}

/// The evidence of `check` as `path = value` lines.
pub(crate) fn evidence(v: &Verdict, check: CheckId) -> Vec<String> {
    v.get(check)
        .expect("check present")
        .evidence
        .iter()
        .map(|e| format!("{} = {}", e.path, e.value))
        .collect()
}

/// The hardened container's security context, created if absent.
pub(crate) fn sc(p: &mut Pod) -> &mut k8s_openapi::api::core::v1::SecurityContext {
    p.spec.as_mut().unwrap().containers[0]
        .security_context
        .get_or_insert_default()
}

/// The hardened pod's pod-level security context.
pub(crate) fn psc(p: &mut Pod) -> &mut k8s_openapi::api::core::v1::PodSecurityContext {
    p.spec
        .as_mut()
        .unwrap()
        .security_context
        .get_or_insert_default()
}

/// The status of container `app` (index 1 in the hardened fixture's status list).
pub(crate) fn app_status(p: &mut Pod) -> &mut k8s_openapi::api::core::v1::ContainerStatus {
    p.status
        .as_mut()
        .unwrap()
        .container_statuses
        .as_mut()
        .unwrap()
        .iter_mut()
        .find(|s| s.name == "app")
        .unwrap()
}
