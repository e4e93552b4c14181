//! Threshold verdicts with the semantics of `saf validate threshold` (SAF CLI 1.5.3).
//!
//! SAF stops at the first failed check; [`evaluate`] runs every check, in SAF's order, so the
//! first [`Violation`] is the one SAF reports (its message is SAF's, which SAF prints after
//! `Error: `) and the rest are what SAF would report once that one is fixed.

use std::fmt;

use crate::HdfError;
use crate::context::{Counted, counted_controls};
use crate::model::Execution;
use crate::status::{ControlStatus, Severity};
use crate::threshold::{Threshold, ThresholdStatus};

/// Numbers of controls per threshold status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// "Passed" controls.
    pub passed: u32,
    /// "Failed" controls.
    pub failed: u32,
    /// "Not Reviewed" controls.
    pub skipped: u32,
    /// "Profile Error" controls.
    pub error: u32,
    /// "Not Applicable" controls.
    pub no_impact: u32,
}

impl Counts {
    /// The count for one status.
    #[must_use]
    pub fn get(&self, status: ThresholdStatus) -> u32 {
        match status {
            ThresholdStatus::Passed => self.passed,
            ThresholdStatus::Failed => self.failed,
            ThresholdStatus::Skipped => self.skipped,
            ThresholdStatus::Error => self.error,
            ThresholdStatus::NoImpact => self.no_impact,
        }
    }

    /// The controls compliance is computed over: passed, failed, Not Reviewed and Profile
    /// Error (Not Applicable controls are left out, as in the SAF CLI).
    #[must_use]
    pub fn judged(&self) -> u32 {
        self.passed + self.failed + self.skipped + self.error
    }

    /// Compliance in percent as the SAF CLI computes it (`calculateCompliance` of its
    /// `src/utils/threshold.ts`): `Math.round(100 * passed / (passed + failed + skipped +
    /// error))`, and 0 when that denominator is 0 (see [`Counts::judged`] to tell "nothing was
    /// judged" from "nothing passed"). The value a threshold's `compliance.min`/`max` judge.
    #[must_use]
    pub fn compliance(&self) -> u32 {
        let denominator = self.judged();
        if denominator == 0 {
            return 0;
        }
        // The same f64 operations as JavaScript's `Math.round((100 * passed) / total)`; the
        // value is positive, where Rust's half-away-from-zero rounding equals Math.round's
        // half-up.
        let percent = (100.0 * f64::from(self.passed) / f64::from(denominator)).round();
        // In 0..=100 by construction.
        percent as u32
    }

    fn add(&mut self, status: ThresholdStatus) {
        let slot = match status {
            ThresholdStatus::Passed => &mut self.passed,
            ThresholdStatus::Failed => &mut self.failed,
            ThresholdStatus::Skipped => &mut self.skipped,
            ThresholdStatus::Error => &mut self.error,
            ThresholdStatus::NoImpact => &mut self.no_impact,
        };
        *slot += 1;
    }
}

/// Control counts of the first profile, in total and per severity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatusCounts {
    /// All counted controls. A control whose severity tag is not lower case counts here only.
    pub total: Counts,
    /// Critical controls.
    pub critical: Counts,
    /// High controls.
    pub high: Counts,
    /// Medium controls.
    pub medium: Counts,
    /// Low controls.
    pub low: Counts,
    /// Controls of severity none.
    pub none: Counts,
}

impl StatusCounts {
    /// The counts for one severity.
    #[must_use]
    pub fn severity(&self, severity: Severity) -> &Counts {
        match severity {
            Severity::Critical => &self.critical,
            Severity::High => &self.high,
            Severity::Medium => &self.medium,
            Severity::Low => &self.low,
            Severity::None => &self.none,
        }
    }

    fn severity_mut(&mut self, severity: Severity) -> &mut Counts {
        match severity {
            Severity::Critical => &mut self.critical,
            Severity::High => &mut self.high,
            Severity::Medium => &mut self.medium,
            Severity::Low => &mut self.low,
            Severity::None => &mut self.none,
        }
    }
}

/// One failed threshold check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The threshold entry that failed, e.g. `compliance.min`, `passed.total`,
    /// `failed.critical.max`, `passed.high.controls`.
    pub check: String,
    /// SAF's message for it, word for word.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// A control of the first profile as SAF counts it: with the status and severity of the base
/// control it overlays, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountedControl {
    /// Control id.
    pub id: String,
    /// Heimdall status.
    pub status: ControlStatus,
    /// Severity bucket; `None` when a severity tag is not written in lower case, which puts the
    /// control in the totals but in no severity bucket (as in SAF).
    pub severity: Option<Severity>,
}

/// The outcome of judging an execution against a threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// True when no check failed (SAF prints "All validation tests passed" and exits 0).
    pub passed: bool,
    /// Every failed check, in SAF's order; the first is the one SAF reports.
    pub violations: Vec<Violation>,
    /// `round(100 * passed / (passed + failed + skipped + error))` of the first profile, 0 when
    /// the denominator is 0; Not Applicable controls are left out.
    pub compliance: u32,
    /// The counts the checks used.
    pub counts: StatusCounts,
    /// The controls counted, in file order.
    pub controls: Vec<CountedControl>,
}

/// Judges `exec` against `threshold` exactly as `saf validate threshold -i EXEC -T THRESHOLD`.
///
/// Only the first profile counts, and within it only controls that no other control overlays,
/// each with the status and severity of the base control it overlays (see Heimdall's overlay
/// rules).
///
/// # Errors
/// Where the SAF CLI crashes instead of judging: [`HdfError::NoProfiles`],
/// [`HdfError::InvalidTag`], [`HdfError::OverlayCycle`].
pub fn evaluate(exec: &Execution, threshold: &Threshold) -> Result<Verdict, HdfError> {
    use ThresholdStatus::{Error, Failed, NoImpact, Passed, Skipped};

    let controls = counted_controls(exec)?;
    let mut counts = StatusCounts::default();
    for c in &controls {
        let status = threshold_status(c.status);
        counts.total.add(status);
        if let Some(severity) = c.severity {
            counts.severity_mut(severity).add(status);
        }
    }
    let compliance = counts.total.compliance();

    let mut violations = Vec::new();
    let mut fail = |check: String, message: String| violations.push(Violation { check, message });

    // Falsy bounds (0) are skipped, as SAF's `min && compliance < min` does.
    if let Some(min) = threshold.compliance.min.filter(|m| truthy(*m))
        && f64::from(compliance) < min
    {
        fail(
            "compliance.min".into(),
            "Overall compliance minimum was not satisfied".into(),
        );
    }
    if let Some(max) = threshold.compliance.max.filter(|m| truthy(*m))
        && f64::from(compliance) > max
    {
        fail(
            "compliance.max".into(),
            "Overall compliance maximum was not satisfied".into(),
        );
    }

    for status in [Passed, Failed, Skipped, NoImpact, Error] {
        if let Some(exact) = threshold.status(status).total.exact {
            let count = counts.total.get(status);
            if f64::from(count) != exact {
                let path = format!("{}.total", status.as_str());
                fail(
                    path.clone(),
                    count_message(&path, status, count, "is not equal to", exact),
                );
            }
        }
    }
    for (bound, is_min) in [("min", true), ("max", false)] {
        for status in [Passed, Failed, Skipped, Error] {
            let total = &threshold.status(status).total;
            let count = counts.total.get(status);
            if let Some(path) = bound_check(
                status,
                "total",
                bound,
                is_min,
                if is_min { total.min } else { total.max },
                count,
            ) {
                fail(path.0, path.1);
            }
        }
    }

    for severity in [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::None,
    ] {
        for status in ThresholdStatus::ALL {
            if severity == Severity::None && status != NoImpact {
                continue;
            }
            let slot = threshold.status(status).severity(severity);
            let count = counts.severity(severity).get(status);
            for (bound, is_min, value) in [("min", true, slot.min), ("max", false, slot.max)] {
                if let Some(path) =
                    bound_check(status, severity.as_str(), bound, is_min, value, count)
                {
                    fail(path.0, path.1);
                }
            }
        }
    }

    for severity in [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::None,
    ] {
        for status in ThresholdStatus::ALL {
            if severity == Severity::None && status != NoImpact {
                continue;
            }
            let Some(expected) = &threshold.status(status).severity(severity).controls else {
                continue;
            };
            let path = format!("{}.{}.controls", status.as_str(), severity.as_str());
            let actual = actual_ids(&controls, status, severity);
            for id in expected {
                if !actual.as_ref().is_some_and(|a| a.contains(&id.as_str())) {
                    let listed = actual
                        .as_ref()
                        .map_or_else(|| "undefined".to_owned(), |a| a.join(", "));
                    fail(
                        path.clone(),
                        format!(
                            "Expected {path} to contain {id} controls but it only contained [{listed}]"
                        ),
                    );
                }
            }
            let actual_len = actual.as_ref().map(Vec::len);
            if actual_len != Some(expected.len()) {
                let got = actual_len.map_or_else(|| "undefined".to_owned(), |n| n.to_string());
                fail(
                    path.clone(),
                    format!(
                        "Expected {path} to contain {} controls but it contained {got}",
                        expected.len()
                    ),
                );
            }
        }
    }

    let controls = controls
        .iter()
        .map(|c| CountedControl {
            id: c.id.to_owned(),
            status: c.status,
            severity: c.severity,
        })
        .collect();
    Ok(Verdict {
        passed: violations.is_empty(),
        violations,
        compliance,
        counts,
        controls,
    })
}

fn threshold_status(status: ControlStatus) -> ThresholdStatus {
    match status {
        ControlStatus::Passed => ThresholdStatus::Passed,
        ControlStatus::Failed => ThresholdStatus::Failed,
        ControlStatus::NotReviewed => ThresholdStatus::Skipped,
        ControlStatus::NotApplicable => ThresholdStatus::NoImpact,
        ControlStatus::ProfileError => ThresholdStatus::Error,
    }
}

fn truthy(value: f64) -> bool {
    value != 0.0 && !value.is_nan()
}

fn bound_check(
    status: ThresholdStatus,
    middle: &str,
    bound: &str,
    is_min: bool,
    value: Option<f64>,
    count: u32,
) -> Option<(String, String)> {
    let value = value?;
    let broken = if is_min {
        f64::from(count) < value
    } else {
        f64::from(count) > value
    };
    if !broken {
        return None;
    }
    let path = format!("{}.{middle}.{bound}", status.as_str());
    let relation = if is_min {
        "is less than"
    } else {
        "is greater than"
    };
    let message = count_message(&path, status, count, relation, value);
    Some((path, message))
}

fn count_message(
    path: &str,
    status: ThresholdStatus,
    count: u32,
    relation: &str,
    value: f64,
) -> String {
    let s = status.as_str();
    format!(
        "{path}: Threshold not met. Number of received total {s} controls ({count}) {relation} your set threshold for the number of {s} controls ({})",
        js_number(value)
    )
}

/// Ids SAF's `getControlIdMap` files under `<status>.<severity>.controls`; `None` when there are
/// none (SAF's `undefined`).
fn actual_ids<'a>(
    controls: &[Counted<'a>],
    status: ThresholdStatus,
    severity: Severity,
) -> Option<Vec<&'a str>> {
    let ids: Vec<&str> = controls
        .iter()
        .filter(|c| threshold_status(c.status) == status && c.severity == Some(severity))
        .map(|c| c.id)
        .collect();
    (!ids.is_empty()).then_some(ids)
}

/// JavaScript's `String(number)`, so messages print thresholds as SAF does.
pub(crate) fn js_number(value: f64) -> String {
    if value.is_nan() {
        return "NaN".to_owned();
    }
    if value.is_infinite() {
        return if value > 0.0 { "Infinity" } else { "-Infinity" }.to_owned();
    }
    if value == 0.0 {
        // Also -0, which JavaScript prints as 0.
        return "0".to_owned();
    }
    let magnitude = value.abs();
    if (1e-6..1e21).contains(&magnitude) {
        // Rust's Display is the shortest round-trip form without exponent, as JS in this range.
        return format!("{value}");
    }
    // JS exponent form: shortest digits, `e+` for positive exponents.
    let formatted = format!("{value:e}");
    match formatted.split_once('e') {
        Some((mantissa, exp)) if !exp.starts_with('-') => format!("{mantissa}e+{exp}"),
        _ => formatted,
    }
}

#[cfg(test)]
mod tests {
    use super::{Counts, js_number};

    fn counts(passed: u32, failed: u32, skipped: u32, error: u32, no_impact: u32) -> Counts {
        Counts {
            passed,
            failed,
            skipped,
            error,
            no_impact,
        }
    }

    /// SAF's `calculateCompliance`, values worked out by hand with JavaScript's `Math.round`
    /// (half up): Not Applicable is left out, halves round up, nothing judged is 0.
    #[test]
    fn compliance_is_safs_calculate_compliance() {
        for (c, judged, want) in [
            (counts(0, 0, 0, 0, 0), 0, 0),
            (counts(0, 0, 0, 0, 7), 0, 0),
            (counts(3, 0, 0, 0, 9), 3, 100),
            (counts(0, 4, 0, 0, 0), 4, 0),
            // 100 * 1 / 8 = 12.5 -> 13; 100 * 3 / 8 = 37.5 -> 38.
            (counts(1, 7, 0, 0, 0), 8, 13),
            (counts(3, 1, 2, 2, 5), 8, 38),
            // 100 * 2 / 3 = 66.67 -> 67; 100 * 1 / 3 = 33.33 -> 33.
            (counts(2, 0, 1, 0, 0), 3, 67),
            (counts(1, 0, 0, 2, 0), 3, 33),
            // Skipped and errored controls count against compliance.
            (counts(1, 0, 1, 0, 0), 2, 50),
            (counts(1, 0, 0, 1, 0), 2, 50),
            (counts(199, 1, 0, 0, 0), 200, 100),
            (counts(1, 199, 0, 0, 0), 200, 1),
            (counts(1, 200, 0, 0, 0), 201, 0),
        ] {
            assert_eq!(c.judged(), judged, "{c:?}");
            assert_eq!(c.compliance(), want, "{c:?}");
        }
    }

    #[test]
    fn js_number_matches_javascript_string_conversion() {
        for (value, js) in [
            (5.0, "5"),
            (-0.0, "0"),
            (1.5, "1.5"),
            (0.1, "0.1"),
            (66.66666666666667, "66.66666666666667"),
            (1e21, "1e+21"),
            (1.5e-7, "1.5e-7"),
            (0.000001, "0.000001"),
            (123456789012345680000.0, "123456789012345680000"),
            (f64::INFINITY, "Infinity"),
            (f64::NAN, "NaN"),
        ] {
            assert_eq!(js_number(value), js, "{value:?}");
        }
    }
}
