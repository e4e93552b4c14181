//! Golden Markdown and JSON reports of the fixture run, and the numbers in them checked against
//! values worked out by hand from `fixtures/samples/sample-exec.json`.

use keyhole_report::{Outcome, Report, SeverityRow};

use crate::support::{hostile_exec, sample_exec, summary};

fn fixture_report() -> Report {
    Report::build(&sample_exec(), &summary()).unwrap()
}

fn row(severity: &str, counts: [u32; 5], compliance: Option<u32>) -> SeverityRow {
    let [passed, failed, skipped, error, no_impact] = counts;
    SeverityRow {
        severity: severity.to_owned(),
        passed,
        failed,
        skipped,
        error,
        no_impact,
        compliance,
    }
}

/// Worked out by hand: C1 passed (impact 0.7, high), C2 failed (0.5, medium), C3 skipped (0.3,
/// low), C4 impact 0 (not applicable, none), C5 error (1.0, critical), C6 passed (0.9,
/// critical). Compliance = 2 passed of 5 judged = 40%, below the threshold's minimum of 41.
#[test]
fn the_fixture_run_has_the_numbers_worked_out_by_hand() {
    let r = fixture_report();
    assert_eq!(r.verdict.outcome, Outcome::Failed);
    assert_eq!(r.verdict.violations.len(), 1);
    assert_eq!(r.verdict.violations[0].check, "compliance.min");
    assert_eq!(r.compliance, 40);
    assert_eq!(
        r.severities,
        [
            row("critical", [1, 0, 0, 1, 0], Some(50)),
            row("high", [1, 0, 0, 0, 0], Some(100)),
            row("medium", [0, 1, 0, 0, 0], Some(0)),
            row("low", [0, 0, 1, 0, 0], Some(0)),
            row("none", [0, 0, 0, 0, 1], None),
            row("total", [2, 1, 1, 1, 1], Some(40)),
        ]
    );
    let failed: Vec<&str> = r.failed_controls().map(|c| c.id.as_str()).collect();
    assert_eq!(failed, ["C2"]);
    let c2 = r.failed_controls().next().unwrap();
    // Only the failed result of C2 is evidence; its passed result is not.
    assert_eq!(c2.evidence.len(), 1);
    assert_eq!(c2.evidence[0].code_desc, "b");
    assert_eq!(c2.evidence[0].message.as_deref(), Some("expected x got y"));
    let errors: Vec<&str> = r.error_controls().map(|c| c.id.as_str()).collect();
    assert_eq!(errors, ["C5"]);
    assert_eq!(r.precheck.as_ref().unwrap().problems, 1);
    assert_eq!(r.postscan.as_ref().unwrap().problems, 0);
    assert_eq!(r.leftover_objects().count(), 0);
}

#[test]
fn markdown_report_of_the_fixture_run() {
    insta::assert_snapshot!("fixture_run_markdown", fixture_report().to_markdown());
}

#[test]
fn json_report_of_the_fixture_run() {
    insta::assert_snapshot!("fixture_run_json", fixture_report().to_json().unwrap());
}

#[test]
fn without_a_threshold_nothing_is_judged_and_nothing_passes() {
    let mut s = summary();
    s.threshold = None;
    let r = Report::build(&sample_exec(), &s).unwrap();
    assert_eq!(r.verdict.outcome, Outcome::NotJudged);
    assert!(r.verdict.violations.is_empty());
    // The numbers are still reported.
    assert_eq!(r.compliance, 40);
    assert!(r.to_markdown().contains("**NOT JUDGED**"));
}

#[test]
fn a_met_threshold_passes_and_an_abort_overrides_it() {
    let mut s = summary();
    s.threshold.as_mut().unwrap().threshold.compliance.min = Some(40.0);
    let r = Report::build(&sample_exec(), &s).unwrap();
    assert_eq!(r.verdict.outcome, Outcome::Passed);
    s.aborted = Some("image is not referenced by digest".into());
    let r = Report::build(&sample_exec(), &s).unwrap();
    assert_eq!(r.verdict.outcome, Outcome::Aborted);
    assert!(r.to_markdown().contains(
        "**ABORTED**: the pre-scan verification aborted the scan: image is not referenced by digest"
    ));
}

#[test]
fn an_undeleted_object_and_an_unrevoked_token_are_flagged() {
    let mut s = summary();
    s.objects[2].deleted_at = None;
    s.token.as_mut().unwrap().revoked_at = None;
    let r = Report::build(&sample_exec(), &s).unwrap();
    let leftover: Vec<&str> = r.leftover_objects().map(|o| o.kind.as_str()).collect();
    assert_eq!(leftover, ["Role"]);
    let md = r.to_markdown();
    assert!(md.contains("| **NOT DELETED** |"), "{md}");
    assert!(
        md.contains("**1 object(s) were not confirmed deleted**"),
        "{md}"
    );
    assert!(md.contains("**NOT REVOKED**"), "{md}");
    let html = r.to_html().unwrap();
    assert!(html.contains("NOT DELETED") && html.contains("NOT REVOKED"));
}

/// Findings given in the execution itself (not in the summary) are found by profile name.
#[test]
fn findings_profiles_in_the_execution_are_used_when_the_summary_has_none() {
    let mut exec = sample_exec();
    exec.profiles.push(crate::support::postscan());
    let mut s = summary();
    s.postscan = None;
    s.precheck = None;
    let r = Report::build(&exec, &s).unwrap();
    assert_eq!(r.postscan.as_ref().unwrap().checks.len(), 2);
    assert!(r.precheck.is_none());
    assert!(
        r.to_markdown()
            .contains("## Pre-scan verification\n\nNot run.")
    );
}

#[test]
fn an_execution_without_profiles_is_an_error_that_says_so() {
    let mut exec = sample_exec();
    exec.profiles.clear();
    let err = Report::build(&exec, &summary()).unwrap_err();
    assert!(err.to_string().contains("no profiles"), "{err}");
}

/// Hostile markup from the target cannot open a link, an image or an HTML tag in Markdown.
#[test]
fn markdown_escapes_hostile_strings() {
    let md = Report::build(&hostile_exec(), &summary())
        .unwrap()
        .to_markdown();
    // The report itself writes no `<` or `[`: every one comes from the HDF and is escaped.
    let bytes = md.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if matches!(b, b'<' | b'[' | b'>' | b']') {
            assert!(
                i > 0 && bytes[i - 1] == b'\\',
                "unescaped {} at byte {i}:\n{md}",
                *b as char
            );
        }
    }
    assert!(md.contains("\\<img src\\=x onerror\\=\\\"document"), "{md}");
    assert!(
        md.contains("### C2: \\<script\\>alert\\(1\\)\\<\\/script\\>"),
        "{md}"
    );
}
