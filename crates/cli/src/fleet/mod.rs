//! `keyhole scan -l SELECTOR [-n NS | -A]`: many pods at once, as a library.
//!
//! The selector is resolved with the **user's** credentials at scan time ([`resolve_fleet`]),
//! and the pods are grouped by namespace: each namespace gets its own access session whose Role
//! pins exactly that namespace's resolved pod names (RBAC has no label selectors, and a Role
//! lives in one namespace). Sessions and the pods inside them run with a bounded concurrency
//! ([`FleetRequest::concurrency`]); one pod's failure is that pod's result and never stops the
//! others; every session is torn down and verified gone whatever happens. The facts are
//! evaluated locally after each session's teardown, as in [`crate::cluster_scan`].
//!
//! [`summary`] turns the outcome into the combined summary and the fleet report, and defines
//! which exit code is the worst ([`summary::worst`]).

pub mod summary;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use keyhole_cleanup::{Ending, RetryPolicy};
use keyhole_core::{
    ContainerName, Expiry, LabelSelector, Namespace, PodName, Run, RunId, ScanMode, ScanTarget, Ttl,
};
use keyhole_credentials::ClusterEndpoint;
use keyhole_engine::{FactPlan, Facts, Inputs, Profile, Waivers};
use keyhole_workflows::{ContainerTarget, DistrolessOptions, WorkflowError};
use kube::Api;
use kube::api::ListParams;
use tokio::sync::Semaphore;

use crate::SessionError;
use crate::cluster_scan::{ContainerResult, ScanError, resolve_selector};
use crate::session::{
    Audit, EXIT_INTERNAL_ERROR, EXIT_SETUP_FAILED, Outcome, ScopedClients, ScopedWork, SessionSpec,
    run_session,
};

/// Exit code of a pre-scan abort.
const EXIT_PRECHECK_ABORT: i32 = keyhole_precheck::EXIT_PRECHECK_ABORT;
/// Exit code of a pod whose container must be chosen with `-c`.
const EXIT_BAD_INPUT: i32 = 2;

/// The default of `--concurrency`: a few pods at a time keeps a slow API server busy without
/// flooding it (each pod costs one exec or one ephemeral container).
pub const DEFAULT_CONCURRENCY: usize = 4;

/// Where the selector is resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// One namespace (`-n NS`, or the context's).
    Namespace(Namespace),
    /// Every namespace the user may list pods in (`-A`).
    All,
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Namespace(n) => write!(f, "namespace {n}"),
            Self::All => f.write_str("all namespaces"),
        }
    }
}

/// The pods matching `selector` in `scope`, listed with the **user's** client now, grouped by
/// namespace (sorted, no duplicates, never empty: no match is [`ScanError::NoMatch`]).
pub async fn resolve_fleet(
    user: &kube::Client,
    scope: &Scope,
    selector: &LabelSelector,
) -> Result<BTreeMap<Namespace, Vec<PodName>>, ScanError> {
    let ns = match scope {
        Scope::Namespace(ns) => {
            let pods = resolve_selector(user, ns, selector).await?;
            return Ok(BTreeMap::from([(ns.clone(), pods)]));
        }
        Scope::All => "(all namespaces)".to_string(),
    };
    let query = selector
        .terms()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let api: Api<Pod> = Api::all(user.clone());
    let list = api
        .list(&ListParams::default().labels(&query))
        .await
        .map_err(|e| ScanError::List {
            namespace: ns.clone(),
            message: keyhole_core::kube_error(&e),
        })?;
    let mut out: BTreeMap<Namespace, Vec<PodName>> = BTreeMap::new();
    for p in &list.items {
        let (Some(n), Some(name)) = (p.metadata.namespace.as_deref(), p.metadata.name.as_deref())
        else {
            continue;
        };
        if let (Ok(n), Ok(name)) = (Namespace::new(n), PodName::new(name)) {
            out.entry(n).or_default().push(name);
        }
    }
    for pods in out.values_mut() {
        pods.sort();
        pods.dedup();
    }
    if out.is_empty() {
        return Err(ScanError::NoMatch {
            namespace: ns,
            selector: query,
        });
    }
    Ok(out)
}

/// Makes the scoped clients of one namespace's session (production: HTTPS to the cluster with
/// that namespace as the client's default).
pub type ScopedFor = Arc<dyn Fn(&Namespace) -> Arc<dyn ScopedClients> + Send + Sync>;

/// What the caller hears while the fleet runs (a progress bar): the library never prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FleetEvent {
    /// A pod is done: its facts were gathered (`ok`), or it failed or will never be scanned.
    /// Sent once per pod, as soon as its fate is known.
    TargetDone {
        /// Namespace.
        namespace: String,
        /// Pod.
        pod: String,
        /// Whether facts were gathered.
        ok: bool,
    },
    /// A namespace's session ended and was torn down.
    SessionEnded {
        /// Namespace.
        namespace: String,
        /// The session's exit code.
        exit_code: i32,
        /// Whether every object was verified gone.
        clean: bool,
    },
}

/// Receives [`FleetEvent`]s (from several tasks at once).
pub type OnEvent = Arc<dyn Fn(FleetEvent) + Send + Sync>;

/// What to scan and how to judge it.
pub struct FleetRequest {
    /// The resolved pods, by namespace (from [`resolve_fleet`]).
    pub targets: BTreeMap<Namespace, Vec<PodName>>,
    /// The requested mode (`auto` is settled per pod: standard, then distroless in a second
    /// session of that namespace for the pods without a shell).
    pub mode: ScanMode,
    /// Each session's access lifetime, counted from the session's own start.
    pub ttl: Ttl,
    /// The container to scan in each pod (`None`: the pod's default or only container).
    pub container: Option<ContainerName>,
    /// The user's profile: it never leaves this process.
    pub profile: Profile,
    /// Profile inputs.
    pub inputs: Inputs,
    /// Waivers.
    pub waivers: Waivers,
    /// The cluster, for the sessions.
    pub cluster: ClusterEndpoint,
    /// Token audiences (empty: the API server's own).
    pub audiences: Vec<String>,
    /// Setup and teardown policy of every session.
    pub policy: RetryPolicy,
    /// How the distroless workflow may run (needed for `distroless` and `auto`).
    pub distroless: Option<DistrolessOptions>,
    /// Sidecar mode: the oldest facts accepted.
    pub max_age: std::time::Duration,
    /// At most this many sessions at once, and at most this many pods gathered at once across
    /// all sessions (at least 1).
    pub concurrency: usize,
    /// The pre-scan verification policy: each pod is read and judged with the user's
    /// credentials before its namespace's session starts; a pod whose verdict aborts is left
    /// out of every Role (exit 5), and its socket tables, gathered with its facts, are judged
    /// after the teardown and can still abort its verdict. `None` skips the verification (the
    /// binary always gives a policy).
    pub precheck: Option<keyhole_precheck::Policy>,
}

/// One access session of the fleet (one namespace, one concrete mode).
#[derive(Debug)]
pub struct FleetSession {
    /// Its namespace.
    pub namespace: Namespace,
    /// Its run id (the audit log's key).
    pub run_id: RunId,
    /// Its mode.
    pub mode: ScanMode,
    /// The pods its Role pinned, sorted.
    pub pods: Vec<PodName>,
    /// How it ended: exit code, cleanup, least-privilege report, error.
    pub outcome: Outcome,
    /// What Kubernetes cannot remove: terminated ephemeral containers, `namespace/pod: ...`.
    pub traces: Vec<String>,
}

/// One target pod's outcome.
#[derive(Debug)]
pub struct TargetOutcome {
    /// Namespace.
    pub namespace: Namespace,
    /// Pod.
    pub pod: PodName,
    /// The mode of the session that settled it.
    pub mode: ScanMode,
    /// That session's run id (`None` when no session ran for it: the fleet was stopped).
    pub run_id: Option<RunId>,
    /// The evaluated result, when its facts were gathered in a session that completed.
    pub result: Option<ContainerResult>,
    /// Why there is no result (no secret in it).
    pub error: Option<String>,
    /// Its exit code before any threshold: 0 with a result, 3 when its gathering failed or its
    /// session could not be set up, the session's code when the session was cut short (124,
    /// 130/143/129, 70), 5 when the pre-scan verification aborted (before the scan, or from
    /// the network checks after it), 2 when its container must be chosen with `-c`, and 4
    /// whenever its session's cleanup is incomplete.
    pub exit_code: i32,
    /// Its pre-scan verdict (with the network checks merged when its facts held the socket
    /// tables), when the verification ran.
    pub precheck: Option<keyhole_precheck::Verdict>,
}

/// How a fleet scan ended.
#[derive(Debug)]
pub struct FleetOutcome {
    /// Every session, by namespace then start order.
    pub sessions: Vec<FleetSession>,
    /// Every target, by namespace then pod.
    pub targets: Vec<TargetOutcome>,
    /// What each namespace's post-scan audit needs ([`crate::postscan::audit_scan`]): its
    /// runs' objects, the tokens' fingerprints, its pods before and after (namespaces where no
    /// session ran have none).
    pub postscan: BTreeMap<Namespace, crate::postscan::PostScanEvidence>,
}

impl FleetOutcome {
    /// The worst exit code of the targets (see [`summary::worst`]); without a threshold this is
    /// the fleet's exit code.
    pub fn exit_code(&self) -> i32 {
        summary::worst(self.targets.iter().map(|t| t.exit_code))
    }

    /// True when every session's objects were verified gone.
    pub fn all_clean(&self) -> bool {
        self.sessions.iter().all(|s| s.outcome.cleanup.is_clean())
    }
}

/// One pod's gathering: its container and facts, or why it failed (the others go on).
type PodResult = Result<(ContainerTarget, Facts), WorkflowError>;

/// The error a session's work returns when some of its pods failed: the audit log records it,
/// and the fleet knows the gathering itself ran to its end.
#[derive(Debug, thiserror::Error)]
#[error("{failed} of {total} target(s) failed; first: {first}")]
struct PodsFailed {
    failed: usize,
    total: usize,
    first: String,
}

/// Everything the fleet's tasks share.
struct Shared {
    user: kube::Client,
    request: FleetRequest,
    plan: Arc<FactPlan>,
    scoped: ScopedFor,
    audit: Audit,
    /// Progress, shared with the sessions' work (which must never hold the user's client, so
    /// it gets this and not [`Shared`]).
    reporter: Arc<Reporter>,
    /// Pods being gathered at once, across sessions.
    pods: Arc<Semaphore>,
    /// Sessions at once.
    sessions: Arc<Semaphore>,
    /// Set once a signal arrived: sessions not started yet never start.
    stopped: Mutex<Option<(&'static str, i32)>>,
}

/// Sends the [`FleetEvent`]s.
struct Reporter {
    on_event: Option<OnEvent>,
    /// The pods already reported done (each is reported once).
    reported: Mutex<BTreeSet<(Namespace, PodName)>>,
}

impl Reporter {
    fn emit(&self, e: FleetEvent) {
        if let Some(f) = &self.on_event {
            f(e);
        }
    }

    /// Sends [`FleetEvent::TargetDone`] for a pod unless it was sent already.
    fn report(&self, ns: &Namespace, pod: &PodName, ok: bool) {
        let first = self
            .reported
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((ns.clone(), pod.clone()));
        if first {
            self.emit(FleetEvent::TargetDone {
                namespace: ns.to_string(),
                pod: pod.to_string(),
                ok,
            });
        }
    }
}

impl Shared {
    fn report(&self, ns: &Namespace, pod: &PodName, ok: bool) {
        self.reporter.report(ns, pod, ok);
    }

    fn stopped(&self) -> Option<(&'static str, i32)> {
        *self.stopped.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Scans every pod of `request.targets`: one session per namespace (two for `auto` when some
/// pods have no shell), at most `request.concurrency` sessions and pods at once. `user` creates
/// and deletes each access and nothing else; `scoped` makes each session's scoped client;
/// `audit` records every session under its own run id. Returns only after every session that
/// started has been torn down. SIGINT/SIGTERM/SIGHUP stop the running sessions (each tears
/// down) and keep the others from starting.
pub async fn scan_fleet(
    user: kube::Client,
    request: FleetRequest,
    scoped: ScopedFor,
    audit: Audit,
    on_event: Option<OnEvent>,
) -> FleetOutcome {
    let n = request.concurrency.max(1);
    // The socket tables ride along for the pre-scan network checks, as in a single scan.
    let plan = Arc::new(crate::prescan::with_network_tables(keyhole_engine::plan(
        &request.profile,
        &request.inputs,
    )));
    let targets = request.targets.clone();
    let shared = Arc::new(Shared {
        user,
        request,
        plan,
        scoped,
        audit,
        reporter: Arc::new(Reporter {
            on_event,
            reported: Mutex::default(),
        }),
        pods: Arc::new(Semaphore::new(n)),
        sessions: Arc::new(Semaphore::new(n)),
        stopped: Mutex::new(None),
    });
    let watcher = watch_signals(shared.clone());
    let mut tasks = tokio::task::JoinSet::new();
    let mut by_task = BTreeMap::new();
    for (ns, pods) in &targets {
        // Namespaces start in order as session slots free up (the permit is taken here, not
        // in the task, so that which namespace goes first never depends on scheduling).
        let Ok(permit) = shared.sessions.clone().acquire_owned().await else {
            unreachable!("the session semaphore is never closed")
        };
        let shared = shared.clone();
        let (ns2, pods2) = (ns.clone(), pods.clone());
        let h = tasks.spawn(async move {
            let r = scan_namespace(&shared, ns2, pods2).await;
            drop(permit);
            r
        });
        by_task.insert(h.id(), (ns.clone(), pods.clone()));
    }
    let mut sessions = Vec::new();
    let mut outcomes = Vec::new();
    let mut postscan = BTreeMap::new();
    while let Some(joined) = tasks.join_next_with_id().await {
        match joined {
            Ok((_, (s, t, e))) => {
                sessions.extend(s);
                outcomes.extend(t);
                if let Some((ns, e)) = e {
                    postscan.insert(ns, e);
                }
            }
            // A bug outside any session (each session's own work is guarded and torn down
            // before `run_session` returns): that namespace's pods are internal errors.
            Err(e) => {
                let Some((ns, pods)) = by_task.get(&e.id()) else {
                    continue;
                };
                tracing::error!(namespace = %ns, error = %e, "a fleet task failed");
                for pod in pods {
                    shared.report(ns, pod, false);
                    outcomes.push(TargetOutcome {
                        namespace: ns.clone(),
                        pod: pod.clone(),
                        mode: shared.request.mode,
                        run_id: None,
                        result: None,
                        error: Some(format!("internal error: {e}")),
                        exit_code: EXIT_INTERNAL_ERROR,
                        precheck: None,
                    });
                }
            }
        }
    }
    if let Some(w) = watcher {
        w.abort();
    }
    sessions.sort_by(|a: &FleetSession, b| a.namespace.cmp(&b.namespace));
    outcomes.sort_by(|a, b| (&a.namespace, &a.pod).cmp(&(&b.namespace, &b.pod)));
    FleetOutcome {
        sessions,
        targets: outcomes,
        postscan,
    }
}

/// Notes the first SIGINT/SIGTERM/SIGHUP so that sessions not started yet never start (the
/// running ones see the signal through their own guard and tear down). `None` when handlers
/// cannot be installed: each session's own guard then refuses to start, creating nothing.
fn watch_signals(shared: Arc<Shared>) -> Option<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt()).ok()?;
    let mut term = signal(SignalKind::terminate()).ok()?;
    let mut hup = signal(SignalKind::hangup()).ok()?;
    Some(tokio::spawn(async move {
        let got = tokio::select! {
            _ = int.recv() => ("SIGINT", 130),
            _ = term.recv() => ("SIGTERM", 143),
            _ = hup.recv() => ("SIGHUP", 129),
        };
        *shared.stopped.lock().unwrap_or_else(|p| p.into_inner()) = Some(got);
    }))
}

/// What one namespace's task returns: its sessions, its targets, its post-scan evidence.
type NamespaceResult = (
    Vec<FleetSession>,
    Vec<TargetOutcome>,
    Option<(Namespace, crate::postscan::PostScanEvidence)>,
);

/// One namespace: the pre-scan verification, its session (and `auto`'s distroless session for
/// the shell-less pods), then the evaluation of what was gathered and the post-scan evidence.
async fn scan_namespace(
    shared: &Arc<Shared>,
    ns: Namespace,
    pods: Vec<PodName>,
) -> NamespaceResult {
    let requested = shared.request.mode;
    let auto = requested == ScanMode::Auto;
    let first_mode = if auto { ScanMode::Standard } else { requested };
    let mut sessions = Vec::new();
    let mut settled: BTreeMap<PodName, TargetOutcome> = BTreeMap::new();
    let mut verdicts: BTreeMap<PodName, keyhole_precheck::Verdict> = BTreeMap::new();
    let pods = match &shared.request.precheck {
        None => pods,
        Some(policy) => {
            let checked = precheck(shared, &ns, pods, policy).await;
            settled.extend(checked.refused.into_iter().map(|t| (t.pod.clone(), t)));
            verdicts = checked.verdicts;
            checked.proceed
        }
    };
    if pods.is_empty() {
        for t in settled.values() {
            shared.report(&t.namespace, &t.pod, false);
        }
        return (sessions, settled.into_values().collect(), None);
    }
    // Post-scan audit: the pods as they are before anything is created (user's client), and a
    // fingerprint of every token the namespace's sessions hand to the scoped client.
    let mut evidence = crate::postscan::PostScanEvidence {
        started: Some(std::time::SystemTime::now()),
        ..Default::default()
    };
    let names: Vec<String> = pods.iter().map(ToString::to_string).collect();
    let before = snapshot(shared, &ns, &names).await;
    evidence.targets = crate::postscan::pair_targets(before, Vec::new(), &[]);
    let (scoped, tokens) = crate::postscan::FingerprintingScoped::wrap((shared.scoped)(&ns));
    let scoped: Arc<dyn ScopedClients> = scoped;
    let mut retry = Vec::new();
    match run_one(shared, &scoped, &ns, &pods, first_mode, auto).await {
        Ok(g) => {
            evidence.add_run(
                g.session.run_id.as_str(),
                &g.session.outcome.cleanup,
                g.ephemeral.as_deref(),
            );
            let clean = g.session.outcome.cleanup.is_clean();
            for (t, no_shell) in settle(shared, &g.session, g.gathered) {
                // Auto: the pods without a shell go to a distroless session, but only once the
                // standard access is verified gone (the two modes' rights are never held
                // together).
                if auto && no_shell && clean {
                    retry.push(t.pod.clone());
                } else {
                    settled.insert(t.pod.clone(), t);
                }
            }
            sessions.push(g.session);
        }
        Err(e) => settled.extend(unscanned(&ns, &pods, first_mode, e)),
    }
    if !retry.is_empty() {
        tracing::info!(namespace = %ns, pods = retry.len(), "no shell: trying distroless");
        match run_one(shared, &scoped, &ns, &retry, ScanMode::Distroless, false).await {
            Ok(g) => {
                evidence.add_run(
                    g.session.run_id.as_str(),
                    &g.session.outcome.cleanup,
                    g.ephemeral.as_deref(),
                );
                settled.extend(
                    settle(shared, &g.session, g.gathered)
                        .into_iter()
                        .map(|(t, _)| (t.pod.clone(), t)),
                );
                sessions.push(g.session);
            }
            Err(e) => settled.extend(unscanned(&ns, &retry, ScanMode::Distroless, e)),
        }
    }
    // Every access is torn down: read the pods again for the post-scan comparison.
    let evidence = (!evidence.run_ids.is_empty()).then(|| {
        evidence.tokens = tokens.lock().unwrap_or_else(|p| p.into_inner()).clone();
        evidence
    });
    let evidence = match evidence {
        Some(mut e) => {
            let after = snapshot(shared, &ns, &names).await;
            for t in &mut e.targets {
                t.after = after.iter().find(|(p, _)| *p == t.pod).map_or_else(
                    || Err("not read after the scan".to_owned()),
                    |(_, a)| a.clone(),
                );
            }
            Some((ns.clone(), e))
        }
        None => None,
    };
    // The network checks, judged from each scanned pod's own socket tables; an abort means
    // its results are not reported.
    if let Some(policy) = &shared.request.precheck {
        for t in settled.values_mut() {
            let Some(mut v) = verdicts.remove(&t.pod) else {
                continue;
            };
            if let Some(net) = t
                .result
                .as_ref()
                .and_then(|r| crate::prescan::network_facts(&r.facts))
            {
                v.merge(keyhole_precheck::check_network(&net, policy));
                if v.aborts() {
                    t.result = None;
                    t.error = Some(format!(
                        "the pre-scan network checks aborted the verdict after the scan; its results are not reported: {}",
                        abort_reason(&v)
                    ));
                    t.exit_code = summary::worst([t.exit_code, EXIT_PRECHECK_ABORT]);
                }
            }
            t.precheck = Some(v);
        }
    }
    // Every pod is reported done once, whatever happened to it.
    for t in settled.values() {
        shared.report(&t.namespace, &t.pod, t.result.is_some());
    }
    (sessions, settled.into_values().collect(), evidence)
}

/// One pod read for the post-scan audit: `namespace/pod` and what was read.
type PodRead = (String, Result<Option<keyhole_audit::PodSnapshot>, String>);

/// [`crate::postscan::snapshot_pods`] of `pods`, at most `concurrency` reads at once (the
/// post-scan audit reads each pod before and after: one at a time, a large namespace would
/// wait on them alone). In `pods`' order.
async fn snapshot(shared: &Shared, ns: &Namespace, pods: &[String]) -> Vec<PodRead> {
    let mut tasks = tokio::task::JoinSet::new();
    for (i, pod) in pods.iter().enumerate() {
        let (user, sem, ns, pod) = (
            shared.user.clone(),
            shared.pods.clone(),
            ns.to_string(),
            pod.clone(),
        );
        tasks.spawn(async move {
            let Ok(_permit) = sem.acquire_owned().await else {
                unreachable!("the pod semaphore is never closed")
            };
            (i, crate::postscan::snapshot_pods(&user, &ns, &[pod]).await)
        });
    }
    let mut out: Vec<(usize, PodRead)> = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((i, mut read)) => {
                if let Some(r) = read.pop() {
                    out.push((i, r));
                }
            }
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => {}
        }
    }
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, r)| r).collect()
}

/// The pre-scan verification of one namespace's pods.
struct Checked {
    /// The pods that may be scanned.
    proceed: Vec<PodName>,
    /// Their verdicts.
    verdicts: BTreeMap<PodName, keyhole_precheck::Verdict>,
    /// The pods left out: aborted (exit 5), container to choose (exit 2), unreadable (exit 3).
    refused: Vec<TargetOutcome>,
}

/// The failed `abort` checks of `v`, on one line.
fn abort_reason(v: &keyhole_precheck::Verdict) -> String {
    crate::prescan::abort_reason(std::slice::from_ref(v)).unwrap_or_default()
}

/// Judges each pod of `ns` under `policy` with the user's credentials (one GET each, at most
/// `concurrency` at once; nothing is written). The aborts are recorded in the audit log under
/// a run id of their own, as a single scan's abort is: nothing was created for them.
async fn precheck(
    shared: &Arc<Shared>,
    ns: &Namespace,
    pods: Vec<PodName>,
    policy: &keyhole_precheck::Policy,
) -> Checked {
    let mut tasks = tokio::task::JoinSet::new();
    let policy = Arc::new(policy.clone());
    for pod in pods {
        let (user, sem, policy, ns) = (
            shared.user.clone(),
            shared.pods.clone(),
            policy.clone(),
            ns.clone(),
        );
        let container = shared.request.container.as_ref().map(ToString::to_string);
        tasks.spawn(async move {
            let Ok(_permit) = sem.acquire_owned().await else {
                unreachable!("the pod semaphore is never closed")
            };
            let v = crate::prescan::check_pod(
                &user,
                ns.as_str(),
                pod.as_str(),
                container.as_deref(),
                &policy,
            )
            .await;
            (pod, v)
        });
    }
    let mut checked = Checked {
        proceed: Vec::new(),
        verdicts: BTreeMap::new(),
        refused: Vec::new(),
    };
    let mut aborted = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (pod, v) = match joined {
            Ok(x) => x,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => continue,
        };
        let refuse =
            |error: String, exit_code: i32, precheck: Option<keyhole_precheck::Verdict>| {
                TargetOutcome {
                    namespace: ns.clone(),
                    pod: pod.clone(),
                    mode: shared.request.mode,
                    run_id: None,
                    result: None,
                    error: Some(error),
                    exit_code,
                    precheck,
                }
            };
        match v {
            Ok(v) if v.aborts() => {
                let reason = abort_reason(&v);
                aborted.push(reason.clone());
                checked.refused.push(refuse(
                    format!(
                        "the pre-scan verification aborted; nothing was created for it: {reason}"
                    ),
                    EXIT_PRECHECK_ABORT,
                    Some(v),
                ));
            }
            Ok(v) => {
                checked.verdicts.insert(pod.clone(), v);
                checked.proceed.push(pod);
            }
            Err(e @ ScanError::ChooseContainer(_)) => {
                checked
                    .refused
                    .push(refuse(e.to_string(), EXIT_BAD_INPUT, None));
            }
            Err(e) => checked.refused.push(refuse(
                format!("the pre-scan verification could not run: {e}"),
                EXIT_SETUP_FAILED,
                None,
            )),
        }
    }
    checked.proceed.sort();
    if !aborted.is_empty() {
        aborted.sort();
        match RunId::generate() {
            Ok(id) => shared
                .audit
                .for_run(id.as_str())
                .record(keyhole_audit::Event::RunEnded {
                    exit_code: EXIT_PRECHECK_ABORT,
                    outcome: format!(
                        "pre-scan verification aborted {} pod(s) of {ns} before anything was created for them: {}",
                        aborted.len(),
                        aborted.join(" | ")
                    ),
                }),
            Err(e) => tracing::warn!(error = %e, "no run id for the pre-scan abort record"),
        }
    }
    checked
}

/// The targets of a session that did not run: a signal stopped the fleet before it started,
/// or it could not start at all (nothing was created either way).
fn unscanned(
    ns: &Namespace,
    pods: &[PodName],
    mode: ScanMode,
    why: NotRun,
) -> Vec<(PodName, TargetOutcome)> {
    let (error, code) = match why {
        NotRun::Stopped(signal, code) => (
            format!("not scanned: stopped by {signal} before its session started"),
            code,
        ),
        NotRun::Failed(e) => (e.to_string(), EXIT_SETUP_FAILED),
    };
    pods.iter()
        .map(|pod| {
            let t = TargetOutcome {
                namespace: ns.clone(),
                pod: pod.clone(),
                mode,
                run_id: None,
                result: None,
                error: Some(error.clone()),
                exit_code: code,
                precheck: None,
            };
            (pod.clone(), t)
        })
        .collect()
}

/// Why a session did not run.
enum NotRun {
    /// The fleet was stopped by this signal (name, exit code) before the session started.
    Stopped(&'static str, i32),
    /// The session could not start (signal handlers could not be installed).
    Failed(SessionError),
}

/// One session's record and what it gathered, by pod.
struct Gathered {
    session: FleetSession,
    gathered: BTreeMap<PodName, PodResult>,
    /// The debug container a distroless session adds to its pods.
    ephemeral: Option<String>,
}

/// The outcome of each pod of a finished session, evaluated when its facts were gathered in a
/// session that completed, with whether the pod failed for want of a shell (and nothing else
/// went wrong in the session).
fn settle(
    shared: &Shared,
    s: &FleetSession,
    mut gathered: BTreeMap<PodName, PodResult>,
) -> Vec<(TargetOutcome, bool)> {
    let o = &s.outcome;
    // Setup failed, or the session was cut short: no pod of it has a result. Facts of a
    // session cut short are not evaluated (as for a single scan): a result comes from a
    // session that ran to its end.
    let session_error = match (&o.ending, &o.error) {
        (Ending::Completed, Some(e)) if !is_pods_failed(e) => Some(e.to_string()),
        (Ending::Completed, _) => None,
        (Ending::Signal { name, .. }, _) => Some(format!("stopped by {name}")),
        (Ending::Expired, _) => {
            Some("the session's access expired before its scan finished (raise --ttl)".into())
        }
        (Ending::Panicked(m), _) => Some(format!("internal error (panic): {m}")),
    };
    let cleanup_code = if o.cleanup.is_clean() {
        0
    } else {
        crate::session::EXIT_CLEANUP_INCOMPLETE
    };
    let now = Timestamp::now();
    let r = &shared.request;
    s.pods
        .iter()
        .map(|pod| {
            let mut no_shell = false;
            let (result, error, code) = match (&session_error, gathered.remove(pod)) {
                (Some(e), _) => {
                    let code = if o.ending == Ending::Completed {
                        EXIT_SETUP_FAILED
                    } else {
                        o.exit_code
                    };
                    (None, Some(e.clone()), code)
                }
                (None, Some(Ok((target, facts)))) => {
                    let evaluated = keyhole_workflows::evaluate(
                        &target, &r.profile, &r.inputs, &r.waivers, &facts, now,
                    );
                    let result = ContainerResult {
                        target,
                        facts,
                        evaluated,
                    };
                    (Some(result), None, 0)
                }
                (None, Some(Err(e))) => {
                    no_shell = matches!(e, WorkflowError::NoShell { .. });
                    (None, Some(e.to_string()), EXIT_SETUP_FAILED)
                }
                (None, None) => (
                    None,
                    Some("not scanned: the session's work never reached it".into()),
                    EXIT_SETUP_FAILED,
                ),
            };
            let t = TargetOutcome {
                namespace: s.namespace.clone(),
                pod: pod.clone(),
                mode: s.mode,
                run_id: Some(s.run_id.clone()),
                result,
                error,
                exit_code: summary::worst([code, cleanup_code]),
                precheck: None,
            };
            (t, no_shell)
        })
        .collect()
}

fn is_pods_failed(e: &SessionError) -> bool {
    matches!(e, SessionError::Work(w) if w.downcast_ref::<PodsFailed>().is_some())
}

/// Runs one session of a concrete `mode` over `pods` of `ns`. With `retrying_no_shell`, a pod
/// without a shell is not reported done (auto will try it again in distroless).
async fn run_one(
    shared: &Arc<Shared>,
    scoped: &Arc<dyn ScopedClients>,
    ns: &Namespace,
    pods: &[PodName],
    mode: ScanMode,
    retrying_no_shell: bool,
) -> Result<Gathered, NotRun> {
    if let Some((name, code)) = shared.stopped() {
        return Err(NotRun::Stopped(name, code));
    }
    run_session_of(shared, scoped.clone(), ns, pods, mode, retrying_no_shell)
        .await
        .map_err(NotRun::Failed)
}

async fn run_session_of(
    shared: &Arc<Shared>,
    scoped: Arc<dyn ScopedClients>,
    ns: &Namespace,
    pods: &[PodName],
    mode: ScanMode,
    retrying_no_shell: bool,
) -> Result<Gathered, SessionError> {
    let r = &shared.request;
    let target = ScanTarget::pods(ns.clone(), pods.iter().cloned(), r.container.clone())
        .map_err(|e| SessionError::Work(Box::new(e)))?;
    let expiry =
        Expiry::new(Timestamp::now(), r.ttl).map_err(|e| SessionError::Work(Box::new(e)))?;
    let id = RunId::generate().map_err(|e| SessionError::Work(Box::new(e)))?;
    let run = Run::new(id, target, mode, expiry).map_err(|e| SessionError::Work(Box::new(e)))?;
    let mut distroless = match (mode, &r.distroless) {
        (ScanMode::Distroless, Some(d)) => Some(d.clone()),
        (ScanMode::Distroless, None) => {
            return Err(SessionError::Work(Box::new(ScanError::ModeUnavailable(
                mode,
            ))));
        }
        _ => None,
    };
    if let Some(d) = distroless.as_mut()
        && d.allow_root
    {
        d.namespace_restricted = restricted(&shared.user, ns).await;
    }
    let gathered: Arc<Mutex<BTreeMap<PodName, PodResult>>> = Arc::default();
    let work = work(
        shared,
        &run,
        distroless,
        gathered.clone(),
        retrying_no_shell,
    );
    let spec = SessionSpec {
        run: run.clone(),
        cluster: r.cluster.clone(),
        audiences: r.audiences.clone(),
        command: Vec::new(),
        work: Some(work),
        policy: r.policy,
    };
    let audit = shared.audit.for_run(run.id().as_str());
    let outcome = run_session(shared.user.clone(), spec, scoped, audit).await?;
    shared.reporter.emit(FleetEvent::SessionEnded {
        namespace: ns.to_string(),
        exit_code: outcome.exit_code,
        clean: outcome.cleanup.is_clean(),
    });
    let gathered = std::mem::take(&mut *gathered.lock().unwrap_or_else(|p| p.into_inner()));
    let traces = if mode == ScanMode::Distroless {
        traces(&shared.user, &run).await
    } else {
        Vec::new()
    };
    Ok(Gathered {
        session: FleetSession {
            namespace: ns.clone(),
            run_id: run.id().clone(),
            mode,
            pods: run.pods().to_vec(),
            outcome,
            traces,
        },
        gathered,
        ephemeral: (mode == ScanMode::Distroless).then(|| run.object_name().to_string()),
    })
}

/// Whether Pod Security enforces `restricted` in `ns` (read with the user's credentials; a
/// root scanner would be refused there, so it is not attempted).
async fn restricted(user: &kube::Client, ns: &Namespace) -> bool {
    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(user.clone());
    match api.get(ns.as_str()).await {
        Ok(n) => n
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("pod-security.kubernetes.io/enforce"))
            .is_some_and(|v| v == "restricted"),
        Err(e) => {
            tracing::warn!(error = %e, namespace = %ns, "cannot read the namespace's Pod Security level; admission will judge the scanner");
            false
        }
    }
}

/// The ephemeral containers a distroless session left in its pods' specs (read with the
/// user's credentials after the access is gone).
async fn traces(user: &kube::Client, run: &Run) -> Vec<String> {
    let ns = run.namespace().as_str();
    let name = run.object_name().to_string();
    let api: Api<Pod> = Api::namespaced(user.clone(), ns);
    let mut out = Vec::new();
    for pod in run.pods() {
        match api.get(pod.as_str()).await {
            Ok(p) => {
                let added = p
                    .spec
                    .and_then(|s| s.ephemeral_containers)
                    .is_some_and(|v| v.iter().any(|c| c.name == name));
                if added {
                    out.push(format!("{ns}/{pod}: ephemeral container {name}"));
                }
            }
            Err(e) => out.push(format!(
                "{ns}/{pod}: could not check for ephemeral container {name} ({e})"
            )),
        }
    }
    out
}

/// The session's work: every pod of the run gathered with the scoped client, at most
/// `concurrency` pods at once across the fleet; a pod's failure is recorded and the others go
/// on. Returns [`PodsFailed`] (as the session's error, for the audit log) when any failed.
fn work(
    shared: &Arc<Shared>,
    run: &Run,
    distroless: Option<DistrolessOptions>,
    gathered: Arc<Mutex<BTreeMap<PodName, PodResult>>>,
    retrying_no_shell: bool,
) -> ScopedWork {
    let run = run.clone();
    let reporter = shared.reporter.clone();
    let sem = shared.pods.clone();
    let plan = shared.plan.clone();
    let container = shared.request.container.as_ref().map(ToString::to_string);
    let max_age = shared.request.max_age;
    Box::new(move |client: kube::Client| {
        Box::pin(async move {
            let mut tasks = tokio::task::JoinSet::new();
            for pod in run.pods().iter().cloned() {
                let job = PodJob {
                    client: client.clone(),
                    run: run.clone(),
                    pod,
                    container: container.clone(),
                    plan: plan.clone(),
                    distroless: distroless.clone(),
                    max_age,
                };
                let (sem, gathered, reporter) = (sem.clone(), gathered.clone(), reporter.clone());
                tasks.spawn(async move {
                    let Ok(_permit) = sem.acquire_owned().await else {
                        unreachable!("the pod semaphore is never closed")
                    };
                    let pod = job.pod.clone();
                    let r = job.gather().await;
                    match &r {
                        Ok((t, f)) => {
                            tracing::info!(target = %t, answers = f.len(), "facts gathered")
                        }
                        Err(e) => tracing::warn!(%pod, error = %e, "gathering failed"),
                    }
                    let retry =
                        retrying_no_shell && matches!(r, Err(WorkflowError::NoShell { .. }));
                    if !retry {
                        reporter.report(job.run.namespace(), &pod, r.is_ok());
                    }
                    gathered
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(pod, r);
                });
            }
            while let Some(joined) = tasks.join_next().await {
                if let Err(e) = joined
                    && e.is_panic()
                {
                    // A bug: let the session's guard see it (exit 70, cleanup still runs).
                    std::panic::resume_unwind(e.into_panic());
                }
            }
            let g = gathered.lock().unwrap_or_else(|p| p.into_inner());
            let failed: Vec<String> = g
                .iter()
                .filter_map(|(p, r)| r.as_ref().err().map(|e| format!("{p}: {e}")))
                .collect();
            if let Some(first) = failed.first() {
                return Err(SessionError::Work(Box::new(PodsFailed {
                    failed: failed.len(),
                    total: g.len(),
                    first: first.clone(),
                })));
            }
            Ok(())
        }) as std::pin::Pin<Box<dyn Future<Output = Result<(), SessionError>> + Send>>
    })
}

/// One pod's gathering, with the session's scoped client.
struct PodJob {
    client: kube::Client,
    run: Run,
    pod: PodName,
    container: Option<String>,
    plan: Arc<FactPlan>,
    distroless: Option<DistrolessOptions>,
    max_age: std::time::Duration,
}

impl PodJob {
    async fn gather(&self) -> PodResult {
        let ns = self.run.namespace().to_string();
        let pod = self.pod.as_str();
        if self.run.mode() == ScanMode::Sidecar {
            let (facts, at) = keyhole_workflows::read_sidecar(
                &self.client,
                &ns,
                pod,
                self.max_age,
                Timestamp::now(),
            )
            .await?;
            tracing::info!(%pod, gathered_at = %at, "sidecar facts read");
            let target = ContainerTarget {
                namespace: ns,
                pod: pod.to_string(),
                container: self
                    .container
                    .clone()
                    .unwrap_or_else(|| keyhole_scanners::SIDECAR_NAME.to_string()),
            };
            return Ok((target, facts));
        }
        let target =
            keyhole_workflows::resolve_container(&self.client, &ns, pod, self.container.as_deref())
                .await?;
        let facts = match &self.distroless {
            None => keyhole_workflows::gather_standard(&self.client, &target, &self.plan).await?,
            Some(opts) => {
                keyhole_workflows::gather_distroless(
                    &self.client,
                    &self.run,
                    &target,
                    &self.plan,
                    opts,
                )
                .await?
                .0
            }
        };
        Ok((target, facts))
    }
}
