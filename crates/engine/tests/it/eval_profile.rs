//! The profile format: valid profiles load, invalid ones are refused with the file, line and
//! field of the problem, and no input at all makes the reader panic.

use keyhole_engine::{EngineError, InputType, Inputs, Profile};
use proptest::prelude::*;

/// `(file, line, field, problem)` of a profile error, or a panic naming what came instead.
fn err(text: &str) -> (String, usize, String, String) {
    match Profile::from_yaml_str(text, "p.yaml") {
        Err(EngineError::Profile {
            file,
            line,
            field,
            problem,
        }) => (file, line, field, problem),
        other => panic!("expected a profile error, got {other:?}"),
    }
}

const MINIMAL: &str = "name: p\ncontrols:\n  - id: C-1\n    impact: 0.5\n    checks:\n      - file: /etc/passwd\n        mode: {max: '0644'}\n";

#[test]
fn a_minimal_profile_loads_with_its_defaults() {
    let p = Profile::from_yaml_str(MINIMAL, "p.yaml").unwrap();
    assert_eq!(p.name(), "p");
    assert_eq!(p.control_ids().collect::<Vec<_>>(), ["C-1"]);
    assert_eq!(p.sha256().len(), 64);
}

#[test]
fn errors_name_the_file_line_and_field() {
    let cases: &[(&str, usize, &str, &str)] = &[
        // (profile, line, field, words of the problem)
        ("name: p\n", 1, "controls", "required"),
        (
            "name: p\nbogus: 1\ncontrols: []\n",
            2,
            "bogus",
            "unknown key",
        ),
        ("name: p\ncontrols: []\n", 2, "controls", "no controls"),
        (
            "name: p\ncontrols:\n  - id: C-1\n    impact: 0.5\n    checks:\n      - file: /etc/passwd\n        mode: {max: '0844'}\n",
            7,
            "controls[0].checks[0].mode.max",
            "octal",
        ),
        (
            "name: p\ncontrols:\n  - id: C-1\n    impact: 1.5\n    checks: []\n",
            4,
            "controls[0].impact",
            "0.0 to 1.0",
        ),
        (
            "name: p\ncontrols:\n  - id: C-1\n    impact: 0.5\n    checks:\n      - file: /etc/passwd\n        colour: red\n",
            7,
            "controls[0].checks[0].colour",
            "not a field of `file`",
        ),
        (
            "name: p\ncontrols:\n  - id: C-1\n    impact: 0.5\n    checks:\n      - passwd: ~\n        user: {matches: '('}\n",
            7,
            "controls[0].checks[0].user.matches",
            "regular expression",
        ),
        (
            "name: p\ncontrols:\n  - id: C-1\n    impact: 0.5\n    checks:\n      - passwd: ~\n        shell: {in: '${shells}'}\n",
            7,
            "controls[0].checks[0].shell.in",
            "unknown input `shells`",
        ),
        (
            "name: p\ncontrols:\n  - id: C-1\n    impact: 0.5\n    checks:\n      - file: etc/passwd\n        exists: true\n",
            6,
            "controls[0].checks[0].file",
            "absolute",
        ),
        (
            "name: p\ncontrols:\n  - id: C-1\n    impact: 0.5\n    checks:\n      - mode: '0644'\n        file: /x\n",
            6,
            "controls[0].checks[0]",
            "starts with its resource",
        ),
        (
            "name: p\ncontrols:\n  - id: C-1\n    impact: 0.5\n    checks:\n      - file: /x\n",
            6,
            "controls[0].checks[0]",
            "no condition",
        ),
        (
            "name: p\ncontrols:\n  - id: C-1\n    impact: 0.5\n    tags: {severity: high}\n    checks:\n      - file: /x\n        exists: true\n",
            5,
            "controls[0].tags.severity",
            "disagrees",
        ),
        (
            "name: p\ncontrols:\n  - id: C-1\n    impact: 0.5\n    tags: {nist: [access-control]}\n    checks:\n      - file: /x\n        exists: true\n",
            5,
            "controls[0].tags.nist",
            "NIST",
        ),
        (
            "name: p\ncontrols:\n  - id: C-1\n    impact: 0.5\n    checks:\n      - file: /x\n        exists: true\n  - id: C-1\n    impact: 0.5\n    checks:\n      - file: /x\n        exists: true\n",
            8,
            "controls[1].id",
            "already used on line 3",
        ),
        (
            "name: p\ncontrols:\n  - id: C-1\n    impact: 0.5\n    checks:\n      - passwd: ~\n        where: {uid: 0}\n        optional: true\n",
            8,
            "controls[0].checks[0].optional",
            "collection",
        ),
        (
            "name: p\ncontrols:\n  - id: C-1\n    impact: 0.5\n    checks:\n      - files: {find: everything}\n        exists: false\n",
            6,
            "controls[0].checks[0].files.find",
            "unknown walk",
        ),
        (
            "name: p\ninputs:\n  - name: n\n    type: integer\n    value: many\ncontrols: []\n",
            5,
            "inputs[0].value",
            "whole number",
        ),
        ("name: p\ncontrols: [\n", 3, "(document)", "syntax"),
        (
            "name: &a p\ntitle: *a\ncontrols: []\n",
            2,
            "(document)",
            "aliases",
        ),
    ];
    for (text, line, field, words) in cases {
        let (file, l, f, problem) = err(text);
        assert_eq!(file, "p.yaml");
        assert_eq!((l, f.as_str()), (*line, *field), "{text}\n=> {problem}");
        assert!(
            problem.contains(words),
            "{problem:?} should mention {words:?}"
        );
    }
}

#[test]
fn the_error_message_reads_file_colon_line() {
    let e = Profile::from_yaml_str("name: p\nbogus: 1\ncontrols: []\n", "dir/p.yaml").unwrap_err();
    assert!(
        e.to_string()
            .starts_with("dir/p.yaml:2: `bogus`: unknown key"),
        "{e}"
    );
}

const WITH_INPUTS: &str = "name: p
inputs:
  - name: shells
    type: list
    value: [/sbin/nologin]
  - name: max_mode
    type: string
    value: '0644'
  - name: limit
    type: integer
    value: 1
  - name: strict
    type: boolean
    value: true
  - name: pattern
    type: string
    value: '^root$'
controls:
  - id: C-1
    impact: 0.5
    checks:
      - passwd: ~
        shell: {in: '${shells}'}
        user: {matches: '${pattern}'}
        count: {max: '${limit}'}
      - file: /etc/passwd
        mode: {max: '${max_mode}'}
";

#[test]
fn inputs_are_typed_and_overridable() {
    let p = Profile::from_yaml_str(WITH_INPUTS, "p.yaml").unwrap();
    let kinds: Vec<(&str, InputType)> = p.inputs().iter().map(|d| (d.name(), d.kind())).collect();
    assert_eq!(kinds[0], ("shells", InputType::List));
    let i = Inputs::with_overrides(
        &p,
        [
            "shells=/bin/false, /sbin/nologin",
            "limit=0o7",
            "strict=false",
            "max_mode=0600",
        ],
    )
    .unwrap();
    assert_eq!(
        i.get("shells").unwrap(),
        serde_json::json!(["/bin/false", "/sbin/nologin"])
    );
    assert_eq!(i.get("limit").unwrap(), serde_json::json!(7));
    assert_eq!(i.get("strict").unwrap(), serde_json::json!(false));
    let flow = Inputs::with_overrides(&p, ["shells=[a, \"b,c\"]"]).unwrap();
    assert_eq!(flow.get("shells").unwrap(), serde_json::json!(["a", "b,c"]));
    assert_eq!(
        Inputs::with_overrides(&p, ["shells="])
            .unwrap()
            .get("shells")
            .unwrap(),
        serde_json::json!([])
    );
}

#[test]
fn bad_overrides_name_the_input() {
    let p = Profile::from_yaml_str(WITH_INPUTS, "p.yaml").unwrap();
    for (o, name, words) in [
        ("nope=1", "nope", "declares no such input"),
        ("limit=many", "limit", "whole number"),
        ("strict=yes", "strict", "boolean"),
        ("pattern=(", "pattern", "regular expression"),
        ("max_mode=0999", "max_mode", "octal"),
        ("shells", "shells", "NAME=VALUE"),
    ] {
        match Inputs::with_overrides(&p, [o]) {
            Err(EngineError::Input { name: n, problem }) => {
                assert_eq!(n, name, "{o}");
                assert!(problem.contains(words), "{o}: {problem}");
            }
            other => panic!("{o}: expected an input error, got {other:?}"),
        }
    }
}

/// Scanning many targets concurrently shares one profile, its inputs and waivers.
#[test]
fn profiles_inputs_and_waivers_are_shareable_across_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Profile>();
    shareable::<Inputs>();
    shareable::<keyhole_engine::Waivers>();
    shareable::<EngineError>();
}

#[test]
fn the_builtin_profile_loads_and_has_enough_controls() {
    let p = Profile::builtin("container-baseline").unwrap();
    let ids: Vec<&str> = p.control_ids().collect();
    assert!(ids.len() >= 60, "only {} controls", ids.len());
    assert!(matches!(
        Profile::builtin("nope"),
        Err(EngineError::UnknownBuiltin { .. })
    ));
}

#[test]
fn a_profile_spec_is_a_builtin_name_or_a_file() {
    let default = Profile::resolve(keyhole_engine::DEFAULT_PROFILE).unwrap();
    let builtin = Profile::builtin("container-baseline").unwrap();
    assert_eq!(default.name(), builtin.name());
    assert!(default.control_ids().eq(builtin.control_ids()));
    assert!(matches!(
        Profile::resolve("builtin:nope"),
        Err(EngineError::UnknownBuiltin { name, .. }) if name == "nope"
    ));
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("resolve");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("baseline.yaml");
    std::fs::write(&file, builtin_text()).unwrap();
    let from_file = Profile::resolve(file.to_str().unwrap()).unwrap();
    assert!(from_file.control_ids().eq(builtin.control_ids()));
    // Without the prefix a built-in name is a (missing) file, never the built-in profile.
    assert!(matches!(
        Profile::resolve("container-baseline"),
        Err(EngineError::Read { .. })
    ));
}

/// The built-in profile's text, to mutate.
fn builtin_text() -> &'static str {
    include_str!("../../profiles/container-baseline.yaml")
}

fn assert_located(text: &str, result: Result<Profile, EngineError>) -> Result<(), TestCaseError> {
    if let Err(e) = result {
        match e {
            EngineError::Profile {
                file,
                line,
                field,
                problem,
            } => {
                prop_assert_eq!(file, "fuzz.yaml");
                prop_assert!(
                    line >= 1 && line <= text.lines().count() + 1,
                    "line {} of {}",
                    line,
                    text.lines().count()
                );
                prop_assert!(!field.is_empty());
                prop_assert!(!problem.is_empty());
            }
            other => prop_assert!(false, "not a profile error: {:?}", other),
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_text_never_panics_and_errors_are_located(text in any::<String>()) {
        let r = Profile::from_yaml_str(&text, "fuzz.yaml");
        assert_located(&text, r)?;
    }

    #[test]
    fn yaml_shaped_noise_never_panics(text in "([a-z_]{1,8}: ?|- |  |\\{|\\}|\\[|\\]|, |'|\"|\\$\\{x\\}|0o7|~|\n){0,60}") {
        let r = Profile::from_yaml_str(&text, "fuzz.yaml");
        assert_located(&text, r)?;
    }

    #[test]
    fn mutated_builtin_profiles_fail_located(at in 0usize..60_000, cut in 0usize..400, insert in "[ :\\-\\[\\]{}'a-z0-9\n]{0,6}") {
        let base = builtin_text();
        let start = at % base.len();
        let end = (start + cut).min(base.len());
        // Rejected, not passed: proptest fails the test when too many cases are rejected.
        prop_assume!(base.is_char_boundary(start) && base.is_char_boundary(end));
        let text = format!("{}{}{}", &base[..start], insert, &base[end..]);
        let r = Profile::from_yaml_str(&text, "fuzz.yaml");
        assert_located(&text, r)?;
    }
}

fn profile_schema() -> jsonschema::Validator {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/profile.schema.json"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    let schema: serde_json::Value = serde_json::from_str(&text).expect("the schema is JSON");
    jsonschema::validator_for(&schema).expect("the profile schema compiles")
}

fn schema_errors(v: &jsonschema::Validator, yaml: &str) -> Vec<String> {
    let doc: serde_json::Value = serde_norway::from_str(yaml).expect("YAML");
    v.iter_errors(&doc)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect()
}

/// The documented JSON Schema accepts the built-in profile and refuses what the reader refuses.
#[test]
fn the_json_schema_agrees_with_the_reader() {
    let v = profile_schema();
    let errors = schema_errors(&v, builtin_text());
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    assert!(schema_errors(&v, WITH_INPUTS).is_empty());
    for bad in [
        "name: p\ncontrols:\n  - id: C-1\n    impact: 0.5\n    checks:\n      - file: /x\n        colour: red\n",
        "name: p\ncontrols:\n  - id: C-1\n    impact: 0.5\n    checks:\n      - file: /x\n        mode: {most: '0644'}\n",
        "name: p\ncontrols:\n  - id: C-1\n    impact: 2\n    checks:\n      - file: /x\n        exists: true\n",
        "name: p\ncontrols:\n  - id: C-1\n    impact: 0.5\n    checks:\n      - files: {find: everything}\n        exists: false\n",
        "name: p\ncontrols:\n  - id: C-1\n    impact: 0.5\n    checks:\n      - passwd: ~\n        where: {colour: red}\n        exists: false\n",
    ] {
        assert!(
            !schema_errors(&v, bad).is_empty(),
            "the schema accepted:\n{bad}"
        );
        assert!(
            Profile::from_yaml_str(bad, "p.yaml").is_err(),
            "the reader accepted:\n{bad}"
        );
    }
}
