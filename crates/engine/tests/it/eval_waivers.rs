//! Waivers: an active waiver skips its control with the justification in HDF `waiver_data`
//! (as Heimdall expects it); an expired one is ignored and listed; bad waiver files are refused
//! with file, line and field.

use keyhole_engine::{EngineError, Inputs, Profile, Waivers, evaluate, gather};
use keyhole_hdf::ControlStatus;
use keyhole_hdf::WaiverFlag;

use crate::eval_baseline::bad;
use crate::eval_fixture::{assert_valid_hdf, now};

const WAIVERS: &str = "
KH-TOOL-002:
  justification: curl is used by the health check (SEC-123)
  expiration_date: 2027-01-31
KH-TOOL-006:
  justification: the entrypoint is a shell script
  expiration_date: 2026-11-01
KH-SUID-001:
  justification: tracked in SEC-124
  expiration_date: 2027-03-01
  run: true
KH-NOPE-999:
  justification: typo
  expiration_date: 2027-01-01
";

#[test]
fn active_waivers_skip_expired_ones_are_ignored_and_listed() {
    let p = Profile::builtin("container-baseline").unwrap();
    let w = Waivers::from_yaml_str(WAIVERS, "w.yaml").unwrap();
    let inputs = Inputs::defaults(&p);
    let fx = bad();
    let exec = evaluate(&p, &inputs, &gather(&p, &inputs, &fx), &w, now());
    assert_valid_hdf(&exec);
    let c = |id: &str| {
        exec.profiles[0]
            .controls
            .iter()
            .find(|c| c.id == id)
            .unwrap()
    };

    let waived = c("KH-TOOL-002");
    assert_eq!(waived.status(), ControlStatus::NotApplicable);
    let data = waived.waiver_data.as_ref().unwrap();
    assert_eq!(data.skipped_due_to_waiver, Some(WaiverFlag::Bool(true)));
    assert_eq!(data.run, Some(false));
    assert_eq!(data.expiration_date.as_deref(), Some("2027-01-31"));
    assert!(
        waived.results[0]
            .skip_message
            .as_deref()
            .unwrap()
            .contains("curl is used by the health check")
    );

    let expired = c("KH-TOOL-006");
    assert_eq!(expired.status(), ControlStatus::Failed);
    let data = expired.waiver_data.as_ref().unwrap();
    assert_eq!(data.skipped_due_to_waiver, Some(WaiverFlag::Bool(false)));
    assert!(
        data.message
            .as_deref()
            .unwrap()
            .contains("expired on 2026-11-01")
    );

    // `run: true` annotates but still judges.
    let annotated = c("KH-SUID-001");
    assert_eq!(annotated.status(), ControlStatus::Failed);
    assert_eq!(annotated.waiver_data.as_ref().unwrap().run, Some(true));

    let expired_ids: Vec<&str> = w
        .expired(now())
        .iter()
        .map(|w| w.control.as_str())
        .collect();
    assert_eq!(expired_ids, ["KH-TOOL-006"]);
    let unknown: Vec<&str> = w.unknown(&p).iter().map(|w| w.control.as_str()).collect();
    assert_eq!(unknown, ["KH-NOPE-999"]);
}

#[test]
fn a_waiver_ends_at_the_start_of_its_expiration_date() {
    let w = Waivers::from_yaml_str(
        "C:\n  justification: j\n  expiration_date: 2026-11-27\n",
        "w.yaml",
    )
    .unwrap();
    let waiver = w.get("C").unwrap();
    assert!(waiver.is_active("2026-11-26T23:59:59Z".parse().unwrap()));
    assert!(!waiver.is_active("2026-11-27T00:00:00Z".parse().unwrap()));
}

#[test]
fn bad_waiver_files_are_refused_with_their_location() {
    for (text, line, field, words) in [
        (
            "C:\n  justification: j\n",
            1,
            "C.expiration_date",
            "expiration_date",
        ),
        (
            "C:\n  expiration_date: 2026-01-01\n",
            1,
            "C.justification",
            "justification",
        ),
        (
            "C:\n  justification: j\n  expiration_date: soon\n",
            3,
            "C.expiration_date",
            "YYYY-MM-DD",
        ),
        (
            "C:\n  justification: j\n  expiration_date: 2026-01-01\n  reason: x\n",
            4,
            "C.reason",
            "unknown key",
        ),
        (
            "C:\n  justification: j\n  expiration_date: 2026-01-01\n  run: maybe\n",
            4,
            "C.run",
            "boolean",
        ),
        ("- C\n", 1, "(document)", "maps control ids"),
        ("C: [\n", 2, "(document)", "syntax"),
    ] {
        match Waivers::from_yaml_str(text, "w.yaml") {
            Err(EngineError::Waivers {
                file,
                line: l,
                field: f,
                problem,
            }) => {
                assert_eq!(file, "w.yaml");
                assert_eq!((l, f.as_str()), (line, field), "{text:?}: {problem}");
                assert!(problem.contains(words), "{problem}");
            }
            other => panic!("{text:?}: expected a waiver error, got {other:?}"),
        }
    }
    assert!(
        Waivers::from_yaml_str("", "w.yaml")
            .unwrap()
            .iter()
            .next()
            .is_none()
    );
}
