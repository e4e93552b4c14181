//! Least privilege proven through the fake's own authorizer (an RBAC implementation independent
//! of keyhole-rbac's evaluator): per mode, the scoped identity is allowed exactly the requests
//! written out by hand in [`EXPECTED`] (independent of keyhole-rbac's grant table) among
//! hundreds asked by SelfSubjectAccessReview, and real requests — WebSocket exec, the
//! ephemeral-container patch, logs, reads of other pods, secrets, tokens — succeed or are
//! refused (403) accordingly.

use std::collections::BTreeSet;

use jiff::Timestamp;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{Pod, Secret, ServiceAccount};
use keyhole_core::{Namespace, PodName, ScanMode};
use keyhole_rbac::eval::{ResourceRequest, planned_requests};
use keyhole_testkit::{ExecResponse, FakeCluster};
use kube::api::{
    Api, AttachParams, DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams,
};
use secrecy::ExposeSecret as _;
use serde_json::json;

use crate::support::{NS, POD, run};

const OTHER_POD: &str = "web-1";
const OTHER_NS: &str = "kube-system";

/// Everything each mode may do, as (mode, verb, subresource of `pods`), always on the target
/// pod by name in the run's namespace; written by hand from what each workflow does:
///
/// - standard reads the pod and execs into it (WebSocket exec is authorized as `get` before
///   Kubernetes 1.35 and as `create` from 1.35 on);
/// - distroless reads the pod, patches in the debug container, reads it back, and reads its log;
/// - sidecar reads the pod and the sidecar's log.
const EXPECTED: &[(ScanMode, &str, Option<&str>)] = &[
    (ScanMode::Standard, "get", None),
    (ScanMode::Standard, "create", Some("exec")),
    (ScanMode::Standard, "get", Some("exec")),
    (ScanMode::Distroless, "get", None),
    (ScanMode::Distroless, "get", Some("ephemeralcontainers")),
    (ScanMode::Distroless, "patch", Some("ephemeralcontainers")),
    (ScanMode::Distroless, "get", Some("log")),
    (ScanMode::Sidecar, "get", None),
    (ScanMode::Sidecar, "get", Some("log")),
];

/// [`EXPECTED`] for `mode`, as requests on the target pod.
fn expected(mode: ScanMode) -> BTreeSet<ResourceRequest> {
    let out: BTreeSet<ResourceRequest> = EXPECTED
        .iter()
        .filter(|(m, _, _)| *m == mode)
        .map(|(_, verb, sub)| {
            let mut r = ResourceRequest::new(*verb, "pods").name(POD).namespace(NS);
            r.subresource = sub.map(str::to_string);
            r
        })
        .collect();
    assert!(!out.is_empty(), "{mode} has no expected requests");
    out
}

/// A cluster with the target, another pod beside it, the same pod name in another namespace,
/// and a secret; returns it with the scoped client of a freshly applied `mode` run.
async fn scoped(mode: ScanMode, minor: u32) -> (FakeCluster, kube::Client) {
    let cluster = crate::support::cluster();
    cluster.set_server_minor_version(minor);
    cluster.add_running_pod(NS, OTHER_POD, &["app"]).unwrap();
    cluster.add_running_pod(OTHER_NS, POD, &["app"]).unwrap();
    cluster
        .insert(&Secret {
            metadata: kube::core::ObjectMeta {
                name: Some("db-password".into()),
                namespace: Some(NS.into()),
                ..Default::default()
            },
            ..Secret::default()
        })
        .unwrap();
    cluster.set_exec_handler(|req| ExecResponse::stdout(format!("exec in {}", req.pod)));
    let run = run(mode);
    let admin = cluster.client_admin();
    let applied = keyhole_rbac::apply(
        &admin,
        &run,
        |owner| keyhole_credentials::anchor_secret(&run, owner),
        &mut |_| {},
    )
    .await
    .unwrap();
    let token = keyhole_credentials::mint(&admin, &run, &[], &applied.anchor_uid, Timestamp::now())
        .await
        .unwrap();
    let client = cluster.client_for_token(token.secret().expose_secret());
    let report = keyhole_rbac::verify_access(&client, &run).await.unwrap();
    assert!(
        report
            .checked
            .iter()
            .all(|c| c.allowed == c.expected_allowed)
    );
    (cluster, client)
}

/// The sweep: every verb on every (sub)resource keyhole could plausibly touch, for the target,
/// another pod and no name, here and in another namespace.
fn sweep() -> Vec<ResourceRequest> {
    const RBAC: &str = "rbac.authorization.k8s.io";
    let resources: &[(&str, &str, Option<&str>)] = &[
        ("", "pods", None),
        ("", "pods", Some("exec")),
        ("", "pods", Some("log")),
        ("", "pods", Some("ephemeralcontainers")),
        ("", "pods", Some("attach")),
        ("", "pods", Some("portforward")),
        ("", "pods", Some("proxy")),
        ("", "pods", Some("status")),
        ("", "secrets", None),
        ("", "configmaps", None),
        ("", "serviceaccounts", None),
        ("", "serviceaccounts", Some("token")),
        (RBAC, "roles", None),
        (RBAC, "rolebindings", None),
        ("networking.k8s.io", "networkpolicies", None),
    ];
    let verbs = [
        "get",
        "list",
        "watch",
        "create",
        "update",
        "patch",
        "delete",
        "deletecollection",
        "escalate",
        "bind",
        "impersonate",
    ];
    let mut out = Vec::new();
    for (group, resource, sub) in resources {
        for verb in verbs {
            for name in [Some(POD), Some(OTHER_POD), None] {
                for ns in [NS, OTHER_NS] {
                    let mut r = ResourceRequest::new(verb, *resource)
                        .group(*group)
                        .namespace(ns);
                    r.subresource = sub.map(str::to_string);
                    r.name = name.map(str::to_string);
                    out.push(r);
                }
            }
        }
    }
    out
}

async fn ssar_allows(client: &kube::Client, r: &ResourceRequest) -> bool {
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(r.verb.clone()),
                group: Some(r.api_group.clone()),
                resource: Some(r.resource.clone()),
                subresource: r.subresource.clone(),
                name: r.name.clone(),
                namespace: r.namespace.clone(),
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    };
    Api::<SelfSubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .unwrap()
        .status
        .unwrap()
        .allowed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fakes_authorizer_allows_exactly_the_expected_requests_per_mode() {
    for mode in [ScanMode::Standard, ScanMode::Distroless, ScanMode::Sidecar] {
        let (_cluster, client) = scoped(mode, 35).await;
        let expected = expected(mode);
        // The product's own list of what a scan does (what `verify_access` proves live) must be
        // the same as the hand-written one.
        let planned: BTreeSet<ResourceRequest> = planned_requests(
            mode,
            &Namespace::new(NS).unwrap(),
            &[PodName::new(POD).unwrap()],
        )
        .unwrap()
        .into_iter()
        .collect();
        assert_eq!(
            planned, expected,
            "{mode}: planned_requests ≠ the expected table"
        );
        let sweep = sweep();
        assert!(
            expected.iter().all(|p| sweep.contains(p)),
            "the sweep covers the expected requests"
        );
        let mut allowed = BTreeSet::new();
        for r in &sweep {
            if ssar_allows(&client, r).await {
                allowed.insert(r.clone());
            }
        }
        assert_eq!(allowed, expected, "{mode}: allowed ≠ expected");
        eprintln!(
            "{mode}: {} of {} requests allowed, all expected",
            allowed.len(),
            sweep.len()
        );
    }
}

fn forbidden<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> bool {
    matches!(r, Err(kube::Error::Api(s)) if s.code == 403)
}

/// What every mode must be refused, as real requests.
async fn refused_everywhere(client: &kube::Client) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    assert!(forbidden(pods.list(&ListParams::default()).await));
    assert!(forbidden(pods.get(OTHER_POD).await));
    assert!(forbidden(pods.delete(POD, &DeleteParams::default()).await));
    assert!(forbidden(
        pods.patch(
            POD,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}}))
        )
        .await
    ));
    assert!(forbidden(
        pods.create(&PostParams::default(), &Pod::default()).await
    ));
    let elsewhere: Api<Pod> = Api::namespaced(client.clone(), OTHER_NS);
    assert!(forbidden(elsewhere.get(POD).await));
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    assert!(forbidden(secrets.get("db-password").await));
    assert!(forbidden(secrets.list(&ListParams::default()).await));
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), NS);
    assert!(forbidden(
        sas.create_token_request("default", &PostParams::default(), &Default::default())
            .await
    ));
}

async fn exec(pods: &Api<Pod>, name: &str) -> Result<String, kube::Error> {
    use tokio::io::AsyncReadExt as _;
    let mut p = pods
        .exec(name, ["id"], &AttachParams::default().container("app"))
        .await?;
    let mut out = String::new();
    p.stdout().unwrap().read_to_string(&mut out).await.unwrap();
    Ok(out)
}

fn debug_container_patch() -> Patch<serde_json::Value> {
    Patch::Strategic(json!({"spec": {"ephemeralContainers": [{
        "name": "keyhole-dbg", "image": "busybox:1.36", "targetContainerName": "app",
        "command": ["sleep", "1"],
    }]}}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_requests_succeed_or_are_refused_as_planned() {
    // Standard, on 1.34 (exec authorized as get) and 1.35 (get and create).
    for minor in [34, 35] {
        let (cluster, client) = scoped(ScanMode::Standard, minor).await;
        let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
        assert!(pods.get(POD).await.is_ok());
        assert_eq!(exec(&pods, POD).await.unwrap(), "exec in web-0");
        assert!(forbidden(exec(&pods, OTHER_POD).await));
        assert_eq!(cluster.execs().len(), 1, "only the target was exec'd into");
        assert!(forbidden(
            pods.patch_ephemeral_containers(POD, &PatchParams::default(), &debug_container_patch())
                .await
        ));
        assert!(forbidden(pods.logs(POD, &LogParams::default()).await));
        refused_everywhere(&client).await;
    }

    let (cluster, client) = scoped(ScanMode::Distroless, 35).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    assert!(pods.get(POD).await.is_ok());
    let patched = pods
        .patch_ephemeral_containers(POD, &PatchParams::default(), &debug_container_patch())
        .await
        .unwrap();
    assert_eq!(patched.spec.unwrap().ephemeral_containers.unwrap().len(), 1);
    assert!(pods.get_ephemeral_containers(POD).await.is_ok());
    cluster.set_pod_log(NS, POD, "keyhole-dbg", "results\n");
    let log = pods
        .logs(
            POD,
            &LogParams {
                container: Some("keyhole-dbg".into()),
                ..LogParams::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(log, "results\n");
    assert!(forbidden(exec(&pods, POD).await));
    assert!(forbidden(
        pods.patch_ephemeral_containers(
            OTHER_POD,
            &PatchParams::default(),
            &debug_container_patch()
        )
        .await
    ));
    refused_everywhere(&client).await;

    let (cluster, client) = scoped(ScanMode::Sidecar, 35).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    assert!(pods.get(POD).await.is_ok());
    cluster.set_pod_log(NS, POD, "app", "sidecar results\n");
    assert_eq!(
        pods.logs(POD, &LogParams::default()).await.unwrap(),
        "sidecar results\n"
    );
    assert!(forbidden(exec(&pods, POD).await));
    assert!(forbidden(
        pods.patch_ephemeral_containers(POD, &PatchParams::default(), &debug_container_patch())
            .await
    ));
    assert!(forbidden(pods.logs(OTHER_POD, &LogParams::default()).await));
    refused_everywhere(&client).await;
    assert!(cluster.execs().is_empty());
}
