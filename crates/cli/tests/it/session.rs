//! `keyhole access` in-process against the fake: the happy path call by call, the command's
//! exit code passed through, a panic in the command phase, and a dead server during teardown
//! (exit 4, then the reaper).

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use keyhole_audit::Event;
use keyhole_cleanup::{Ending, ReapScope, reap};
use keyhole_cli::session::{
    EXIT_CLEANUP_INCOMPLETE, EXIT_INTERNAL_ERROR, EXIT_SETUP_FAILED, ScopedClients,
};
use keyhole_core::ScanMode;
use keyhole_credentials::ScopedToken;
use keyhole_testkit::{Fault, FaultRule};
use kube::api::{Api, PostParams};

use crate::support::{
    FakeScoped, NS, audited_objects, call_shapes, clean_ending, cluster, event_names, fast_policy,
    session, session_as,
};

/// The calls of a whole standard-mode session, in order.
pub(crate) const HAPPY_CALLS: &[&str] = &[
    "user POST selfsubjectreviews",
    "user GET pods",
    "user GET networkpolicies",
    "user GET rolebindings",
    "user GET roles",
    "user GET secrets",
    "user GET serviceaccounts",
    "user POST serviceaccounts",
    "user POST secrets",
    "user POST roles",
    "user POST rolebindings",
    "user POST serviceaccounts/token",
    "scoped POST selfsubjectrulesreviews",
    "scoped POST selfsubjectrulesreviews",
    "user DELETE rolebindings",
    "user DELETE roles",
    "user DELETE secrets",
    "user DELETE serviceaccounts",
    "user GET rolebindings",
    "user GET roles",
    "user GET secrets",
    "user GET serviceaccounts",
];

/// Proves to the shell that it got a readable kubeconfig naming the cluster CA and the run's
/// namespace (in-process the server in it is not reachable; the HTTPS tests use it for real).
const CHECK_KUBECONFIG: &str = r#"test -r "$KUBECONFIG" && grep -q certificate-authority-data "$KUBECONFIG" && grep -q '"namespace": "prod"' "$KUBECONFIG" && case "$KUBECONFIG" in /dev/fd/*) exit 0;; *) exit 9;; esac"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn happy_path_creates_in_order_verifies_runs_the_command_and_removes_everything() {
    let cluster = cluster();
    let scoped = FakeScoped::new(&cluster);
    let ran = session_as(
        cluster.client_admin(),
        &cluster,
        ScanMode::Standard,
        &["sh", "-c", CHECK_KUBECONFIG],
        fast_policy(),
        scoped.clone(),
    )
    .await;
    let o = &ran.outcome;
    assert_eq!(
        (o.exit_code, &o.ending, o.error.is_none()),
        (0, &Ending::Completed, true)
    );
    let access = o.access.as_ref().expect("least privilege was verified");
    assert_eq!(access.api_calls, 2);
    assert!(
        access
            .checked
            .iter()
            .all(|c| c.allowed == c.expected_allowed)
    );
    assert_eq!(
        access.checked.iter().filter(|c| c.expected_allowed).count(),
        3,
        "get pod, get and create pods/exec"
    );
    assert!(o.cleanup.is_clean(), "{:?}", o.cleanup);
    assert_eq!(call_shapes(&cluster.calls()), HAPPY_CALLS);
    let name = ran.run.object_name().to_string();
    let calls = cluster.calls();
    assert!(calls[7..=10].iter().all(|c| c.status == Some(201)));
    assert!(
        calls[11]
            .path
            .ends_with(&format!("/serviceaccounts/{name}/token"))
    );
    assert!(
        cluster.managed_objects().is_empty(),
        "{:?}",
        cluster.managed_objects()
    );

    // The audit log: who, what was created (in order), the token's expiry, every check, what
    // was deleted, a clean verification and the exit code; the chain verified on reading.
    let names = event_names(&ran.records);
    let checks = access.checked.len();
    let mut expected = vec!["run_started".to_string()];
    expected.extend(std::iter::repeat_n("object_created".to_string(), 4));
    expected.push("token_issued".into());
    expected.extend(std::iter::repeat_n("access_verified".to_string(), checks));
    expected.extend(std::iter::repeat_n("object_deleted".to_string(), 4));
    expected.extend(["cleanup_verified".to_string(), "run_ended".to_string()]);
    assert_eq!(names, expected);
    match &ran.records[0].event {
        Event::RunStarted {
            identity, target, ..
        } => assert_eq!(
            (identity.as_str(), target.as_str()),
            ("kubernetes-admin", "prod/web-0")
        ),
        e => panic!("{e:?}"),
    }
    let created = audited_objects(&ran.records, true);
    assert_eq!(created, audited_objects(&ran.records, false));
    assert_eq!(
        created,
        [
            format!("Role {name}"),
            format!("RoleBinding {name}"),
            format!("Secret {name}-anchor"),
            format!("ServiceAccount {name}"),
        ]
    );
    assert_eq!(
        clean_ending(&ran.records),
        (0, "command exited with 0".into())
    );

    // The token died with the run's ServiceAccount and anchor.
    let token = scoped.tokens.lock().unwrap()[0].clone();
    let whoami: Api<k8s_openapi::api::authentication::v1::SelfSubjectReview> =
        Api::all(cluster.client_for_token(&token));
    let e = whoami
        .create(&PostParams::default(), &Default::default())
        .await
        .unwrap_err();
    assert!(matches!(e, kube::Error::Api(s) if s.code == 401), "revoked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_commands_exit_code_is_passed_through() {
    let cluster = cluster();
    let ran = session(&cluster, &["sh", "-c", "exit 7"]).await;
    assert_eq!(ran.outcome.exit_code, 7);
    assert_eq!(clean_ending(&ran.records).0, 7);
    // A command killed by a signal reports 128 + the signal, as a shell would.
    let ran = session(&cluster, &["sh", "-c", "kill -TERM $$"]).await;
    assert_eq!(ran.outcome.exit_code, 143);
    // A command that cannot start is a setup failure, cleaned up like any other.
    let ran = session(&cluster, &["/nonexistent/keyhole-test-command"]).await;
    assert_eq!(ran.outcome.exit_code, EXIT_SETUP_FAILED);
    assert!(
        ran.outcome
            .error
            .as_ref()
            .unwrap()
            .to_string()
            .contains("cannot run"),
        "{:?}",
        ran.outcome.error
    );
    assert!(cluster.managed_objects().is_empty());
}

/// Scoped clients whose construction panics: a bug inside the command phase.
struct Panicking;

impl ScopedClients for Panicking {
    fn client(&self, _token: &ScopedToken) -> Result<kube::Client, keyhole_cli::SessionError> {
        panic!("scoped client exploded")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_the_command_phase_still_removes_everything() {
    let cluster = cluster();
    let ran = session_as(
        cluster.client_admin(),
        &cluster,
        ScanMode::Standard,
        &["true"],
        fast_policy(),
        Arc::new(Panicking),
    )
    .await;
    let o = &ran.outcome;
    assert_eq!(o.exit_code, EXIT_INTERNAL_ERROR);
    assert_eq!(o.ending, Ending::Panicked("scoped client exploded".into()));
    assert!(o.cleanup.is_clean(), "{:?}", o.cleanup);
    assert!(cluster.managed_objects().is_empty());
    let (code, text) = clean_ending(&ran.records);
    assert_eq!(code, EXIT_INTERNAL_ERROR);
    assert!(
        text.contains("panic") && text.contains("scoped client exploded"),
        "{text}"
    );
    assert_eq!(audited_objects(&ran.records, false).len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_server_during_teardown_exits_4_and_the_reaper_finishes_after_expiry() {
    let cluster = cluster();
    // Every DELETE and every GET of an object fails from the first DELETE on.
    cluster
        .faults()
        .fail_matching(FaultRule::new(Fault::Status(503)).method("DELETE"));
    cluster.faults().fail_matching(
        FaultRule::new(Fault::DropConnection)
            .method("GET")
            .path("/api*/namespaces/prod/*/keyhole-*"),
    );
    let ran = session(&cluster, &["true"]).await;
    let o = &ran.outcome;
    assert_eq!(o.exit_code, EXIT_CLEANUP_INCOMPLETE);
    assert_eq!(o.cleanup.remaining.len(), 4, "{:?}", o.cleanup);
    // The audit log names what is left.
    let n = ran.records.len();
    match &ran.records[n - 2].event {
        Event::CleanupVerified { remaining } => assert_eq!(remaining.len(), 4),
        e => panic!("{e:?}"),
    }
    assert_eq!(cluster.managed_objects().len(), 4);
    // The server comes back; `keyhole reap` as of after the expiry removes everything.
    cluster.faults().clear();
    let admin = cluster.client_admin();
    let scope = ReapScope::Namespace(NS.into());
    let now = reap(&admin, &scope, Timestamp::now(), false, &fast_policy()).await;
    assert!(now.selected.is_empty(), "not expired yet: {now:?}");
    let after = ran.run.expiry().expires_at() + SignedDuration::from_secs(1);
    let report = reap(&admin, &scope, after, false, &fast_policy()).await;
    assert_eq!(report.selected.len(), 4);
    assert!(report.remaining.is_empty());
    assert!(cluster.managed_objects().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_run_reaps_what_an_earlier_one_left_once_it_expired() {
    let cluster = cluster();
    cluster
        .faults()
        .fail_matching(FaultRule::new(Fault::Status(500)).method("DELETE"));
    let first = session(&cluster, &["true"]).await;
    assert_eq!(first.outcome.exit_code, EXIT_CLEANUP_INCOMPLETE);
    cluster.faults().clear();
    assert_eq!(cluster.managed_objects().len(), 4);
    // The session reaps as of the local clock: instead of waiting ten minutes, the leftovers'
    // expires-at is moved into the past.
    rewrite_expiry(&cluster, Timestamp::now() - SignedDuration::from_secs(1)).await;
    let second = session(&cluster, &["true"]).await;
    assert_eq!(second.outcome.exit_code, 0);
    assert!(cluster.managed_objects().is_empty());
    let reaped = second
        .records
        .iter()
        .take_while(|r| !matches!(r.event, Event::ObjectCreated(_)))
        .filter(|r| matches!(r.event, Event::ObjectDeleted(_)))
        .count();
    assert_eq!(reaped, 4, "the second run's log records the reaping");
}

/// Sets the expires-at annotation of every managed object to `at` (as if time had passed).
async fn rewrite_expiry(cluster: &keyhole_testkit::FakeCluster, at: Timestamp) {
    use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
    use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
    use kube::api::{Patch, PatchParams};
    let admin = cluster.client_admin();
    let patch = Patch::Merge(serde_json::json!({
        "metadata": {"annotations": {keyhole_core::EXPIRES_AT_ANNOTATION: at.to_string()}}
    }));
    let pp = PatchParams::default();
    let objects = cluster.managed_objects();
    assert!(!objects.is_empty(), "there are objects to expire");
    for o in objects {
        let ns = o.namespace.as_deref().unwrap();
        let r = match o.kind.as_str() {
            "ServiceAccount" => Api::<ServiceAccount>::namespaced(admin.clone(), ns)
                .patch(&o.name, &pp, &patch)
                .await
                .map(drop),
            "Secret" => Api::<Secret>::namespaced(admin.clone(), ns)
                .patch(&o.name, &pp, &patch)
                .await
                .map(drop),
            "Role" => Api::<Role>::namespaced(admin.clone(), ns)
                .patch(&o.name, &pp, &patch)
                .await
                .map(drop),
            "RoleBinding" => Api::<RoleBinding>::namespaced(admin.clone(), ns)
                .patch(&o.name, &pp, &patch)
                .await
                .map(drop),
            k => panic!("unexpected kind {k}"),
        };
        r.unwrap();
    }
}

/// A user allowed to create, read and delete exactly the kinds a standard run creates (and to
/// mint its token), but to list nothing: the reaper's lists are refused, which is a warning,
/// and the run's own teardown (delete, then read back by name) never needs a list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_who_may_not_list_runs_and_tears_down_cleanly() {
    let cluster = cluster();
    let rbac = "rbac.authorization.k8s.io";
    let rule = |group: &str, resources: &[&str], verbs: &[&str]| serde_json::json!({"apiGroups": [group], "resources": resources, "verbs": verbs});
    let cud = ["create", "get", "delete"];
    let role: k8s_openapi::api::rbac::v1::Role = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "deployer", "namespace": NS},
        "rules": [
            rule("", &["serviceaccounts", "secrets"], &cud),
            rule(rbac, &["roles", "rolebindings"], &cud),
            rule("", &["serviceaccounts/token"], &["create"]),
        ],
    }))
    .unwrap();
    cluster.insert(&role).unwrap();
    let binding: k8s_openapi::api::rbac::v1::RoleBinding =
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "deployer", "namespace": NS},
            "roleRef": {"apiGroup": rbac, "kind": "Role", "name": "deployer"},
            "subjects": [{"kind": "ServiceAccount", "name": "deployer", "namespace": NS}],
        }))
        .unwrap();
    cluster.insert(&binding).unwrap();
    let token = cluster
        .service_account_with_token(NS, "deployer", std::time::Duration::from_secs(3600))
        .unwrap();
    let user = cluster.client_for_token(&token);
    let ran = session_as(
        user,
        &cluster,
        ScanMode::Standard,
        &["true"],
        fast_policy(),
        FakeScoped::new(&cluster),
    )
    .await;
    let o = &ran.outcome;
    assert!(
        o.exit_code == 0 && o.ending == Ending::Completed && o.error.is_none(),
        "{o:?}"
    );
    assert!(o.cleanup.is_clean(), "{:?}", o.cleanup);
    assert!(cluster.managed_objects().is_empty());
    let (code, _) = clean_ending(&ran.records);
    assert_eq!(code, 0);
    let deployer = keyhole_testkit::Identity::ServiceAccount {
        namespace: NS.into(),
        name: "deployer".into(),
    };
    let calls: Vec<(String, String, Option<u16>)> = cluster
        .calls()
        .iter()
        .filter(|c| c.identity == deployer)
        .map(|c| (c.verb.clone(), c.path.clone(), c.status))
        .collect();
    let lists: Vec<_> = calls.iter().filter(|(v, _, _)| v == "list").collect();
    assert_eq!(lists.len(), 6, "one refused list per kind: {calls:?}");
    assert!(lists.iter().all(|(_, _, s)| *s == Some(403)), "{calls:?}");
    let first_create = calls
        .iter()
        .position(|(v, p, _)| v == "create" && p.ends_with("/serviceaccounts"))
        .unwrap();
    let last_list = calls.iter().rposition(|(v, _, _)| v == "list").unwrap();
    assert!(
        last_list < first_create,
        "only the reaper lists, before the run creates anything: {calls:?}"
    );
    let teardown: Vec<_> = calls[first_create..]
        .iter()
        .filter(|(v, _, _)| v == "delete" || v == "get")
        .collect();
    assert_eq!(
        teardown.iter().filter(|(v, _, _)| v == "delete").count(),
        4,
        "{calls:?}"
    );
    assert!(
        teardown
            .iter()
            .all(|(_, _, s)| matches!(s, Some(200 | 202 | 404))),
        "teardown deleted and read back the four objects: {calls:?}"
    );
}
