//! Shared helpers: the repository's `fixtures/`, the HDF schema validator, builders and a
//! seeded RNG.

use std::path::PathBuf;
use std::sync::OnceLock;

use keyhole_hdf::{
    Control, ControlResult, Execution, Group, Platform, Profile, ResultStatus, SourceLocation,
    SupportedPlatform,
};
use serde_json::{Value, json};

/// The repository's `fixtures/` (HDF schema and samples; sources in `fixtures/README.md`).
pub(crate) fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

/// The text of `fixtures/<relative>`.
pub(crate) fn read_fixture(relative: &str) -> String {
    let path = fixtures_dir().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn exec_schema() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        let schema: Value = serde_json::from_str(&read_fixture("hdf-schema/exec-json.json"))
            .expect("schema is JSON");
        jsonschema::validator_for(&schema).expect("exec-json.json compiles")
    })
}

/// Schema errors of `instance` against `exec-json.json`, one line each (empty when valid).
pub(crate) fn schema_errors(instance: &Value) -> Vec<String> {
    exec_schema()
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

pub(crate) fn assert_schema_valid(json_text: &str) {
    let value: Value = serde_json::from_str(json_text).expect("writer output is JSON");
    let errors = schema_errors(&value);
    assert!(
        errors.is_empty(),
        "writer output violates exec-json.json:\n{}",
        errors.join("\n")
    );
}

pub(crate) const START: &str = "2026-11-26T13:00:00+00:00";

pub(crate) fn result(status: Option<ResultStatus>) -> ControlResult {
    ControlResult {
        status,
        code_desc: "test".into(),
        start_time: START.into(),
        run_time: Some(0.001),
        ..Default::default()
    }
}

/// A control shaped like InSpec output, with one result per status given.
pub(crate) fn control(id: &str, impact: f64, statuses: &[ResultStatus]) -> Control {
    let mut c = Control::new(id, impact);
    c.title = Some(format!("title {id}"));
    c.tags.insert("nist".into(), json!(["AC-6"]));
    c.source_location = SourceLocation {
        reference: Some("controls/x.rb".into()),
        line: Some(1.into()),
        ..Default::default()
    };
    c.results = statuses.iter().map(|s| result(Some(*s))).collect();
    c
}

pub(crate) fn profile(name: &str, controls: Vec<Control>) -> Profile {
    let mut p = Profile::new(name, "0".repeat(64));
    p.supports = vec![SupportedPlatform {
        platform_family: Some("linux".into()),
        ..Default::default()
    }];
    p.groups = vec![Group {
        id: "controls/x.rb".into(),
        controls: controls.iter().map(|c| c.id.clone()).collect(),
        ..Default::default()
    }];
    p.status = Some("loaded".into());
    p.controls = controls;
    p
}

pub(crate) fn exec(profiles: Vec<Profile>) -> Execution {
    let platform = Platform {
        name: "debian".into(),
        release: "12".into(),
        ..Default::default()
    };
    let mut e = Execution::new(platform, "6.8.24");
    e.profiles = profiles;
    e
}

/// One profile holding `controls`.
pub(crate) fn single(controls: Vec<Control>) -> Execution {
    exec(vec![profile("p", controls)])
}

/// SplitMix64: a tiny, seeded, dependency-free generator for reproducible corpora.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub(crate) fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}
