//! `verify` against `rpm -Va`: a test root is tampered with (content, size, mode, owner, group,
//! removed files, a retargeted symlink, a file turned into a directory or a symlink, config and
//! ghost files) and the findings must equal rpm's, line for line.

#[path = "common/rpmroot.rs"]
mod rpmroot;

use std::collections::BTreeSet;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use keyhole_rpmdb::verify::{
    Accounts, FileClass, Ghosts, Observation, Observed, expects_directory, needs_digest,
    verify_package,
};
use keyhole_rpmdb::{DigestAlgo, Limits, Package, read_database_fd};
use sha2::Digest as _;

fn packages(root: &rpmroot::RpmRoot) -> Vec<Package> {
    let file = std::fs::File::open(root.db()).unwrap();
    read_database_fd(&file, &Limits::default()).unwrap()
}

fn in_root(root: &Path, path: &[u8]) -> PathBuf {
    root.join(std::ffi::OsStr::from_bytes(&path[1..]))
}

fn digest(algo: DigestAlgo, path: &Path) -> Option<(Vec<u8>, u64)> {
    let bytes = std::fs::read(path).ok()?;
    let d = match algo {
        DigestAlgo::Md5 => md5::Md5::digest(&bytes).to_vec(),
        DigestAlgo::Sha256 => sha2::Sha256::digest(&bytes).to_vec(),
        other => panic!("the test packages do not use {other:?}"),
    };
    Some((d, bytes.len() as u64))
}

/// What a caller observes of each file of `p` in `root` (the test's stand-in for the engine's
/// safe layer).
fn observe(root: &Path, p: &Package) -> Vec<Observation> {
    p.files_with_paths()
        .map(|(path, f)| {
            let full = in_root(root, &path);
            let Ok(mut meta) = std::fs::symlink_metadata(&full) else {
                return Observation::Missing;
            };
            if expects_directory(f) && meta.file_type().is_symlink() {
                match std::fs::metadata(&full) {
                    Ok(m) if m.is_dir() => meta = m,
                    _ => {}
                }
            }
            let link_target = meta
                .file_type()
                .is_symlink()
                .then(|| std::fs::read_link(&full).ok())
                .flatten()
                .map(|t| t.as_os_str().as_bytes().to_vec());
            let digest = if needs_digest(f, meta.mode()) {
                digest(p.digest_algo, &full)
            } else {
                None
            };
            Observation::Found(Observed {
                mode: meta.mode(),
                uid: meta.uid(),
                gid: meta.gid(),
                size: meta.size(),
                mtime: meta.mtime(),
                rdev: meta.rdev(),
                link_target,
                digest,
            })
        })
        .collect()
}

/// Our findings for the whole root, as rpm's lines.
fn accounts(root: &rpmroot::RpmRoot) -> Accounts {
    Accounts::parse(
        &std::fs::read(root.root.join("etc/passwd")).unwrap(),
        &std::fs::read(root.root.join("etc/group")).unwrap(),
    )
}

fn our_lines(root: &rpmroot::RpmRoot, ghosts: Ghosts) -> BTreeSet<Vec<u8>> {
    let accounts = accounts(root);
    packages(root)
        .iter()
        .flat_map(|p| verify_package(p, &observe(&root.root, p), &accounts, ghosts))
        .map(|f| f.rpm_line())
        .collect()
}

fn rpm_lines(root: &rpmroot::RpmRoot, ghosts: Ghosts) -> BTreeSet<Vec<u8>> {
    // rpm -Va exits 1 when something does not verify; its findings are on standard output.
    let mut args = vec!["-Va", "--nodeps", "--noscripts"];
    if ghosts == Ghosts::Skip {
        args.push("--noghost");
    }
    let out = root.rpm_status(&args);
    out.stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

#[test]
fn findings_equal_rpm_va_after_tampering() {
    let root = rpmroot::build();
    // Untouched, both find nothing.
    for ghosts in [Ghosts::Skip, Ghosts::Verify] {
        assert_eq!(rpm_lines(&root, ghosts), BTreeSet::new());
        assert_eq!(our_lines(&root, ghosts), BTreeSet::new());
    }

    rpmroot::tamper(&root.root);

    let show = |s: &BTreeSet<Vec<u8>>| {
        s.iter()
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let only = |a: &BTreeSet<Vec<u8>>, b: &BTreeSet<Vec<u8>>| show(&(a - b));
    let mut all = BTreeSet::new();
    for ghosts in [Ghosts::Skip, Ghosts::Verify] {
        let theirs = rpm_lines(&root, ghosts);
        let ours = our_lines(&root, ghosts);
        assert_eq!(
            ours,
            theirs,
            "{ghosts:?}: only ours:\n{}\nonly rpm's:\n{}",
            only(&ours, &theirs),
            only(&theirs, &ours)
        );
        let ghost_lines = theirs
            .iter()
            .filter(|l| l.windows(4).any(|w| w == b"p10/"))
            .count();
        match ghosts {
            Ghosts::Skip => assert_eq!(ghost_lines, 0, "ghost files were judged"),
            // The ghosts that appeared have their placeholder mode (0), so rpm reports them.
            Ghosts::Verify => assert_eq!(ghost_lines, 2),
        }
        all = theirs;
    }
    let theirs = all;
    // The oracle itself saw the tampering, as written out by hand here.
    for want in [
        &b"..5....T.    /opt/kh/p01/data0"[..],
        b"S.5....T.    /opt/kh/p02/data1",
        b".M.......    /opt/kh/p03/bin",
        b".....U...    /opt/kh/p04/data2",
        b"......G..    /opt/kh/p05/data0",
        b"missing     /opt/kh/p06/data1",
        b"....L....    /opt/kh/p07/link-rel",
        b"S.5....T.  c /opt/kh/p08/etc/main.conf",
        b"missing   c /opt/kh/p09/etc/main.conf",
        b".M.......    /opt/kh/p11/empty.d",
        b".M.......    /opt/kh/p12/bin",
        b"....LUG..    /opt/kh/p13/data0",
        b".......T.    /opt/kh/p14/data0",
        b"S.5....T.    /opt/kh/p15/latin-caf\xe9",
        b"S.5....T.    /opt/kh/p90/data0",
    ] {
        assert!(
            theirs.contains(want),
            "rpm did not report {:?}:\n{}",
            String::from_utf8_lossy(want),
            show(&theirs)
        );
    }
}

#[test]
fn config_findings_are_classed_apart() {
    let root = rpmroot::build();
    std::fs::write(root.root.join("opt/kh/p08/etc/main.conf"), b"x").unwrap();
    std::fs::write(root.root.join("opt/kh/p08/bin"), b"x").unwrap();
    let accounts = accounts(&root);
    let p = packages(&root)
        .into_iter()
        .find(|p| p.name == "kh-p08")
        .unwrap();
    let findings = verify_package(&p, &observe(&root.root, &p), &accounts, Ghosts::Skip);
    let classes: BTreeSet<(Vec<u8>, FileClass)> =
        findings.into_iter().map(|f| (f.path, f.class)).collect();
    let want: BTreeSet<(Vec<u8>, FileClass)> = [
        (b"/opt/kh/p08/bin".to_vec(), FileClass::Other),
        (b"/opt/kh/p08/etc/main.conf".to_vec(), FileClass::Config),
    ]
    .into();
    assert_eq!(classes, want);
}
