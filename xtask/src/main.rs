//! Project automation (the cargo-xtask pattern): `cargo xtask <task>`.
//!
//! - `ci`: everything CI runs (installing the Debian packages the tests need when missing):
//!   fmt check, clippy `-D warnings`, all tests (with the SAF CLI
//!   differential test, SAF installed from npm under `target/saf`), the external gates.
//! - `gates`: generate every manifest `keyhole plan` and `keyhole sidecar inject` emit and run
//!   `kubernetes-validate --strict` (oldest and newest supported Kubernetes) and `checkov` on
//!   them; tools are installed into a venv under `target/` at pinned versions.
//!
//! - `bench`: speed and memory as ratios against baselines measured in the same run.
//! - `rootfs`: the test node's root filesystems (busybox, true distroless, agent, Debian
//!   minbase), cached under `target/rootfs/`.
//! - `e2e`: real-cluster checks on a throwaway kind cluster (Docker, kind and kubectl required;
//!   run by the GitHub workflow, not available on the project's machines).
//!
//! The cheap checks (`tidy`) are plain `#[test]`s in this crate, so `cargo test` runs them too.

mod bench;
mod e2e;
mod gates;
mod rootfs;
#[cfg(test)]
mod tidy;
mod tools;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};

fn main() -> Result<()> {
    let task = std::env::args().nth(1).unwrap_or_default();
    match task.as_str() {
        "ci" => ci(),
        "gates" => gates::run(),
        "e2e" => e2e::run_e2e(),
        "bench" => bench::run_bench(),
        "rootfs" => rootfs::run_rootfs(),
        _ => {
            eprintln!("usage: cargo xtask <ci|gates|bench|e2e|rootfs>");
            eprintln!("  ci     fmt check, clippy -D warnings, all tests, external manifest gates");
            eprintln!(
                "  gates  kubernetes-validate --strict and checkov over every generated manifest"
            );
            bail!("unknown task {task:?}")
        }
    }
}

/// The workspace root (this crate lives in `<root>/xtask`).
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask has a parent directory")
        .to_path_buf()
}

/// Runs `cmd` (in the workspace root unless it names a directory), echoing it, and fails on a non-zero exit.
pub(crate) fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("$ {}", show(cmd));
    if cmd.get_current_dir().is_none() {
        cmd.current_dir(root());
    }
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {}", show(cmd)))?;
    if !status.success() {
        bail!("{} failed ({status})", show(cmd));
    }
    Ok(())
}

pub(crate) fn show(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn ci() -> Result<()> {
    let started = std::time::Instant::now();
    tools::apt_install(tools::TEST_PACKAGES)?;
    run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--locked",
        "--",
        "-D",
        "warnings",
    ]))?;
    // The threshold crate is checked case by case against the real SAF CLI.
    let saf = tools::saf()?;
    // CI=true makes insta fail on a missing or changed snapshot instead of writing a new one.
    let (passed, failed) = cargo_test(
        cargo()
            .args(["test", "--workspace", "--locked"])
            .env("CI", "true")
            .env("KEYHOLE_SAF_BIN", saf),
    )?;
    gates::run()?;
    static_agent()?;
    eprintln!("xtask ci: all checks passed in {:.0?}", started.elapsed());
    // One plain closing line for whoever reads the log: the sum over all test binaries.
    println!("tests: {passed} passed, {failed} failed");
    Ok(())
}

/// Builds `keyhole-agent` statically linked (it is copied into debug and sidecar images that
/// may have no libc) and checks that the result has no dynamic dependencies.
fn static_agent() -> Result<()> {
    let target = "x86_64-unknown-linux-gnu";
    let dir = root().join("target/static");
    run(cargo()
        .args([
            "build",
            "--locked",
            "--quiet",
            "-p",
            "keyhole-agent",
            "--target",
            target,
            "--target-dir",
        ])
        .arg(&dir)
        .env("RUSTFLAGS", "-C target-feature=+crt-static"))?;
    let bin = dir.join(target).join("debug/keyhole-agent");
    let out = Command::new("ldd")
        .arg(&bin)
        .output()
        .context("cannot run ldd")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !(text.contains("not a dynamic executable") || text.contains("statically linked")) {
        bail!("keyhole-agent is not static: {text}");
    }
    eprintln!("keyhole-agent: statically linked ({})", bin.display());
    Ok(())
}

/// Runs `cargo test`, passing its output through, and sums the `test result:` lines of every
/// test binary; fails when cargo does.
fn cargo_test(cmd: &mut Command) -> Result<(u64, u64)> {
    use std::io::{BufRead as _, BufReader};
    eprintln!("$ {}", show(cmd));
    let mut child = cmd
        .current_dir(root())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("cannot start cargo test")?;
    let (mut passed, mut failed) = (0, 0);
    let stdout = child.stdout.take().expect("stdout is piped");
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        println!("{line}");
        if let Some(rest) = line.strip_prefix("test result: ") {
            let count = |word: &str| -> u64 {
                rest.split(';')
                    .find_map(|part| {
                        part.trim()
                            .trim_start_matches("ok. ")
                            .trim_start_matches("FAILED. ")
                            .strip_suffix(word)
                    })
                    .and_then(|n| n.trim().parse().ok())
                    .unwrap_or(0)
            };
            passed += count(" passed");
            failed += count(" failed");
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("cargo test failed ({status}): {passed} passed, {failed} failed");
    }
    Ok((passed, failed))
}
