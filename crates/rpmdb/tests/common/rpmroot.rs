//! A test root with a real `rpmdb.sqlite`: packages generated as a build tree, built by
//! `rpmbuild` (one spec, many subpackages), installed by Debian's `rpm` into the root.
//!
//! The generator covers what the reader must get right: epochs and vendors on some packages,
//! `%config`, `%config(noreplace)`, `%doc` and `%ghost` files, directories, relative and absolute
//! symlinks, empty files, other owners and modes, names that are not UTF-8, and one package
//! built with MD5 digests (no `FILEDIGESTALGO` tag) beside the SHA-256 ones.

// Shared by several test binaries, each of which uses only part of it.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Packages in the generated set (plus the one built with MD5 digests).
pub(crate) const PACKAGES: usize = 40;
/// Packages installed with `--excludedocs` (the last ones, the MD5 package among them).
pub(crate) const NODOCS: usize = 3;

/// A generated, installed test root; removed when dropped.
pub(crate) struct RpmRoot {
    /// Keeps the directory alive.
    _dir: tempfile::TempDir,
    /// The root packages were installed into.
    pub(crate) root: PathBuf,
}

impl RpmRoot {
    /// The database rpm wrote.
    pub(crate) fn db(&self) -> PathBuf {
        self.root.join("var/lib/rpm/rpmdb.sqlite")
    }

    /// `rpm --root ROOT --dbpath /var/lib/rpm ARGS`, its standard output (it must succeed).
    pub(crate) fn rpm(&self, args: &[&str]) -> Vec<u8> {
        let out = self.rpm_status(args);
        assert!(
            out.status.success(),
            "rpm {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// `rpm --root ROOT --dbpath /var/lib/rpm ARGS`, whatever its exit status.
    pub(crate) fn rpm_status(&self, args: &[&str]) -> std::process::Output {
        Command::new("rpm")
            .arg("--root")
            .arg(&self.root)
            .args(["--dbpath", "/var/lib/rpm", "--define", "_db_backend sqlite"])
            .args(args)
            .output()
            .expect("running rpm")
    }
}

/// Fails, saying how to get the tool, when `tool` is not installed.
fn require(tool: &str) {
    let found = Command::new(tool).arg("--version").output().is_ok();
    assert!(
        found,
        "`{tool}` is not installed: these tests compare with the real rpm. Install Debian's \
         `rpm` package (`apt-get install rpm`; the project's tool list installs it)"
    );
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Deterministic content of `len` bytes for file `seed`.
fn content(seed: usize, len: usize) -> Vec<u8> {
    let mut x = (seed as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (x >> 56) as u8
        })
        .collect()
}

/// Writes a file of the tree, dated 2020 so that any later write changes its mtime (rpm -V's
/// `T`) whatever the speed of the test.
fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
    let past = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_577_836_800);
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(past)
        .unwrap();
}

/// One subpackage: its preamble and `%files` section; its files are written under `tree`.
fn package(i: usize, tree: &Path) -> (String, String) {
    let name = format!("kh-p{i:02}");
    let base = format!("/opt/kh/p{i:02}");
    let dir = tree.join(&base[1..]);
    let mut pre = format!(
        "%package -n {name}\nSummary: generated {i}\nVersion: 1.{i}\nRelease: {}\n",
        i % 5 + 1
    );
    if i.is_multiple_of(3) {
        writeln!(pre, "Epoch: {}", i / 3).unwrap();
    }
    if i.is_multiple_of(4) {
        writeln!(pre, "Vendor: Keyhole Test Vendor {}", i % 8).unwrap();
    }
    writeln!(pre, "%description -n {name}\ngenerated package {i}").unwrap();

    let mut files = format!("%files -n {name}\n%dir {base}\n");
    write(&dir.join("bin"), &content(i, 100 + i * 37));
    writeln!(files, "%attr(0755,root,root) {base}/bin").unwrap();
    for j in 0..(3 + i % 7) {
        let f = format!("data{j}");
        write(
            &dir.join(&f),
            &content(i * 100 + j, (i * 53 + j * 211) % 3000),
        );
        match (i + j) % 4 {
            0 => writeln!(files, "%attr(0640,daemon,adm) {base}/{f}"),
            1 => writeln!(files, "%attr(0600,bin,bin) {base}/{f}"),
            _ => writeln!(files, "{base}/{f}"),
        }
        .unwrap();
    }
    write(
        &dir.join("etc/main.conf"),
        format!("setting = {i}\n").as_bytes(),
    );
    let config = if i.is_multiple_of(2) {
        "%config(noreplace)"
    } else {
        "%config"
    };
    writeln!(files, "{config} {base}/etc/main.conf").unwrap();
    write(&dir.join("doc/README"), format!("package {i}\n").as_bytes());
    writeln!(files, "%doc {base}/doc/README").unwrap();
    writeln!(files, "%ghost {base}/state.log").unwrap();
    writeln!(files, "%ghost %config(missingok) {base}/etc/local.conf").unwrap();
    write(&dir.join("empty"), b"");
    writeln!(files, "{base}/empty").unwrap();
    std::os::unix::fs::symlink("bin", dir.join("link-rel")).unwrap();
    std::os::unix::fs::symlink(format!("{base}/etc/main.conf"), dir.join("link-abs")).unwrap();
    writeln!(files, "{base}/link-rel\n{base}/link-abs").unwrap();
    std::fs::create_dir_all(dir.join("empty.d")).unwrap();
    writeln!(files, "%dir %attr(0750,root,adm) {base}/empty.d").unwrap();
    if i.is_multiple_of(5) {
        // Latin-1 and invalid UTF-8 names, listed through a glob (a spec file is text).
        for (k, raw) in [&b"caf\xe9"[..], b"bad\xff\xfename"].iter().enumerate() {
            let mut n = b"latin-".to_vec();
            n.extend_from_slice(raw);
            write(&dir.join(OsStr::from_bytes(&n)), &content(i + k, 10 + k));
        }
        writeln!(files, "{base}/latin-*").unwrap();
    }
    (pre, files)
}

/// Builds every package of `spec` with `rpmbuild`; returns the built RPMs.
fn rpmbuild(work: &Path, label: &str, spec: &str, tree: &Path, defines: &[&str]) -> Vec<PathBuf> {
    let top = work.join(format!("top-{label}"));
    let spec_path = work.join(format!("{label}.spec"));
    std::fs::write(&spec_path, spec).unwrap();
    let mut cmd = Command::new("rpmbuild");
    cmd.arg("-bb")
        .arg("--quiet")
        .arg("--define")
        .arg(format!("_topdir {}", top.display()))
        .arg("--define")
        .arg(format!("_sourcedir {}", tree.display()))
        // No brp scripts (strip, compression): the tree is installed as generated.
        .args(["--define", "__os_install_post %{nil}"])
        .args(["--define", "_build_id_links none"])
        // Names that are not UTF-8 are the point of some packages.
        .args(["--define", "_invalid_encoding_terminates_build 0"]);
    for d in defines {
        cmd.args(["--define", d]);
    }
    run(cmd.arg(&spec_path));
    let rpms = top.join("RPMS/noarch");
    let mut out: Vec<PathBuf> = std::fs::read_dir(&rpms)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    out.sort();
    out
}

fn spec(main: &str, packages: &str, files: &str) -> String {
    format!(
        "Name: {main}\nVersion: 1\nRelease: 1\nSummary: generated\nLicense: none\n\
         BuildArch: noarch\n%description\ngenerated\n{packages}\n%install\n\
         cp -a %{{_sourcedir}}/. %{{buildroot}}/\n{files}"
    )
}

/// Generates, builds and installs the test packages into a new root.
pub(crate) fn build() -> RpmRoot {
    require("rpm");
    require("rpmbuild");
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path();
    let tree = work.join("tree");
    let (mut pre, mut files) = (String::new(), String::new());
    for i in 0..PACKAGES {
        let (p, f) = package(i, &tree);
        pre.push_str(&p);
        files.push_str(&f);
    }
    let mut rpms = rpmbuild(work, "sha256", &spec("kh-gen", &pre, &files), &tree, &[]);
    std::fs::remove_dir_all(&tree).unwrap();

    // One package with MD5 file digests, as rpm wrote them before 4.6.
    let (pre, files) = package(90, &tree);
    let pre = pre.replace("%package -n kh-p90", "%package -n kh-md5");
    let files = files.replace("%files -n kh-p90", "%files -n kh-md5");
    let pre = pre.replace("%description -n kh-p90", "%description -n kh-md5");
    rpms.extend(rpmbuild(
        work,
        "md5",
        &spec("kh-gen-md5", &pre, &files),
        &tree,
        &["_binary_filedigest_algorithm 1"],
    ));

    let root = work.join("root");
    // The owners the packages name, so that rpm installs files with them (rpm reads the
    // root's own account files).
    write(
        &root.join("etc/passwd"),
        b"root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1::/:/sbin/nologin\nbin:x:2:2::/:/sbin/nologin\n",
    );
    write(
        &root.join("etc/group"),
        b"root:x:0:\ndaemon:x:1:\nbin:x:2:\nadm:x:4:\n",
    );
    let root_fs = RpmRoot { _dir: dir, root };
    // The last packages are installed as UBI images are built (`tsflags=nodocs`): their
    // documentation is recorded as not installed.
    let nodocs = rpms.len() - NODOCS;
    for (batch, extra) in [
        (&rpms[..nodocs], None),
        (&rpms[nodocs..], Some("--excludedocs")),
    ] {
        let mut install = vec!["-i", "--nodeps", "--noscripts", "--nosignature"];
        install.extend(extra);
        install.extend(batch.iter().map(|p| p.to_str().unwrap()));
        root_fs.rpm(&install);
    }
    root_fs
}

/// The tampering both differential tests apply (`rpm -Va` against keyhole's verification):
/// content, size, mode, owner, group, removed, retargeted symlink, config edited and removed,
/// ghosts appearing, a directory's mode, a file turned into a directory and into a symlink, a
/// non-UTF-8 name, the MD5 package, and the timestamp alone.
pub(crate) fn tamper(root: &Path) {
    let r = |p: &str| root.join(p.trim_start_matches('/'));
    // Content changed, same size.
    let data = std::fs::read(r("/opt/kh/p01/data0")).unwrap();
    let flipped: Vec<u8> = data.iter().map(|b| b ^ 1).collect();
    std::fs::write(r("/opt/kh/p01/data0"), &flipped).unwrap();
    // Size changed.
    let mut f = std::fs::read(r("/opt/kh/p02/data1")).unwrap();
    f.extend_from_slice(b"appended");
    std::fs::write(r("/opt/kh/p02/data1"), &f).unwrap();
    // Mode, owner, group.
    std::fs::set_permissions(
        r("/opt/kh/p03/bin"),
        std::os::unix::fs::PermissionsExt::from_mode(0o4755),
    )
    .unwrap();
    std::os::unix::fs::lchown(r("/opt/kh/p04/data2"), Some(1), None).unwrap();
    std::os::unix::fs::lchown(r("/opt/kh/p05/data0"), None, Some(4)).unwrap();
    // Removed.
    std::fs::remove_file(r("/opt/kh/p06/data1")).unwrap();
    // Symlink retargeted.
    std::fs::remove_file(r("/opt/kh/p07/link-rel")).unwrap();
    std::os::unix::fs::symlink("/etc/shadow", r("/opt/kh/p07/link-rel")).unwrap();
    // A config file edited, a config file removed.
    std::fs::write(r("/opt/kh/p08/etc/main.conf"), b"setting = evil\n").unwrap();
    std::fs::remove_file(r("/opt/kh/p09/etc/main.conf")).unwrap();
    // Ghost files appearing, with any content: never judged.
    std::fs::write(r("/opt/kh/p10/state.log"), b"log line\n").unwrap();
    std::fs::write(r("/opt/kh/p10/etc/local.conf"), b"local\n").unwrap();
    // A directory's mode.
    std::fs::set_permissions(
        r("/opt/kh/p11/empty.d"),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    // A file replaced by a directory, another by a symlink.
    std::fs::remove_file(r("/opt/kh/p12/bin")).unwrap();
    std::fs::create_dir(r("/opt/kh/p12/bin")).unwrap();
    std::fs::remove_file(r("/opt/kh/p13/data0")).unwrap();
    std::os::unix::fs::symlink("data1", r("/opt/kh/p13/data0")).unwrap();
    // A file whose name is not UTF-8, and a file of the MD5 package.
    let latin = root.join(OsStr::from_bytes(b"opt/kh/p15/latin-caf\xe9"));
    std::fs::write(&latin, b"changed!!!!").unwrap();
    std::fs::write(r("/opt/kh/p90/data0"), b"md5 package, tampered").unwrap();
    // The timestamp alone: not judged (`--nomtime`).
    let t = std::fs::File::options()
        .write(true)
        .open(r("/opt/kh/p14/data0"))
        .unwrap();
    t.set_modified(std::time::SystemTime::UNIX_EPOCH).unwrap();
}
