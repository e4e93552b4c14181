//! Everything the writer emits validates against MITRE's `exec-json.json`; the schema check
//! itself rejects the known-invalid sample.

use keyhole_hdf::{Execution, HdfError, Reference};
use proptest::prelude::*;
use serde_json::Value;

use crate::strategies;
use crate::support::{assert_schema_valid, control, read_fixture, schema_errors, single};

#[test]
fn sample_is_schema_valid_and_its_round_trip_too() {
    let text = read_fixture("samples/sample-exec.json");
    assert!(schema_errors(&serde_json::from_str(&text).unwrap()).is_empty());
    let exec = Execution::from_json_str(&text).unwrap();
    assert_schema_valid(&exec.to_json_pretty().unwrap());
    assert_schema_valid(&exec.to_json().unwrap());
}

#[test]
fn invalid_sample_is_rejected_by_the_schema_and_by_the_reader() {
    let text = read_fixture("samples/invalid-exec.json");
    let value: Value = serde_json::from_str(&text).unwrap();
    let errors = schema_errors(&value).join("\n");
    // The sample lacks `platform.release`, has a result without `start_time` and a `pending` status.
    assert!(errors.contains("release"), "{errors}");
    assert!(errors.contains("start_time"), "{errors}");
    assert!(errors.contains("pending"), "{errors}");
    assert!(matches!(
        Execution::from_json_str(&text),
        Err(HdfError::ReadJson { .. })
    ));
}

/// Values `validate` refuses are exactly ones the schema refuses: serialising them anyway
/// produces schema-invalid JSON.
#[test]
fn what_validate_refuses_the_schema_refuses_too() {
    let mut out_of_range = single(vec![control("C1", 1.5, &[])]);
    let mut empty_ref = single(vec![control("C1", 0.5, &[])]);
    empty_ref.profiles[0].controls[0]
        .refs
        .push(Reference::default());
    let mut not_a_number = single(vec![control("C1", f64::NAN, &[])]);
    for (exec, at) in [
        (&mut out_of_range, "/profiles/0/controls/0/impact"),
        (&mut empty_ref, "/profiles/0/controls/0/refs/0"),
        (&mut not_a_number, "/profiles/0/controls/0/impact"),
    ] {
        match exec.to_json() {
            Err(HdfError::InvalidExecution { path, .. }) => assert_eq!(path, at),
            other => panic!("expected InvalidExecution at {at}, got {other:?}"),
        }
        let forced = serde_json::to_value(&*exec).unwrap();
        assert!(
            !schema_errors(&forced).is_empty(),
            "schema accepted what validate refused at {at}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn generated_executions_write_schema_valid_json_and_read_back_equal(exec in strategies::execution()) {
        let pretty = exec.to_json_pretty().unwrap();
        let compact = exec.to_json().unwrap();
        let value: Value = serde_json::from_str(&pretty).unwrap();
        let errors = schema_errors(&value);
        prop_assert!(errors.is_empty(), "{}", errors.join("\n"));
        prop_assert_eq!(&value, &serde_json::from_str::<Value>(&compact).unwrap());
        prop_assert_eq!(Execution::from_json_str(&pretty).unwrap(), exec);
    }
}
