//! Robustness: no input makes the reader, the threshold parser or `evaluate` panic.

use keyhole_hdf::{Execution, Threshold, evaluate};
use proptest::prelude::*;
use serde_json::Value;

use crate::strategies::json_value;
use crate::support::read_fixture;

/// Every JSON pointer to a value inside `value`.
fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                pointers(
                    v,
                    format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                pointers(v, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
    out.push(at);
}

fn sample() -> (Value, Vec<String>) {
    let value: Value = serde_json::from_str(&read_fixture("samples/sample-exec.json")).unwrap();
    let mut all = Vec::new();
    pointers(&value, String::new(), &mut all);
    (value, all)
}

/// Documents built from threshold vocabulary, so that the parser's paths are reached.
fn threshold_like() -> impl Strategy<Value = Value> {
    let word = prop::sample::select(vec![
        "compliance",
        "min",
        "max",
        "total",
        "controls",
        "passed",
        "failed",
        "skipped",
        "error",
        "no_impact",
        "critical",
        "high",
        "medium",
        "low",
        "none",
        "passed.total",
        "failed.critical.max",
        "compliance.min",
        "passed.high.controls",
        "no_impact.none",
        "a.b.c.d",
        "",
    ]);
    let leaf = prop_oneof![
        (-3i32..120).prop_map(Value::from),
        Just(Value::from(1.5)),
        Just(Value::Null),
        Just(Value::from("C1")),
        Just(serde_json::json!(["C1", "C2"])),
        Just(serde_json::json!([])),
    ];
    leaf.prop_recursive(3, 40, 6, move |inner| {
        prop::collection::vec((word.clone(), inner), 0..6)
            .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
    })
}

const THRESHOLD: &str = "compliance:\n  min: 10\npassed:\n  total:\n    min: 1\nfailed:\n  medium:\n    controls: [C2]\n";

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn reader_never_panics_on_arbitrary_json(value in json_value()) {
        let _ = Execution::from_json_str(&value.to_string());
    }

    #[test]
    fn reader_never_panics_on_arbitrary_text(text in ".{0,64}") {
        let _ = Execution::from_json_str(&text);
        let _ = Threshold::from_yaml_str(&text);
    }

    /// Replacing one value deep inside a real file reaches the nested deserialisers; whatever
    /// is read can be judged without panicking.
    #[test]
    fn mutated_sample_is_read_or_refused_and_judged_without_panic(pick in any::<prop::sample::Index>(), replacement in json_value()) {
        let (mut value, all) = sample();
        let at = &all[pick.index(all.len())];
        if at.is_empty() {
            value = replacement;
        } else if let Some(slot) = value.pointer_mut(at) {
            *slot = replacement;
        }
        if let Ok(exec) = Execution::from_json_str(&value.to_string()) {
            let _ = evaluate(&exec, &Threshold::from_yaml_str(THRESHOLD).unwrap());
            let _ = exec.to_json();
        }
    }

    /// Threshold documents of any shape, written as YAML.
    #[test]
    fn threshold_parser_never_panics_on_arbitrary_yaml(value in prop_oneof![json_value(), threshold_like()]) {
        let yaml = serde_norway::to_string(&value).unwrap();
        if let Ok(threshold) = Threshold::from_yaml_str(&yaml) {
            let exec = Execution::from_json_str(&read_fixture("samples/sample-exec.json")).unwrap();
            let _ = evaluate(&exec, &threshold);
        }
    }
}
