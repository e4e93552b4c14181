//! The scanner sidecar container, and the scan pod Keyhole deploys in sidecar mode.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, EnvVar, Pod, PodSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use keyhole_core::{ContainerName, Run};

use crate::debug::AGENT_PATH;
use crate::security::pod_security_context;
use crate::{ImageRef, ScannerError, hardened_security_context, scan_time_limit_secs};

/// The name of the scanner sidecar container; a pod that has a container of this name is
/// already injected.
pub const SIDECAR_NAME: &str = "keyhole-scanner";

/// The name of the scanned container in a [`sidecar_pod`].
pub const TARGET_CONTAINER_NAME: &str = "target";

/// Checks that the scanner containers fail on purpose, with the reason (checkov reads
/// `checkov.io/skipN: <check>=<reason>` annotations; the reason must not contain `=`).
///
/// Probes: the sidecar runs one bounded scan and then idles or ends; a liveness probe could
/// only restart the scan, and a readiness probe would tie the user's pod readiness (its Service
/// endpoints) to the scanner. So it has none, and says so.
pub(crate) const SIDECAR_PROBE_SKIPS: [(&str, &str); 2] = [
    (
        "CKV_K8S_8",
        "the keyhole-scanner sidecar runs one bounded scan, a liveness probe could only restart it",
    ),
    (
        "CKV_K8S_9",
        "the keyhole-scanner sidecar must not gate the readiness of the pod it scans",
    ),
];

/// The exceptions of a scan pod Keyhole deploys itself: it runs one bounded scan of an image and
/// is deleted with the run, so neither it nor its target serves anything to probe; and its
/// NetworkPolicy is not an exception: checkov links the run's policy to the pod (CKV2_K8S_6)
/// when both are scanned together, as the gates do.
const SCAN_POD_SKIPS: [(&str, &str); 2] = [
    (
        "CKV_K8S_8",
        "a keyhole scan pod runs one bounded scan and is deleted with its run, nothing to restart",
    ),
    (
        "CKV_K8S_9",
        "a keyhole scan pod serves no traffic, readiness has no meaning for it",
    ),
];

/// Resources of the sidecar: small, since it reads files and evaluates controls, and bounded so
/// a hostile target (huge files, deep trees) cannot make it starve the user's containers.
const SIDECAR_REQUESTS: (&str, &str) = ("50m", "64Mi");
const SIDECAR_LIMITS: (&str, &str) = ("500m", "256Mi");
/// Resources of the launched target in a scan pod: enough for an ordinary service to start.
const TARGET_REQUESTS: (&str, &str) = ("100m", "128Mi");
const TARGET_LIMITS: (&str, &str) = ("1", "512Mi");

fn resources(requests: (&str, &str), limits: (&str, &str)) -> ResourceRequirements {
    let map = |(cpu, memory): (&str, &str)| {
        BTreeMap::from([
            ("cpu".to_string(), Quantity(cpu.to_string())),
            ("memory".to_string(), Quantity(memory.to_string())),
        ])
    };
    ResourceRequirements {
        requests: Some(map(requests)),
        limits: Some(map(limits)),
        ..ResourceRequirements::default()
    }
}

/// The scanner sidecar for a pod whose `target_container` runs as `uid` (and `gid`).
///
/// It needs the pod to set `shareProcessNamespace: true` to see the target's processes. It runs
/// as the target's uid with the hardened security context, no ports and no volume mounts, and
/// ends its scan after `time_limit_secs`.
pub fn sidecar_container(
    target_container: &ContainerName,
    uid: u32,
    gid: Option<u32>,
    image: &ImageRef,
    time_limit_secs: u64,
) -> Container {
    Container {
        name: SIDECAR_NAME.to_string(),
        image: Some(image.to_string()),
        image_pull_policy: Some("Always".to_string()),
        command: Some(vec![
            AGENT_PATH.to_string(),
            "sidecar".to_string(),
            "--target-container".to_string(),
            target_container.to_string(),
            "--time-limit".to_string(),
            format!("{time_limit_secs}s"),
        ]),
        resources: Some(resources(SIDECAR_REQUESTS, SIDECAR_LIMITS)),
        security_context: Some(hardened_security_context(uid, gid)),
        termination_message_policy: Some("FallbackToLogsOnError".to_string()),
        ..Container::default()
    }
}

/// The pod Keyhole deploys to scan `target_image` in sidecar mode: the image as container
/// [`TARGET_CONTAINER_NAME`] running as `uid` (and `gid`), and the sidecar with `scanner`.
///
/// Named after the run's only pod, in its namespace, with its labels (a NetworkPolicy selects
/// the pod by them) and annotations (expiry, for reaping). No service-account token is mounted,
/// the process namespace is shared (that is how the sidecar sees the target), the pod never
/// restarts and is stopped by the kubelet when the run's access expires
/// (`activeDeadlineSeconds`).
pub fn sidecar_pod(
    run: &Run,
    target_image: &ImageRef,
    uid: u32,
    gid: Option<u32>,
    scanner: &ImageRef,
) -> Result<Pod, ScannerError> {
    let [pod_name] = run.pods() else {
        return Err(ScannerError::PodCount {
            count: run.pods().len(),
        });
    };
    let target = ContainerName::new(TARGET_CONTAINER_NAME).expect("\"target\" is a DNS-1123 label");
    let mut annotations = run.annotations();
    for (i, (check, reason)) in SCAN_POD_SKIPS.iter().enumerate() {
        annotations.insert(
            format!("checkov.io/skip{}", i + 1),
            format!("{check}={reason}"),
        );
    }
    let target_container = Container {
        name: TARGET_CONTAINER_NAME.to_string(),
        image: Some(target_image.to_string()),
        image_pull_policy: Some("Always".to_string()),
        resources: Some(resources(TARGET_REQUESTS, TARGET_LIMITS)),
        security_context: Some(hardened_security_context(uid, gid)),
        // The marker the sidecar finds the target's processes by, as `inject` adds it.
        env: Some(vec![EnvVar {
            name: keyhole_core::SCAN_TARGET_ENV.to_string(),
            value: Some(TARGET_CONTAINER_NAME.to_string()),
            value_from: None,
        }]),
        ..Container::default()
    };
    let sidecar = sidecar_container(&target, uid, gid, scanner, scan_time_limit_secs(run));
    Ok(Pod {
        metadata: ObjectMeta {
            name: Some(pod_name.to_string()),
            namespace: Some(run.namespace().to_string()),
            labels: Some(run.labels()),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            automount_service_account_token: Some(false),
            share_process_namespace: Some(true),
            restart_policy: Some("Never".to_string()),
            active_deadline_seconds: Some(run.expiry().ttl().as_secs()),
            security_context: Some(pod_security_context(uid, gid)),
            containers: vec![target_container, sidecar],
            ..PodSpec::default()
        }),
        status: None,
    })
}
