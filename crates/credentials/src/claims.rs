//! Checks of a minted token's JWT claims before the token is used.
//!
//! The signature is the API server's business (it signed the token and verifies it on every
//! call); what Keyhole checks is that the server issued *what was asked*: the right subject, an
//! expiry no later than the run's, the audience, and the binding to the run's anchor object. A
//! mismatch means a misbehaving server, a proxy, or a wrong code path, and the run aborts.

use base64::Engine as _;
use jiff::Timestamp;
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;

use crate::CredentialsError;

/// Clock skew tolerated between this machine and the API server when comparing `exp` with the
/// run's expiry: the server computes `exp` from its own clock.
pub const CLOCK_SKEW_SECS: i64 = 60;

/// What the token must say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedClaims {
    /// Namespace of the run's ServiceAccount.
    pub namespace: String,
    /// Name of the run's ServiceAccount.
    pub service_account: String,
    /// The run's expiry: `exp` may not be later (beyond [`CLOCK_SKEW_SECS`]).
    pub not_after: Timestamp,
    /// Audiences asked for; empty means "the API server's own", and then `aud` must merely be
    /// non-empty.
    pub audiences: Vec<String>,
    /// Name of the Secret the token must be bound to, when the server reports bindings.
    pub bound_secret: Option<String>,
}

/// The claims Keyhole reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// `sub`.
    pub subject: String,
    /// `aud`.
    pub audiences: Vec<String>,
    /// `exp`.
    pub expires_at: Timestamp,
    /// `kubernetes.io.secret.name`, if present.
    pub bound_secret: Option<String>,
}

#[derive(Deserialize)]
struct RawClaims {
    sub: Option<String>,
    aud: Option<Aud>,
    /// NumericDate: an integer, or (rarely) a float; anything else is refused below.
    exp: Option<serde_json::Value>,
    #[serde(rename = "kubernetes.io")]
    kubernetes: Option<KubeClaims>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Aud {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct KubeClaims {
    secret: Option<NameClaim>,
}

#[derive(Deserialize)]
struct NameClaim {
    name: Option<String>,
}

fn bad(reason: impl Into<String>) -> CredentialsError {
    CredentialsError::TokenClaims(reason.into())
}

/// Decodes the claims of a JWT (without verifying its signature; see the module doc).
pub fn decode_claims(token: &SecretString) -> Result<Claims, CredentialsError> {
    let mut parts = token.expose_secret().split('.');
    let (Some(_header), Some(payload), Some(_sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("the token is not a JWT (header.payload.signature)"));
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| bad("the token's payload is not base64url"))?;
    let raw: RawClaims = serde_json::from_slice(&bytes)
        .map_err(|_| bad("the token's payload is not a JSON claims set"))?;
    let expires_at = raw
        .exp
        .and_then(|e| e.as_i64().or_else(|| e.as_f64().map(|f| f as i64)))
        .and_then(|e| Timestamp::from_second(e).ok())
        .ok_or_else(|| bad("the token has no valid exp claim"))?;
    Ok(Claims {
        subject: raw.sub.ok_or_else(|| bad("the token has no sub claim"))?,
        audiences: match raw.aud {
            Some(Aud::One(a)) => vec![a],
            Some(Aud::Many(a)) => a,
            None => Vec::new(),
        },
        expires_at,
        bound_secret: raw.kubernetes.and_then(|k| k.secret).and_then(|s| s.name),
    })
}

/// Decodes and checks the claims against what the run asked for, at time `now`.
pub fn check_claims(
    token: &SecretString,
    expected: &ExpectedClaims,
    now: Timestamp,
) -> Result<Claims, CredentialsError> {
    let c = decode_claims(token)?;
    let want_sub = format!(
        "system:serviceaccount:{}:{}",
        expected.namespace, expected.service_account
    );
    if c.subject != want_sub {
        return Err(bad(format!(
            "sub is {:?}, expected {want_sub:?}",
            c.subject
        )));
    }
    let limit = expected.not_after.as_second() + CLOCK_SKEW_SECS;
    if c.expires_at.as_second() > limit {
        return Err(bad(format!(
            "exp {} is later than the run's expiry {}",
            c.expires_at, expected.not_after
        )));
    }
    if c.expires_at <= now {
        return Err(bad(format!(
            "the token already expired at {}",
            c.expires_at
        )));
    }
    if expected.audiences.is_empty() {
        if c.audiences.is_empty() {
            return Err(bad("the token has no audience"));
        }
    } else {
        let mut got = c.audiences.clone();
        let mut want = expected.audiences.clone();
        got.sort();
        want.sort();
        if got != want {
            return Err(bad(format!(
                "aud is {:?}, expected {:?}",
                c.audiences, expected.audiences
            )));
        }
    }
    if let (Some(want), Some(got)) = (&expected.bound_secret, &c.bound_secret)
        && want != got
    {
        return Err(bad(format!(
            "the token is bound to secret {got:?}, expected {want:?}"
        )));
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn jwt(claims: serde_json::Value) -> SecretString {
        let e = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        SecretString::from(format!(
            "{}.{}.{}",
            e(br#"{"alg":"RS256"}"#),
            e(claims.to_string().as_bytes()),
            e(b"sig")
        ))
    }

    fn expected() -> ExpectedClaims {
        ExpectedClaims {
            namespace: "shop".into(),
            service_account: "keyhole-abcdefghij".into(),
            not_after: "2026-11-26T14:10:00Z".parse().unwrap(),
            audiences: vec![],
            bound_secret: Some("keyhole-abcdefghij-anchor".into()),
        }
    }

    fn good() -> serde_json::Value {
        json!({
            "sub": "system:serviceaccount:shop:keyhole-abcdefghij",
            "aud": ["https://kubernetes.default.svc"],
            "exp": "2026-11-26T14:10:00Z".parse::<Timestamp>().unwrap().as_second(),
            "kubernetes.io": {"secret": {"name": "keyhole-abcdefghij-anchor"}},
        })
    }

    fn now() -> Timestamp {
        "2026-11-26T14:00:00Z".parse().unwrap()
    }

    #[test]
    fn accepts_what_was_asked() {
        let c = check_claims(&jwt(good()), &expected(), now()).unwrap();
        assert_eq!(c.bound_secret.as_deref(), Some("keyhole-abcdefghij-anchor"));
    }

    #[test]
    fn refuses_every_mismatch() {
        let cases: Vec<(&str, serde_json::Value)> = vec![
            ("sub", json!({"sub": "system:serviceaccount:shop:default"})),
            ("later than", json!({"exp": now().as_second() + 3600})),
            ("already expired", json!({"exp": now().as_second() - 1})),
            ("no audience", json!({"aud": []})),
            (
                "bound to secret",
                json!({"kubernetes.io": {"secret": {"name": "other"}}}),
            ),
            ("no valid exp", json!({"exp": "soon"})),
        ];
        for (needle, patch) in cases {
            let mut c = good();
            for (k, v) in patch.as_object().unwrap() {
                c[k] = v.clone();
            }
            let err = check_claims(&jwt(c), &expected(), now())
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{needle}: {err}");
        }
        let mut e = expected();
        e.audiences = vec!["vault".into()];
        assert!(
            check_claims(&jwt(good()), &e, now())
                .unwrap_err()
                .to_string()
                .contains("aud is")
        );
        for not_jwt in ["", "a.b", "a.b.c.d", "a.!!!.c"] {
            assert!(check_claims(&SecretString::from(not_jwt), &expected(), now()).is_err());
        }
    }

    #[test]
    fn errors_never_contain_the_token() {
        let mut c = good();
        c["sub"] = json!("system:serviceaccount:shop:default");
        let token = jwt(c);
        let err = check_claims(&token, &expected(), now()).unwrap_err();
        assert!(!format!("{err} {err:?}").contains(token.expose_secret()));
    }
}
