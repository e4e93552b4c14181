//! Control status and severity, computed exactly as Heimdall's `inspecjs` does
//! (`ExecControl.compute_status`, `HDFControl10.compute_severity`, `convertImpactToSeverity`),
//! which is also what the SAF CLI counts.

use std::fmt;

use serde_json::Value;

use crate::HdfError;
use crate::model::{Control, ResultStatus};

/// The status Heimdall shows for a control.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ControlStatus {
    /// All tests that ran passed (skipped ones may be mixed in).
    Passed,
    /// At least one test failed.
    Failed,
    /// Impact 0 or waived (`waiver_data.skipped_due_to_waiver`); SAF's `no_impact`.
    NotApplicable,
    /// Every test was skipped; SAF's `skipped`.
    NotReviewed,
    /// A test errored (or has a backtrace), or no test produced a status; SAF's `error`.
    ProfileError,
}

impl ControlStatus {
    /// Heimdall's spelling: `Passed`, `Failed`, `Not Applicable`, `Not Reviewed`, `Profile Error`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Passed => "Passed",
            Self::Failed => "Failed",
            Self::NotApplicable => "Not Applicable",
            Self::NotReviewed => "Not Reviewed",
            Self::ProfileError => "Profile Error",
        }
    }
}

impl fmt::Display for ControlStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Severity of a control.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    /// Impact below 0.1.
    None,
    /// Impact in `0.1..0.4`.
    Low,
    /// Impact in `0.4..0.7`.
    Medium,
    /// Impact in `0.7..0.9`.
    High,
    /// Impact 0.9 and above.
    Critical,
}

impl Severity {
    /// All severities, lowest first.
    pub const ALL: [Self; 5] = [
        Self::None,
        Self::Low,
        Self::Medium,
        Self::High,
        Self::Critical,
    ];

    /// Heimdall's impact buckets: `< 0.1` none, `< 0.4` low, `< 0.7` medium, `< 0.9` high, else
    /// critical.
    #[must_use]
    pub fn from_impact(impact: f64) -> Self {
        if impact < 0.1 {
            Self::None
        } else if impact < 0.4 {
            Self::Low
        } else if impact < 0.7 {
            Self::Medium
        } else if impact < 0.9 {
            Self::High
        } else {
            Self::Critical
        }
    }

    /// Lower-case name as used in HDF tags and threshold files.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }

    /// Parses an exact lower-case name.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Control {
    /// Heimdall's status of this control, from its own results.
    ///
    /// In order: any result with status `error` or with a `backtrace` (even an empty one) →
    /// Profile Error; waived or impact exactly 0 → Not Applicable; no results → Profile Error;
    /// any failed → Failed; any passed → Passed; any skipped → Not Reviewed; otherwise (results
    /// without status) → Profile Error. Attestations do not change it.
    #[must_use]
    pub fn status(&self) -> ControlStatus {
        // inspecjs turns a result with a backtrace into an error whatever its status says.
        let statuses: Vec<Option<ResultStatus>> = self
            .results
            .iter()
            .map(|r| {
                if r.backtrace.is_some() {
                    Some(ResultStatus::Error)
                } else {
                    r.status
                }
            })
            .collect();
        let has = |s: ResultStatus| statuses.contains(&Some(s));
        if has(ResultStatus::Error) {
            ControlStatus::ProfileError
        } else if self.is_waived() || self.impact == 0.0 {
            ControlStatus::NotApplicable
        } else if statuses.is_empty() {
            ControlStatus::ProfileError
        } else if has(ResultStatus::Failed) {
            ControlStatus::Failed
        } else if has(ResultStatus::Passed) {
            ControlStatus::Passed
        } else if has(ResultStatus::Skipped) {
            ControlStatus::NotReviewed
        } else {
            ControlStatus::ProfileError
        }
    }

    /// Whether a waiver made Heimdall skip the control (`waiver_data.skipped_due_to_waiver` true
    /// or a non-empty string).
    #[must_use]
    pub fn is_waived(&self) -> bool {
        self.waiver_data
            .as_ref()
            .and_then(|w| w.skipped_due_to_waiver.as_ref())
            .is_some_and(|f| f.is_set())
    }

    /// Severity for display: tag `severityoverride`, else tag `severity` (either matched
    /// case-insensitively), else from impact.
    #[must_use]
    pub fn severity(&self) -> Severity {
        match self.severity_label() {
            Ok(SeverityLabel::Tag(text)) => {
                Severity::from_name(&text.to_lowercase()).unwrap_or(Severity::None)
            }
            Ok(SeverityLabel::Impact(s)) => s,
            // A tag of a wrong type is ignored here; `evaluate` reports it as an error.
            Err(_) => Severity::from_impact(self.impact),
        }
    }

    /// The severity under which the SAF CLI files this control: Heimdall returns a matching tag
    /// *as written*, and SAF then compares it with lower-case names, so a tag spelled `High` puts
    /// the control in no severity bucket at all (it still counts in the totals).
    pub(crate) fn saf_severity(&self) -> Result<Option<Severity>, HdfError> {
        Ok(match self.severity_label()? {
            SeverityLabel::Tag(text) => Severity::from_name(text),
            SeverityLabel::Impact(s) => Some(s),
        })
    }

    fn severity_label(&self) -> Result<SeverityLabel<'_>, HdfError> {
        for tag in ["severityoverride", "severity"] {
            match self.tags.get(tag) {
                None | Some(Value::Null) => {}
                Some(Value::String(text)) => {
                    if Severity::from_name(&text.to_lowercase()).is_some() {
                        return Ok(SeverityLabel::Tag(text));
                    }
                }
                // inspecjs calls `.toLowerCase()` on it and throws.
                Some(other) => return Err(self.bad_tag(tag, other)),
            }
        }
        Ok(SeverityLabel::Impact(Severity::from_impact(self.impact)))
    }

    /// inspecjs parses every truthy `nist` tag as a string or a list of strings and throws on
    /// anything else, which makes the SAF CLI crash.
    pub(crate) fn check_nist_tag(&self) -> Result<(), HdfError> {
        match self.tags.get("nist") {
            None | Some(Value::Null | Value::Bool(false) | Value::String(_)) => Ok(()),
            Some(Value::Number(n)) if n.as_f64() == Some(0.0) => Ok(()),
            Some(Value::Array(items)) => match items.iter().find(|v| !v.is_string()) {
                None => Ok(()),
                Some(bad) => Err(self.bad_tag("nist", bad)),
            },
            Some(other) => Err(self.bad_tag("nist", other)),
        }
    }

    fn bad_tag(&self, tag: &str, value: &Value) -> HdfError {
        HdfError::InvalidTag {
            control_id: self.id.clone(),
            tag: tag.to_owned(),
            found: json_type(value),
        }
    }
}

enum SeverityLabel<'a> {
    Tag(&'a str),
    Impact(Severity),
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}
