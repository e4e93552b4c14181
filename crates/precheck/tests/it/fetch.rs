//! `fetch` against the fake API server: the pod as the user reads it, `None` for a missing
//! pod, an error that says what to do when reading is refused, and never a write call.

use keyhole_precheck::{
    CheckId, Decision, Outcome, Policy, PrecheckError, evaluate, evaluate_missing, fetch,
};
use keyhole_testkit::FakeCluster;

#[tokio::test]
async fn reads_the_pod_with_one_get_and_writes_nothing() {
    let cluster = FakeCluster::new();
    cluster.add_running_pod("shop", "web", &["app"]).unwrap();
    cluster.clear_calls();
    let pod = fetch(cluster.client_admin(), "shop", "web")
        .await
        .unwrap()
        .expect("the pod exists");
    let v = evaluate(&pod, "app", &Policy::builtin());
    assert_eq!(
        v.get(CheckId::TargetRunning).unwrap().outcome,
        Outcome::Passed
    );
    assert_eq!(
        v.get(CheckId::ContainerReady).unwrap().outcome,
        Outcome::Passed
    );
    assert!(v.target.uid.is_some() && v.target.resource_version.is_some());

    let missing = fetch(cluster.client_admin(), "shop", "gone").await.unwrap();
    assert!(missing.is_none());
    let v = evaluate_missing("shop", "gone", "app", &Policy::builtin());
    assert_eq!(v.decision, Decision::Abort);

    let calls = cluster.calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    for c in &calls {
        assert_eq!(
            (c.method.as_str(), c.verb.as_str()),
            ("GET", "get"),
            "{c:?}"
        );
    }
    assert_eq!(calls[0].path, "/api/v1/namespaces/shop/pods/web");
}

#[tokio::test]
async fn a_refused_read_is_an_error_not_a_missing_pod() {
    let cluster = FakeCluster::new();
    cluster.add_running_pod("shop", "web", &["app"]).unwrap();
    let err = fetch(cluster.client_anonymous(), "shop", "web")
        .await
        .unwrap_err();
    assert!(matches!(err, PrecheckError::Fetch { .. }), "{err:?}");
    assert!(err.to_string().contains("get pods"), "{err}");
}
