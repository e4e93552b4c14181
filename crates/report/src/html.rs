//! The self-contained HTML page: inline CSS, no script, no external asset, and a Content
//! Security Policy that forbids loading anything, so the page works offline and leaks nothing
//! when opened.
//!
//! Escaping is askama's: every `{{ value }}` of an `.html` template is HTML-escaped unless a
//! template says `|safe`, which none does. Every string of the HDF comes from the scanned
//! target and is attacker-controlled, so escaping by construction is the point of using askama
//! rather than writing markup by hand (`tests/it/html.rs` renders a hostile control title).

use askama::Template;

use crate::ReportError;
use crate::report::{ControlView, Report, SeverityRow};

#[derive(Template)]
#[template(path = "report.html")]
struct Page<'a> {
    r: &'a Report,
}

impl Page<'_> {
    fn totals(&self) -> &SeverityRow {
        self.r.totals()
    }

    fn failed(&self) -> Vec<&ControlView> {
        self.r.failed_controls().collect()
    }

    fn errors(&self) -> Vec<&ControlView> {
        self.r.error_controls().collect()
    }

    /// `p` by reference because askama passes template values by reference.
    fn percent(&self, p: &Option<u32>) -> String {
        p.map_or_else(|| "—".to_owned(), |p| format!("{p}%"))
    }

    fn verdict_sentence(&self) -> String {
        use crate::report::Outcome;
        let v = &self.r.verdict;
        let threshold = v.threshold.as_deref().unwrap_or("—");
        match v.outcome {
            Outcome::Passed => format!("The threshold {threshold} is met."),
            Outcome::Failed => format!("The threshold {threshold} is not met."),
            Outcome::NotJudged => "No threshold was given, so nothing was judged.".to_owned(),
            Outcome::Aborted => format!(
                "The pre-scan verification aborted the scan: {}",
                v.aborted.as_deref().unwrap_or("—")
            ),
        }
    }
}

/// Renders `report` as one HTML page.
pub(crate) fn render(report: &Report) -> Result<String, ReportError> {
    Page { r: report }
        .render()
        .map_err(|source| ReportError::Html { source })
}
