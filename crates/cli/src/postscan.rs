//! The cluster side of the post-scan audit (`keyhole_audit::postscan`): what a cluster scan
//! collects for it while it runs — the target pods read with the user's client before anything
//! is created, a fingerprint of every scoped token as it is handed to the scoped client, the
//! objects each run registered — and, after teardown, the pods read again, a fresh GET of every
//! object, and the audit itself. Also a copy of what the `KEYHOLE_LOG` diagnostics wrote, so the
//! log lines are searched for the token rather than assumed clean.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::{Pod, Secret, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use keyhole_audit::{
    ArtifactScope, EXIT_LEFTOVERS, Fresh, LogText, ObjectRef, PodSnapshot, PostScan,
    PostScanReport, RunObject, TargetPair, TokenFingerprint,
};
use keyhole_cleanup::{CleanupAction, CleanupReport};
use keyhole_core::RUN_ID_LABEL;
use keyhole_credentials::ScopedToken;
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

use crate::SessionError;
use crate::session::{Audit, ScopedClients};

/// How long one fresh GET or pod read may take before it counts as not proven.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// What a cluster scan gathered for its post-scan audit.
#[derive(Debug, Clone, Default)]
pub struct PostScanEvidence {
    /// When the scan began (files unchanged since cannot hold its tokens).
    pub started: Option<SystemTime>,
    /// The runs of the scan, in order (two for `auto` falling back to distroless).
    pub run_ids: Vec<String>,
    /// Every object the runs created (or tried to), from their cleanup reports.
    pub objects: Vec<RunObject>,
    /// A fingerprint of every scoped token minted (never the token).
    pub tokens: Vec<TokenFingerprint>,
    /// The target pods before and after (`after` is read once every run is torn down).
    pub targets: Vec<TargetPair>,
}

impl PostScanEvidence {
    /// Records one run's objects from its teardown report; `ephemeral` is the debug container
    /// it may have added (distroless) to every target.
    pub fn add_run(&mut self, run_id: &str, cleanup: &CleanupReport, ephemeral: Option<&str>) {
        self.run_ids.push(run_id.to_owned());
        self.objects.extend(run_objects(run_id, cleanup));
        if let Some(name) = ephemeral {
            for t in &mut self.targets {
                t.expected_ephemeral.push(name.to_owned());
            }
        }
    }
}

/// The objects of one teardown report, each once, with whether the run deleted it.
#[must_use]
pub fn run_objects(run_id: &str, cleanup: &CleanupReport) -> Vec<RunObject> {
    let mut out: Vec<RunObject> = Vec::new();
    for a in &cleanup.actions {
        let (o, deleted) = match a {
            CleanupAction::Deleted(o) | CleanupAction::AlreadyGone(o) => (o, true),
            CleanupAction::Replaced(o)
            | CleanupAction::NeverCreated(o)
            | CleanupAction::VerifiedGone(o)
            | CleanupAction::StillPresent { object: o, .. }
            | CleanupAction::DeleteFailed { object: o, .. } => (o, false),
        };
        let r = ObjectRef {
            kind: o.kind.as_str().to_owned(),
            namespace: o.namespace.clone(),
            name: o.name.clone(),
            uid: o.uid.clone(),
        };
        match out.iter_mut().find(|x| {
            x.object.kind == r.kind && x.object.namespace == r.namespace && x.object.name == r.name
        }) {
            Some(x) => {
                x.deleted_by_run |= deleted;
                if x.object.uid.is_none() {
                    x.object.uid = r.uid;
                }
            }
            None => out.push(RunObject {
                run_id: run_id.to_owned(),
                object: r,
                deleted_by_run: deleted,
            }),
        }
    }
    out
}

/// Wraps the scoped-client factory so that every token handed out is fingerprinted on the way
/// (the token itself stays with the session, which drops it as before).
pub struct FingerprintingScoped {
    inner: Arc<dyn ScopedClients>,
    seen: Arc<Mutex<Vec<TokenFingerprint>>>,
}

impl FingerprintingScoped {
    /// `inner`, wrapped; the second value collects the fingerprints.
    pub fn wrap(inner: Arc<dyn ScopedClients>) -> (Arc<Self>, Arc<Mutex<Vec<TokenFingerprint>>>) {
        let seen: Arc<Mutex<Vec<TokenFingerprint>>> = Arc::default();
        (
            Arc::new(Self {
                inner,
                seen: seen.clone(),
            }),
            seen,
        )
    }
}

impl ScopedClients for FingerprintingScoped {
    fn client(&self, token: &ScopedToken) -> Result<Client, SessionError> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(TokenFingerprint::of(token.secret()));
        self.inner.client(token)
    }
}

/// Reads each pod with the user's client: `Ok(None)` when it is gone (404).
pub async fn snapshot_pods(
    user: &Client,
    namespace: &str,
    pods: &[String],
) -> Vec<(String, Result<Option<PodSnapshot>, String>)> {
    let api: Api<Pod> = Api::namespaced(user.clone(), namespace);
    let mut out = Vec::new();
    for pod in pods {
        let read = match tokio::time::timeout(CALL_TIMEOUT, api.get(pod)).await {
            Err(_) => Err(format!("no answer within {CALL_TIMEOUT:?}")),
            Ok(Err(kube::Error::Api(s))) if s.code == 404 => Ok(None),
            Ok(Err(e)) => Err(keyhole_core::kube_error(&e)),
            Ok(Ok(p)) => serde_json::to_value(&p)
                .map_err(|e| e.to_string())
                .and_then(|v| PodSnapshot::from_json(&v).map_err(|e| e.to_string()))
                .map(Some),
        };
        out.push((format!("{namespace}/{pod}"), read));
    }
    out
}

/// Pairs the before and after reads of the same pods.
#[must_use]
pub fn pair_targets(
    before: Vec<(String, Result<Option<PodSnapshot>, String>)>,
    after: Vec<(String, Result<Option<PodSnapshot>, String>)>,
    expected: &[String],
) -> Vec<TargetPair> {
    before
        .into_iter()
        .map(|(pod, b)| {
            let after = after.iter().find(|(p, _)| *p == pod).map_or_else(
                || Err("not read after the scan".to_owned()),
                |(_, a)| a.clone(),
            );
            TargetPair {
                before: match b {
                    Ok(Some(s)) => Ok(s),
                    Ok(None) => Err("the pod did not exist before the scan".to_owned()),
                    Err(e) => Err(e),
                },
                pod,
                after,
                expected_ephemeral: expected.to_vec(),
            }
        })
        .collect()
}

async fn get_typed<K>(client: &Client, o: &ObjectRef) -> Fresh
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), &o.namespace);
    match tokio::time::timeout(CALL_TIMEOUT, api.get(&o.name)).await {
        Err(_) => Fresh::Failed(format!("no answer within {CALL_TIMEOUT:?}")),
        Ok(Err(kube::Error::Api(s))) if s.code == 404 => Fresh::Gone,
        Ok(Err(e)) => Fresh::Failed(keyhole_core::kube_error(&e)),
        Ok(Ok(obj)) => {
            let meta = obj.meta();
            Fresh::Present {
                uid: meta.uid.clone(),
                run_label: meta
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(RUN_ID_LABEL))
                    .cloned(),
                terminating: meta.deletion_timestamp.is_some(),
            }
        }
    }
}

/// A fresh GET of one object with the user's client (404 → gone).
pub async fn fresh_get(user: &Client, o: ObjectRef) -> Fresh {
    match o.kind.as_str() {
        "ServiceAccount" => get_typed::<ServiceAccount>(user, &o).await,
        "Secret" => get_typed::<Secret>(user, &o).await,
        "Role" => get_typed::<Role>(user, &o).await,
        "RoleBinding" => get_typed::<RoleBinding>(user, &o).await,
        "NetworkPolicy" => get_typed::<NetworkPolicy>(user, &o).await,
        "Pod" => get_typed::<Pod>(user, &o).await,
        other => Fresh::Failed(format!("unknown kind {other}: cannot re-read it")),
    }
}

/// Runs the post-scan audit of a finished scan: the pods' after-reads must already be in
/// `evidence` (the cluster scan does it after its last teardown). The audit log is read back
/// and verified through `audit`; `artifacts` says where to look for the tokens.
pub async fn audit_scan(
    user: &Client,
    evidence: &PostScanEvidence,
    audit: &Audit,
    artifacts: ArtifactScope,
) -> PostScanReport {
    let input = PostScan {
        run_ids: evidence.run_ids.clone(),
        objects: evidence.objects.clone(),
        audit_log: audit.read_verified().map_err(|e| e.to_string()),
        tokens: evidence.tokens.clone(),
        artifacts,
        targets: evidence.targets.clone(),
    };
    let report = input.run(|o| fresh_get(user, o)).await;
    for f in report.findings() {
        tracing::info!(%f, "post-scan finding");
    }
    // After its checks (the audit-log check read the log as the run left it): the log then
    // says what the audit found, and the code it gives the process.
    for run in &evidence.run_ids {
        audit.for_run(run).record(report.to_event());
    }
    report
}

/// The exit code after the post-scan audit: leftovers make it [`EXIT_LEFTOVERS`] (4, as an
/// incomplete teardown), whatever it was; another failed check makes a pass (0) or a failed
/// threshold (1) [`keyhole_audit::EXIT_POSTSCAN_FAILED`] (6); a scan error (3), an expiry (124) or an
/// internal error (70) keeps its code, the findings being printed as warnings.
#[must_use]
pub fn exit_after(report: &PostScanReport, exit: i32) -> i32 {
    match report.exit_code() {
        Some(EXIT_LEFTOVERS) => EXIT_LEFTOVERS,
        Some(code) if exit == 0 || exit == 1 => code,
        _ => exit,
    }
}

/// The warnings the terminal shows: one per finding, and a summary line.
#[must_use]
pub fn warnings(report: &PostScanReport) -> Vec<String> {
    use keyhole_audit::CheckId;
    let findings = report.findings();
    let mut out: Vec<String> = findings.iter().map(ToString::to_string).collect();
    // What the credential search covered, so "no token found" can be weighed.
    let covered: Vec<String> = [
        CheckId::CredentialFiles,
        CheckId::CredentialEnv,
        CheckId::CredentialMemfd,
        CheckId::CredentialLogs,
    ]
    .into_iter()
    .filter_map(|c| report.get(c))
    .filter(|c| c.outcome == keyhole_audit::postscan::Outcome::Passed)
    .filter_map(|c| c.evidence.first().cloned())
    .collect();
    if !covered.is_empty() {
        out.push(format!("post-scan token search: {}", covered.join("; ")));
    }
    out.push(if findings.is_empty() {
        format!(
            "post-scan audit: all {} checks passed (audit records, objects re-read, no token left, target unchanged)",
            report.checks.len()
        )
    } else {
        format!(
            "post-scan audit: {} finding(s) in {} of {} checks",
            findings.len(),
            report.checks.iter().filter(|c| c.outcome == keyhole_audit::postscan::Outcome::Failed).count(),
            report.checks.len()
        )
    });
    out
}

// ------------------------------------------------------------------ the diagnostics' copy

/// At most this much of the diagnostics is kept for the search (beyond it, the search says
/// what it did not see).
const LOG_COPY_MAX: usize = 64 << 20;

struct LogCopy {
    bytes: Vec<u8>,
    dropped: usize,
}

static LOG_COPY: Mutex<LogCopy> = Mutex::new(LogCopy {
    bytes: Vec::new(),
    dropped: 0,
});

/// A writer for the `KEYHOLE_LOG` diagnostics: writes to stderr and keeps a copy for the
/// post-scan search (`tracing_subscriber::fmt().with_writer(tee_stderr)`).
#[must_use]
pub fn tee_stderr() -> TeeStderr {
    TeeStderr
}

/// See [`tee_stderr`].
#[derive(Debug, Clone, Copy)]
pub struct TeeStderr;

impl std::io::Write for TeeStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = std::io::stderr().write(buf)?;
        let mut copy = LOG_COPY.lock().unwrap_or_else(PoisonError::into_inner);
        let room = LOG_COPY_MAX.saturating_sub(copy.bytes.len()).min(n);
        copy.bytes.extend_from_slice(&buf[..room]);
        copy.dropped += n - room;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// What the diagnostics wrote so far (empty when `KEYHOLE_LOG` is unset: nothing was logged).
#[must_use]
pub fn captured_log() -> LogText {
    let copy = LOG_COPY.lock().unwrap_or_else(PoisonError::into_inner);
    let location = if copy.dropped > 0 {
        format!(
            "KEYHOLE_LOG diagnostics on stderr (the last {} bytes were not kept and not searched)",
            copy.dropped
        )
    } else {
        "KEYHOLE_LOG diagnostics on stderr".to_owned()
    };
    LogText {
        location,
        text: copy.bytes.clone(),
    }
}

/// Where the binary looks for credential artifacts: this process's temp dir,
/// `XDG_RUNTIME_DIR` and `~/.kube`, the audit log file, its environment, its open
/// descriptors and its diagnostics.
#[must_use]
pub fn process_scope(started: SystemTime, audit_log: PathBuf) -> ArtifactScope {
    ArtifactScope::for_process(started, vec![audit_log], vec![captured_log()])
}
