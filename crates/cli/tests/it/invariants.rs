//! What checkov cannot see (it ignores `ephemeralContainers` and `shareProcessNamespace`),
//! asserted on the plans themselves.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use serde_json::Value;

use crate::{SCANNER, plan};

fn steps(args: &[&str]) -> Vec<Value> {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    let v: Value = serde_json::from_str(&plan(&all)).expect("plan -o json is JSON");
    let steps = v["steps"].as_array().expect("steps").clone();
    // So that loops over the steps cannot pass on nothing.
    assert!(
        steps.len() >= 4,
        "a plan creates at least a ServiceAccount, its anchor Secret, a Role and a RoleBinding: \
         {steps:?}"
    );
    steps
}

fn bodies_of_kind(steps: &[Value], kind: &str) -> Vec<Value> {
    steps
        .iter()
        .map(|s| s["body"].clone())
        .filter(|b| b["kind"] == kind)
        .collect()
}

const LAUNCH: &[&str] = &[
    "scan-web",
    "-n",
    "shop",
    "--mode",
    "sidecar",
    "-c",
    "app",
    "--target-uid",
    "10001",
    "--image",
    SCANNER,
    "--launch",
    "registry.example.com/shop/web:1.4.2@sha256:9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b",
];

#[test]
fn network_policy_selects_the_launched_scan_pod_and_nothing_else() {
    let s = steps(LAUNCH);
    let np: NetworkPolicy =
        serde_json::from_value(bodies_of_kind(&s, "NetworkPolicy").remove(0)).unwrap();
    let pod: Pod = serde_json::from_value(bodies_of_kind(&s, "Pod").remove(0)).unwrap();
    let labels = pod.metadata.labels.clone().unwrap();
    assert!(
        keyhole_netpolicy::selects(&np, &labels),
        "policy must select the scan pod"
    );
    assert!(!keyhole_netpolicy::selects(
        &np,
        &BTreeMap::from([("app".to_string(), "web".to_string())])
    ));
    // The policy exists before the pod is created, so the pod never runs unisolated.
    let kinds: Vec<_> = s
        .iter()
        .map(|s| s["body"]["kind"].as_str().unwrap_or("patch").to_string())
        .collect();
    let (np_at, pod_at) = (
        kinds.iter().position(|k| k == "NetworkPolicy"),
        kinds.iter().position(|k| k == "Pod"),
    );
    assert!(np_at < pod_at, "order: {kinds:?}");
}

#[test]
fn share_process_namespace_only_on_sidecar_pods() {
    let scenarios: [&[&str]; 4] = [
        &["web-0", "-n", "shop", "--mode", "standard"],
        &["web-0", "-n", "shop", "--mode", "sidecar"],
        &[
            "web-0",
            "-n",
            "shop",
            "--mode",
            "distroless",
            "-c",
            "web",
            "--target-uid",
            "10001",
        ],
        LAUNCH,
    ];
    let mut launch_pods = 0;
    for args in scenarios {
        for step in steps(args) {
            let b = &step["body"];
            let shares = b["spec"]["shareProcessNamespace"] == true;
            let is_launch_pod = b["kind"] == "Pod";
            launch_pods += usize::from(is_launch_pod);
            assert_eq!(shares, is_launch_pod, "{args:?}: {}", step["path"]);
        }
    }
    assert_eq!(launch_pods, 1, "the launch scenario plans one sidecar pod");
}

#[test]
fn distroless_patch_is_a_hardened_debug_container_targeting_the_container() {
    let s = steps(&[
        "web-0",
        "web-1",
        "-n",
        "shop",
        "--mode",
        "distroless",
        "-c",
        "web",
        "--target-uid",
        "10001",
        "--image",
        SCANNER,
    ]);
    let patches: Vec<_> = s.iter().filter(|s| s["method"] == "PATCH").collect();
    assert_eq!(patches.len(), 2, "one debug container per target pod");
    for p in patches {
        assert_eq!(
            p["credentials"], "scoped",
            "the patch is sent with the scoped token, not the user's"
        );
        let c = &p["body"]["spec"]["ephemeralContainers"][0];
        assert_eq!(c["targetContainerName"], "web");
        let sc = &c["securityContext"];
        assert_eq!(sc["runAsUser"], 10001);
        assert_eq!(sc["runAsNonRoot"], true);
        assert_eq!(sc["allowPrivilegeEscalation"], false);
        assert_eq!(sc["readOnlyRootFilesystem"], true);
        assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
        assert!(sc["capabilities"]["add"].is_null());
        assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
        assert_eq!(sc["appArmorProfile"]["type"], "RuntimeDefault");
        for forbidden in [
            "resources",
            "ports",
            "livenessProbe",
            "readinessProbe",
            "startupProbe",
            "lifecycle",
            "volumeMounts",
        ] {
            assert!(
                c[forbidden].is_null(),
                "ephemeral container must not set {forbidden}"
            );
        }
    }
}

#[test]
fn every_object_is_labelled_annotated_and_owned_by_the_run_service_account() {
    for step in steps(LAUNCH) {
        let b = &step["body"];
        if b["kind"] == "TokenRequest" {
            assert_eq!(b["spec"]["expirationSeconds"], 600);
            assert_eq!(b["spec"]["boundObjectRef"]["kind"], "Secret");
            continue;
        }
        let m = &b["metadata"];
        assert_eq!(
            m["labels"]["app.kubernetes.io/managed-by"], "keyhole",
            "{}",
            step["path"]
        );
        assert_eq!(m["labels"]["keyhole.dev/run-id"], "snaprun001");
        assert_eq!(
            m["annotations"]["keyhole.dev/expires-at"],
            "2026-11-26T14:10:00Z"
        );
        assert_eq!(m["namespace"], "shop");
        if b["kind"] != "ServiceAccount" {
            assert_eq!(
                m["ownerReferences"][0]["kind"], "ServiceAccount",
                "{}",
                step["path"]
            );
            assert_eq!(m["ownerReferences"][0]["name"], "keyhole-snaprun001");
        }
    }
}
