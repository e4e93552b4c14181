//! `keyhole scan -l SELECTOR [-n NS | -A] [--concurrency N]`: the command-line side of a fleet
//! scan (`keyhole_cli::fleet`): arguments in; a progress bar on a terminal, one HDF per target,
//! the combined summary, the fleet report and the worst exit code out.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use jiff::Timestamp;
use keyhole_cli::cluster_scan::ScanError;
use keyhole_cli::fleet::summary::{Context, FleetSummary};
use keyhole_cli::fleet::{
    DEFAULT_CONCURRENCY, FleetEvent, FleetRequest, OnEvent, Scope, ScopedFor, resolve_fleet,
    scan_fleet,
};
use keyhole_cli::session::{Audit, ScopedClients, TlsScopedClients};
use keyhole_core::{Namespace, ScanMode};

use crate::args::{ScanArgs, ScanFormat};
use crate::cluster::{init_tracing, load, open_audit, retry_policy, runtime, user_client};
use crate::scan::judging;
use crate::{Failure, Output};

/// `--out FILE` for one target of a fleet: `FILE` with `.NAMESPACE.POD` before its extension
/// (always, so a script knows the name whatever the selector matched).
fn out_for(out: &Path, namespace: &str, pod: &str) -> PathBuf {
    let stem = out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match out.extension() {
        Some(ext) => format!("{stem}.{namespace}.{pod}.{}", ext.to_string_lossy()),
        None => format!("{stem}.{namespace}.{pod}"),
    };
    out.with_file_name(name)
}

/// A progress bar on stderr when it is a terminal and `--quiet` is not given; hidden otherwise.
fn progress(total: usize, quiet: bool) -> indicatif::ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(u64::try_from(total).unwrap_or(u64::MAX));
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} targets {msg}",
    ) {
        bar.set_style(style);
    }
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}

pub(crate) fn scan(a: &ScanArgs) -> Result<Output, Failure> {
    init_tracing();
    let policy = retry_policy()?;
    let j = judging(a)?;
    let Some(selector) = a.selector.clone() else {
        return Err(Failure::bad_input("a fleet scan needs -l SELECTOR"));
    };
    // The single scan's report describes one run; a fleet has its own report. (SARIF is one
    // log for the whole fleet.)
    if a.report.is_some() {
        return Err(Failure::bad_input(
            "with -l, use --fleet-report FILE.json|FILE.md (--report describes a single scan); --format sarif gives one SARIF log for the whole fleet",
        ));
    }
    let precheck = crate::gates::policy(a)?;
    let concurrency = a.concurrency.map_or(DEFAULT_CONCURRENCY, usize::from);
    // A dry run with -n or -A needs no kubeconfig at all.
    let user = match (a.dry_run, a.all_namespaces || a.namespace.is_some()) {
        (true, true) => None,
        _ => Some(load(&a.kube)?),
    };
    let scope = if a.all_namespaces {
        Scope::All
    } else {
        Scope::Namespace(crate::scan_cluster::namespace_of(a, user.as_ref())?)
    };
    if a.dry_run {
        return Ok(Output {
            stdout: dry_run(a, &scope, &selector, concurrency, &j),
            warnings: Vec::new(),
            exit: 0,
        });
    }
    let Some(user) = user else {
        return Err(Failure::bad_input("a scan needs your kubeconfig"));
    };
    let (log, log_path) = open_audit(a.audit_log.as_deref(), &a.audit_key)?;
    keyhole_credentials::harden_process().map_err(|e| Failure::scan(e.to_string()))?;
    let rt = runtime()?;
    let (outcome, postscan) = rt.block_on(async {
        let client = user_client(&user).await?;
        let targets = resolve_fleet(&client, &scope, &selector)
            .await
            .map_err(|e| match e {
                ScanError::NoMatch { .. } => Failure::bad_input(e),
                _ => Failure::scan(e),
            })?;
        let total: usize = targets.values().map(Vec::len).sum();
        let bar = progress(total, a.quiet);
        let failed = Arc::new(AtomicUsize::new(0));
        let on_event: OnEvent = {
            let (bar, failed) = (bar.clone(), failed.clone());
            Arc::new(move |e| match e {
                FleetEvent::TargetDone { ok, .. } => {
                    if !ok {
                        let n = failed.fetch_add(1, Ordering::Relaxed) + 1;
                        bar.set_message(format!("({n} failed)"));
                    }
                    bar.inc(1);
                }
                FleetEvent::SessionEnded {
                    namespace, clean, ..
                } if !clean => {
                    bar.println(format!(
                        "keyhole: warning: cleanup of the session in {namespace} is INCOMPLETE"
                    ));
                }
                FleetEvent::SessionEnded { .. } => {}
            })
        };
        let cluster = user.cluster.clone();
        let scoped: ScopedFor = Arc::new(move |ns: &Namespace| {
            Arc::new(TlsScopedClients {
                cluster: cluster.clone(),
                namespace: ns.to_string(),
            }) as Arc<dyn ScopedClients>
        });
        let request = FleetRequest {
            targets,
            mode: a.mode,
            ttl: a.ttl,
            container: a.container.clone(),
            profile: j.profile.clone(),
            inputs: j.inputs.clone(),
            waivers: j.waivers.clone(),
            cluster: user.cluster.clone(),
            audiences: a.audiences.clone(),
            policy,
            // The agent's own limit is the session's TTL less a margin; wait no longer.
            distroless: Some(crate::scan_cluster::distroless_options(
                a,
                u64::try_from(a.ttl.as_secs())
                    .unwrap_or(0)
                    .saturating_sub(keyhole_scanners::SCAN_END_MARGIN_SECS)
                    + 30,
            )),
            max_age: a.max_age,
            concurrency,
            precheck: Some(precheck),
        };
        // Each session records under its own run id; this one is never used.
        let audit = Audit::new(log, "fleet");
        let outcome = scan_fleet(
            client.clone(),
            request,
            scoped,
            audit.clone(),
            Some(on_event),
        )
        .await;
        bar.finish_and_clear();
        // After every teardown, per namespace: audit records, fresh GETs, credential
        // artifacts, the pods unchanged.
        let mut postscan = BTreeMap::new();
        for (ns, evidence) in &outcome.postscan {
            let started = evidence.started.unwrap_or_else(std::time::SystemTime::now);
            let scope = keyhole_cli::postscan::process_scope(started, audit.path());
            let report = keyhole_cli::postscan::audit_scan(&client, evidence, &audit, scope).await;
            postscan.insert(ns.clone(), report);
        }
        Ok::<_, Failure>((outcome, postscan))
    })?;

    let mut warnings: Vec<String> = Vec::new();
    let now = Timestamp::now();
    warnings.extend(j.waivers.expired(now).iter().map(|w| {
        format!(
            "waiver for {} expired; the control was evaluated",
            w.control
        )
    }));
    warnings.extend(j.waivers.unknown(&j.profile).iter().map(|w| {
        format!(
            "waiver names control {} which the profile does not have",
            w.control
        )
    }));
    let profile = format!(
        "{} {}",
        j.profile.name(),
        j.profile.version().unwrap_or_default()
    );
    let selector_text = selector.to_string();
    let mut summary = FleetSummary::build(
        &outcome,
        Context {
            selector: &selector_text,
            scope: &scope,
            concurrency,
            profile: profile.trim(),
            threshold: j.threshold.as_ref(),
        },
    );
    // Post-scan findings are warnings; leftovers make the namespace's targets exit 4, other
    // findings turn their 0 or 1 into 6 (`postscan::exit_after`, as for a single scan).
    for (ns, report) in &postscan {
        warnings.extend(
            keyhole_cli::postscan::warnings(report)
                .into_iter()
                .map(|w| format!("{ns}: {w}")),
        );
        for row in summary
            .targets
            .iter_mut()
            .filter(|r| r.namespace == ns.as_str())
        {
            row.exit_code = keyhole_cli::postscan::exit_after(report, row.exit_code);
        }
    }
    summary.exit_code =
        keyhole_cli::fleet::summary::worst(summary.targets.iter().map(|t| t.exit_code));
    // One HDF per target.
    if let Some(out) = &a.out {
        for (t, row) in outcome.targets.iter().zip(summary.targets.iter_mut()) {
            let Some(r) = &t.result else { continue };
            let path = out_for(out, t.namespace.as_str(), t.pod.as_str());
            let full = full_hdf(t, &r.evaluated.execution, &postscan, now);
            let json = full.to_json_pretty().map_err(Failure::scan)?;
            std::fs::write(&path, json)
                .map_err(|e| Failure::scan(format!("cannot write {}: {e}", path.display())))?;
            row.hdf = Some(path.display().to_string());
        }
    }
    for t in &outcome.targets {
        warnings.extend(t.precheck.iter().flat_map(crate::gates::verdict_warnings));
        if let Some(r) = t.result.as_ref().filter(|r| r.evaluated.unanswered > 0) {
            warnings.push(format!(
                "{}: {} fact requests were not answered; their controls report errors",
                r.target, r.evaluated.unanswered
            ));
        }
    }
    for s in &outcome.sessions {
        let o = &s.outcome;
        warnings.extend(s.traces.iter().map(|t| {
            format!("{t} stays in the pod spec, terminated (Kubernetes cannot remove an ephemeral container)")
        }));
        warnings.extend(crate::scan_cluster::session_warnings(o));
        let created = crate::scan_cluster::created_count(o);
        warnings.push(format!(
            "run {} ({}, {} mode, {} pod(s)): {} object(s) created, cleanup {}",
            s.run_id,
            s.namespace,
            s.mode,
            s.pods.len(),
            created,
            crate::scan_cluster::cleanup_words(o),
        ));
    }
    warnings.push(format!("audit log {}", log_path.display()));
    if let Some(path) = &a.fleet_report {
        let text = if path.extension().is_some_and(|e| e == "json") {
            summary.to_json().map_err(Failure::scan)? + "\n"
        } else {
            summary.to_markdown()
        };
        std::fs::write(path, text)
            .map_err(|e| Failure::scan(format!("cannot write {}: {e}", path.display())))?;
    }
    let stdout = match a.format {
        ScanFormat::Json => summary.to_json().map_err(Failure::scan)? + "\n",
        ScanFormat::Sarif => {
            fleet_sarif(a, &j, &outcome, &postscan, &log_path, now, &mut warnings)?
        }
        ScanFormat::Summary => summary.to_text(),
    };
    Ok(Output {
        stdout,
        warnings,
        exit: summary.exit_code,
    })
}

/// When the fleet's first session started (from the audit log's view: its sessions' post-scan
/// evidence), else `now`.
fn outcome_started(outcome: &keyhole_cli::fleet::FleetOutcome, now: Timestamp) -> Timestamp {
    outcome
        .postscan
        .values()
        .filter_map(|e| e.started)
        .min()
        .and_then(|t| Timestamp::try_from(t).ok())
        .unwrap_or(now)
}

/// A target's HDF: the scan's profile first, then `keyhole-precheck`, then its namespace's
/// `keyhole-postscan`.
fn full_hdf(
    t: &keyhole_cli::fleet::TargetOutcome,
    exec: &keyhole_hdf::Execution,
    postscan: &BTreeMap<Namespace, keyhole_audit::PostScanReport>,
    now: Timestamp,
) -> keyhole_hdf::Execution {
    let mut full = crate::gates::with_precheck(exec, t.precheck.as_ref(), now);
    if let Some(report) = postscan.get(&t.namespace) {
        full.profiles.extend(
            report
                .to_hdf(&format!("namespace/{}", t.namespace), now)
                .profiles,
        );
    }
    full
}

/// The fleet's one SARIF log: a report per target with a result (its session's objects and
/// token read back from the audit log), the pre-scan verdict alone for a target it aborted,
/// and an error notification for each target without either.
fn fleet_sarif(
    a: &ScanArgs,
    j: &crate::scan::Judging,
    outcome: &keyhole_cli::fleet::FleetOutcome,
    postscan: &BTreeMap<Namespace, keyhole_audit::PostScanReport>,
    log: &Path,
    now: Timestamp,
    warnings: &mut Vec<String>,
) -> Result<String, Failure> {
    let sink = crate::gates::SarifSink::default();
    let mut failures = Vec::new();
    let mut records: BTreeMap<String, crate::gates::RunRecord> = BTreeMap::new();
    let started = outcome_started(outcome, now);
    for t in &outcome.targets {
        let container = t
            .result
            .as_ref()
            .map(|r| r.target.container.clone())
            .or_else(|| t.precheck.as_ref().map(|v| v.target.container.clone()))
            .unwrap_or_default();
        let shown = crate::gates::target(t.namespace.as_str(), t.pod.as_str(), &container);
        let aborted = t.precheck.as_ref().filter(|v| v.aborts());
        let failure = |message: String| keyhole_report::TargetFailure {
            target: format!("{}/{}", t.namespace, t.pod),
            message,
        };
        let Some(run_id) = t
            .run_id
            .as_ref()
            .filter(|_| t.result.is_some() || aborted.is_some())
        else {
            // No session ran for it (its verdict aborted before one, or the fleet was
            // stopped), or its gathering failed: a notification, with why.
            let why = match aborted {
                Some(v) => keyhole_cli::prescan::abort_reason(std::slice::from_ref(v))
                    .unwrap_or_else(|| "the pre-scan verification aborted".to_owned()),
                None => t
                    .error
                    .clone()
                    .unwrap_or_else(|| format!("no result (exit {})", t.exit_code)),
            };
            failures.push(failure(why));
            continue;
        };
        let (objects, token) = records
            .entry(run_id.to_string())
            .or_insert_with(|| {
                crate::gates::run_record(log, std::slice::from_ref(run_id)).unwrap_or_else(|e| {
                    warnings.push(format!(
                        "the SARIF log lists no objects of run {run_id}: {e}"
                    ));
                    (Vec::new(), None)
                })
            })
            .clone();
        let summary = keyhole_report::RunSummary {
            run_id: run_id.clone(),
            tool_version: env!("CARGO_PKG_VERSION").to_owned(),
            targets: shown.into_iter().collect(),
            mode: t.mode,
            started_at: started,
            finished_at: now,
            threshold: crate::gates::threshold_spec(a, j),
            aborted: None,
            objects,
            token,
            precheck: None,
            postscan: None,
        };
        match (aborted, &t.result) {
            (Some(v), _) => {
                crate::gates::aborted_output(a, v, &summary, None, None, now, Some(&sink))?;
            }
            (None, Some(r)) => {
                let full = full_hdf(t, &r.evaluated.execution, postscan, now);
                crate::gates::reports(a, &full, &summary, None, false, Some(&sink))?;
            }
            // Filtered out above: a notification.
            (None, None) => {}
        }
    }
    sink.render(&failures)
}

fn dry_run(
    a: &ScanArgs,
    scope: &Scope,
    selector: &keyhole_core::LabelSelector,
    concurrency: usize,
    j: &crate::scan::Judging,
) -> String {
    let plan = keyhole_engine::plan(&j.profile, &j.inputs);
    let mut s = String::new();
    let _ = writeln!(s, "keyhole scan (dry run: nothing is sent to the cluster)");
    let _ = writeln!(
        s,
        "targets:     the pods of {scope} matching {selector} (listed with your credentials at scan time)"
    );
    let _ = writeln!(s, "mode:        {}", a.mode);
    let _ = writeln!(
        s,
        "profile:     {} ({} fact requests)",
        j.profile.name(),
        plan.len()
    );
    let _ = writeln!(
        s,
        "concurrency: at most {concurrency} session(s) open and {concurrency} pod(s) scanned at once"
    );
    let steps = [
        "list the matching pods with your credentials and group them by namespace".to_string(),
        "pre-scan verification of each pod with your credentials (--policy, else the built-in one): a pod whose verdict aborts exits 5 and is left out of every Role".to_string(),
        format!(
            "per namespace, one session: reap expired keyhole objects; create ServiceAccount, anchor Secret, Role (resourceNames = exactly that namespace's matching pods) and RoleBinding; mint a bound token for {}; verify least privilege with it",
            a.ttl
        ),
        format!(
            "gather each pod's facts with the scoped identity ({}); a pod that fails is reported and the others go on",
            if a.mode == ScanMode::Auto {
                "standard; pods without a shell get a second, distroless session once the first is torn down"
            } else {
                "one exec, ephemeral container or sidecar log read per pod"
            }
        ),
        "delete every object of the session and verify it is gone; record it in the audit log".to_string(),
        "evaluate each pod's facts locally into its own HDF; print the combined summary; exit with the worst target's code".to_string(),
    ];
    for (i, step) in steps.iter().enumerate() {
        let _ = writeln!(s, "{}. {step}", i + 1);
    }
    s
}
