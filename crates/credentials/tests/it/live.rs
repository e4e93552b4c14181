//! Minting against the testkit fake (claims checked before use, refusals named), and the scoped
//! client over the fake's real HTTPS endpoint: the cluster CA connects, another CA or an expired
//! certificate is refused, and the memfd kubeconfig handed to a child is a working client
//! configuration whose token dies with the run's anchor Secret.

use std::time::Duration;

use base64::Engine as _;
use jiff::Timestamp;
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use keyhole_core::{Expiry, Namespace, PodName, Run, RunId, ScanMode, ScanTarget, Ttl};
use keyhole_credentials::{
    ChildKubeconfig, ClusterEndpoint, CredentialsError, ScopedToken, anchor_secret, mint,
    scoped_client, scoped_kubeconfig,
};
use keyhole_testkit::{FakeCluster, HttpsOptions, ServerCert};
use kube::api::{Api, PostParams};

fn run(ttl: Duration) -> Run {
    let target = ScanTarget::pods(
        Namespace::new("prod").unwrap(),
        [PodName::new("web-0").unwrap()],
        None,
    )
    .unwrap();
    let expiry = Expiry::new(Timestamp::now(), Ttl::new(ttl).unwrap()).unwrap();
    Run::new(
        RunId::generate().unwrap(),
        target,
        ScanMode::Standard,
        expiry,
    )
    .unwrap()
}

/// Creates the run's ServiceAccount and anchor Secret (as `keyhole-rbac` would); returns the
/// anchor's uid.
fn seed(cluster: &FakeCluster, run: &Run) -> String {
    cluster.create_namespace("prod");
    let sa = cluster
        .insert(&ServiceAccount {
            metadata: ObjectMeta {
                name: Some(run.object_name().to_string()),
                namespace: Some("prod".into()),
                ..ObjectMeta::default()
            },
            ..ServiceAccount::default()
        })
        .unwrap();
    let owner = OwnerReference {
        api_version: "v1".into(),
        kind: "ServiceAccount".into(),
        name: run.object_name().to_string(),
        uid: sa.metadata.uid.unwrap(),
        ..OwnerReference::default()
    };
    cluster
        .insert(&anchor_secret(run, owner))
        .unwrap()
        .metadata
        .uid
        .unwrap()
}

async fn whoami(client: kube::Client) -> Result<String, kube::Error> {
    let r = Api::<SelfSubjectReview>::all(client)
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await?;
    Ok(r.status.unwrap().user_info.unwrap().username.unwrap())
}

fn endpoint(url: &str, ca_pem: &str) -> ClusterEndpoint {
    ClusterEndpoint::new(
        url,
        &base64::engine::general_purpose::STANDARD.encode(ca_pem),
    )
    .unwrap()
}

#[tokio::test]
async fn mint_returns_a_checked_token_bound_to_the_anchor_and_no_longer_than_the_run() {
    let cluster = FakeCluster::new();
    let run = run(Duration::from_secs(900));
    let anchor_uid = seed(&cluster, &run);
    let token = mint(
        &cluster.client_admin(),
        &run,
        &[],
        &anchor_uid,
        Timestamp::now(),
    )
    .await
    .unwrap();
    let c = token.claims();
    assert_eq!(
        c.subject,
        format!("system:serviceaccount:prod:{}", run.object_name())
    );
    assert_eq!(
        c.bound_secret.as_deref(),
        Some(run.derived_name("anchor").as_str())
    );
    let expiry = run.expiry().expires_at();
    assert!(
        (c.expires_at.as_second() - expiry.as_second()).abs() <= 1,
        "exp {} vs run expiry {expiry}",
        c.expires_at
    );
    // The token works as the run's ServiceAccount, and stops working with its anchor.
    let client = cluster.client_for_token(secrecy::ExposeSecret::expose_secret(token.secret()));
    assert!(
        whoami(client.clone())
            .await
            .unwrap()
            .ends_with(run.object_name().as_str())
    );
    assert!(cluster.remove::<Secret>("prod", run.derived_name("anchor").as_str()));
    assert!(matches!(whoami(client).await, Err(kube::Error::Api(s)) if s.code == 401));
}

#[tokio::test]
async fn mint_refuses_what_it_did_not_ask_for() {
    let cluster = FakeCluster::new();
    let run = run(Duration::from_secs(600));
    let anchor_uid = seed(&cluster, &run);
    // A server clock an hour ahead issues a token outliving the run: refused before use.
    cluster.clock().advance(Duration::from_secs(3600));
    let e = mint(
        &cluster.client_admin(),
        &run,
        &[],
        &anchor_uid,
        Timestamp::now(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(e, CredentialsError::TokenClaims(ref m) if m.contains("later than the run's expiry")),
        "{e}"
    );
    // The anchor was recreated meanwhile (another uid): the server refuses the binding.
    let e = mint(
        &cluster.client_admin(),
        &run,
        &[],
        "stale-uid",
        Timestamp::now(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(e.contains("creating a token for serviceaccount"), "{e}");
    // No ServiceAccount at all.
    let other = self::run(Duration::from_secs(600));
    let e = mint(
        &cluster.client_admin(),
        &other,
        &[],
        &anchor_uid,
        Timestamp::now(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(e.contains("not found"), "{e}");
}

async fn minted(cluster: &FakeCluster) -> (Run, ScopedToken) {
    let run = run(Duration::from_secs(600));
    let anchor_uid = seed(cluster, &run);
    let token = mint(
        &cluster.client_admin(),
        &run,
        &[],
        &anchor_uid,
        Timestamp::now(),
    )
    .await
    .unwrap();
    (run, token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scoped_client_trusts_only_the_cluster_ca() {
    let cluster = FakeCluster::new();
    let (run, token) = minted(&cluster).await;
    let good = cluster.serve_https().await.unwrap();
    let client = scoped_client(&endpoint(good.url(), &cluster.ca_pem()), "prod", &token).unwrap();
    assert!(
        whoami(client)
            .await
            .unwrap()
            .ends_with(run.object_name().as_str())
    );
    for cert in [ServerCert::OtherCa, ServerCert::Expired] {
        let bad = cluster
            .serve_https_with(HttpsOptions { certificate: cert })
            .await
            .unwrap();
        let client =
            scoped_client(&endpoint(bad.url(), &cluster.ca_pem()), "prod", &token).unwrap();
        let e = whoami(client).await.unwrap_err();
        assert!(!matches!(e, kube::Error::Api(_)), "{cert:?}: {e:?}");
    }
    // Only the good server's one call got through the handshake.
    assert_eq!(
        cluster
            .calls()
            .iter()
            .filter(|c| c.path.ends_with("selfsubjectreviews"))
            .count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memfd_kubeconfig_is_a_working_client_configuration() {
    let cluster = FakeCluster::new();
    let (run, token) = minted(&cluster).await;
    let server = cluster.serve_https().await.unwrap();
    let text = scoped_kubeconfig(&run, &endpoint(server.url(), &cluster.ca_pem()), &token);
    let handoff = ChildKubeconfig::memfd(&text).unwrap();
    // Read back through /dev/fd/N, as a child would (here: this process's own descriptor).
    let kubeconfig = kube::config::Kubeconfig::read_from(handoff.path()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    assert_eq!(config.default_namespace, "prod");
    let client = kube::Client::try_from(config).unwrap();
    assert!(
        whoami(client)
            .await
            .unwrap()
            .ends_with(run.object_name().as_str())
    );
}
