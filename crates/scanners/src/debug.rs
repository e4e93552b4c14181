//! The ephemeral debug container of the distroless workflow.

use k8s_openapi::api::core::v1::EphemeralContainer;
use keyhole_core::{ContainerName, Run};

use crate::{ImageRef, hardened_security_context};

/// Where the agent binary lives in the scanner image.
pub(crate) const AGENT_PATH: &str = "/keyhole-agent";

/// How long before the run's access expires the scan must be over, so results are collected
/// and the run's objects deleted while the credentials still work.
pub const SCAN_END_MARGIN_SECS: u64 = 60;

/// The time limit of a scan inside `run`: the run's TTL less [`SCAN_END_MARGIN_SECS`].
///
/// TTLs are at least 600 s, so this is at least 540 s.
pub fn scan_time_limit_secs(run: &Run) -> u64 {
    let ttl = u64::try_from(run.expiry().ttl().as_secs()).unwrap_or(0);
    ttl.saturating_sub(SCAN_END_MARGIN_SECS)
}

/// The ephemeral container that scans `target_container` from inside its PID namespace.
///
/// It runs `image` as the target's `uid` (and `gid`) with the hardened security context, and
/// bounds its own work with `--time-limit`: ephemeral containers cannot have `resources`, so
/// the limit is enforced by the agent, and it ends before the run's access expires.
///
/// The API rejects resources, ports, probes and lifecycle hooks on ephemeral containers, and an
/// ephemeral container gets no volume mounts it does not declare: declaring none means it gets
/// no service-account token. Once added it can never be removed (it stays in the pod spec,
/// terminated), so the name `keyhole-<run id>` makes that one trace attributable.
pub fn debug_container(
    run: &Run,
    target_container: &ContainerName,
    uid: u32,
    gid: Option<u32>,
    image: &ImageRef,
) -> EphemeralContainer {
    EphemeralContainer {
        name: run.object_name().to_string(),
        image: Some(image.to_string()),
        image_pull_policy: Some("Always".to_string()),
        command: Some(vec![
            AGENT_PATH.to_string(),
            "scan".to_string(),
            "--target".to_string(),
            "auto".to_string(),
            "--time-limit".to_string(),
            format!("{}s", scan_time_limit_secs(run)),
        ]),
        target_container_name: Some(target_container.to_string()),
        security_context: Some(hardened_security_context(uid, gid)),
        stdin: Some(false),
        tty: Some(false),
        // Results and failures go over the container's output; the log tail is the termination
        // message when the agent could not write one.
        termination_message_policy: Some("FallbackToLogsOnError".to_string()),
        ..EphemeralContainer::default()
    }
}

/// The strategic-merge-patch body that adds `container` to a pod:
/// `{"spec":{"ephemeralContainers":[container]}}`, for
/// `PATCH pods/<name>/ephemeralcontainers` with content type
/// `application/strategic-merge-patch+json`. Ephemeral containers merge by `name`, so the
/// pod's existing ones are kept.
pub fn ephemeral_patch(container: &EphemeralContainer) -> serde_json::Value {
    let c = serde_json::to_value(container)
        .expect("k8s-openapi types serialize to JSON: they have only string map keys");
    serde_json::json!({ "spec": { "ephemeralContainers": [c] } })
}
