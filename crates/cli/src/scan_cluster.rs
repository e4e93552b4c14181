//! `keyhole scan TARGET… | -l SELECTOR`: the command-line side of a cluster scan. The work is
//! `keyhole_cli::cluster_scan` (a library); this file turns arguments into a request and the
//! outcome into output and an exit code.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jiff::Timestamp;
use keyhole_cleanup::CleanupAction;
use keyhole_cli::cluster_scan::{
    ScanError, ScanRequest, decide_mode, resolve_selector, scan_cluster_launch,
};
use keyhole_cli::prescan::scan_gated;
use keyhole_cli::session::{Audit, SessionSpec, TlsScopedClients};
use keyhole_core::{Expiry, Namespace, PodName, Run, RunId, ScanTarget};

use crate::args::{ScanArgs, ScanFormat};
use crate::cluster::{init_tracing, load, open_audit, retry_policy, runtime, user_client};
use crate::scan::{Extras, judging, report_with};
use crate::{Failure, Output};

/// `--out FILE` for one of several pods: `FILE` with `.POD` before its extension.
pub(crate) fn out_for(out: &Path, pod: &str, several: bool) -> PathBuf {
    if !several {
        return out.to_path_buf();
    }
    let stem = out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match out.extension() {
        Some(ext) => format!("{stem}.{pod}.{}", ext.to_string_lossy()),
        None => format!("{stem}.{pod}"),
    };
    out.with_file_name(name)
}

/// The namespace of a scan: `-n`, else the kubeconfig context's, else `default`.
pub(crate) fn namespace_of(
    a: &ScanArgs,
    user: Option<&crate::cluster::UserConfig>,
) -> Result<Namespace, Failure> {
    match (&a.namespace, user.and_then(|u| u.namespace.as_ref())) {
        (Some(n), _) => Ok(n.clone()),
        (None, Some(n)) => Namespace::new(n.clone()).map_err(Failure::bad_input),
        (None, None) => Namespace::new("default").map_err(Failure::bad_input),
    }
}

/// The pods named on the command line (`NAME` or `pod/NAME`).
pub(crate) fn named_pods(a: &ScanArgs) -> Result<Vec<PodName>, Failure> {
    a.targets
        .iter()
        .map(|t| PodName::new(t.strip_prefix("pod/").unwrap_or(t)).map_err(Failure::bad_input))
        .collect()
}

/// What a session's teardown says to the user: objects an earlier run left and this one
/// reaped, kinds that could not be listed, and every object that would not go.
pub(crate) fn session_warnings(o: &keyhole_cli::session::Outcome) -> Vec<String> {
    let mut warnings: Vec<String> = o
        .reaped
        .iter()
        .map(|r| format!("reaped {r} left by an earlier run"))
        .collect();
    warnings.extend(o.unlisted.iter().cloned());
    warnings.extend(
        o.cleanup
            .actions
            .iter()
            .filter(|a| {
                matches!(
                    a,
                    CleanupAction::StillPresent { .. } | CleanupAction::DeleteFailed { .. }
                )
            })
            .map(ToString::to_string),
    );
    warnings
}

/// How many objects a session created (each one verified gone, or reported otherwise).
pub(crate) fn created_count(o: &keyhole_cli::session::Outcome) -> usize {
    o.cleanup
        .actions
        .iter()
        .filter(|a| matches!(a, CleanupAction::VerifiedGone(_)))
        .count()
}

/// The cleanup verdict's words in the closing line.
pub(crate) fn cleanup_words(o: &keyhole_cli::session::Outcome) -> &'static str {
    if o.cleanup.is_clean() {
        "verified complete"
    } else {
        "INCOMPLETE: run `keyhole reap` once the API server answers"
    }
}

/// The distroless workflow's options from the command line; `wait_secs`: how long to wait for
/// the agent (its own limit is the TTL less a margin).
pub(crate) fn distroless_options(
    a: &ScanArgs,
    wait_secs: u64,
) -> keyhole_workflows::DistrolessOptions {
    keyhole_workflows::DistrolessOptions {
        image: a.image.clone(),
        target_uid: a.target_uid,
        target_gid: a.target_gid,
        allow_root: a.scanner_as_target_root,
        allow_shared_pid: a.allow_shared_pid,
        namespace_restricted: false,
        poll: std::time::Duration::from_secs(1),
        wait: std::time::Duration::from_secs(wait_secs),
    }
}

pub(crate) fn scan(a: &ScanArgs) -> Result<Output, Failure> {
    // A selector may match many pods in many namespaces: one session per namespace.
    if a.selector.is_some() {
        return crate::scan_fleet::scan(a);
    }
    init_tracing();
    let policy = retry_policy()?;
    let j = judging(a)?;
    let report_target = crate::gates::report_target(a)?;
    let precheck_policy = crate::gates::policy(a)?;
    let started = Timestamp::now();
    let (mode, why) = decide_mode(a.mode).map_err(Failure::bad_input)?;
    // --launch: one scan pod, in sidecar mode, whose image's UID the user gives.
    let launch_uid = match &a.launch {
        None => 0,
        Some(_) if mode != keyhole_core::ScanMode::Sidecar => {
            return Err(Failure::bad_input("--launch needs --mode sidecar"));
        }
        Some(_) if a.targets.len() != 1 || a.selector.is_some() => {
            return Err(Failure::bad_input(
                "--launch creates one scan pod: give exactly one TARGET name (the pod's)",
            ));
        }
        Some(_) => a.target_uid.ok_or_else(|| {
            Failure::bad_input(
                "--launch needs --target-uid N: the image runs as that UID in the scan pod, \
                 and the sidecar with it",
            )
        })?,
    };
    // A dry run with -n needs no kubeconfig at all.
    let user = match (a.dry_run, &a.namespace) {
        (true, Some(_)) => None,
        _ => Some(load(&a.kube)?),
    };
    let ns = namespace_of(a, user.as_ref())?;
    let named = named_pods(a)?;
    if a.dry_run {
        return Ok(Output {
            stdout: dry_run(a, &ns, &named, mode, &why, &j),
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
    let (gated, run, postscan) = rt.block_on(async {
        let client = user_client(&user).await?;
        let pods = match &a.selector {
            Some(sel) => resolve_selector(&client, &ns, sel)
                .await
                .map_err(|e| match e {
                    ScanError::NoMatch { .. } => Failure::bad_input(e),
                    _ => Failure::scan(e),
                })?,
            None => named.clone(),
        };
        let target =
            ScanTarget::pods(ns.clone(), pods, a.container.clone()).map_err(Failure::bad_input)?;
        let expiry = Expiry::new(Timestamp::now(), a.ttl).map_err(Failure::bad_input)?;
        let id = RunId::generate().map_err(|e| Failure::scan(e.to_string()))?;
        let run = Run::new(id, target, mode, expiry).map_err(Failure::bad_input)?;
        let audit = Audit::new(log, run.id().as_str());
        let request = ScanRequest {
            run: run.clone(),
            container: a.container.as_ref().map(ToString::to_string),
            profile: j.profile.clone(),
            inputs: j.inputs.clone(),
            waivers: j.waivers.clone(),
            session: SessionSpec {
                run: run.clone(),
                cluster: user.cluster.clone(),
                audiences: a.audiences.clone(),
                command: Vec::new(),
                work: None,
                policy,
            },
            // The agent's own limit is the run's TTL less a margin; wait no longer.
            distroless: Some(distroless_options(
                a,
                keyhole_scanners::scan_time_limit_secs(&run) + 30,
            )),
            max_age: a.max_age,
        };
        let scoped = Arc::new(TlsScopedClients {
            cluster: user.cluster.clone(),
            namespace: ns.to_string(),
        });
        let gated = if let Some(image) = &a.launch {
            // The scan pod does not exist yet (this run creates it, hardened): there is no
            // pod to pre-check.
            let launch = keyhole_cli::launch::Launch {
                image: image.clone(),
                scanner: a.image.clone(),
                uid: launch_uid,
                gid: a.target_gid,
                poll: std::time::Duration::from_secs(1),
                wait: std::time::Duration::from_secs(keyhole_scanners::scan_time_limit_secs(&run)),
            };
            let scan = scan_cluster_launch(client.clone(), request, launch, scoped, audit.clone())
                .await
                .map_err(Failure::scan)?;
            keyhole_cli::prescan::GatedOutcome {
                verdicts: Vec::new(),
                scan: Some(scan),
            }
        } else {
            // The pre-scan verification (your credentials, GETs only) runs first; an abort
            // creates nothing.
            scan_gated(
                client.clone(),
                request,
                &precheck_policy,
                scoped,
                audit.clone(),
            )
            .await
            .map_err(|e| match e {
                ScanError::ChooseContainer(_) => Failure::bad_input(e),
                _ => Failure::scan(e),
            })?
        };
        // After teardown: audit records, fresh GETs, credential artifacts, target unchanged.
        let postscan = match gated.scan.as_ref() {
            Some(outcome) => {
                let started = outcome
                    .postscan
                    .started
                    .unwrap_or_else(std::time::SystemTime::now);
                let scope = keyhole_cli::postscan::process_scope(started, audit.path());
                Some(
                    keyhole_cli::postscan::audit_scan(&client, &outcome.postscan, &audit, scope)
                        .await,
                )
            }
            None => None,
        };
        Ok::<_, Failure>((gated, run, postscan))
    })?;
    let Some((outcome, postscan)) = gated.scan.as_ref().zip(postscan.as_ref()) else {
        return crate::gates::prescan_aborted(
            a,
            &j,
            &gated.verdicts,
            &run,
            &log_path,
            started,
            report_target.as_ref(),
        );
    };
    let mut warnings: Vec<String> = vec![format!("mode {}: {why}", outcome.mode.0)];
    warnings.extend(
        gated
            .verdicts
            .iter()
            .flat_map(crate::gates::verdict_warnings),
    );
    let run_summary =
        crate::gates::cluster_summary(a, &j, &run, outcome, &log_path, started, &mut warnings);
    warnings.extend(outcome.traces.iter().map(|t| {
        format!("{t} stays in the pod spec, terminated (Kubernetes cannot remove an ephemeral container)")
    }));
    warnings.extend(session_warnings(&outcome.session));
    // The post-scan audit is the run's, so every target's HDF and report carry it.
    let postscan_profile = postscan
        .to_hdf(&format!("namespace/{ns}"), Timestamp::now())
        .profiles
        .into_iter()
        .next();
    let mut stdout = String::new();
    let mut exit = outcome.session.exit_code;
    let several = outcome.results.len() > 1;
    // Several pods' SARIF is one log, printed after the loop; so is a failed run's.
    let sink = (a.format == ScanFormat::Sarif && (several || outcome.session.error.is_some()))
        .then(crate::gates::SarifSink::default);
    // Several pods' HDF on stdout is one JSON array, in pod order (not one document each).
    let mut docs: Vec<String> = Vec::new();
    for r in &outcome.results {
        if r.evaluated.unanswered > 0 {
            warnings.push(format!(
                "{}: {} fact requests were not answered; their controls report errors",
                r.target, r.evaluated.unanswered
            ));
        }
        let out = a.out.as_deref().map(|o| out_for(o, &r.target.pod, several));
        let report_to = report_target.as_ref().map(|t| crate::gates::ReportTarget {
            path: out_for(&t.path, &r.target.pod, several),
            format: t.format,
        });
        let verdict = gated.verdict_for(&r.target.pod);
        let summary = crate::gates::for_target(&run_summary, &r.target);
        let o = match verdict {
            // The network checks aborted the verdict: the results are not reported.
            Some(v) if v.aborts() => crate::gates::aborted_output(
                a,
                v,
                &summary,
                report_to.as_ref(),
                out.as_deref(),
                Timestamp::now(),
                sink.as_ref(),
            )?,
            _ => report_with(
                a,
                &j,
                &r.evaluated.execution,
                Timestamp::now(),
                out.as_deref(),
                &Extras {
                    verdict,
                    summary: Some(summary),
                    report: report_to,
                    postscan: postscan_profile.clone(),
                    sarif: sink.as_ref(),
                },
            )?,
        };
        if several && a.format == ScanFormat::Json {
            docs.push(o.stdout);
        } else {
            if several && !o.stdout.is_empty() {
                let _ = writeln!(stdout, "== {}", r.target);
            }
            stdout.push_str(&o.stdout);
        }
        warnings.extend(o.warnings);
        if exit == 0 {
            exit = exit.max(o.exit);
        }
    }
    if let Some(e) = &outcome.session.error {
        warnings.push(format!("run {} failed: {e}", run.id()));
    }
    if let Some(array) = crate::gates::json_array(docs) {
        stdout = array;
    }
    if let Some(sink) = &sink {
        // The pods without a result, with the run's error: notifications of the one log.
        let failures: Vec<keyhole_report::TargetFailure> = match &outcome.session.error {
            Some(e) => run
                .pods()
                .iter()
                .filter(|p| !outcome.results.iter().any(|r| r.target.pod == p.as_str()))
                .map(|p| keyhole_report::TargetFailure {
                    target: format!("{ns}/{p}"),
                    message: e.to_string(),
                })
                .collect(),
            None => Vec::new(),
        };
        stdout = sink.render(&failures)?;
    }
    if gated.aborted() {
        warnings.push(format!(
            "the pre-scan network checks aborted the verdict after the scan (exit {}): the scan's results are not reported",
            keyhole_precheck::EXIT_PRECHECK_ABORT
        ));
    }
    if report_target.is_some() && outcome.results.is_empty() {
        warnings.push("no report was written: the scan gathered no results".to_owned());
    }
    let created = created_count(&outcome.session);
    warnings.push(format!(
        "run {} ({} mode): {} object(s) created, cleanup {}; audit log {}",
        run.id(),
        outcome.mode.0,
        created,
        cleanup_words(&outcome.session),
        log_path.display()
    ));
    // Post-scan findings are warnings; leftovers exit 4, other findings 6 (see exit_after).
    warnings.extend(keyhole_cli::postscan::warnings(postscan));
    let exit = keyhole_cli::postscan::exit_after(postscan, exit);
    Ok(Output {
        stdout,
        warnings,
        exit,
    })
}

fn dry_run(
    a: &ScanArgs,
    ns: &Namespace,
    pods: &[PodName],
    mode: keyhole_core::ScanMode,
    why: &str,
    j: &crate::scan::Judging,
) -> String {
    let plan = keyhole_engine::plan(&j.profile, &j.inputs);
    let targets = match &a.selector {
        Some(sel) => format!(
            "the pods of {ns} matching {sel} (listed with your credentials at scan time, then pinned by name)"
        ),
        None => format!(
            "{ns}/{}",
            pods.iter()
                .map(PodName::as_str)
                .collect::<Vec<_>>()
                .join(",")
        ),
    };
    let container = a
        .container
        .as_ref()
        .map_or("the pod's default (or only) container".to_string(), |c| {
            c.to_string()
        });
    let mut s = String::new();
    let _ = writeln!(s, "keyhole scan (dry run: nothing is sent to the cluster)");
    let _ = writeln!(s, "targets:   {targets}");
    let _ = writeln!(s, "container: {container}");
    let _ = writeln!(s, "mode:      {mode} ({why})");
    let _ = writeln!(
        s,
        "profile:   {} ({} fact requests)",
        j.profile.name(),
        plan.len()
    );
    let steps = [
        "pre-scan verification: read each target pod and judge it with the pre-scan policy (--policy, else the built-in one); an abort stops here, having created nothing, with exit 5 (your credentials)".to_string(),
        "reap expired keyhole objects of the namespace (your credentials)".to_string(),
        format!("create ServiceAccount, anchor Secret, Role ({}; resourceNames = the target pods) and RoleBinding (your credentials)", match mode { keyhole_core::ScanMode::Distroless => "pods get; pods/ephemeralcontainers get+patch; pods/log get", keyhole_core::ScanMode::Sidecar => "pods get; pods/log get", keyhole_core::ScanMode::Auto => "pods get; pods/exec get+create — and only if the target has no shell, after that access is deleted, a second run with pods get; pods/ephemeralcontainers get+patch; pods/log get", _ => "pods get; pods/exec get+create" }),
        format!("mint a bound token for {} and verify least privilege with it (SelfSubjectRulesReview)", a.ttl),
        if mode == keyhole_core::ScanMode::Sidecar {
            "read each pod's scanner sidecar log with pods/log get and take the newest complete facts (no exec, no new container) (scoped credentials)".to_string()
        } else if mode == keyhole_core::ScanMode::Distroless {
            "read each pod, add ONE ephemeral container running the agent as the target's UID with no capabilities (a root target, with --scanner-as-target-root: exactly its capability set; a UID the pod spec does not say and --target-uid does not give: learned first by a short probe container reading /proc/1/status, which stays too), wait for it to terminate, read its facts from pods/log (scoped credentials); it stays in the pod spec, terminated".to_string()
        } else {
            "read each pod and open ONE exec session per pod into the container: /bin/sh -s, the fact script on stdin (scoped credentials)".to_string()
        },
        "delete every object created and verify it is gone; record the run in the audit log".to_string(),
        "evaluate the facts locally with your profile, inputs and waivers into HDF; apply the threshold".to_string(),
    ];
    for (i, step) in steps.iter().enumerate() {
        let _ = writeln!(s, "{}. {step}", i + 1);
    }
    s
}
