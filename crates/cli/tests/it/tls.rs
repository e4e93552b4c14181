//! `keyhole access` over real HTTPS (rcgen CA): with the right CA the whole flow works and the
//! command's kubeconfig is a working scoped identity (the test uses it, over HTTPS, while the
//! command waits); a wrong CA, an expired server certificate, `http://`,
//! `insecure-skip-tls-verify` and missing CA data are refused with a clear message before any
//! request.

use std::time::Duration;

use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::core::v1::{Pod, Secret};
use keyhole_testkit::{ExecResponse, HttpsOptions, ServerCert};
use kube::api::{Api, AttachParams, ListParams, PostParams};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};

use crate::support::{NS, POD, Served, audit_records, clean_ending, cluster, finish};

/// Prints the scoped kubeconfig, then waits for a line on stdin before exiting 0.
const HAND_OVER: &str = r#"cat "$KUBECONFIG"; echo; echo KEYHOLE-READY; read _line; exit 0"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_https_the_command_gets_a_working_scoped_identity_and_nothing_remains() {
    let served = Served::new("tls-happy").await;
    served.cluster.set_exec_handler(|req| {
        ExecResponse::stdout(format!(
            "ran {} in {}",
            req.command.join(" "),
            req.container
        ))
    });
    let mut child = served
        .access(&["sh", "-c", HAND_OVER], &[])
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut kubeconfig = String::new();
    let read = async {
        loop {
            let mut line = String::new();
            assert!(
                stdout.read_line(&mut line).await.unwrap() > 0,
                "EOF before READY"
            );
            if line.trim() == "KEYHOLE-READY" {
                break;
            }
            kubeconfig.push_str(&line);
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .expect("the command starts");

    // The command's kubeconfig: pinned to the cluster CA, no TLS switch-off, the run's
    // namespace, and a token that works over HTTPS as the run's ServiceAccount only.
    assert!(kubeconfig.contains("certificate-authority-data"));
    assert!(!kubeconfig.contains("insecure"));
    let parsed = kube::config::Kubeconfig::from_yaml(&kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(parsed, &Default::default())
        .await
        .unwrap();
    assert_eq!(
        config.cluster_url.to_string(),
        format!("{}/", served.server.url())
    );
    assert_eq!(config.default_namespace, NS);
    let scoped = kube::Client::try_from(config).unwrap();
    let review = Api::<SelfSubjectReview>::all(scoped.clone())
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .unwrap();
    let user = review.status.unwrap().user_info.unwrap().username.unwrap();
    assert!(
        user.starts_with(&format!("system:serviceaccount:{NS}:keyhole-")),
        "{user}"
    );
    let pods: Api<Pod> = Api::namespaced(scoped.clone(), NS);
    assert!(pods.get(POD).await.is_ok());
    let forbidden =
        |r: Result<_, kube::Error>| matches!(r, Err(kube::Error::Api(s)) if s.code == 403);
    assert!(forbidden(pods.list(&ListParams::default()).await.map(drop)));
    assert!(forbidden(
        Api::<Secret>::namespaced(scoped.clone(), NS)
            .list(&ListParams::default())
            .await
            .map(drop)
    ));
    // The scan's one exec, over a WebSocket through TLS.
    let mut exec = pods
        .exec(POD, ["id"], &AttachParams::default().container("app"))
        .await
        .unwrap();
    let mut out = String::new();
    exec.stdout()
        .unwrap()
        .read_to_string(&mut out)
        .await
        .unwrap();
    assert_eq!(out, "ran id in app");
    drop(exec);

    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"done\n").await.unwrap();
    drop(stdin);
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("keyhole ends")
        .unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(served.cluster.managed_objects().is_empty());
    let records = audit_records(&served.audit);
    assert_eq!(clean_ending(&records).0, 0);
    // The token died with the run.
    let again = Api::<SelfSubjectReview>::all(scoped)
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await;
    assert!(matches!(again, Err(kube::Error::Api(s)) if s.code == 401));

    // `keyhole audit verify` agrees with the library.
    let out = served
        .keyhole(&["audit", "verify", served.audit.to_str().unwrap()], &[])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("chain intact"));
}

/// Runs `keyhole access` against `served` and expects a refusal before any API call.
async fn refused(served: &Served, exit: i32, needles: &[&str]) {
    let child = served.access(&["true"], &[]).spawn().unwrap();
    let done = finish(child).await;
    assert_eq!(done.code, Some(exit), "stderr: {}", done.stderr);
    for needle in needles {
        assert!(
            done.stderr.to_lowercase().contains(&needle.to_lowercase()),
            "{needle:?} not in: {}",
            done.stderr
        );
    }
    assert!(
        served.cluster.calls().is_empty(),
        "no request may reach the server"
    );
    assert!(served.cluster.managed_objects().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_certificate_from_another_ca_is_refused() {
    let c = cluster();
    let server = c
        .serve_https_with(HttpsOptions {
            certificate: ServerCert::OtherCa,
        })
        .await
        .unwrap();
    let served = Served::with_server("tls-other-ca", c, server, |s| s.kubeconfig_yaml_admin());
    refused(&served, 3, &["certificate", "not trusted"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_server_certificate_is_refused() {
    let c = cluster();
    let server = c
        .serve_https_with(HttpsOptions {
            certificate: ServerCert::Expired,
        })
        .await
        .unwrap();
    let served = Served::with_server("tls-expired", c, server, |s| s.kubeconfig_yaml_admin());
    refused(&served, 3, &["certificate", "expired"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_is_refused() {
    let served = Served::with("tls-http", cluster(), |s| {
        s.kubeconfig_yaml_admin().replace("https://", "http://")
    })
    .await;
    refused(&served, 2, &["http://", "only https:// urls are allowed"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insecure_skip_tls_verify_is_refused() {
    let served = Served::with("tls-insecure", cluster(), |s| {
        s.kubeconfig_yaml_admin().replace(
            "    certificate-authority-data:",
            "    insecure-skip-tls-verify: true\n    x-ignored:",
        )
    })
    .await;
    refused(
        &served,
        2,
        &[
            "insecure-skip-tls-verify",
            "never talks to a cluster it cannot verify",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_ca_data_is_refused() {
    let served = Served::with("tls-no-ca", cluster(), |s| {
        s.kubeconfig_yaml_admin()
            .replace("    certificate-authority-data:", "    x-ignored:")
    })
    .await;
    refused(&served, 2, &["no CA data", "certificate-authority-data"]).await;
}
