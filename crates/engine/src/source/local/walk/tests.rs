//! One traversal answering several walks must answer each exactly as a walk of its own would:
//! same matches, same `examined`, same bound reached, and only its own `skipped` entries.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use proptest::prelude::*;

use super::super::LocalRoot;
use crate::{
    Bound, FactError, FactPlan, FactRequest, FactSource, FactValue, TargetPath, WalkLimits,
    WalkOutcome, WalkQuery,
};

const KEY: &[u8] = b"-----BEGIN OPENSSH PRIVATE KEY-----";

fn tp(s: &str) -> TargetPath {
    TargetPath::new(s).expect("absolute")
}

fn walk(root: &str, query: WalkQuery, limits: WalkLimits) -> FactRequest {
    FactRequest::Walk {
        root: tp(root),
        query,
        limits,
    }
}

fn contains(max_bytes: u64, max_file_size: u64) -> WalkQuery {
    WalkQuery::Contains {
        pattern: b"PRIVATE KEY".to_vec(),
        max_bytes,
        max_file_size,
    }
}

fn named(names: &[&str]) -> WalkQuery {
    WalkQuery::Named(names.iter().map(|n| n.as_bytes().to_vec()).collect())
}

fn write(path: &Path, bytes: &[u8], mode: u32) {
    fs::write(path, bytes).expect("write");
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

/// A tree where every query has something to find, to miss and to skip.
fn fixture(dir: &Path) {
    let d = |p: &str| {
        fs::create_dir_all(dir.join(p)).expect("mkdir");
    };
    d("usr/bin");
    d("etc/ssh");
    d("home/u/.ssh");
    d("a/b/c/d");
    write(&dir.join("usr/bin/su"), b"\x7fELF", 0o4755);
    write(&dir.join("usr/bin/wall"), b"\x7fELF", 0o2755);
    write(&dir.join("usr/bin/both"), b"\x7fELF", 0o6777);
    write(&dir.join("etc/open"), b"x", 0o666);
    fs::set_permissions(dir.join("a/b"), fs::Permissions::from_mode(0o777)).expect("chmod");
    fs::create_dir(dir.join("tmp")).expect("mkdir");
    fs::set_permissions(dir.join("tmp"), fs::Permissions::from_mode(0o1777)).expect("chmod");
    // "PRIVATE KEY" is at bytes 49..60 of the short file: found with max_bytes 64, not with 32.
    let mut late = vec![b' '; 30];
    late.extend_from_slice(KEY);
    write(&dir.join("home/u/.ssh/id_rsa"), &late, 0o600);
    write(&dir.join("etc/ssh/host_key"), KEY, 0o600);
    // Too large for a 100-byte cap, not for a 10 000-byte one.
    let mut big = KEY.to_vec();
    big.resize(5000, b'x');
    write(&dir.join("a/b/c/d/big.pem"), &big, 0o644);
    symlink("/etc/ssh/host_key", dir.join("a/id_rsa")).expect("symlink");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        dir.join("a/b/fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .expect("mkfifo");
}

fn all_queries() -> Vec<WalkQuery> {
    vec![
        WalkQuery::Setuid,
        WalkQuery::Setgid,
        WalkQuery::WorldWritable,
        named(&["id_rsa", "fifo", "d"]),
        named(&[".ssh"]),
        contains(64, 100),
        contains(32, 10_000),
        contains(64, 10_000),
    ]
}

/// Gathers `requests` in one plan, and each in a plan of its own; asserts the answers agree and
/// returns them.
fn grouped_equals_separate(root: &LocalRoot, requests: &[FactRequest]) -> Vec<WalkOutcome> {
    let mut plan = FactPlan::new();
    for r in requests {
        plan.add(r.clone());
    }
    let together = root.gather(&plan);
    requests
        .iter()
        .map(|r| {
            let mut one = FactPlan::new();
            one.add(r.clone());
            let alone = root.gather(&one);
            let answer = alone.get(r).expect("answered").clone();
            assert_eq!(together.get(r), Some(&answer), "{r:?}");
            match answer {
                Ok(FactValue::Walk(w)) => w,
                other => panic!("not a walk answer for {r:?}: {other:?}"),
            }
        })
        .collect()
}

fn paths(w: &WalkOutcome) -> Vec<String> {
    w.matches.iter().map(|(p, _)| p.to_string()).collect()
}

#[test]
fn grouped_walks_answer_like_separate_walks() {
    let dir = tempfile::tempdir().expect("tempdir");
    fixture(dir.path());
    let root = LocalRoot::directory(dir.path()).expect("root");
    let limits = WalkLimits::default();
    let requests: Vec<_> = all_queries()
        .into_iter()
        .map(|q| walk("/", q, limits))
        .collect();
    let w = grouped_equals_separate(&root, &requests);
    assert_eq!(paths(&w[0]), ["/usr/bin/both", "/usr/bin/su"]);
    assert_eq!(paths(&w[1]), ["/usr/bin/both", "/usr/bin/wall"]);
    assert_eq!(paths(&w[2]), ["/a/b", "/etc/open", "/usr/bin/both"]);
    assert_eq!(
        paths(&w[3]),
        ["/a/b/c/d", "/a/b/fifo", "/a/id_rsa", "/home/u/.ssh/id_rsa"]
    );
    // The symlink's target text is reported with the match.
    assert_eq!(
        w[3].matches[2].1.link_target.as_deref(),
        Some(&b"/etc/ssh/host_key"[..])
    );
    assert_eq!(paths(&w[4]), ["/home/u/.ssh"]);
    // Each content query sees its own prefix and its own size cap.
    assert_eq!(paths(&w[5]), ["/etc/ssh/host_key", "/home/u/.ssh/id_rsa"]);
    assert_eq!(
        w[5].skipped,
        [(tp("/a/b/c/d/big.pem"), FactError::TooLarge { limit: 100 })]
    );
    assert_eq!(paths(&w[6]), ["/a/b/c/d/big.pem", "/etc/ssh/host_key"]);
    assert!(w[6].skipped.is_empty());
    assert_eq!(
        paths(&w[7]),
        [
            "/a/b/c/d/big.pem",
            "/etc/ssh/host_key",
            "/home/u/.ssh/id_rsa"
        ]
    );
    for o in &w {
        assert_eq!(o.truncated, None);
        assert_eq!(o.examined, w[0].examined);
    }
}

#[test]
fn each_group_keeps_its_own_bounds() {
    let dir = tempfile::tempdir().expect("tempdir");
    fixture(dir.path());
    let root = LocalRoot::directory(dir.path()).expect("root");
    let few = WalkLimits {
        max_entries: 6,
        ..WalkLimits::default()
    };
    let shallow = WalkLimits {
        max_depth: 1,
        ..WalkLimits::default()
    };
    let none = WalkLimits {
        max_entries: 0,
        ..WalkLimits::default()
    };
    let mut requests = Vec::new();
    for limits in [WalkLimits::default(), few, shallow, none] {
        for q in [WalkQuery::Setuid, named(&["id_rsa"]), contains(64, 10_000)] {
            requests.push(walk("/", q, limits));
        }
    }
    // A walk from a subdirectory, and one from a start that is not there.
    requests.push(walk("/usr", WalkQuery::Setuid, WalkLimits::default()));
    requests.push(walk("/nope", WalkQuery::Setuid, WalkLimits::default()));
    let mut plan = FactPlan::new();
    for r in &requests {
        plan.add(r.clone());
    }
    let missing = root.gather(&plan);
    assert_eq!(
        missing.get(requests.last().expect("pushed")),
        Some(&Err(FactError::NotFound))
    );
    let w = grouped_equals_separate(&root, &requests[..requests.len() - 1]);
    let bounds: Vec<_> = w.iter().map(|o| (o.truncated, o.examined)).collect();
    assert_eq!(bounds[0], (None, bounds[0].1));
    assert_eq!(bounds[3..6], [(Some(Bound::Entries), 6); 3]);
    assert_eq!(bounds[6].0, Some(Bound::Depth));
    assert_eq!(bounds[9..12], [(Some(Bound::Entries), 0); 3]);
    assert_eq!(paths(&w[12]), ["/usr/bin/both", "/usr/bin/su"]);
}

/// A random small tree: (path below the root, kind, mode, content).
fn tree() -> impl Strategy<Value = Vec<(Vec<String>, u8, u32, Vec<u8>)>> {
    let name = prop::sample::select(vec!["a", "b", "id_rsa", ".env", "k"]);
    let path = prop::collection::vec(name, 1..4)
        .prop_map(|v| v.into_iter().map(String::from).collect::<Vec<_>>());
    let mode = prop::sample::select(vec![0o644, 0o4755, 0o2755, 0o666, 0o777, 0o1777, 0o755]);
    let content = prop::collection::vec(
        prop::sample::select(vec![&b"PRIVATE KEY"[..], b"xx", b"\n"]),
        0..6,
    )
    .prop_map(|parts| parts.concat());
    prop::collection::vec((path, 0u8..3, mode, content), 0..12)
}

fn build(dir: &Path, entries: &[(Vec<String>, u8, u32, Vec<u8>)]) {
    for (comps, kind, mode, content) in entries {
        let path = comps.iter().fold(dir.to_path_buf(), |p, c| p.join(c));
        if path.symlink_metadata().is_ok() {
            continue;
        }
        let Some(parent) = path.parent() else {
            continue;
        };
        // A parent that is already a file or link: the entry is left out.
        if fs::create_dir_all(parent).is_err() {
            continue;
        }
        match kind {
            0 => write(&path, content, *mode),
            1 => {
                fs::create_dir(&path).expect("mkdir");
                fs::set_permissions(&path, fs::Permissions::from_mode(*mode)).expect("chmod");
            }
            _ => symlink("/a", &path).expect("symlink"),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn any_tree_any_bounds_grouped_equals_separate(
        entries in tree(),
        max_entries in prop::sample::select(vec![0u64, 1, 3, 7, 1000]),
        max_depth in 0u32..4,
        cap in prop::sample::select(vec![0u64, 11, 20, 100]),
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        build(dir.path(), &entries);
        let root = LocalRoot::directory(dir.path()).expect("root");
        let limits = WalkLimits { max_entries, max_depth, ..WalkLimits::default() };
        let mut requests: Vec<_> = [
            WalkQuery::Setuid,
            WalkQuery::Setgid,
            WalkQuery::WorldWritable,
            named(&["id_rsa", ".env"]),
            contains(cap, 100),
            contains(100, cap),
        ]
        .into_iter()
        .map(|q| walk("/", q, limits))
        .collect();
        requests.push(walk("/", WalkQuery::Setuid, WalkLimits::default()));
        let w = grouped_equals_separate(&root, &requests);
        // The walks of one group examined the same entries.
        prop_assert!(w[..6].iter().all(|o| o.examined == w[0].examined && o.truncated == w[0].truncated));
    }
}

// ---------------------------------------------------------------------------------------------
// The parallel walk answers exactly as the sequential one.

/// Threads to force in tests (whatever the machine has), starting at once, with a queue small
/// enough that threads also descend on their own.
fn forced(queue_max: usize) -> super::Parallel {
    super::Parallel {
        threads: 3,
        spawn_after: 0,
        queue_max,
    }
}

/// `run` on `dir` with every kind of query.
fn run_all(dir: &Path, limits: WalkLimits, how: super::How) -> Option<Vec<WalkOutcome>> {
    let root = rustix::fs::open(
        dir,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .expect("open root");
    let queries = [
        WalkQuery::Setuid,
        WalkQuery::Setgid,
        WalkQuery::WorldWritable,
        named(&["id_rsa", ".env", "a.b"]),
        contains(16, 1000),
        contains(1000, 40),
    ];
    let refs: Vec<&WalkQuery> = queries.iter().collect();
    let reopen = super::super::Reopener::new();
    super::run(
        std::os::fd::AsFd::as_fd(&root),
        &reopen,
        &tp("/"),
        &refs,
        limits,
        how,
    )
    .expect("the root can be walked")
}

/// Names whose bytes sort differently from their paths: `.` and `-` come before `/`, so a
/// comparison of whole paths would put `/a.b` before `/a/x`; the walk puts `/a/x` first.
const TRICKY: [&str; 8] = ["a", "a.b", "a-b", "ab", "b", "a0", "id_rsa", ".env"];

/// A random tree of up to `max` entries: (path below the root, kind, mode, content).
fn big_tree(max: usize) -> impl Strategy<Value = Vec<(Vec<String>, u8, u32, Vec<u8>)>> {
    let path = prop::collection::vec(prop::sample::select(TRICKY.to_vec()), 1..5)
        .prop_map(|v| v.into_iter().map(String::from).collect::<Vec<_>>());
    let mode = prop::sample::select(vec![0o644, 0o4755, 0o2755, 0o666, 0o777, 0o1777, 0o755]);
    let content = prop::collection::vec(
        prop::sample::select(vec![&b"PRIVATE KEY"[..], b"xxxxxxxxxx", b"\n"]),
        0..8,
    )
    .prop_map(|parts| parts.concat());
    // Mostly directories and files, so that trees get wide and deep.
    let kind = prop::sample::select(vec![0u8, 0, 1, 1, 1, 2]);
    prop::collection::vec((path, kind, mode, content), 0..max)
}

fn sequential(dir: &Path, limits: WalkLimits) -> Vec<WalkOutcome> {
    run_all(dir, limits, super::How::Sequential).expect("the sequential walk always answers")
}

#[test]
fn walk_order_compares_components() {
    use std::cmp::Ordering::Less;
    let order = |a: &str, b: &str| super::walk_order(&tp(a), &tp(b));
    // A directory before its entries, its entries before its next sibling.
    assert_eq!(order("/a", "/a/b"), Less);
    assert_eq!(order("/a/b", "/a.b"), Less);
    assert_eq!(order("/a/z/z", "/a-b"), Less);
    assert_eq!(order("/a/b", "/ab"), Less);
    assert_eq!(order("/", "/a"), Less);
    assert_eq!(order("/usr/", "/usr/bin"), Less);
    assert_eq!(order("/usr/bin", "/usr/bin/su"), Less);
    // Within a directory: bytes, whatever their meaning.
    assert_eq!(order("/B", "/a"), Less);
    assert_eq!(order("/a\u{e9}", "/a\u{e9}t"), Less);
}

/// Every tricky name as a top directory, a subdirectory of each, and a setuid file holding a
/// key in each of those: 8 + 64 + 512 entries.
fn tricky_tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for top in TRICKY {
        for sub in TRICKY {
            let d = dir.path().join(top).join(sub);
            fs::create_dir_all(&d).expect("mkdir");
            for name in TRICKY {
                write(&d.join(name), KEY, 0o4755);
            }
        }
    }
    dir
}

/// Every order question in one tree: sorted in parallel, the matches come out as the sequential
/// walk lists them.
#[test]
fn parallel_walk_lists_matches_in_walk_order() {
    let dir = tricky_tree();
    // 8 + 64 + 512 entries, every file a match of several queries.
    let limits = WalkLimits::default();
    let want = sequential(dir.path(), limits);
    assert_eq!(want[0].examined, 1 + 8 + 64 + 512);
    assert_eq!(want[0].matches.len(), 512);
    let first: Vec<String> = want[0].matches[..9]
        .iter()
        .map(|(p, _)| p.to_string())
        .collect();
    assert_eq!(
        first,
        [
            "/.env/.env/.env",
            "/.env/.env/a",
            "/.env/.env/a-b",
            "/.env/.env/a.b",
            "/.env/.env/a0",
            "/.env/.env/ab",
            "/.env/.env/b",
            "/.env/.env/id_rsa",
            "/.env/a/.env",
        ]
    );
    for queue_max in [1, 2, 64] {
        for _ in 0..4 {
            let got = run_all(
                dir.path(),
                limits,
                super::How::ParallelOnly(forced(queue_max)),
            );
            assert_eq!(got.as_ref(), Some(&want), "queue of {queue_max}");
        }
    }
}

/// A walk over `max_entries` is answered by the sequential walk: the same entries, the same
/// matches, whatever the threads did first.
#[test]
fn parallel_walk_over_max_entries_answers_sequentially() {
    let dir = tricky_tree();
    for max_entries in [1, 2, 9, 100, 584] {
        let limits = WalkLimits {
            max_entries,
            ..WalkLimits::default()
        };
        let want = sequential(dir.path(), limits);
        assert_eq!(want[0].truncated, Some(Bound::Entries));
        assert_eq!(want[0].examined, max_entries);
        // The attempt stops (and so answers nothing) ...
        let attempt = run_all(dir.path(), limits, super::How::ParallelOnly(forced(2)));
        assert_eq!(attempt, None, "max_entries {max_entries}");
        // ... and the walk answers sequentially.
        for _ in 0..4 {
            let got = run_all(dir.path(), limits, super::How::Parallel(forced(2)));
            assert_eq!(got.as_ref(), Some(&want), "max_entries {max_entries}");
        }
    }
    // Exactly as many entries as allowed: no bound reached, so the parallel answer stands.
    let limits = WalkLimits {
        max_entries: 585,
        ..WalkLimits::default()
    };
    let want = sequential(dir.path(), limits);
    assert_eq!((want[0].truncated, want[0].examined), (None, 585));
    let got = run_all(dir.path(), limits, super::How::ParallelOnly(forced(2)));
    assert_eq!(got, Some(want));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn any_tree_parallel_equals_sequential(
        entries in big_tree(60),
        max_entries in prop::sample::select(vec![0u64, 1, 3, 7, 20, 40, 1000]),
        max_depth in 0u32..5,
        queue_max in 1usize..4,
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        build(dir.path(), &entries);
        let limits = WalkLimits { max_entries, max_depth, ..WalkLimits::default() };
        let want = sequential(dir.path(), limits);
        let got = run_all(dir.path(), limits, super::How::Parallel(forced(queue_max)));
        prop_assert_eq!(got.as_ref(), Some(&want));
        // The attempt alone: it answers exactly when no entries bound is reached, and then
        // answers as the sequential walk does.
        if max_depth > 0 {
            let attempt = run_all(dir.path(), limits, super::How::ParallelOnly(forced(queue_max)));
            match attempt {
                Some(got) => prop_assert_eq!(got, want),
                None => prop_assert_eq!(want[0].truncated, Some(Bound::Entries)),
            }
        }
    }
}
