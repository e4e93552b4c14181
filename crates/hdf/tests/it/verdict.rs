//! Verdicts: the sample vectors of `fixtures/samples/` and each SAF rule on small executions.

use keyhole_hdf::{
    Counts, Execution, HdfError, ResultStatus, Severity, Threshold, Verdict, evaluate,
};
use serde_json::json;

use crate::support::{control, exec, profile, read_fixture, single};

use ResultStatus::{Error as E, Failed as F, Passed as P, Skipped as S};

fn sample() -> Execution {
    Execution::from_json_str(&read_fixture("samples/sample-exec.json")).unwrap()
}

fn judge(exec: &Execution, threshold_yaml: &str) -> Verdict {
    let threshold = Threshold::from_yaml_str(threshold_yaml).unwrap();
    evaluate(exec, &threshold).unwrap()
}

fn checks(verdict: &Verdict) -> Vec<&str> {
    verdict
        .violations
        .iter()
        .map(|v| v.check.as_str())
        .collect()
}

#[test]
fn sample_compliance_is_40_with_na_excluded() {
    let v = judge(&sample(), "{}");
    assert_eq!(v.compliance, 40);
    assert_eq!(
        v.counts.total,
        Counts {
            passed: 2,
            failed: 1,
            skipped: 1,
            error: 1,
            no_impact: 1
        }
    );
    assert_eq!(
        v.counts.critical,
        Counts {
            passed: 1,
            error: 1,
            ..Counts::default()
        }
    );
    assert_eq!(
        v.counts.none,
        Counts {
            no_impact: 1,
            ..Counts::default()
        }
    );
    assert!(v.passed && v.violations.is_empty());
}

#[test]
fn sample_thresholds_pass_and_fail_as_saf_judges_them() {
    let exec = sample();
    assert!(judge(&exec, &read_fixture("samples/threshold-pass.yaml")).passed);
    assert!(judge(&exec, &read_fixture("samples/generated-threshold.yaml")).passed);
    let v = judge(
        &exec,
        &read_fixture("samples/threshold-fail-compliance.yaml"),
    );
    assert!(!v.passed);
    assert_eq!(v.violations.len(), 1);
    assert_eq!(
        v.violations[0].message,
        "Overall compliance minimum was not satisfied"
    );
}

#[test]
fn generated_threshold_catches_a_regression_with_every_violation_in_saf_order() {
    let mut exec = sample();
    // C1 (impact 0.7: high) now fails instead of passing.
    exec.profiles[0].controls[0].results[0].status = Some(F);
    let v = judge(&exec, &read_fixture("samples/generated-threshold.yaml"));
    assert_eq!(v.compliance, 20);
    assert_eq!(
        checks(&v),
        [
            "compliance.min",
            "passed.total.min",
            "failed.total.max",
            "passed.high.min",
            "failed.high.max"
        ]
    );
    assert_eq!(
        v.violations[0].message,
        "Overall compliance minimum was not satisfied"
    );
    assert_eq!(
        v.violations[2].message,
        "failed.total.max: Threshold not met. Number of received total failed controls (2) is greater than your set \
         threshold for the number of failed controls (1)"
    );
    assert_eq!(
        v.violations[3].message,
        "passed.high.min: Threshold not met. Number of received total passed controls (0) is less than your set \
         threshold for the number of passed controls (1)"
    );
}

#[test]
fn each_severity_bucket_is_counted_and_checked_separately() {
    let exec = single(vec![
        control("crit", 0.9, &[P]),
        control("high", 0.7, &[P]),
        control("med", 0.4, &[P]),
        control("low", 0.1, &[P]),
        control("none", 0.05, &[P]),
    ]);
    let v = judge(&exec, "{}");
    for severity in Severity::ALL {
        assert_eq!(v.counts.severity(severity).passed, 1, "{severity}");
    }
    for severity in ["critical", "high", "medium", "low"] {
        let ok = judge(
            &exec,
            &format!("passed:\n  {severity}:\n    min: 1\n    max: 1\n"),
        );
        assert!(ok.passed, "{severity}: {:?}", ok.violations);
        let v = judge(&exec, &format!("passed:\n  {severity}:\n    min: 2\n"));
        assert_eq!(checks(&v), [format!("passed.{severity}.min")]);
    }
    // SAF reads `none` only under no_impact: a passed control of severity none is never bounded.
    assert!(judge(&exec, "passed:\n  none:\n    max: 0\n").passed);
}

#[test]
fn severity_tags_decide_the_bucket_but_only_in_lower_case() {
    let mut tagged = control("C1", 0.2, &[F]);
    tagged.tags.insert("severity".into(), json!("critical"));
    let mut capital = control("C2", 0.2, &[F]);
    capital.tags.insert("severity".into(), json!("High"));
    let v = judge(&single(vec![tagged, capital]), "{}");
    assert_eq!(v.counts.critical.failed, 1);
    // `High` is returned as written and SAF compares with `high`: the control is in no bucket.
    assert_eq!(
        (
            v.counts.high.failed,
            v.counts.low.failed,
            v.counts.total.failed
        ),
        (0, 0, 2)
    );
}

#[test]
fn plain_number_total_means_exactly_that_many() {
    let exec = single(vec![
        control("a", 0.5, &[P]),
        control("b", 0.5, &[P]),
        control("c", 0.5, &[F]),
    ]);
    assert!(judge(&exec, "passed:\n  total: 2\nfailed:\n  total: 1\n").passed);
    let v = judge(&exec, "passed:\n  total: 1\n");
    assert_eq!(
        v.violations[0].message,
        "passed.total: Threshold not met. Number of received total passed controls (2) is not equal to your set \
         threshold for the number of passed controls (1)"
    );
    assert_eq!(
        checks(&judge(&exec, "passed:\n  total: 3\n")),
        ["passed.total"],
        "more than expected fails too"
    );
    assert_eq!(
        checks(&judge(&exec, "no_impact:\n  total: 1\n")),
        ["no_impact.total"]
    );
    // A mapping is bounds, not exactness.
    assert!(judge(&exec, "passed:\n  total:\n    min: 1\n").passed);
}

#[test]
fn control_lists_must_match_exactly() {
    let exec = single(vec![
        control("a", 0.5, &[F]),
        control("b", 0.5, &[F]),
        control("c", 0.8, &[P]),
    ]);
    assert!(
        judge(&exec, "failed:\n  medium:\n    controls: [b, a]\n").passed,
        "order does not matter"
    );
    let v = judge(&exec, "failed:\n  medium:\n    controls: [a, z]\n");
    assert_eq!(
        v.violations[0].message,
        "Expected failed.medium.controls to contain z controls but it only contained [a, b]"
    );
    let v = judge(&exec, "failed:\n  medium:\n    controls: [a]\n");
    assert_eq!(
        v.violations[0].message,
        "Expected failed.medium.controls to contain 1 controls but it contained 2"
    );
    let v = judge(&exec, "failed:\n  high:\n    controls: [c]\n");
    assert_eq!(checks(&v), ["failed.high.controls", "failed.high.controls"]);
    assert_eq!(
        v.violations[0].message,
        "Expected failed.high.controls to contain c controls but it only contained [undefined]"
    );
    assert_eq!(
        v.violations[1].message,
        "Expected failed.high.controls to contain 1 controls but it contained undefined"
    );
    // As in SAF an empty list never passes: 0 is compared with `undefined` (or a positive length).
    let v = judge(&exec, "error:\n  medium:\n    controls: []\n");
    assert_eq!(
        v.violations[0].message,
        "Expected error.medium.controls to contain 0 controls but it contained undefined"
    );
    assert!(!judge(&exec, "failed:\n  medium:\n    controls: []\n").passed);
    // SAF checks membership and length only, so a repeated id can stand in for a missing one.
    assert!(judge(&exec, "failed:\n  medium:\n    controls: [a, a]\n").passed);
    let v = judge(&exec, "failed:\n  medium:\n    controls: [a, b, a]\n");
    assert_eq!(checks(&v), ["failed.medium.controls"]);
}

#[test]
fn not_applicable_controls_are_left_out_of_compliance() {
    let base = vec![control("a", 0.5, &[P]), control("b", 0.5, &[F])];
    let mut with_na = base.clone();
    with_na.extend([
        control("n1", 0.0, &[P]),
        control("n2", 0.0, &[F]),
        control("n3", 0.0, &[]),
    ]);
    assert_eq!(judge(&single(base), "{}").compliance, 50);
    let v = judge(
        &single(with_na),
        "no_impact:\n  none:\n    controls: [n1, n2, n3]\n",
    );
    assert_eq!((v.compliance, v.counts.total.no_impact), (50, 3));
    assert!(v.passed, "{:?}", v.violations);
}

#[test]
fn compliance_rounds_like_math_round() {
    let make = |passed: usize, failed: usize| {
        let mut controls: Vec<_> = (0..passed)
            .map(|i| control(&format!("p{i}"), 0.5, &[P]))
            .collect();
        controls.extend((0..failed).map(|i| control(&format!("f{i}"), 0.5, &[F])));
        judge(&single(controls), "{}").compliance
    };
    for (passed, failed, expected) in [
        (2, 1, 67),
        (1, 2, 33),
        (1, 7, 13),
        (3, 5, 38),
        (5, 3, 63),
        (1, 5, 17),
        (5, 1, 83),
        (0, 3, 0),
        (0, 0, 0),
        (4, 0, 100),
    ] {
        assert_eq!(
            make(passed, failed),
            expected,
            "{passed}/{}",
            passed + failed
        );
    }
    // 2/3 is 66.67: min 67 passes, min 68 fails.
    let two_thirds = single(vec![
        control("a", 0.5, &[P]),
        control("b", 0.5, &[P]),
        control("c", 0.5, &[S]),
    ]);
    assert!(judge(&two_thirds, "compliance:\n  min: 67\n").passed);
    assert_eq!(
        checks(&judge(&two_thirds, "compliance:\n  min: 68\n")),
        ["compliance.min"]
    );
    assert_eq!(
        checks(&judge(&two_thirds, "compliance:\n  max: 66\n")),
        ["compliance.max"]
    );
}

#[test]
fn zero_compliance_bounds_are_not_checked_as_in_saf() {
    let exec = single(vec![control("a", 0.5, &[P])]);
    // `max && compliance > max` is false for max 0.
    assert!(judge(&exec, "compliance:\n  max: 0\n").passed);
    assert!(judge(&exec, "compliance:\n  min: 0\n").passed);
}

#[test]
fn only_the_first_profile_counts() {
    let first = profile("first", vec![control("a", 0.5, &[P])]);
    let second = profile(
        "second",
        vec![control("b", 0.5, &[F]), control("c", 0.5, &[E])],
    );
    let v = judge(
        &exec(vec![first, second]),
        "failed:\n  total:\n    max: 0\nerror:\n  total: 0\n",
    );
    assert_eq!(
        (v.compliance, v.counts.total.passed, v.counts.total.failed),
        (100, 1, 0)
    );
    assert!(v.passed);
}

#[test]
fn every_violation_is_reported_not_only_the_first() {
    let exec = single(vec![
        control("a", 0.95, &[F]),
        control("b", 0.5, &[E]),
        control("c", 0.2, &[S]),
    ]);
    let v = judge(
        &exec,
        "compliance:\n  min: 50\nfailed:\n  total: 0\n  critical:\n    max: 0\nerror:\n  total:\n    max: 0\n\
         skipped:\n  low:\n    max: 0\n",
    );
    assert_eq!(
        checks(&v),
        [
            "compliance.min",
            "failed.total",
            "error.total.max",
            "failed.critical.max",
            "skipped.low.max"
        ]
    );
}

#[test]
fn files_saf_crashes_on_are_errors() {
    assert!(matches!(
        evaluate(&exec(vec![]), &Threshold::default()),
        Err(HdfError::NoProfiles)
    ));
    let mut numeric = control("C1", 0.5, &[P]);
    numeric.tags.insert("severity".into(), json!(3));
    assert!(matches!(
        evaluate(&single(vec![numeric]), &Threshold::default()),
        Err(HdfError::InvalidTag { .. })
    ));
    let mut nist = control("C1", 0.5, &[P]);
    nist.tags.insert("nist".into(), json!(["AC-6", 7]));
    // Anywhere in the file, not only in the first profile.
    let bad = exec(vec![
        profile("p", vec![control("C0", 0.5, &[P])]),
        profile("q", vec![nist]),
    ]);
    match evaluate(&bad, &Threshold::default()) {
        Err(e @ HdfError::InvalidTag { .. }) => assert!(e.to_string().contains("`nist`"), "{e}"),
        other => panic!("expected InvalidTag, got {other:?}"),
    }
}
