//! `LocalRoot` on hostile targets: escapes resolve inside the root, special files are never
//! opened, every read and walk is bounded and says what it skipped; and the same expectations
//! hold for `ShellScript` where the test says so.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use keyhole_engine::{
    Bound, Content, FactError, FactPlan, FactRequest, FactSource, FactValue, Facts, FileKind,
    LocalRoot, OwnRoot, ProcFile, ShellScript, SourceError, WalkLimits, WalkOutcome, WalkQuery,
};

use crate::source_fixtures::{
    CANARY, answer, assert_same_facts, fixture, fixture_plan, hostile_names, shells, tp, within,
};

fn gather(root: &Path, plan: &FactPlan) -> Facts {
    let source = LocalRoot::directory(root).expect("open the fixture root");
    let plan = plan.clone();
    within(120, "LocalRoot::gather", move || source.gather(&plan))
}

fn read(path: &str, max_bytes: u64) -> FactRequest {
    FactRequest::Read {
        path: tp(path),
        max_bytes,
    }
}

fn content(bytes: &[u8], truncated: bool) -> Result<FactValue, FactError> {
    Ok(FactValue::Content(Content {
        bytes: bytes.to_vec(),
        truncated,
    }))
}

fn walk(root: &str, query: WalkQuery, limits: WalkLimits) -> FactRequest {
    FactRequest::Walk {
        root: tp(root),
        query,
        limits,
    }
}

fn outcome(facts: &Facts, r: &FactRequest) -> WalkOutcome {
    match answer(facts, r) {
        Ok(FactValue::Walk(w)) => w.clone(),
        other => panic!("{r:?}: {other:?}"),
    }
}

fn match_paths(w: &WalkOutcome) -> Vec<Vec<u8>> {
    w.matches
        .iter()
        .map(|(p, _)| p.as_bytes().to_vec())
        .collect()
}

/// True when some content read contains the canary's text.
fn mentions_canary(facts: &Facts) -> bool {
    facts.iter().any(|(_, a)| match a {
        Ok(FactValue::Content(c)) => c.bytes.windows(CANARY.len()).any(|w| w == CANARY),
        _ => false,
    })
}

#[test]
fn symlinks_resolve_inside_the_root_and_never_reach_the_canary() {
    let fx = fixture();
    let plan = fixture_plan();
    let facts = gather(&fx.root, &plan);
    // The canary is there to be found by any escape.
    assert_eq!(std::fs::read(&fx.canary).unwrap(), CANARY);
    assert!(!mentions_canary(&facts), "the canary leaked: {facts:?}");
    let inside = content(b"inside\n", false);
    for p in [
        "/etc/abs",
        "/etc/rel",
        "/etc/dotdot",
        "/etc/./hostname",
        "//etc//hostname",
    ] {
        assert_eq!(answer(&facts, &read(p, 64)), &inside, "{p}");
    }
    for p in [
        "/etc/host-canary",
        "/etc/up-canary",
        "/etc/abs-up-canary",
        "/canary",
        "/etc/dangling",
        "/missing/x",
    ] {
        assert_eq!(
            answer(&facts, &read(p, 64)),
            &Err(FactError::NotFound),
            "{p}"
        );
    }
    assert_eq!(
        answer(&facts, &read("/etc/loop1", 64)),
        &Err(FactError::Loop)
    );
    assert_eq!(
        answer(&facts, &read("/etc/loop1/x", 64)),
        &Err(FactError::Loop)
    );
    let Ok(FactValue::Content(passwd)) = answer(&facts, &read("/../../etc/passwd", 64)) else {
        panic!("/../../etc/passwd");
    };
    assert!(passwd.bytes.starts_with(b"root:x:0:0"));
    assert_eq!(
        answer(&facts, &read("/bin/tool", 64)),
        &content(b"#!/bin/sh\necho tool\n", false)
    );
    assert_eq!(answer(&facts, &read("/etc/passwd", 0)), &content(b"", true));
    assert_eq!(
        answer(&facts, &read("/etc/empty", 64)),
        &content(b"", false)
    );
    assert!(matches!(
        answer(&facts, &read("/etc/passwd/x", 64)),
        Err(FactError::WrongKind { expected }) if expected == "directory"
    ));
    assert!(matches!(
        answer(&facts, &read("/etc", 64)),
        Err(FactError::WrongKind { expected }) if expected == "regular file"
    ));
    // Stat is lstat: a link stays a link, with its text as bytes.
    let Ok(FactValue::Meta(m)) = answer(&facts, &FactRequest::Stat(tp("/etc/abs"))) else {
        panic!("stat /etc/abs");
    };
    assert_eq!(
        (m.kind, m.link_target.as_deref()),
        (FileKind::Symlink, Some(&b"/etc/hostname"[..]))
    );
    let Ok(FactValue::Meta(m)) = answer(&facts, &FactRequest::Stat(tp("/etc/odd-link"))) else {
        panic!("stat /etc/odd-link");
    };
    assert_eq!(m.link_target.as_deref(), Some(&b"link\nwith newline"[..]));
    // A trailing slash follows the link.
    let Ok(FactValue::Meta(m)) = answer(&facts, &FactRequest::Stat(tp("/etc/dirlink/"))) else {
        panic!("stat /etc/dirlink/");
    };
    assert_eq!(m.kind, FileKind::Directory);
    assert_eq!(
        answer(
            &facts,
            &FactRequest::Proc {
                file: ProcFile::Status,
                max_bytes: 4096
            }
        ),
        &Err(FactError::NoProcess)
    );
}

#[test]
fn fifos_sockets_and_devices_are_never_opened() {
    let fx = fixture();
    let plan = fixture_plan();
    // `within` turns a blocking open of the FIFO into a failure rather than a hang.
    let facts = gather(&fx.root, &plan);
    for (p, kind) in [
        ("/tmp/fifo", FileKind::Fifo),
        ("/tmp/sock", FileKind::Socket),
        ("/dev/zero", FileKind::CharDevice),
    ] {
        let special = Err(FactError::Special(kind));
        assert_eq!(answer(&facts, &read(p, 64)), &special, "{p}");
        let sha = FactRequest::Sha256 {
            path: tp(p),
            max_bytes: 1 << 20,
        };
        assert_eq!(answer(&facts, &sha), &special, "{p}");
        let Ok(FactValue::Meta(m)) = answer(&facts, &FactRequest::Stat(tp(p))) else {
            panic!("stat {p}");
        };
        assert_eq!(m.kind, kind);
    }
    // The same through a symlink, and through the script.
    std::os::unix::fs::symlink("/tmp/fifo", fx.root.join("etc/to-fifo")).unwrap();
    let mut plan = FactPlan::new();
    plan.add(read("/etc/to-fifo", 64));
    plan.add(read("/dev/zero", 64));
    let local = gather(&fx.root, &plan);
    assert_eq!(
        answer(&local, &read("/etc/to-fifo", 64)),
        &Err(FactError::Special(FileKind::Fifo))
    );
    for (name, shell) in shells() {
        let script = ShellScript::in_container()
            .with_root_prefix(&fx.root)
            .unwrap();
        let plan = plan.clone();
        let facts = within(60, name, move || script.run_local(&plan, shell).unwrap());
        assert_same_facts(name, &facts, &local);
    }
}

#[test]
fn a_huge_sparse_file_is_read_and_hashed_within_bounds() {
    let fx = fixture();
    let mut plan = FactPlan::new();
    let sha = FactRequest::Sha256 {
        path: tp("/tmp/huge"),
        max_bytes: 1 << 20,
    };
    let md5 = FactRequest::Md5 {
        path: tp("/tmp/huge"),
        max_bytes: 1 << 20,
    };
    let contains = walk(
        "/tmp",
        WalkQuery::Contains {
            pattern: b"x".to_vec(),
            max_bytes: 100,
            max_file_size: 1 << 20,
        },
        WalkLimits::default(),
    );
    plan.add(read("/tmp/huge", 4096));
    plan.add(sha.clone());
    plan.add(md5.clone());
    plan.add(contains.clone());
    let facts = gather(&fx.root, &plan);
    assert_eq!(
        answer(&facts, &read("/tmp/huge", 4096)),
        &content(&[0; 4096], true)
    );
    assert_eq!(
        answer(&facts, &sha),
        &Err(FactError::TooLarge { limit: 1 << 20 })
    );
    assert_eq!(
        answer(&facts, &md5),
        &Err(FactError::TooLarge { limit: 1 << 20 })
    );
    let w = outcome(&facts, &contains);
    assert!(
        w.skipped
            .contains(&(tp("/tmp/huge"), FactError::TooLarge { limit: 1 << 20 })),
        "{w:?}"
    );
    for (name, shell) in shells() {
        let script = ShellScript::in_container()
            .with_root_prefix(&fx.root)
            .unwrap();
        let plan = plan.clone();
        let got = within(120, name, move || script.run_local(&plan, shell).unwrap());
        assert_same_facts(name, &got, &facts);
    }
}

#[test]
fn digests_match_the_content() {
    let fx = fixture();
    let mut plan = FactPlan::new();
    let sha = FactRequest::Sha256 {
        path: tp("/etc/abs"),
        max_bytes: 100,
    };
    let md5 = FactRequest::Md5 {
        path: tp("/etc/abs"),
        max_bytes: 100,
    };
    let small = FactRequest::Sha256 {
        path: tp("/etc/passwd"),
        max_bytes: 10,
    };
    plan.add(sha.clone());
    plan.add(md5.clone());
    plan.add(small.clone());
    let facts = gather(&fx.root, &plan);
    // sha256("inside\n") and md5("inside\n"), as sha256sum and md5sum print them.
    let hex = |b: &[u8]| b.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let Ok(FactValue::Digest(d)) = answer(&facts, &sha) else {
        panic!("{facts:?}")
    };
    let Ok(FactValue::Md5(m)) = answer(&facts, &md5) else {
        panic!("{facts:?}")
    };
    let sum = |tool: &str| {
        let out = std::process::Command::new(tool)
            .arg(fx.root.join("etc/hostname"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)[..]
            .split(' ')
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(hex(d), sum("sha256sum"));
    assert_eq!(hex(m), sum("md5sum"));
    assert_eq!(
        answer(&facts, &small),
        &Err(FactError::TooLarge { limit: 10 })
    );
}

#[test]
fn a_deep_tree_reports_the_depth_bound() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = dir.path().to_path_buf();
    for _ in 0..200 {
        p.push("d");
    }
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(p.join("suid"), b"x").unwrap();
    let limits = WalkLimits {
        max_depth: 50,
        ..WalkLimits::default()
    };
    let deep = walk("/", WalkQuery::Setuid, limits);
    let all = walk(
        "/",
        WalkQuery::Named([b"suid".to_vec()].into()),
        WalkLimits {
            max_depth: 1000,
            ..limits
        },
    );
    let mut plan = FactPlan::new();
    plan.add(deep.clone());
    plan.add(all.clone());
    let facts = gather(dir.path(), &plan);
    let w = outcome(&facts, &deep);
    assert_eq!((w.truncated, w.examined), (Some(Bound::Depth), 51));
    let w = outcome(&facts, &all);
    assert_eq!((w.truncated, w.examined, w.matches.len()), (None, 202, 1));
    for (name, shell) in shells() {
        let script = ShellScript::in_container()
            .with_root_prefix(dir.path())
            .unwrap();
        let plan = plan.clone();
        let got = within(120, name, move || script.run_local(&plan, shell).unwrap());
        assert_same_facts(name, &got, &facts);
    }
}

#[test]
fn a_directory_of_100k_entries_hits_the_entries_bound() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big");
    std::fs::create_dir(&big).unwrap();
    for i in 0..100_000 {
        std::fs::File::create(big.join(format!("f{i:06}"))).unwrap();
    }
    let limits = WalkLimits {
        max_entries: 1000,
        ..WalkLimits::default()
    };
    let bounded = walk("/", WalkQuery::WorldWritable, limits);
    let everything = walk("/big", WalkQuery::Setuid, WalkLimits::default());
    let list = FactRequest::List {
        path: tp("/big"),
        max_entries: 500,
    };
    let mut plan = FactPlan::new();
    plan.add(bounded.clone());
    plan.add(everything.clone());
    plan.add(list.clone());
    let facts = gather(dir.path(), &plan);
    let w = outcome(&facts, &bounded);
    assert_eq!((w.truncated, w.examined), (Some(Bound::Entries), 1000));
    let w = outcome(&facts, &everything);
    assert_eq!((w.truncated, w.examined), (None, 100_001));
    let Ok(FactValue::Entries(entries, bound)) = answer(&facts, &list) else {
        panic!("{:?}", answer(&facts, &list))
    };
    assert_eq!((entries.len(), *bound), (500, Some(Bound::Entries)));
    // No time at all: the walk stops at once and says so (the script's deadline has a
    // resolution of seconds, so it is not held to this).
    let no_time = walk(
        "/big",
        WalkQuery::Setuid,
        WalkLimits {
            max_millis: 0,
            ..WalkLimits::default()
        },
    );
    let mut timed = FactPlan::new();
    timed.add(no_time.clone());
    let w = outcome(&gather(dir.path(), &timed), &no_time);
    assert_eq!(w.truncated, Some(Bound::Time));
    assert!(w.examined < 100_001);
    for (name, shell) in shells() {
        let script = ShellScript::in_container()
            .with_root_prefix(dir.path())
            .unwrap();
        let plan = plan.clone();
        let got = within(300, name, move || script.run_local(&plan, shell).unwrap());
        assert_same_facts(name, &got, &facts);
    }
}

#[test]
fn non_utf8_and_hostile_names_are_kept_as_bytes() {
    let fx = fixture();
    let list = FactRequest::List {
        path: tp("/names"),
        max_entries: 100,
    };
    let wanted: BTreeSet<Vec<u8>> =
        [b"\xff\xfe latin1 \xe9".to_vec(), b"new\nline".to_vec()].into();
    let named = walk("/", WalkQuery::Named(wanted.clone()), WalkLimits::default());
    let mut plan = FactPlan::new();
    plan.add(list.clone());
    plan.add(named.clone());
    for name in hostile_names() {
        plan.add(FactRequest::Read {
            path: tp("/names").join(&name).unwrap(),
            max_bytes: 100,
        });
    }
    let facts = gather(&fx.root, &plan);
    let Ok(FactValue::Entries(entries, None)) = answer(&facts, &list) else {
        panic!("{:?}", answer(&facts, &list))
    };
    let mut names: Vec<Vec<u8>> = hostile_names();
    names.sort();
    assert_eq!(
        entries.iter().map(|e| e.name.clone()).collect::<Vec<_>>(),
        names
    );
    for name in hostile_names() {
        let r = FactRequest::Read {
            path: tp("/names").join(&name).unwrap(),
            max_bytes: 100,
        };
        // Each file holds its own name.
        assert_eq!(
            answer(&facts, &r),
            &content(&name, false),
            "{:?}",
            OsStr::from_bytes(&name)
        );
    }
    let w = outcome(&facts, &named);
    let mut expected: Vec<Vec<u8>> = wanted
        .iter()
        .map(|n| [b"/names/", &n[..]].concat())
        .collect();
    expected.sort();
    assert_eq!(match_paths(&w), expected);
}

#[test]
fn setuid_setgid_and_world_writable_files_are_found_without_following_links() {
    let fx = fixture();
    let limits = WalkLimits::default();
    let suid = walk("/", WalkQuery::Setuid, limits);
    let sgid = walk("/", WalkQuery::Setgid, limits);
    let ww = walk("/", WalkQuery::WorldWritable, limits);
    let named = walk("/", WalkQuery::Named([b"tool".to_vec()].into()), limits);
    let via_link = walk("/bin", WalkQuery::Setuid, limits);
    let key = walk(
        "/",
        WalkQuery::Contains {
            pattern: b"-----BEGIN OPENSSH PRIVATE KEY-----".to_vec(),
            max_bytes: 4096,
            max_file_size: 1 << 20,
        },
        limits,
    );
    let mut plan = FactPlan::new();
    for r in [&suid, &sgid, &ww, &named, &via_link, &key] {
        plan.add(r.clone());
    }
    let facts = gather(&fx.root, &plan);
    assert_eq!(
        match_paths(&outcome(&facts, &suid)),
        vec![b"/usr/bin/suid".to_vec()]
    );
    assert_eq!(
        match_paths(&outcome(&facts, &sgid)),
        vec![b"/usr/bin/sgid".to_vec()]
    );
    assert_eq!(
        match_paths(&outcome(&facts, &ww)),
        vec![b"/tmp/ww".to_vec(), b"/tmp/wwdir".to_vec()]
    );
    // /bin and /etc/dirlink are links to /usr/bin: not followed, so `tool` is found once.
    assert_eq!(
        match_paths(&outcome(&facts, &named)),
        vec![b"/usr/bin/tool".to_vec()]
    );
    // A walk's start may be reached through a link (inside the root); results are named from it.
    assert_eq!(
        match_paths(&outcome(&facts, &via_link)),
        vec![b"/bin/suid".to_vec()]
    );
    let w = outcome(&facts, &key);
    assert_eq!(match_paths(&w), vec![b"/keys/id".to_vec()]);
    assert_eq!(w.matches[0].1.mode, 0o600);
    assert_eq!(w.truncated, None);
}

#[test]
fn magic_links_are_refused_as_escapes() {
    // The scanner's own root, on purpose: its /proc is a real procfs with magic links.
    let source = LocalRoot::directory("/").unwrap();
    assert!(source.is_own_root());
    let mut plan = FactPlan::new();
    for p in [
        "/proc/self/root/etc/hostname",
        "/proc/self/fd/0",
        "/proc/self/cwd",
    ] {
        plan.add(read(p, 64));
    }
    plan.add(FactRequest::Stat(tp("/proc/self/root/etc")));
    let facts = source.gather(&plan);
    assert_eq!(
        facts.len(),
        plan.requests().count(),
        "every request is answered"
    );
    for (r, a) in facts.iter() {
        assert_eq!(a, &Err(FactError::Escape), "{r:?}");
    }
}

#[test]
fn the_scanners_own_root_is_refused_unless_allowed() {
    let err = LocalRoot::directory_with("/", OwnRoot::Refuse).unwrap_err();
    assert!(matches!(err, SourceError::OwnRoot { .. }), "{err}");
    // This test process shares the scanner's root: the default for a process refuses it.
    let me = std::process::id();
    let err = LocalRoot::process(me).unwrap_err();
    assert!(err.to_string().contains("own root filesystem"), "{err}");
    let source = LocalRoot::process_with(me, OwnRoot::Allow).unwrap();
    let mut plan = FactPlan::new();
    let status = FactRequest::Proc {
        file: ProcFile::Status,
        max_bytes: 1 << 16,
    };
    plan.add(status.clone());
    let facts = source.gather(&plan);
    let Ok(FactValue::Content(c)) = answer(&facts, &status) else {
        panic!("{facts:?}")
    };
    assert!(String::from_utf8_lossy(&c.bytes).contains(&format!("Pid:\t{me}\n")));
    let tmp = tempfile::tempdir().unwrap();
    assert!(
        !LocalRoot::directory_with(tmp.path(), OwnRoot::Refuse)
            .unwrap()
            .is_own_root()
    );
    assert!(matches!(
        LocalRoot::process(u32::MAX),
        Err(SourceError::Open { .. })
    ));
}
