//! Minting the run's token with the user's client, and the scoped client built from it.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ServiceAccount;
use keyhole_core::Run;
use kube::api::{Api, PostParams};
use secrecy::{ExposeSecret as _, SecretString};
use zeroize::Zeroizing;

use crate::claims::{Claims, ExpectedClaims, check_claims};
use crate::{
    ClusterEndpoint, CredentialsError, TOKEN_PLACEHOLDER, kubeconfig_template, token_request,
};

/// The run's scoped token: held only in memory, zeroized on drop (by `SecretString`), and
/// redacted in `Debug`. There is no `Display`.
pub struct ScopedToken {
    token: SecretString,
    claims: Claims,
}

impl std::fmt::Debug for ScopedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScopedToken")
            .field("token", &"[REDACTED]")
            .field("subject", &self.claims.subject)
            .field("expires_at", &self.claims.expires_at)
            .finish()
    }
}

impl ScopedToken {
    /// Wraps a token after checking its claims (see [`check_claims`]).
    pub fn checked(
        token: SecretString,
        expected: &ExpectedClaims,
        now: Timestamp,
    ) -> Result<Self, CredentialsError> {
        let claims = check_claims(&token, expected, now)?;
        Ok(Self { token, claims })
    }

    /// The checked claims (safe to log: no secret in them).
    pub fn claims(&self) -> &Claims {
        &self.claims
    }

    /// The secret itself, for the HTTP client only.
    pub fn secret(&self) -> &SecretString {
        &self.token
    }
}

/// What a run's token must look like, from the run itself.
pub fn expected_claims(run: &Run, audiences: &[String]) -> ExpectedClaims {
    ExpectedClaims {
        namespace: run.namespace().to_string(),
        service_account: run.object_name().to_string(),
        not_after: run.expiry().expires_at(),
        audiences: audiences.to_vec(),
        bound_secret: Some(run.derived_name("anchor").to_string()),
    }
}

/// Mints the run's token with the *user's* client (which created the ServiceAccount and the
/// anchor Secret), then checks its claims before anyone uses it.
pub async fn mint(
    user: &kube::Client,
    run: &Run,
    audiences: &[String],
    anchor_uid: &str,
    now: Timestamp,
) -> Result<ScopedToken, CredentialsError> {
    let sas: Api<ServiceAccount> = Api::namespaced(user.clone(), run.namespace().as_str());
    let request = token_request(run, audiences, Some(anchor_uid));
    let answer = sas
        .create_token_request(run.object_name().as_str(), &PostParams::default(), &request)
        .await
        .map_err(|e| CredentialsError::Api {
            action: format!("creating a token for serviceaccount {}", run.object_name()),
            message: keyhole_core::kube_error(&e),
        })?;
    let token = answer
        .status
        .and_then(|s| s.token)
        .filter(|t| !t.is_empty())
        .map(SecretString::from)
        .ok_or(CredentialsError::NoToken)?;
    ScopedToken::checked(token, &expected_claims(run, audiences), now)
}

/// The scoped client's configuration: the cluster's CA as the only trust root, certificate
/// verification on (there is no switch to turn it off), the token as bearer, the run's
/// namespace as default, no automatic retries (the callers own retry policy and cleanup).
pub fn scoped_config(
    cluster: &ClusterEndpoint,
    namespace: &str,
    token: &ScopedToken,
) -> Result<kube::Config, CredentialsError> {
    let uri: http::Uri = cluster
        .server()
        .parse()
        .map_err(|e: http::uri::InvalidUri| CredentialsError::InvalidServer {
            url: cluster.server().to_string(),
            reason: e.to_string(),
        })?;
    let mut config = kube::Config::new(uri);
    config.default_namespace = namespace.to_string();
    config.root_cert = Some(cluster.ca_der()?);
    config.accept_invalid_certs = false;
    config.default_retry = false;
    config.auth_info.token = Some(token.secret().clone());
    Ok(config)
}

/// The scoped client itself.
pub fn scoped_client(
    cluster: &ClusterEndpoint,
    namespace: &str,
    token: &ScopedToken,
) -> Result<kube::Client, CredentialsError> {
    let config = scoped_config(cluster, namespace, token)?;
    kube::Client::try_from(config).map_err(|e| CredentialsError::Api {
        action: "building the scoped client".into(),
        message: keyhole_core::kube_error(&e),
    })
}

/// The scoped kubeconfig with the real token, for a child process: a secret from birth to
/// drop (the intermediate text is zeroized too).
pub fn scoped_kubeconfig(
    run: &Run,
    cluster: &ClusterEndpoint,
    token: &ScopedToken,
) -> SecretString {
    let template = Zeroizing::new(kubeconfig_template(run, cluster));
    // The token is base64url plus dots: no JSON escaping is needed.
    let filled =
        Zeroizing::new(template.replace(TOKEN_PLACEHOLDER, token.secret().expose_secret()));
    SecretString::from(filled.as_str())
}
