//! Tests against the real Kubernetes control plane (`kube-apiserver` and
//! `kube-controller-manager` built from Kubernetes' Go modules, on loopback; no node): Kubernetes
//! itself judges least privilege (its RBAC authorizer, through SubjectAccessReview), the bound
//! token's lifetime, Pod Security admission of keyhole's containers, and garbage collection.
//!
//! Run them with `cargo xtask realapi` (each release in turn), or against a cluster from
//! `cargo xtask cluster up`: `eval "$(cargo xtask cluster env)"` then
//! `cargo test -p keyhole-cli --test it realapi -- --ignored`. They are `#[ignore]`d in a plain
//! `cargo test` and fail (never skip) when the kubeconfig variable is missing.
//!
//! Every test works in namespaces of its own (random suffix), so they run in parallel and can
//! be re-run against the same cluster.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EphemeralContainer, Namespace as NamespaceObj, Pod,
    PodSecurityContext, PodSpec, SeccompProfile, Secret, SecurityContext, ServiceAccount,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use keyhole_cli::session::{
    Audit, ScopedClients, SessionError, SessionSpec, TlsScopedClients, run_session,
};
use keyhole_core::{
    ContainerName, Expiry, Namespace, PodName, Run, RunId, ScanMode, ScanTarget, Ttl,
};
use keyhole_credentials::{ClusterEndpoint, ScopedToken};
use keyhole_scanners::{ImageRef, InjectOptions};
use kube::Client;
use kube::api::{
    Api, AttachParams, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use secrecy::ExposeSecret as _;

use crate::support::{audit_records, clean_ending, fast_policy, scratch};

const KUBECONFIG_ENV: &str = "KEYHOLE_REALAPI_KUBECONFIG";
const POD: &str = "web-0";
const OTHER_POD: &str = "web-1";
/// No node runs here: pods are admitted and stay Pending on this name.
const NODE: &str = "keyhole-node-0";
const SCANNER: &str = "ghcr.io/keyhole-scanner/keyhole-agent:0.1.0@sha256:2f1b6c0d9a4e7f3b8c5d1e6a9b0c4d7e2f5a8b1c3d6e9f0a2b4c6d8e0f1a3b5c";
const APP_IMAGE: &str = "registry.example.com/shop/web:1.4.2@sha256:3f1c2d9a8b7e6f5a4c3b2a1908f7e6d5c4b3a29180f7e6d5c4b3a2918f7e6d5c";

// ------------------------------------------------------------------------------- helpers

/// The admin kubeconfig of the running control plane; a missing variable fails the test.
fn kubeconfig_path() -> PathBuf {
    let path = std::env::var_os(KUBECONFIG_ENV).unwrap_or_else(|| {
        panic!(
            "{KUBECONFIG_ENV} is not set: these tests need the real control plane; run \
             cargo xtask realapi (or cargo xtask cluster up, then eval \"$(cargo xtask cluster env)\")"
        )
    });
    let path = PathBuf::from(path);
    assert!(
        path.exists(),
        "{KUBECONFIG_ENV}={} does not exist",
        path.display()
    );
    path
}

/// The admin client (`system:masters`, a client certificate) and the cluster's endpoint.
pub(crate) async fn admin() -> (Client, ClusterEndpoint) {
    let kubeconfig = Kubeconfig::read_from(kubeconfig_path()).unwrap();
    let cluster = kubeconfig.clusters[0].cluster.clone().unwrap();
    let endpoint = ClusterEndpoint::new(
        cluster.server.as_deref().unwrap(),
        cluster.certificate_authority_data.as_deref().unwrap(),
    )
    .unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    (Client::try_from(config).unwrap(), endpoint)
}

/// Polls `check` every 100 ms for up to `limit`; panics with `what` if it never holds.
pub(crate) async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "within {limit:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A fresh namespace `PREFIX-<random>` (labelled Pod Security `restricted` when asked), once
/// its `default` ServiceAccount exists (pods are refused before that).
pub(crate) async fn namespace(admin: &Client, prefix: &str, restricted: bool) -> String {
    let name = format!("{prefix}-{}", RunId::generate().unwrap().as_str());
    let mut labels = std::collections::BTreeMap::new();
    if restricted {
        labels.insert(
            "pod-security.kubernetes.io/enforce".to_string(),
            "restricted".to_string(),
        );
        labels.insert(
            "pod-security.kubernetes.io/enforce-version".to_string(),
            "latest".to_string(),
        );
    }
    Api::<NamespaceObj>::all(admin.clone())
        .create(
            &PostParams::default(),
            &NamespaceObj {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    labels: Some(labels),
                    ..ObjectMeta::default()
                },
                ..NamespaceObj::default()
            },
        )
        .await
        .unwrap();
    let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), &name);
    eventually(
        Duration::from_secs(30),
        "the ServiceAccount controller creates the namespace's default ServiceAccount",
        || async { sas.get_opt("default").await.unwrap().is_some() },
    )
    .await;
    name
}

/// A target pod that meets Pod Security `restricted`, bound to [`NODE`] (no scheduler).
fn target_pod(ns: &str, name: &str) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.into()),
            labels: Some([("app.kubernetes.io/name".to_string(), "web".to_string())].into()),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            node_name: Some(NODE.into()),
            automount_service_account_token: Some(false),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(10001),
                run_as_group: Some(10001),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".into(),
                    localhost_profile: None,
                }),
                ..PodSecurityContext::default()
            }),
            containers: vec![Container {
                name: "app".into(),
                image: Some(APP_IMAGE.into()),
                security_context: Some(SecurityContext {
                    allow_privilege_escalation: Some(false),
                    capabilities: Some(Capabilities {
                        drop: Some(vec!["ALL".into()]),
                        add: None,
                    }),
                    ..SecurityContext::default()
                }),
                ..Container::default()
            }],
            ..PodSpec::default()
        }),
        ..Pod::default()
    }
}

async fn create_pod(admin: &Client, pod: &Pod) -> Result<Pod, kube::Error> {
    let ns = pod.metadata.namespace.as_deref().unwrap();
    Api::<Pod>::namespaced(admin.clone(), ns)
        .create(&PostParams::default(), pod)
        .await
}

pub(crate) fn new_run(ns: &str, mode: ScanMode) -> Run {
    let target = ScanTarget::pods(
        Namespace::new(ns).unwrap(),
        [PodName::new(POD).unwrap()],
        None,
    )
    .unwrap();
    let expiry = Expiry::new(Timestamp::now(), Ttl::default()).unwrap();
    Run::new(RunId::generate().unwrap(), target, mode, expiry).unwrap()
}

/// Creates a run's ServiceAccount, anchor Secret, Role and RoleBinding as the product does.
async fn apply(admin: &Client, run: &Run) -> keyhole_rbac::Applied {
    keyhole_rbac::apply(
        admin,
        run,
        |owner| keyhole_credentials::anchor_secret(run, owner),
        &mut |_| {},
    )
    .await
    .unwrap()
}

fn token_client(endpoint: &ClusterEndpoint, ns: &str, token: &ScopedToken) -> Client {
    keyhole_credentials::scoped_client(endpoint, ns, token).unwrap()
}

/// Who the API server says a client is; the HTTP status on failure.
async fn whoami(client: &Client) -> Result<String, u16> {
    match Api::<SelfSubjectReview>::all(client.clone())
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
    {
        Ok(r) => Ok(r.status.unwrap().user_info.unwrap().username.unwrap()),
        Err(kube::Error::Api(s)) => Err(s.code),
        Err(e) => panic!("SelfSubjectReview: {e}"),
    }
}

pub(crate) async fn delete_namespace(admin: &Client, ns: &str) {
    let _ = Api::<NamespaceObj>::all(admin.clone())
        .delete(ns, &DeleteParams::default())
        .await;
}

// ----------------------------------------------------------------- least privilege (SAR)

/// One request asked through SubjectAccessReview.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Req {
    verb: &'static str,
    group: &'static str,
    resource: &'static str,
    sub: &'static str,
    /// Empty for cluster scope.
    namespace: String,
    /// Empty for no name.
    name: &'static str,
}

/// The scopes of the sweep, as (namespace, name): the target pod, another pod, no name in the
/// run's namespace, the target's name in another namespace, cluster scope.
fn scopes(ns: &str) -> Vec<(String, &'static str)> {
    vec![
        (ns.to_string(), POD),
        (ns.to_string(), OTHER_POD),
        (ns.to_string(), ""),
        ("kube-system".to_string(), POD),
        (String::new(), ""),
    ]
}

const VERBS: &[&str] = &[
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
];

/// (group, resource, subresource) of the sweep: every pod subresource, what keyhole's own
/// objects are, what a scan could be tempted to read, and other API groups.
const RESOURCES: &[(&str, &str, &str)] = &[
    ("", "pods", ""),
    ("", "pods", "exec"),
    ("", "pods", "log"),
    ("", "pods", "ephemeralcontainers"),
    ("", "pods", "attach"),
    ("", "pods", "portforward"),
    ("", "pods", "proxy"),
    ("", "pods", "status"),
    ("", "pods", "eviction"),
    ("", "secrets", ""),
    ("", "configmaps", ""),
    ("", "serviceaccounts", ""),
    ("", "serviceaccounts", "token"),
    ("", "nodes", ""),
    ("", "nodes", "proxy"),
    ("", "namespaces", ""),
    ("rbac.authorization.k8s.io", "roles", ""),
    ("rbac.authorization.k8s.io", "rolebindings", ""),
    ("networking.k8s.io", "networkpolicies", ""),
    ("apps", "deployments", ""),
    ("authorization.k8s.io", "selfsubjectaccessreviews", ""),
    ("authorization.k8s.io", "subjectaccessreviews", ""),
    ("authentication.k8s.io", "selfsubjectreviews", ""),
    ("authentication.k8s.io", "tokenreviews", ""),
];

fn sweep(ns: &str) -> Vec<Req> {
    let mut out = Vec::new();
    for (group, resource, sub) in RESOURCES {
        for verb in VERBS {
            for (namespace, name) in scopes(ns) {
                out.push(Req {
                    verb,
                    group,
                    resource,
                    sub,
                    namespace,
                    name,
                });
            }
        }
    }
    out
}

/// The allowed part of the sweep, WRITTEN OUT BY HAND (not derived from keyhole-rbac): the
/// mode's grants on the target pod in the run's namespace, and what Kubernetes' bootstrap
/// policy lets every authenticated user do (`system:basic-user`: create self-reviews, in any
/// namespace, under any name, since a ClusterRoleBinding without resourceNames matches all).
fn expected(mode: ScanMode, ns: &str) -> BTreeSet<Req> {
    let on_target = |verb, resource, sub| Req {
        verb,
        group: "",
        resource,
        sub,
        namespace: ns.to_string(),
        name: POD,
    };
    let mut out: BTreeSet<Req> = match mode {
        ScanMode::Standard => [
            on_target("get", "pods", ""),
            on_target("create", "pods", "exec"),
            on_target("get", "pods", "exec"),
        ]
        .into(),
        ScanMode::Distroless => [
            on_target("get", "pods", ""),
            on_target("get", "pods", "ephemeralcontainers"),
            on_target("patch", "pods", "ephemeralcontainers"),
            on_target("get", "pods", "log"),
        ]
        .into(),
        ScanMode::Sidecar => [
            on_target("get", "pods", ""),
            on_target("get", "pods", "log"),
        ]
        .into(),
        other => panic!("no expectation for {other}"),
    };
    for (group, resource) in [
        ("authorization.k8s.io", "selfsubjectaccessreviews"),
        ("authentication.k8s.io", "selfsubjectreviews"),
    ] {
        for (namespace, name) in scopes(ns) {
            out.insert(Req {
                verb: "create",
                group,
                resource,
                sub: "",
                namespace,
                name,
            });
        }
    }
    out
}

/// Asks the API server whether the run's ServiceAccount (with the groups its token carries)
/// may make `r`.
async fn sar_allows(admin: &Client, ns: &str, sa: &str, r: &Req) -> bool {
    let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(format!("system:serviceaccount:{ns}:{sa}")),
            groups: Some(vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{ns}"),
                "system:authenticated".into(),
            ]),
            resource_attributes: Some(ResourceAttributes {
                verb: Some(r.verb.into()),
                group: Some(r.group.into()),
                resource: Some(r.resource.into()),
                subresource: opt(r.sub),
                namespace: opt(&r.namespace),
                name: opt(r.name),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    };
    Api::<SubjectAccessReview>::all(admin.clone())
        .create(&PostParams::default(), &review)
        .await
        .unwrap()
        .status
        .unwrap()
        .allowed
}

/// [`TlsScopedClients`] that also remembers the token, so the test can use it while the
/// session's command runs.
struct Remembering {
    inner: TlsScopedClients,
    token: Mutex<Option<String>>,
}

impl ScopedClients for Remembering {
    fn client(&self, token: &ScopedToken) -> Result<Client, SessionError> {
        *self.token.lock().unwrap() = Some(token.secret().expose_secret().to_string());
        self.inner.client(token)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real control plane: run cargo xtask realapi"]
async fn realapi_kubernetes_authorizer_allows_exactly_the_hand_written_matrix_per_mode() {
    let (admin, endpoint) = admin().await;
    for mode in [ScanMode::Standard, ScanMode::Distroless, ScanMode::Sidecar] {
        let ns = namespace(&admin, &format!("lp-{mode}"), false).await;
        for name in [POD, OTHER_POD] {
            create_pod(&admin, &target_pod(&ns, name)).await.unwrap();
        }
        // The product's whole session, with a command that holds the run open until the
        // matrix has been asked.
        let dir = scratch("realapi-lp");
        let (ready, done) = (dir.join("ready"), dir.join("done"));
        let script = format!(
            "touch '{}'; while [ ! -e '{}' ]; do sleep 0.05; done",
            ready.display(),
            done.display()
        );
        let run = new_run(&ns, mode);
        let log = dir.join("audit.jsonl");
        let spec = SessionSpec {
            run: run.clone(),
            cluster: endpoint.clone(),
            audiences: vec![],
            command: ["sh", "-c", &script].map(OsString::from).to_vec(),
            work: None,
            policy: keyhole_cleanup::RetryPolicy {
                call_timeout: Duration::from_secs(10),
                ..fast_policy()
            },
        };
        let scoped = Arc::new(Remembering {
            inner: TlsScopedClients {
                cluster: endpoint.clone(),
                namespace: ns.clone(),
            },
            token: Mutex::new(None),
        });
        let audit = Audit::new(
            keyhole_audit::AuditLog::open(&log).unwrap(),
            run.id().as_str(),
        );
        let session = tokio::spawn(run_session(admin.clone(), spec, scoped.clone(), audit));
        eventually(
            Duration::from_secs(60),
            "the session sets up and starts its command",
            || async { ready.exists() || session.is_finished() },
        )
        .await;
        assert!(ready.exists(), "the session ended before its command ran");

        let sa = run.object_name().to_string();
        let sweep = sweep(&ns);
        let mut allowed = BTreeSet::new();
        for r in &sweep {
            if sar_allows(&admin, &ns, &sa, r).await {
                allowed.insert(r.clone());
            }
        }
        let want = expected(mode, &ns);
        assert!(
            want.iter().all(|w| sweep.contains(w)),
            "the sweep covers the matrix"
        );
        assert_eq!(
            allowed.difference(&want).collect::<Vec<_>>(),
            Vec::<&Req>::new(),
            "{mode}: allowed by Kubernetes but not in the hand-written matrix"
        );
        assert_eq!(
            want.difference(&allowed).collect::<Vec<_>>(),
            Vec::<&Req>::new(),
            "{mode}: in the hand-written matrix but refused by Kubernetes"
        );
        // The token the session minted is the identity the reviews were about.
        let token = scoped
            .token
            .lock()
            .unwrap()
            .clone()
            .expect("a token was minted");
        let client = keyhole_credentials::scoped_client(
            &endpoint,
            &ns,
            &ScopedToken::checked(
                token.into(),
                &keyhole_credentials::expected_claims(&run, &[]),
                Timestamp::now(),
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(
            whoami(&client).await,
            Ok(format!("system:serviceaccount:{ns}:{sa}"))
        );

        std::fs::write(&done, "").unwrap();
        let outcome = tokio::time::timeout(Duration::from_secs(60), session)
            .await
            .expect("the session ends")
            .unwrap()
            .unwrap();
        assert!(outcome.error.is_none(), "{mode}: {:?}", outcome.error);
        assert_eq!(outcome.exit_code, 0, "{mode}");
        assert!(outcome.cleanup.is_clean(), "{mode}: {:?}", outcome.cleanup);
        let access = outcome.access.expect("least privilege was verified");
        assert!(
            access
                .checked
                .iter()
                .all(|c| c.allowed == c.expected_allowed)
        );
        let (code, _) = clean_ending(&audit_records(&log));
        assert_eq!(code, 0);
        // The API server checks the bound Secret through its informer cache: the refusal
        // follows the deletion within moments, not at once.
        let cleaned = std::time::Instant::now();
        eventually(
            Duration::from_secs(15),
            &format!("{mode}: the token is refused (401) once the run is cleaned up"),
            || async { whoami(&client).await == Err(401) },
        )
        .await;
        eprintln!(
            "{mode}: token refused {:.0?} after cleanup",
            cleaned.elapsed()
        );
        eprintln!(
            "{mode}: {} of {} SubjectAccessReviews allowed, as written",
            allowed.len(),
            sweep.len()
        );
        let _ = std::fs::remove_dir_all(&dir);
        delete_namespace(&admin, &ns).await;
    }
}

// -------------------------------------------------------------------------------- tokens

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real control plane: run cargo xtask realapi"]
async fn realapi_bound_token_works_then_dies_with_its_anchor_or_service_account() {
    let (admin, endpoint) = admin().await;
    let ns = namespace(&admin, "tok", false).await;
    for delete in ["anchor Secret", "ServiceAccount"] {
        let run = new_run(&ns, ScanMode::Standard);
        let applied = apply(&admin, &run).await;
        let now = Timestamp::now();
        let token = keyhole_credentials::mint(&admin, &run, &[], &applied.anchor_uid, now)
            .await
            .unwrap();
        // The claims keyhole checks, as the real server issues them.
        let claims = keyhole_credentials::decode_claims(token.secret()).unwrap();
        let sa = run.object_name().to_string();
        assert_eq!(claims.subject, format!("system:serviceaccount:{ns}:{sa}"));
        assert_eq!(
            claims.audiences,
            vec!["https://kubernetes.default.svc.cluster.local".to_string()],
            "no audience asked: the API server's own (its issuer)"
        );
        assert_eq!(
            claims.bound_secret.as_deref(),
            Some(run.derived_name("anchor").as_str()),
            "the real server reports the binding"
        );
        // expirationSeconds is the TTL (600 s): exp is issue time + 600 s, give or take a
        // second, and never beyond the run's expiry.
        let lifetime = claims.expires_at.as_second() - now.as_second();
        assert!((599..=602).contains(&lifetime), "lifetime {lifetime} s");
        assert!(
            claims.expires_at
                <= run
                    .expiry()
                    .expires_at()
                    .checked_add(jiff::SignedDuration::from_secs(2))
                    .unwrap()
        );

        let client = token_client(&endpoint, ns.as_str(), &token);
        assert_eq!(
            whoami(&client).await,
            Ok(format!("system:serviceaccount:{ns}:{sa}"))
        );
        match delete {
            "anchor Secret" => {
                Api::<Secret>::namespaced(admin.clone(), &ns)
                    .delete(
                        run.derived_name("anchor").as_str(),
                        &DeleteParams::default(),
                    )
                    .await
                    .unwrap();
            }
            _ => {
                Api::<ServiceAccount>::namespaced(admin.clone(), &ns)
                    .delete(&sa, &DeleteParams::default())
                    .await
                    .unwrap();
            }
        }
        eventually(
            Duration::from_secs(15),
            &format!("the token is refused (401) once its {delete} is deleted"),
            || async { whoami(&client).await == Err(401) },
        )
        .await;
    }
    delete_namespace(&admin, &ns).await;
}

/// The bound token dies when Kubernetes says: accepted until its `exp` (issue time + the
/// run's TTL, 600 s, the shortest lifetime TokenRequest allows), refused (401) once it passed,
/// with nothing deleted. It waits out the ten minutes, so `cargo xtask realapi` runs it on one
/// release only: the check is the service-account authenticator's, unchanged across releases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real control plane: run cargo xtask realapi"]
async fn realapi_bound_token_expires_when_kubernetes_says() {
    let (admin, endpoint) = admin().await;
    let ns = namespace(&admin, "exp", false).await;
    let run = new_run(&ns, ScanMode::Standard);
    let applied = apply(&admin, &run).await;
    let token = keyhole_credentials::mint(&admin, &run, &[], &applied.anchor_uid, Timestamp::now())
        .await
        .unwrap();
    let exp = keyhole_credentials::decode_claims(token.secret())
        .unwrap()
        .expires_at;
    let client = token_client(&endpoint, ns.as_str(), &token);
    let sa = format!("system:serviceaccount:{ns}:{}", run.object_name());
    assert_eq!(whoami(&client).await, Ok(sa.clone()), "a fresh token works");

    // Still accepted shortly before exp: the server does not cut it early.
    let until = |t: Timestamp| {
        let left = t.as_millisecond() - Timestamp::now().as_millisecond();
        Duration::from_millis(u64::try_from(left).unwrap_or(0))
    };
    let before = exp
        .checked_sub(jiff::SignedDuration::from_secs(20))
        .unwrap();
    tokio::time::sleep(until(before)).await;
    assert_eq!(
        whoami(&client).await,
        Ok(sa),
        "20 s before its exp ({exp}) the token is still accepted"
    );

    // Refused once exp passed; the authenticator allows no leeway beyond a minute.
    tokio::time::sleep(until(exp)).await;
    let mut refused_at = None;
    for _ in 0..90 {
        if whoami(&client).await == Err(401) {
            refused_at = Some(Timestamp::now());
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let refused_at = refused_at
        .unwrap_or_else(|| panic!("the token was still accepted 90 s after its exp ({exp})"));
    assert!(
        refused_at >= exp,
        "refused at {refused_at}, before its exp {exp}"
    );
    // Nothing was deleted: the expiry alone killed it.
    assert!(
        Api::<ServiceAccount>::namespaced(admin.clone(), &ns)
            .get_opt(run.object_name().as_str())
            .await
            .unwrap()
            .is_some(),
        "the ServiceAccount still exists"
    );
    delete_namespace(&admin, &ns).await;
}

// ----------------------------------------------------------------------------- admission

fn privileged(mut sc: SecurityContext) -> SecurityContext {
    sc.privileged = Some(true);
    sc.allow_privilege_escalation = Some(true);
    sc.capabilities = Some(Capabilities {
        add: Some(vec!["SYS_PTRACE".into()]),
        drop: None,
    });
    sc
}

fn forbidden_by_pod_security(e: &kube::Error) -> String {
    let text = keyhole_cli::session::explain(e);
    assert!(
        matches!(e, kube::Error::Api(s) if s.code == 403),
        "expected 403, got {text}"
    );
    for why in ["PodSecurity", "restricted", "privileged"] {
        assert!(
            text.contains(why),
            "keyhole's message does not say {why:?}: {text}"
        );
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real control plane: run cargo xtask realapi"]
async fn realapi_pod_security_restricted_admits_keyhole_containers_and_refuses_privileged() {
    let (admin, _) = admin().await;
    let ns = namespace(&admin, "adm", true).await;
    let pods: Api<Pod> = Api::namespaced(admin.clone(), &ns);
    create_pod(&admin, &target_pod(&ns, POD)).await.unwrap();
    let image = ImageRef::parse(SCANNER).unwrap();

    // Distroless: the debug container keyhole builds, patched in as the product does.
    let run = new_run(&ns, ScanMode::Distroless);
    let debug = keyhole_scanners::debug_container(
        &run,
        &ContainerName::new("app").unwrap(),
        10001,
        Some(10001),
        &image,
    );
    let patched = pods
        .patch_ephemeral_containers(
            POD,
            &PatchParams::default(),
            &Patch::Strategic(keyhole_scanners::ephemeral_patch(&debug)),
        )
        .await
        .unwrap_or_else(|e| {
            panic!(
                "the debug container is refused: {}",
                keyhole_cli::session::explain(&e)
            )
        });
    let added = patched.spec.unwrap().ephemeral_containers.unwrap();
    assert_eq!(added.len(), 1);
    assert_eq!(added[0].name, run.object_name().as_str());
    assert_eq!(added[0].target_container_name.as_deref(), Some("app"));

    let bad = EphemeralContainer {
        name: "keyhole-privileged".into(),
        security_context: Some(privileged(debug.security_context.clone().unwrap())),
        ..debug
    };
    let e = pods
        .patch_ephemeral_containers(
            POD,
            &PatchParams::default(),
            &Patch::Strategic(keyhole_scanners::ephemeral_patch(&bad)),
        )
        .await
        .unwrap_err();
    let why = forbidden_by_pod_security(&e);
    eprintln!("privileged debug container: {why}");

    // Sidecar: the user's pod with the sidecar injected (keyhole sidecar inject), and the
    // scan pod keyhole launches.
    let manifest = std::fs::read_to_string(crate::fixture("pod.yaml")).unwrap();
    let injected = keyhole_scanners::inject_sidecar(
        &manifest,
        &InjectOptions {
            container: None,
            target_uid: None,
            target_gid: None,
            image: image.clone(),
            time_limit_secs: 540,
        },
    )
    .unwrap();
    let doc = injected.yaml.split("\n---").next().unwrap();
    let mut pod: Pod = serde_norway::from_str(doc).unwrap();
    pod.metadata.namespace = Some(ns.clone());
    pod.metadata.name = Some("injected".into());
    pod.spec.as_mut().unwrap().node_name = Some(NODE.into());
    let names: Vec<String> = pod
        .spec
        .as_ref()
        .unwrap()
        .containers
        .iter()
        .map(|c| c.name.clone())
        .collect();
    assert!(
        names.contains(&keyhole_scanners::SIDECAR_NAME.to_string()),
        "{names:?}"
    );
    create_pod(&admin, &pod).await.unwrap_or_else(|e| {
        panic!(
            "the injected pod is refused: {}",
            keyhole_cli::session::explain(&e)
        )
    });

    let sidecar_run = {
        let target = ScanTarget::pods(
            Namespace::new(ns.clone()).unwrap(),
            [PodName::new("scan-web").unwrap()],
            None,
        )
        .unwrap();
        let expiry = Expiry::new(Timestamp::now(), Ttl::default()).unwrap();
        Run::new(
            RunId::generate().unwrap(),
            target,
            ScanMode::Sidecar,
            expiry,
        )
        .unwrap()
    };
    let mut launched = keyhole_scanners::sidecar_pod(
        &sidecar_run,
        &ImageRef::parse(APP_IMAGE).unwrap(),
        10001,
        Some(10001),
        &image,
    )
    .unwrap();
    launched.spec.as_mut().unwrap().node_name = Some(NODE.into());
    create_pod(&admin, &launched).await.unwrap_or_else(|e| {
        panic!(
            "the scan pod is refused: {}",
            keyhole_cli::session::explain(&e)
        )
    });

    // The same injected pod with a privileged sidecar is refused.
    pod.metadata.name = Some("injected-privileged".into());
    let spec = pod.spec.as_mut().unwrap();
    let sidecar = spec
        .containers
        .iter_mut()
        .find(|c| c.name == keyhole_scanners::SIDECAR_NAME)
        .unwrap();
    sidecar.security_context = Some(privileged(sidecar.security_context.clone().unwrap()));
    let e = create_pod(&admin, &pod).await.unwrap_err();
    let why = forbidden_by_pod_security(&e);
    eprintln!("privileged sidecar: {why}");
    delete_namespace(&admin, &ns).await;
}

// ------------------------------------------------------------------------ garbage collection

pub(crate) async fn managed(admin: &Client, ns: &str) -> Vec<String> {
    let lp = ListParams::default().labels("app.kubernetes.io/managed-by=keyhole");
    let mut out = Vec::new();
    macro_rules! list {
        ($t:ty, $kind:literal) => {
            for o in Api::<$t>::namespaced(admin.clone(), ns)
                .list(&lp)
                .await
                .unwrap()
                .items
            {
                out.push(format!("{} {}", $kind, o.metadata.name.unwrap_or_default()));
            }
        };
    }
    list!(ServiceAccount, "ServiceAccount");
    list!(Secret, "Secret");
    list!(Role, "Role");
    list!(RoleBinding, "RoleBinding");
    list!(NetworkPolicy, "NetworkPolicy");
    list!(Pod, "Pod");
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real control plane: run cargo xtask realapi"]
async fn realapi_deleting_the_service_account_alone_collects_role_binding_and_anchor() {
    let (admin, _) = admin().await;
    let ns = namespace(&admin, "gc", false).await;
    let run = new_run(&ns, ScanMode::Standard);
    apply(&admin, &run).await;
    let name = run.object_name().to_string();
    let anchor = run.derived_name("anchor").to_string();
    let mut want = vec![
        format!("Role {name}"),
        format!("RoleBinding {name}"),
        format!("Secret {anchor}"),
        format!("ServiceAccount {name}"),
    ];
    want.sort();
    assert_eq!(managed(&admin, &ns).await, want);
    Api::<ServiceAccount>::namespaced(admin.clone(), &ns)
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap();
    eventually(
        Duration::from_secs(60),
        "the garbage collector removes Role, RoleBinding and anchor Secret",
        || async { managed(&admin, &ns).await.is_empty() },
    )
    .await;
    delete_namespace(&admin, &ns).await;
}

// ---------------------------------------------------------------------------------- reap

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real control plane: run cargo xtask realapi"]
async fn realapi_reap_after_a_killed_access_run_leaves_nothing() {
    let kubeconfig = kubeconfig_path();
    let (admin, _) = admin().await;
    let ns = namespace(&admin, "reap", false).await;
    create_pod(&admin, &target_pod(&ns, POD)).await.unwrap();
    let dir = scratch("realapi-reap");
    let ready = dir.join("ready");
    let keyhole = |args: &[&str]| {
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_keyhole"));
        c.args(args)
            .env_remove("KUBECONFIG")
            .env("HOME", &dir)
            .env("XDG_STATE_HOME", dir.join("state"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        c
    };
    // `keyhole access` with a command that holds the run open until stdin closes.
    let script = format!("touch '{}'; cat >/dev/null", ready.display());
    let mut child = keyhole(&[
        "access",
        POD,
        "-n",
        &ns,
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        &script,
    ])
    .spawn()
    .unwrap();
    eventually(
        Duration::from_secs(60),
        "keyhole access starts its command",
        || async { ready.exists() },
    )
    .await;
    assert_eq!(
        managed(&admin, &ns).await.len(),
        4,
        "the run's objects exist"
    );
    // SIGKILL: no cleanup runs. Closing stdin ends the orphaned command.
    child.start_kill().unwrap();
    let stdin = child.stdin.take();
    let _ = child.wait().await;
    drop(stdin);
    assert_eq!(
        managed(&admin, &ns).await.len(),
        4,
        "a killed run leaves its objects"
    );

    let later = Timestamp::now()
        .checked_add(jiff::SignedDuration::from_hours(1))
        .unwrap()
        .to_string();
    let out = keyhole(&[
        "reap",
        "-n",
        &ns,
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "--expired-before",
        &later,
    ])
    .output()
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(managed(&admin, &ns).await, Vec::<String>::new(), "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
    delete_namespace(&admin, &ns).await;
}

// ------------------------------------------------------------------- exec: get and create

/// The HTTP status of a WebSocket exec into the target (no node runs it, so an authorized
/// request fails after authorization, with another status than 403).
async fn exec_status(client: &Client, ns: &str) -> u16 {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    match pods
        .exec(POD, ["id"], &AttachParams::default().container("app"))
        .await
    {
        Ok(_) => 101,
        Err(kube::Error::UpgradeConnection(
            kube::client::UpgradeConnectionError::ProtocolSwitch(s),
        )) => s.as_u16(),
        Err(kube::Error::Api(s)) => s.code,
        Err(e) => panic!("exec: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real control plane: run cargo xtask realapi"]
async fn realapi_websocket_exec_needs_create_from_1_35_and_keyhole_grants_both() {
    let (admin, endpoint) = admin().await;
    let minor: u32 = admin
        .apiserver_version()
        .await
        .unwrap()
        .minor
        .trim_end_matches('+')
        .parse()
        .unwrap();
    let ns = namespace(&admin, "exec", false).await;
    create_pod(&admin, &target_pod(&ns, POD)).await.unwrap();

    // A ServiceAccount granted only `get` on pods/exec (what sufficed before 1.35).
    let sa = "exec-get-only";
    Api::<ServiceAccount>::namespaced(admin.clone(), &ns)
        .create(
            &PostParams::default(),
            &ServiceAccount {
                metadata: ObjectMeta {
                    name: Some(sa.into()),
                    ..ObjectMeta::default()
                },
                ..ServiceAccount::default()
            },
        )
        .await
        .unwrap();
    let role: Role = serde_json::from_value(serde_json::json!({
        "metadata": {"name": sa},
        "rules": [{"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["get"],
                   "resourceNames": [POD]}],
    }))
    .unwrap();
    Api::<Role>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    let binding: RoleBinding = serde_json::from_value(serde_json::json!({
        "metadata": {"name": sa},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": sa},
        "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": ns}],
    }))
    .unwrap();
    Api::<RoleBinding>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    let answer = Api::<ServiceAccount>::namespaced(admin.clone(), &ns)
        .create_token_request(
            sa,
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"spec": {"expirationSeconds": 600}}))
                .unwrap(),
        )
        .await
        .unwrap();
    let token = ScopedToken::checked(
        answer.status.unwrap().token.unwrap().into(),
        &keyhole_credentials::ExpectedClaims {
            namespace: ns.clone(),
            service_account: sa.into(),
            not_after: Timestamp::now()
                .checked_add(jiff::SignedDuration::from_secs(600))
                .unwrap(),
            audiences: vec![],
            bound_secret: None,
        },
        Timestamp::now(),
    )
    .unwrap();
    let get_only = exec_status(&token_client(&endpoint, &ns, &token), &ns).await;

    // keyhole's standard run grants get and create.
    let run = new_run(&ns, ScanMode::Standard);
    let applied = apply(&admin, &run).await;
    let token = keyhole_credentials::mint(&admin, &run, &[], &applied.anchor_uid, Timestamp::now())
        .await
        .unwrap();
    let keyhole = exec_status(&token_client(&endpoint, &ns, &token), &ns).await;
    eprintln!("1.{minor}: exec with get only → {get_only}, with keyhole's role → {keyhole}");
    assert_ne!(
        keyhole, 403,
        "1.{minor}: keyhole's standard role must allow exec"
    );
    if minor >= 35 {
        assert_eq!(get_only, 403, "1.{minor}: WebSocket exec needs create too");
    } else {
        assert_ne!(
            get_only, 403,
            "1.{minor}: WebSocket exec is authorized as get"
        );
    }
    delete_namespace(&admin, &ns).await;
}
