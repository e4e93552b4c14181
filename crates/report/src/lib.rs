//! Keyhole's scan reports, rendered from an HDF execution and a [`RunSummary`] (what the run
//! did besides its results: run id, targets, mode, threshold, objects created and deleted, the
//! token's lifetime, pre-scan and post-scan findings).
//!
//! [`Report::build`] computes the content once — the verdict and the counts by severity come
//! from [`keyhole_hdf::evaluate`], so they are the numbers a threshold judges — and every format
//! renders that same value: [`Report::to_markdown`], [`Report::to_json`], [`Report::to_html`]
//! (one self-contained page, everything escaped) and [`Report::to_sarif`] (SARIF 2.1.0).
//!
//! Every string of the HDF comes from the scanned target and is treated as hostile: escaped for
//! HTML by askama, backslash-escaped for Markdown, and only ever a JSON string value in JSON and
//! SARIF.

mod error;
mod html;
mod markdown;
mod report;
mod sarif;
mod summary;

pub use error::ReportError;
pub use report::{
    ControlView, Evidence, FindingsView, ObjectView, Outcome, REPORT_FORMAT_VERSION, Report,
    SeverityRow, TokenView, VerdictView, ViolationView,
};
pub use sarif::{SARIF_SCHEMA_URI, TargetFailure};
pub use summary::{
    ObjectRecord, POSTSCAN_PROFILE, PRECHECK_PROFILE, RunSummary, Target, ThresholdSpec,
    TokenLifetime,
};

impl Report {
    /// The Markdown report (CommonMark with GitHub tables).
    #[must_use]
    pub fn to_markdown(&self) -> String {
        markdown::render(self)
    }

    /// The HTML report: one page with inline CSS, no script and no external asset.
    ///
    /// # Errors
    /// [`ReportError::Html`] if the template fails to render (it does not for these types).
    pub fn to_html(&self) -> Result<String, ReportError> {
        html::render(self)
    }

    /// The SARIF 2.1.0 log.
    ///
    /// # Errors
    /// [`ReportError::Json`] if serialisation fails (it does not for these types).
    pub fn to_sarif(&self) -> Result<String, ReportError> {
        sarif::render(std::slice::from_ref(self), &[])
    }
}

/// One SARIF 2.1.0 log for several targets (a scan of several pods, a fleet): one run, each
/// rule once, each report's failures located at its targets, and each target in `failures`
/// (no report: its scan failed) an error notification of the invocation, which is then not
/// successful. Code-scanning uploads take one document, so several targets need this rather
/// than one [`Report::to_sarif`] each.
///
/// # Errors
/// [`ReportError::Json`] if serialisation fails (it does not for these types).
pub fn sarif_log(reports: &[Report], failures: &[TargetFailure]) -> Result<String, ReportError> {
    sarif::render(reports, failures)
}

/// The README's example, compiled and run by `cargo test --doc` so it never goes stale.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;
