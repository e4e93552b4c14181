//! The kubeconfig of the scoped client, with the TLS policy built in.

use base64::Engine as _;
use keyhole_core::Run;
use serde_json::json;

use crate::CredentialsError;

/// Stands where the token goes; the live part fills it in memory only, never on disk.
pub const TOKEN_PLACEHOLDER: &str = "<scoped token, filled in memory at scan time>";

/// A cluster the scoped client may talk to: an `https://` server and the CA that signs its
/// certificate. There is deliberately no way to express `insecure-skip-tls-verify`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterEndpoint {
    server: String,
    ca_data: String,
}

impl ClusterEndpoint {
    /// Checks that `server` is an `https://` URL without credentials, path, query or fragment,
    /// and that `ca_data` (base64 PEM, as in a kubeconfig's `certificate-authority-data`) holds
    /// at least one certificate.
    pub fn new(server: &str, ca_data: &str) -> Result<Self, CredentialsError> {
        let invalid = |reason: &str| CredentialsError::InvalidServer {
            url: server.to_string(),
            reason: reason.to_string(),
        };
        let rest = match server.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => rest,
            _ => return Err(CredentialsError::InsecureServer(server.to_string())),
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.is_empty() {
            return Err(invalid("no host"));
        }
        if authority.contains('@') {
            return Err(invalid("credentials in the URL are not allowed"));
        }
        if authority.contains(['/', '?', '#']) {
            return Err(invalid("use scheme://host[:port] only"));
        }
        let ca_data = ca_data.trim();
        if ca_data.is_empty() {
            return Err(CredentialsError::MissingCa);
        }
        let pem = base64::engine::general_purpose::STANDARD
            .decode(ca_data)
            .map_err(|e| CredentialsError::InvalidCa(e.to_string()))?;
        let pem = String::from_utf8_lossy(&pem);
        if !pem.contains("-----BEGIN CERTIFICATE-----") {
            return Err(CredentialsError::InvalidCa(
                "no PEM certificate block".into(),
            ));
        }
        Ok(Self {
            server: format!("https://{authority}"),
            ca_data: ca_data.to_string(),
        })
    }

    /// The server URL.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The CA certificates, DER-encoded: the scoped client's only trust roots.
    pub fn ca_der(&self) -> Result<Vec<Vec<u8>>, CredentialsError> {
        let pem = base64::engine::general_purpose::STANDARD
            .decode(&self.ca_data)
            .map_err(|e| CredentialsError::InvalidCa(e.to_string()))?;
        certificates(&pem)
    }
}

/// The `CERTIFICATE` blocks of a PEM bundle, DER-encoded.
fn certificates(pem: &[u8]) -> Result<Vec<Vec<u8>>, CredentialsError> {
    let blocks = pem::parse_many(pem).map_err(|e| CredentialsError::InvalidCa(e.to_string()))?;
    Ok(blocks
        .into_iter()
        .filter(|b| b.tag() == "CERTIFICATE")
        .map(pem::Pem::into_contents)
        .collect())
}

/// The kubeconfig (JSON, which every kubeconfig reader accepts) of the run's scoped client:
/// one cluster with its CA, one user holding [`TOKEN_PLACEHOLDER`], one context pinned to the
/// run's namespace.
pub fn kubeconfig_template(run: &Run, cluster: &ClusterEndpoint) -> String {
    let name = run.object_name().to_string();
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": name,
            "cluster": {
                "server": cluster.server,
                "certificate-authority-data": cluster.ca_data,
            },
        }],
        "users": [{"name": name, "user": {"token": TOKEN_PLACEHOLDER}}],
        "contexts": [{
            "name": name,
            "context": {"cluster": name, "user": name, "namespace": run.namespace().as_str()},
        }],
        "current-context": name,
    });
    serde_json::to_string_pretty(&config).expect("a json! value always serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyhole_core::{Expiry, Namespace, PodName, RunId, ScanMode, ScanTarget, Ttl};

    fn ca() -> String {
        base64::engine::general_purpose::STANDARD
            .encode("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    }

    #[test]
    fn tls_policy_refuses_what_it_must() {
        let e = |s: &str, ca: &str| ClusterEndpoint::new(s, ca).unwrap_err();
        assert_eq!(
            e("http://10.0.0.1:6443", &ca()),
            CredentialsError::InsecureServer("http://10.0.0.1:6443".into())
        );
        assert!(matches!(
            e("10.0.0.1:6443", &ca()),
            CredentialsError::InsecureServer(_)
        ));
        assert!(matches!(
            e("https://", &ca()),
            CredentialsError::InvalidServer { .. }
        ));
        assert!(matches!(
            e("https://u:p@h", &ca()),
            CredentialsError::InvalidServer { .. }
        ));
        assert!(matches!(
            e("https://h/x", &ca()),
            CredentialsError::InvalidServer { .. }
        ));
        assert_eq!(e("https://h", " "), CredentialsError::MissingCa);
        assert!(matches!(
            e("https://h", "!!"),
            CredentialsError::InvalidCa(_)
        ));
        let not_pem = base64::engine::general_purpose::STANDARD.encode("hello");
        assert!(matches!(
            e("https://h", &not_pem),
            CredentialsError::InvalidCa(_)
        ));
    }

    #[test]
    fn template_pins_ca_namespace_and_never_skips_verification() {
        let target = ScanTarget::pods(
            Namespace::new("prod").unwrap(),
            [PodName::new("web-0").unwrap()],
            None,
        )
        .unwrap();
        let expiry = Expiry::new("2026-11-26T14:00:00Z".parse().unwrap(), Ttl::default()).unwrap();
        let run = Run::new(
            RunId::parse("abcdefghij").unwrap(),
            target,
            ScanMode::Standard,
            expiry,
        )
        .unwrap();
        let cluster = ClusterEndpoint::new("HTTPS://api.example:6443/", &ca()).unwrap();
        let text = kubeconfig_template(&run, &cluster);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            v["clusters"][0]["cluster"]["server"],
            "https://api.example:6443"
        );
        assert_eq!(
            v["clusters"][0]["cluster"]["certificate-authority-data"],
            ca()
        );
        assert_eq!(v["contexts"][0]["context"]["namespace"], "prod");
        assert_eq!(v["users"][0]["user"]["token"], TOKEN_PLACEHOLDER);
        assert!(!text.contains("insecure"));
    }
}
