//! `keyhole scan --root DIR | --pid PID`: the built-in (or a given) profile run by the native
//! engine against a local root filesystem or a running process, with HDF out and an optional
//! SAF-compatible threshold gate. `keyhole scan TARGET…` (pods in a cluster) is in
//! `scan_cluster.rs` and shares the judging and reporting here.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use jiff::Timestamp;
use keyhole_engine::{FactSource, Inputs, LocalRoot, OwnRoot, Profile, Waivers};
use keyhole_hdf::{ControlStatus, Execution, ResultStatus, Severity, Threshold};

use crate::args::{ScanArgs, ScanFormat};
use crate::{Failure, Output};

/// Exit code when the threshold is not met.
pub(crate) const EXIT_THRESHOLD: i32 = 1;

/// The user's side of a scan: what the facts are judged with.
pub(crate) struct Judging {
    pub(crate) profile: Profile,
    pub(crate) inputs: Inputs,
    pub(crate) waivers: Waivers,
    pub(crate) threshold: Option<Threshold>,
}

pub(crate) fn judging(a: &ScanArgs) -> Result<Judging, Failure> {
    let profile = Profile::resolve(&a.profile).map_err(Failure::bad_input)?;
    let inputs = Inputs::with_overrides(&profile, a.inputs.iter().map(String::as_str))
        .map_err(Failure::bad_input)?;
    let waivers = match &a.waivers {
        Some(p) => Waivers::from_path(p).map_err(Failure::bad_input)?,
        None => Waivers::none(),
    };
    let threshold = match &a.threshold {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| {
                Failure::bad_input(format!("cannot read threshold {}: {e}", p.display()))
            })?;
            Some(
                Threshold::from_yaml_str(&text)
                    .map_err(|e| Failure::bad_input(format!("{}: {e}", p.display())))?,
            )
        }
        None => None,
    };
    Ok(Judging {
        profile,
        inputs,
        waivers,
        threshold,
    })
}

pub(crate) fn scan(a: &ScanArgs) -> Result<Output, Failure> {
    if a.scanner == crate::args::Scanner::Cinc {
        return crate::cinc::scan(a);
    }
    if !a.targets.is_empty() || a.selector.is_some() {
        return crate::scan_cluster::scan(a);
    }
    let j = judging(a)?;
    let source = match (&a.root, a.pid) {
        // Scanning `/` on purpose (the host itself) is allowed for a directory; a process that
        // shares our root is refused by the engine as a likely mistake.
        (Some(dir), None) => LocalRoot::directory_with(dir, OwnRoot::Allow),
        (None, Some(pid)) => LocalRoot::process(pid),
        _ => {
            return Err(Failure::bad_input(
                "give exactly one of --root DIR or --pid PID",
            ));
        }
    }
    .map_err(Failure::scan)?;
    let now = Timestamp::now();
    let facts = keyhole_engine::gather(&j.profile, &j.inputs, &source as &dyn FactSource);
    let exec = keyhole_engine::evaluate(&j.profile, &j.inputs, &facts, &j.waivers, now);
    let extras = Extras {
        report: crate::gates::report_target(a)?,
        ..Extras::default()
    };
    report_with(a, &j, &exec, now, a.out.as_deref(), &extras)
}

/// What a cluster scan adds to one target's output (nothing, for a local scan).
#[derive(Default)]
pub(crate) struct Extras<'a> {
    /// The target's pre-scan verdict: its `keyhole-precheck` profile joins the HDF.
    pub(crate) verdict: Option<&'a keyhole_precheck::Verdict>,
    /// The run, for `--report` and `--format sarif` (`None`: a local scan).
    pub(crate) summary: Option<keyhole_report::RunSummary>,
    /// `--report`.
    pub(crate) report: Option<crate::gates::ReportTarget>,
    /// The run's post-scan audit (`keyhole-postscan`): joins the HDF after the pre-scan
    /// profile, and so the report.
    pub(crate) postscan: Option<keyhole_hdf::Profile>,
    /// Where `--format sarif` gathers this target's report when several targets make one log.
    pub(crate) sarif: Option<&'a crate::gates::SarifSink>,
}

/// The HDF written to `--out`, the summary or JSON for stdout, the waiver warnings and the
/// threshold's exit code, for one evaluated target.
#[allow(
    dead_code,
    reason = "the plain entry point for callers that add no pre-scan verdict or run report"
)]
pub(crate) fn report(
    a: &ScanArgs,
    j: &Judging,
    exec: &Execution,
    now: Timestamp,
    out_path: Option<&std::path::Path>,
) -> Result<Output, Failure> {
    report_with(a, j, exec, now, out_path, &Extras::default())
}

/// [`report`] with a cluster scan's additions: the pre-scan profile in the HDF and its verdict
/// in the summary, `--report` and `--format sarif`.
pub(crate) fn report_with(
    a: &ScanArgs,
    j: &Judging,
    exec: &Execution,
    now: Timestamp,
    out_path: Option<&std::path::Path>,
    extras: &Extras<'_>,
) -> Result<Output, Failure> {
    let (profile, waivers, threshold) = (&j.profile, &j.waivers, &j.threshold);
    let mut full = crate::gates::with_precheck(exec, extras.verdict, now);
    full.profiles.extend(extras.postscan.iter().cloned());
    let json = full.to_json_pretty().map_err(Failure::scan)?;
    if let Some(out) = out_path {
        std::fs::write(out, &json)
            .map_err(|e| Failure::scan(format!("cannot write {}: {e}", out.display())))?;
    }
    let mut warnings: Vec<String> = waivers
        .expired(now)
        .iter()
        .map(|w| {
            format!(
                "waiver for {} expired; the control was evaluated",
                w.control
            )
        })
        .collect();
    warnings.extend(waivers.unknown(profile).iter().map(|w| {
        format!(
            "waiver names control {} which the profile does not have",
            w.control
        )
    }));
    let verdict = match &threshold {
        Some(t) => Some(keyhole_hdf::evaluate(exec, t).map_err(Failure::scan)?),
        None => None,
    };
    let sarif = match (&extras.summary, a.format, &extras.report) {
        (Some(s), _, _) => {
            crate::gates::reports(a, &full, s, extras.report.as_ref(), false, extras.sarif)?
        }
        (None, ScanFormat::Sarif, _) | (None, _, Some(_)) => {
            let s = crate::gates::local_summary(a, j, now)?;
            crate::gates::reports(a, &full, &s, extras.report.as_ref(), true, extras.sarif)?
        }
        (None, _, None) => None,
    };
    let stdout = match a.format {
        ScanFormat::Json if out_path.is_none() => json + "\n",
        ScanFormat::Json => String::new(),
        ScanFormat::Summary => {
            let mut s = summary(exec, verdict.as_ref());
            if let Some(v) = extras.verdict {
                s.push('\n');
                s.push_str(&crate::gates::verdict_text(v));
            }
            s
        }
        ScanFormat::Sarif => sarif.unwrap_or_default(),
    };
    let exit = match &verdict {
        Some(v) if !v.passed => EXIT_THRESHOLD,
        _ => 0,
    };
    Ok(Output {
        stdout,
        warnings,
        exit,
    })
}

pub(crate) fn summary(exec: &Execution, verdict: Option<&keyhole_hdf::Verdict>) -> String {
    let mut out = String::new();
    let Some(profile) = exec.profiles.first() else {
        return "no profile was evaluated\n".into();
    };
    let mut by_status: BTreeMap<&'static str, BTreeMap<&'static str, usize>> = BTreeMap::new();
    for c in &profile.controls {
        *by_status
            .entry(c.status().as_str())
            .or_default()
            .entry(c.severity().as_str())
            .or_default() += 1;
    }
    let _ = writeln!(
        out,
        "{} {} on {} {}: {} controls",
        profile.name,
        profile.version.as_deref().unwrap_or(""),
        exec.platform.name,
        exec.platform.release,
        profile.controls.len()
    );
    for (status, sev) in &by_status {
        let total: usize = sev.values().sum();
        let detail: Vec<String> = Severity::ALL
            .iter()
            .filter_map(|s| sev.get(s.as_str()).map(|n| format!("{} {n}", s.as_str())))
            .collect();
        let _ = writeln!(out, "  {status:<16} {total:>4}  ({})", detail.join(", "));
    }
    let failed: Vec<_> = profile
        .controls
        .iter()
        .filter(|c| {
            matches!(
                c.status(),
                ControlStatus::Failed | ControlStatus::ProfileError
            )
        })
        .collect();
    if !failed.is_empty() {
        let _ = writeln!(out, "\nfailed or errored controls:");
        for c in failed {
            let _ = writeln!(
                out,
                "  [{}] {} {}",
                c.severity().as_str(),
                c.id,
                c.title.as_deref().unwrap_or("")
            );
            for r in c
                .results
                .iter()
                .filter(|r| !matches!(r.status, Some(ResultStatus::Passed)))
            {
                let msg = r
                    .message
                    .as_deref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default();
                let _ = writeln!(out, "      - {}{msg}", r.code_desc);
            }
        }
    }
    if let Some(v) = verdict {
        let _ = writeln!(out, "\ncompliance {}%", v.compliance);
        if v.passed {
            let _ = writeln!(out, "threshold: all validation tests passed");
        } else {
            for violation in &v.violations {
                let _ = writeln!(out, "threshold: {}", violation.message);
            }
        }
    }
    out
}
