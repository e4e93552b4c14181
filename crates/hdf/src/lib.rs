//! Heimdall Data Format (HDF, MITRE) for keyhole: the exec-JSON model with a reader and a
//! schema-valid writer, Heimdall's control status and severity, and threshold verdicts that
//! agree with `saf validate threshold` of the MITRE SAF CLI.
//!
//! ```
//! use keyhole_hdf::{Execution, Threshold, evaluate};
//!
//! # fn main() -> Result<(), keyhole_hdf::HdfError> {
//! # let json = r#"{"platform":{"name":"debian","release":"12"},"profiles":[{"name":"p",
//! #   "sha256":"0","supports":[],"attributes":[],"groups":[],"controls":[{"id":"C1",
//! #   "impact":0.7,"refs":[],"tags":{},"source_location":{},"results":[{"status":"passed",
//! #   "code_desc":"ok","start_time":"2026-01-01T00:00:00Z"}]}]}],"statistics":{},"version":"1"}"#;
//! let exec = Execution::from_json_str(json)?;
//! let threshold = Threshold::from_yaml_str("compliance:\n  min: 80\nfailed:\n  total:\n    max: 0\n")?;
//! let verdict = evaluate(&exec, &threshold)?;
//! assert!(verdict.passed);
//! assert_eq!(verdict.compliance, 100);
//! # Ok(()) }
//! ```
//!
//! Semantics were taken from, and checked against, SAF CLI 1.5.3 (`validate threshold`,
//! `utils/threshold`) and Heimdall's `inspecjs` (status, severity, overlays); a differential test
//! runs the real SAF CLI on a generated corpus (`tests/it/saf_diff.rs`, `KEYHOLE_SAF_BIN`).
//!
//! Where keyhole deliberately differs from SAF, it refuses rather than guesses, so a gate never
//! passes where SAF would not judge: a threshold entry SAF reads that is not a number (or, for
//! `controls`, not a list of strings), and a threshold document that is empty or not a mapping,
//! are errors (SAF coerces, ignores, or passes everything); an execution SAF crashes on (no
//! profiles, a severity or `nist` tag of the wrong type, an overlay cycle) is an error from
//! [`evaluate`]. SAF's other quirks are reproduced, and keys it does not read are listed in
//! [`Threshold::ignored`].
//!
//! This crate knows nothing of Kubernetes; it is usable on its own.

mod context;
mod error;
mod model;
mod status;
mod threshold;
mod verdict;

pub use error::HdfError;
pub use model::{
    AttestationData, AttestationStatus, Control, ControlResult, Dependency, Description, Execution,
    Group, Platform, Profile, RefValue, Reference, ResultStatus, SourceLocation, StatisticBlock,
    StatisticHash, Statistics, SupportedPlatform, WaiverData, WaiverFlag,
};
pub use status::{ControlStatus, Severity};
pub use threshold::{
    Bounds, SeverityThreshold, StatusThreshold, Threshold, ThresholdStatus, TotalThreshold,
};
pub use verdict::{CountedControl, Counts, StatusCounts, Verdict, Violation, evaluate};

/// The README's example, compiled and run by `cargo test --doc` so it never goes stale.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;
