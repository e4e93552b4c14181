//! REST semantics: CRUD, 404/409/422 Status bodies, metadata, selectors, patches, GC.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::Role;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use keyhole_testkit::{FakeCluster, GcMode};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::ObjectMeta;
use serde_json::json;

use crate::{configmap, meta, secret, status};

#[tokio::test]
async fn create_get_list_delete_with_real_metadata_and_status_bodies() {
    let cluster = FakeCluster::new();
    let cms: Api<ConfigMap> = Api::namespaced(cluster.client_admin(), "default");
    let pp = PostParams::default();

    let created = cms.create(&pp, &configmap("one", &[])).await.unwrap();
    let m = &created.metadata;
    assert_eq!(m.namespace.as_deref(), Some("default"));
    assert_eq!(m.uid.as_ref().map(String::len), Some(36));
    assert!(m.resource_version.is_some());
    assert_eq!(
        m.creation_timestamp.as_ref().map(|t| t.0.as_second()),
        Some(cluster.clock().now().as_second())
    );

    let dup = status(cms.create(&pp, &configmap("one", &[])).await);
    assert_eq!((dup.code, dup.reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(dup.message, "configmaps \"one\" already exists");

    let got = cms.get("one").await.unwrap();
    assert_eq!(got.metadata.uid, created.metadata.uid);

    let missing = status(cms.get("nope").await);
    assert_eq!((missing.code, missing.reason.as_str()), (404, "NotFound"));
    assert_eq!(missing.message, "configmaps \"nope\" not found");
    assert_eq!(
        missing.details.as_ref().map(|d| d.kind.as_str()),
        Some("configmaps")
    );

    // Every namespace starts with kube-root-ca.crt, like a real cluster.
    let names: Vec<String> = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    assert_eq!(names, ["kube-root-ca.crt", "one"]);

    let deleted = cms.delete("one", &DeleteParams::default()).await.unwrap();
    assert!(
        deleted.is_right(),
        "an immediate delete answers a Success Status"
    );
    assert_eq!(status(cms.get("one").await).code, 404);
    assert_eq!(
        status(cms.delete("one", &DeleteParams::default()).await).code,
        404
    );

    let rbac: Api<Role> = Api::namespaced(cluster.client_admin(), "default");
    let e = status(rbac.get("r").await);
    assert_eq!(e.message, "roles.rbac.authorization.k8s.io \"r\" not found");
}

#[tokio::test]
async fn generate_name_namespaces_and_validation() {
    let cluster = FakeCluster::new();
    let admin = cluster.client_admin();
    let pp = PostParams::default();
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), "default");
    let s = Secret {
        metadata: ObjectMeta {
            generate_name: Some("keyhole-".into()),
            ..ObjectMeta::default()
        },
        string_data: Some(BTreeMap::from([("k".to_owned(), "v".to_owned())])),
        ..Secret::default()
    };
    let a = secrets.create(&pp, &s).await.unwrap();
    let b = secrets.create(&pp, &s).await.unwrap();
    let (an, bn) = (a.metadata.name.unwrap(), b.metadata.name.unwrap());
    assert!(
        an.starts_with("keyhole-") && an.len() == "keyhole-".len() + 5,
        "{an}"
    );
    assert_ne!(an, bn);
    assert_eq!(a.type_.as_deref(), Some("Opaque"));
    assert_eq!(a.data.unwrap()["k"].0, b"v", "stringData folds into data");
    assert!(a.string_data.is_none());

    let bad = status(secrets.create(&pp, &secret("Not_Valid")).await);
    assert_eq!((bad.code, bad.reason.as_str()), (422, "Invalid"));
    assert!(
        bad.message
            .starts_with("Secret \"Not_Valid\" is invalid: metadata.name: Invalid value"),
        "{}",
        bad.message
    );

    let elsewhere: Api<Secret> = Api::namespaced(admin.clone(), "ghost");
    let e = status(elsewhere.create(&pp, &secret("x")).await);
    assert_eq!(
        (e.code, e.message.as_str()),
        (404, "namespaces \"ghost\" not found")
    );

    let nss: Api<Namespace> = Api::all(admin.clone());
    nss.create(
        &pp,
        &Namespace {
            metadata: meta("scan"),
            ..Namespace::default()
        },
    )
    .await
    .unwrap();
    let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), "scan");
    assert!(
        sas.get("default").await.is_ok(),
        "a new namespace gets its default ServiceAccount"
    );
    Api::<Secret>::namespaced(admin.clone(), "scan")
        .create(&pp, &secret("x"))
        .await
        .unwrap();
    nss.delete("scan", &DeleteParams::default()).await.unwrap();
    assert!(
        cluster
            .objects::<Secret>()
            .iter()
            .all(|s| s.metadata.namespace.as_deref() != Some("scan"))
    );
    assert!(cluster.object::<Namespace>("", "scan").is_none());

    let role = Role {
        metadata: meta("wild"),
        rules: Some(vec![k8s_openapi::api::rbac::v1::PolicyRule {
            verbs: vec![],
            ..Default::default()
        }]),
    };
    let e = status(
        Api::<Role>::namespaced(admin, "default")
            .create(&pp, &role)
            .await,
    );
    assert_eq!(e.code, 422);
    assert!(
        e.message.contains("rules[0].verbs: Required value"),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn label_and_field_selectors() {
    let cluster = FakeCluster::new();
    let cms: Api<ConfigMap> = Api::namespaced(cluster.client_admin(), "default");
    let pp = PostParams::default();
    for (name, labels) in [
        ("a", vec![("app", "web"), ("tier", "front")]),
        ("b", vec![("app", "db")]),
        ("c", vec![("tier", "back")]),
    ] {
        cms.create(&pp, &configmap(name, &labels)).await.unwrap();
    }
    let names = |sel: &'static str| {
        let cms = cms.clone();
        async move {
            let mut n: Vec<String> = cms
                .list(&ListParams::default().labels(sel))
                .await
                .unwrap()
                .items
                .into_iter()
                .filter_map(|c| c.metadata.name)
                .filter(|n| n.len() == 1)
                .collect();
            n.sort();
            n
        }
    };
    assert_eq!(names("app=web").await, ["a"]);
    assert_eq!(
        names("app!=web").await,
        ["b", "c"],
        "!= matches a missing key"
    );
    assert_eq!(names("app in (web,db)").await, ["a", "b"]);
    assert_eq!(names("app notin (web)").await, ["b", "c"]);
    assert_eq!(names("tier").await, ["a", "c"]);
    assert_eq!(names("!tier").await, ["b"]);
    assert_eq!(names("app=web,tier=front").await, ["a"]);
    let bad = status(cms.list(&ListParams::default().labels("app in (")).await);
    assert_eq!((bad.code, bad.reason.as_str()), (400, "BadRequest"));
    let by_name = cms
        .list(&ListParams::default().fields("metadata.name=b"))
        .await
        .unwrap();
    assert_eq!(by_name.items.len(), 1);
    let all: Api<ConfigMap> = Api::all(cluster.client_admin());
    assert_eq!(
        all.list(&ListParams::default()).await.unwrap().items.len(),
        3 + 3,
        "3 + one root CA per namespace"
    );
}

#[tokio::test]
async fn update_conflicts_and_the_three_patch_types() {
    let cluster = FakeCluster::new();
    let cms: Api<ConfigMap> = Api::namespaced(cluster.client_admin(), "default");
    let pp = PostParams::default();
    let mut cm = cms
        .create(&pp, &configmap("c", &[("a", "1")]))
        .await
        .unwrap();
    let rv0 = cm.metadata.resource_version.clone();

    cm.data = Some(BTreeMap::from([("k".to_owned(), "v".to_owned())]));
    let updated = cms.replace("c", &pp, &cm).await.unwrap();
    assert_ne!(updated.metadata.resource_version, rv0);
    let stale = status(cms.replace("c", &pp, &cm).await);
    assert_eq!((stale.code, stale.reason.as_str()), (409, "Conflict"));

    let unchanged = cms.replace("c", &pp, &updated).await.unwrap();
    assert_eq!(
        unchanged.metadata.resource_version, updated.metadata.resource_version,
        "a no-op write keeps the resourceVersion"
    );

    let ps = PatchParams::default();
    let merged = cms
        .patch(
            "c",
            &ps,
            &Patch::Merge(
                json!({"metadata": {"labels": {"a": null, "b": "2"}}, "data": {"x": "y"}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        merged.metadata.labels.unwrap(),
        BTreeMap::from([("b".to_owned(), "2".to_owned())])
    );
    assert_eq!(merged.data.unwrap().len(), 2);

    let strategic = cms
        .patch(
            "c",
            &ps,
            &Patch::Strategic(json!({"metadata": {"finalizers": ["f1"]}})),
        )
        .await
        .unwrap();
    assert_eq!(strategic.metadata.finalizers.unwrap(), ["f1"]);

    // JSON patch is sent raw (kube's typed variant needs its `jsonpatch` feature).
    let req = http::Request::patch("/api/v1/namespaces/default/configmaps/c")
        .header("content-type", "application/json-patch+json")
        .body(
            serde_json::to_vec(&json!([{"op": "replace", "path": "/data/x", "value": "z"}]))
                .unwrap(),
        )
        .unwrap();
    let patched: ConfigMap = cluster.client_admin().request(req).await.unwrap();
    assert_eq!(patched.data.unwrap()["x"], "z");

    let apply = cms
        .patch(
            "applied",
            &PatchParams::apply("keyhole"),
            &Patch::Apply(configmap("applied", &[("m", "k")])),
        )
        .await
        .unwrap();
    assert_eq!(apply.metadata.name.as_deref(), Some("applied"));

    let e = status(cms.patch("ghost", &ps, &Patch::Merge(json!({}))).await);
    assert_eq!(e.code, 404);

    // A finalizer holds the object back: delete marks it; removing the finalizer completes it.
    let pending = cms.delete("c", &DeleteParams::default()).await.unwrap();
    assert!(
        pending
            .left()
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_some()
    );
    cms.patch(
        "c",
        &ps,
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert_eq!(status(cms.get("c").await).code, 404);
}

fn owned_by(name: &str, kind: &str, api_version: &str, uid: &str) -> Option<Vec<OwnerReference>> {
    Some(vec![OwnerReference {
        api_version: api_version.into(),
        kind: kind.into(),
        name: name.into(),
        uid: uid.into(),
        ..OwnerReference::default()
    }])
}

#[tokio::test]
async fn owner_references_cascade_transitively_and_orphan_on_request() {
    let cluster = FakeCluster::new();
    let admin = cluster.client_admin();
    let pp = PostParams::default();
    let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), "default");
    let roles: Api<Role> = Api::namespaced(admin.clone(), "default");
    let cms: Api<ConfigMap> = Api::namespaced(admin.clone(), "default");
    let nps: Api<NetworkPolicy> = Api::namespaced(admin.clone(), "default");

    let sa = sas
        .create(
            &pp,
            &ServiceAccount {
                metadata: meta("run"),
                ..ServiceAccount::default()
            },
        )
        .await
        .unwrap();
    let sa_uid = sa.metadata.uid.unwrap();
    let role = Role {
        metadata: ObjectMeta {
            name: Some("run".into()),
            owner_references: owned_by("run", "ServiceAccount", "v1", &sa_uid),
            ..ObjectMeta::default()
        },
        rules: None,
    };
    let role = roles.create(&pp, &role).await.unwrap();
    let mut grandchild = configmap("grandchild", &[]);
    grandchild.metadata.owner_references = owned_by(
        "run",
        "Role",
        "rbac.authorization.k8s.io/v1",
        role.metadata.uid.as_deref().unwrap(),
    );
    cms.create(&pp, &grandchild).await.unwrap();
    let np = NetworkPolicy {
        metadata: ObjectMeta {
            name: Some("np".into()),
            owner_references: owned_by("run", "ServiceAccount", "v1", &sa_uid),
            ..ObjectMeta::default()
        },
        ..NetworkPolicy::default()
    };
    nps.create(&pp, &np).await.unwrap();

    sas.delete("run", &DeleteParams::background())
        .await
        .unwrap();
    assert_eq!(
        status(roles.get("run").await).code,
        404,
        "the Role follows its owner"
    );
    assert_eq!(
        status(cms.get("grandchild").await).code,
        404,
        "and its own dependents follow it"
    );
    assert_eq!(status(nps.get("np").await).code, 404);

    // Orphan: the dependent stays and loses the reference.
    let sa = sas
        .create(
            &pp,
            &ServiceAccount {
                metadata: meta("run2"),
                ..ServiceAccount::default()
            },
        )
        .await
        .unwrap();
    let mut child = configmap("child", &[]);
    child.metadata.owner_references = owned_by(
        "run2",
        "ServiceAccount",
        "v1",
        sa.metadata.uid.as_deref().unwrap(),
    );
    cms.create(&pp, &child).await.unwrap();
    sas.delete("run2", &DeleteParams::orphan()).await.unwrap();
    let kept = cms.get("child").await.unwrap();
    assert!(
        kept.metadata
            .owner_references
            .unwrap_or_default()
            .is_empty()
    );

    // Manual GC: dependents outlive their owner until the collector runs.
    cluster.set_gc_mode(GcMode::Manual);
    let sa = sas
        .create(
            &pp,
            &ServiceAccount {
                metadata: meta("run3"),
                ..ServiceAccount::default()
            },
        )
        .await
        .unwrap();
    let mut lagging = configmap("lagging", &[]);
    lagging.metadata.owner_references = owned_by(
        "run3",
        "ServiceAccount",
        "v1",
        sa.metadata.uid.as_deref().unwrap(),
    );
    cms.create(&pp, &lagging).await.unwrap();
    sas.delete("run3", &DeleteParams::default()).await.unwrap();
    assert!(cms.get("lagging").await.is_ok());
    assert_eq!(cluster.collect_garbage(), 1);
    assert_eq!(status(cms.get("lagging").await).code, 404);
}

#[tokio::test]
async fn managed_objects_lists_keyhole_labelled_objects_of_every_kind() {
    let cluster = FakeCluster::new();
    let pp = PostParams::default();
    let label = [(
        keyhole_core::MANAGED_BY_LABEL,
        keyhole_core::MANAGED_BY_VALUE,
    )];
    Api::<ConfigMap>::namespaced(cluster.client_admin(), "default")
        .create(&pp, &configmap("m", &label))
        .await
        .unwrap();
    Api::<ConfigMap>::namespaced(cluster.client_admin(), "default")
        .create(&pp, &configmap("u", &[]))
        .await
        .unwrap();
    let managed = cluster.managed_objects();
    assert_eq!(managed.len(), 1);
    assert_eq!(managed[0].to_string(), "ConfigMap default/m");
}

#[tokio::test]
async fn delete_collection_by_label_and_watch_is_refused_after_authorization() {
    let cluster = FakeCluster::new();
    let cms: Api<ConfigMap> = Api::namespaced(cluster.client_admin(), "default");
    let pp = PostParams::default();
    for (name, run) in [("a", "r1"), ("b", "r1"), ("c", "r2")] {
        cms.create(&pp, &configmap(name, &[("run", run)]))
            .await
            .unwrap();
    }
    let gone = cms
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels("run=r1"),
        )
        .await
        .unwrap();
    let names: Vec<String> = gone
        .left()
        .unwrap()
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    assert_eq!(names, ["a", "b"]);
    assert!(cms.get("c").await.is_ok());
    assert_eq!(status(cms.get("a").await).code, 404);

    let e = status(
        cms.watch(&kube::api::WatchParams::default(), "0")
            .await
            .map(|_| ()),
    );
    assert_eq!(e.code, 405);
    let token = cluster
        .service_account_with_token("default", "nobody", std::time::Duration::from_secs(600))
        .unwrap();
    let scoped: Api<ConfigMap> = Api::namespaced(cluster.client_for_token(&token), "default");
    let e = status(
        scoped
            .watch(&kube::api::WatchParams::default(), "0")
            .await
            .map(|_| ()),
    );
    assert!(
        e.message.contains("cannot watch resource \"configmaps\""),
        "{}",
        e.message
    );
}
