//! The runc comparisons on a real distribution: a Debian bookworm minbase root filesystem (merged
//! /usr, absolute `/etc/alternatives` links, setuid binaries, root-only directories), GNU tools
//! and dash inside the container. Built once with debootstrap and cached under
//! `target/rootfs/bookworm-minbase` (the same tree and marker `cargo xtask bench` uses).
//!
//! Needs root, `runc`, `debootstrap` (and the Debian mirror) and `setpriv`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use keyhole_engine::{
    FactError, FactPlan, FactRequest, FactSource, Facts, LocalRoot, ShellScript, WalkLimits,
    WalkQuery,
};

use crate::source_fixtures::{assert_same_facts, require, tp};
use crate::source_runc::{
    APP, Container, Reader, SECRET, content, proc_requests, read_of, require_root, run, status_ids,
    without_proc,
};

/// The Debian mirror apt uses on this machine.
fn mirror() -> String {
    let sources =
        std::fs::read_to_string("/etc/apt/sources.list.d/debian.sources").unwrap_or_default();
    if let Some(uri) = sources.lines().find_map(|l| l.strip_prefix("URIs:"))
        && let Some(first) = uri.split_whitespace().next()
    {
        return first.to_string();
    }
    // Only a Debian archive serves bookworm: on an Ubuntu host (a GitHub runner) apt's entries
    // are Ubuntu mirrors, and the public Debian mirror is used instead.
    let list = std::fs::read_to_string("/etc/apt/sources.list").unwrap_or_default();
    list.lines()
        .filter_map(|l| l.strip_prefix("deb "))
        .filter_map(|l| l.split_whitespace().find(|w| w.contains("://")))
        .find(|uri| uri.contains("debian"))
        .unwrap_or("http://deb.debian.org/debian")
        .to_string()
}

/// The cached minbase tree, built on first use (≈30 s), under a lock so that concurrent test
/// processes build it once.
fn debian_rootfs() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        require_root();
        let exe = std::env::current_exe().unwrap();
        let target = exe
            .ancestors()
            .nth(3)
            .expect("<target>/<profile>/deps/it-HASH");
        let cache = target.join("rootfs");
        std::fs::create_dir_all(&cache).unwrap();
        let dir = cache.join("bookworm-minbase");
        let done = dir.with_extension("done");
        let lock = std::fs::File::create(dir.with_extension("lock")).unwrap();
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).unwrap();
        if !done.exists() {
            let debootstrap = require("debootstrap", "debootstrap");
            if dir.exists() {
                std::fs::remove_dir_all(&dir).unwrap();
            }
            run(Command::new(debootstrap)
                .args(["--variant=minbase", "bookworm"])
                .arg(&dir)
                .arg(mirror())
                .env("DEBIAN_FRONTEND", "noninteractive"));
            std::fs::write(&done, "").unwrap();
        }
        dir
    })
}

/// Questions a compliance profile asks of a Debian system.
fn debian_plan() -> FactPlan {
    let mut plan = FactPlan::new();
    for p in [
        "/",
        "/etc",
        "/etc/passwd",
        "/etc/shadow",
        "/etc/os-release",
        "/etc/debian_version",
        "/bin",
        "/bin/sh",
        "/usr/bin/passwd",
        "/usr/bin/su",
        "/etc/alternatives/awk",
        "/usr/bin/awk",
        "/var/lib/dpkg/status",
        "/root",
        "/root/.bashrc",
        "/mnt",
        "/mnt/secret",
        "/tmp",
        "/var/tmp",
    ] {
        plan.add(FactRequest::Stat(tp(p)));
        plan.add(FactRequest::Read {
            path: tp(p),
            max_bytes: 256,
        });
        plan.add(FactRequest::Sha256 {
            path: tp(p),
            max_bytes: 16 << 20,
        });
        plan.add(FactRequest::Md5 {
            path: tp(p),
            max_bytes: 16 << 20,
        });
        plan.add(FactRequest::List {
            path: tp(p),
            max_entries: 10_000,
        });
    }
    let limits = WalkLimits::default();
    let names: BTreeSet<Vec<u8>> =
        [b"passwd".to_vec(), b"shadow".to_vec(), b"secret".to_vec()].into();
    for (root, query) in [
        ("/", WalkQuery::Setuid),
        ("/", WalkQuery::Setgid),
        ("/", WalkQuery::WorldWritable),
        ("/", WalkQuery::Named(names)),
        (
            "/etc",
            WalkQuery::Contains {
                pattern: b"root:".to_vec(),
                max_bytes: 64 << 10,
                max_file_size: 1 << 20,
            },
        ),
    ] {
        plan.add(FactRequest::Walk {
            root: tp(root),
            query,
            limits,
        });
    }
    for r in proc_requests() {
        plan.add(r);
    }
    for r in baseline_integrity() {
        plan.add(r);
    }
    plan
}

/// The package integrity requests of the built-in container baseline (its `integrity_paths`
/// prefixes and caps), as a scan asks them.
fn baseline_integrity() -> Vec<FactRequest> {
    let profile = keyhole_engine::Profile::builtin("container-baseline").unwrap();
    let inputs = keyhole_engine::Inputs::defaults(&profile);
    let requests: Vec<FactRequest> = keyhole_engine::plan(&profile, &inputs)
        .requests()
        .filter(|r| matches!(r, FactRequest::PackageIntegrity(_)))
        .cloned()
        .collect();
    assert!(!requests.is_empty(), "the baseline verifies packages");
    requests
}

/// The integrity reports in `facts`, each with the number of files it verified unchanged.
fn integrity_counts(facts: &Facts) -> Vec<(usize, usize)> {
    facts
        .iter()
        .filter_map(|(_, a)| match a {
            Ok(keyhole_engine::FactValue::Integrity(r)) => Some((
                r.files.len(),
                r.files
                    .iter()
                    .filter(|f| f.status == keyhole_engine::FileStatus::Unchanged)
                    .count(),
            )),
            _ => None,
        })
        .collect()
}

/// The facts about paths outside `/mnt` (a mount only the running container has).
fn outside_mnt(facts: &Facts) -> Facts {
    let mut out = Facts::default();
    for (r, a) in without_proc(facts).iter() {
        let path = match r {
            FactRequest::Stat(path)
            | FactRequest::Read { path, .. }
            | FactRequest::Sha256 { path, .. }
            | FactRequest::Md5 { path, .. }
            | FactRequest::List { path, .. } => Some(path),
            _ => None,
        };
        if !path.is_some_and(|p| p.as_bytes().starts_with(b"/mnt")) {
            out.insert(r.clone(), a.clone());
        }
    }
    out
}

/// Entries below `dir`, recursively.
fn count_below(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .map(|e| {
                let e = e.unwrap();
                let below = if e.file_type().unwrap().is_dir() {
                    count_below(&e.path())
                } else {
                    0
                };
                1 + below
            })
            .sum()
    })
}

/// The directory's facts as the container sees them: what debootstrap put in `/dev` (and
/// anything in `/proc`, `/sys`) is hidden in the container by the filesystems mounted there, so
/// walks from `/` examine that many fewer entries.
fn hide_mounted(facts: &Facts, rootfs: &Path) -> Facts {
    let hidden: u64 = ["dev", "proc", "sys"]
        .iter()
        .map(|d| count_below(&rootfs.join(d)))
        .sum();
    assert!(hidden > 0, "debootstrap puts device nodes in /dev");
    let mut out = Facts::default();
    for (r, a) in facts.iter() {
        let mut a = a.clone();
        if let (FactRequest::Walk { root, .. }, Ok(keyhole_engine::FactValue::Walk(w))) =
            (r, &mut a)
            && root.as_bytes() == b"/"
        {
            w.examined -= hidden;
        }
        out.insert(r.clone(), a);
    }
    out
}

#[test]
fn a_debian_container_gives_the_same_facts_from_every_source() {
    let rootfs = debian_rootfs();
    // The target's private files live on a tmpfs at /mnt that only UID 10001 may enter.
    let tmpfs = serde_json::json!({
        "destination": "/mnt", "type": "tmpfs", "source": "tmpfs",
        "options": ["nosuid", "nodev", "mode=700", "uid=10001", "gid=10001"],
    });
    let c = Container::start_with(rootfs, APP, &[tmpfs]);
    let make_secret = format!(
        "umask 077; printf '%s' '{}' > /mnt/secret",
        String::from_utf8_lossy(SECRET)
    );
    c.exec_script(&make_secret, APP, &[]);
    let plan = debian_plan();

    // From the host as root: the process's root is the directory (apart from /mnt).
    let by_process = LocalRoot::process(c.pid).unwrap().gather(&plan);
    let by_directory = LocalRoot::directory(rootfs).unwrap().gather(&plan);
    assert_same_facts(
        "process vs directory",
        &outside_mnt(&by_process),
        &hide_mounted(&outside_mnt(&by_directory), rootfs),
    );
    assert_eq!(read_of(&by_process, "/mnt/secret"), content(SECRET));

    // Inside, with dash and GNU tools, as root with the host root's read rights.
    let script = ShellScript::in_container().render(&plan);
    let caps = ["CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_SYS_PTRACE"];
    let inside = ShellScript::parse(&plan, &c.exec_script(&script, 0, &caps));
    assert_same_facts(
        "script as root vs LocalRoot",
        &without_proc(&inside),
        &without_proc(&by_process),
    );
    assert_eq!(status_ids(&inside), status_ids(&by_process));
    // A fresh minbase: hundreds of packaged files under the baseline's prefixes, all intact.
    let counts = integrity_counts(&inside);
    assert!(
        !counts.is_empty()
            && counts
                .iter()
                .all(|&(n, unchanged)| n > 200 && n == unchanged),
        "{counts:?}"
    );

    // As the target's UID without capabilities, inside and from the host.
    let inside = ShellScript::parse(&plan, &c.exec_script(&script, APP, &[]));
    let outside = Reader::new(&plan).gather_as(APP, c.pid);
    assert_same_facts(
        "script as 10001 vs LocalRoot as 10001",
        &without_proc(&inside),
        &without_proc(&outside),
    );
    assert_eq!(read_of(&outside, "/mnt/secret"), content(SECRET));
    assert_eq!(
        read_of(&outside, "/etc/shadow"),
        Err(FactError::PermissionDenied)
    );
    assert_eq!(
        read_of(&outside, "/root/.bashrc"),
        Err(FactError::PermissionDenied)
    );
    // The absolute link /usr/bin/awk -> /etc/alternatives/awk -> /usr/bin/mawk resolves inside.
    let mawk = std::fs::read(rootfs.join("usr/bin/mawk")).unwrap();
    let Ok(keyhole_engine::FactValue::Content(awk)) = read_of(&outside, "/usr/bin/awk") else {
        panic!("/usr/bin/awk");
    };
    assert_eq!(awk.bytes, mawk[..256]);
}
