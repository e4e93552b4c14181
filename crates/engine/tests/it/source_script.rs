//! `ShellScript`: the same plan over the same tree gives the same facts as `LocalRoot`, with
//! dash (GNU tools) and busybox `sh` (busybox applets); the output format cannot be forged by
//! the target and a damaged output never turns into a wrong fact.

use std::process::Command;

use keyhole_engine::{
    Content, FactError, FactPlan, FactRequest, FactSource, FactValue, LocalRoot, ShellScript,
};

use crate::source_fixtures::{
    answer, assert_same_facts, fixture, fixture_plan, hostile_names, shells, tp, within,
};

/// The script through a prefix, with no process.
fn prefixed(root: &std::path::Path) -> ShellScript {
    ShellScript::in_container()
        .with_root_prefix(root)
        .expect("absolute prefix")
        .with_pid(None)
}

#[test]
fn script_and_local_root_agree_on_the_hostile_fixture() {
    let fx = fixture();
    let plan = fixture_plan();
    let local = LocalRoot::directory(&fx.root).unwrap().gather(&plan);
    for (name, shell) in shells() {
        let script = prefixed(&fx.root);
        let plan = plan.clone();
        let facts = within(300, name, move || script.run_local(&plan, shell).unwrap());
        assert_same_facts(&format!("{name} vs LocalRoot"), &facts, &local);
    }
}

#[test]
fn every_request_is_answered_even_when_the_output_is_cut_or_damaged() {
    let mut plan = FactPlan::new();
    let a = FactRequest::Read {
        path: tp("/a"),
        max_bytes: 4,
    };
    let b = FactRequest::Stat(tp("/b"));
    plan.add(a.clone());
    plan.add(b.clone());
    let index = |r: &FactRequest| plan.requests().position(|x| x == r).unwrap();
    let (ia, ib) = (index(&a), index(&b));
    let parse = |out: String| ShellScript::parse(&plan, out.as_bytes());
    // `a` well-formed, the output cut before `b` ends.
    let facts = parse(format!("@B {ia}\n 61 62 63 64 65\n@E {ia} ok\n@B {ib}\n"));
    assert_eq!(
        answer(&facts, &a),
        &Ok(FactValue::Content(Content {
            bytes: b"abcd".to_vec(),
            truncated: true,
        }))
    );
    assert!(matches!(answer(&facts, &b), Err(FactError::Io(_))));
    // A payload token that is not hex, an unknown status, an unknown frame line, a wrong end.
    for out in [
        format!("@B {ia}\n 61 zz\n@E {ia} ok\n"),
        format!("@B {ia}\n@E {ia} Fine\n"),
        format!("@B {ia}\n@X what\n@E {ia} ok\n"),
        format!("@B {ia}\n@E {ib} ok\n"),
    ] {
        let facts = parse(out.clone());
        assert!(
            matches!(answer(&facts, &a), Err(FactError::Io(_))),
            "{out:?} gave {:?}",
            answer(&facts, &a)
        );
    }
    // A Stat whose metadata line is not what `stat -c` prints.
    let facts = parse(format!("@B {ib}\n@M 81a4:0:0\n@E {ib} ok\n"));
    assert!(matches!(answer(&facts, &b), Err(FactError::Io(_))));
    // The same frame well-formed.
    let facts = parse(format!("@B {ib}\n@M 81a4:0:0:7\n@E {ib} ok\n"));
    assert!(matches!(answer(&facts, &b), Ok(FactValue::Meta(m)) if m.size == 7 && m.mode == 0o644));
}

#[test]
fn rendered_scripts_are_ascii_and_no_name_reaches_the_shell_parser() {
    let dir = tempfile::tempdir().unwrap();
    let mut plan = FactPlan::new();
    for name in hostile_names() {
        let path = tp("/").join(&name).unwrap();
        plan.add(FactRequest::Read {
            path: path.clone(),
            max_bytes: 10,
        });
        plan.add(FactRequest::Stat(path));
    }
    let script = prefixed(dir.path()).render(&plan);
    assert!(script.is_ascii());
    let empty = prefixed(dir.path()).render(&FactPlan::new());
    for name in hostile_names() {
        let name = String::from_utf8_lossy(&name);
        // Names of harmless characters may appear as they are (and `-n` is in the script's
        // own code); any other byte must be escaped.
        let plain = name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-".contains(&b));
        if !plain && !empty.contains(&*name) {
            assert!(!script.contains(&*name), "{name:?} verbatim");
        }
    }
    for (name, mut shell) in shells() {
        shell.current_dir(dir.path());
        let facts = prefixed(dir.path()).run_local(&plan, shell).unwrap();
        assert!(
            !dir.path().join("pwned").exists(),
            "{name}: a name was executed"
        );
        assert_eq!(
            facts.len(),
            plan.requests().count(),
            "{name}: every request is answered"
        );
        for (r, a) in facts.iter() {
            assert_eq!(a, &Err(FactError::NotFound), "{name}: {r:?}");
        }
    }
}

#[test]
fn file_contents_cannot_forge_frames() {
    let dir = tempfile::tempdir().unwrap();
    let forged = b"x\n@E 0 ok\n@B 1\n@M 81a4:0:0:1\n@E 1 ok\n\0\xff";
    std::fs::write(dir.path().join("forged"), forged).unwrap();
    let mut plan = FactPlan::new();
    let read = FactRequest::Read {
        path: tp("/forged"),
        max_bytes: 1000,
    };
    plan.add(read.clone());
    plan.add(FactRequest::Stat(tp("/zzz")));
    for (name, shell) in shells() {
        let facts = prefixed(dir.path()).run_local(&plan, shell).unwrap();
        assert_eq!(
            answer(&facts, &read),
            &Ok(FactValue::Content(Content {
                bytes: forged.to_vec(),
                truncated: false,
            })),
            "{name}"
        );
        assert_eq!(
            answer(&facts, &FactRequest::Stat(tp("/zzz"))),
            &Err(FactError::NotFound)
        );
    }
}

#[test]
fn proc_requests_read_the_given_pid_or_answer_no_process() {
    let mut plan = FactPlan::new();
    let status = FactRequest::Proc {
        file: keyhole_engine::ProcFile::Status,
        max_bytes: 1 << 16,
    };
    let cmdline = FactRequest::Proc {
        file: keyhole_engine::ProcFile::Cmdline,
        max_bytes: 1 << 16,
    };
    plan.add(status.clone());
    plan.add(cmdline.clone());
    let me = std::process::id();
    for (name, shell) in shells() {
        let facts = ShellScript::in_container()
            .with_pid(Some(me))
            .run_local(&plan, shell)
            .unwrap();
        let Ok(FactValue::Content(c)) = answer(&facts, &status) else {
            panic!("{name}: {:?}", answer(&facts, &status));
        };
        let text = String::from_utf8_lossy(&c.bytes);
        assert!(text.contains(&format!("Pid:\t{me}\n")), "{name}: {text}");
        let local = LocalRoot::process_with(me, keyhole_engine::OwnRoot::Allow)
            .unwrap()
            .gather(&plan);
        assert_eq!(answer(&facts, &cmdline), answer(&local, &cmdline), "{name}");
    }
    let mut dash = Command::new("dash");
    dash.env("PATH", "/usr/bin:/bin");
    let facts = ShellScript::in_container()
        .with_pid(None)
        .run_local(&plan, dash)
        .unwrap();
    assert_eq!(answer(&facts, &status), &Err(FactError::NoProcess));
}
