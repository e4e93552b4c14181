//! Differential test against the real MITRE SAF CLI (`saf validate threshold -i HDF -T FILE`).
//!
//! Needs `KEYHOLE_SAF_BIN` naming the `saf` executable of SAF CLI 1.5.3: `cargo xtask ci`
//! installs it under `target/saf` and sets the variable. Without it the test fails and says so.
//! Starting the CLI costs about 2-3 s, so the corpus is judged by one Node process per core, each
//! running SAF's own command entry point (`@oclif/core` `run` with the same argv) once per case;
//! a few cases are also run as separate `saf` processes to check that the batch judges as the
//! CLI does.
//!
//! SAF stops at the first failed check, keyhole reports every one. So each failing case is also
//! "peeled": the threshold is rewritten with its first 1, 2, … failed checks satisfied, and SAF
//! must then report keyhole's second, third, … violation, and finally pass. Crashes are compared
//! by reason: each SAF exception must be the one keyhole's error names.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use keyhole_hdf::{Execution, Threshold, Verdict, evaluate};
use serde_json::Value;
use serde_norway::Value as Yaml;

use crate::corpus;
use crate::support::assert_schema_valid;

/// The SAF CLI release the semantics are pinned to (as `xtask/src/tools.rs` installs it).
const SAF_VERSION: &str = "1.5.3";

/// What a judge said about one (HDF, threshold) pair.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    /// "All validation tests passed".
    Pass,
    /// A failed check, with the message SAF prints after `Error: ` (keyhole: its first
    /// violation, which is the one SAF reports).
    Fail(String),
    /// No verdict: SAF threw (keyhole: an error result), with the reason.
    Crash(String),
}

/// Which SAF exception goes with which keyhole error, written from SAF 1.5.3's observed
/// behaviour: (what keyhole's error says, what SAF's exception says). A crash pair agrees only
/// when one row matches both reasons.
const CRASHES: &[(&str, &str)] = &[
    (
        "has no profiles",
        "TypeError: Cannot read properties of undefined (reading 'contains')",
    ),
    (
        "has tag `severity` of an unusable type",
        "TypeError: raw.tags.severity?.toLowerCase is not a function",
    ),
    (
        "has tag `nist` of an unusable type",
        "TypeError: rawNist.match is not a function",
    ),
    (
        "is part of an overlay cycle",
        "RangeError: Maximum call stack size exceeded",
    ),
];

/// The row of [`CRASHES`] that pairs keyhole's error `ours` with SAF's exception `theirs`.
fn crash_row(ours: &str, theirs: &str) -> Option<usize> {
    CRASHES
        .iter()
        .position(|(k, s)| ours.contains(k) && theirs.contains(s))
}

/// Whether keyhole's outcome `ours` agrees with SAF's `theirs`: the same pass, the same first
/// failure message, or crashes for the same reason (see [`CRASHES`]).
fn agrees(ours: &Outcome, theirs: &Outcome) -> bool {
    match (ours, theirs) {
        (Outcome::Crash(a), Outcome::Crash(b)) => crash_row(a, b).is_some(),
        (a, b) => a == b,
    }
}

/// Keyhole's verdict on one pair (the first violation stands for SAF's message), and the
/// verdict itself when there is one.
fn keyhole(hdf: &str, threshold: &str) -> (Outcome, Option<Verdict>) {
    let exec = match Execution::from_json_str(hdf) {
        Ok(exec) => exec,
        Err(e) => return (Outcome::Crash(e.to_string()), None),
    };
    let threshold = match Threshold::from_yaml_str(threshold) {
        Ok(t) => t,
        Err(e) => return (Outcome::Crash(e.to_string()), None),
    };
    match evaluate(&exec, &threshold) {
        Ok(v) if v.passed => (Outcome::Pass, Some(v)),
        Ok(v) => (Outcome::Fail(v.violations[0].message.clone()), Some(v)),
        Err(e) => (Outcome::Crash(e.to_string()), None),
    }
}

/// Looks through YAML tags (`!!int 5` is a number to SAF's parser and to keyhole's).
fn untagged(v: &Yaml) -> &Yaml {
    match v {
        Yaml::Tagged(t) => untagged(&t.value),
        v => v,
    }
}

/// The value that satisfies `check`, whatever the execution: `min` bounds 0, `max` bounds a
/// million (compliance: 100), an exact total the actual count. `None` for a `controls` list,
/// which is removed instead (no list passes when the actual one is empty).
fn satisfying(check: &str, verdict: &Verdict) -> Option<Yaml> {
    let parts: Vec<&str> = check.split('.').collect();
    match parts[..] {
        [.., "controls"] => None,
        ["compliance", "max"] => Some(Yaml::from(100)),
        [.., "min"] => Some(Yaml::from(0)),
        [.., "max"] => Some(Yaml::from(1_000_000)),
        [status, "total"] => {
            let t = &verdict.counts.total;
            let count = match status {
                "passed" => t.passed,
                "failed" => t.failed,
                "skipped" => t.skipped,
                "error" => t.error,
                "no_impact" => t.no_impact,
                _ => panic!("unexpected check {check}"),
            };
            Some(Yaml::from(count))
        }
        _ => panic!("unexpected check {check}"),
    }
}

/// The nested mapping entry at `path` (keys as written), if every step is a mapping.
fn nested_mut<'a>(doc: &'a mut Yaml, path: &[&str]) -> Option<&'a mut Yaml> {
    let (last, parents) = path.split_last()?;
    let mut at = doc;
    for key in parents {
        at = match at {
            Yaml::Mapping(m) => m.get_mut(*key)?,
            _ => return None,
        };
    }
    match at {
        Yaml::Mapping(m) => m.get_mut(*last),
        _ => None,
    }
}

/// `threshold` rewritten so that `check` passes and nothing else changes meaning: the entry SAF
/// reads is set to a [`satisfying`] value where it has one, else removed (with every spelling
/// of it, so that no other spelling takes over). A file SAF reads as nested stays nested.
fn satisfy(threshold: &str, check: &str, verdict: &Verdict) -> String {
    let mut doc: Yaml = serde_norway::from_str(threshold).expect("keyhole parsed this threshold");
    let Yaml::Mapping(top) = &doc else {
        panic!("a threshold that yields violations is a mapping: {threshold}")
    };
    let flattened = top.values().all(|v| matches!(untagged(v), Yaml::Number(_)));
    let path: Vec<&str> = check.split('.').collect();
    match satisfying(check, verdict) {
        Some(value) if flattened => {
            // SAF unflattens every key split on `.` into its first three parts (JavaScript's
            // `split('.', 3)` drops the rest; an empty third part adds no level), a later key
            // replacing an earlier one: set every key that reads as `check`, whichever wins.
            let Yaml::Mapping(top) = &mut doc else {
                unreachable!()
            };
            let mut set = 0;
            for (key, slot) in top.iter_mut() {
                let key = key.as_str().expect("flattened keys are strings");
                let mut parts = key.split('.');
                let mut reads_as = vec![parts.next().unwrap_or_default()];
                reads_as.push(parts.next().unwrap_or("undefined"));
                reads_as.extend(parts.next().filter(|p| !p.is_empty()));
                if reads_as == path {
                    *slot = value.clone();
                    set += 1;
                }
            }
            assert!(set > 0, "no entry for {check} in\n{threshold}");
        }
        Some(value) => {
            // A nested file's checks are read with lodash `get` (a literal top-level key first),
            // except compliance, which SAF reads through the nested mapping only.
            let literal = !check.starts_with("compliance.") && top.contains_key(check);
            let slot = if literal {
                let Yaml::Mapping(top) = &mut doc else {
                    unreachable!()
                };
                top.get_mut(check)
            } else {
                nested_mut(&mut doc, &path)
            };
            *slot.unwrap_or_else(|| panic!("no entry for {check} in\n{threshold}")) = value;
        }
        None => {
            let Yaml::Mapping(top) = &mut doc else {
                unreachable!()
            };
            top.remove(check);
            let (last, parents) = path.split_last().unwrap();
            if let Some(Yaml::Mapping(parent)) = nested_mut(&mut doc, parents) {
                parent.remove(*last);
            }
            let Yaml::Mapping(top) = &mut doc else {
                unreachable!()
            };
            let now_flat = top.values().all(|v| matches!(untagged(v), Yaml::Number(_)));
            if !flattened && now_flat {
                // A key neither judge reads, so that the file is still read as nested.
                top.insert(Yaml::from("keyhole-peel"), Yaml::from("kept nested"));
            }
        }
    }
    serde_norway::to_string(&doc).unwrap()
}

/// Reads SAF's outcome from its exit code and output lines.
fn saf_outcome(exit_ok: bool, stdout: &[&str], stderr: &[&str], crashed: Option<&str>) -> Outcome {
    if let Some(reason) = crashed {
        return Outcome::Crash(reason.to_owned());
    }
    if exit_ok && stdout.contains(&"All validation tests passed") {
        return Outcome::Pass;
    }
    match stderr.iter().find_map(|l| l.strip_prefix("Error: ")) {
        Some(message) if !exit_ok => Outcome::Fail(message.to_owned()),
        _ => Outcome::Crash(format!(
            "exit ok: {exit_ok}; stdout: {stdout:?}; stderr: {stderr:?}"
        )),
    }
}

/// Node script: loads SAF's oclif entry from the package that `saf` belongs to and runs
/// `validate threshold` for each pair, recording exit code and console output.
const DRIVER: &str = r#"
const fs = require('fs');
const path = require('path');
const root = path.dirname(path.dirname(fs.realpathSync(process.argv[2])));
const oclif = require(require.resolve('@oclif/core', { paths: [root] }));
const cases = JSON.parse(fs.readFileSync(process.argv[3], 'utf8'));
(async () => {
  const results = [];
  let lines = [];
  const log = console.log, error = console.error;
  console.log = (...a) => lines.push(['out', a.join(' ')]);
  console.error = (...a) => lines.push(['err', a.join(' ')]);
  for (const [hdf, threshold] of cases) {
    lines = [];
    process.exitCode = 0;
    let crashed = null;
    try {
      await oclif.run(['validate', 'threshold', '-i', hdf, '-T', threshold], root);
    } catch (e) {
      crashed = String((e && e.message) || e);
    }
    results.push({ exitCode: process.exitCode || 0, lines, crashed });
  }
  console.log = log; console.error = error;
  process.exitCode = 0;
  fs.writeFileSync(process.argv[4], JSON.stringify(results));
})();
"#;

/// Judges `pairs` with SAF in one Node process per available core (each in its own
/// subdirectory of `dir`), in order.
fn run_batches(saf: &Path, dir: &Path, pairs: &[(PathBuf, PathBuf)]) -> Vec<Outcome> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    let chunk = pairs.len().div_ceil(workers).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = pairs
            .chunks(chunk)
            .enumerate()
            .map(|(i, part)| {
                let sub = dir.join(format!("batch-{i}"));
                std::fs::create_dir_all(&sub).unwrap();
                s.spawn(move || run_batch(saf, &sub, part))
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    })
}

fn run_batch(saf: &Path, dir: &Path, pairs: &[(PathBuf, PathBuf)]) -> Vec<Outcome> {
    let driver = dir.join("driver.js");
    std::fs::write(&driver, DRIVER).unwrap();
    let list: Vec<[String; 2]> = pairs
        .iter()
        .map(|(h, t)| [h.display().to_string(), t.display().to_string()])
        .collect();
    let cases = dir.join("cases.json");
    std::fs::write(&cases, serde_json::to_string(&list).unwrap()).unwrap();
    let results = dir.join("results.json");
    // SAF writes `saf-cli.log` into its working directory: keep it in the scratch directory.
    let status = Command::new("node")
        .current_dir(dir)
        .arg(&driver)
        .arg(saf)
        .arg(&cases)
        .arg(&results)
        .status()
        .expect("run node");
    assert!(status.success(), "the SAF batch driver failed: {status}");
    let parsed: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(&results).unwrap()).unwrap();
    assert_eq!(parsed.len(), pairs.len());
    parsed
        .iter()
        .map(|r| {
            let lines = r["lines"].as_array().unwrap();
            let of = |stream: &str| -> Vec<&str> {
                lines
                    .iter()
                    .filter(|l| l[0] == stream)
                    .filter_map(|l| l[1].as_str())
                    .collect()
            };
            saf_outcome(
                r["exitCode"] == 0,
                &of("out"),
                &of("err"),
                r["crashed"].as_str(),
            )
        })
        .collect()
}

fn run_cli(saf: &Path, hdf: &Path, threshold: &Path) -> Outcome {
    let out = Command::new(saf)
        .current_dir(hdf.parent().expect("corpus files live in a directory"))
        .args(["validate", "threshold", "-i"])
        .arg(hdf)
        .arg("-T")
        .arg(threshold)
        .output()
        .expect("run saf");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    saf_outcome(
        out.status.success(),
        &stdout.lines().collect::<Vec<_>>(),
        &stderr.lines().collect::<Vec<_>>(),
        None,
    )
}

/// One (HDF, threshold) pair to judge.
struct Pair {
    label: String,
    hdf: PathBuf,
    threshold: PathBuf,
    /// Keyhole's outcome on this pair.
    ours: Outcome,
    /// For a peeled threshold: what SAF must say, from keyhole's verdict on the original
    /// threshold (its next failed check, or a pass once all are satisfied).
    peel_expected: Option<Outcome>,
}

/// Writes the corpus to `dir`, each failing threshold followed by its peeled versions.
fn write_corpus(dir: &Path) -> Vec<Pair> {
    let mut out = Vec::new();
    for (i, case) in corpus::build().into_iter().enumerate() {
        // Executions SAF crashes on are written without validation: they stay schema-valid.
        let hdf_text = serde_json::to_string_pretty(&case.exec).unwrap();
        let hdf = dir.join(format!("{i:02}-{}.json", case.name));
        std::fs::write(&hdf, &hdf_text).unwrap();
        for (j, (label, yaml)) in case.thresholds.iter().enumerate() {
            let threshold = dir.join(format!("{i:02}-{j:02}.yaml"));
            std::fs::write(&threshold, yaml).unwrap();
            let (ours, verdict) = keyhole(&hdf_text, yaml);
            out.push(Pair {
                label: format!("{} / {label}", case.name),
                hdf: hdf.clone(),
                threshold,
                ours,
                peel_expected: None,
            });
            let Some(verdict) = verdict.filter(|v| !v.passed) else {
                continue;
            };
            // Each failed check once, with its first message (a `controls` check can fail
            // several ways; SAF stops at the first).
            let mut checks: Vec<(&str, &str)> = Vec::new();
            for v in &verdict.violations {
                if !checks.iter().any(|(c, _)| *c == v.check) {
                    checks.push((&v.check, &v.message));
                }
            }
            let mut text = yaml.clone();
            for k in 1..=checks.len() {
                text = satisfy(&text, checks[k - 1].0, &verdict);
                let peeled = dir.join(format!("{i:02}-{j:02}-peel{k:02}.yaml"));
                std::fs::write(&peeled, &text).unwrap();
                let expected = match checks.get(k) {
                    Some((_, message)) => Outcome::Fail((*message).to_owned()),
                    None => Outcome::Pass,
                };
                out.push(Pair {
                    label: format!("{} / {label} with {k} check(s) satisfied", case.name),
                    hdf: hdf.clone(),
                    threshold: peeled,
                    ours: keyhole(&hdf_text, &text).0,
                    peel_expected: Some(expected),
                });
            }
        }
    }
    out
}

/// Runs without SAF: the corpus is schema-valid and exercises every kind of check, so the
/// differential run covers every branch.
#[test]
fn corpus_is_schema_valid_and_reaches_every_check() {
    let cases = corpus::build();
    assert!(cases.len() >= 28, "{} executions", cases.len());
    let mut first_checks = std::collections::BTreeSet::new();
    let (mut passes, mut crashes) = (0, 0);
    for case in &cases {
        let text = serde_json::to_string_pretty(&case.exec).unwrap();
        assert_schema_valid(&text);
        for (label, yaml) in &case.thresholds {
            let threshold = Threshold::from_yaml_str(yaml)
                .unwrap_or_else(|e| panic!("{} / {label}: {e}\n{yaml}", case.name));
            match evaluate(&case.exec, &threshold) {
                Ok(v) if v.passed => passes += 1,
                Ok(v) => {
                    let check = &v.violations[0].check;
                    // `failed.high.min` -> `severity.min`, `passed.total` -> `total`, ...
                    let kind = match check.split('.').collect::<Vec<_>>()[..] {
                        ["compliance", bound] => format!("compliance.{bound}"),
                        [_, "total"] => "total".to_owned(),
                        [_, "total", bound] => format!("total.{bound}"),
                        [_, "none", last] => format!("none.{last}"),
                        [_, _, last] => format!("severity.{last}"),
                        _ => panic!("unexpected check {check}"),
                    };
                    first_checks.insert(kind);
                }
                Err(_) => crashes += 1,
            }
        }
    }
    let expected = [
        "compliance.max",
        "compliance.min",
        "none.controls",
        "none.max",
        "none.min",
        "severity.controls",
        "severity.max",
        "severity.min",
        "total",
        "total.max",
        "total.min",
    ];
    let missing: Vec<&&str> = expected
        .iter()
        .filter(|k| !first_checks.contains(**k))
        .collect();
    assert!(
        missing.is_empty(),
        "no corpus case fails first on {missing:?} (got {first_checks:?})"
    );
    assert!(
        passes > 50 && crashes >= 8,
        "passes {passes}, crashes {crashes}"
    );
}

#[test]
fn verdicts_agree_with_the_saf_cli() {
    let saf = std::env::var_os("KEYHOLE_SAF_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            panic!(
                "KEYHOLE_SAF_BIN is not set, so keyhole's verdicts cannot be compared with MITRE's \
                 SAF CLI. `cargo xtask ci` installs SAF CLI {SAF_VERSION} under target/saf and sets \
                 it; by hand: install `@mitre/saf@{SAF_VERSION}` with npm as xtask/src/tools.rs \
                 does, then set KEYHOLE_SAF_BIN=target/saf/node_modules/.bin/saf"
            )
        });
    assert!(
        saf.is_file(),
        "KEYHOLE_SAF_BIN={} is not a file; `cargo xtask ci` installs SAF CLI {SAF_VERSION} under \
         target/saf",
        saf.display()
    );
    let started = Instant::now();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("saf-diff");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let corpus = write_corpus(&dir);
    let files: Vec<(PathBuf, PathBuf)> = corpus
        .iter()
        .map(|p| (p.hdf.clone(), p.threshold.clone()))
        .collect();
    let saf_outcomes = run_batches(&saf, &dir, &files);

    // The batch must judge as the `saf` executable itself: check a pass, a compliance failure,
    // a count failure, a controls failure and a crash in separate processes.
    let mut spot: Vec<usize> = Vec::new();
    let kinds: [fn(&Outcome) -> bool; 5] = [
        |o| *o == Outcome::Pass,
        |o| matches!(o, Outcome::Fail(m) if m.starts_with("Overall")),
        |o| matches!(o, Outcome::Fail(m) if m.contains("Threshold not met")),
        |o| matches!(o, Outcome::Fail(m) if m.starts_with("Expected")),
        |o| matches!(o, Outcome::Crash(_)),
    ];
    for wanted in kinds {
        spot.push(
            saf_outcomes
                .iter()
                .position(wanted)
                .expect("the corpus has a case of every kind"),
        );
    }
    let cli: Vec<Outcome> = std::thread::scope(|s| {
        let handles: Vec<_> = spot
            .iter()
            .map(|&i| {
                let (saf, pair) = (&saf, &files[i]);
                s.spawn(move || run_cli(saf, &pair.0, &pair.1))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (&i, cli_outcome) in spot.iter().zip(&cli) {
        let batch = &saf_outcomes[i];
        let same = match (cli_outcome, batch) {
            // The CLI prints its own wrapper around an exception; the reason must be in it.
            (Outcome::Crash(c), Outcome::Crash(b)) => c.contains(b.as_str()),
            (c, b) => c == b,
        };
        assert!(
            same,
            "batch and CLI disagree on {}:\n  cli:   {cli_outcome:?}\n  batch: {batch:?}",
            corpus[i].label
        );
    }

    let mut disagreements = Vec::new();
    let (mut passes, mut fails, mut crashes, mut peeled) = (0, 0, 0, 0);
    let mut rows_seen = vec![false; CRASHES.len()];
    for (pair, theirs) in corpus.iter().zip(&saf_outcomes) {
        match theirs {
            Outcome::Pass => passes += 1,
            Outcome::Fail(_) => fails += 1,
            Outcome::Crash(_) => crashes += 1,
        }
        if let (Outcome::Crash(a), Outcome::Crash(b)) = (&pair.ours, theirs)
            && let Some(row) = crash_row(a, b)
        {
            rows_seen[row] = true;
        }
        let place = format!(
            "{} ({} with {})",
            pair.label,
            pair.hdf.display(),
            pair.threshold.display()
        );
        if !agrees(&pair.ours, theirs) {
            disagreements.push(format!(
                "{place}:\n  saf:     {theirs:?}\n  keyhole: {:?}",
                pair.ours
            ));
        }
        if let Some(expected) = &pair.peel_expected {
            peeled += 1;
            if expected != theirs {
                disagreements.push(format!(
                    "{place}:\n  saf:     {theirs:?}\n  keyhole's verdict on the original \
                     threshold lists next: {expected:?}"
                ));
            }
        }
    }
    let _ = writeln!(
        std::io::stderr(),
        "saf_diff: {} cases ({passes} pass, {fails} fail, {crashes} crash; {peeled} of them peeled \
         thresholds) judged by SAF; {} spot-checked as separate processes; {} disagreements; \
         {:.1} s",
        corpus.len(),
        spot.len(),
        disagreements.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        disagreements.is_empty(),
        "keyhole and SAF disagree:\n{}",
        disagreements.join("\n")
    );
    let unseen: Vec<&str> = CRASHES
        .iter()
        .zip(&rows_seen)
        .filter(|(_, seen)| !**seen)
        .map(|((k, _), _)| *k)
        .collect();
    assert!(
        unseen.is_empty(),
        "no corpus case crashes both judges as {unseen:?}: the corpus lost a crash case"
    );
    assert!(
        peeled > 50 && crashes >= 8,
        "the corpus must reach later violations and crashes: {peeled} peeled, {crashes} crashes"
    );
}
