//! Threshold files: nested and flattened forms and SAF's quirks in reading them.

use keyhole_hdf::{HdfError, Threshold};

fn parse(text: &str) -> Threshold {
    Threshold::from_yaml_str(text).unwrap_or_else(|e| panic!("{text}\n{e}"))
}

#[test]
fn nested_and_flattened_forms_are_equivalent() {
    let pairs = [
        (
            "compliance:\n  min: 80\n  max: 95\n",
            "compliance.min: 80\ncompliance.max: 95\n",
        ),
        ("passed:\n  total:\n    min: 3\n", "passed.total.min: 3\n"),
        ("failed:\n  total: 0\n", "failed.total: 0\n"),
        (
            "failed:\n  critical:\n    max: 0\n  high:\n    max: 1\n",
            "failed.critical.max: 0\nfailed.high.max: 1\n",
        ),
        (
            "no_impact:\n  none:\n    min: 2\nerror:\n  low:\n    max: 1.5\n",
            "no_impact.none.min: 2\nerror.low.max: 1.5\n",
        ),
    ];
    for (nested, flat) in pairs {
        let (n, f) = (parse(nested), parse(flat));
        assert_eq!(n, f, "{nested} vs {flat}");
        assert!(n.ignored.is_empty(), "{nested}: {:?}", n.ignored);
    }
    let t = parse("passed.total.min: 3\ncompliance.min: 80\n");
    assert_eq!(
        (t.passed.total.min, t.compliance.min),
        (Some(3.0), Some(80.0))
    );
}

#[test]
fn flattened_three_part_keys_replace_earlier_ones_with_the_same_prefix() {
    // SAF's unflatten assigns `ret.passed.critical = {max: 5}`, dropping the min.
    let t = parse("passed.critical.min: 1\npassed.critical.max: 5\n");
    assert_eq!(
        (t.passed.critical.min, t.passed.critical.max),
        (None, Some(5.0))
    );
    assert_eq!(t.ignored, ["passed.critical.min"]);
    // Different prefixes do not interfere.
    let t = parse("passed.critical.min: 1\npassed.high.max: 5\n");
    assert_eq!(
        (t.passed.critical.min, t.passed.high.max),
        (Some(1.0), Some(5.0))
    );
}

#[test]
fn a_file_with_any_non_number_value_is_read_nested() {
    // The `controls` list makes the file non-flattened: lodash still finds the dotted keys as
    // literal keys, but SAF reads compliance as `thresholds.compliance.min`, which is absent.
    let t = parse("compliance.min: 80\nfailed.total.max: 0\npassed.high.controls:\n  - C1\n");
    assert_eq!(t.compliance.min, None);
    assert_eq!(t.failed.total.max, Some(0.0));
    assert_eq!(
        t.passed.high.controls.as_deref(),
        Some(&["C1".to_owned()][..])
    );
    assert_eq!(t.ignored, ["compliance.min"]);
}

#[test]
fn a_literal_dotted_key_wins_over_the_nested_spelling() {
    let t = parse("failed.total.max: 3\nfailed:\n  total:\n    max: 1\n");
    assert_eq!(t.failed.total.max, Some(3.0));
    assert_eq!(
        t.ignored,
        ["failed.total.max"],
        "the nested one is shadowed"
    );
}

#[test]
fn total_as_plain_number_is_exact_and_as_mapping_is_bounds() {
    let t = parse(
        "passed:\n  total: 4\nfailed:\n  total:\n    min: 1\n    max: 2\nno_impact:\n  total: 0\n",
    );
    assert_eq!(
        (t.passed.total.exact, t.passed.total.min, t.passed.total.max),
        (Some(4.0), None, None)
    );
    assert_eq!(
        (t.failed.total.exact, t.failed.total.min, t.failed.total.max),
        (None, Some(1.0), Some(2.0))
    );
    assert_eq!(t.no_impact.total.exact, Some(0.0));
}

#[test]
fn entries_saf_never_reads_are_listed_as_ignored() {
    let t = parse(
        "compliance: 80\nno_impact:\n  total:\n    max: 1\npassed:\n  none:\n    min: 1\n  critical: 3\nfaild:\n  total:\n    max: 0\n",
    );
    assert_eq!(
        t,
        Threshold {
            ignored: t.ignored.clone(),
            ..Threshold::default()
        },
        "nothing is checked"
    );
    assert_eq!(
        t.ignored,
        [
            "compliance",
            "no_impact.total.max",
            "passed.none.min",
            "passed.critical",
            "faild.total.max"
        ]
    );
}

#[test]
fn generated_sample_threshold_reads_like_saf() {
    let t = parse(&crate::support::read_fixture(
        "samples/generated-threshold.yaml",
    ));
    assert_eq!(t.compliance.min, Some(40.0));
    assert_eq!(
        (t.passed.total.min, t.failed.total.max, t.error.critical.max),
        (Some(2.0), Some(1.0), Some(1.0))
    );
    assert_eq!(t.no_impact.none.max, Some(1.0));
    // `no_impact.total.max` is written by `saf generate threshold` but not read by `saf validate`.
    assert_eq!(t.ignored, ["no_impact.total.max"]);
}

#[test]
fn malformed_files_are_refused_with_a_reason() {
    let shape = |text: &str| {
        matches!(
            Threshold::from_yaml_str(text),
            Err(HdfError::ThresholdShape { .. })
        )
    };
    assert!(shape(""), "empty file");
    assert!(shape("# only a comment\n"));
    assert!(shape("- compliance\n"), "a list");
    assert!(shape("80\n"), "a scalar");
    assert!(matches!(
        Threshold::from_yaml_str("compliance: {min: 80"),
        Err(HdfError::ThresholdYaml { .. })
    ));

    for (text, path, found) in [
        ("compliance:\n  min: '80'\n", "compliance.min", "a string"),
        (
            "failed:\n  total:\n    max:\n",
            "failed.total.max",
            "empty (null)",
        ),
        (
            "failed:\n  critical:\n    max: true\n",
            "failed.critical.max",
            "a boolean",
        ),
        ("passed:\n  total: [1]\n", "passed.total", "a list"),
        (
            "passed:\n  high:\n    controls: C1\n",
            "passed.high.controls",
            "a string",
        ),
        (
            "passed:\n  high:\n    controls: [C1, 7]\n",
            "passed.high.controls",
            "a list holding a number",
        ),
        (
            "passed:\n  high:\n    min:\n      a: 1\n",
            "passed.high.min",
            "a mapping",
        ),
    ] {
        match Threshold::from_yaml_str(text) {
            Err(e @ HdfError::ThresholdValue { .. }) => {
                let message = e.to_string();
                assert!(
                    message.contains(&format!("`{path}` is {found}")),
                    "{text}: {message}"
                );
            }
            other => panic!("{text}: expected ThresholdValue, got {other:?}"),
        }
    }
}

#[test]
fn an_empty_mapping_checks_nothing() {
    assert_eq!(parse("{}\n"), Threshold::default());
}
