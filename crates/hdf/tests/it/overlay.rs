//! Overlays and repeated control ids, resolved as inspecjs does before SAF counts.

use keyhole_hdf::{HdfError, ResultStatus, Threshold, evaluate};

use crate::support::{control, exec, profile};

use ResultStatus::{Failed as F, Passed as P};

#[test]
fn an_overlay_counts_with_the_status_and_severity_of_the_base_control() {
    // InSpec writes the wrapper first; its controls have no results of their own here.
    let wrapper = profile(
        "wrapper",
        vec![control("C1", 0.5, &[]), control("C2", 0.5, &[])],
    );
    let mut base = profile(
        "base",
        vec![control("C1", 0.9, &[F]), control("C2", 0.5, &[P])],
    );
    base.parent_profile = Some("wrapper".into());
    let v = evaluate(&exec(vec![wrapper, base]), &Threshold::default()).unwrap();
    assert_eq!(
        (
            v.counts.total.failed,
            v.counts.critical.failed,
            v.counts.total.passed
        ),
        (1, 1, 1)
    );
    assert_eq!(v.compliance, 50);
}

#[test]
fn a_later_standalone_profile_with_the_same_ids_takes_the_first_profiles_controls_away() {
    // Both populated: the first is the "base", the second extends it, so the first profile's
    // control is extended and SAF skips it.
    let first = profile(
        "a",
        vec![control("C1", 0.5, &[P]), control("C2", 0.5, &[F])],
    );
    let second = profile("b", vec![control("C1", 0.5, &[F])]);
    let v = evaluate(&exec(vec![first, second]), &Threshold::default()).unwrap();
    assert_eq!(
        (v.counts.total.passed, v.counts.total.failed),
        (0, 1),
        "only C2 is counted"
    );
}

#[test]
fn an_empty_control_takes_the_status_of_a_populated_one_with_the_same_id() {
    let first = profile("a", vec![control("C1", 0.5, &[])]);
    let second = profile("b", vec![control("C1", 0.5, &[F])]);
    let v = evaluate(&exec(vec![first, second]), &Threshold::default()).unwrap();
    assert_eq!(
        v.counts.total.failed, 1,
        "not Profile Error for the empty control"
    );
}

#[test]
fn repeated_ids_within_the_first_profile_count_once_per_unextended_copy() {
    let v = evaluate(
        &exec(vec![profile(
            "a",
            vec![control("C1", 0.5, &[P]), control("C1", 0.5, &[F])],
        )]),
        &Threshold::default(),
    )
    .unwrap();
    // The first populated copy is the base; the second extends it and counts with its status.
    assert_eq!((v.counts.total.passed, v.counts.total.failed), (1, 0));
}

#[test]
fn a_profile_that_is_its_own_parent_is_a_cycle_when_a_control_reaches_it() {
    let mut looped = profile(
        "a",
        vec![control("C1", 0.5, &[P]), control("C1", 0.5, &[F])],
    );
    looped.parent_profile = Some("a".into());
    assert!(matches!(
        evaluate(&exec(vec![looped]), &Threshold::default()),
        Err(HdfError::OverlayCycle { .. })
    ));
    // With unique ids every control extends itself and nothing is counted (SAF does not crash).
    let mut single_loop = profile("a", vec![control("C1", 0.5, &[P])]);
    single_loop.parent_profile = Some("a".into());
    let v = evaluate(&exec(vec![single_loop]), &Threshold::default()).unwrap();
    assert_eq!(v.counts.total.passed, 0);
}
