//! `apply` and `verify_access` against the testkit fake: creation order and the events that let
//! cleanup register each object before and after its create, failures mid-way, and a
//! verification that catches extra or missing rights and names the offending rule.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use keyhole_core::{Expiry, ObjectKind, Run, RunId, ScanMode, ScanTarget, Ttl};
use keyhole_rbac::{Applied, ApplyEvent, RbacError, apply, verify_access};
use keyhole_testkit::{FakeCluster, Fault};

use crate::{ns, pod};

fn live_run(mode: ScanMode) -> Run {
    let target = ScanTarget::pods(ns("prod"), [pod("web-0")], None).unwrap();
    let expiry = Expiry::new(Timestamp::now(), Ttl::default()).unwrap();
    Run::new(RunId::generate().unwrap(), target, mode, expiry).unwrap()
}

/// The anchor Secret as keyhole-credentials builds it (name, labels, owner), minus the parts
/// this crate does not care about.
fn anchor(run: &Run) -> impl FnOnce(OwnerReference) -> Secret + '_ {
    move |owner| Secret {
        metadata: ObjectMeta {
            name: Some(run.derived_name("anchor").to_string()),
            namespace: Some(run.namespace().to_string()),
            labels: Some(run.labels()),
            annotations: Some(run.annotations()),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        ..Secret::default()
    }
}

async fn applied(
    cluster: &FakeCluster,
    run: &Run,
) -> (Result<Applied, RbacError>, Vec<ApplyEvent>) {
    cluster.create_namespace("prod");
    let mut events = Vec::new();
    let r = apply(&cluster.client_admin(), run, anchor(run), &mut |e| {
        events.push(e)
    })
    .await;
    (r, events)
}

fn describe(events: &[ApplyEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| match e {
            ApplyEvent::Attempt(c) => format!("attempt {}", c.kind.as_str()),
            ApplyEvent::Created(c) => format!("created {}", c.kind.as_str()),
        })
        .collect()
}

#[tokio::test]
async fn apply_creates_in_order_and_reports_each_create_before_and_after() {
    let cluster = FakeCluster::new();
    let run = live_run(ScanMode::Standard);
    let (r, events) = applied(&cluster, &run).await;
    let applied = r.unwrap();
    assert_eq!(
        describe(&events),
        [
            "attempt ServiceAccount",
            "created ServiceAccount",
            "attempt Secret",
            "created Secret",
            "attempt Role",
            "created Role",
            "attempt RoleBinding",
            "created RoleBinding",
        ]
    );
    let paths: Vec<String> = cluster.calls().iter().map(|c| c.path.clone()).collect();
    assert_eq!(paths.len(), 4);
    for (p, plural) in paths
        .iter()
        .zip(["serviceaccounts", "secrets", "roles", "rolebindings"])
    {
        assert!(p.ends_with(&format!("/namespaces/prod/{plural}")), "{p}");
    }
    // Everything the SA owns names its real uid, so deleting the SA cascades.
    let sa = cluster
        .object::<ServiceAccount>("prod", run.object_name().as_str())
        .unwrap();
    assert_eq!(
        sa.metadata.uid.as_deref(),
        Some(applied.service_account_uid.as_str())
    );
    let role = cluster
        .object::<Role>("prod", run.object_name().as_str())
        .unwrap();
    assert_eq!(
        role.metadata.owner_references.unwrap()[0].uid,
        applied.service_account_uid
    );
    let secret = cluster
        .object::<Secret>("prod", run.derived_name("anchor").as_str())
        .unwrap();
    assert_eq!(
        secret.metadata.uid.as_deref(),
        Some(applied.anchor_uid.as_str())
    );
    // Each Created carries the uid the server assigned; each Attempt none.
    for e in &events {
        match e {
            ApplyEvent::Attempt(c) => assert!(c.uid.is_none()),
            ApplyEvent::Created(c) => assert!(c.uid.is_some()),
        }
    }
    assert_eq!(cluster.managed_objects().len(), 4);
}

#[tokio::test]
async fn a_failed_create_stops_apply_right_after_its_attempt() {
    let cluster = FakeCluster::new();
    let run = live_run(ScanMode::Standard);
    cluster.faults().fail_call(2, Fault::Status(403));
    let (r, events) = applied(&cluster, &run).await;
    let e = r.unwrap_err().to_string();
    assert!(
        e.contains(&format!("creating Role prod/{}", run.object_name())),
        "{e}"
    );
    assert_eq!(describe(&events).last().unwrap(), "attempt Role");
    assert_eq!(events.len(), 5);
    match &events[4] {
        ApplyEvent::Attempt(c) => assert_eq!(c.kind, ObjectKind::Role),
        e => panic!("{e:?}"),
    }
}

#[tokio::test]
async fn an_existing_object_is_reported_with_the_reap_hint() {
    let cluster = FakeCluster::new();
    let run = live_run(ScanMode::Standard);
    cluster.create_namespace("prod");
    cluster
        .insert(&ServiceAccount {
            metadata: ObjectMeta {
                name: Some(run.object_name().to_string()),
                namespace: Some("prod".into()),
                ..ObjectMeta::default()
            },
            ..ServiceAccount::default()
        })
        .unwrap();
    let (r, events) = applied(&cluster, &run).await;
    let e = r.unwrap_err().to_string();
    assert!(
        e.contains("already exists") && e.contains("keyhole reap -n prod"),
        "{e}"
    );
    assert_eq!(describe(&events), ["attempt ServiceAccount"]);
}

/// Applies a run and returns a client with a token of its ServiceAccount.
async fn scoped(cluster: &FakeCluster, run: &Run) -> kube::Client {
    applied(cluster, run).await.0.unwrap();
    let token = cluster
        .issue_token("prod", run.object_name().as_str(), Duration::from_secs(600))
        .unwrap();
    cluster.client_for_token(&token)
}

#[tokio::test]
async fn verification_passes_for_every_mode_with_two_reviews() {
    for mode in [ScanMode::Standard, ScanMode::Distroless, ScanMode::Sidecar] {
        let cluster = FakeCluster::new();
        let run = live_run(mode);
        let client = scoped(&cluster, &run).await;
        let before = cluster.calls().len();
        let report = verify_access(&client, &run).await.unwrap();
        assert_eq!(report.api_calls, 2, "{mode}");
        assert_eq!(cluster.calls().len() - before, 2);
        assert!(report.checked.iter().any(|c| c.expected_allowed));
        assert!(report.checked.iter().any(|c| !c.expected_allowed));
        assert!(
            report
                .checked
                .iter()
                .all(|c| c.allowed == c.expected_allowed)
        );
    }
}

fn rule(resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![String::new()]),
        resources: Some(resources.iter().map(|s| s.to_string()).collect()),
        verbs: verbs.iter().map(|s| s.to_string()).collect(),
        ..PolicyRule::default()
    }
}

#[tokio::test]
async fn an_extra_right_in_the_role_fails_and_names_the_rule() {
    let cluster = FakeCluster::new();
    let run = live_run(ScanMode::Standard);
    let client = scoped(&cluster, &run).await;
    // Someone (or a bug) widens the Role between apply and verify.
    let mut role = cluster
        .object::<Role>("prod", run.object_name().as_str())
        .unwrap();
    role.rules
        .get_or_insert_with(Vec::new)
        .push(rule(&["secrets"], &["get"]));
    cluster.remove::<Role>("prod", run.object_name().as_str());
    role.metadata.resource_version = None;
    role.metadata.uid = None;
    cluster.insert(&role).unwrap();
    let e = verify_access(&client, &run).await.unwrap_err();
    let text = e.to_string();
    assert!(
        matches!(
            e,
            RbacError::AccessMismatch {
                expected_allowed: false,
                ..
            }
        ),
        "{text}"
    );
    assert!(
        text.contains("secrets") && text.contains("granted by rule"),
        "{text}"
    );
}

#[tokio::test]
async fn a_cluster_wide_grant_is_caught() {
    let cluster = FakeCluster::new();
    let run = live_run(ScanMode::Sidecar);
    let client = scoped(&cluster, &run).await;
    cluster
        .insert(&ClusterRole {
            metadata: ObjectMeta {
                name: Some("pod-lister".into()),
                ..ObjectMeta::default()
            },
            rules: Some(vec![rule(&["pods"], &["list", "watch"])]),
            ..ClusterRole::default()
        })
        .unwrap();
    cluster
        .insert(&ClusterRoleBinding {
            metadata: ObjectMeta {
                name: Some("all-service-accounts-list-pods".into()),
                ..ObjectMeta::default()
            },
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".to_string().into(),
                kind: "ClusterRole".into(),
                name: "pod-lister".into(),
            },
            subjects: Some(vec![Subject {
                kind: "Group".into(),
                name: "system:serviceaccounts".into(),
                api_group: Some("rbac.authorization.k8s.io".into()),
                ..Subject::default()
            }]),
        })
        .unwrap();
    let text = verify_access(&client, &run).await.unwrap_err().to_string();
    assert!(
        text.contains("list pods") && text.contains("must be denied"),
        "{text}"
    );
}

#[tokio::test]
async fn a_missing_right_fails_too() {
    let cluster = FakeCluster::new();
    let run = live_run(ScanMode::Standard);
    let client = scoped(&cluster, &run).await;
    let mut role = cluster
        .object::<Role>("prod", run.object_name().as_str())
        .unwrap();
    // Only `get` on pods/exec is left: a 1.35 server would refuse the scan's exec.
    role.rules = Some(
        role.rules
            .unwrap()
            .into_iter()
            .map(|mut r| {
                r.verbs.retain(|v| v != "create");
                r
            })
            .collect(),
    );
    cluster.remove::<Role>("prod", run.object_name().as_str());
    role.metadata.resource_version = None;
    role.metadata.uid = None;
    cluster.insert(&role).unwrap();
    let text = verify_access(&client, &run).await.unwrap_err().to_string();
    assert!(
        text.contains("create pods/exec")
            && text.contains("is denied")
            && text.contains("must be allowed"),
        "{text}"
    );
}

/// Whether every field of `want` is in `got` with the same value (`got` may have more: what
/// the API server adds, such as uids and timestamps).
fn contains(got: &serde_json::Value, want: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (got, want) {
        (Value::Object(g), Value::Object(w)) => w
            .iter()
            .all(|(k, v)| g.get(k).is_some_and(|gv| contains(gv, v))),
        (Value::Array(g), Value::Array(w)) => {
            g.len() == w.len() && g.iter().zip(w).all(|(a, b)| contains(a, b))
        }
        _ => got == want,
    }
}

#[tokio::test]
async fn the_offline_plan_is_the_live_sequence_call_for_call() {
    let cluster = FakeCluster::new();
    let run = live_run(ScanMode::Distroless);
    let (planned, placeholders) = keyhole_rbac::plan(&run, anchor(&run)).unwrap();
    assert!(cluster.calls().is_empty(), "planning sends nothing");
    let (r, _) = applied(&cluster, &run).await;
    let real = r.unwrap();
    let posts: Vec<String> = cluster
        .calls()
        .iter()
        .filter(|c| c.method == "POST")
        .map(|c| c.path.clone())
        .collect();
    let planned_paths: Vec<String> = planned.iter().map(|p| p.path.clone()).collect();
    assert_eq!(posts, planned_paths);
    assert_eq!(
        planned.iter().map(|p| p.kind).collect::<Vec<_>>(),
        [
            ObjectKind::ServiceAccount,
            ObjectKind::Secret,
            ObjectKind::Role,
            ObjectKind::RoleBinding
        ]
    );
    // Each planned body, its placeholder uids replaced by the real ones, is what was stored.
    for p in &planned {
        let text = p
            .body
            .to_string()
            .replace(&placeholders.service_account_uid, &real.service_account_uid)
            .replace(&placeholders.anchor_uid, &real.anchor_uid);
        let want: serde_json::Value = serde_json::from_str(&text).unwrap();
        let name = want["metadata"]["name"].as_str().unwrap();
        let stored = match p.kind {
            ObjectKind::ServiceAccount => {
                serde_json::to_value(cluster.object::<ServiceAccount>("prod", name))
            }
            ObjectKind::Secret => serde_json::to_value(cluster.object::<Secret>("prod", name)),
            ObjectKind::Role => serde_json::to_value(cluster.object::<Role>("prod", name)),
            ObjectKind::RoleBinding => serde_json::to_value(
                cluster.object::<k8s_openapi::api::rbac::v1::RoleBinding>("prod", name),
            ),
            other => panic!("{other:?} is not one of a run's access objects"),
        }
        .unwrap();
        assert!(
            contains(&stored, &want),
            "{:?}: planned {want} but stored {stored}",
            p.kind
        );
    }
    assert!(
        placeholders
            .service_account_uid
            .starts_with("<uid of ServiceAccount")
    );
}

#[tokio::test]
async fn an_auto_run_is_refused_before_anything_is_created() {
    let cluster = FakeCluster::new();
    let run = live_run(ScanMode::Auto);
    assert!(matches!(
        keyhole_rbac::plan(&run, anchor(&run)),
        Err(RbacError::UnresolvedMode)
    ));
    let (r, events) = applied(&cluster, &run).await;
    assert!(matches!(r, Err(RbacError::UnresolvedMode)), "{r:?}");
    assert!(events.is_empty() && cluster.calls().is_empty());
}
