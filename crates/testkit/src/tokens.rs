//! ServiceAccount tokens: the `serviceaccounts/token` subresource (TokenRequest) and bearer-token
//! authentication. Tokens are JWT-shaped (`header.payload.signature`, base64url) with the claims
//! the real issuer writes; the fake validates them by lookup, and a token stops authenticating
//! when it expires on the fake clock, when its bound object or its ServiceAccount is deleted
//! (or recreated with a new uid), or when its audience is not the API server's.

use base64::Engine as _;
use jiff::Timestamp;
use serde_json::{Value, json};

use crate::authz::Identity;
use crate::cluster::State;
use crate::objects::timestamp;
use crate::resources::{ResourceDef, by_plural};
use crate::status::{ApiError, FieldError, FieldErrorKind};
use crate::store::{new_uid, random_bytes};

/// The token issuer and the API server's own audience (kubeadm's defaults): a token must
/// carry this audience to authenticate.
pub const API_AUDIENCE: &str = "https://kubernetes.default.svc.cluster.local";

const MIN_EXPIRATION: i64 = 600;
const MAX_EXPIRATION: i64 = 1 << 32;
const DEFAULT_EXPIRATION: i64 = 3600;

/// What the fake remembers about a token it issued.
#[derive(Debug, Clone)]
pub(crate) struct TokenRecord {
    pub(crate) namespace: String,
    pub(crate) sa_name: String,
    pub(crate) sa_uid: String,
    /// (resource, name, uid) of the bound object.
    pub(crate) bound: Option<(&'static ResourceDef, String, String)>,
    pub(crate) expires: Timestamp,
    pub(crate) audiences: Vec<String>,
    pub(crate) jti: String,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Resolves a bearer token to an identity (and the record, for SelfSubjectReview).
pub(crate) fn authenticate(
    st: &State,
    now: Timestamp,
    token: Option<&str>,
) -> (Identity, Option<TokenRecord>) {
    let Some(token) = token else {
        return (Identity::Anonymous, None);
    };
    if token == st.admin_token {
        return (Identity::Admin, None);
    }
    let Some(rec) = st.tokens.get(token) else {
        return (Identity::Unauthenticated, None);
    };
    let sa_def = by_plural("", "serviceaccounts");
    let sa_alive = sa_def
        .and_then(|d| st.store.get(d, &rec.namespace, &rec.sa_name))
        .is_some_and(|sa| sa["metadata"]["uid"].as_str() == Some(&rec.sa_uid));
    let bound_alive = rec.bound.as_ref().is_none_or(|(def, name, uid)| {
        st.store.get(def, &rec.namespace, name).is_some_and(|o| {
            o["metadata"]["uid"].as_str() == Some(uid.as_str())
                && o["metadata"]["deletionTimestamp"].is_null()
        })
    });
    let audience_ok = rec.audiences.iter().any(|a| a == API_AUDIENCE);
    if now < rec.expires && sa_alive && bound_alive && audience_ok {
        (
            Identity::ServiceAccount {
                namespace: rec.namespace.clone(),
                name: rec.sa_name.clone(),
            },
            Some(rec.clone()),
        )
    } else {
        (Identity::Unauthenticated, None)
    }
}

/// Handles POST `.../serviceaccounts/NAME/token`. Returns the TokenRequest to answer with.
pub(crate) fn token_request(
    st: &mut State,
    now: Timestamp,
    ns: &str,
    sa_name: &str,
    body: &Value,
) -> Result<Value, ApiError> {
    let sa_def =
        by_plural("", "serviceaccounts").ok_or_else(|| ApiError::internal("no serviceaccounts"))?;
    let Some(sa) = st.store.get(sa_def, ns, sa_name) else {
        return Err(ApiError::not_found("", "serviceaccounts", sa_name));
    };
    let sa_uid = sa["metadata"]["uid"].as_str().unwrap_or("").to_owned();
    let spec = &body["spec"];
    let expiration = match &spec["expirationSeconds"] {
        Value::Null => DEFAULT_EXPIRATION,
        v => v
            .as_i64()
            .ok_or_else(|| ApiError::bad_request("spec.expirationSeconds must be an integer"))?,
    };
    let invalid = |detail: &str| {
        ApiError::invalid(
            "authentication.k8s.io",
            "TokenRequest",
            "",
            &[
                FieldError::new("spec.expirationSeconds", FieldErrorKind::Invalid, detail)
                    .with_value(expiration.to_string()),
            ],
        )
    };
    if expiration < MIN_EXPIRATION {
        return Err(invalid("may not specify a duration less than 10 minutes"));
    }
    if expiration > MAX_EXPIRATION {
        return Err(invalid(
            "may not specify a duration larger than 2^32 seconds",
        ));
    }
    let audiences: Vec<String> = match spec["audiences"].as_array() {
        Some(a) if !a.is_empty() => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => vec![API_AUDIENCE.to_owned()],
    };
    let mut bound = None;
    let mut bound_claim = None;
    let bref = &spec["boundObjectRef"];
    if bref.is_object() {
        let kind = bref["kind"].as_str().unwrap_or("");
        let api_version = bref["apiVersion"].as_str().unwrap_or("");
        let name = bref["name"].as_str().unwrap_or("");
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        let (plural, claim) = match (group, kind) {
            ("", "Pod") => ("pods", "pod"),
            ("", "Secret") => ("secrets", "secret"),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "cannot bind token to object of type {}",
                    if group.is_empty() {
                        format!("/{api_version}, Kind={kind}")
                    } else {
                        format!("{api_version}, Kind={kind}")
                    }
                )));
            }
        };
        let def = by_plural("", plural).ok_or_else(|| ApiError::internal("no bound kind"))?;
        let Some(obj) = st.store.get(def, ns, name) else {
            return Err(ApiError::not_found("", plural, name));
        };
        if plural == "pods" && obj["spec"]["serviceAccountName"].as_str() != Some(sa_name) {
            return Err(ApiError::bad_request(format!(
                "cannot bind token for serviceaccount {sa_name:?} to pod running with different serviceaccount name."
            )));
        }
        let uid = obj["metadata"]["uid"].as_str().unwrap_or("").to_owned();
        if let Some(want) = bref["uid"].as_str().filter(|u| !u.is_empty())
            && want != uid
        {
            return Err(ApiError::conflict(
                "",
                kind,
                name,
                &format!(
                    "the UID in the bound object reference ({want}) does not match the UID in record. The object might have been deleted and then recreated"
                ),
            ));
        }
        bound_claim = Some((claim, json!({"name": name, "uid": uid})));
        bound = Some((def, name.to_owned(), uid));
    }
    let iat = now.as_second();
    let exp = iat + expiration;
    let jti = new_uid();
    let mut k8s = json!({
        "namespace": ns,
        "serviceaccount": {"name": sa_name, "uid": sa_uid},
    });
    if let Some((claim, v)) = bound_claim {
        k8s[claim] = v;
    }
    let claims = json!({
        "aud": audiences,
        "exp": exp,
        "iat": iat,
        "nbf": iat,
        "iss": API_AUDIENCE,
        "jti": jti,
        "kubernetes.io": k8s,
        "sub": format!("system:serviceaccount:{ns}:{sa_name}"),
    });
    let header = json!({"alg": "RS256", "kid": "keyhole-testkit"});
    let token = format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes()),
        b64(&random_bytes::<64>())
    );
    let expires = Timestamp::from_second(exp).unwrap_or(Timestamp::MAX);
    st.tokens.insert(
        token.clone(),
        TokenRecord {
            namespace: ns.to_owned(),
            sa_name: sa_name.to_owned(),
            sa_uid,
            bound,
            expires,
            audiences: audiences.clone(),
            jti,
        },
    );
    let mut spec_out = json!({"audiences": audiences, "expirationSeconds": expiration});
    if bref.is_object() {
        spec_out["boundObjectRef"] = bref.clone();
    }
    Ok(json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": sa_name, "namespace": ns, "creationTimestamp": timestamp(now)},
        "spec": spec_out,
        "status": {"token": token, "expirationTimestamp": timestamp(expires)},
    }))
}
