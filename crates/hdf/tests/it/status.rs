//! Control status and severity as Heimdall's inspecjs computes them.

use keyhole_hdf::{
    AttestationData, AttestationStatus, ControlStatus, ResultStatus, Severity, WaiverData,
    WaiverFlag,
};
use serde_json::{Map, json};

use crate::support::{control, result};

use ControlStatus::{Failed, NotApplicable, NotReviewed, Passed, ProfileError};
use ResultStatus as R;

#[test]
fn status_follows_inspecjs_order_of_rules() {
    let cases: &[(&str, f64, &[R], ControlStatus)] = &[
        ("passed only", 0.5, &[R::Passed, R::Passed], Passed),
        ("passed and skipped", 0.5, &[R::Skipped, R::Passed], Passed),
        (
            "any failed",
            0.5,
            &[R::Passed, R::Failed, R::Skipped],
            Failed,
        ),
        ("all skipped", 0.5, &[R::Skipped, R::Skipped], NotReviewed),
        (
            "error beats failed",
            0.5,
            &[R::Failed, R::Error],
            ProfileError,
        ),
        ("no results", 0.5, &[], ProfileError),
        ("impact 0 with passes", 0.0, &[R::Passed], NotApplicable),
        ("impact 0 with failures", 0.0, &[R::Failed], NotApplicable),
        ("impact 0 without results", 0.0, &[], NotApplicable),
        (
            "error beats impact 0",
            0.0,
            &[R::Passed, R::Error],
            ProfileError,
        ),
        ("tiny impact is not 0", 0.01, &[R::Failed], Failed),
    ];
    for (name, impact, statuses, expected) in cases {
        assert_eq!(
            control("C", *impact, statuses).status(),
            *expected,
            "{name}"
        );
    }
}

#[test]
fn results_without_status_and_backtraces() {
    let mut c = control("C", 0.5, &[]);
    c.results = vec![result(None)];
    assert_eq!(c.status(), ProfileError, "only status-less results");
    c.results.push(result(Some(R::Skipped)));
    assert_eq!(
        c.status(),
        NotReviewed,
        "status-less results are ignored beside a skip"
    );
    // A backtrace, even an empty one, turns a result into an error (inspecjs tests truthiness).
    let mut c = control("C", 0.5, &[R::Passed]);
    c.results[0].backtrace = Some(Vec::new());
    assert_eq!(c.status(), ProfileError);
}

#[test]
fn waivers_make_controls_not_applicable_unless_an_error_occurred() {
    let waive = |flag: WaiverFlag, statuses: &[R]| {
        let mut c = control("C", 0.7, statuses);
        c.waiver_data = Some(WaiverData {
            skipped_due_to_waiver: Some(flag),
            ..Default::default()
        });
        c.status()
    };
    assert_eq!(waive(WaiverFlag::Bool(true), &[R::Failed]), NotApplicable);
    assert_eq!(waive(WaiverFlag::Bool(true), &[]), NotApplicable);
    assert_eq!(
        waive(WaiverFlag::Text("yes".into()), &[R::Failed]),
        NotApplicable
    );
    assert_eq!(
        waive(WaiverFlag::Text(String::new()), &[R::Failed]),
        Failed,
        "empty string is falsy"
    );
    assert_eq!(waive(WaiverFlag::Bool(false), &[R::Failed]), Failed);
    assert_eq!(waive(WaiverFlag::Bool(true), &[R::Error]), ProfileError);
}

#[test]
fn attestations_do_not_change_the_status() {
    let mut c = control("C", 0.5, &[R::Failed]);
    c.attestation_data = Some(AttestationData {
        control_id: "C".into(),
        explanation: "checked by hand".into(),
        frequency: "monthly".into(),
        status: AttestationStatus::Passed,
        updated: "2026-01-01".into(),
        updated_by: "me".into(),
        extra: Map::new(),
    });
    assert_eq!(c.status(), Failed);
}

#[test]
fn severity_buckets_from_impact() {
    for (impact, expected) in [
        (0.0, Severity::None),
        (0.09, Severity::None),
        (0.1, Severity::Low),
        (0.39, Severity::Low),
        (0.4, Severity::Medium),
        (0.69, Severity::Medium),
        (0.7, Severity::High),
        (0.89, Severity::High),
        (0.9, Severity::Critical),
        (1.0, Severity::Critical),
    ] {
        assert_eq!(Severity::from_impact(impact), expected, "impact {impact}");
        assert_eq!(
            control("C", impact, &[]).severity(),
            expected,
            "impact {impact}"
        );
    }
}

#[test]
fn severity_tags_take_precedence_over_impact() {
    let with = |tags: serde_json::Value| {
        let mut c = control("C", 0.5, &[]);
        c.tags = tags.as_object().unwrap().clone();
        c.severity()
    };
    assert_eq!(with(json!({"severity": "high"})), Severity::High);
    assert_eq!(
        with(json!({"severity": "CRITICAL"})),
        Severity::Critical,
        "matched case-insensitively"
    );
    assert_eq!(
        with(json!({"severity": "high", "severityoverride": "low"})),
        Severity::Low
    );
    assert_eq!(
        with(json!({"severity": "urgent"})),
        Severity::Medium,
        "unknown text falls back to impact"
    );
    assert_eq!(
        with(json!({"severityoverride": "bogus", "severity": "none"})),
        Severity::None
    );
    assert_eq!(with(json!({"severity": null})), Severity::Medium);
}

#[test]
fn status_names_are_heimdalls() {
    let names: Vec<&str> = [Passed, Failed, NotApplicable, NotReviewed, ProfileError]
        .iter()
        .map(|s| s.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "Passed",
            "Failed",
            "Not Applicable",
            "Not Reviewed",
            "Profile Error"
        ]
    );
    assert_eq!(ProfileError.to_string(), "Profile Error");
}
