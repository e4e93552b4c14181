//! The fake served over real HTTPS on 127.0.0.1 (random port), with an rcgen-made cluster CA
//! and server certificate, plus knobs for the TLS failure cases (expired certificate, a
//! certificate from another CA).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::cluster::FakeCluster;
use crate::error::TestkitError;
use crate::service::serve_connection;

/// A certificate authority (key + self-signed certificate).
pub(crate) struct CertificateAuthority {
    params: CertificateParams,
    key: KeyPair,
    cert_pem: String,
}

impl CertificateAuthority {
    /// A fresh P-256 CA. Panics only if the crypto backend cannot generate a key, which no test
    /// could work around.
    pub(crate) fn generate(common_name: &str) -> Self {
        Self::try_generate(common_name)
            .unwrap_or_else(|e| panic!("keyhole-testkit: cannot generate a CA: {e}"))
    }

    fn try_generate(common_name: &str) -> Result<Self, rcgen::Error> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key)?;
        Ok(Self {
            cert_pem: cert.pem(),
            params,
            key,
        })
    }

    pub(crate) fn cert_pem(&self) -> String {
        self.cert_pem.clone()
    }

    /// A server certificate for 127.0.0.1 / localhost: valid from 2020 to 4000, or (`expired`)
    /// only during 2000.
    fn issue_server(
        &self,
        expired: bool,
    ) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), rcgen::Error> {
        let (not_before, not_after) = if expired {
            (
                rcgen::date_time_ymd(2000, 1, 1),
                rcgen::date_time_ymd(2000, 12, 31),
            )
        } else {
            (
                rcgen::date_time_ymd(2020, 1, 1),
                rcgen::date_time_ymd(4000, 1, 1),
            )
        };
        let key = KeyPair::generate()?;
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?;
        params
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        params.not_before = not_before;
        params.not_after = not_after;
        params.use_authority_key_identifier_extension = true;
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer)?;
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        Ok((cert.der().clone(), key_der))
    }
}

/// Which certificate the HTTPS server presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServerCert {
    /// Signed by the cluster CA, valid now, for 127.0.0.1 and localhost.
    #[default]
    Valid,
    /// Signed by the cluster CA but expired (valid only in 2000): clients must refuse it.
    Expired,
    /// Valid dates, but signed by a different CA than [`FakeCluster::ca_pem`]: clients must
    /// refuse it.
    OtherCa,
}

/// Options for [`FakeCluster::serve_https_with`].
#[derive(Debug, Clone, Default)]
pub struct HttpsOptions {
    /// The certificate to present.
    pub certificate: ServerCert,
}

/// A running HTTPS endpoint for a [`FakeCluster`]; stops when dropped.
pub struct HttpsServer {
    cluster: FakeCluster,
    addr: SocketAddr,
    url: String,
    ca_pem: String,
    shutdown: watch::Sender<bool>,
}

impl std::fmt::Debug for HttpsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpsServer")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Drop for HttpsServer {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

impl HttpsServer {
    pub(crate) async fn start(
        cluster: FakeCluster,
        options: HttpsOptions,
    ) -> Result<Self, TestkitError> {
        let tls = |e: rcgen::Error| TestkitError::Tls(e.to_string());
        let inner = cluster.inner().clone();
        let (cert, key) = match options.certificate {
            ServerCert::Valid => inner.ca.issue_server(false).map_err(tls)?,
            ServerCert::Expired => inner.ca.issue_server(true).map_err(tls)?,
            ServerCert::OtherCa => CertificateAuthority::try_generate("some other CA")
                .map_err(tls)?
                .issue_server(false)
                .map_err(tls)?,
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TestkitError::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .map_err(|e| TestkitError::Tls(e.to_string()))?;
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (shutdown, rx) = watch::channel(false);
        let mut stop = rx.clone();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    _ = stop.wait_for(|s| *s) => return,
                };
                let Ok((tcp, _)) = accepted else { continue };
                let acceptor = acceptor.clone();
                let inner = inner.clone();
                let rx = rx.clone();
                tokio::spawn(async move {
                    // A failed handshake is the client refusing our certificate: nothing to do.
                    if let Ok(tls) = acceptor.accept(tcp).await {
                        serve_connection(inner, tls, Some(rx)).await;
                    }
                });
            }
        });
        Ok(Self {
            ca_pem: cluster.ca_pem(),
            cluster,
            addr,
            url: format!("https://{addr}"),
            shutdown,
        })
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The cluster CA certificate (PEM) clients should trust. For [`ServerCert::OtherCa`] this
    /// is still the cluster CA, which is exactly why verification fails.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// A `kube::Config` for this server: trusts the cluster CA, sends `token`, and gives up on
    /// a response after `read_timeout` (kube has none by default; hang tests need one).
    pub fn config_for_token(
        &self,
        token: &str,
        read_timeout: Option<Duration>,
    ) -> Result<kube::Config, TestkitError> {
        let uri: http::Uri = self
            .url
            .parse()
            .map_err(|e: http::uri::InvalidUri| TestkitError::Tls(e.to_string()))?;
        let mut config = kube::Config::new(uri);
        config.root_cert = Some(vec![pem_to_der(&self.ca_pem)?]);
        config.auth_info = serde_json::from_value(json!({ "token": token }))?;
        config.read_timeout = read_timeout;
        config.default_namespace = "default".to_owned();
        Ok(config)
    }

    /// A `kube::Client` over HTTPS with `token`.
    pub fn client_for_token(&self, token: &str) -> Result<kube::Client, TestkitError> {
        Ok(kube::Client::try_from(self.config_for_token(token, None)?)?)
    }

    /// A `kube::Client` over HTTPS with the admin token.
    pub fn client_admin(&self) -> Result<kube::Client, TestkitError> {
        self.client_for_token(&self.cluster.admin_token())
    }

    /// A kubeconfig (YAML) for this server with `token`, as a user's or a scoped one would be.
    pub fn kubeconfig_yaml(&self, token: &str) -> String {
        use base64::Engine as _;
        let ca = base64::engine::general_purpose::STANDARD.encode(&self.ca_pem);
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\n    certificate-authority-data: {ca}\nusers:\n- name: fake\n  user:\n    token: {token}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: default\ncurrent-context: fake\n",
            self.url
        )
    }
}

/// The DER of the first certificate in a PEM string.
fn pem_to_der(pem: &str) -> Result<Vec<u8>, TestkitError> {
    use base64::Engine as _;
    let body: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|e| TestkitError::Tls(format!("bad CA PEM: {e}")))
}
