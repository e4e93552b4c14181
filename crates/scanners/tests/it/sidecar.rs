//! The sidecar container and the scan pod of the sidecar workflow.

use keyhole_core::{ContainerName, ScanMode, ScanTarget};
use keyhole_scanners::{ImageRef, ScannerError, sidecar_container, sidecar_pod, to_yaml};
use serde_json::json;

use crate::{check, hardened_json, run, scanner};

const TARGET_IMAGE: &str = "registry.example.com/shop/web:1.4.2@sha256:3f1c2d9a8b7e6f5a4c3b2a1908f7e6d5c4b3a29180f7e6d5c4b3a2918f7e6d5c";

#[test]
fn sidecar_container_is_hardened_and_bounded() {
    let target = ContainerName::new("web").unwrap();
    let c = serde_json::to_value(sidecar_container(
        &target,
        10001,
        Some(10001),
        &scanner(),
        300,
    ))
    .unwrap();
    assert_eq!(c["name"], "keyhole-scanner");
    assert_eq!(c["securityContext"], hardened_json());
    assert_eq!(c["imagePullPolicy"], "Always");
    assert_eq!(
        c["command"],
        json!([
            "/keyhole-agent",
            "sidecar",
            "--target-container",
            "web",
            "--time-limit",
            "300s"
        ])
    );
    assert_eq!(
        c["resources"],
        json!({"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}})
    );
    for field in ["ports", "volumeMounts", "env", "envFrom"] {
        assert!(c.get(field).is_none(), "{field} set: {c}");
    }
}

#[test]
fn scan_pod_snapshot_and_fields() {
    let target = ImageRef::parse(TARGET_IMAGE).unwrap();
    let pod = sidecar_pod(
        &run(ScanMode::Sidecar),
        &target,
        10001,
        Some(10001),
        &scanner(),
    )
    .unwrap();
    let yaml = to_yaml(&pod).unwrap();
    check("sidecar_pod", &yaml);

    let p = serde_json::to_value(&pod).unwrap();
    // The YAML reads back as the pod; the timestamp stays a string for YAML 1.1 readers.
    let back: serde_json::Value = serde_norway::from_str(&yaml).unwrap();
    assert_eq!(back, p);
    assert!(
        yaml.contains("keyhole.dev/expires-at: \"2026-11-26T14:15:00Z\"\n"),
        "{yaml}"
    );
    assert_eq!(p["metadata"]["name"], "web-0");
    assert_eq!(p["metadata"]["namespace"], "shop");
    assert_eq!(
        p["metadata"]["labels"],
        json!({"app.kubernetes.io/managed-by": "keyhole", "keyhole.dev/run-id": "abcdefghij"})
    );
    assert_eq!(
        p["metadata"]["annotations"]["keyhole.dev/expires-at"],
        "2026-11-26T14:15:00Z"
    );
    let spec = &p["spec"];
    assert_eq!(spec["shareProcessNamespace"], true);
    assert_eq!(spec["automountServiceAccountToken"], false);
    assert_eq!(spec["restartPolicy"], "Never");
    assert_eq!(spec["activeDeadlineSeconds"], 900);
    assert_eq!(
        spec["securityContext"],
        json!({"runAsNonRoot": true, "runAsUser": 10001, "runAsGroup": 10001, "seccompProfile": {"type": "RuntimeDefault"}})
    );
    let containers = spec["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 2);
    assert_eq!(containers[0]["name"], "target");
    assert_eq!(containers[0]["image"], TARGET_IMAGE);
    assert_eq!(containers[0]["securityContext"], hardened_json());
    assert_eq!(containers[1]["name"], "keyhole-scanner");
    assert_eq!(containers[1]["command"][3], "target");
    assert_eq!(containers[1]["command"][5], "840s");
    assert_eq!(containers[1]["securityContext"], hardened_json());
}

#[test]
fn scan_pod_needs_exactly_one_pod() {
    let two = run(ScanMode::Sidecar);
    let target = ScanTarget::pods(
        two.namespace().clone(),
        ["a", "b"].map(|p| keyhole_core::PodName::new(p).unwrap()),
        None,
    )
    .unwrap();
    let two =
        keyhole_core::Run::new(two.id().clone(), target, ScanMode::Sidecar, *two.expiry()).unwrap();
    let image = ImageRef::parse(TARGET_IMAGE).unwrap();
    let e = sidecar_pod(&two, &image, 10001, None, &scanner()).unwrap_err();
    assert_eq!(e, ScannerError::PodCount { count: 2 });
    assert!(!e.to_string().contains('\n'));
}
