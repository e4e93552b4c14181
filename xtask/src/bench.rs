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
//!
//! The fleet (`cargo xtask bench fleet` runs only this part): `keyhole scan -l … -A` over 200
//! pods in 4 namespaces of the fake with 20 ms per call, at concurrency 1, 8 and 32: wall time,
//! API calls and peak RSS of each, and the speed-up against concurrency 1 measured in the same
//! run (`examples/fleet_bench.rs` of `keyhole-cli`).
//!
//! The scan workflows: `bench_workflows.rs` (also alone: `cargo xtask bench workflows`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context as _, Result, bail, ensure};

use crate::{root, run, show};

const MIRROR: &str = "http://deb.debian.org/debian";
const SSG_DEBIAN11: &str = "/usr/share/xml/scap/ssg/content/ssg-debian11-ds.xml";
const RUNS: usize = 7;

/// A cached `debootstrap --variant=minbase SUITE` tree.
pub(crate) fn rootfs(suite: &str) -> Result<PathBuf> {
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

/// Wall seconds (measured here, to the microsecond) and peak RSS (KiB, from GNU time) of one
/// run.
fn measure(cmd: &[&str]) -> Result<(f64, u64)> {
    let report = root().join("target/bench-time.txt");
    let mut c = Command::new("/usr/bin/time");
    c.args(["-f", "%M", "-o"]).arg(&report).args(cmd);
    c.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let started = Instant::now();
    let status = c
        .status()
        .with_context(|| format!("cannot run {}", show(&c)))?;
    let secs = started.elapsed().as_secs_f64();
    // oscap exits 2 when a rule fails; keyhole 1 when a threshold is not met: both measured.
    ensure!(
        status.code().is_some_and(|c| c <= 2),
        "{} failed: {status}",
        show(&c)
    );
    let text = std::fs::read_to_string(&report)?;
    // GNU time puts "Command exited with non-zero status N" first when the command failed.
    let last = text.lines().last().unwrap_or_default();
    let kib: u64 = last.trim().parse().context("no rss")?;
    Ok((secs, kib))
}

/// The median run of `cmd` (by wall time) out of [`RUNS`], after one warm-up run that fills
/// the page cache.
pub(crate) fn median(cmd: &[&str]) -> Result<(f64, u64)> {
    measure(cmd)?;
    let mut runs = (0..RUNS)
        .map(|_| measure(cmd))
        .collect::<Result<Vec<_>>>()?;
    runs.sort_by(|a, b| a.0.total_cmp(&b.0));
    Ok(runs[RUNS / 2])
}

/// The defaults of container-baseline's `integrity_paths` input.
const INTEGRITY_PATHS: [&str; 9] = [
    "bin/",
    "sbin/",
    "usr/bin/",
    "usr/sbin/",
    "usr/libexec/",
    "lib/x86_64-linux-gnu/security/",
    "lib/aarch64-linux-gnu/security/",
    "usr/lib/x86_64-linux-gnu/security/",
    "usr/lib/aarch64-linux-gnu/security/",
];

/// Writes the files the profile's package integrity check hashes (dpkg-listed, under the
/// default prefixes; relative to the rootfs) to a NUL-separated list, for the work floor.
fn integrity_list(rootfs: &Path, out: &Path) -> Result<usize> {
    let mut list = Vec::new();
    let mut n = 0;
    let mut names: Vec<_> = std::fs::read_dir(rootfs.join("var/lib/dpkg/info"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "md5sums"))
        .collect();
    names.sort();
    for sums in names {
        for line in std::fs::read_to_string(&sums)?.lines() {
            let Some(path) = line.get(34..) else { continue };
            if INTEGRITY_PATHS.iter().any(|p| path.starts_with(p)) {
                list.extend_from_slice(path.as_bytes());
                list.push(0);
                n += 1;
            }
        }
    }
    std::fs::write(out, list)?;
    Ok(n)
}

/// One line of the benchmark table.
struct Row {
    tree: &'static str,
    tool: String,
    checks: Option<usize>,
    secs: f64,
    kib: u64,
    vs_find: f64,
}

impl Row {
    fn new(
        tree: &'static str,
        tool: &str,
        checks: Option<usize>,
        (secs, kib): (f64, u64),
        vs_find: f64,
    ) -> Self {
        Self {
            tree,
            tool: tool.to_owned(),
            checks,
            secs,
            kib,
            vs_find,
        }
    }
}

impl std::fmt::Display for Row {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let checks = self.checks.map_or("-".into(), |c| c.to_string());
        let rate = self.checks.map_or("-".into(), |c| {
            format!("{:.0}", c as f64 / self.secs.max(1e-6))
        });
        let vs = if self.vs_find.is_nan() {
            "-".into()
        } else {
            format!("{:.2}x", self.vs_find)
        };
        write!(
            f,
            "| {} | {} | {checks} | {:.1} | {rate} | {:.1} | {vs} |",
            self.tree,
            self.tool,
            self.secs * 1000.0,
            self.kib as f64 / 1024.0
        )
    }
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
    // `cargo xtask bench workflows`: only the per-workflow cluster scan rows.
    if std::env::args().nth(2).as_deref() == Some("workflows") {
        return crate::bench_workflows::run();
    }
    // `cargo xtask bench rpm`: the RPM integrity case alone.
    if std::env::args().nth(2).as_deref() == Some("rpm") {
        return crate::bench_rpm::run_rpm_bench();
    }
    // `cargo xtask bench fleet`: the fleet alone.
    if std::env::args().nth(2).as_deref() == Some("fleet") {
        return run_fleet_bench();
    }
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

    // Per tree: keyhole as shipped, keyhole without the package integrity hashing, the plain
    // walk (the floor the issue names), and the work floor: the same walk plus what the checks
    // must read, done by standard single-threaded tools (`cat` of every file the private-key
    // search reads, `md5sum` of every file the integrity check hashes).
    let mut rows: Vec<Row> = Vec::new();
    let mut ratios = Vec::new();
    for (name, fs) in [("bookworm", &bookworm), ("bullseye", &bullseye)] {
        let fs_s = fs.to_string_lossy().into_owned();
        let controls = keyhole_controls(&bin, fs)?;
        let scan = [
            &bin_s,
            "scan",
            "--root",
            &fs_s,
            "--format",
            "json",
            "--out",
            "/dev/null",
        ];
        let full = median(&scan)?;
        let mut without = scan.to_vec();
        without.extend(["--input", "integrity_paths=[]"]);
        let no_integrity = median(&without)?;
        let find = median(&["find", &fs_s, "-xdev"])?;
        let list = root().join(format!("target/bench-integrity-{name}.list"));
        let hashed = integrity_list(fs, &list)?;
        let work = format!(
            "find . -xdev >/dev/null; \
             find . -xdev -type f -size -16385c -print0 | xargs -0 cat >/dev/null; \
             xargs -0 -a '{}' md5sum >/dev/null 2>&1; true",
            list.display()
        );
        let floor = median(&["sh", "-c", &format!("cd '{fs_s}' && {work}")])?;
        // The hashing alone: what any tool verifying these files pays, whatever its walk costs.
        let md5 = format!(
            "cd '{fs_s}' && xargs -0 -a '{}' md5sum >/dev/null 2>&1; true",
            list.display()
        );
        let hashing = median(&["sh", "-c", &md5])?;
        let vs = |t: f64| t / find.0.max(1e-6);
        rows.push(Row::new(
            name,
            "keyhole container-baseline",
            Some(controls),
            full,
            vs(full.0),
        ));
        rows.push(Row::new(
            name,
            "keyhole, integrity_paths=[]",
            Some(controls),
            no_integrity,
            vs(no_integrity.0),
        ));
        rows.push(Row::new(name, "find -xdev (floor)", None, find, 1.0));
        rows.push(Row::new(
            name,
            &format!("work floor: find + cat <=16 KiB files + md5sum {hashed} files"),
            None,
            floor,
            vs(floor.0),
        ));
        rows.push(Row::new(
            name,
            &format!("md5sum of the {hashed} files alone"),
            None,
            hashing,
            vs(hashing.0),
        ));
        ratios.push((
            name,
            vs(full.0),
            vs(no_integrity.0),
            full.0 / floor.0.max(1e-6),
        ));
    }
    let bull = bullseye.to_string_lossy().into_owned();
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
    let o_rules = oscap_rules(&results)?;
    if o_rules == 0 {
        bail!("oscap evaluated no rule on {bull}: is ssg-debian's Debian 11 content applicable?");
    }
    rows.push(Row::new(
        "bullseye",
        "oscap-chroot ssg-debian11 standard",
        Some(o_rules),
        (o_secs, o_kib),
        f64::NAN,
    ));

    println!("| tree | tool | checks | wall ms | checks/s | peak RSS MiB | vs find |");
    println!("|---|---|---|---|---|---|---|");
    for r in &rows {
        println!("{r}");
    }
    for (name, full, no_integrity, floor) in &ratios {
        println!(
            "\n{name}: keyhole is {full:.2}x find ({no_integrity:.2}x without integrity hashing; \
             target <= 3x) and {floor:.2}x the work floor"
        );
    }
    let keyhole_bullseye = rows
        .iter()
        .find(|r| r.tree == "bullseye" && r.tool == "keyhole container-baseline")
        .context("no bullseye row")?;
    let (controls, k_secs) = (keyhole_bullseye.checks.unwrap_or(0), keyhole_bullseye.secs);
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
    crate::bench_rpm::run_rpm_bench()?;
    crate::bench_workflows::run()?;
    run_fleet_bench()
}

/// Pods, namespaces and API latency (ms) of the fleet benchmark.
const FLEET: (u32, u32, u32) = (200, 4, 20);
/// The concurrencies compared; the first is the baseline.
const FLEET_CONCURRENCY: [u32; 3] = [1, 8, 32];

/// One fleet measurement, as `fleet_bench` prints it.
#[derive(serde::Deserialize)]
struct FleetRun {
    concurrency: u32,
    wall_ms: f64,
    api_calls: u64,
    peak_rss_kib: u64,
    results: u64,
    sessions: u64,
}

/// The fleet at each of [`FLEET_CONCURRENCY`] (one process each, so each peak RSS is its own),
/// with the speed-up against the first measured in the same run.
pub(crate) fn run_fleet_bench() -> Result<()> {
    let (pods, namespaces, latency) = FLEET;
    let mut runs = Vec::new();
    for c in FLEET_CONCURRENCY {
        let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args([
                "run",
                "--release",
                "--quiet",
                "--locked",
                "-p",
                "keyhole-cli",
                "--example",
                "fleet_bench",
                "--",
            ])
            .args([pods, namespaces, latency, c].map(|n| n.to_string()))
            .current_dir(root())
            .output()
            .context("cannot run the fleet_bench example")?;
        ensure!(
            out.status.success(),
            "fleet_bench failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().last().unwrap_or_default();
        let run: FleetRun =
            serde_json::from_str(line).with_context(|| format!("fleet_bench printed {line:?}"))?;
        ensure!(
            u64::from(pods) == run.results,
            "fleet_bench scanned {} of {pods} pods",
            run.results
        );
        runs.push(run);
    }
    let base = runs.first().map_or(1.0, |r| r.wall_ms.max(1e-3));
    println!(
        "\nfleet: {pods} pods in {namespaces} namespaces ({} sessions), fake API server with {latency} ms per call",
        runs.first().map_or(0, |r| r.sessions)
    );
    println!(
        "| concurrency | wall ms | API calls | peak RSS MiB | speed-up vs {} |",
        FLEET_CONCURRENCY[0]
    );
    println!("|---|---|---|---|---|");
    for r in &runs {
        println!(
            "| {} | {:.0} | {} | {:.1} | {:.1}x |",
            r.concurrency,
            r.wall_ms,
            r.api_calls,
            r.peak_rss_kib as f64 / 1024.0,
            base / r.wall_ms.max(1e-3)
        );
    }
    if let Some(last) = runs.last() {
        println!(
            "\nfleet scaling {}->{}: {:.1}x (goal >= 16x)",
            FLEET_CONCURRENCY[0],
            last.concurrency,
            base / last.wall_ms.max(1e-3)
        );
    }
    Ok(())
}
