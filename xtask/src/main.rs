//! Project automation (the cargo-xtask pattern): `cargo xtask <task>`.
//!
//! - `ci`: everything CI runs: fmt check, clippy `-D warnings`, all tests, the external gates.
//! - `gates`: generate every manifest `keyhole plan` and `keyhole sidecar inject` emit and run
//!   `kubernetes-validate --strict` (oldest and newest supported Kubernetes) and `checkov` on
//!   them; tools are installed into a venv under `target/` at pinned versions.
//!
//! The cheap checks (`tidy`) are plain `#[test]`s in this crate, so `cargo test` runs them too.

mod gates;
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
        _ => {
            eprintln!("usage: cargo xtask <ci|gates>");
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

/// Runs `cmd` in the workspace root, echoing it, and fails on a non-zero exit.
pub(crate) fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("$ {}", show(cmd));
    let status = cmd
        .current_dir(root())
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
    // CI=true makes insta fail on a missing or changed snapshot instead of writing a new one.
    run(cargo()
        .args(["test", "--workspace", "--locked"])
        .env("CI", "true"))?;
    gates::run()?;
    eprintln!("xtask ci: all checks passed in {:.0?}", started.elapsed());
    Ok(())
}
