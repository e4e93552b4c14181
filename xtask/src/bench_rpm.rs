//! The RPM case of `cargo xtask bench` (alone: `cargo xtask bench rpm`): keyhole's
//! `package_integrity` on an RPM test root against `rpm -Va --root` on the same root, in the
//! same run, as a ratio of wall times, with each one's peak RSS.
//!
//! The root: 200 packages of 50 files each (10,000 files: data of various sizes, one `%config`
//! file and one symlink per package), built by `rpmbuild` as subpackages of one spec and
//! installed by Debian's `rpm` into the root (as the rpmdb crate's tests do), cached under
//! `target/bench-rpmroot/` (the build tree and the packages are removed once installed).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, ensure};

use crate::bench::median;
use crate::{root, run};

/// Packages of the test root.
const PACKAGES: usize = 200;
/// Files per package (data files, one config file, one symlink).
const FILES: usize = 50;

/// Deterministic content of `len` bytes for file `seed`.
fn content(seed: usize, len: usize) -> Vec<u8> {
    let mut x = (seed as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The cached, installed root (built on first use).
fn rpm_root() -> Result<PathBuf> {
    let base = root().join("target/bench-rpmroot");
    let rootfs = base.join("root");
    let done = base.join("root.done");
    if done.exists() {
        return Ok(rootfs);
    }
    if base.exists() {
        std::fs::remove_dir_all(&base)?;
    }
    let tree = base.join("tree");
    let (mut pre, mut files) = (String::new(), String::new());
    for i in 0..PACKAGES {
        let name = format!("khb-p{i:03}");
        let dir = format!("/opt/khb/p{i:03}");
        writeln!(
            pre,
            "%package -n {name}\nSummary: bench {i}\nVersion: 1.{i}\nRelease: 1\n\
             %description -n {name}\nbench package {i}"
        )?;
        writeln!(files, "%files -n {name}\n%dir {dir}")?;
        let at = tree.join(&dir[1..]);
        std::fs::create_dir_all(&at)?;
        for j in 0..FILES - 2 {
            // Mostly small files, as in an image (sizes from 0 to 16 KiB, a few of 64 KiB).
            let len = if j % 16 == 0 {
                65_536
            } else {
                (i * 7919 + j * 104_729) % 16_384
            };
            std::fs::write(at.join(format!("f{j:02}")), content(i * 1000 + j, len))?;
            writeln!(files, "{dir}/f{j:02}")?;
        }
        std::fs::write(at.join("main.conf"), format!("setting = {i}\n"))?;
        writeln!(files, "%config(noreplace) {dir}/main.conf")?;
        std::os::unix::fs::symlink("f00", at.join("link"))?;
        writeln!(files, "{dir}/link")?;
    }
    let spec = format!(
        "Name: khb\nVersion: 1\nRelease: 1\nSummary: bench\nLicense: none\nBuildArch: noarch\n\
         %description\nbench\n{pre}\n%install\ncp -a %{{_sourcedir}}/. %{{buildroot}}/\n{files}"
    );
    let spec_path = base.join("bench.spec");
    std::fs::write(&spec_path, spec)?;
    let top = base.join("top");
    run(Command::new("rpmbuild")
        .arg("-bb")
        .arg("--quiet")
        .arg("--define")
        .arg(format!("_topdir {}", top.display()))
        .arg("--define")
        .arg(format!("_sourcedir {}", tree.display()))
        .args(["--define", "__os_install_post %{nil}"])
        .args(["--define", "_build_id_links none"])
        .arg(&spec_path))?;
    std::fs::remove_dir_all(&tree)?;
    let mut rpms: Vec<PathBuf> = std::fs::read_dir(top.join("RPMS/noarch"))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    rpms.sort();
    ensure!(
        rpms.len() == PACKAGES,
        "rpmbuild built {} packages",
        rpms.len()
    );
    std::fs::create_dir_all(rootfs.join("etc"))?;
    std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")?;
    std::fs::write(rootfs.join("etc/group"), "root:x:0:\n")?;
    run(Command::new("rpm")
        .arg("--root")
        .arg(&rootfs)
        .args(["--dbpath", "/var/lib/rpm", "--define", "_db_backend sqlite"])
        .args(["-i", "--nodeps", "--noscripts", "--nosignature"])
        .args(&rpms))?;
    std::fs::remove_dir_all(&top)?;
    std::fs::write(&done, "")?;
    Ok(rootfs)
}

/// The profile keyhole runs: one control, the integrity of every RPM-packaged file.
fn profile(dir: &Path) -> Result<PathBuf> {
    let path = dir.join("bench-rpm-profile.yaml");
    std::fs::write(
        &path,
        "name: bench-rpm\nversion: 0.1.0\ncontrols:\n  - id: RPM-V\n    impact: 0.7\n    \
         checks:\n      - package_integrity: {paths: [/], max_files: 100000}\n        \
         where: {manager: rpm}\n        exists: false\n",
    )?;
    Ok(path)
}

/// Runs the case (the keyhole binary is built in release mode first) and prints its table.
pub(crate) fn run_rpm_bench() -> Result<()> {
    crate::tools::apt_install(&["rpm", "time"])?;
    let rootfs = rpm_root()?;
    run(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())).args([
            "build",
            "--release",
            "--locked",
            "-p",
            "keyhole-cli",
        ]),
    )?;
    let bin = root().join("target/release/keyhole");
    let profile = profile(&root().join("target"))?;
    let (bin_s, fs_s, profile_s) = (
        bin.to_string_lossy().into_owned(),
        rootfs.to_string_lossy().into_owned(),
        profile.to_string_lossy().into_owned(),
    );
    // Both must find the root intact (keyhole: exit 0, every control passed).
    let ok = Command::new(&bin)
        .args(["scan", "--root", &fs_s, "--profile", &profile_s])
        .output()
        .context("cannot run keyhole")?;
    ensure!(
        ok.status.success(),
        "keyhole found the bench root changed or could not verify it:\n{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    let keyhole = median(&[
        &bin_s,
        "scan",
        "--root",
        &fs_s,
        "--profile",
        &profile_s,
        "--format",
        "json",
        "--out",
        "/dev/null",
    ])?;
    let rpm_va = [
        "rpm",
        "--root",
        &fs_s,
        "--dbpath",
        "/var/lib/rpm",
        "--define",
        "_db_backend sqlite",
        "-Va",
        "--nodeps",
        "--noscripts",
        "--noghost",
    ];
    let clean = Command::new(rpm_va[0]).args(&rpm_va[1..]).output()?;
    ensure!(
        clean.status.success() && clean.stdout.is_empty(),
        "rpm -Va found the bench root changed: {}",
        String::from_utf8_lossy(&clean.stdout)
    );
    let rpm = median(&rpm_va)?;
    println!(
        "\nRPM integrity, {PACKAGES} packages, {} files:\n\n| tool | wall ms | peak RSS MiB |\n|---|---|---|",
        PACKAGES * FILES
    );
    for (tool, (secs, kib)) in [
        ("keyhole package_integrity (LocalRoot)", keyhole),
        ("rpm -Va --root --noghost", rpm),
    ] {
        println!(
            "| {tool} | {:.1} | {:.1} |",
            secs * 1000.0,
            kib as f64 / 1024.0
        );
    }
    println!(
        "\nkeyhole takes {:.2}x the time of rpm -Va and {:.2}x its peak memory",
        keyhole.0 / rpm.0.max(1e-6),
        keyhole.1 as f64 / (rpm.1 as f64).max(1.0)
    );
    Ok(())
}
