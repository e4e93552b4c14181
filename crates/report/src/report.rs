//! The report's content, computed once from an execution and a run summary; every format
//! (Markdown, JSON, HTML, SARIF) renders this same value, so they cannot disagree.

use keyhole_hdf::{
    ControlStatus, Counts, Execution, Profile, ResultStatus, Severity, StatusCounts, Threshold,
    evaluate,
};
use serde::Serialize;
use serde_json::Value;

use crate::ReportError;
use crate::summary::{POSTSCAN_PROFILE, PRECHECK_PROFILE, RunSummary};

/// Version of the JSON report's shape; raised on any incompatible change.
pub const REPORT_FORMAT_VERSION: u32 = 1;

/// The outcome shown at the top of every report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The threshold was met.
    Passed,
    /// The threshold was not met.
    Failed,
    /// No threshold was given, so nothing was judged (which is not a pass).
    NotJudged,
    /// The pre-scan verification aborted the scan.
    Aborted,
}

impl Outcome {
    /// The JSON name: `passed`, `failed`, `not_judged`, `aborted`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Passed => "passed",
            Self::Failed => "failed",
            Self::NotJudged => "not_judged",
            Self::Aborted => "aborted",
        }
    }

    /// The word shown to the reader.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Passed => "PASSED",
            Self::Failed => "FAILED",
            Self::NotJudged => "NOT JUDGED",
            Self::Aborted => "ABORTED",
        }
    }
}

/// A failed threshold check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ViolationView {
    /// The threshold entry, e.g. `compliance.min`.
    pub check: String,
    /// The SAF CLI's message for it.
    pub message: String,
}

/// The verdict and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerdictView {
    /// The outcome.
    pub outcome: Outcome,
    /// Where the threshold came from, when one was given.
    pub threshold: Option<String>,
    /// The failed threshold checks, in the SAF CLI's order.
    pub violations: Vec<ViolationView>,
    /// Why the scan was aborted, when it was.
    pub aborted: Option<String>,
}

/// Control counts of one severity (or of all), as `keyhole_hdf` counts them for thresholds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SeverityRow {
    /// `critical`, `high`, `medium`, `low`, `none`, or `total`.
    pub severity: String,
    /// Passed controls.
    pub passed: u32,
    /// Failed controls.
    pub failed: u32,
    /// Not Reviewed (skipped) controls.
    pub skipped: u32,
    /// Profile Error controls.
    pub error: u32,
    /// Not Applicable controls.
    pub no_impact: u32,
    /// Percent passed of the judged controls (Not Applicable left out); `None` when there are
    /// none. The total row is `keyhole_hdf`'s compliance, the one thresholds judge.
    pub compliance: Option<u32>,
}

/// One test result given as evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evidence {
    /// `failed`, `error`, `skipped` or `passed` (empty when the result had none).
    pub status: String,
    /// What was tested.
    pub code_desc: String,
    /// The explanation (or exception), when there was one.
    pub message: Option<String>,
}

/// A control with its status and, unless it passed, the evidence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ControlView {
    /// Control id.
    pub id: String,
    /// Title, when the control has one.
    pub title: Option<String>,
    /// Description (`desc`), when the control has one.
    pub description: Option<String>,
    /// The remedy (the `fix` description), when the control has one.
    pub fix: Option<String>,
    /// Heimdall status: `Passed`, `Failed`, `Not Applicable`, `Not Reviewed`, `Profile Error`.
    pub status: String,
    /// Severity name (`none`, `low`, `medium`, `high`, `critical`).
    pub severity: String,
    /// Impact, 0 to 1.
    pub impact: f64,
    /// NIST SP 800-53 tags.
    pub nist: Vec<String>,
    /// The results that did not pass, in file order (empty for a passed control).
    pub evidence: Vec<Evidence>,
}

impl ControlView {
    /// Whether the control failed.
    #[must_use]
    pub fn is_failed(&self) -> bool {
        self.status == ControlStatus::Failed.as_str()
    }

    /// Whether the control is a Profile Error.
    #[must_use]
    pub fn is_error(&self) -> bool {
        self.status == ControlStatus::ProfileError.as_str()
    }

    /// The title, or the id when there is none.
    #[must_use]
    pub fn name(&self) -> &str {
        self.title.as_deref().unwrap_or(&self.id)
    }
}

/// The findings of the pre-scan verification or the post-scan audit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FindingsView {
    /// The profile's name.
    pub profile: String,
    /// Number of checks that passed.
    pub passed: u32,
    /// Number of checks that failed or errored.
    pub problems: u32,
    /// Every check, in file order.
    pub checks: Vec<ControlView>,
}

/// An object the run created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectView {
    /// Kind, e.g. `Role`.
    pub kind: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Uid, when known.
    pub uid: Option<String>,
    /// Creation time, RFC 3339.
    pub created_at: String,
    /// Confirmed deletion time, RFC 3339; `None` when deletion was not confirmed.
    pub deleted_at: Option<String>,
}

/// The token's lifetime.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenView {
    /// Issue time, RFC 3339.
    pub issued_at: String,
    /// Expiry time, RFC 3339.
    pub expires_at: String,
    /// Revocation time, RFC 3339; `None` when it was not revoked.
    pub revoked_at: Option<String>,
}

/// A whole report: what every format renders. Its JSON form is the JSON report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// [`REPORT_FORMAT_VERSION`].
    pub format_version: u32,
    /// The run id, tying the report to the audit log.
    pub run_id: String,
    /// Keyhole's version.
    pub tool_version: String,
    /// Scan mode.
    pub mode: String,
    /// Scanned containers, `namespace/pod[/container]`.
    pub targets: Vec<String>,
    /// HDF `platform.target_id`, when set.
    pub platform_target: Option<String>,
    /// Start of the run, RFC 3339.
    pub started_at: String,
    /// End of the run, RFC 3339.
    pub finished_at: String,
    /// Name of the judged (first) profile.
    pub profile: String,
    /// Its version, when set.
    pub profile_version: Option<String>,
    /// The verdict.
    pub verdict: VerdictView,
    /// Overall compliance in percent, as `keyhole_hdf::evaluate` computes it.
    pub compliance: u32,
    /// Counts per severity, critical first, then the total.
    pub severities: Vec<SeverityRow>,
    /// The controls counted for the verdict (of the first profile), in file order.
    pub controls: Vec<ControlView>,
    /// The pre-scan verification's findings, when there were any.
    pub precheck: Option<FindingsView>,
    /// The post-scan audit's findings, when there were any.
    pub postscan: Option<FindingsView>,
    /// The objects created, in the order given.
    pub objects: Vec<ObjectView>,
    /// The token's lifetime, when a token was issued.
    pub token: Option<TokenView>,
}

impl Report {
    /// Computes the report of `exec` for `summary`: judges the execution's first profile with
    /// `summary.threshold` through [`keyhole_hdf::evaluate`] (counts with an empty threshold
    /// when there is none) and gathers the evidence of every control that did not pass.
    ///
    /// # Errors
    /// [`ReportError::Judge`] when `keyhole_hdf` cannot judge the execution (no profile, a
    /// malformed tag).
    pub fn build(exec: &Execution, summary: &RunSummary) -> Result<Self, ReportError> {
        let empty = Threshold::default();
        let threshold = summary.threshold.as_ref().map_or(&empty, |t| &t.threshold);
        let verdict = evaluate(exec, threshold).map_err(|source| ReportError::Judge { source })?;

        let outcome = if summary.aborted.is_some() {
            Outcome::Aborted
        } else if summary.threshold.is_none() {
            Outcome::NotJudged
        } else if verdict.passed {
            Outcome::Passed
        } else {
            Outcome::Failed
        };
        let violations = if summary.threshold.is_some() {
            verdict
                .violations
                .iter()
                .map(|v| ViolationView {
                    check: v.check.clone(),
                    message: v.message.clone(),
                })
                .collect()
        } else {
            Vec::new()
        };

        // `evaluate` succeeded, so there is a first profile.
        let first = &exec.profiles[0];
        let controls = verdict
            .controls
            .iter()
            .map(|counted| {
                let control = first.controls.iter().find(|c| c.id == counted.id);
                // Overlays: the counted status may come from a base control in another
                // profile; take the evidence from the first control of that id that has some.
                let evidence = evidence_for(exec, &counted.id, counted.status);
                let severity = counted
                    .severity
                    .or_else(|| control.map(keyhole_hdf::Control::severity))
                    .unwrap_or(Severity::None);
                match control {
                    Some(c) => {
                        let mut view = control_view(c);
                        view.status = counted.status.as_str().to_owned();
                        view.severity = severity.as_str().to_owned();
                        view.evidence = evidence;
                        view
                    }
                    None => ControlView {
                        id: counted.id.clone(),
                        title: None,
                        description: None,
                        fix: None,
                        status: counted.status.as_str().to_owned(),
                        severity: severity.as_str().to_owned(),
                        impact: 0.0,
                        nist: Vec::new(),
                        evidence,
                    },
                }
            })
            .collect();

        let findings = |given: &Option<Profile>, name: &str| {
            given
                .as_ref()
                .or_else(|| exec.profiles.iter().find(|p| p.name == name))
                .map(findings_view)
        };

        Ok(Self {
            format_version: REPORT_FORMAT_VERSION,
            run_id: summary.run_id.to_string(),
            tool_version: summary.tool_version.clone(),
            mode: summary.mode.as_str().to_owned(),
            targets: summary.targets.iter().map(ToString::to_string).collect(),
            platform_target: exec.platform.target_id.clone(),
            started_at: summary.started_at.to_string(),
            finished_at: summary.finished_at.to_string(),
            profile: first.name.clone(),
            profile_version: first.version.clone(),
            verdict: VerdictView {
                outcome,
                threshold: summary.threshold.as_ref().map(|t| t.source.clone()),
                violations,
                aborted: summary.aborted.clone(),
            },
            compliance: verdict.compliance,
            severities: severity_rows(&verdict.counts, verdict.compliance),
            controls,
            precheck: findings(&summary.precheck, PRECHECK_PROFILE),
            postscan: findings(&summary.postscan, POSTSCAN_PROFILE),
            objects: summary
                .objects
                .iter()
                .map(|o| ObjectView {
                    kind: o.object.kind.as_str().to_owned(),
                    namespace: o.object.namespace.clone(),
                    name: o.object.name.clone(),
                    uid: o.object.uid.clone(),
                    created_at: o.created_at.to_string(),
                    deleted_at: o.deleted_at.map(|t| t.to_string()),
                })
                .collect(),
            token: summary.token.map(|t| TokenView {
                issued_at: t.issued_at.to_string(),
                expires_at: t.expires_at.to_string(),
                revoked_at: t.revoked_at.map(|r| r.to_string()),
            }),
        })
    }

    /// The failed controls, in file order.
    pub fn failed_controls(&self) -> impl Iterator<Item = &ControlView> {
        self.controls.iter().filter(|c| c.is_failed())
    }

    /// The Profile Error controls, in file order.
    pub fn error_controls(&self) -> impl Iterator<Item = &ControlView> {
        self.controls.iter().filter(|c| c.is_error())
    }

    /// The total row of [`Report::severities`].
    #[must_use]
    pub fn totals(&self) -> &SeverityRow {
        self.severities
            .last()
            .expect("severity_rows always ends with the total")
    }

    /// Objects whose deletion was not confirmed.
    pub fn leftover_objects(&self) -> impl Iterator<Item = &ObjectView> {
        self.objects.iter().filter(|o| o.deleted_at.is_none())
    }

    /// The JSON report, indented.
    ///
    /// # Errors
    /// [`ReportError::Json`] if serialisation fails (it does not for these types).
    pub fn to_json(&self) -> Result<String, ReportError> {
        serde_json::to_string_pretty(self).map_err(|source| ReportError::Json { source })
    }
}

/// Percent passed of the judged controls of one severity: `keyhole_hdf`'s
/// [`Counts::compliance`] (SAF's formula, the one thresholds judge), and `None` rather than
/// SAF's 0 when nothing of that severity was judged, so the table shows "—".
fn severity_compliance(c: &Counts) -> Option<u32> {
    (c.judged() > 0).then(|| c.compliance())
}

fn severity_rows(counts: &StatusCounts, compliance: u32) -> Vec<SeverityRow> {
    let row = |name: &str, c: &Counts, compliance: Option<u32>| SeverityRow {
        severity: name.to_owned(),
        passed: c.passed,
        failed: c.failed,
        skipped: c.skipped,
        error: c.error,
        no_impact: c.no_impact,
        compliance,
    };
    let mut rows: Vec<SeverityRow> = Severity::ALL
        .iter()
        .rev()
        .map(|s| {
            let c = counts.severity(*s);
            row(s.as_str(), c, severity_compliance(c))
        })
        .collect();
    // The total uses keyhole_hdf's own number (0 when nothing was judged, as SAF).
    rows.push(row("total", &counts.total, Some(compliance)));
    rows
}

fn control_view(c: &keyhole_hdf::Control) -> ControlView {
    let status = c.status();
    let fix = c
        .descriptions
        .iter()
        .flatten()
        .find(|d| d.label == "fix")
        .map(|d| d.data.clone());
    let nist = match c.tags.get("nist") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    };
    ControlView {
        id: c.id.clone(),
        title: c.title.clone(),
        description: c.desc.clone(),
        fix,
        status: status.as_str().to_owned(),
        severity: c.severity().as_str().to_owned(),
        impact: c.impact,
        nist,
        evidence: results_evidence(c, status),
    }
}

/// The results that explain `status`: failed ones for a failed control, errored ones for a
/// Profile Error, skipped ones for Not Reviewed; nothing for a pass or Not Applicable.
fn results_evidence(c: &keyhole_hdf::Control, status: ControlStatus) -> Vec<Evidence> {
    let wanted: &[ResultStatus] = match status {
        ControlStatus::Failed => &[ResultStatus::Failed],
        ControlStatus::ProfileError => &[ResultStatus::Error],
        ControlStatus::NotReviewed => &[ResultStatus::Skipped],
        ControlStatus::Passed | ControlStatus::NotApplicable => return Vec::new(),
    };
    c.results
        .iter()
        .filter(|r| {
            let s = if r.backtrace.is_some() {
                Some(ResultStatus::Error)
            } else {
                r.status
            };
            // A Profile Error may come from results without any status.
            s.is_some_and(|s| wanted.contains(&s))
                || (status == ControlStatus::ProfileError && s.is_none())
        })
        .map(|r| Evidence {
            status: r.status.map_or("", result_status_name).to_owned(),
            code_desc: r.code_desc.clone(),
            message: r
                .message
                .clone()
                .or_else(|| r.skip_message.clone())
                .or_else(|| r.exception.clone()),
        })
        .collect()
}

fn result_status_name(s: ResultStatus) -> &'static str {
    match s {
        ResultStatus::Passed => "passed",
        ResultStatus::Failed => "failed",
        ResultStatus::Skipped => "skipped",
        ResultStatus::Error => "error",
    }
}

fn evidence_for(exec: &Execution, id: &str, status: ControlStatus) -> Vec<Evidence> {
    exec.profiles
        .iter()
        .flat_map(|p| &p.controls)
        .filter(|c| c.id == id)
        .map(|c| results_evidence(c, status))
        .find(|e| !e.is_empty())
        .unwrap_or_default()
}

fn findings_view(profile: &Profile) -> FindingsView {
    let checks: Vec<ControlView> = profile.controls.iter().map(control_view).collect();
    let passed = checks
        .iter()
        .filter(|c| c.status == ControlStatus::Passed.as_str())
        .count();
    let problems = checks
        .iter()
        .filter(|c| c.is_failed() || c.is_error())
        .count();
    FindingsView {
        profile: profile.name.clone(),
        // Profiles hold far fewer than 2^32 controls.
        passed: u32::try_from(passed).unwrap_or(u32::MAX),
        problems: u32::try_from(problems).unwrap_or(u32::MAX),
        checks,
    }
}

#[cfg(test)]
mod tests {
    use keyhole_hdf::{Control, ControlResult, Execution, Platform, Profile, ResultStatus};

    use super::*;

    fn exec_of(statuses: &[ResultStatus]) -> Execution {
        let mut exec = Execution::new(Platform::default(), "test");
        let mut p = Profile::new("p", "0");
        for (i, s) in statuses.iter().enumerate() {
            let mut c = Control::new(format!("C{i}"), 0.5);
            c.results
                .push(ControlResult::new(*s, "t", "2026-01-01T00:00:00Z"));
            p.controls.push(c);
        }
        exec.profiles.push(p);
        exec
    }

    /// The per-severity formula gives exactly `keyhole_hdf`'s compliance on the totals, for
    /// every mix of up to 12 passed/failed/skipped/error controls (ratios that round at .5
    /// included, e.g. 1 of 8).
    #[test]
    fn severity_compliance_agrees_with_keyhole_hdf() {
        use ResultStatus::{Error, Failed, Passed, Skipped};
        for p in 0..=12 {
            for f in 0..=12 - p {
                for s in 0..=12 - p - f {
                    for e in 0..=12 - p - f - s {
                        let statuses: Vec<ResultStatus> =
                            [(Passed, p), (Failed, f), (Skipped, s), (Error, e)]
                                .into_iter()
                                .flat_map(|(status, n)| std::iter::repeat_n(status, n))
                                .collect();
                        if statuses.is_empty() {
                            continue;
                        }
                        let verdict = evaluate(&exec_of(&statuses), &Threshold::default()).unwrap();
                        assert_eq!(
                            severity_compliance(&verdict.counts.total),
                            Some(verdict.compliance),
                            "{statuses:?}"
                        );
                        // All controls are medium, so the medium row equals the total.
                        assert_eq!(verdict.counts.medium, verdict.counts.total);
                    }
                }
            }
        }
    }
}
