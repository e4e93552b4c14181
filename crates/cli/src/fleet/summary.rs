//! The combined summary of a fleet scan (one row per target: verdict, counts, exit code; one
//! per session: its pods and its teardown) and the fleet report rendered from it as JSON,
//! Markdown or plain text; and which exit code is the fleet's.
//!
//! # The fleet's exit code: the worst of the targets'
//!
//! From worst to best ([`EXIT_ORDER`]):
//!
//! | code | meaning | why here |
//! |---|---|---|
//! | 4 | cleanup incomplete | access may still exist: the one thing the caller must act on now (`keyhole reap`); a session already lets it override every other code |
//! | 70 | internal error | a bug in keyhole: nothing else it says can be trusted |
//! | other | an unknown code | never produced today; treated as nearly as bad as a bug |
//! | 130 > 143 > 129 | stopped by SIGINT, SIGTERM, SIGHUP | the fleet is incomplete because someone stopped it |
//! | 124 | access expired | a whole session ran out of time (raise `--ttl`) |
//! | 3 | scan error | that target has no result |
//! | 6 | post-scan finding | a credential artifact, or a side effect on the target: ranked below 3, 124 and 70 as a single scan ranks it |
//! | 5 | pre-scan abort | the policy refused the target on purpose and said why; nothing was created |
//! | 2 | bad input | |
//! | 1 | threshold not met | a result: the target is not compliant |
//! | 0 | pass | |
//!
//! Failures of the machinery rank above findings about targets: a fleet with a leftover access
//! or a target that could not be scanned must not read like a fleet that merely has a
//! non-compliant pod, and every target's own code stays in the summary.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use keyhole_cleanup::CleanupAction;
use keyhole_hdf::{Threshold, evaluate};
use serde::Serialize;

use super::{FleetOutcome, Scope};

/// Version of the fleet report's JSON shape (bumped on an incompatible change).
pub const FLEET_REPORT_VERSION: u32 = 1;

/// Exit codes from worst to best; see the module documentation. A code not listed ranks just
/// below 70.
pub const EXIT_ORDER: [i32; 12] = [4, 70, 130, 143, 129, 124, 3, 6, 5, 2, 1, 0];

/// How bad `code` is (higher is worse).
fn rank(code: i32) -> usize {
    let n = EXIT_ORDER.len();
    match EXIT_ORDER.iter().position(|c| *c == code) {
        Some(i) => (n - i) * 2,
        // Between 70 (index 1) and the code after it.
        None => (n - 1) * 2 - 1,
    }
}

/// The worst of `codes` by [`EXIT_ORDER`] (0 for none).
pub fn worst(codes: impl IntoIterator<Item = i32>) -> i32 {
    codes.into_iter().max_by_key(|c| rank(*c)).unwrap_or(0)
}

/// A target's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Scanned and the threshold is met.
    Pass,
    /// Scanned and the threshold is not met.
    Fail,
    /// Scanned, no threshold given.
    Scanned,
    /// Not scanned: see the target's error.
    Error,
}

impl Verdict {
    /// The word shown in tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail => "fail",
            Self::Scanned => "scanned",
            Self::Error => "error",
        }
    }
}

/// Controls of one target by status (Heimdall's statuses, as the SAF CLI counts them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ControlCounts {
    /// Passed.
    pub passed: u32,
    /// Failed.
    pub failed: u32,
    /// Not Applicable (impact 0 or waived).
    pub not_applicable: u32,
    /// Not Reviewed (every test skipped).
    pub not_reviewed: u32,
    /// Profile Error.
    pub error: u32,
}

/// One target of the summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetRow {
    /// Namespace.
    pub namespace: String,
    /// Pod.
    pub pod: String,
    /// The container scanned (when it was resolved).
    pub container: Option<String>,
    /// The mode of the session that settled it.
    pub mode: String,
    /// That session's run id.
    pub run_id: Option<String>,
    /// Verdict.
    pub verdict: Verdict,
    /// Controls by status (with a result).
    pub counts: Option<ControlCounts>,
    /// Compliance in percent, as the SAF CLI computes it (with a result).
    pub compliance: Option<u32>,
    /// The threshold's violations.
    pub violations: Vec<String>,
    /// Fact requests the gathered facts did not answer (their controls report errors).
    pub unanswered: usize,
    /// The target's exit code.
    pub exit_code: i32,
    /// Why it has no result.
    pub error: Option<String>,
    /// The pre-scan decision (`proceed` or `abort`), when the verification ran.
    pub precheck: Option<String>,
    /// The pre-scan checks that failed, as `CHECK (ACTION): MESSAGE`.
    pub precheck_failed: Vec<String>,
    /// Where its HDF was written (filled in by the caller).
    pub hdf: Option<String>,
}

/// One session of the summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionRow {
    /// Namespace.
    pub namespace: String,
    /// Run id (the audit log's key).
    pub run_id: String,
    /// Mode.
    pub mode: String,
    /// The pods its Role pinned.
    pub pods: Vec<String>,
    /// Its exit code.
    pub exit_code: i32,
    /// Every object it created was verified gone.
    pub cleanup_verified: bool,
    /// Objects deleted and verified gone.
    pub objects_deleted: usize,
    /// Objects not verified gone (`Kind namespace/name`).
    pub remaining: Vec<String>,
    /// Its error, if any.
    pub error: Option<String>,
    /// What Kubernetes cannot remove (terminated ephemeral containers).
    pub traces: Vec<String>,
}

/// Totals of the summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Targets.
    pub targets: usize,
    /// Targets with a result.
    pub scanned: usize,
    /// Targets without one.
    pub errors: usize,
    /// Targets whose result does not meet the threshold.
    pub below_threshold: usize,
    /// Sessions.
    pub sessions: usize,
    /// Sessions whose every object was verified gone.
    pub sessions_clean: usize,
}

/// The combined summary and fleet report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FleetSummary {
    /// [`FLEET_REPORT_VERSION`].
    pub fleet_report_version: u32,
    /// The label selector.
    pub selector: String,
    /// Where it was resolved (`namespace NS` or `all namespaces`).
    pub scope: String,
    /// The profile (name and version).
    pub profile: String,
    /// The concurrency bound.
    pub concurrency: usize,
    /// The fleet's exit code: the worst of the targets' ([`worst`]).
    pub exit_code: i32,
    /// Exit codes from worst to best.
    pub exit_order: Vec<i32>,
    /// Totals.
    pub totals: Totals,
    /// Every session.
    pub sessions: Vec<SessionRow>,
    /// Every target, by namespace then pod.
    pub targets: Vec<TargetRow>,
}

/// What the summary says about the run besides the outcome.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The label selector, as given.
    pub selector: &'a str,
    /// Where it was resolved.
    pub scope: &'a Scope,
    /// The concurrency bound.
    pub concurrency: usize,
    /// The profile's name and version.
    pub profile: &'a str,
    /// The threshold each result is judged with.
    pub threshold: Option<&'a Threshold>,
}

impl FleetSummary {
    /// Summarises `outcome`: each result judged with the threshold (exit 1 when not met), the
    /// counts and compliance computed as the SAF CLI does, the fleet's exit code the worst.
    pub fn build(outcome: &FleetOutcome, cx: Context<'_>) -> Self {
        let no_threshold = Threshold::default();
        let targets: Vec<TargetRow> = outcome
            .targets
            .iter()
            .map(|t| {
                let mut row = TargetRow {
                    namespace: t.namespace.to_string(),
                    pod: t.pod.to_string(),
                    container: None,
                    mode: t.mode.to_string(),
                    run_id: t.run_id.as_ref().map(ToString::to_string),
                    verdict: Verdict::Error,
                    counts: None,
                    compliance: None,
                    violations: Vec::new(),
                    unanswered: 0,
                    exit_code: t.exit_code,
                    error: t.error.clone(),
                    precheck: t
                        .precheck
                        .as_ref()
                        .map(|v| if v.aborts() { "abort" } else { "proceed" }.to_string()),
                    precheck_failed: t
                        .precheck
                        .iter()
                        .flat_map(|v| v.failures())
                        .map(|c| {
                            let action = match c.action {
                                keyhole_precheck::Action::Abort => "abort",
                                keyhole_precheck::Action::Warn => "warn",
                                keyhole_precheck::Action::Ignore => "ignore",
                            };
                            format!("{} ({action}): {}", c.check, c.message)
                        })
                        .collect(),
                    hdf: None,
                };
                let Some(r) = &t.result else {
                    return row;
                };
                row.container = Some(r.target.container.clone());
                row.unanswered = r.evaluated.unanswered;
                match evaluate(
                    &r.evaluated.execution,
                    cx.threshold.unwrap_or(&no_threshold),
                ) {
                    Ok(v) => {
                        let c = v.counts.total;
                        row.counts = Some(ControlCounts {
                            passed: c.passed,
                            failed: c.failed,
                            not_applicable: c.no_impact,
                            not_reviewed: c.skipped,
                            error: c.error,
                        });
                        row.compliance = Some(v.compliance);
                        row.violations = v.violations.iter().map(|v| v.message.clone()).collect();
                        row.verdict = match (cx.threshold, v.passed) {
                            (None, _) => Verdict::Scanned,
                            (Some(_), true) => Verdict::Pass,
                            (Some(_), false) => Verdict::Fail,
                        };
                        if row.verdict == Verdict::Fail {
                            row.exit_code = worst([row.exit_code, 1]);
                        }
                    }
                    // The SAF CLI cannot judge this HDF either: no verdict, a scan error.
                    Err(e) => {
                        row.error = Some(format!("cannot judge the results: {e}"));
                        row.exit_code = worst([row.exit_code, 3]);
                    }
                }
                row
            })
            .collect();
        let sessions: Vec<SessionRow> = outcome
            .sessions
            .iter()
            .map(|s| {
                let o = &s.outcome;
                SessionRow {
                    namespace: s.namespace.to_string(),
                    run_id: s.run_id.to_string(),
                    mode: s.mode.to_string(),
                    pods: s.pods.iter().map(ToString::to_string).collect(),
                    exit_code: o.exit_code,
                    cleanup_verified: o.cleanup.is_clean(),
                    objects_deleted: o
                        .cleanup
                        .actions
                        .iter()
                        .filter(|a| matches!(a, CleanupAction::VerifiedGone(_)))
                        .count(),
                    remaining: o
                        .cleanup
                        .remaining
                        .iter()
                        .map(ToString::to_string)
                        .collect(),
                    error: o.error.as_ref().map(ToString::to_string),
                    traces: s.traces.clone(),
                }
            })
            .collect();
        let totals = Totals {
            targets: targets.len(),
            scanned: targets.iter().filter(|t| t.counts.is_some()).count(),
            errors: targets
                .iter()
                .filter(|t| t.verdict == Verdict::Error)
                .count(),
            below_threshold: targets
                .iter()
                .filter(|t| t.verdict == Verdict::Fail)
                .count(),
            sessions: sessions.len(),
            sessions_clean: sessions.iter().filter(|s| s.cleanup_verified).count(),
        };
        Self {
            fleet_report_version: FLEET_REPORT_VERSION,
            selector: cx.selector.to_string(),
            scope: cx.scope.to_string(),
            profile: cx.profile.to_string(),
            concurrency: cx.concurrency,
            exit_code: worst(targets.iter().map(|t| t.exit_code)),
            exit_order: EXIT_ORDER.to_vec(),
            totals,
            sessions,
            targets,
        }
    }

    /// The fleet report as pretty JSON.
    ///
    /// # Errors
    /// Only if serialisation fails, which these types do not.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string_pretty(self)
    }

    /// The combined summary for a terminal: one line per target, the totals, the errors.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "fleet: {} in {}: {} target(s), {} session(s), concurrency {}",
            self.selector, self.scope, self.totals.targets, self.totals.sessions, self.concurrency
        );
        let width = self
            .targets
            .iter()
            .map(|t| t.namespace.len() + t.pod.len() + 1)
            .max()
            .unwrap_or(0)
            .max(6);
        let _ = writeln!(
            out,
            "{:<width$}  {:<10} {:<7} {:>6} {:>6} {:>4} {:>4} {:>5} {:>5}  EXIT",
            "TARGET", "MODE", "VERDICT", "PASSED", "FAILED", "N/A", "N/R", "ERROR", "COMPL"
        );
        for t in &self.targets {
            let name = format!("{}/{}", t.namespace, t.pod);
            let (c, compl) = match (&t.counts, t.compliance) {
                (Some(c), Some(p)) => (
                    [
                        c.passed,
                        c.failed,
                        c.not_applicable,
                        c.not_reviewed,
                        c.error,
                    ]
                    .map(|n| n.to_string()),
                    format!("{p}%"),
                ),
                _ => (std::array::from_fn(|_| "-".to_string()), "-".into()),
            };
            let _ = writeln!(
                out,
                "{name:<width$}  {:<10} {:<7} {:>6} {:>6} {:>4} {:>4} {:>5} {:>5}  {}",
                t.mode,
                t.verdict.as_str(),
                c[0],
                c[1],
                c[2],
                c[3],
                c[4],
                compl,
                t.exit_code
            );
        }
        let _ = writeln!(
            out,
            "\n{} scanned, {} error(s), {} below the threshold; {} of {} session(s) cleaned up and verified",
            self.totals.scanned,
            self.totals.errors,
            self.totals.below_threshold,
            self.totals.sessions_clean,
            self.totals.sessions
        );
        let errors: Vec<&TargetRow> = self.targets.iter().filter(|t| t.error.is_some()).collect();
        if !errors.is_empty() {
            let _ = writeln!(out, "\nerrors:");
            for t in errors {
                let _ = writeln!(
                    out,
                    "  {}/{} (exit {}): {}",
                    t.namespace,
                    t.pod,
                    t.exit_code,
                    one_line(t.error.as_deref().unwrap_or_default())
                );
            }
        }
        for s in self.sessions.iter().filter(|s| !s.cleanup_verified) {
            let _ = writeln!(
                out,
                "\nINCOMPLETE cleanup of run {} in {}: {} (run `keyhole reap -n {}`)",
                s.run_id,
                s.namespace,
                s.remaining.join(", "),
                s.namespace
            );
        }
        let _ = writeln!(
            out,
            "\nexit {}: the worst of the targets' (worst first: {})",
            self.exit_code,
            self.exit_order
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" > ")
        );
        out
    }

    /// The fleet report in Markdown (GitHub tables); every text from the cluster is escaped.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# Keyhole fleet scan\n");
        let _ = writeln!(out, "| | |\n|---|---|");
        for (k, v) in [
            ("selector", md(&self.selector)),
            ("scope", md(&self.scope)),
            ("profile", md(&self.profile)),
            ("concurrency", self.concurrency.to_string()),
            ("targets", self.totals.targets.to_string()),
            ("scanned", self.totals.scanned.to_string()),
            ("errors", self.totals.errors.to_string()),
            (
                "below the threshold",
                self.totals.below_threshold.to_string(),
            ),
            (
                "sessions cleaned up and verified",
                format!("{} of {}", self.totals.sessions_clean, self.totals.sessions),
            ),
            (
                "exit code",
                format!(
                    "{} (the worst of the targets'; worst first: {})",
                    self.exit_code,
                    self.exit_order
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(" > ")
                ),
            ),
        ] {
            let _ = writeln!(out, "| {k} | {v} |");
        }
        let _ = writeln!(
            out,
            "\n## Targets\n\n| target | container | mode | pre-scan | verdict | passed | failed | n/a | not reviewed | error | compliance | exit | HDF / error |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|"
        );
        for t in &self.targets {
            let c = t.counts.unwrap_or_default();
            let counts = if t.counts.is_some() {
                [
                    c.passed,
                    c.failed,
                    c.not_applicable,
                    c.not_reviewed,
                    c.error,
                ]
                .map(|n| n.to_string())
            } else {
                std::array::from_fn(|_| "-".to_string())
            };
            let detail = match (&t.error, &t.hdf) {
                (Some(e), _) => md(e),
                (None, Some(h)) => md(h),
                (None, None) => String::new(),
            };
            let _ = writeln!(
                out,
                "| {}/{} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                md(&t.namespace),
                md(&t.pod),
                md(t.container.as_deref().unwrap_or("-")),
                md(&t.mode),
                t.precheck.as_deref().unwrap_or("-"),
                t.verdict.as_str(),
                counts[0],
                counts[1],
                counts[2],
                counts[3],
                counts[4],
                t.compliance.map_or("-".into(), |p| format!("{p}%")),
                t.exit_code,
                detail
            );
        }
        let _ = writeln!(
            out,
            "\n## Sessions\n\n| namespace | run | mode | pods pinned | exit | objects deleted | cleanup | error |\n|---|---|---|---|---|---|---|---|"
        );
        for s in &self.sessions {
            let cleanup = if s.cleanup_verified {
                "verified complete".to_string()
            } else {
                format!("INCOMPLETE: {}", md(&s.remaining.join(", ")))
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                md(&s.namespace),
                md(&s.run_id),
                md(&s.mode),
                s.pods.len(),
                s.exit_code,
                s.objects_deleted,
                cleanup,
                md(s.error.as_deref().unwrap_or(""))
            );
        }
        let traces: Vec<&String> = self.sessions.iter().flat_map(|s| &s.traces).collect();
        if !traces.is_empty() {
            let _ = writeln!(
                out,
                "\n## Left in pod specs (Kubernetes cannot remove ephemeral containers)\n"
            );
            for t in traces {
                let _ = writeln!(out, "- {}", md(t));
            }
        }
        out
    }

    /// Targets by `namespace/pod`.
    pub fn by_target(&self) -> BTreeMap<String, &TargetRow> {
        self.targets
            .iter()
            .map(|t| (format!("{}/{}", t.namespace, t.pod), t))
            .collect()
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Text from the cluster (messages, names) made inert in a Markdown table cell.
fn md(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in one_line(s).chars() {
        match ch {
            '\\' | '|' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '#' | '!' => {
                out.push('\\');
                out.push(ch);
            }
            _ => out.push(ch),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_code_follows_the_documented_order() {
        // Every pair of the documented order, both ways round.
        let order = [4, 70, 130, 124, 3, 6, 5, 2, 1, 0];
        for (i, worse) in order.iter().enumerate() {
            for better in &order[i + 1..] {
                assert_eq!(worst([*worse, *better]), *worse, "{worse} vs {better}");
                assert_eq!(worst([*better, *worse]), *worse, "{better} vs {worse}");
            }
        }
        assert_eq!(worst([0, 143, 124]), 143);
        assert_eq!(worst([129, 3]), 129);
        // An unknown code is worse than a signal and better than a bug.
        assert_eq!(worst([130, 42]), 42);
        assert_eq!(worst([42, 70]), 70);
        assert_eq!(worst(std::iter::empty()), 0);
        assert_eq!(worst([1, 0, 1]), 1);
    }

    #[test]
    fn markdown_cells_cannot_break_the_table_or_inject_markup() {
        assert_eq!(md("a|b\n<img src=x>"), "a\\|b \\<img src=x\\>");
        assert_eq!(md("`code` [x](y)"), "\\`code\\` \\[x\\](y)");
    }
}
