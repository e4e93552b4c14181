//! `FactRequest::ReadDir` (distroless `/var/lib/dpkg/status.d/`): dash and busybox `sh` give
//! exactly `LocalRoot`'s answer on a directory built to be awkward (hidden, special, linked,
//! oversized and oddly named entries), and the bound is reported by both.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::Path;

use keyhole_engine::{
    Bound, FactError, FactPlan, FactRequest, FactSource, FactValue, LocalRoot, ShellScript,
};

use crate::source_fixtures::{answer, assert_same_facts, shells, tp, within};

fn read_dir(max_files: u64, max_bytes: u64) -> FactRequest {
    FactRequest::ReadDir {
        path: tp("/var/lib/dpkg/status.d"),
        max_files,
        max_bytes,
    }
}

/// An awkward status.d below `root`.
fn awkward(root: &Path) {
    let d = root.join("var/lib/dpkg/status.d");
    std::fs::create_dir_all(d.join("subdir")).unwrap();
    std::fs::write(d.join("libc6"), "Package: libc6\nVersion: 2.36\n").unwrap();
    std::fs::write(d.join("base files"), "Package: base-files\n").unwrap();
    std::fs::write(d.join(std::ffi::OsStr::from_bytes(b"caf\xe9")), "x").unwrap();
    std::fs::write(d.join("big"), vec![b'a'; 5000]).unwrap();
    std::fs::write(d.join(".hidden"), "Package: hidden\n").unwrap();
    std::fs::write(d.join("$(touch pwned)"), "").unwrap();
    std::fs::write(root.join("outside"), "Package: outside\n").unwrap();
    symlink("/outside", d.join("link")).unwrap();
    symlink("libc6", d.join("relative-link")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        d.join("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
}

#[test]
fn the_script_reads_a_directory_as_local_root_does() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    awkward(&root);
    let mut plan = FactPlan::new();
    for r in [read_dir(100, 1000), read_dir(2, 1000)] {
        plan.add(r);
    }
    let local = LocalRoot::directory(&root).unwrap().gather(&plan);
    let Ok(FactValue::Files(files, None)) = answer(&local, &read_dir(100, 1000)) else {
        panic!("{:?}", answer(&local, &read_dir(100, 1000)));
    };
    let names: Vec<&[u8]> = files.iter().map(|f| f.name.as_slice()).collect();
    // Regular files only, hidden ones and links left out, in byte order.
    assert_eq!(
        names,
        [
            b"$(touch pwned)".as_slice(),
            b"base files",
            b"big",
            b"caf\xe9",
            b"libc6"
        ]
    );
    let big = files.iter().find(|f| f.name == b"big").unwrap();
    assert!(big.content.as_ref().unwrap().truncated);
    assert!(matches!(
        answer(&local, &read_dir(2, 1000)),
        Ok(FactValue::Files(f, Some(Bound::Entries))) if f.len() == 2
    ));
    for (name, shell) in shells() {
        let script = ShellScript::in_container()
            .with_root_prefix(&root)
            .unwrap()
            .with_pid(None);
        let plan = plan.clone();
        let facts = within(60, name, move || script.run_local(&plan, shell).unwrap());
        assert_same_facts(name, &local, &facts);
    }
    assert!(!root.join("pwned").exists(), "a name was executed");
}

#[test]
fn a_missing_directory_is_not_found_everywhere() {
    let tmp = tempfile::tempdir().unwrap();
    let mut plan = FactPlan::new();
    plan.add(read_dir(10, 10));
    let local = LocalRoot::directory(tmp.path()).unwrap().gather(&plan);
    assert_eq!(answer(&local, &read_dir(10, 10)), &Err(FactError::NotFound));
    for (name, shell) in shells() {
        let script = ShellScript::in_container()
            .with_root_prefix(tmp.path())
            .unwrap()
            .with_pid(None);
        let plan = plan.clone();
        let facts = within(60, name, move || script.run_local(&plan, shell).unwrap());
        assert_same_facts(name, &local, &facts);
    }
}
