//! Shared helpers of the fact-source tests: a hostile fixture tree, a plan that asks everything
//! about it, the shells to run scripts with, and the normalisation of what legitimately differs
//! between sources.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::Duration;

use keyhole_engine::{
    Bound, DirEntry, FactError, FactPlan, FactRequest, FactValue, Facts, FileKind, ProcFile,
    TargetPath, WalkLimits, WalkQuery,
};

/// A path inside the target.
pub(crate) fn tp(p: impl AsRef<[u8]>) -> TargetPath {
    TargetPath::new(p.as_ref()).expect("absolute test path")
}

/// Runs `f` on a thread and fails the test if it has not returned after `secs`: the guard that
/// turns "blocked on a FIFO" into a failure instead of a hung test run. (A guard, not a timing
/// assertion: it only fires when something blocks.)
pub(crate) fn within<T: Send + 'static>(
    secs: u64,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(v) => v,
        Err(_) => panic!("{what} did not finish within {secs} s: something blocked (a FIFO?)"),
    }
}

/// The path of a program, or a failing test that says what to install.
pub(crate) fn require(program: &str, package: &str) -> PathBuf {
    for dir in ["/usr/bin", "/bin", "/usr/sbin", "/sbin"] {
        let p = Path::new(dir).join(program);
        if p.exists() {
            return p;
        }
    }
    panic!("`{program}` is missing: these tests need it (apt-get install -y {package})");
}

/// A directory with busybox applet links for every applet (so a script run with it as `PATH`
/// uses busybox's `find`, `stat`, `od`, … and not GNU's). It lives in cargo's scratch directory
/// for integration tests, so runs reuse it and nothing is left in the system's temp dir.
pub(crate) fn busybox_bin() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let busybox = require("busybox", "busybox-static");
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("busybox-applets");
        std::fs::create_dir_all(&dir).expect("applet dir");
        let list = Command::new(&busybox)
            .arg("--list")
            .output()
            .expect("busybox --list");
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            let _ = symlink(&busybox, dir.join(applet));
        }
        dir
    })
}

/// The shells every script test runs with: dash with the GNU tools, and busybox `sh` with
/// busybox applets only.
pub(crate) fn shells() -> Vec<(&'static str, Command)> {
    let dash = require("dash", "dash");
    let mut d = Command::new(dash);
    d.env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    let busybox = require("busybox", "busybox-static");
    let mut b = Command::new(busybox);
    b.arg("sh").env("PATH", busybox_bin());
    vec![("dash", d), ("busybox sh", b)]
}

/// Shells as in an image without findutils (UBI-minimal: bash as `sh`, coreutils, no `find`, no
/// `xargs`): dash and bash, each with a `PATH` of links to every program of the host's
/// `/usr/sbin`, `/usr/bin`, `/sbin` and `/bin` but `find` and `xargs`, and `sh` that shell.
/// (busybox sh is not among them: it runs its own `find` applet whatever `PATH` says.)
pub(crate) fn shells_without_find() -> Vec<(&'static str, Command)> {
    let mut out = Vec::new();
    for (name, shell) in [("dash", "dash"), ("bash", "bash")] {
        let shell = require(shell, shell);
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("no-findutils-{name}"));
        std::fs::create_dir_all(&dir).expect("bin dir");
        for from in ["/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
            let Ok(entries) = std::fs::read_dir(from) else {
                continue;
            };
            for e in entries.flatten() {
                let n = e.file_name();
                if n == "find" || n == "xargs" || n == "sh" {
                    continue;
                }
                // The first directory in PATH order wins; an existing link is kept.
                let _ = symlink(e.path(), dir.join(&n));
            }
        }
        let sh = dir.join("sh");
        let _ = std::fs::remove_file(&sh);
        symlink(&shell, &sh).expect("sh link");
        for gone in ["find", "xargs"] {
            assert!(
                std::fs::symlink_metadata(dir.join(gone)).is_err(),
                "{gone} in {}",
                dir.display()
            );
        }
        assert!(dir.join("stat").exists(), "no stat in {}", dir.display());
        let mut c = Command::new(&shell);
        c.env("PATH", &dir);
        out.push((name, c));
    }
    out
}

/// Facts with what legitimately differs between sources removed: the time taken and the OS's
/// wording of I/O errors.
pub(crate) fn normalise(facts: &Facts) -> Vec<(FactRequest, Result<FactValue, FactError>)> {
    let norm_err = |e: &FactError| match e {
        FactError::Io(_) => FactError::Io(String::new()),
        other => other.clone(),
    };
    facts
        .iter()
        .map(|(r, a)| {
            let a = match a {
                // Which entries a bound cut off is up to the source (directory order): only the
                // bound and the count are the same.
                Ok(FactValue::Entries(v, Some(bound))) => Ok(FactValue::Entries(
                    v.iter()
                        .map(|_| DirEntry {
                            name: Vec::new(),
                            kind: FileKind::File,
                        })
                        .collect(),
                    Some(*bound),
                )),
                Ok(FactValue::Walk(w)) => {
                    let mut w = w.clone();
                    if matches!(w.truncated, Some(Bound::Entries | Bound::Time)) {
                        w.matches.clear();
                        w.skipped.clear();
                    }
                    for (_, e) in &mut w.skipped {
                        *e = norm_err(e);
                    }
                    Ok(FactValue::Walk(w))
                }
                Ok(v) => Ok(v.clone()),
                Err(e) => Err(norm_err(e)),
            };
            (r.clone(), a)
        })
        .collect()
}

/// Asserts two gatherings agree request by request (with a readable diff of the first
/// disagreement).
pub(crate) fn assert_same_facts(what: &str, a: &Facts, b: &Facts) {
    let (a, b) = (normalise(a), normalise(b));
    assert_eq!(a.len(), b.len(), "{what}: different numbers of answers");
    for ((ra, xa), (rb, xb)) in a.iter().zip(&b) {
        assert_eq!(ra, rb, "{what}: different requests");
        assert_eq!(xa, xb, "{what}: different answers to {ra:?}");
    }
}

/// The answer to `r`, which must be in the facts.
pub(crate) fn answer<'a>(facts: &'a Facts, r: &FactRequest) -> &'a Result<FactValue, FactError> {
    facts.get(r).unwrap_or_else(|| panic!("no answer to {r:?}"))
}

/// Names that break naive quoting, line parsing or UTF-8 decoding.
pub(crate) fn hostile_names() -> Vec<Vec<u8>> {
    vec![
        b"\xff\xfe latin1 \xe9".to_vec(),
        b"new\nline".to_vec(),
        b"trailing newline\n".to_vec(),
        b"sp ace".to_vec(),
        b"-n".to_vec(),
        b"*".to_vec(),
        b"[a]?".to_vec(),
        b"%s%d\\n".to_vec(),
        b"'quote\"".to_vec(),
        b"$(touch pwned)`id`".to_vec(),
        b"@E 0 ok".to_vec(),
        b".hidden".to_vec(),
        b"..dots".to_vec(),
        b"tab\there".to_vec(),
    ]
}

/// The file outside every fixture root that no answer may ever contain.
pub(crate) const CANARY: &[u8] = b"CANARY: the scanner's own file\n";

/// A fixture: a target root with every kind of hostile content, and a canary file beside it.
pub(crate) struct Fixture {
    /// Holds the directory.
    _dir: tempfile::TempDir,
    /// The target root.
    pub(crate) root: PathBuf,
    /// Outside the root.
    pub(crate) canary: PathBuf,
}

fn write(path: &Path, content: &[u8], mode: u32) {
    std::fs::write(path, content).expect("write fixture file");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn mkdir(path: &Path, mode: u32) {
    std::fs::create_dir_all(path).expect("mkdir");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Builds the fixture (needs root for the device node).
pub(crate) fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    let canary = dir.path().join("canary");
    write(&canary, CANARY, 0o644);
    let r = |p: &str| root.join(p);
    mkdir(&r("etc"), 0o755);
    write(
        &r("etc/passwd"),
        b"root:x:0:0:root:/root:/bin/sh\napp:x:10001:10001::/home/app:/bin/sh\n",
        0o644,
    );
    write(&r("etc/shadow"), b"root:*:19000:0:99999:7:::\n", 0o600);
    write(&r("etc/hostname"), b"inside\n", 0o644);
    write(&r("etc/empty"), b"", 0o644);
    // Escapes that must resolve inside the root.
    symlink("/etc/hostname", r("etc/abs")).unwrap();
    symlink("../etc/hostname", r("etc/rel")).unwrap();
    symlink("../../../../../etc/hostname", r("etc/dotdot")).unwrap();
    symlink(&canary, r("etc/host-canary")).unwrap();
    symlink("../../canary", r("etc/up-canary")).unwrap();
    symlink("/../../canary", r("etc/abs-up-canary")).unwrap();
    symlink("loop2", r("etc/loop1")).unwrap();
    symlink("loop1", r("etc/loop2")).unwrap();
    symlink("/nonexistent", r("etc/dangling")).unwrap();
    symlink("/usr/bin/", r("etc/dirlink")).unwrap();
    symlink("link\nwith newline", r("etc/odd-link")).unwrap();
    mkdir(&r("usr/bin"), 0o755);
    write(&r("usr/bin/tool"), b"#!/bin/sh\necho tool\n", 0o755);
    write(&r("usr/bin/suid"), b"suid", 0o4755);
    write(&r("usr/bin/sgid"), b"sgid", 0o2755);
    symlink("usr/bin", r("bin")).unwrap();
    mkdir(&r("tmp"), 0o1777);
    write(&r("tmp/ww"), b"world-writable", 0o666);
    mkdir(&r("tmp/wwdir"), 0o777);
    mkdir(&r("tmp/sticky"), 0o1777);
    // Special files: never opened for reading.
    rustix::fs::mknodat(
        rustix::fs::CWD,
        r("tmp/fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .expect("mkfifo");
    mkdir(&r("dev"), 0o755);
    rustix::fs::mknodat(
        rustix::fs::CWD,
        r("dev/zero"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o666),
        rustix::fs::makedev(1, 5),
    )
    .expect("mknod (the tests run as root)");
    let _socket = std::os::unix::net::UnixListener::bind(r("tmp/sock")).expect("socket");
    // A huge sparse file: reads must stay bounded.
    let big = std::fs::File::create(r("tmp/huge")).unwrap();
    big.set_len(1 << 40).unwrap();
    mkdir(&r("names"), 0o755);
    for name in hostile_names() {
        let p = r("names").join(OsStr::from_bytes(&name));
        write(&p, &name, 0o644);
    }
    mkdir(&r("keys"), 0o700);
    write(
        &r("keys/id"),
        b"junk\n-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n",
        0o600,
    );
    write(&r("keys/other"), b"nothing to see\n", 0o644);
    Fixture {
        _dir: dir,
        root,
        canary,
    }
}

/// Every path of the fixture worth asking about, plus ones that do not exist.
pub(crate) fn fixture_paths() -> Vec<TargetPath> {
    let mut paths: Vec<TargetPath> = [
        "/",
        "/etc",
        "/etc/",
        "/etc/passwd",
        "/etc/shadow",
        "/etc/hostname",
        "/etc/empty",
        "/etc/abs",
        "/etc/rel",
        "/etc/dotdot",
        "/etc/host-canary",
        "/etc/up-canary",
        "/etc/abs-up-canary",
        "/etc/loop1",
        "/etc/loop1/x",
        "/etc/dangling",
        "/etc/dirlink",
        "/etc/dirlink/",
        "/etc/dirlink/tool",
        "/etc/odd-link",
        "/etc/passwd/",
        "/etc/passwd/x",
        "/bin",
        "/bin/",
        "/bin/tool",
        "/bin/../etc/passwd",
        "/../../etc/passwd",
        "/usr/bin/suid",
        "/tmp/fifo",
        "/tmp/sock",
        "/dev/zero",
        "/tmp/huge",
        "/missing",
        "/missing/x",
        "/etc/./hostname",
        "//etc//hostname",
        "/keys/id",
        "/canary",
        "/etc/abs/",
    ]
    .iter()
    .map(tp)
    .collect();
    for name in hostile_names() {
        paths.push(tp("/names").join(&name).unwrap());
    }
    paths
}

/// A plan asking everything about the fixture.
pub(crate) fn fixture_plan() -> FactPlan {
    let mut plan = FactPlan::new();
    for p in fixture_paths() {
        plan.add(FactRequest::Stat(p.clone()));
        plan.add(FactRequest::Read {
            path: p.clone(),
            max_bytes: 64,
        });
        plan.add(FactRequest::Sha256 {
            path: p.clone(),
            max_bytes: 1 << 20,
        });
        plan.add(FactRequest::Md5 {
            path: p.clone(),
            max_bytes: 1 << 20,
        });
        plan.add(FactRequest::List {
            path: p,
            max_entries: 100,
        });
    }
    plan.add(FactRequest::Read {
        path: tp("/etc/passwd"),
        max_bytes: 5,
    });
    plan.add(FactRequest::Read {
        path: tp("/etc/passwd"),
        max_bytes: 0,
    });
    plan.add(FactRequest::List {
        path: tp("/names"),
        max_entries: 3,
    });
    let limits = WalkLimits::default();
    // Directories, files and links (`bin`, `odd-link`: their link text is reported).
    let names: BTreeSet<Vec<u8>> = [
        b"tool".to_vec(),
        b"new\nline".to_vec(),
        b"usr".to_vec(),
        b"bin".to_vec(),
        b"odd-link".to_vec(),
    ]
    .into_iter()
    .chain(std::iter::once(b"\xff\xfe latin1 \xe9".to_vec()))
    .collect();
    for query in [
        WalkQuery::Setuid,
        WalkQuery::Setgid,
        WalkQuery::WorldWritable,
        WalkQuery::Named(names),
        WalkQuery::Contains {
            pattern: b"-----BEGIN OPENSSH PRIVATE KEY-----".to_vec(),
            max_bytes: 4096,
            max_file_size: 1 << 20,
        },
        WalkQuery::Contains {
            pattern: b"\nabc".to_vec(),
            max_bytes: 4096,
            max_file_size: 1 << 20,
        },
    ] {
        for root in ["/", "/bin", "/etc/dirlink/", "/missing", "/etc/passwd"] {
            plan.add(FactRequest::Walk {
                root: tp(root),
                query: query.clone(),
                limits,
            });
        }
    }
    for max_depth in [0, 1, 2] {
        plan.add(FactRequest::Walk {
            root: tp("/"),
            query: WalkQuery::WorldWritable,
            limits: WalkLimits {
                max_depth,
                ..limits
            },
        });
    }
    for max_entries in [0, 1, 5, 1000] {
        plan.add(FactRequest::Walk {
            root: tp("/usr"),
            query: WalkQuery::Setuid,
            limits: WalkLimits {
                max_entries,
                ..limits
            },
        });
    }
    plan.add(FactRequest::Proc {
        file: ProcFile::Status,
        max_bytes: 4096,
    });
    plan
}
