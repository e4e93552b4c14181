//! A secure access session: everything around a scan that touches the cluster.
//!
//! In order: learn who the user is, reap expired objects of the namespace, create the run's
//! ServiceAccount/anchor/Role/RoleBinding (each registered for cleanup before it is sent, and
//! confirmed the moment it exists, so even a creation whose answer is lost is cleaned up),
//! mint and check the bound token, prove least privilege with the scoped identity, run the
//! command with a scoped kubeconfig that never touches a filesystem, then tear everything down
//! and verify it is gone — whatever ended the command. Each step is recorded in the
//! hash-chained audit log; no step ever records or prints the token.

use std::ffi::OsString;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use keyhole_audit::{AuditLog, Event, ObjectRef};
use keyhole_cleanup::{
    CleanupAction, CleanupReport, Created, Ending, ReapScope, Registry, RetryPolicy, reap,
    run_guarded,
};
use keyhole_core::Run;
use keyhole_credentials::{ChildKubeconfig, ClusterEndpoint, ScopedToken, mint, scoped_kubeconfig};
use keyhole_rbac::{AccessReport, ApplyEvent};
use kube::Client;
use kube::api::{Api, PostParams};

pub use crate::error::SessionError;

/// Exit code when setup or the least-privilege check failed (the command did not run).
pub const EXIT_SETUP_FAILED: i32 = 3;
/// Exit code when cleanup could not verify that every object is gone (`keyhole reap` later).
/// It wins over every other code: leftover access is what the caller must hear about.
pub const EXIT_CLEANUP_INCOMPLETE: i32 = 4;
/// Exit code when the run's access expired before the command finished (the command was
/// stopped), as `timeout(1)` reports a time limit.
pub const EXIT_EXPIRED: i32 = 124;
/// Exit code after an internal error (a panic) in keyhole itself; cleanup still ran
/// (`EX_SOFTWARE` of sysexits.h).
pub const EXIT_INTERNAL_ERROR: i32 = 70;

/// How the scoped client is made from the minted token: over the network with the cluster's CA
/// in production, or in-process against a fake in tests.
pub trait ScopedClients: Send + Sync + 'static {
    /// A client that authenticates with `token`.
    fn client(&self, token: &ScopedToken) -> Result<Client, SessionError>;
}

/// The production [`ScopedClients`]: HTTPS to the cluster, trusting only its CA.
#[derive(Debug, Clone)]
pub struct TlsScopedClients {
    /// The cluster.
    pub cluster: ClusterEndpoint,
    /// The run's namespace (the client's default).
    pub namespace: String,
}

impl ScopedClients for TlsScopedClients {
    fn client(&self, token: &ScopedToken) -> Result<Client, SessionError> {
        keyhole_credentials::scoped_client(&self.cluster, &self.namespace, token)
            .map_err(SessionError::ScopedClient)
    }
}

/// The audit log shared by the session and its cleanup. A write failure is logged (`tracing`
/// warning) and does not stop cleanup (which matters more than its record).
#[derive(Debug, Clone)]
pub struct Audit {
    log: Arc<Mutex<AuditLog>>,
    run_id: String,
}

impl Audit {
    /// Records to `log` under `run_id`.
    pub fn new(log: AuditLog, run_id: &str) -> Self {
        Self {
            log: Arc::new(Mutex::new(log)),
            run_id: run_id.to_string(),
        }
    }

    /// The same log, recording under another run's id (a second run of one scan).
    pub fn for_run(&self, run_id: &str) -> Self {
        Self {
            log: self.log.clone(),
            run_id: run_id.to_string(),
        }
    }

    /// Reads the whole log back and verifies it with its key: the post-scan audit's look at
    /// the run's records.
    pub fn read_verified(&self) -> Result<keyhole_audit::VerifiedLog, keyhole_audit::AuditError> {
        self.log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .read_verified()
    }

    /// The log file.
    pub fn path(&self) -> std::path::PathBuf {
        self.log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .path()
            .to_path_buf()
    }

    /// Appends one event (flushed to disk before returning).
    pub fn record(&self, event: Event) {
        self.record_all([event]);
    }

    /// Appends events that happened together, with one flush to disk for all of them.
    pub fn record_all(&self, events: impl IntoIterator<Item = Event>) {
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = log.append_all(&self.run_id, Timestamp::now(), events) {
            tracing::warn!(error = %e, "cannot append to the audit log");
        }
    }
}

pub(crate) fn object_ref(c: &Created) -> ObjectRef {
    ObjectRef {
        kind: c.kind.as_str().to_string(),
        namespace: c.namespace.clone(),
        name: c.name.clone(),
        uid: c.uid.clone(),
    }
}

/// What to run and how.
pub struct SessionSpec {
    /// The run (target, mode, expiry).
    pub run: Run,
    /// The cluster, for the child's kubeconfig.
    pub cluster: ClusterEndpoint,
    /// Token audiences (empty: the API server's own).
    pub audiences: Vec<String>,
    /// The command and its arguments (ignored when `work` is given).
    pub command: Vec<OsString>,
    /// Work done in-process with the scoped client instead of a child command (a scan): it
    /// runs after least privilege is verified, while the access exists, and its error ends the
    /// session like a setup failure.
    pub work: Option<ScopedWork>,
    /// Retry and timeout policy of cleanup; its `call_timeout` also bounds each setup step.
    pub policy: RetryPolicy,
}

/// In-process work with the scoped client (e.g. a scan's fact gathering). It is the only code
/// that ever holds the scoped client; the user's client never reaches it.
pub type ScopedWork = Box<
    dyn FnOnce(Client) -> Pin<Box<dyn Future<Output = Result<(), SessionError>> + Send>> + Send,
>;

/// How a session ended.
#[derive(Debug)]
pub struct Outcome {
    /// The process exit code to use.
    pub exit_code: i32,
    /// How the guarded work ended.
    pub ending: Ending,
    /// The error that stopped setup or the work, if any (no secret in it).
    pub error: Option<SessionError>,
    /// Objects of earlier runs the session's reap deleted, as `Kind namespace/name`.
    pub reaped: Vec<String>,
    /// Kinds the session's reap could not list (no `list` right): their leftovers, if any,
    /// were neither seen nor removed. The run itself never depends on listing.
    pub unlisted: Vec<String>,
    /// The least-privilege verification, when it ran.
    pub access: Option<AccessReport>,
    /// The teardown.
    pub cleanup: CleanupReport,
}

struct WorkResult {
    child_exit: Option<i32>,
    access: Option<AccessReport>,
    error: Option<SessionError>,
    reaped: Vec<String>,
    unlisted: Vec<String>,
}

/// A kube error with its whole source chain, and a plain sentence for the TLS failures a user
/// can fix (kube's own message for them is only "client error (Connect)").
pub fn explain(e: &kube::Error) -> String {
    let mut chain = e.to_string();
    let mut debug = format!("{e:?}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        chain.push_str(": ");
        chain.push_str(&s.to_string());
        debug.push_str(&format!(" {s:?}"));
        source = s.source();
    }
    let hint = if debug.contains("UnknownIssuer") || debug.contains("BadSignature") {
        Some(
            "the API server's TLS certificate is not trusted by the CA in your kubeconfig              (certificate-authority-data): wrong cluster, or a proxy in between",
        )
    } else if debug.contains("Expired") {
        Some("the API server's TLS certificate has expired (or this machine's clock is wrong)")
    } else if debug.contains("NotValidForName") {
        Some("the API server's TLS certificate is not valid for the server name in your kubeconfig")
    } else {
        None
    };
    match hint {
        Some(h) => format!("{h} ({chain})"),
        None => chain,
    }
}

async fn identity(user: &Client) -> Result<String, SessionError> {
    let api: Api<SelfSubjectReview> = Api::all(user.clone());
    let review = api
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .map_err(|e| SessionError::Identity(explain(&e)))?;
    Ok(review
        .status
        .and_then(|s| s.user_info)
        .and_then(|u| u.username)
        .unwrap_or_else(|| "<unknown>".into()))
}

/// Bounds one setup step: a hanging API server ends the run (and starts cleanup) after
/// `limit` instead of at the run's expiry.
async fn bounded<T, E: Into<SessionError>>(
    limit: Duration,
    what: &'static str,
    step: impl Future<Output = Result<T, E>>,
) -> Result<T, SessionError> {
    match tokio::time::timeout(limit, step).await {
        Ok(r) => r.map_err(Into::into),
        Err(_) => Err(SessionError::Timeout { step: what, limit }),
    }
}

/// Runs a whole access session with the user's client `user`. Everything — the reap of
/// earlier runs' leftovers included — runs under [`run_guarded`], so a signal at any step
/// ends in the one teardown. Returns an error only when the session could not start at all
/// (signal handlers could not be installed; nothing was created then).
pub async fn run_session(
    user: Client,
    spec: SessionSpec,
    scoped: Arc<dyn ScopedClients>,
    audit: Audit,
) -> Result<Outcome, SessionError> {
    run_session_with(user, spec, scoped, audit, None).await
}

/// An object a session creates with the user's credentials besides the access (`--launch`).
#[derive(Debug, Clone)]
pub enum ExtraObject {
    /// The NetworkPolicy of the run's pods; read back and checked to select them, default-deny.
    NetworkPolicy(Box<k8s_openapi::api::networking::v1::NetworkPolicy>),
    /// A pod of the run (the `--launch` scan pod).
    Pod(Box<k8s_openapi::api::core::v1::Pod>),
}

/// Builds the extra objects of a session, in creation order, given the owner reference of the
/// run's ServiceAccount (so the garbage collector removes them if the teardown cannot).
pub type ExtraObjects = Box<
    dyn FnOnce(k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference) -> Vec<ExtraObject>
        + Send,
>;

/// [`run_session`] that also creates `extra` with the user's credentials, after the access
/// objects and before the scoped token (a NetworkPolicy first, so a pod never runs before the
/// policy isolating it is in place and verified). Each is registered for the one teardown and
/// recorded in the audit log like the access objects; a failure ends the session like any
/// setup failure.
pub async fn run_session_with(
    user: Client,
    spec: SessionSpec,
    scoped: Arc<dyn ScopedClients>,
    audit: Audit,
    extra: Option<ExtraObjects>,
) -> Result<Outcome, SessionError> {
    let run = spec.run.clone();
    let policy = spec.policy;
    let registry = Registry::new();
    let work = {
        let (user, registry, audit, run) =
            (user.clone(), registry.clone(), audit.clone(), run.clone());
        let (cluster, audiences, command, scoped_work) = (
            spec.cluster.clone(),
            spec.audiences.clone(),
            spec.command.clone(),
            spec.work,
        );
        async move {
            let mut result = WorkResult {
                child_exit: None,
                access: None,
                error: None,
                reaped: Vec::new(),
                unlisted: Vec::new(),
            };
            let ns = run.namespace().to_string();
            let call = policy.call_timeout;
            let who = bounded(call, "asking who you are", identity(&user)).await;
            let target = format!(
                "{}/{}",
                ns,
                run.pods()
                    .iter()
                    .map(|p| p.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            );
            audit.record(Event::RunStarted {
                identity: who
                    .as_ref()
                    .map_or_else(|_| "<unknown>".into(), Clone::clone),
                target,
                mode: run.mode().to_string(),
                expires_at: run.expiry().annotation_value(),
            });
            if let Err(e) = who {
                result.error = Some(e);
                return result;
            }
            // Every run first clears what earlier runs left behind in its namespace. A user who
            // may create the run's objects need not be allowed to list every kind there: what
            // could not be listed is a warning (the reaper logs it), never a reason to stop, and
            // the run's own teardown needs no list right (it deletes and reads back by name).
            let reaped = reap(
                &user,
                &ReapScope::Namespace(ns.clone()),
                Timestamp::now(),
                false,
                &policy,
            )
            .await;
            for u in &reaped.unlisted {
                tracing::warn!(%u, "the reap could not list a kind: its leftovers were not seen");
                result.unlisted.push(u.to_string());
            }
            for a in &reaped.actions {
                if let CleanupAction::Deleted(o) = a {
                    audit.record(Event::ObjectDeleted(object_ref(o)));
                    tracing::info!(object = %o, "reaped an object left by an earlier run");
                    result.reaped.push(o.to_string());
                }
            }
            let run_id = run.id().to_string();
            let mut on_event = |e: ApplyEvent| match e {
                ApplyEvent::Attempt(c) => {
                    registry.attempting(c.kind, &c.namespace, &c.name, &run_id)
                }
                ApplyEvent::Created(c) => {
                    audit.record(Event::ObjectCreated(object_ref(&c)));
                    registry.register(c);
                }
            };
            // Four creates, each bounded by the call timeout.
            let applied = match bounded(
                call.saturating_mul(4),
                "creating the run's access objects",
                keyhole_rbac::apply(
                    &user,
                    &run,
                    |owner| keyhole_credentials::anchor_secret(&run, owner),
                    &mut on_event,
                ),
            )
            .await
            {
                Ok(a) => a,
                Err(e) => {
                    result.error = Some(e);
                    return result;
                }
            };
            if let Some(extra) = extra {
                let owner = keyhole_rbac::owner_reference(&run, &applied.service_account_uid);
                for object in extra(owner) {
                    let created = bounded(
                        call.saturating_mul(2),
                        "creating the scan pod and its NetworkPolicy",
                        crate::launch::create_extra(&user, &run, &registry, &audit, object),
                    )
                    .await;
                    if let Err(e) = created {
                        result.error = Some(e);
                        return result;
                    }
                }
            }
            let token = match bounded(
                call,
                "minting the scoped token",
                mint(
                    &user,
                    &run,
                    &audiences,
                    &applied.anchor_uid,
                    Timestamp::now(),
                ),
            )
            .await
            {
                Ok(t) => t,
                Err(e) => {
                    result.error = Some(e);
                    return result;
                }
            };
            audit.record(Event::TokenIssued {
                service_account: run.object_name().to_string(),
                expires_at: token.claims().expires_at.to_string(),
            });
            let scoped_client = match scoped.client(&token) {
                Ok(c) => c,
                Err(e) => {
                    result.error = Some(e);
                    return result;
                }
            };
            // One rules review per namespace involved (the target's and one other).
            match bounded(
                call.saturating_mul(2),
                "verifying least privilege",
                keyhole_rbac::verify_access(&scoped_client, &run),
            )
            .await
            {
                Ok(report) => {
                    audit.record_all(report.checked.iter().map(|c| Event::AccessVerified {
                        request: c.request.to_string(),
                        expected_allowed: c.expected_allowed,
                        allowed: c.allowed,
                    }));
                    result.access = Some(report);
                }
                Err(e) => {
                    result.error = Some(e);
                    return result;
                }
            }
            if let Some(work) = scoped_work {
                // The token itself is no longer needed: the client holds what it needs.
                drop(token);
                match work(scoped_client).await {
                    Ok(()) => result.child_exit = Some(0),
                    Err(e) => result.error = Some(e),
                }
                return result;
            }
            drop(scoped_client);
            let config = match ChildKubeconfig::new(&scoped_kubeconfig(&run, &cluster, &token)) {
                Ok(c) => c,
                Err(e) => {
                    result.error = Some(SessionError::Handoff(e));
                    return result;
                }
            };
            drop(token);
            let Some((program, args)) = command.split_first() else {
                result.error = Some(SessionError::NoCommand);
                return result;
            };
            let status = tokio::process::Command::new(program)
                .args(args)
                .env("KUBECONFIG", config.path())
                .kill_on_drop(true)
                .status()
                .await;
            drop(config);
            match status {
                Ok(s) => {
                    use std::os::unix::process::ExitStatusExt as _;
                    result.child_exit =
                        Some(s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)))
                }
                Err(e) => {
                    result.error = Some(SessionError::Spawn {
                        program: program.to_string_lossy().into_owned(),
                        source: e,
                    })
                }
            }
            result
        }
    };
    let expires_at = run.expiry().expires_at();
    let guarded = run_guarded(user.clone(), registry, expires_at, policy, work)
        .await
        .map_err(SessionError::Guard)?;
    // This includes objects whose creation answer was lost: the audit log learns of them
    // here, at their deletion.
    let deleted = guarded.cleanup.actions.iter().filter_map(|a| match a {
        CleanupAction::Deleted(o) | CleanupAction::AlreadyGone(o) => {
            Some(Event::ObjectDeleted(object_ref(o)))
        }
        _ => None,
    });
    let verified = Event::CleanupVerified {
        remaining: guarded.cleanup.remaining.iter().map(object_ref).collect(),
    };
    audit.record_all(deleted.chain([verified]));
    let (child_exit, access, error, reaped, unlisted) = match guarded.value {
        Some(w) => (w.child_exit, w.access, w.error, w.reaped, w.unlisted),
        None => (None, None, None, Vec::new(), Vec::new()),
    };
    let mut exit_code = match (&guarded.ending, child_exit, &error) {
        (Ending::Signal { exit_code, .. }, _, _) => *exit_code,
        (Ending::Expired, _, _) => EXIT_EXPIRED,
        (Ending::Panicked(_), _, _) => EXIT_INTERNAL_ERROR,
        (Ending::Completed, _, Some(_)) => EXIT_SETUP_FAILED,
        (Ending::Completed, Some(code), None) => code,
        (Ending::Completed, None, None) => EXIT_SETUP_FAILED,
    };
    if !guarded.cleanup.is_clean() {
        exit_code = EXIT_CLEANUP_INCOMPLETE;
    }
    let outcome_text = match (&guarded.ending, &error) {
        (Ending::Panicked(m), _) => format!("internal error (panic): {m}"),
        (Ending::Signal { name, .. }, _) => format!("stopped by {name}"),
        (Ending::Expired, _) => "access expired before the command finished".into(),
        (_, Some(e)) => e.to_string(),
        _ => format!("command exited with {exit_code}"),
    };
    audit.record(Event::RunEnded {
        exit_code,
        outcome: outcome_text,
    });
    let error = error.or_else(|| match &guarded.ending {
        Ending::Panicked(m) => Some(SessionError::Panicked(m.clone())),
        _ => None,
    });
    Ok(Outcome {
        exit_code,
        ending: guarded.ending,
        error,
        reaped,
        unlisted,
        access,
        cleanup: guarded.cleanup,
    })
}
