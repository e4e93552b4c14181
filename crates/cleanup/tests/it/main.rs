//! Cleanup against the fake API server: teardown order and uid preconditions, verification
//! while objects terminate, bounded behaviour on a dead server, creations whose answer was
//! lost, `run_guarded`'s endings (expiry on paused time), and the reaper's selection.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding, RoleRef};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use keyhole_cleanup::{
    CleanupAction, Created, Ending, ObjectKind, ReapScope, Registry, RetryPolicy, reap,
    run_guarded, teardown,
};
use keyhole_core::{EXPIRES_AT_ANNOTATION, MANAGED_BY_LABEL, MANAGED_BY_VALUE, RUN_ID_LABEL};
use keyhole_testkit::{FakeCluster, Fault, FaultRule, RecordedCall};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

const NS: &str = "prod";

/// Short enough that every test runs in milliseconds even on real time.
fn policy() -> RetryPolicy {
    RetryPolicy {
        attempts: 4,
        first_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        call_timeout: Duration::from_millis(200),
    }
}

/// Metadata of a keyhole-managed object of run `run`, expiring at `expires` (none: no
/// annotation).
fn managed(name: &str, run: &str, expires: Option<Timestamp>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some(NS.into()),
        labels: Some(BTreeMap::from([
            (MANAGED_BY_LABEL.to_string(), MANAGED_BY_VALUE.to_string()),
            (RUN_ID_LABEL.to_string(), run.to_string()),
        ])),
        annotations: expires
            .map(|t| BTreeMap::from([(EXPIRES_AT_ANNOTATION.to_string(), t.to_string())])),
        ..ObjectMeta::default()
    }
}

fn created(kind: ObjectKind, name: &str, uid: Option<String>) -> Created {
    Created {
        kind,
        namespace: NS.into(),
        name: name.into(),
        uid,
    }
}

/// Creates a run's four objects (as the user would) and registers them in creation order.
fn seed_run(cluster: &FakeCluster, run: &str, expires: Option<Timestamp>) -> Registry {
    cluster.create_namespace(NS);
    let name = format!("keyhole-{run}");
    let registry = Registry::new();
    let sa = cluster
        .insert(&ServiceAccount {
            metadata: managed(&name, run, expires),
            ..ServiceAccount::default()
        })
        .unwrap();
    registry.register(created(
        ObjectKind::ServiceAccount,
        &name,
        sa.metadata.uid.clone(),
    ));
    let s = cluster
        .insert(&Secret {
            metadata: managed(&format!("{name}-anchor"), run, expires),
            ..Secret::default()
        })
        .unwrap();
    registry.register(created(
        ObjectKind::Secret,
        &format!("{name}-anchor"),
        s.metadata.uid,
    ));
    let r = cluster
        .insert(&Role {
            metadata: managed(&name, run, expires),
            rules: Some(vec![]),
        })
        .unwrap();
    registry.register(created(ObjectKind::Role, &name, r.metadata.uid));
    let b = cluster
        .insert(&RoleBinding {
            metadata: managed(&name, run, expires),
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".to_string().into(),
                kind: "Role".into(),
                name: name.clone(),
            },
            subjects: None,
        })
        .unwrap();
    registry.register(created(ObjectKind::RoleBinding, &name, b.metadata.uid));
    registry
}

/// (method, last path segment kind) of each call, e.g. ("DELETE", "rolebindings").
fn shape(calls: &[RecordedCall]) -> Vec<(String, String)> {
    calls
        .iter()
        .map(|c| {
            let parts: Vec<&str> = c.path.split('/').collect();
            (c.method.clone(), parts[parts.len() - 2].to_string())
        })
        .collect()
}

#[tokio::test]
async fn teardown_deletes_in_reverse_order_with_uid_preconditions_then_verifies() {
    let cluster = FakeCluster::new();
    let registry = seed_run(&cluster, "run0000001", None);
    let report = teardown(&cluster.client_admin(), &registry, &policy()).await;
    assert!(report.is_clean(), "{report:?}");
    let order = ["rolebindings", "roles", "secrets", "serviceaccounts"];
    let expected: Vec<(String, String)> = ["DELETE", "GET"]
        .iter()
        .flat_map(|m| order.iter().map(|k| (m.to_string(), k.to_string())))
        .collect();
    assert_eq!(shape(&cluster.calls()), expected);
    let deleted: Vec<&Created> = report
        .actions
        .iter()
        .filter_map(|a| match a {
            CleanupAction::Deleted(o) => Some(o),
            _ => None,
        })
        .collect();
    assert_eq!(deleted.len(), 4, "{:?}", report.actions);
    assert!(
        cluster.managed_objects().is_empty(),
        "{:?}",
        cluster.managed_objects()
    );
    // One teardown per registry, whatever triggers it again.
    let again = teardown(&cluster.client_admin(), &registry, &policy()).await;
    assert!(again.already_done && again.actions.is_empty());
    assert_eq!(cluster.calls().len(), 8, "a second trigger made no call");
}

#[tokio::test]
async fn a_same_named_replacement_is_left_alone() {
    let cluster = FakeCluster::new();
    let registry = seed_run(&cluster, "run0000002", None);
    // Someone deletes our Secret and creates their own under the same name.
    assert!(cluster.remove::<Secret>(NS, "keyhole-run0000002-anchor"));
    let theirs = cluster
        .insert(&Secret {
            metadata: ObjectMeta {
                name: Some("keyhole-run0000002-anchor".into()),
                namespace: Some(NS.into()),
                ..ObjectMeta::default()
            },
            ..Secret::default()
        })
        .unwrap();
    let report = teardown(&cluster.client_admin(), &registry, &policy()).await;
    assert!(report.is_clean(), "{report:?}");
    assert!(
        report.actions.iter().any(|a| matches!(a,
            CleanupAction::Replaced(o) if o.kind == ObjectKind::Secret)),
        "{:?}",
        report.actions
    );
    let still = cluster
        .object::<Secret>(NS, "keyhole-run0000002-anchor")
        .expect("their Secret survives");
    assert_eq!(still.metadata.uid, theirs.metadata.uid);
}

#[tokio::test]
async fn a_conflict_on_our_own_object_is_retried_not_taken_for_a_replacement() {
    let cluster = FakeCluster::new();
    let registry = seed_run(&cluster, "run0000003", None);
    // The first DELETE (the RoleBinding) answers 409 although the uid matches.
    cluster.faults().fail_call(0, Fault::Status(409));
    let report = teardown(&cluster.client_admin(), &registry, &policy()).await;
    assert!(report.is_clean(), "{report:?}");
    assert!(
        report.actions.iter().any(|a| matches!(a,
            CleanupAction::Deleted(o) if o.kind == ObjectKind::RoleBinding)),
        "{:?}",
        report.actions
    );
    assert!(cluster.managed_objects().is_empty());
}

/// Waits (on paused time) until `n` GETs of secrets were made, then drops the finalizer.
async fn release_finalizer_after_gets(cluster: FakeCluster, n: usize) {
    loop {
        let gets = cluster
            .calls()
            .iter()
            .filter(|c| c.method == "GET" && c.path.contains("/secrets/"))
            .count();
        if gets >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let secrets: Api<Secret> = Api::namespaced(cluster.client_admin(), NS);
    secrets
        .patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
}

fn held_secret(cluster: &FakeCluster) -> Registry {
    cluster.create_namespace(NS);
    let mut meta = managed("held", "run0000004", None);
    meta.finalizers = Some(vec!["example.com/hold".into()]);
    let s = cluster
        .insert(&Secret {
            metadata: meta,
            ..Secret::default()
        })
        .unwrap();
    let registry = Registry::new();
    registry.register(created(ObjectKind::Secret, "held", s.metadata.uid));
    registry
}

#[tokio::test(start_paused = true)]
async fn verification_retries_while_an_object_is_terminating() {
    let cluster = FakeCluster::new();
    let registry = held_secret(&cluster);
    let controller = tokio::spawn(release_finalizer_after_gets(cluster.clone(), 2));
    let report = teardown(&cluster.client_admin(), &registry, &policy()).await;
    controller.await.unwrap();
    assert!(report.is_clean(), "{report:?}");
    let gets = cluster.calls().iter().filter(|c| c.method == "GET").count();
    assert!(gets >= 3, "verified gone only after retries: {gets} GETs");
    assert!(cluster.object::<Secret>(NS, "held").is_none());
}

#[tokio::test(start_paused = true)]
async fn an_object_that_never_goes_is_reported_after_bounded_retries() {
    let cluster = FakeCluster::new();
    let registry = held_secret(&cluster);
    let p = policy();
    let report = teardown(&cluster.client_admin(), &registry, &p).await;
    assert!(!report.is_clean());
    assert_eq!(report.remaining.len(), 1);
    assert!(
        matches!(report.actions.last(), Some(CleanupAction::StillPresent { detail, .. }) if detail == "terminating"),
        "{:?}",
        report.actions
    );
    let gets = cluster.calls().iter().filter(|c| c.method == "GET").count();
    assert_eq!(gets, p.attempts as usize);
}

#[tokio::test(start_paused = true)]
async fn a_dead_server_ends_teardown_in_bounded_time() {
    let p = policy();
    // Per call: at most the timeout; per object and phase: attempts calls and the delays.
    let per_phase = p.call_timeout * p.attempts + p.max_delay * (p.attempts - 1);
    for fault in [Fault::Hang, Fault::DropConnection, Fault::Status(500)] {
        let cluster = FakeCluster::new();
        let registry = seed_run(&cluster, "run0000005", None);
        cluster.faults().fail_matching(FaultRule::new(fault));
        let start = tokio::time::Instant::now();
        let report = teardown(&cluster.client_admin(), &registry, &p).await;
        let elapsed = start.elapsed();
        assert!(elapsed <= per_phase * 8, "{fault:?}: {elapsed:?}");
        assert_eq!(report.remaining.len(), 4, "{fault:?}: {report:?}");
        assert_eq!(
            report
                .actions
                .iter()
                .filter(|a| matches!(a, CleanupAction::DeleteFailed { .. }))
                .count(),
            4
        );
        assert_eq!(cluster.calls().len(), 8 * p.attempts as usize, "{fault:?}");
        // Nothing was deleted: a dead server is reported, not papered over.
        assert_eq!(cluster.managed_objects().len(), 4);
    }
}

#[tokio::test]
async fn creations_whose_answer_was_lost_are_found_by_name_and_run_label() {
    let cluster = FakeCluster::new();
    cluster.create_namespace(NS);
    let admin = cluster.client_admin();
    let registry = Registry::new();
    let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), NS);
    // 1. Applied, answer lost: ours by label, so deleted.
    registry.attempting(ObjectKind::ServiceAccount, NS, "lost", "run0000006");
    cluster.faults().fail_call(0, Fault::DropAfterApply);
    let sa = ServiceAccount {
        metadata: managed("lost", "run0000006", None),
        ..ServiceAccount::default()
    };
    assert!(sas.create(&PostParams::default(), &sa).await.is_err());
    // 2. Never applied: nothing to delete.
    registry.attempting(ObjectKind::Secret, NS, "never", "run0000006");
    // 3. The name is held by an object of another run: left alone.
    registry.attempting(ObjectKind::Role, NS, "taken", "run0000006");
    cluster
        .insert(&Role {
            metadata: managed("taken", "otherrun01", None),
            rules: None,
        })
        .unwrap();
    assert_eq!(registry.pending().len(), 3);
    assert!(registry.objects().is_empty());
    let report = teardown(&admin, &registry, &policy()).await;
    assert!(report.is_clean(), "{report:?}");
    let kinds = |f: fn(&CleanupAction) -> Option<&Created>| -> Vec<String> {
        report
            .actions
            .iter()
            .filter_map(f)
            .map(|o| o.name.clone())
            .collect()
    };
    assert_eq!(
        kinds(|a| match a {
            CleanupAction::Deleted(o) => Some(o),
            _ => None,
        }),
        ["lost"]
    );
    assert_eq!(
        kinds(|a| match a {
            CleanupAction::NeverCreated(o) => Some(o),
            _ => None,
        }),
        ["never"]
    );
    assert_eq!(
        kinds(|a| match a {
            CleanupAction::Replaced(o) => Some(o),
            _ => None,
        }),
        ["taken"]
    );
    assert!(cluster.object::<ServiceAccount>(NS, "lost").is_none());
    assert!(cluster.object::<Role>(NS, "taken").is_some());
}

#[tokio::test]
async fn a_confirmation_takes_the_place_of_its_attempt() {
    let registry = Registry::new();
    registry.attempting(ObjectKind::ServiceAccount, NS, "a", "r");
    registry.attempting(ObjectKind::Secret, NS, "b", "r");
    registry.register(created(ObjectKind::ServiceAccount, "a", Some("u1".into())));
    assert_eq!(
        registry.objects(),
        [created(ObjectKind::ServiceAccount, "a", Some("u1".into()))]
    );
    assert_eq!(registry.pending(), [created(ObjectKind::Secret, "b", None)]);
}

#[tokio::test(start_paused = true)]
async fn run_guarded_stops_the_work_at_expiry_and_tears_down() {
    let cluster = FakeCluster::new();
    let registry = seed_run(&cluster, "run0000007", None);
    let expires = Timestamp::now() + jiff::SignedDuration::from_secs(600);
    let start = tokio::time::Instant::now();
    let guarded = run_guarded(
        cluster.client_admin(),
        registry.clone(),
        expires,
        policy(),
        std::future::pending::<()>(),
    )
    .await
    .unwrap();
    assert_eq!(guarded.ending, Ending::Expired);
    assert!(guarded.value.is_none());
    assert!(guarded.cleanup.is_clean(), "{:?}", guarded.cleanup);
    assert!(registry.is_torn_down());
    assert!(cluster.managed_objects().is_empty());
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(598) && waited <= Duration::from_secs(601),
        "the timer fired at the expiry: {waited:?}"
    );
}

#[tokio::test]
async fn run_guarded_tears_down_after_completion_and_after_a_panic() {
    let cluster = FakeCluster::new();
    let expires = Timestamp::now() + jiff::SignedDuration::from_secs(600);
    let registry = seed_run(&cluster, "run0000008", None);
    let done = run_guarded(cluster.client_admin(), registry, expires, policy(), async {
        7
    })
    .await
    .unwrap();
    assert_eq!((done.value, done.ending), (Some(7), Ending::Completed));
    assert!(done.cleanup.is_clean() && cluster.managed_objects().is_empty());

    let registry = seed_run(&cluster, "run0000009", None);
    let panicked = run_guarded(cluster.client_admin(), registry, expires, policy(), async {
        panic!("boom in the command phase")
    })
    .await
    .unwrap();
    let value: Option<()> = panicked.value;
    assert!(value.is_none());
    assert_eq!(
        panicked.ending,
        Ending::Panicked("boom in the command phase".into())
    );
    assert!(panicked.cleanup.is_clean(), "{:?}", panicked.cleanup);
    assert!(cluster.managed_objects().is_empty());
}

/// The reaper's four cases in one namespace: expired, no expiry, orphaned, kept.
fn seed_reap_cases(cluster: &FakeCluster, now: Timestamp) {
    let past = now - jiff::SignedDuration::from_secs(60);
    let soon = now + jiff::SignedDuration::from_secs(3600);
    // Expired: a whole run whose expiry passed.
    seed_run(cluster, "expired001", Some(past));
    // Live run: kept (its expiry is in an hour, its ServiceAccount exists).
    seed_run(cluster, "liverun001", Some(soon));
    // Access without an end: selected whatever its run.
    cluster
        .insert(&Secret {
            metadata: managed("no-expiry", "liverun001", None),
            ..Secret::default()
        })
        .unwrap();
    // Orphan: a RoleBinding of a run whose ServiceAccount is gone, not yet expired.
    cluster
        .insert(&RoleBinding {
            metadata: managed("orphan", "goneRun001", Some(soon)),
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".to_string().into(),
                kind: "Role".into(),
                name: "orphan".into(),
            },
            subjects: None,
        })
        .unwrap();
    // Not keyhole's: never listed.
    cluster
        .insert(&Secret {
            metadata: ObjectMeta {
                name: Some("unmanaged".into()),
                namespace: Some(NS.into()),
                ..ObjectMeta::default()
            },
            ..Secret::default()
        })
        .unwrap();
}

fn names(selected: &[(Created, String)]) -> Vec<String> {
    let mut v: Vec<String> = selected
        .iter()
        .map(|(o, why)| {
            format!(
                "{} {}: {}",
                o.kind.as_str(),
                o.name,
                why.split(' ').next().unwrap_or("")
            )
        })
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn reap_selects_expired_endless_and_orphaned_objects_and_keeps_the_rest() {
    let cluster = FakeCluster::new();
    let now = cluster.clock().now();
    seed_reap_cases(&cluster, now);
    let admin = cluster.client_admin();
    let scope = ReapScope::Namespace(NS.into());

    let dry = reap(&admin, &scope, now, true, &policy()).await;
    assert!(dry.is_complete(), "the admin lists every kind: {dry:?}");
    assert_eq!(
        names(&dry.selected),
        [
            "Role keyhole-expired001: expired",
            "RoleBinding keyhole-expired001: expired",
            "RoleBinding orphan: orphan:",
            "Secret keyhole-expired001-anchor: expired",
            "Secret no-expiry: no",
            "ServiceAccount keyhole-expired001: expired",
        ]
    );
    assert_eq!(dry.kept, 4, "the live run's four objects");
    assert!(dry.actions.is_empty());
    assert!(
        cluster.calls().iter().all(|c| c.method == "GET"),
        "a dry run only lists"
    );
    assert_eq!(cluster.managed_objects().len(), 10);

    let done = reap(&admin, &scope, now, false, &policy()).await;
    assert_eq!(names(&done.selected), names(&dry.selected));
    assert!(done.remaining.is_empty(), "{done:?}");
    let mut left: Vec<String> = cluster
        .managed_objects()
        .iter()
        .map(|o| o.name.clone())
        .collect();
    left.sort();
    assert_eq!(
        left,
        [
            "keyhole-liverun001",
            "keyhole-liverun001",
            "keyhole-liverun001",
            "keyhole-liverun001-anchor"
        ]
    );
    assert!(cluster.object::<Secret>(NS, "unmanaged").is_some());
}

#[tokio::test]
async fn reap_as_of_a_later_time_takes_runs_that_will_have_expired() {
    let cluster = FakeCluster::new();
    let now = cluster.clock().now();
    seed_run(
        &cluster,
        "liverun002",
        Some(now + jiff::SignedDuration::from_secs(600)),
    );
    let admin = cluster.client_admin();
    let scope = ReapScope::All;
    let before = reap(&admin, &scope, now, false, &policy()).await;
    assert!(before.selected.is_empty() && before.kept == 4, "{before:?}");
    let later = now + jiff::SignedDuration::from_secs(601);
    let after = reap(&admin, &scope, later, false, &policy()).await;
    assert_eq!(after.selected.len(), 4);
    assert!(after.remaining.is_empty());
    assert!(cluster.managed_objects().is_empty());
}

#[tokio::test(start_paused = true)]
async fn reap_gives_up_on_a_hanging_server_after_one_kind_with_a_warning() {
    let cluster = FakeCluster::new();
    cluster.faults().fail_matching(FaultRule::new(Fault::Hang));
    let report = reap(
        &cluster.client_admin(),
        &ReapScope::Namespace(NS.into()),
        Timestamp::now(),
        false,
        &policy(),
    )
    .await;
    let unlisted: Vec<(ObjectKind, &str)> = report
        .unlisted
        .iter()
        .map(|u| (u.kind, u.reason.as_str()))
        .collect();
    assert_eq!(unlisted.len(), 6, "{report:?}");
    assert_eq!(unlisted[0].0, ObjectKind::Pod);
    assert!(unlisted[0].1.contains("no answer within"), "{unlisted:?}");
    for (kind, reason) in &unlisted[1..] {
        assert_eq!(
            *reason, "not tried: listing Pod failed before",
            "{kind:?} after a dead server"
        );
    }
    let text = report.unlisted[0].to_string();
    assert!(
        text.contains("could not list keyhole-managed Pod in namespace prod"),
        "{text}"
    );
    assert!(report.selected.is_empty() && report.actions.is_empty());
    // One kind's retries, not six kinds' worth.
    assert_eq!(cluster.calls().len(), policy().attempts as usize);
}

/// A "user" (a ServiceAccount with a token) bound in [`NS`] to a Role allowing `verbs` on
/// `resources` of each group (`(group, resource)`), and nothing else.
fn restricted_user(
    cluster: &FakeCluster,
    verbs: &[&str],
    resources: &[(&str, &str)],
) -> kube::Client {
    cluster.create_namespace(NS);
    let token = cluster
        .service_account_with_token(NS, "restricted", Duration::from_secs(3600))
        .unwrap();
    let role: Role = serde_json::from_value(json!({
        "metadata": {"name": "restricted", "namespace": NS},
        "rules": resources.iter().map(|(group, resource)| json!({
            "apiGroups": [group], "resources": [resource], "verbs": verbs,
        })).collect::<Vec<_>>(),
    }))
    .unwrap();
    cluster.insert(&role).unwrap();
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "restricted", "namespace": NS},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "restricted"},
        "subjects": [{"kind": "ServiceAccount", "name": "restricted", "namespace": NS}],
    }))
    .unwrap();
    cluster.insert(&binding).unwrap();
    cluster.client_for_token(&token)
}

#[tokio::test]
async fn reap_without_list_rights_warns_and_reaps_the_kinds_it_can_list() {
    let cluster = FakeCluster::new();
    let now = cluster.clock().now();
    seed_reap_cases(&cluster, now);
    // May list, read and delete Roles, RoleBindings and Secrets; may not list Pods,
    // NetworkPolicies or ServiceAccounts.
    let rbac = "rbac.authorization.k8s.io";
    let user = restricted_user(
        &cluster,
        &["list", "get", "delete"],
        &[(rbac, "roles"), (rbac, "rolebindings"), ("", "secrets")],
    );
    let scope = ReapScope::Namespace(NS.into());
    let report = reap(&user, &scope, now, false, &policy()).await;

    let unlisted: Vec<ObjectKind> = report.unlisted.iter().map(|u| u.kind).collect();
    assert_eq!(
        unlisted,
        [
            ObjectKind::Pod,
            ObjectKind::NetworkPolicy,
            ObjectKind::ServiceAccount
        ]
    );
    for u in &report.unlisted {
        assert!(u.reason.contains("forbidden"), "a refusal: {u}");
    }
    assert!(!report.is_complete());
    // Expiry still selects; the orphan RoleBinding is kept, since without the ServiceAccounts
    // a live run's objects would look orphaned too.
    assert_eq!(
        names(&report.selected),
        [
            "Role keyhole-expired001: expired",
            "RoleBinding keyhole-expired001: expired",
            "Secret keyhole-expired001-anchor: expired",
            "Secret no-expiry: no",
        ]
    );
    assert!(report.remaining.is_empty(), "{report:?}");
    let mut left: Vec<String> = cluster
        .managed_objects()
        .iter()
        .map(|o| format!("{} {}", o.kind, o.name))
        .collect();
    left.sort();
    assert_eq!(
        left,
        [
            "Role keyhole-liverun001",
            "RoleBinding keyhole-liverun001",
            "RoleBinding orphan",
            "Secret keyhole-liverun001-anchor",
            "ServiceAccount keyhole-expired001",
            "ServiceAccount keyhole-liverun001",
        ],
        "the live run is untouched; the expired ServiceAccount was never seen"
    );
}

#[tokio::test]
async fn reap_with_no_list_right_at_all_reports_every_kind_and_touches_nothing() {
    let cluster = FakeCluster::new();
    let now = cluster.clock().now();
    seed_reap_cases(&cluster, now);
    let user = restricted_user(&cluster, &["get", "delete"], &[("", "secrets")]);
    cluster.clear_calls();
    let report = reap(
        &user,
        &ReapScope::Namespace(NS.into()),
        now,
        false,
        &policy(),
    )
    .await;
    let unlisted: Vec<ObjectKind> = report.unlisted.iter().map(|u| u.kind).collect();
    assert_eq!(unlisted, ObjectKind::ALL);
    assert!(report.selected.is_empty() && report.actions.is_empty());
    // Refusals are not retried: one list per kind, nothing else.
    let calls: Vec<(String, String, Option<u16>)> = cluster
        .calls()
        .iter()
        .map(|c| {
            let plural = c.path.rsplit('/').next().unwrap_or("").to_string();
            (c.verb.clone(), plural, c.status)
        })
        .collect();
    let want: Vec<(String, String, Option<u16>)> = [
        "pods",
        "networkpolicies",
        "rolebindings",
        "roles",
        "secrets",
        "serviceaccounts",
    ]
    .iter()
    .map(|p| ("list".to_string(), p.to_string(), Some(403)))
    .collect();
    assert_eq!(calls, want);
    assert_eq!(cluster.managed_objects().len(), 10);
}
