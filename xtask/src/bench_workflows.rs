//! `cargo xtask bench` (and `cargo xtask bench workflows` alone): one `keyhole scan` per
//! workflow on the test node (`keyhole_testkit::node`, a test double: the fake API server's
//! pods as real runc containers) with 20 ms of latency per API call, against the
//! InSpec-over-exec pattern — one exec per command, as `train-k8s-container`'s per-command mode
//! runs InSpec — gathering the same facts through the same server.
//!
//! Each row is one process of `examples/workflow_bench.rs` of `keyhole-cli` (release build),
//! run under GNU time for its peak RSS: API calls, exec sessions, wall time and peak RSS, then
//! the ratios of the exec-per-command row to each workflow. Needs root (runc); the first run
//! builds the node's trees and the static agent. Measured here, printed, never asserted.

use std::process::Command;
use std::time::Instant;

use anyhow::{Context as _, Result, ensure};

use crate::root;

/// The latency the fake adds to every API call.
const LATENCY_MS: &str = "20";

/// The modes of the example, keyhole's first; the baseline last.
const MODES: [&str; 4] = ["standard", "distroless", "sidecar", "exec-per-command"];

/// One measured row.
struct Row {
    mode: String,
    api_calls: u64,
    execs: u64,
    /// The scan's own wall time (the example's clock: from the first API call to the result).
    wall_ms: f64,
    /// The whole process (node start-up and pod creation included), for reference.
    process_s: f64,
    rss_kib: u64,
    answered: u64,
}

fn measure(bin: &std::path::Path, mode: &str) -> Result<Row> {
    let report = root().join("target/bench-workflows-time.txt");
    let mut c = Command::new("/usr/bin/time");
    c.args(["-f", "%M", "-o"])
        .arg(&report)
        .arg(bin)
        .args([mode, LATENCY_MS]);
    let started = Instant::now();
    let out = c
        .output()
        .with_context(|| format!("cannot run {} (apt-get install -y time)", bin.display()))?;
    let process_s = started.elapsed().as_secs_f64();
    ensure!(
        out.status.success(),
        "workflow_bench {mode} failed (it needs root and runc): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout)?;
    let line = text.lines().last().context("no output")?;
    let v: serde_json::Value = serde_json::from_str(line).context("not a JSON line")?;
    let num = |k: &str| v[k].as_u64().with_context(|| format!("no {k} in {line}"));
    let rss_kib: u64 = std::fs::read_to_string(&report)?
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .parse()
        .context("no rss")?;
    Ok(Row {
        mode: mode.to_string(),
        api_calls: num("api_calls")?,
        execs: num("exec_sessions")?,
        wall_ms: v["wall_ms"].as_f64().context("no wall_ms")?,
        process_s,
        rss_kib,
        answered: num("answered")?,
    })
}

/// Builds the example, measures every mode, prints the table and the ratios.
pub(crate) fn run() -> Result<()> {
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "build",
            "--release",
            "--quiet",
            "--locked",
            "-p",
            "keyhole-cli",
            "--example",
            "workflow_bench",
        ])
        .current_dir(root())
        .status()
        .context("cannot build the workflow_bench example")?;
    ensure!(status.success(), "building workflow_bench failed");
    let bin = root().join("target/release/examples/workflow_bench");
    let rows = MODES
        .iter()
        .map(|m| measure(&bin, m))
        .collect::<Result<Vec<_>>>()?;
    println!(
        "\nkeyhole scan per workflow on the test node (runc), {LATENCY_MS} ms per API call, \
         container-baseline plan:"
    );
    println!(
        "  {:<18} {:>9} {:>6} {:>10} {:>9} {:>12} {:>9}",
        "mode", "API calls", "execs", "scan ms", "facts", "peak RSS", "process s"
    );
    for r in &rows {
        println!(
            "  {:<18} {:>9} {:>6} {:>10.1} {:>9} {:>8} KiB {:>9.2}",
            r.mode, r.api_calls, r.execs, r.wall_ms, r.answered, r.rss_kib, r.process_s
        );
    }
    let standard = &rows[0];
    ensure!(
        standard.execs == 1,
        "the standard workflow made {} exec sessions (must be exactly 1)",
        standard.execs
    );
    let baseline = rows.last().context("no baseline row")?;
    println!(
        "  (keyhole rows: the whole scan — access setup, least-privilege check, gathering, \
         teardown and its verification, local evaluation; exec-per-command: the gathering \
         only, with the user's own client, in its favour. Peak RSS: the bench process, which \
         also holds the in-process fake API server and node.)"
    );
    println!("\nexec-per-command / keyhole, per workflow (higher = keyhole better):");
    for r in &rows[..rows.len() - 1] {
        println!(
            "  {:<12} API calls {:>5.1}x  exec sessions {:>5}  wall {:>5.1}x  peak RSS {:>4.2}x",
            r.mode,
            baseline.api_calls as f64 / r.api_calls.max(1) as f64,
            if r.execs == 0 {
                format!("{} vs 0", baseline.execs)
            } else {
                format!("{:.0}x", baseline.execs as f64 / r.execs as f64)
            },
            baseline.wall_ms / r.wall_ms.max(0.001),
            baseline.rss_kib as f64 / r.rss_kib.max(1) as f64,
        );
    }
    Ok(())
}
