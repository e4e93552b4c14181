//! `keyhole scan TARGET…` against a cluster, as a library: resolve the targets with the user's
//! credentials, open a verified access [`session`](crate::session), gather the facts of the
//! fact plan with the **scoped client only** (a `keyhole-workflows` workflow), tear the access
//! down, and only then evaluate the facts locally with the user's profile into HDF (the access
//! lives no longer than the gathering needs).

use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use keyhole_core::{LabelSelector, Namespace, PodName, Run, ScanMode};
use keyhole_engine::{Facts, Inputs, Profile, Waivers};
use keyhole_workflows::{ContainerTarget, Evaluated, WorkflowError};
use kube::Api;
use kube::api::ListParams;

use crate::SessionError;
use crate::session::{Audit, Outcome, ScopedClients, SessionSpec, run_session_with};

/// Why a cluster scan could not start.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The label selector matched no pod.
    #[error("no pod in namespace {namespace} matches {selector}: nothing to scan")]
    NoMatch {
        /// Namespace.
        namespace: String,
        /// The selector.
        selector: String,
    },
    /// Listing the pods (with the user's credentials) failed.
    #[error("listing pods of {namespace} to resolve the selector failed: {message}")]
    List {
        /// Namespace.
        namespace: String,
        /// The API message.
        message: String,
    },
    /// The mode has no workflow in this build.
    #[error(
        "--mode {0} is not implemented yet: use --mode standard (or auto) for containers with a shell"
    )]
    ModeUnavailable(ScanMode),
    /// The session could not start at all.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The pre-scan verification could not run (a target pod could not be read with the
    /// user's credentials); nothing was created.
    #[error(transparent)]
    Precheck(#[from] keyhole_precheck::PrecheckError),
    /// Which container to scan cannot be decided from the pod (several, none chosen); found
    /// by the pre-scan verification, before anything was created.
    #[error("{0}")]
    ChooseContainer(String),
}

/// What to scan and how to judge it.
pub struct ScanRequest {
    /// The run: a concrete mode and the pinned pod names (see [`resolve_selector`]).
    pub run: Run,
    /// The container to scan in each pod (`None`: the pod's default or only container).
    pub container: Option<String>,
    /// The user's profile, inputs and waivers: they never leave this process.
    pub profile: Profile,
    /// Profile inputs.
    pub inputs: Inputs,
    /// Waivers.
    pub waivers: Waivers,
    /// The session's cluster, audiences and policy (its `run`, `command` and `work` are
    /// replaced per run).
    pub session: SessionSpec,
    /// How the distroless workflow may run (needed for `--mode distroless` and `auto`).
    pub distroless: Option<keyhole_workflows::DistrolessOptions>,
    /// Sidecar mode: the oldest facts accepted.
    pub max_age: std::time::Duration,
}

/// One scanned container.
#[derive(Debug)]
pub struct ContainerResult {
    /// The container.
    pub target: ContainerTarget,
    /// Its facts, as gathered.
    pub facts: Facts,
    /// Its HDF, evaluated locally.
    pub evaluated: Evaluated,
}

/// How a cluster scan ended.
#[derive(Debug)]
pub struct ScanOutcome {
    /// The access session (exit code, cleanup, least-privilege report, error).
    pub session: Outcome,
    /// Every container scanned (empty when the session failed before gathering finished).
    pub results: Vec<ContainerResult>,
    /// The mode actually used, and why.
    pub mode: (ScanMode, String),
    /// What the scan leaves that Kubernetes cannot remove: the terminated ephemeral
    /// containers (distroless), as `namespace/pod: container`.
    pub traces: Vec<String>,
    /// The run id of every session the scan opened, in order (two when `auto` fell back to
    /// distroless); the audit log's records of the scan carry these.
    pub run_ids: Vec<keyhole_core::RunId>,
    /// What the post-scan audit needs ([`crate::postscan::audit_scan`]): the pods before and
    /// after, the runs' objects, the tokens' fingerprints.
    pub postscan: crate::postscan::PostScanEvidence,
}

/// The pods of `namespace` matching `selector`, listed with the **user's** client at scan time;
/// the caller pins the names in the Role's `resourceNames` (Kubernetes has no label selectors in
/// Role rules). Sorted, never empty.
pub async fn resolve_selector(
    user: &kube::Client,
    namespace: &Namespace,
    selector: &LabelSelector,
) -> Result<Vec<PodName>, ScanError> {
    let query = selector
        .terms()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let api: Api<Pod> = Api::namespaced(user.clone(), namespace.as_str());
    let list = api
        .list(&ListParams::default().labels(&query))
        .await
        .map_err(|e| ScanError::List {
            namespace: namespace.to_string(),
            message: keyhole_core::kube_error(&e),
        })?;
    let mut names: Vec<PodName> = list
        .items
        .iter()
        .filter_map(|p| p.metadata.name.as_deref())
        .filter_map(|n| PodName::new(n).ok())
        .collect();
    names.sort();
    names.dedup();
    if names.is_empty() {
        return Err(ScanError::NoMatch {
            namespace: namespace.to_string(),
            selector: query,
        });
    }
    Ok(names)
}

/// The mode a request runs in, and why (`auto` is settled by [`scan_cluster`]).
pub fn decide_mode(requested: ScanMode) -> Result<(ScanMode, String), ScanError> {
    Ok(match requested {
        ScanMode::Auto => (
            ScanMode::Auto,
            "auto: standard first; without a shell, that access is torn down and distroless runs with its own".into(),
        ),
        m => (m, "requested".into()),
    })
}

/// One session of one concrete mode: its outcome and what it gathered.
struct Gathered {
    session: Outcome,
    facts: Vec<(ContainerTarget, Facts)>,
    traces: Vec<String>,
}

async fn gather_in_session(
    user: &kube::Client,
    request: &ScanRequest,
    run: Run,
    scoped: Arc<dyn ScopedClients>,
    audit: Audit,
    launch: Option<&crate::launch::Launch>,
) -> Result<Gathered, ScanError> {
    let mode = run.mode();
    let extra = match launch {
        Some(l) => Some(crate::launch::objects(&run, l)?),
        None => None,
    };
    let distroless = match (mode, &request.distroless) {
        (ScanMode::Distroless, Some(d)) => Some(d.clone()),
        (ScanMode::Distroless, None) => return Err(ScanError::ModeUnavailable(mode)),
        _ => None,
    };
    let max_age = request.max_age;
    // The socket tables ride along for the pre-scan network checks (crate::prescan).
    let plan = crate::prescan::with_network_tables(keyhole_engine::plan(
        &request.profile,
        &request.inputs,
    ));
    let gathered: Arc<Mutex<Vec<(ContainerTarget, Facts)>>> = Arc::default();
    let work = {
        let gathered = gathered.clone();
        let run = run.clone();
        let container = request.container.clone();
        let launch = launch.cloned();
        Box::new(move |client: kube::Client| {
            Box::pin(async move {
                let ns = run.namespace().to_string();
                for pod in run.pods() {
                    let (target, facts) = if let Some(l) = &launch {
                        // The scan pod this run created: wait for the sidecar's first frame.
                        let (facts, at) =
                            crate::launch::wait_for_facts(&client, &ns, pod.as_str(), l)
                                .await
                                .map_err(work_error)?;
                        tracing::info!(pod = %pod, gathered_at = %at, "launched scan pod's facts read");
                        let target = ContainerTarget {
                            namespace: ns.clone(),
                            pod: pod.to_string(),
                            container: crate::launch::TARGET_CONTAINER.to_string(),
                        };
                        (target, facts)
                    } else if mode == ScanMode::Sidecar {
                        let (facts, at) = keyhole_workflows::read_sidecar(
                            &client,
                            &ns,
                            pod.as_str(),
                            max_age,
                            Timestamp::now(),
                        )
                        .await
                        .map_err(work_error)?;
                        tracing::info!(pod = %pod, gathered_at = %at, "sidecar facts read");
                        let target = ContainerTarget {
                            namespace: ns.clone(),
                            pod: pod.to_string(),
                            container: container
                                .clone()
                                .unwrap_or_else(|| keyhole_scanners::SIDECAR_NAME.to_string()),
                        };
                        (target, facts)
                    } else {
                        let target = keyhole_workflows::resolve_container(
                            &client,
                            &ns,
                            pod.as_str(),
                            container.as_deref(),
                        )
                        .await
                        .map_err(work_error)?;
                        let facts = match &distroless {
                            None => keyhole_workflows::gather_standard(&client, &target, &plan)
                                .await
                                .map_err(work_error)?,
                            Some(opts) => {
                                keyhole_workflows::gather_distroless(
                                    &client, &run, &target, &plan, opts,
                                )
                                .await
                                .map_err(work_error)?
                                .0
                            }
                        };
                        (target, facts)
                    };
                    tracing::info!(%target, answers = facts.len(), "facts gathered");
                    gathered
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push((target, facts));
                }
                Ok(())
            })
                as std::pin::Pin<Box<dyn Future<Output = Result<(), SessionError>> + Send>>
        }) as crate::session::ScopedWork
    };
    let run_for_traces = run.clone();
    let spec = SessionSpec {
        run,
        cluster: request.session.cluster.clone(),
        audiences: request.session.audiences.clone(),
        command: Vec::new(),
        work: Some(work),
        policy: request.session.policy,
    };
    let ephemeral = run_for_traces.object_name().to_string();
    let probe = keyhole_workflows::probe_container_name(&run_for_traces);
    let session = run_session_with(user.clone(), spec, scoped, audit, extra).await?;
    let facts = std::mem::take(&mut *gathered.lock().unwrap_or_else(|p| p.into_inner()));
    // Whatever happened, an ephemeral container that was added stays in the pod spec: read the
    // pods back (with the user's credentials, after the access is gone) and report each.
    let mut traces = Vec::new();
    if mode == ScanMode::Distroless {
        let ns = run_for_traces.namespace().as_str();
        let api: Api<Pod> = Api::namespaced(user.clone(), ns);
        // Bounded like every other call of the user's outside the session: an API server
        // that stops answering must not hold the command (the access is already gone).
        let limit = request.session.policy.call_timeout;
        for pod in run_for_traces.pods() {
            let read = tokio::time::timeout(limit, api.get(pod.as_str()))
                .await
                .unwrap_or_else(|_| {
                    Err(kube::Error::Service(
                        format!("no answer within {limit:?}").into(),
                    ))
                });
            match read {
                Ok(p) => {
                    let added: Vec<String> = p
                        .spec
                        .and_then(|s| s.ephemeral_containers)
                        .into_iter()
                        .flatten()
                        .map(|c| c.name)
                        .collect();
                    // The UID probe first (when one ran), then the scanner.
                    if added.contains(&probe) {
                        traces.push(format!(
                            "{ns}/{pod}: ephemeral container {probe} (the UID probe: the pod \
                             spec did not settle the target's identity; --target-uid avoids it)"
                        ));
                    }
                    if added.contains(&ephemeral) {
                        traces.push(format!("{ns}/{pod}: ephemeral container {ephemeral}"));
                    }
                }
                Err(e) => traces.push(format!(
                    "{ns}/{pod}: could not check for ephemeral container {ephemeral} ({e})"
                )),
            }
        }
    }
    Ok(Gathered {
        session,
        facts,
        traces,
    })
}

/// True when a session failed because the target has no shell (auto then goes distroless).
fn no_shell(o: &Outcome) -> bool {
    matches!(&o.error, Some(SessionError::Work(e))
        if matches!(e.downcast_ref::<WorkflowError>(), Some(WorkflowError::NoShell { .. })))
}

/// Runs the scan of `request`. `user` creates and deletes the access (and nothing else); the
/// facts are gathered by the scoped client from `scoped`; the results are evaluated after the
/// teardown. `auto` runs standard; when the target has no shell and that session's teardown is
/// verified complete, it runs distroless in a second run with its own Role — the two modes'
/// rights are never held together.
pub async fn scan_cluster(
    user: kube::Client,
    request: ScanRequest,
    scoped: Arc<dyn ScopedClients>,
    audit: Audit,
) -> Result<ScanOutcome, ScanError> {
    scan_cluster_with(user, request, scoped, audit, None).await
}

/// `keyhole scan --mode sidecar --launch IMAGE`: [`scan_cluster`] of a scan pod this run
/// creates (see [`crate::launch`]) behind its verified NetworkPolicy, read through its log and
/// deleted with the run's other objects. The request's run must be a sidecar run of one pod
/// (the scan pod's name).
pub async fn scan_cluster_launch(
    user: kube::Client,
    request: ScanRequest,
    launch: crate::launch::Launch,
    scoped: Arc<dyn ScopedClients>,
    audit: Audit,
) -> Result<ScanOutcome, ScanError> {
    if request.run.mode() != ScanMode::Sidecar || request.run.pods().len() != 1 {
        return Err(ScanError::Session(SessionError::Work(
            "--launch creates one scan pod in sidecar mode: give exactly one TARGET name and \
             --mode sidecar"
                .into(),
        )));
    }
    scan_cluster_with(user, request, scoped, audit, Some(launch)).await
}

async fn scan_cluster_with(
    user: kube::Client,
    request: ScanRequest,
    scoped: Arc<dyn ScopedClients>,
    audit: Audit,
    launch: Option<crate::launch::Launch>,
) -> Result<ScanOutcome, ScanError> {
    let mut request = request;
    let requested = request.run.mode();
    // Pre-scan check with the user's credentials: a root scanner (opted in) cannot be added
    // where Pod Security enforces `restricted`; learn it before any patch is sent.
    if let Some(d) = request.distroless.as_mut()
        && d.allow_root
        && matches!(requested, ScanMode::Distroless | ScanMode::Auto)
    {
        let ns: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(user.clone());
        match ns.get(request.run.namespace().as_str()).await {
            Ok(n) => {
                d.namespace_restricted = n
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("pod-security.kubernetes.io/enforce"))
                    .is_some_and(|v| v == "restricted");
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the namespace's Pod Security level; admission will judge the scanner")
            }
        }
    }
    // Post-scan audit: the targets as they are before anything is created (user's client),
    // and a fingerprint of every token the session hands to the scoped client.
    let mut evidence = crate::postscan::PostScanEvidence {
        started: Some(std::time::SystemTime::now()),
        ..Default::default()
    };
    let target_ns = request.run.namespace().to_string();
    let target_pods: Vec<String> = request.run.pods().iter().map(ToString::to_string).collect();
    let before = crate::postscan::snapshot_pods(&user, &target_ns, &target_pods).await;
    evidence.targets = crate::postscan::pair_targets(before, Vec::new(), &[]);
    let (scoped, tokens) = crate::postscan::FingerprintingScoped::wrap(scoped);
    let scoped: Arc<dyn ScopedClients> = scoped;
    let first_mode = if requested == ScanMode::Auto {
        ScanMode::Standard
    } else {
        requested
    };
    let run = &request.run;
    let first = Run::new(
        run.id().clone(),
        run.target().clone(),
        first_mode,
        *run.expiry(),
    )
    .map_err(|e| SessionError::Work(Box::new(e)))?;
    let mut run_ids = vec![first.id().clone()];
    let first_id = first.id().to_string();
    let first_probe = keyhole_workflows::probe_container_name(&first);
    let first_ephemeral =
        (first_mode == ScanMode::Distroless).then(|| first.object_name().to_string());
    let mut g = gather_in_session(
        &user,
        &request,
        first,
        scoped.clone(),
        audit.clone(),
        launch.as_ref(),
    )
    .await?;
    evidence.add_run(&first_id, &g.session.cleanup, first_ephemeral.as_deref());
    if first_mode == ScanMode::Distroless {
        expect_probe(&mut evidence, &g.traces, &first_probe);
    }
    let mut why = match first_mode {
        ScanMode::Distroless => {
            "distroless: one ephemeral container running keyhole-agent, facts read from its log"
        }
        ScanMode::Sidecar => "sidecar: the newest facts on the scanner sidecar's log",
        _ => "standard: one exec session running the fact script on stdin",
    }
    .to_string();
    let mut mode = first_mode;
    if requested == ScanMode::Auto && no_shell(&g.session) && g.session.cleanup.is_clean() {
        let id = keyhole_core::RunId::generate().map_err(|e| SessionError::Work(Box::new(e)))?;
        let second = Run::new(
            id,
            run.target().clone(),
            ScanMode::Distroless,
            *run.expiry(),
        )
        .map_err(|e| SessionError::Work(Box::new(e)))?;
        let audit2 = audit.for_run(second.id().as_str());
        run_ids.push(second.id().clone());
        tracing::info!("no shell in the target: the standard access is gone, trying distroless");
        let (second_id, second_ephemeral) =
            (second.id().to_string(), second.object_name().to_string());
        let second_probe = keyhole_workflows::probe_container_name(&second);
        g = gather_in_session(&user, &request, second, scoped, audit2, None).await?;
        evidence.add_run(&second_id, &g.session.cleanup, Some(&second_ephemeral));
        expect_probe(&mut evidence, &g.traces, &second_probe);
        mode = ScanMode::Distroless;
        why = "auto: the target has no shell, so after the standard access was deleted and \
               verified gone, one ephemeral container ran keyhole-agent with its own access"
            .into();
    } else if requested == ScanMode::Auto {
        why = format!("auto: the target has a shell; {why}");
    }
    // Every access is torn down: read the targets again for the post-scan comparison.
    let after = crate::postscan::snapshot_pods(&user, &target_ns, &target_pods).await;
    for t in &mut evidence.targets {
        t.after = after.iter().find(|(p, _)| *p == t.pod).map_or_else(
            || Err("not read after the scan".to_owned()),
            |(_, a)| a.clone(),
        );
    }
    evidence.tokens = tokens.lock().unwrap_or_else(|p| p.into_inner()).clone();
    // Access is gone (or reported as not gone); evaluation needs no cluster. Only a gathering
    // that ran to its end is evaluated: partial facts must not read as a result.
    let now = Timestamp::now();
    let complete =
        g.session.error.is_none() && g.session.ending == keyhole_cleanup::Ending::Completed;
    let results = if complete {
        g.facts
            .into_iter()
            .map(|(target, facts)| {
                let evaluated = keyhole_workflows::evaluate(
                    &target,
                    &request.profile,
                    &request.inputs,
                    &request.waivers,
                    &facts,
                    now,
                );
                ContainerResult {
                    target,
                    facts,
                    evaluated,
                }
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(ScanOutcome {
        session: g.session,
        results,
        mode: (mode, why),
        traces: g.traces,
        run_ids,
        postscan: evidence,
    })
}

/// The distroless run's UID probe container, when the run reports one in `traces`, is expected
/// in the target pods too: like the scanner, it stays in the pod spec, and the output names it.
fn expect_probe(evidence: &mut crate::postscan::PostScanEvidence, traces: &[String], probe: &str) {
    if !traces.iter().any(|t| t.contains(probe)) {
        return;
    }
    for t in &mut evidence.targets {
        t.expected_ephemeral.push(probe.to_owned());
    }
}

fn work_error(e: WorkflowError) -> SessionError {
    SessionError::Work(Box::new(e))
}
