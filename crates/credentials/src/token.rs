//! The TokenRequest of a run and the anchor object that its token is bound to.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use keyhole_core::{Run, Ttl};

/// The token lifetime for `ttl`: Kubernetes refuses less than 600 s, and asking for more than
/// the run's TTL would outlive the RBAC objects. `Ttl` already enforces the 600 s floor; the
/// `max` keeps this function correct on its own.
pub fn token_expiration_seconds(ttl: Ttl) -> i64 {
    ttl.as_secs().max(600)
}

/// The anchor Secret of a run: an empty, immutable Secret that the token is bound to, so that
/// deleting it (or its owner, the run's ServiceAccount) revokes the token: within seconds, not at
/// once, since kube-apiserver caches a successful token check for up to 10 s (measured on 1.34
/// and 1.37: refused 7–9 s after the run's cleanup). A Secret is
/// used because TokenRequest binds only to Pods, Secrets and Nodes; it holds no data and the
/// run's Role grants no access to it.
pub fn anchor_secret(run: &Run, owner: OwnerReference) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(run.derived_name("anchor").to_string()),
            namespace: Some(run.namespace().to_string()),
            labels: Some(run.labels()),
            annotations: Some(run.annotations()),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".to_string()),
        immutable: Some(true),
        data: Some(BTreeMap::<String, ByteString>::new()),
        ..Secret::default()
    }
}

/// The TokenRequest for the run's ServiceAccount: `expirationSeconds` from the TTL, bound to
/// the anchor Secret (by uid when known, so a recreated Secret of the same name cannot keep
/// the token alive). Empty `audiences` lets the API server use its own audience, the only one
/// it accepts for API calls; the list is still sent, as the 1.30 schema requires it.
pub fn token_request(run: &Run, audiences: &[String], anchor_uid: Option<&str>) -> TokenRequest {
    TokenRequest {
        metadata: ObjectMeta {
            name: Some(run.object_name().to_string()),
            namespace: Some(run.namespace().to_string()),
            ..ObjectMeta::default()
        },
        spec: Some(TokenRequestSpec {
            audiences: Some(audiences.to_vec()),
            expiration_seconds: Some(token_expiration_seconds(run.expiry().ttl())),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".to_string()),
                kind: Some("Secret".to_string()),
                name: Some(run.derived_name("anchor").to_string()),
                uid: anchor_uid.map(str::to_string),
            }),
            ..TokenRequestSpec::default()
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyhole_core::{Expiry, Namespace, PodName, RunId, ScanMode, ScanTarget};
    use proptest::prelude::*;

    fn run(ttl_secs: u64) -> Run {
        let target = ScanTarget::pods(
            Namespace::new("prod").unwrap(),
            [PodName::new("web-0").unwrap()],
            None,
        )
        .unwrap();
        let ttl = Ttl::new(std::time::Duration::from_secs(ttl_secs)).unwrap();
        let expiry = Expiry::new("2026-11-26T14:00:00Z".parse().unwrap(), ttl).unwrap();
        Run::new(
            RunId::parse("abcdefghij").unwrap(),
            target,
            ScanMode::Standard,
            expiry,
        )
        .unwrap()
    }

    proptest! {
        #[test]
        fn token_lifetime_is_the_ttl_and_never_below_600(secs in 600u64..=86400) {
            let tr = token_request(&run(secs), &[], None);
            let spec = tr.spec.unwrap();
            // No audience asked: an empty list, so the API server uses its own.
            prop_assert_eq!(spec.audiences, Some(vec![]));
            let exp = spec.expiration_seconds.unwrap();
            prop_assert_eq!(exp, secs as i64);
            prop_assert!((600..=86400).contains(&exp));
        }
    }

    #[test]
    fn token_is_bound_to_the_anchor_secret() {
        let r = run(600);
        let tr = token_request(
            &r,
            &["https://kubernetes.default.svc".into()],
            Some("uid-1"),
        );
        let spec = tr.spec.unwrap();
        assert_eq!(
            spec.audiences,
            Some(vec!["https://kubernetes.default.svc".to_string()])
        );
        let b = spec.bound_object_ref.unwrap();
        assert_eq!(b.kind.as_deref(), Some("Secret"));
        assert_eq!(b.name.as_deref(), Some("keyhole-abcdefghij-anchor"));
        assert_eq!(b.uid.as_deref(), Some("uid-1"));
        assert_eq!(tr.metadata.name.as_deref(), Some("keyhole-abcdefghij"));
        let owner = OwnerReference {
            api_version: "v1".into(),
            kind: "ServiceAccount".into(),
            name: "keyhole-abcdefghij".into(),
            uid: "sa-uid".into(),
            ..OwnerReference::default()
        };
        let s = anchor_secret(&r, owner.clone());
        assert_eq!(s.metadata.name.as_deref(), b.name.as_deref());
        assert_eq!(s.metadata.owner_references, Some(vec![owner]));
        assert_eq!(s.data.as_ref().map(|d| d.len()), Some(0));
        assert_eq!(s.immutable, Some(true));
    }
}
