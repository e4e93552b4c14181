//! The fake over real HTTPS: the right CA connects; another CA or an expired certificate is
//! refused by kube's rustls client; faults over a real socket.

use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use keyhole_testkit::{FakeCluster, Fault, HttpsOptions, ServerCert};
use kube::api::{Api, PostParams};

use crate::{configmap, status};

#[tokio::test]
async fn the_cluster_ca_connects_and_serves_the_same_state() {
    let cluster = FakeCluster::new();
    let server = cluster.serve_https().await.unwrap();
    assert!(
        server.url().starts_with("https://127.0.0.1:"),
        "{}",
        server.url()
    );
    assert!(server.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    let cms: Api<ConfigMap> = Api::namespaced(server.client_admin().unwrap(), "default");
    cms.create(&PostParams::default(), &configmap("over-tls", &[]))
        .await
        .unwrap();
    assert!(cluster.object::<ConfigMap>("default", "over-tls").is_some());
    let local: Api<ConfigMap> = Api::namespaced(cluster.client_admin(), "default");
    assert!(local.get("over-tls").await.is_ok());
    let token = cluster
        .service_account_with_token("default", "sa", Duration::from_secs(600))
        .unwrap();
    let scoped: Api<ConfigMap> =
        Api::namespaced(server.client_for_token(&token).unwrap(), "default");
    assert_eq!(status(scoped.get("over-tls").await).code, 403);
    assert!(server.kubeconfig_yaml("t").contains(server.url()));
}

async fn refused(cert: ServerCert) -> String {
    let cluster = FakeCluster::new();
    let server = cluster
        .serve_https_with(HttpsOptions { certificate: cert })
        .await
        .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(server.client_admin().unwrap(), "default");
    let e = cms.get("kube-root-ca.crt").await.unwrap_err();
    assert!(!matches!(e, kube::Error::Api(_)), "{e:?}");
    assert!(
        cluster.calls().is_empty(),
        "no request got past the handshake"
    );
    format!("{e:?}")
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused() {
    let e = refused(ServerCert::OtherCa).await;
    assert!(
        e.contains("UnknownIssuer") || e.contains("BadSignature"),
        "{e}"
    );
}

#[tokio::test]
async fn an_expired_certificate_is_refused() {
    let e = refused(ServerCert::Expired).await;
    assert!(e.contains("Expired"), "{e}");
}

#[tokio::test]
async fn dropped_connection_and_hang_over_a_real_socket() {
    let cluster = FakeCluster::new();
    let server = cluster.serve_https().await.unwrap();
    let config = server
        .config_for_token(&cluster.admin_token(), Some(Duration::from_millis(300)))
        .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    cluster.faults().fail_call(0, Fault::DropConnection);
    let e = cms.get("kube-root-ca.crt").await.unwrap_err();
    assert!(!matches!(e, kube::Error::Api(_)), "{e:?}");
    assert!(
        cms.get("kube-root-ca.crt").await.is_ok(),
        "the next call reconnects"
    );
    cluster.faults().fail_call(2, Fault::Hang);
    let e = cms.get("kube-root-ca.crt").await.unwrap_err();
    assert!(
        format!("{e:?}").to_lowercase().contains("timed out")
            || format!("{e:?}").contains("TimedOut"),
        "{e:?}"
    );
}
