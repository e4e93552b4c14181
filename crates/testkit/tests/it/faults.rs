//! Fault injection of each kind, latency on paused time, and the call recorder.

use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use keyhole_testkit::{FakeCluster, Fault, FaultRule, Identity};
use kube::api::{Api, ListParams, PostParams};

use crate::{configmap, status};

#[tokio::test]
async fn status_faults_by_call_index_leave_state_untouched() {
    let cluster = FakeCluster::new();
    let cms: Api<ConfigMap> = Api::namespaced(cluster.client_admin(), "default");
    let pp = PostParams::default();
    for (i, code, reason) in [
        (0, 500, "InternalError"),
        (1, 403, "Forbidden"),
        (2, 409, "Conflict"),
    ] {
        cluster.faults().fail_call(i, Fault::Status(code));
        let e = status(cms.create(&pp, &configmap("x", &[])).await);
        assert_eq!((e.code, e.reason.as_str()), (code, reason));
    }
    assert!(
        cluster.object::<ConfigMap>("default", "x").is_none(),
        "a faulted call changes nothing"
    );
    cms.create(&pp, &configmap("x", &[])).await.unwrap();
    let calls = cluster.calls();
    assert_eq!(
        calls.iter().map(|c| c.status).collect::<Vec<_>>(),
        [Some(500), Some(403), Some(409), Some(201)]
    );
    assert_eq!(calls[0].fault, Some(Fault::Status(500)));
    assert_eq!(calls[3].fault, None);
}

#[tokio::test]
async fn pattern_faults_match_method_and_path_and_can_be_counted() {
    let cluster = FakeCluster::new();
    let cms: Api<ConfigMap> = Api::namespaced(cluster.client_admin(), "default");
    cluster.faults().fail_matching(
        FaultRule::new(Fault::Status(503))
            .method("get")
            .path("/api/v1/namespaces/*/configmaps/*")
            .times(2),
    );
    assert_eq!(status(cms.get("kube-root-ca.crt").await).code, 503);
    assert!(
        cms.list(&ListParams::default()).await.is_ok(),
        "list is a GET of another path"
    );
    assert_eq!(status(cms.get("kube-root-ca.crt").await).code, 503);
    assert!(
        cms.get("kube-root-ca.crt").await.is_ok(),
        "the rule fired twice and is spent"
    );
    cluster
        .faults()
        .fail_matching(FaultRule::new(Fault::Status(500)));
    assert_eq!(status(cms.list(&ListParams::default()).await).code, 500);
    cluster.faults().clear();
    assert!(cms.list(&ListParams::default()).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_hang_pends_until_the_client_times_out() {
    let cluster = FakeCluster::new();
    let cms: Api<ConfigMap> = Api::namespaced(cluster.client_admin(), "default");
    cluster.faults().fail_call(0, Fault::Hang);
    let r = tokio::time::timeout(Duration::from_secs(30), cms.get("kube-root-ca.crt")).await;
    assert!(r.is_err(), "the call never answered");
    assert!(cms.get("kube-root-ca.crt").await.is_ok());
    assert_eq!(cluster.calls()[0].status, None);
    assert_eq!(cluster.calls()[0].fault, Some(Fault::Hang));
}

#[tokio::test]
async fn dropped_connections_in_process() {
    let cluster = FakeCluster::new();
    let cms: Api<ConfigMap> = Api::namespaced(cluster.client_admin(), "default");
    let pp = PostParams::default();
    cluster.faults().fail_call(0, Fault::DropConnection);
    let e = cms.create(&pp, &configmap("x", &[])).await.unwrap_err();
    assert!(matches!(e, kube::Error::Service(_)), "{e:?}");
    assert!(e.to_string().contains("connection dropped"), "{e}");
    assert!(cluster.object::<ConfigMap>("default", "x").is_none());

    // After-apply: the create happened, the client cannot know.
    cluster.faults().fail_call(1, Fault::DropAfterApply);
    assert!(cms.create(&pp, &configmap("y", &[])).await.is_err());
    assert!(cluster.object::<ConfigMap>("default", "y").is_some());
    assert_eq!(
        status(cms.create(&pp, &configmap("y", &[])).await).code,
        409
    );
}

#[tokio::test(start_paused = true)]
async fn latency_applies_to_every_call() {
    let cluster = FakeCluster::new();
    let cms: Api<ConfigMap> = Api::namespaced(cluster.client_admin(), "default");
    cluster.faults().set_latency(Duration::from_millis(20));
    let start = tokio::time::Instant::now();
    for _ in 0..5 {
        cms.get("kube-root-ca.crt").await.unwrap();
    }
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_millis(100) && elapsed < Duration::from_millis(200),
        "{elapsed:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_delay_slows_only_the_calls_it_matches_then_answers_them() {
    let cluster = FakeCluster::new();
    let cms: Api<ConfigMap> = Api::namespaced(cluster.client_admin(), "default");
    let pp = PostParams::default();
    cluster.faults().fail_matching(
        FaultRule::new(Fault::Delay(Duration::from_secs(7)))
            .method("post")
            .times(1),
    );
    let start = tokio::time::Instant::now();
    cms.get("kube-root-ca.crt").await.unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "a GET is not delayed"
    );
    let start = tokio::time::Instant::now();
    cms.create(&pp, &configmap("x", &[])).await.unwrap();
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_secs(7) && elapsed < Duration::from_secs(8),
        "{elapsed:?}"
    );
    assert!(
        cluster.object::<ConfigMap>("default", "x").is_some(),
        "then performed"
    );
    let calls = cluster.calls();
    assert_eq!(calls[1].status, Some(201));
    assert_eq!(calls[1].fault, Some(Fault::Delay(Duration::from_secs(7))));
    assert_eq!(calls[0].fault, None);
}

#[tokio::test]
async fn the_recorder_keeps_method_path_query_identity_status_and_time() {
    let cluster = FakeCluster::new();
    let token = cluster
        .service_account_with_token("default", "sa", Duration::from_secs(600))
        .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(cluster.client_admin(), "default");
    cms.list(&ListParams::default().labels("a=b"))
        .await
        .unwrap();
    cluster.clock().advance(Duration::from_secs(5));
    let scoped: Api<ConfigMap> = Api::namespaced(cluster.client_for_token(&token), "default");
    assert_eq!(status(scoped.get("kube-root-ca.crt").await).code, 403);
    let calls = cluster.calls();
    assert_eq!(calls.len(), 2);
    let (a, b) = (&calls[0], &calls[1]);
    assert_eq!(
        (a.index, a.method.as_str(), a.path.as_str()),
        (0, "GET", "/api/v1/namespaces/default/configmaps")
    );
    assert!(a.query.contains("labelSelector=a%3Db"), "{}", a.query);
    assert_eq!(
        (a.verb.as_str(), a.identity.clone(), a.status),
        ("list", Identity::Admin, Some(200))
    );
    assert_eq!(
        b.identity,
        Identity::ServiceAccount {
            namespace: "default".into(),
            name: "sa".into()
        }
    );
    assert_eq!((b.verb.as_str(), b.status), ("get", Some(403)));
    assert_eq!(b.at.as_second() - a.at.as_second(), 5);
    cluster.clear_calls();
    assert!(cluster.calls().is_empty());
    cms.list(&ListParams::default()).await.unwrap();
    assert_eq!(
        cluster.calls()[0].index,
        2,
        "indices keep counting after a clear"
    );
}
