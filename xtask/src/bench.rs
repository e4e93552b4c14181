//! `cargo xtask bench`: speed and memory, as ratios against baselines measured in the same run
//! (never as timed assertions in tests).
//!
//! The engine: `keyhole scan --root` with the built-in profile on a Debian minbase rootfs, next
//! to a plain `find ROOT -xdev` walk (the floor) and OpenSCAP's `oscap-chroot` (a peer; its
//! Debian content applies to bullseye, so both tools also scan a bullseye minbase rootfs).
//! Rootfs trees are built once with debootstrap and cached under `target/rootfs/`.
//!
//! The secure session: API calls and wall time of setup, verification and teardown against the
//! fake API server with 20 ms latency per call (`examples/access_bench.rs` of `keyhole-cli`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context as _, Result, bail, ensure};

use crate::{root, run, show};

const MIRROR: &str = "http://deb.debian.org/debian";
const SSG_DEBIAN11: &str = "/usr/share/xml/scap/ssg/content/ssg-debian11-ds.xml";
const RUNS: usize = 3;

/// A cached `debootstrap --variant=minbase SUITE` tree.
fn rootfs(suite: &str) -> Result<PathBuf> {
    let dir = root().join(format!("target/rootfs/{suite}-minbase"));
    let done = dir.with_extension("done");
    if done.exists() {
        return Ok(dir);
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    run(Command::new("debootstrap")
        .args(["--variant=minbase", suite])
        .arg(&dir)
        .arg(MIRROR))?;
    std::fs::write(&done, "")?;
    Ok(dir)
}

/// Wall seconds and peak RSS (KiB) of one run, from GNU time.
fn measure(cmd: &[&str]) -> Result<(f64, u64)> {
    let report = std::env::temp_dir().join("keyhole-bench-time.txt");
    let mut c = Command::new("/usr/bin/time");
    c.args(["-f", "%e %M", "-o"]).arg(&report).args(cmd);
    c.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let status = c
        .status()
        .with_context(|| format!("cannot run {}", show(&c)))?;
    // oscap exits 2 when a rule fails; keyhole 1 when a threshold is not met: both measured.
    ensure!(
        status.code().is_some_and(|c| c <= 2),
        "{} failed: {status}",
        show(&c)
    );
    let text = std::fs::read_to_string(&report)?;
    // GNU time puts "Command exited with non-zero status N" first when the command failed.
    let last = text.lines().last().unwrap_or_default();
    let mut f = last.split_whitespace();
    let secs: f64 = f.next().context("no time")?.parse()?;
    let kib: u64 = f.next().context("no rss")?.parse()?;
    Ok((secs, kib))
}

fn median(cmd: &[&str]) -> Result<(f64, u64)> {
    let mut runs = (0..RUNS)
        .map(|_| measure(cmd))
        .collect::<Result<Vec<_>>>()?;
    runs.sort_by(|a, b| a.0.total_cmp(&b.0));
    Ok(runs[RUNS / 2])
}

fn keyhole_controls(bin: &Path, rootfs: &Path) -> Result<usize> {
    let out = root().join("target/bench-hdf.json");
    let status = Command::new(bin)
        .args(["scan", "--root"])
        .arg(rootfs)
        .args(["--format", "json", "--out"])
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .status()?;
    ensure!(
        status.code().is_some_and(|c| c <= 1),
        "keyhole scan failed: {status}"
    );
    let hdf: serde_json::Value = serde_json::from_slice(&std::fs::read(&out)?)?;
    Ok(hdf["profiles"][0]["controls"]
        .as_array()
        .map_or(0, Vec::len))
}

/// Rules oscap actually evaluated (pass/fail/error), from its XCCDF results.
fn oscap_rules(results: &Path) -> Result<usize> {
    let xml = std::fs::read_to_string(results)?;
    Ok(xml
        .split("<rule-result")
        .skip(1)
        .filter(|r| {
            let res = r
                .split("<result>")
                .nth(1)
                .and_then(|s| s.split("</result>").next())
                .unwrap_or("");
            matches!(res, "pass" | "fail" | "error")
        })
        .count())
}

pub(crate) fn run_bench() -> Result<()> {
    crate::tools::apt_install(&[
        "debootstrap",
        "time",
        "openscap-scanner",
        "openscap-utils",
        "ssg-debian",
        "ssg-base",
    ])?;
    let bookworm = rootfs("bookworm")?;
    let bullseye = rootfs("bullseye")?;
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
    let bin_s = bin.to_string_lossy().into_owned();
    let results = root().join("target/bench-oscap.xml");
    let results_s = results.to_string_lossy().into_owned();

    let mut rows = Vec::new();
    for (name, fs) in [("bookworm", &bookworm), ("bullseye", &bullseye)] {
        let fs_s = fs.to_string_lossy().into_owned();
        let controls = keyhole_controls(&bin, fs)?;
        let (k_secs, k_kib) = median(&[
            &bin_s,
            "scan",
            "--root",
            &fs_s,
            "--format",
            "json",
            "--out",
            "/dev/null",
        ])?;
        let (f_secs, f_kib) = median(&["find", &fs_s, "-xdev"])?;
        rows.push((name, controls, k_secs, k_kib, f_secs, f_kib));
    }
    let bull = bullseye.to_string_lossy().into_owned();
    let started = Instant::now();
    let (o_secs, o_kib) = measure(&[
        "oscap-chroot",
        &bull,
        "xccdf",
        "eval",
        "--profile",
        "xccdf_org.ssgproject.content_profile_standard",
        "--results",
        &results_s,
        SSG_DEBIAN11,
    ])?;
    let _ = started;
    let o_rules = oscap_rules(&results)?;
    if o_rules == 0 {
        bail!("oscap evaluated no rule on {bull}: is ssg-debian's Debian 11 content applicable?");
    }

    println!("| tree | tool | checks | wall s | checks/s | peak RSS MiB | vs find |");
    println!("|---|---|---|---|---|---|---|");
    for (name, controls, k_secs, k_kib, f_secs, f_kib) in &rows {
        println!(
            "| {name} | keyhole container-baseline | {controls} controls | {k_secs:.3} | {:.0} | {:.1} | {:.2}x |",
            *controls as f64 / k_secs.max(0.001),
            *k_kib as f64 / 1024.0,
            k_secs / f_secs.max(0.001)
        );
        println!(
            "| {name} | find -xdev (floor) | - | {f_secs:.3} | - | {:.1} | 1.00x |",
            *f_kib as f64 / 1024.0
        );
    }
    println!(
        "| bullseye | oscap-chroot ssg-debian11 standard | {o_rules} rules | {o_secs:.3} | {:.1} | {:.1} | - |",
        o_rules as f64 / o_secs.max(0.001),
        o_kib as f64 / 1024.0
    );
    let (_, controls, k_secs, ..) = rows[1];
    let session = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "run",
            "--release",
            "--quiet",
            "--locked",
            "-p",
            "keyhole-cli",
            "--example",
            "access_bench",
            "20",
        ])
        .current_dir(root())
        .output()
        .context("cannot run the access_bench example")?;
    ensure!(
        session.status.success(),
        "access_bench failed: {}",
        String::from_utf8_lossy(&session.stderr)
    );
    println!(
        "\nsecure session against the fake API server, 20 ms per call:\n{}",
        String::from_utf8_lossy(&session.stdout)
    );
    println!(
        "\nkeyhole vs oscap on bullseye: {:.1}x the checks per second (target >= 20x)",
        (controls as f64 / k_secs.max(0.001)) / (o_rules as f64 / o_secs.max(0.001))
    );
    Ok(())
}
