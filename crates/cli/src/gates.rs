//! The command-line side of the pre-scan gate and of the reports of `keyhole scan`: the
//! policy and report options, the verdict as text and warnings, the HDF with its
//! `keyhole-precheck` profile, the run summary read back from the audit log, and the
//! `--report FILE` / `--format sarif` renderings (`keyhole-report`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use keyhole_core::{ContainerName, Created, Namespace, ObjectKind, PodName, RunId, ScanMode};
use keyhole_hdf::Execution;
use keyhole_precheck::{Action, CheckResult, Policy, Verdict};
use keyhole_report::{
    ObjectRecord, Report, RunSummary, Target, TargetFailure, ThresholdSpec, TokenLifetime,
};

use crate::args::{ReportFormat, ScanArgs, ScanFormat};
use crate::scan::Judging;
use crate::{Failure, Output};

/// The SARIF reports of several targets, gathered to be rendered as one log at the end
/// ([`keyhole_report::sarif_log`]): a code-scanning upload takes one document, so several
/// targets cannot each print their own.
#[derive(Debug, Default)]
pub(crate) struct SarifSink(std::cell::RefCell<Vec<Report>>);

impl SarifSink {
    /// The one SARIF log (with a newline) of every report gathered and of `failures`, the
    /// targets that gave none.
    pub(crate) fn render(&self, failures: &[TargetFailure]) -> Result<String, Failure> {
        let reports = self.0.borrow();
        let mut log = keyhole_report::sarif_log(&reports, failures).map_err(Failure::scan)?;
        log.push('\n');
        Ok(log)
    }
}

/// Several JSON documents (each a whole document, as `--format json` prints one target's HDF)
/// as one JSON array with a newline, so stdout stays one document; `None` when there is none
/// (they went to `--out` files).
pub(crate) fn json_array(docs: Vec<String>) -> Option<String> {
    let docs: Vec<String> = docs
        .into_iter()
        .map(|d| d.trim_end().to_owned())
        .filter(|d| !d.is_empty())
        .collect();
    (!docs.is_empty()).then(|| format!("[\n{}\n]\n", docs.join(",\n")))
}

/// The objects a run created and its token's lifetime, read back from the audit log.
pub(crate) type RunRecord = (Vec<ObjectRecord>, Option<TokenLifetime>);

/// Where `--report` goes and in which format.
#[derive(Debug, Clone)]
pub(crate) struct ReportTarget {
    pub(crate) path: PathBuf,
    pub(crate) format: ReportFormat,
}

/// `--report FILE [--report-format F]`, settled before anything is done: a file whose format
/// is neither given nor told by its extension is bad input.
pub(crate) fn report_target(a: &ScanArgs) -> Result<Option<ReportTarget>, Failure> {
    let Some(path) = &a.report else {
        return Ok(None);
    };
    let format = match a.report_format {
        Some(f) => f,
        None => match path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .as_deref()
        {
            Some("md" | "markdown") => ReportFormat::Md,
            Some("json") => ReportFormat::Json,
            Some("html" | "htm") => ReportFormat::Html,
            Some("sarif") => ReportFormat::Sarif,
            _ => {
                return Err(Failure::bad_input(format!(
                    "--report {}: cannot tell the format from the extension; use .md, .json, .html or .sarif, or --report-format md|json|html|sarif",
                    path.display()
                )));
            }
        },
    };
    Ok(Some(ReportTarget {
        path: path.clone(),
        format,
    }))
}

/// The pre-scan policy: `--policy FILE`, else the built-in one.
pub(crate) fn policy(a: &ScanArgs) -> Result<Policy, Failure> {
    match &a.policy {
        Some(p) => Policy::from_file(p).map_err(Failure::bad_input),
        None => Ok(Policy::builtin()),
    }
}

fn evidence(c: &CheckResult) -> String {
    c.evidence
        .iter()
        .map(|e| format!("{} = {}", e.path, e.value))
        .collect::<Vec<_>>()
        .join("; ")
}

fn level(c: &CheckResult) -> &'static str {
    match c.action {
        Action::Abort => "ABORT",
        Action::Warn => "warn",
        Action::Ignore => "ignore",
    }
}

/// One line per failed check that counts (abort or warn), with its evidence, for stderr.
pub(crate) fn verdict_warnings(v: &Verdict) -> Vec<String> {
    v.failures()
        .map(|c| {
            format!(
                "pre-scan {} {}/{}: {}: {} [{}]",
                level(c),
                v.target.namespace,
                v.target.pod,
                c.check,
                c.message,
                evidence(c)
            )
        })
        .collect()
}

/// The verdict for the summary on stdout: the decision, and every failed check with its
/// evidence.
pub(crate) fn verdict_text(v: &Verdict) -> String {
    let mut s = String::new();
    let failures: Vec<&CheckResult> = v.failures().collect();
    let _ = writeln!(
        s,
        "pre-scan verification of {}/{} ({}): {}, {} check(s) failed",
        v.target.namespace,
        v.target.pod,
        v.target.container,
        if v.aborts() {
            "ABORT (exit 5)"
        } else {
            "proceed"
        },
        failures.len()
    );
    for c in failures {
        let _ = writeln!(s, "  [{}] {}: {}", level(c), c.check, c.message);
        for e in &c.evidence {
            let _ = writeln!(s, "      {} = {}", e.path, e.value);
        }
    }
    s
}

/// `exec` with the verdict's `keyhole-precheck` profile appended (after the scan's profile,
/// which stays first: it is the one thresholds and reports judge).
pub(crate) fn with_precheck(
    exec: &Execution,
    verdict: Option<&Verdict>,
    now: Timestamp,
) -> Execution {
    let mut full = exec.clone();
    if let Some(v) = verdict {
        full.profiles.extend(v.to_hdf(now).profiles);
    }
    full
}

/// The threshold as the report names it.
pub(crate) fn threshold_spec(a: &ScanArgs, j: &Judging) -> Option<ThresholdSpec> {
    j.threshold.as_ref().map(|t| ThresholdSpec {
        source: a
            .threshold
            .as_ref()
            .map_or_else(|| "given".to_owned(), |p| p.display().to_string()),
        threshold: t.clone(),
    })
}

/// The summary of a local scan (`--root`/`--pid`): no cluster, no objects, no token.
pub(crate) fn local_summary(
    a: &ScanArgs,
    j: &Judging,
    now: Timestamp,
) -> Result<RunSummary, Failure> {
    Ok(RunSummary {
        run_id: RunId::generate().map_err(Failure::scan)?,
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
        targets: Vec::new(),
        // Replaced by "local" in the rendered report (`render`): RunSummary has no local mode.
        mode: ScanMode::Standard,
        started_at: now,
        finished_at: Timestamp::now(),
        threshold: threshold_spec(a, j),
        aborted: None,
        objects: Vec::new(),
        token: None,
        precheck: None,
        postscan: None,
    })
}

/// What the run did, read back from its records in the audit log (`run_ids`: the scan's
/// sessions): every object created with its creation time and confirmed deletion time, and the
/// token's lifetime (revoked when its ServiceAccount or anchor Secret was confirmed deleted).
/// The log is the record the report ties to; an unreadable log gives no objects and a warning.
pub(crate) fn run_record(log: &Path, run_ids: &[RunId]) -> Result<RunRecord, String> {
    let text = std::fs::read_to_string(log)
        .map_err(|e| format!("cannot read the audit log {}: {e}", log.display()))?;
    let mut objects: Vec<ObjectRecord> = Vec::new();
    let mut token = None;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let r: keyhole_audit::Record =
            serde_json::from_str(line).map_err(|e| format!("audit log {}: {e}", log.display()))?;
        if !run_ids.iter().any(|id| id.as_str() == r.run_id) {
            continue;
        }
        let at: Timestamp = r
            .time
            .parse()
            .map_err(|e| format!("audit log {}: time {:?}: {e}", log.display(), r.time))?;
        match r.event {
            keyhole_audit::Event::ObjectCreated(o) => {
                let Some(kind) = ObjectKind::ALL.into_iter().find(|k| k.as_str() == o.kind) else {
                    continue;
                };
                objects.push(ObjectRecord {
                    object: Created {
                        kind,
                        namespace: o.namespace,
                        name: o.name,
                        uid: o.uid,
                    },
                    created_at: at,
                    deleted_at: None,
                });
            }
            keyhole_audit::Event::ObjectDeleted(o) => {
                // Deletions of objects this run did not create (the reap of earlier runs'
                // leftovers) have no creation here and are not this run's objects.
                if let Some(rec) = objects.iter_mut().find(|rec| {
                    rec.object.kind.as_str() == o.kind
                        && rec.object.namespace == o.namespace
                        && rec.object.name == o.name
                }) {
                    rec.deleted_at = Some(at);
                }
            }
            keyhole_audit::Event::CleanupVerified { remaining } => {
                for o in remaining {
                    if let Some(rec) = objects.iter_mut().find(|rec| {
                        rec.object.kind.as_str() == o.kind
                            && rec.object.namespace == o.namespace
                            && rec.object.name == o.name
                    }) {
                        rec.deleted_at = None;
                    }
                }
            }
            keyhole_audit::Event::TokenIssued {
                service_account,
                expires_at,
            } => {
                let expires: Timestamp = expires_at
                    .parse()
                    .map_err(|e| format!("audit log: token expiry {expires_at:?}: {e}"))?;
                token = Some((service_account, at, expires));
            }
            _ => {}
        }
    }
    // The last token issued is the one the results were gathered with.
    let token = token.map(|(sa, issued_at, expires_at)| TokenLifetime {
        issued_at,
        expires_at,
        revoked_at: objects
            .iter()
            .filter(|o| {
                (o.object.kind == ObjectKind::ServiceAccount && o.object.name == sa)
                    || (o.object.kind == ObjectKind::Secret
                        && o.object.name == format!("{sa}-anchor"))
            })
            .filter_map(|o| o.deleted_at)
            .min(),
    });
    Ok((objects, token))
}

/// The report target of one container.
pub(crate) fn target(namespace: &str, pod: &str, container: &str) -> Option<Target> {
    Some(Target {
        namespace: Namespace::new(namespace).ok()?,
        pod: PodName::new(pod).ok()?,
        container: ContainerName::new(container).ok(),
    })
}

/// Renders `report` in `format`.
fn render(
    exec: &Execution,
    summary: &RunSummary,
    format: ReportFormat,
    local: bool,
) -> Result<String, Failure> {
    let mut report = Report::build(exec, summary).map_err(Failure::scan)?;
    if local {
        "local".clone_into(&mut report.mode);
    }
    match format {
        ReportFormat::Md => Ok(report.to_markdown()),
        ReportFormat::Json => report.to_json().map_err(Failure::scan),
        ReportFormat::Html => report.to_html().map_err(Failure::scan),
        ReportFormat::Sarif => report.to_sarif().map_err(Failure::scan),
    }
}

/// Writes `--report` (when given) and returns the SARIF log when `--format sarif` asks for it
/// on stdout, or gathers its report into `sink` (then the text is empty). `local`: a
/// `--root`/`--pid` scan.
pub(crate) fn reports(
    a: &ScanArgs,
    exec: &Execution,
    summary: &RunSummary,
    report: Option<&ReportTarget>,
    local: bool,
    sink: Option<&SarifSink>,
) -> Result<Option<String>, Failure> {
    if let Some(t) = report {
        let text = render(exec, summary, t.format, local)?;
        std::fs::write(&t.path, text)
            .map_err(|e| Failure::scan(format!("cannot write {}: {e}", t.path.display())))?;
    }
    if a.format == ScanFormat::Sarif {
        if let Some(sink) = sink {
            sink.0
                .borrow_mut()
                .push(Report::build(exec, summary).map_err(Failure::scan)?);
            return Ok(Some(String::new()));
        }
        let mut sarif = render(exec, summary, ReportFormat::Sarif, local)?;
        sarif.push('\n');
        return Ok(Some(sarif));
    }
    Ok(None)
}

/// The output of one target whose verdict aborted: its HDF is the `keyhole-precheck` profile
/// alone (the scan's results, if any were gathered, are not reported), the summary lists the
/// failed checks with their evidence, reports say ABORTED, and the exit code is 5.
pub(crate) fn aborted_output(
    a: &ScanArgs,
    verdict: &Verdict,
    summary: &RunSummary,
    report: Option<&ReportTarget>,
    out_path: Option<&Path>,
    now: Timestamp,
    sink: Option<&SarifSink>,
) -> Result<Output, Failure> {
    let exec = verdict.to_hdf(now);
    let mut summary = summary.clone();
    if summary.aborted.is_none() {
        summary.aborted = keyhole_cli::prescan::abort_reason(std::slice::from_ref(verdict));
    }
    let summary = &summary;
    let json = exec.to_json_pretty().map_err(Failure::scan)?;
    if let Some(out) = out_path {
        std::fs::write(out, &json)
            .map_err(|e| Failure::scan(format!("cannot write {}: {e}", out.display())))?;
    }
    let sarif = reports(a, &exec, summary, report, false, sink)?;
    let stdout = match a.format {
        ScanFormat::Json if out_path.is_none() => json + "\n",
        ScanFormat::Json => String::new(),
        ScanFormat::Summary => verdict_text(verdict),
        ScanFormat::Sarif => sarif.unwrap_or_default(),
    };
    Ok(Output {
        stdout,
        warnings: Vec::new(),
        exit: keyhole_precheck::EXIT_PRECHECK_ABORT,
    })
}

/// The run's summary for the reports of a scan that ran: the run as `run` says, the objects
/// and token of its sessions read back from the audit log (a problem reading it becomes a
/// warning and an empty list: the report then shows no object rather than a made-up one).
pub(crate) fn cluster_summary(
    a: &ScanArgs,
    j: &Judging,
    run: &keyhole_core::Run,
    outcome: &keyhole_cli::cluster_scan::ScanOutcome,
    log: &Path,
    started: Timestamp,
    warnings: &mut Vec<String>,
) -> RunSummary {
    let (objects, token) = run_record(log, &outcome.run_ids).unwrap_or_else(|e| {
        warnings.push(format!("the report lists no objects: {e}"));
        (Vec::new(), None)
    });
    RunSummary {
        run_id: outcome.run_ids.last().unwrap_or(run.id()).clone(),
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
        targets: Vec::new(),
        mode: outcome.mode.0,
        started_at: started,
        finished_at: Timestamp::now(),
        threshold: threshold_spec(a, j),
        aborted: None,
        objects,
        token,
        // Taken from the HDF's keyhole-precheck profile, which holds the merged verdict.
        precheck: None,
        // The post-scan audit (keyhole-audit) plugs in here once it exists: its
        // `keyhole-postscan` profile, in the HDF or in this field.
        postscan: None,
    }
}

/// `summary` for one scanned container.
pub(crate) fn for_target(
    summary: &RunSummary,
    t: &keyhole_workflows::ContainerTarget,
) -> RunSummary {
    let mut s = summary.clone();
    s.targets = target(&t.namespace, &t.pod, &t.container)
        .into_iter()
        .collect();
    s
}

/// The whole output of a scan the pre-scan verification aborted before anything was created:
/// per pod its verdict (HDF with the `keyhole-precheck` profile, `--report`, SARIF), every
/// failed check with its evidence on stderr, exit 5.
pub(crate) fn prescan_aborted(
    a: &ScanArgs,
    j: &Judging,
    verdicts: &[Verdict],
    run: &keyhole_core::Run,
    log: &Path,
    started: Timestamp,
    report: Option<&ReportTarget>,
) -> Result<Output, Failure> {
    let reason = keyhole_cli::prescan::abort_reason(verdicts);
    let several = verdicts.len() > 1;
    let mut stdout = String::new();
    let mut warnings: Vec<String> = verdicts.iter().flat_map(verdict_warnings).collect();
    // Several pods' SARIF is one log, printed after the loop.
    let sink = (several && a.format == ScanFormat::Sarif).then(SarifSink::default);
    // Several pods' HDF on stdout is one JSON array.
    let mut docs: Vec<String> = Vec::new();
    for v in verdicts {
        let summary = RunSummary {
            run_id: run.id().clone(),
            tool_version: env!("CARGO_PKG_VERSION").to_owned(),
            targets: target(&v.target.namespace, &v.target.pod, &v.target.container)
                .into_iter()
                .collect(),
            mode: run.mode(),
            started_at: started,
            finished_at: Timestamp::now(),
            threshold: threshold_spec(a, j),
            aborted: reason.clone(),
            objects: Vec::new(),
            token: None,
            precheck: None,
            postscan: None,
        };
        let out = a
            .out
            .as_deref()
            .map(|o| crate::scan_cluster::out_for(o, &v.target.pod, several));
        let to = report.map(|t| ReportTarget {
            path: crate::scan_cluster::out_for(&t.path, &v.target.pod, several),
            format: t.format,
        });
        let o = aborted_output(
            a,
            v,
            &summary,
            to.as_ref(),
            out.as_deref(),
            Timestamp::now(),
            sink.as_ref(),
        )?;
        if several && a.format == ScanFormat::Json {
            docs.push(o.stdout);
            continue;
        }
        if several && !o.stdout.is_empty() && a.format == ScanFormat::Summary {
            let _ = writeln!(stdout, "== {}/{}", v.target.namespace, v.target.pod);
        }
        stdout.push_str(&o.stdout);
    }
    if let Some(array) = json_array(docs) {
        stdout = array;
    }
    if let Some(sink) = &sink {
        stdout = sink.render(&[])?;
    }
    warnings.push(format!(
        "run {}: the pre-scan verification aborted the scan (exit {}): nothing was created and nothing was written to the cluster; audit log {}",
        run.id(),
        keyhole_precheck::EXIT_PRECHECK_ABORT,
        log.display()
    ));
    Ok(Output {
        stdout,
        warnings,
        exit: keyhole_precheck::EXIT_PRECHECK_ABORT,
    })
}
