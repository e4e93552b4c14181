//! Pods: creation defaults and admission, status, the ephemeralcontainers subresource as the
//! API treats it, update restrictions, and logs.

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use keyhole_testkit::FakeCluster;
use kube::api::{Api, LogParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::{meta, status};

fn debug_container(name: &str) -> serde_json::Value {
    json!({"name": name, "image": "busybox:1.36", "targetContainerName": "app",
           "securityContext": {"runAsUser": 1000, "allowPrivilegeEscalation": false,
                               "capabilities": {"drop": ["ALL"]}}})
}

#[tokio::test]
async fn pod_create_defaults_and_service_account_admission() {
    let cluster = FakeCluster::new();
    let pods: Api<Pod> = Api::namespaced(cluster.client_admin(), "default");
    let pp = PostParams::default();
    let pod = Pod {
        metadata: meta("p"),
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "app".into(),
                image: Some("nginx".into()),
                ..Container::default()
            }],
            ..PodSpec::default()
        }),
        ..Pod::default()
    };
    let created = pods.create(&pp, &pod).await.unwrap();
    let spec = created.spec.unwrap();
    assert_eq!(spec.service_account_name.as_deref(), Some("default"));
    assert_eq!(
        spec.containers[0].image_pull_policy.as_deref(),
        Some("Always"),
        "untagged image → Always"
    );
    assert_eq!(created.status.unwrap().phase.as_deref(), Some("Pending"));

    let mut other = pod.clone();
    other.metadata = meta("q");
    other.spec.as_mut().unwrap().service_account_name = Some("missing".into());
    let e = status(pods.create(&pp, &other).await);
    assert_eq!((e.code, e.reason.as_str()), (403, "Forbidden"));
    assert!(
        e.message.contains("serviceaccount \"missing\" not found"),
        "{}",
        e.message
    );

    let mut empty = pod.clone();
    empty.metadata = meta("r");
    empty.spec.as_mut().unwrap().containers.clear();
    let e = status(pods.create(&pp, &empty).await);
    assert_eq!(
        e.message,
        "Pod \"r\" is invalid: spec.containers: Required value"
    );

    // Status is its own subresource: a main-resource write cannot change it.
    let ps = PatchParams::default();
    let running = pods
        .patch_status(
            "p",
            &ps,
            &Patch::Merge(json!({"status": {"phase": "Running"}})),
        )
        .await
        .unwrap();
    assert_eq!(running.status.unwrap().phase.as_deref(), Some("Running"));
    let still = pods
        .patch(
            "p",
            &ps,
            &Patch::Merge(
                json!({"status": {"phase": "Failed"}, "metadata": {"labels": {"x": "y"}}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(still.status.unwrap().phase.as_deref(), Some("Running"));
    assert_eq!(still.metadata.labels.unwrap()["x"], "y");
    let e = status(
        pods.patch(
            "p",
            &ps,
            &Patch::Merge(json!({"spec": {"restartPolicy": "Never"}})),
        )
        .await,
    );
    assert_eq!(e.code, 422);
    assert!(
        e.message
            .contains("pod updates may not change fields other than"),
        "{}",
        e.message
    );
    let image = pods
        .patch(
            "p",
            &ps,
            &Patch::Strategic(
                json!({"spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        image.spec.unwrap().containers[0].image.as_deref(),
        Some("nginx:1.27")
    );
}

#[tokio::test]
async fn ephemeral_containers_are_added_once_and_never_removed_or_changed() {
    let cluster = FakeCluster::new();
    cluster.add_running_pod("prod", "web-0", &["app"]).unwrap();
    let pods: Api<Pod> = Api::namespaced(cluster.client_admin(), "prod");
    let ps = PatchParams::default();

    let patched = pods
        .patch_ephemeral_containers(
            "web-0",
            &ps,
            &Patch::Strategic(
                json!({"spec": {"ephemeralContainers": [debug_container("keyhole-debug")]}}),
            ),
        )
        .await
        .unwrap();
    let eph = patched
        .spec
        .as_ref()
        .unwrap()
        .ephemeral_containers
        .clone()
        .unwrap();
    assert_eq!(eph.len(), 1);
    assert_eq!(eph[0].target_container_name.as_deref(), Some("app"));
    assert_eq!(
        eph[0].termination_message_path.as_deref(),
        Some("/dev/termination-log"),
        "defaults apply"
    );
    let statuses = patched
        .status
        .unwrap()
        .ephemeral_container_statuses
        .unwrap();
    assert!(
        statuses[0].state.as_ref().unwrap().running.is_some(),
        "the simulated kubelet starts it"
    );

    // A second one merges by name; the first stays.
    let two = pods
        .patch_ephemeral_containers(
            "web-0",
            &ps,
            &Patch::Strategic(
                json!({"spec": {"ephemeralContainers": [debug_container("second")]}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(two.spec.unwrap().ephemeral_containers.unwrap().len(), 2);

    // Removing through a JSON merge patch (which replaces the list) is refused.
    let e = status(
        pods.patch_ephemeral_containers(
            "web-0",
            &ps,
            &Patch::Merge(json!({"spec": {"ephemeralContainers": [debug_container("second")]}})),
        )
        .await,
    );
    assert_eq!(e.code, 422);
    assert!(
        e.message
            .contains("existing ephemeral containers \"keyhole-debug\" may not be removed"),
        "{}",
        e.message
    );
    let e = status(
        pods.patch_ephemeral_containers(
            "web-0",
            &ps,
            &Patch::Strategic(
                json!({"spec": {"ephemeralContainers": [{"name": "second", "$patch": "delete"}]}}),
            ),
        )
        .await,
    );
    assert!(e.message.contains("may not be removed"), "{}", e.message);

    // Changing one is refused.
    let e = status(
        pods.patch_ephemeral_containers(
            "web-0",
            &ps,
            &Patch::Strategic(
                json!({"spec": {"ephemeralContainers": [{"name": "second", "image": "alpine"}]}}),
            ),
        )
        .await,
    );
    assert!(
        e.message
            .contains("existing ephemeral containers \"second\" may not be changed"),
        "{}",
        e.message
    );

    // The main resource cannot touch them either: a pod PUT keeps them as they were.
    let mut pod = pods.get("web-0").await.unwrap();
    pod.spec.as_mut().unwrap().ephemeral_containers = None;
    let after = pods
        .replace("web-0", &PostParams::default(), &pod)
        .await
        .unwrap();
    assert_eq!(after.spec.unwrap().ephemeral_containers.unwrap().len(), 2);

    // A PUT of the whole pod to the subresource works for additions.
    let mut pod = pods.get_ephemeral_containers("web-0").await.unwrap();
    let mut third: k8s_openapi::api::core::v1::EphemeralContainer =
        serde_json::from_value(debug_container("third")).unwrap();
    third.target_container_name = Some("app".into());
    pod.spec
        .as_mut()
        .unwrap()
        .ephemeral_containers
        .as_mut()
        .unwrap()
        .push(third);
    let put = pods
        .replace_ephemeral_containers("web-0", &PostParams::default(), &pod)
        .await
        .unwrap();
    assert_eq!(put.spec.unwrap().ephemeral_containers.unwrap().len(), 3);
}

#[tokio::test]
async fn ephemeral_containers_reject_what_the_api_rejects() {
    let cluster = FakeCluster::new();
    cluster.add_running_pod("prod", "web-0", &["app"]).unwrap();
    let pods: Api<Pod> = Api::namespaced(cluster.client_admin(), "prod");
    let ps = PatchParams::default();
    for (field, value) in [
        ("ports", json!([{"containerPort": 80}])),
        ("resources", json!({"limits": {"cpu": "1"}})),
        (
            "lifecycle",
            json!({"preStop": {"exec": {"command": ["true"]}}}),
        ),
        ("livenessProbe", json!({"exec": {"command": ["true"]}})),
        ("readinessProbe", json!({"exec": {"command": ["true"]}})),
        ("startupProbe", json!({"exec": {"command": ["true"]}})),
    ] {
        let mut c = debug_container("bad");
        c[field] = value;
        let e = status(
            pods.patch_ephemeral_containers(
                "web-0",
                &ps,
                &Patch::Strategic(json!({"spec": {"ephemeralContainers": [c]}})),
            )
            .await,
        );
        assert_eq!(e.code, 422, "{field}");
        assert!(e.message.contains(&format!("spec.ephemeralContainers[0].{field}: Forbidden: cannot be set for an Ephemeral Container")), "{}", e.message);
    }
    let mut c = debug_container("bad");
    c["targetContainerName"] = json!("nope");
    let e = status(
        pods.patch_ephemeral_containers(
            "web-0",
            &ps,
            &Patch::Strategic(json!({"spec": {"ephemeralContainers": [c]}})),
        )
        .await,
    );
    assert!(
        e.message
            .contains("targetContainerName: Not found: \"nope\""),
        "{}",
        e.message
    );
    let mut c = debug_container("app");
    c["name"] = json!("app");
    let e = status(
        pods.patch_ephemeral_containers(
            "web-0",
            &ps,
            &Patch::Strategic(json!({"spec": {"ephemeralContainers": [c]}})),
        )
        .await,
    );
    assert!(
        e.message.contains("Duplicate value: \"app\""),
        "{}",
        e.message
    );
    let mut c = debug_container("mounts");
    c["volumeMounts"] = json!([{"name": "kube-api-access", "mountPath": "/var/run/secrets"}]);
    let e = status(
        pods.patch_ephemeral_containers(
            "web-0",
            &ps,
            &Patch::Strategic(json!({"spec": {"ephemeralContainers": [c]}})),
        )
        .await,
    );
    assert!(
        e.message.contains("volumeMounts[0].name: Not found"),
        "{}",
        e.message
    );
    let pod = pods.get("web-0").await.unwrap();
    assert!(
        pod.spec.unwrap().ephemeral_containers.is_none(),
        "nothing was added by the refused patches"
    );
}

#[tokio::test]
async fn pod_logs_per_container() {
    let cluster = FakeCluster::new();
    cluster
        .add_running_pod("prod", "web-0", &["app", "sidecar"])
        .unwrap();
    cluster.set_pod_log("prod", "web-0", "sidecar", "line1\nline2\nline3\n");
    let pods: Api<Pod> = Api::namespaced(cluster.client_admin(), "prod");
    let lp = LogParams {
        container: Some("sidecar".into()),
        ..LogParams::default()
    };
    assert_eq!(
        pods.logs("web-0", &lp).await.unwrap(),
        "line1\nline2\nline3\n"
    );
    let tail = LogParams {
        tail_lines: Some(1),
        ..lp.clone()
    };
    assert_eq!(pods.logs("web-0", &tail).await.unwrap(), "line3\n");
    assert_eq!(
        pods.logs(
            "web-0",
            &LogParams {
                container: Some("app".into()),
                ..LogParams::default()
            }
        )
        .await
        .unwrap(),
        ""
    );
    let e = status(pods.logs("web-0", &LogParams::default()).await);
    assert_eq!(
        e.message,
        "a container name must be specified for pod web-0, choose one of: [app sidecar]"
    );
    let e = status(
        pods.logs(
            "web-0",
            &LogParams {
                container: Some("nope".into()),
                ..LogParams::default()
            },
        )
        .await,
    );
    assert_eq!(e.code, 400);
}

/// The API server computes `status.qosClass` at admission from requests and limits (the
/// expectations are Kubernetes' documented classes, written out by hand) and refuses a status
/// write that changes it; one that leaves it out keeps it.
#[tokio::test]
async fn pod_qos_class_is_computed_at_admission_and_immutable() {
    let cluster = FakeCluster::new();
    let pods: Api<Pod> = Api::namespaced(cluster.client_admin(), "default");
    let pp = PostParams::default();
    let make = |name: &str, resources: serde_json::Value| -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"containers": [{"name": "app", "image": "nginx:1.27",
                                     "resources": resources}]}
        }))
        .unwrap()
    };
    let cases = [
        ("none", json!({}), "BestEffort"),
        (
            "requests-only",
            json!({"requests": {"cpu": "100m"}}),
            "Burstable",
        ),
        (
            "unequal",
            json!({"requests": {"cpu": "100m", "memory": "64Mi"},
                   "limits": {"cpu": "200m", "memory": "64Mi"}}),
            "Burstable",
        ),
        (
            "cpu-only-equal",
            json!({"requests": {"cpu": "1"}, "limits": {"cpu": "1"}}),
            "Burstable",
        ),
        // Equal in value though written differently; limits alone default the requests.
        (
            "equal",
            json!({"requests": {"cpu": "0.5", "memory": "134217728"},
                   "limits": {"cpu": "500m", "memory": "128Mi"}}),
            "Guaranteed",
        ),
        (
            "limits-only",
            json!({"limits": {"cpu": "1", "memory": "1Gi"}}),
            "Guaranteed",
        ),
        (
            "other-resource-only",
            json!({"requests": {"ephemeral-storage": "1Gi"}}),
            "BestEffort",
        ),
    ];
    for (name, resources, want) in &cases {
        let created = pods
            .create(&pp, &make(name, resources.clone()))
            .await
            .unwrap();
        assert_eq!(
            created.status.unwrap().qos_class.as_deref(),
            Some(*want),
            "{name}: {resources}"
        );
    }
    // One Guaranteed container beside a BestEffort one makes the pod Burstable.
    let mut mixed = make("mixed", json!({"limits": {"cpu": "1", "memory": "1Gi"}}));
    let spec = mixed.spec.as_mut().unwrap();
    spec.containers.push(Container {
        name: "side".into(),
        image: Some("busybox:1.36".into()),
        ..Container::default()
    });
    let created = pods.create(&pp, &mixed).await.unwrap();
    assert_eq!(
        created.status.unwrap().qos_class.as_deref(),
        Some("Burstable")
    );

    // A status write may not change it...
    let mut changed = pods.get_status("equal").await.unwrap();
    changed.status.as_mut().unwrap().qos_class = Some("BestEffort".into());
    let e = status(pods.replace_status("equal", &pp, &changed).await);
    assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        e.message,
        "Pod \"equal\" is invalid: status.qosClass: Invalid value: \"BestEffort\": field is immutable"
    );
    let ps = PatchParams::default();
    let e = status(
        pods.patch_status(
            "equal",
            &ps,
            &Patch::Merge(json!({"status": {"qosClass": "Burstable"}})),
        )
        .await,
    );
    assert_eq!(e.code, 422, "{}", e.message);
    // ...and one that leaves it out (or empties it) keeps it.
    let mut without = pods.get_status("equal").await.unwrap();
    without.status.as_mut().unwrap().qos_class = None;
    without.status.as_mut().unwrap().phase = Some("Running".into());
    let kept = pods.replace_status("equal", &pp, &without).await.unwrap();
    let kept = kept.status.unwrap();
    assert_eq!(
        (kept.phase.as_deref(), kept.qos_class.as_deref()),
        (Some("Running"), Some("Guaranteed"))
    );
    let kept = pods
        .patch_status(
            "equal",
            &ps,
            &Patch::Merge(json!({"status": {"qosClass": ""}})),
        )
        .await
        .unwrap();
    assert_eq!(
        kept.status.unwrap().qos_class.as_deref(),
        Some("Guaranteed")
    );
    // The simulated kubelet reports the class admission computed.
    let running = cluster.set_pod_running("default", "limits-only").unwrap();
    assert_eq!(
        running.status.unwrap().qos_class.as_deref(),
        Some("Guaranteed")
    );
}
