//! The ephemeral debug container and its patch.

use keyhole_core::{ContainerName, ScanMode};
use keyhole_scanners::{debug_container, ephemeral_patch, hardened_security_context};
use serde_json::json;

use crate::{check, hardened_json, run, scanner};

fn container() -> k8s_openapi::api::core::v1::EphemeralContainer {
    let target = ContainerName::new("web").unwrap();
    debug_container(
        &run(ScanMode::Distroless),
        &target,
        10001,
        Some(10001),
        &scanner(),
    )
}

#[test]
fn patch_snapshot() {
    let patch = ephemeral_patch(&container());
    check(
        "ephemeral_patch",
        &serde_json::to_string_pretty(&patch).unwrap(),
    );
}

#[test]
fn runs_as_the_target_with_nothing_else() {
    let c = serde_json::to_value(container()).unwrap();
    assert_eq!(c["securityContext"], hardened_json());
    assert_eq!(c["targetContainerName"], "web");
    assert_eq!(c["name"], "keyhole-abcdefghij");
    assert_eq!(c["imagePullPolicy"], "Always");
    assert_eq!(c["stdin"], false);
    assert_eq!(c["tty"], false);
    assert_eq!(c["terminationMessagePolicy"], "FallbackToLogsOnError");
    // 15-minute TTL less the 60 s margin: the scan ends while access still works.
    assert_eq!(
        c["command"],
        json!([
            "/keyhole-agent",
            "scan",
            "--target",
            "auto",
            "--time-limit",
            "840s"
        ])
    );
    // Rejected by the API on ephemeral containers, or (volume mounts) a way to a token.
    for field in [
        "resources",
        "ports",
        "livenessProbe",
        "readinessProbe",
        "startupProbe",
        "lifecycle",
        "volumeMounts",
        "volumeDevices",
        "env",
        "envFrom",
    ] {
        assert!(c.get(field).is_none(), "{field} set: {c}");
    }
}

#[test]
fn patch_adds_only_the_container() {
    let c = container();
    let patch = ephemeral_patch(&c);
    assert_eq!(
        patch,
        json!({"spec": {"ephemeralContainers": [serde_json::to_value(&c).unwrap()]}})
    );
    // The debug workflow never asks the pod to share its process namespace.
    assert!(!patch.to_string().contains("shareProcessNamespace"));
}

#[test]
fn security_context_follows_the_uid() {
    let root = serde_json::to_value(hardened_security_context(0, None)).unwrap();
    assert_eq!(root["runAsUser"], 0);
    assert_eq!(root["runAsNonRoot"], false);
    assert!(root.get("runAsGroup").is_none());
    assert_eq!(root["capabilities"], json!({"drop": ["ALL"]}));
    let user = serde_json::to_value(hardened_security_context(10001, Some(10001))).unwrap();
    assert_eq!(user, hardened_json());
}
