//! The scanner NetworkPolicy, label-selector matching, and Pod Security Admission labels.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Namespace as NamespaceObject;
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use keyhole_core::{MANAGED_BY_LABEL, MANAGED_BY_VALUE, Namespace, Run};

use crate::ApiEndpoint;

/// The NetworkPolicy for the pods of `run` (selected by the run's labels): all ingress denied;
/// egress denied except TCP to the API server when `api` is given, and DNS to the cluster's
/// `kube-dns` pods when `allow_dns` is set (only needed when the API server is reached by
/// name). Owned by the run's ServiceAccount so it goes with the run.
pub fn scanner_network_policy(
    run: &Run,
    api: Option<&ApiEndpoint>,
    allow_dns: bool,
    owner: OwnerReference,
) -> NetworkPolicy {
    let mut egress = Vec::new();
    if let Some(api) = api {
        egress.push(NetworkPolicyEgressRule {
            to: Some(vec![NetworkPolicyPeer {
                ip_block: Some(IPBlock {
                    cidr: api.cidr(),
                    except: None,
                }),
                ..NetworkPolicyPeer::default()
            }]),
            ports: Some(vec![port("TCP", api.port())]),
        });
    }
    if allow_dns {
        egress.push(NetworkPolicyEgressRule {
            to: Some(vec![NetworkPolicyPeer {
                namespace_selector: Some(match_labels([(
                    "kubernetes.io/metadata.name",
                    "kube-system",
                )])),
                pod_selector: Some(match_labels([("k8s-app", "kube-dns")])),
                ..NetworkPolicyPeer::default()
            }]),
            ports: Some(vec![port("UDP", 53), port("TCP", 53)]),
        });
    }
    NetworkPolicy {
        metadata: ObjectMeta {
            name: Some(run.derived_name("netpol").to_string()),
            namespace: Some(run.namespace().to_string()),
            labels: Some(run.labels()),
            annotations: Some(run.annotations()),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(run.labels()),
                match_expressions: None,
            }),
            policy_types: Some(vec!["Ingress".to_string(), "Egress".to_string()]),
            // Empty rule lists with both policy types listed: nothing in, nothing out but the above.
            ingress: Some(Vec::new()),
            egress: Some(egress),
        }),
    }
}

fn port(protocol: &str, port: u16) -> NetworkPolicyPort {
    NetworkPolicyPort {
        protocol: Some(protocol.to_string()),
        port: Some(IntOrString::Int(i32::from(port))),
        end_port: None,
    }
}

fn match_labels<const N: usize>(pairs: [(&str, &str); N]) -> LabelSelector {
    LabelSelector {
        match_labels: Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        match_expressions: None,
    }
}

/// Whether `policy`'s pod selector selects a pod with `labels`, with the Kubernetes semantics of
/// `matchLabels` and `matchExpressions` (`In`, `NotIn`, `Exists`, `DoesNotExist`; an unknown
/// operator selects nothing). An absent or empty selector selects every pod.
pub fn selects(policy: &NetworkPolicy, labels: &BTreeMap<String, String>) -> bool {
    let Some(sel) = policy.spec.as_ref().and_then(|s| s.pod_selector.as_ref()) else {
        return true;
    };
    let labels_ok = sel
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let exprs_ok = sel.match_expressions.iter().flatten().all(|e| {
        let values = e.values.as_deref().unwrap_or_default();
        match (e.operator.as_str(), labels.get(&e.key)) {
            ("In", Some(v)) => values.contains(v),
            ("In", None) => false,
            ("NotIn", Some(v)) => !values.contains(v),
            ("NotIn", None) => true,
            ("Exists", v) => v.is_some(),
            ("DoesNotExist", v) => v.is_none(),
            _ => false,
        }
    });
    labels_ok && exprs_ok
}

/// A Pod Security Standard level for a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodSecurityLevel {
    /// The `restricted` standard: what Keyhole's own pods always satisfy.
    Restricted,
    /// The `baseline` standard.
    Baseline,
}

impl PodSecurityLevel {
    fn as_str(self) -> &'static str {
        match self {
            Self::Restricted => "restricted",
            Self::Baseline => "baseline",
        }
    }
}

/// Pod Security Admission labels enforcing (and auditing and warning on) `level` at the
/// cluster's latest policy version, so a stricter future policy applies as soon as it exists.
pub fn pod_security_labels(level: PodSecurityLevel) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    for mode in ["enforce", "audit", "warn"] {
        labels.insert(
            format!("pod-security.kubernetes.io/{mode}"),
            level.as_str().to_string(),
        );
        labels.insert(
            format!("pod-security.kubernetes.io/{mode}-version"),
            "latest".to_string(),
        );
    }
    labels
}

/// A dedicated namespace for scanner pods: `restricted` Pod Security, managed by Keyhole.
pub fn scanner_namespace(name: &Namespace) -> NamespaceObject {
    let mut labels = pod_security_labels(PodSecurityLevel::Restricted);
    labels.insert(MANAGED_BY_LABEL.to_string(), MANAGED_BY_VALUE.to_string());
    NamespaceObject {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        ..NamespaceObject::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;
    use keyhole_core::{Expiry, PodName, RunId, ScanMode, ScanTarget, Ttl};

    fn run(id: &str) -> Run {
        let target = ScanTarget::pods(
            Namespace::new("prod").unwrap(),
            [PodName::new("web-0").unwrap()],
            None,
        )
        .unwrap();
        let expiry = Expiry::new("2026-11-26T14:00:00Z".parse().unwrap(), Ttl::default()).unwrap();
        Run::new(RunId::parse(id).unwrap(), target, ScanMode::Sidecar, expiry).unwrap()
    }

    fn owner() -> OwnerReference {
        OwnerReference {
            api_version: "v1".into(),
            kind: "ServiceAccount".into(),
            name: "keyhole-abcdefghij".into(),
            uid: "u".into(),
            ..OwnerReference::default()
        }
    }

    #[test]
    fn default_deny_with_only_api_server_egress() {
        let api = ApiEndpoint::parse("10.96.0.1:443").unwrap();
        let p = scanner_network_policy(&run("abcdefghij"), Some(&api), false, owner());
        let spec = p.spec.as_ref().unwrap();
        assert_eq!(
            spec.policy_types.as_deref(),
            Some(&["Ingress".to_string(), "Egress".to_string()][..])
        );
        assert_eq!(spec.ingress.as_deref(), Some(&[][..]));
        let egress = spec.egress.as_ref().unwrap();
        assert_eq!(egress.len(), 1);
        let peer = &egress[0].to.as_ref().unwrap()[0];
        assert_eq!(peer.ip_block.as_ref().unwrap().cidr, "10.96.0.1/32");
        assert!(peer.namespace_selector.is_none() && peer.pod_selector.is_none());
        assert_eq!(
            egress[0].ports.as_ref().unwrap()[0].port,
            Some(IntOrString::Int(443))
        );
        // Without an endpoint nothing may leave, and DNS only when asked.
        let none = scanner_network_policy(&run("abcdefghij"), None, false, owner());
        assert_eq!(none.spec.unwrap().egress, Some(vec![]));
        let dns = scanner_network_policy(&run("abcdefghij"), None, true, owner());
        let ports = dns.spec.unwrap().egress.unwrap()[0].ports.clone().unwrap();
        assert!(ports.iter().all(|p| p.port == Some(IntOrString::Int(53))));
    }

    #[test]
    fn selects_exactly_the_run_pods() {
        let r = run("abcdefghij");
        let p = scanner_network_policy(&r, None, false, owner());
        assert!(selects(&p, &r.labels()));
        let mut more = r.labels();
        more.insert("app".into(), "scanner".into());
        assert!(selects(&p, &more));
        assert!(!selects(&p, &run("bbcdefghij").labels()));
        assert!(!selects(&p, &BTreeMap::new()));
    }

    #[test]
    fn match_expressions_semantics() {
        let mut p = scanner_network_policy(&run("abcdefghij"), None, false, owner());
        let req = |op: &str, vals: Option<Vec<&str>>| LabelSelectorRequirement {
            key: "tier".into(),
            operator: op.into(),
            values: vals.map(|v| v.into_iter().map(String::from).collect()),
        };
        let labels = |tier: Option<&str>| {
            let mut l = run("abcdefghij").labels();
            if let Some(t) = tier {
                l.insert("tier".into(), t.into());
            }
            l
        };
        let cases = [
            (req("In", Some(vec!["a"])), Some("a"), true),
            (req("In", Some(vec!["a"])), None, false),
            (req("NotIn", Some(vec!["a"])), Some("a"), false),
            (req("NotIn", Some(vec!["a"])), None, true),
            (req("Exists", None), Some("x"), true),
            (req("Exists", None), None, false),
            (req("DoesNotExist", None), None, true),
            (req("Bogus", None), None, false),
        ];
        for (r, tier, want) in cases {
            p.spec
                .as_mut()
                .unwrap()
                .pod_selector
                .as_mut()
                .unwrap()
                .match_expressions = Some(vec![r.clone()]);
            assert_eq!(selects(&p, &labels(tier)), want, "{r:?} {tier:?}");
        }
    }

    #[test]
    fn restricted_namespace_labels() {
        let ns = scanner_namespace(&Namespace::new("keyhole-scans").unwrap());
        let l = ns.metadata.labels.unwrap();
        assert_eq!(l["pod-security.kubernetes.io/enforce"], "restricted");
        assert_eq!(l["pod-security.kubernetes.io/enforce-version"], "latest");
        assert_eq!(l[MANAGED_BY_LABEL], MANAGED_BY_VALUE);
    }
}
