//! Properties over arbitrary namespaces, pods, concrete modes and TTLs: the Role allows exactly
//! the requests written out by hand in [`EXPECTED`] (and `planned_requests` lists exactly
//! those), denies every dangerous one, pins names, holds no wildcard, and expires when it
//! should.

use std::collections::BTreeSet;

use keyhole_core::{EXPIRES_AT_ANNOTATION, Expiry, Namespace, PodName, ScanMode, Ttl};
use keyhole_rbac::eval::{
    Request, ResourceRequest, dangerous_requests, planned_requests, role_allows,
};
use keyhole_rbac::{RbacError, role, role_binding, rules, service_account};
use proptest::prelude::*;

use crate::{ns, pod, run_at};

const UID: &str = "11111111-2222-3333-4444-555555555555";

/// What each mode must be allowed on each target pod, and nothing else: (mode, verb,
/// subresource of `pods`), written by hand from what each workflow does, independent of
/// keyhole-rbac's grant table.
///
/// - standard reads the pod and execs into it; WebSocket exec is authorized as `get` on API
///   servers before 1.35 and as `create` from 1.35 on, so both;
/// - distroless reads the pod, adds the debug container (`patch` on `ephemeralcontainers`,
///   `get` to read it back) and reads the results from its log;
/// - sidecar reads the pod and the sidecar's log.
const EXPECTED: &[(ScanMode, &str, Option<&str>)] = &[
    (ScanMode::Standard, "get", None),
    (ScanMode::Standard, "create", Some("exec")),
    (ScanMode::Standard, "get", Some("exec")),
    (ScanMode::Distroless, "get", None),
    (ScanMode::Distroless, "get", Some("ephemeralcontainers")),
    (ScanMode::Distroless, "patch", Some("ephemeralcontainers")),
    (ScanMode::Distroless, "get", Some("log")),
    (ScanMode::Sidecar, "get", None),
    (ScanMode::Sidecar, "get", Some("log")),
];

/// [`EXPECTED`] for `mode` on each of `pods` by name, in `namespace`.
fn expected(mode: ScanMode, namespace: &Namespace, pods: &[PodName]) -> BTreeSet<ResourceRequest> {
    let mut out = BTreeSet::new();
    for (_, verb, sub) in EXPECTED.iter().filter(|(m, _, _)| *m == mode) {
        for pod in pods {
            let mut r = ResourceRequest::new(*verb, "pods")
                .name(pod.as_str())
                .namespace(namespace.as_str());
            r.subresource = sub.map(str::to_string);
            out.insert(r);
        }
    }
    assert!(!out.is_empty(), "{mode} has no expected requests");
    out
}

fn namespace() -> impl Strategy<Value = Namespace> {
    "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?".prop_map(|s| Namespace::new(s).unwrap())
}

/// DNS-1123 subdomains of up to three labels.
fn pod_name() -> impl Strategy<Value = PodName> {
    "[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?){0,2}"
        .prop_map(|s| PodName::new(s).unwrap())
}

fn pods() -> impl Strategy<Value = Vec<PodName>> {
    proptest::collection::btree_set(pod_name(), 1..=5).prop_map(|s| s.into_iter().collect())
}

fn concrete_mode() -> impl Strategy<Value = ScanMode> {
    prop_oneof![
        Just(ScanMode::Standard),
        Just(ScanMode::Distroless),
        Just(ScanMode::Sidecar),
    ]
}

/// The first of `candidates` not in `taken`.
fn free(candidates: &[&str], taken: &[&str]) -> String {
    candidates
        .iter()
        .find(|c| !taken.contains(c))
        .expect("more candidates than taken names")
        .to_string()
}

/// Every request of the exactness universe: verbs × (sub)resources × names × namespaces.
fn universe(namespace: &Namespace, pods: &[PodName]) -> Vec<ResourceRequest> {
    const VERBS: [&str; 11] = [
        "get",
        "list",
        "watch",
        "create",
        "update",
        "patch",
        "delete",
        "deletecollection",
        "escalate",
        "bind",
        "impersonate",
    ];
    const RESOURCES: [(&str, &str, Option<&str>); 12] = [
        ("", "pods", None),
        ("", "pods", Some("exec")),
        ("", "pods", Some("log")),
        ("", "pods", Some("ephemeralcontainers")),
        ("", "pods", Some("attach")),
        ("", "pods", Some("portforward")),
        ("", "pods", Some("proxy")),
        ("", "secrets", None),
        ("", "serviceaccounts", Some("token")),
        ("", "configmaps", None),
        ("rbac.authorization.k8s.io", "roles", None),
        ("rbac.authorization.k8s.io", "rolebindings", None),
    ];
    let taken: Vec<&str> = pods.iter().map(PodName::as_str).collect();
    let another = free(
        &["another-pod", "another-pod-1", "another-pod-2", "x"],
        &taken,
    );
    let other_ns = free(&["other", "other-1"], &[namespace.as_str()]);
    let mut names: Vec<Option<String>> = taken.iter().map(|p| Some(p.to_string())).collect();
    names.extend([Some(another), None]);
    let mut out = Vec::new();
    for verb in VERBS {
        for (group, resource, sub) in RESOURCES {
            for name in &names {
                for namespace in [namespace.as_str(), other_ns.as_str()] {
                    let mut r = ResourceRequest::new(verb, resource)
                        .group(group)
                        .namespace(namespace);
                    r.subresource = sub.map(str::to_string);
                    r.name = name.clone();
                    out.push(r);
                }
            }
        }
    }
    out
}

/// Seconds between 2001 and 2286: any plausible issue time.
const ISSUED: std::ops::Range<i64> = 1_000_000_000..10_000_000_000;

proptest! {
    #[test]
    fn roles_are_exact_pinned_wildcard_free_and_expiring(
        namespace in namespace(),
        pods in pods(),
        mode in concrete_mode(),
        ttl_secs in 600u64..=86400,
        issued_at in ISSUED,
    ) {
        let run = run_at(mode, &namespace, &pods, issued_at, ttl_secs);
        let sa = service_account(&run);
        let role = role(&run, UID).unwrap();
        let rb = role_binding(&run, UID);

        let names: Vec<String> = pods.iter().map(|p| p.to_string()).collect();
        prop_assert!(!role.rules.as_deref().unwrap().is_empty(), "the Role has rules");
        for rule in role.rules.as_deref().unwrap() {
            prop_assert_eq!(rule.resource_names.as_ref(), Some(&names));
        }

        for json in [
            serde_json::to_string(&sa).unwrap(),
            serde_json::to_string(&role).unwrap(),
            serde_json::to_string(&rb).unwrap(),
        ] {
            prop_assert!(!json.contains('*'), "wildcard in {}", json);
        }

        let expected = expected(mode, &namespace, &pods);
        let planned: BTreeSet<ResourceRequest> =
            planned_requests(mode, &namespace, &pods).unwrap().into_iter().collect();
        prop_assert_eq!(&planned, &expected, "planned_requests lists what {} needs", mode);
        let dangerous = dangerous_requests(&namespace, &pods);
        prop_assert!(dangerous.len() > 30, "only {} dangerous requests", dangerous.len());
        for (why, r) in dangerous {
            prop_assert!(!role_allows(&role, &r.clone().into()), "allowed: {} ({})", r, why);
        }

        let universe = universe(&namespace, &pods);
        for r in &expected {
            prop_assert!(universe.contains(r), "the universe lacks {}", r);
        }
        for r in universe {
            let allowed = role_allows(&role, &Request::Resource(r.clone()));
            prop_assert_eq!(allowed, expected.contains(&r), "{}", r);
        }

        let issued = run.expiry().issued_at();
        prop_assert_eq!(issued.as_second(), issued_at);
        for meta in [&sa.metadata, &role.metadata, &rb.metadata] {
            let value = &meta.annotations.as_ref().unwrap()[EXPIRES_AT_ANNOTATION];
            let expires = Expiry::parse_annotation(value).unwrap();
            let lifetime = expires.as_second() - issued.as_second();
            prop_assert_eq!(lifetime, i64::try_from(ttl_secs).unwrap());
            let bounds = Ttl::MIN.as_secs()..=Ttl::MAX.as_secs();
            prop_assert!(bounds.contains(&u64::try_from(lifetime).unwrap()));
        }
    }

    #[test]
    fn auto_mode_is_refused(namespace in namespace(), pods in pods()) {
        prop_assert_eq!(rules(ScanMode::Auto, &pods), Err(RbacError::UnresolvedMode));
        prop_assert_eq!(
            planned_requests(ScanMode::Auto, &namespace, &pods),
            Err(RbacError::UnresolvedMode)
        );
        let run = run_at(ScanMode::Auto, &namespace, &pods, 1_795_701_600, 600);
        prop_assert_eq!(role(&run, UID), Err(RbacError::UnresolvedMode));
    }
}

#[test]
fn dangerous_requests_avoid_targets_even_with_colliding_names() {
    // A target named like the stand-in outsider, in the namespace used as "another one".
    let namespace = ns("kube-system");
    let pods = [pod("keyhole-not-a-target"), pod("web-0")];
    let dangerous = dangerous_requests(&namespace, &pods);
    for mode in [ScanMode::Standard, ScanMode::Distroless, ScanMode::Sidecar] {
        let expected = expected(mode, &namespace, &pods);
        for (why, r) in &dangerous {
            assert!(
                !expected.contains(r),
                "{mode}: {r} is needed yet dangerous ({why})"
            );
        }
    }
    assert!(
        dangerous
            .iter()
            .any(|(_, r)| r.namespace.as_deref() == Some("default")),
        "another namespace is covered"
    );
}

#[test]
fn dangerous_requests_cover_the_required_cases() {
    let namespace = ns("prod");
    let pods = [pod("web-0")];
    let dangerous: Vec<ResourceRequest> = dangerous_requests(&namespace, &pods)
        .into_iter()
        .map(|(why, r)| {
            assert!(!why.is_empty(), "{r} has no reason");
            r
        })
        .collect();
    let has = |r: ResourceRequest| dangerous.contains(&r);
    let here = |verb: &str, resource: &str| ResourceRequest::new(verb, resource).namespace("prod");
    let outsider = "keyhole-not-a-target";
    assert!(has(here("get", "pods").name(outsider)));
    assert!(has(here("create", "pods")
        .subresource("exec")
        .name(outsider)));
    assert!(has(here("get", "pods").subresource("exec").name(outsider)));
    assert!(has(here("patch", "pods")
        .subresource("ephemeralcontainers")
        .name(outsider)));
    assert!(has(here("get", "pods").subresource("log").name(outsider)));
    for verb in ["get", "list"] {
        assert!(has(here(verb, "secrets")));
    }
    for verb in ["list", "watch", "create"] {
        assert!(has(here(verb, "pods")));
    }
    for verb in ["delete", "update", "patch"] {
        assert!(has(here(verb, "pods").name("web-0")));
    }
    assert!(has(here("create", "serviceaccounts").subresource("token")));
    assert!(has(here("get", "configmaps")));
    for resource in ["roles", "rolebindings"] {
        for verb in ["create", "update", "patch", "escalate", "bind"] {
            assert!(has(here(verb, resource).group("rbac.authorization.k8s.io")));
        }
    }
    assert!(has(ResourceRequest::new("get", "pods")
        .name("web-0")
        .namespace("kube-system")));
    // Mode-independent: nothing a concrete mode needs is in the list.
    for mode in [ScanMode::Standard, ScanMode::Distroless, ScanMode::Sidecar] {
        for r in expected(mode, &namespace, &pods) {
            assert!(!dangerous.contains(&r), "{mode}: {r}");
        }
    }
}

#[test]
fn planned_requests_are_each_verb_on_each_pod() {
    let namespace = ns("prod");
    let pods = [pod("b"), pod("a"), pod("b")];
    let planned: Vec<String> = planned_requests(ScanMode::Standard, &namespace, &pods)
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        planned,
        [
            r#"get pods "a" in namespace "prod""#,
            r#"get pods "b" in namespace "prod""#,
            r#"create pods/exec "a" in namespace "prod""#,
            r#"create pods/exec "b" in namespace "prod""#,
            r#"get pods/exec "a" in namespace "prod""#,
            r#"get pods/exec "b" in namespace "prod""#,
        ]
    );
    assert_eq!(
        planned_requests(ScanMode::Sidecar, &namespace, &[]),
        Err(RbacError::NoPods)
    );
}
