//! Authorization of ServiceAccount requests by their bound Roles, the review APIs agreeing with
//! it, anonymous access, and the exec-verb server-version knob.

use std::time::Duration;

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
    SelfSubjectRulesReview, SelfSubjectRulesReviewSpec,
};
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::api::rbac::v1::Role;
use keyhole_testkit::{ExecResponse, FakeCluster};
use kube::api::{Api, AttachParams, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::{rule, sa_with_role, secret, status};

const TTL: Duration = Duration::from_secs(600);

/// A ServiceAccount holding exactly keyhole's standard-mode Role for pod `a`.
async fn pinned(cluster: &FakeCluster) -> kube::Client {
    cluster.add_running_pod("prod", "a", &["app"]).unwrap();
    cluster.add_running_pod("prod", "b", &["app"]).unwrap();
    let admin = cluster.client_admin();
    Api::<Secret>::namespaced(admin.clone(), "prod")
        .create(&PostParams::default(), &secret("s"))
        .await
        .unwrap();
    sa_with_role(
        &admin,
        "prod",
        "scan",
        vec![
            rule(&["pods"], &["get"], &["a"]),
            rule(&["pods/exec"], &["get", "create"], &["a"]),
        ],
    )
    .await;
    let token = cluster.issue_token("prod", "scan", TTL).unwrap();
    cluster.client_for_token(&token)
}

#[tokio::test]
async fn a_role_pinned_by_resource_names_allows_exactly_its_pod() {
    let cluster = FakeCluster::new();
    let scoped = pinned(&cluster).await;
    let pods: Api<Pod> = Api::namespaced(scoped.clone(), "prod");
    assert!(pods.get("a").await.is_ok());

    let e = status(pods.get("b").await);
    assert_eq!((e.code, e.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        e.message,
        "pods \"b\" is forbidden: User \"system:serviceaccount:prod:scan\" cannot get resource \"pods\" in API group \"\" in the namespace \"prod\""
    );
    let e = status(pods.list(&ListParams::default()).await);
    assert_eq!(
        e.message,
        "pods is forbidden: User \"system:serviceaccount:prod:scan\" cannot list resource \"pods\" in API group \"\" in the namespace \"prod\""
    );
    let e = status(
        Api::<Secret>::namespaced(scoped.clone(), "prod")
            .get("s")
            .await,
    );
    assert_eq!(e.code, 403);
    let e = status(pods.delete("a", &DeleteParams::default()).await);
    assert_eq!(e.code, 403);
    let e = status(
        pods.patch("a", &PatchParams::default(), &Patch::Merge(json!({})))
            .await,
    );
    assert_eq!(e.code, 403);
    let e = status(pods.get_status("a").await);
    assert!(
        e.message.contains("cannot get resource \"pods/status\""),
        "{}",
        e.message
    );
    let e = status(
        Api::<Pod>::namespaced(scoped.clone(), "default")
            .get("a")
            .await,
    );
    assert_eq!(e.code, 403, "the Role binds in its own namespace only");
    let e = status(
        Api::<Role>::namespaced(scoped, "prod")
            .create(&PostParams::default(), &Role::default())
            .await,
    );
    assert_eq!(e.code, 403);
    assert!(
        cluster.object::<Pod>("prod", "a").is_some(),
        "nothing was deleted"
    );
}

fn ssar(
    verb: &str,
    resource: &str,
    sub: Option<&str>,
    name: Option<&str>,
    ns: &str,
) -> SelfSubjectAccessReview {
    SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(ns.into()),
                verb: Some(verb.into()),
                group: Some(String::new()),
                resource: Some(resource.into()),
                subresource: sub.map(Into::into),
                name: name.map(Into::into),
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    }
}

#[tokio::test]
async fn ssar_answers_agree_with_what_the_requests_get() {
    let cluster = FakeCluster::new();
    let scoped = pinned(&cluster).await;
    let reviews: Api<SelfSubjectAccessReview> = Api::all(scoped.clone());
    let pods: Api<Pod> = Api::namespaced(scoped.clone(), "prod");
    let ask = |verb: &'static str, sub: Option<&'static str>, name: Option<&'static str>| {
        let reviews = reviews.clone();
        async move {
            let r = reviews
                .create(
                    &PostParams::default(),
                    &ssar(verb, "pods", sub, name, "prod"),
                )
                .await
                .unwrap();
            r.status.unwrap()
        }
    };
    let yes = ask("get", None, Some("a")).await;
    assert!(yes.allowed);
    assert_eq!(
        yes.reason.as_deref(),
        Some(
            "RBAC: allowed by RoleBinding \"scan/prod\" of Role \"scan\" to ServiceAccount \"scan/prod\""
        )
    );
    assert!(pods.get("a").await.is_ok());
    assert!(!ask("get", None, Some("b")).await.allowed);
    assert_eq!(status(pods.get("b").await).code, 403);
    assert!(!ask("list", None, None).await.allowed);
    assert_eq!(status(pods.list(&ListParams::default()).await).code, 403);
    assert!(!ask("delete", None, Some("a")).await.allowed);
    assert!(ask("create", Some("exec"), Some("a")).await.allowed);
    assert!(ask("get", Some("exec"), Some("a")).await.allowed);
    assert!(!ask("create", Some("exec"), Some("b")).await.allowed);
    assert!(
        !ask("create", Some("exec"), None).await.allowed,
        "resourceNames never match an absent name"
    );
    let sa_token = Api::<SelfSubjectAccessReview>::all(scoped.clone())
        .create(
            &PostParams::default(),
            &SelfSubjectAccessReview {
                spec: SelfSubjectAccessReviewSpec {
                    resource_attributes: Some(ResourceAttributes {
                        namespace: Some("prod".into()),
                        verb: Some("create".into()),
                        group: Some(String::new()),
                        resource: Some("serviceaccounts".into()),
                        subresource: Some("token".into()),
                        name: Some("scan".into()),
                        ..ResourceAttributes::default()
                    }),
                    ..SelfSubjectAccessReviewSpec::default()
                },
                ..SelfSubjectAccessReview::default()
            },
        )
        .await
        .unwrap();
    assert!(!sa_token.status.unwrap().allowed);

    let admin_view = Api::<SelfSubjectAccessReview>::all(cluster.client_admin())
        .create(
            &PostParams::default(),
            &ssar("delete", "pods", None, Some("b"), "prod"),
        )
        .await
        .unwrap();
    assert!(admin_view.status.unwrap().allowed);

    let rules = Api::<SelfSubjectRulesReview>::all(scoped)
        .create(
            &PostParams::default(),
            &SelfSubjectRulesReview {
                spec: SelfSubjectRulesReviewSpec {
                    namespace: Some("prod".into()),
                },
                ..SelfSubjectRulesReview::default()
            },
        )
        .await
        .unwrap()
        .status
        .unwrap();
    let pinned: Vec<_> = rules
        .resource_rules
        .iter()
        .filter(|r| r.resource_names.is_some())
        .collect();
    assert_eq!(pinned.len(), 2);
    assert_eq!(
        pinned[0].resource_names.as_deref(),
        Some(&["a".to_owned()][..])
    );
    assert!(!rules.incomplete);
}

#[tokio::test]
async fn anonymous_and_admin_identities() {
    let cluster = FakeCluster::new();
    let anon = cluster.client_anonymous();
    let e = status(
        Api::<Pod>::namespaced(anon.clone(), "default")
            .list(&ListParams::default())
            .await,
    );
    assert_eq!(e.code, 403);
    assert!(
        e.message.contains("User \"system:anonymous\""),
        "{}",
        e.message
    );
    let v = anon.apiserver_version().await.unwrap();
    assert_eq!(v.minor, "35");
    let junk = cluster.client_for_token("not-a-token");
    assert_eq!(
        status(
            Api::<Pod>::namespaced(junk, "default")
                .list(&ListParams::default())
                .await
        )
        .code,
        401
    );
}

#[tokio::test]
async fn exec_authorization_follows_the_server_version() {
    let cluster = FakeCluster::new();
    cluster.add_running_pod("prod", "a", &["app"]).unwrap();
    cluster.set_exec_handler(|_| ExecResponse::stdout("ok"));
    let admin = cluster.client_admin();
    sa_with_role(
        &admin,
        "prod",
        "getonly",
        vec![rule(&["pods/exec"], &["get"], &["a"])],
    )
    .await;
    sa_with_role(
        &admin,
        "prod",
        "createonly",
        vec![rule(&["pods/exec"], &["create"], &["a"])],
    )
    .await;
    let get_only: Api<Pod> = Api::namespaced(
        cluster.client_for_token(&cluster.issue_token("prod", "getonly", TTL).unwrap()),
        "prod",
    );
    let create_only: Api<Pod> = Api::namespaced(
        cluster.client_for_token(&cluster.issue_token("prod", "createonly", TTL).unwrap()),
        "prod",
    );
    let ap = AttachParams::default().stderr(false);

    // 1.35: the WebSocket GET needs get (the request) and create (the upgrade check).
    let e = status(get_only.exec("a", ["true"], &ap).await.map(|_| ()));
    assert!(
        e.message.contains("cannot create resource \"pods/exec\""),
        "{}",
        e.message
    );
    let e = status(create_only.exec("a", ["true"], &ap).await.map(|_| ()));
    assert!(
        e.message.contains("cannot get resource \"pods/exec\""),
        "{}",
        e.message
    );

    // Before 1.35, get was enough.
    cluster.set_server_minor_version(34);
    let mut p = get_only.exec("a", ["true"], &ap).await.unwrap();
    let out = p.stdout().unwrap();
    let status_fut = p.take_status().unwrap();
    let text = read_all(out).await;
    assert_eq!(text, "ok");
    assert_eq!(status_fut.await.unwrap().status.as_deref(), Some("Success"));
    assert_eq!(
        status(create_only.exec("a", ["true"], &ap).await.map(|_| ())).code,
        403
    );
}

pub(crate) async fn read_all(mut r: impl tokio::io::AsyncRead + Unpin) -> String {
    use tokio::io::AsyncReadExt as _;
    let mut s = String::new();
    r.read_to_string(&mut s).await.unwrap();
    s
}
