//! Integration tests: the fake API server driven by a real `kube::Client`, in-process and over
//! HTTPS with the rcgen CA.

mod authz;
mod crud;
mod exec;
mod faults;
mod node;
mod pods;
mod tls;
mod tokens;

use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use kube::api::{Api, PostParams};
use kube::core::ObjectMeta;

/// The `Status` of an API error, or a panic naming what came back instead.
pub(crate) fn status<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> Box<kube::core::Status> {
    match r {
        Err(kube::Error::Api(s)) => s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

pub(crate) fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        ..ObjectMeta::default()
    }
}

pub(crate) fn configmap(name: &str, labels: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            ..ObjectMeta::default()
        },
        ..ConfigMap::default()
    }
}

pub(crate) fn secret(name: &str) -> Secret {
    Secret {
        metadata: meta(name),
        ..Secret::default()
    }
}

pub(crate) fn rule(resources: &[&str], verbs: &[&str], names: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![String::new()]),
        resources: Some(resources.iter().map(|s| (*s).to_owned()).collect()),
        verbs: verbs.iter().map(|s| (*s).to_owned()).collect(),
        resource_names: (!names.is_empty())
            .then(|| names.iter().map(|s| (*s).to_owned()).collect()),
        ..PolicyRule::default()
    }
}

/// Creates (as admin) a ServiceAccount bound to a Role with `rules` in `ns`.
pub(crate) async fn sa_with_role(admin: &kube::Client, ns: &str, sa: &str, rules: Vec<PolicyRule>) {
    let pp = PostParams::default();
    Api::<ServiceAccount>::namespaced(admin.clone(), ns)
        .create(
            &pp,
            &ServiceAccount {
                metadata: meta(sa),
                ..ServiceAccount::default()
            },
        )
        .await
        .unwrap();
    Api::<Role>::namespaced(admin.clone(), ns)
        .create(
            &pp,
            &Role {
                metadata: meta(sa),
                rules: Some(rules),
            },
        )
        .await
        .unwrap();
    let binding = RoleBinding {
        metadata: meta(sa),
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "Role".into(),
            name: sa.into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: sa.into(),
            namespace: Some(ns.into()),
            ..Subject::default()
        }]),
    };
    Api::<RoleBinding>::namespaced(admin.clone(), ns)
        .create(&pp, &binding)
        .await
        .unwrap();
}
