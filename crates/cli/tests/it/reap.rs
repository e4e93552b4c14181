//! `keyhole reap` as a user who may not list every kind: what it could list is reaped, each
//! kind it could not is a warning on stderr, and the exit code says the reap is incomplete.

use k8s_openapi::api::core::v1::Secret;
use keyhole_cli::session::EXIT_CLEANUP_INCOMPLETE;
use keyhole_core::{EXPIRES_AT_ANNOTATION, MANAGED_BY_LABEL, MANAGED_BY_VALUE, RUN_ID_LABEL};

use crate::support::{NS, Served, cluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reap_without_list_rights_warns_per_kind_and_exits_4() {
    let cluster = cluster();
    // An expired Secret of an earlier run: listable, so reaped.
    let expired: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {
            "name": "keyhole-earlier0001-anchor",
            "namespace": NS,
            "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE, RUN_ID_LABEL: "earlier0001"},
            "annotations": {EXPIRES_AT_ANNOTATION: "2000-01-01T00:00:00Z"},
        }
    }))
    .unwrap();
    cluster.insert(&expired).unwrap();
    let role: k8s_openapi::api::rbac::v1::Role = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "secrets-only", "namespace": NS},
        "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["list", "get", "delete"]}],
    }))
    .unwrap();
    cluster.insert(&role).unwrap();
    let binding: k8s_openapi::api::rbac::v1::RoleBinding =
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "secrets-only", "namespace": NS},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "secrets-only"},
            "subjects": [{"kind": "ServiceAccount", "name": "reaper", "namespace": NS}],
        }))
        .unwrap();
    cluster.insert(&binding).unwrap();
    let token = cluster
        .service_account_with_token(NS, "reaper", std::time::Duration::from_secs(3600))
        .unwrap();
    let served = Served::with("reap-restricted", cluster, |s| {
        s.server.kubeconfig_yaml(&token)
    })
    .await;
    let (code, stdout, stderr) = served.reap(jiff::Timestamp::now()).await;
    assert_eq!(code, EXIT_CLEANUP_INCOMPLETE, "{stdout}{stderr}");
    assert!(
        stdout.contains("delete Secret prod/keyhole-earlier0001-anchor"),
        "{stdout}"
    );
    assert!(
        served
            .cluster
            .object::<Secret>(NS, "keyhole-earlier0001-anchor")
            .is_none()
    );
    for kind in [
        "Pod",
        "NetworkPolicy",
        "RoleBinding",
        "Role",
        "ServiceAccount",
    ] {
        assert!(
            stderr.contains(&format!(
                "warning: could not list keyhole-managed {kind} in namespace prod"
            )),
            "{kind}: {stderr}"
        );
    }
    assert!(!stderr.contains("managed Secret"), "{stderr}");
}
