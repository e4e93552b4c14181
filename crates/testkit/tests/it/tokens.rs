//! TokenRequest: claims, expirationSeconds, boundObjectRef, and revocation by expiry, by
//! deleting the bound object and by deleting the ServiceAccount.

use std::time::Duration;

use base64::Engine as _;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use keyhole_testkit::{API_AUDIENCE, FakeCluster, Identity};
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::{Value, json};

use crate::{meta, secret, status};

fn request(seconds: Option<i64>, bound: Option<(&str, &str)>) -> TokenRequest {
    let mut spec = json!({});
    if let Some(s) = seconds {
        spec["expirationSeconds"] = json!(s);
    }
    if let Some((kind, name)) = bound {
        spec["boundObjectRef"] = json!({"apiVersion": "v1", "kind": kind, "name": name});
    }
    serde_json::from_value(json!({"spec": spec})).unwrap()
}

fn token(tr: TokenRequest) -> String {
    tr.status.and_then(|s| s.token).unwrap()
}

fn claims(token: &str) -> Value {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "header.payload.signature");
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(parts[1])
        .unwrap();
    serde_json::from_slice(&payload).unwrap()
}

async fn setup(cluster: &FakeCluster) -> (Api<ServiceAccount>, Api<Secret>) {
    let admin = cluster.client_admin();
    let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), "default");
    let secrets: Api<Secret> = Api::namespaced(admin, "default");
    let pp = PostParams::default();
    sas.create(
        &pp,
        &ServiceAccount {
            metadata: meta("run"),
            ..ServiceAccount::default()
        },
    )
    .await
    .unwrap();
    secrets.create(&pp, &secret("anchor")).await.unwrap();
    (sas, secrets)
}

/// Whether `token` authenticates (SelfSubjectReview needs no RBAC beyond the defaults).
async fn works(cluster: &FakeCluster, token: &str) -> Result<(), u16> {
    let client = cluster.client_for_token(token);
    let req = http::Request::post("/apis/authentication.k8s.io/v1/selfsubjectreviews")
        .header("content-type", "application/json")
        .body(br#"{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}"#.to_vec())
        .unwrap();
    match client.request::<Value>(req).await {
        Ok(v) => {
            assert_eq!(
                v["status"]["userInfo"]["username"],
                "system:serviceaccount:default:run"
            );
            Ok(())
        }
        Err(kube::Error::Api(s)) => Err(s.code),
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn token_request_returns_a_bound_jwt_with_the_real_claims() {
    let cluster = FakeCluster::new();
    let (sas, secrets) = setup(&cluster).await;
    let anchor_uid = secrets.get("anchor").await.unwrap().metadata.uid.unwrap();
    let tr = sas
        .create_token_request(
            "run",
            &PostParams::default(),
            &request(Some(600), Some(("Secret", "anchor"))),
        )
        .await
        .unwrap();
    let status = tr.status.clone().unwrap();
    let tok = status.token.clone().unwrap();
    let c = claims(&tok);
    let now = cluster.clock().now().as_second();
    assert_eq!(c["sub"], "system:serviceaccount:default:run");
    assert_eq!(c["aud"], serde_json::json!([API_AUDIENCE]));
    assert_eq!(c["iat"], now);
    assert_eq!(c["exp"], now + 600);
    assert_eq!(c["kubernetes.io"]["namespace"], "default");
    assert_eq!(c["kubernetes.io"]["serviceaccount"]["name"], "run");
    assert_eq!(c["kubernetes.io"]["secret"]["name"], "anchor");
    assert_eq!(c["kubernetes.io"]["secret"]["uid"], anchor_uid.as_str());
    assert_eq!(
        status.expiration_timestamp.unwrap().0.as_second(),
        now + 600
    );
    assert_eq!(tr.spec.unwrap().expiration_seconds, Some(600));
    assert_eq!(works(&cluster, &tok).await, Ok(()));
    let call = cluster.calls().into_iter().last().unwrap();
    assert_eq!(
        call.identity,
        Identity::ServiceAccount {
            namespace: "default".into(),
            name: "run".into()
        }
    );
}

#[tokio::test]
async fn token_request_validation_matches_the_api_server() {
    let cluster = FakeCluster::new();
    let (sas, _) = setup(&cluster).await;
    let pp = PostParams::default();
    let e = status(
        sas.create_token_request("run", &pp, &request(Some(599), None))
            .await,
    );
    assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        e.message,
        "TokenRequest.authentication.k8s.io \"\" is invalid: spec.expirationSeconds: Invalid value: 599: may not specify a duration less than 10 minutes"
    );
    let default = sas
        .create_token_request("run", &pp, &request(None, None))
        .await
        .unwrap();
    assert_eq!(default.spec.unwrap().expiration_seconds, Some(3600));
    let e = status(
        sas.create_token_request("ghost", &pp, &request(Some(600), None))
            .await,
    );
    assert_eq!(
        (e.code, e.message.as_str()),
        (404, "serviceaccounts \"ghost\" not found")
    );
    let e = status(
        sas.create_token_request("run", &pp, &request(Some(600), Some(("Secret", "missing"))))
            .await,
    );
    assert_eq!(
        (e.code, e.message.as_str()),
        (404, "secrets \"missing\" not found")
    );
    let e = status(
        sas.create_token_request(
            "run",
            &pp,
            &request(Some(600), Some(("ConfigMap", "kube-root-ca.crt"))),
        )
        .await,
    );
    assert_eq!((e.code, e.reason.as_str()), (400, "BadRequest"));
    // A pod-bound token must be for the pod's own ServiceAccount.
    cluster
        .add_running_pod("default", "web-0", &["app"])
        .unwrap();
    let e = status(
        sas.create_token_request("run", &pp, &request(Some(600), Some(("Pod", "web-0"))))
            .await,
    );
    assert_eq!(e.code, 400);
    assert!(
        e.message.contains("different serviceaccount name"),
        "{}",
        e.message
    );
    // A token for another audience does not authenticate against the API server.
    let other: TokenRequest =
        serde_json::from_value(json!({"spec": {"audiences": ["vault"], "expirationSeconds": 600}}))
            .unwrap();
    let tok = token(sas.create_token_request("run", &pp, &other).await.unwrap());
    assert_eq!(works(&cluster, &tok).await, Err(401));
}

#[tokio::test]
async fn tokens_expire_on_the_fake_clock() {
    let cluster = FakeCluster::new();
    let (sas, _) = setup(&cluster).await;
    let tok = token(
        sas.create_token_request("run", &PostParams::default(), &request(Some(600), None))
            .await
            .unwrap(),
    );
    cluster.clock().advance(Duration::from_secs(599));
    assert_eq!(works(&cluster, &tok).await, Ok(()));
    cluster.clock().advance(Duration::from_secs(1));
    assert_eq!(works(&cluster, &tok).await, Err(401));
    let last = cluster.calls().into_iter().last().unwrap();
    assert_eq!(
        (last.identity, last.status),
        (Identity::Unauthenticated, Some(401))
    );
}

#[tokio::test]
async fn deleting_the_bound_object_or_the_service_account_revokes() {
    let cluster = FakeCluster::new();
    let (sas, secrets) = setup(&cluster).await;
    let pp = PostParams::default();
    let bound = token(
        sas.create_token_request("run", &pp, &request(Some(600), Some(("Secret", "anchor"))))
            .await
            .unwrap(),
    );
    let unbound = token(
        sas.create_token_request("run", &pp, &request(Some(600), None))
            .await
            .unwrap(),
    );
    secrets
        .delete("anchor", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(works(&cluster, &bound).await, Err(401));
    // Recreating an object with the same name does not revive the token (uid differs).
    secrets.create(&pp, &secret("anchor")).await.unwrap();
    assert_eq!(works(&cluster, &bound).await, Err(401));
    assert_eq!(works(&cluster, &unbound).await, Ok(()));
    sas.delete("run", &DeleteParams::default()).await.unwrap();
    assert_eq!(works(&cluster, &unbound).await, Err(401));
    sas.create(
        &pp,
        &ServiceAccount {
            metadata: meta("run"),
            ..ServiceAccount::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        works(&cluster, &unbound).await,
        Err(401),
        "a new ServiceAccount of the same name is another identity"
    );
}
