//! Project automation (the cargo-xtask pattern): `cargo xtask <task>`.
//!
//! - `ci`: everything CI runs (installing the Debian packages the tests need when missing):
//!   fmt check, clippy `-D warnings`, all tests (with the SAF CLI
//!   differential test, SAF installed from npm under `target/saf`), the external gates.
//! - `gates`: generate every manifest `keyhole plan` and `keyhole sidecar inject` emit and run
//!   `kubernetes-validate --strict` (oldest and newest supported Kubernetes) and `checkov` on
//!   them; tools are installed into a venv under `target/` at pinned versions.
//!
//! - `cluster up [--k8s 1.37|1.34] | down | env`: a real kube-apiserver and controller manager
//!   (built from Kubernetes' Go modules) on loopback; `realapi`: the tests that need them, on
//!   each release in turn (part of `ci`).
//! - `bench`: speed and memory as ratios against baselines measured in the same run (`bench rpm`:
//!   only the RPM integrity case; `bench fleet`: only the fleet scan's scaling with concurrency).
//! - `image`: the agent's OCI image (layout directory and `docker load` tar), reproducible,
//!   printing its digest (`ci` checks that `DEFAULT_SCANNER_IMAGE` pins it).
//! - `demo`: a local sandbox, not Kubernetes (the fake API server over HTTPS and the runc test
//!   node, three workloads), with the real `keyhole scan` in each workflow.
//! - `rootfs`: the test node's root filesystems (busybox, true distroless, agent, Debian
//!   minbase), cached under `target/rootfs/`.
//! - `e2e`: real-cluster checks on a throwaway kind cluster (Docker, kind and kubectl required;
//!   run by the GitHub workflow, not available on the project's machines).
//!
//! The cheap checks (`tidy`) are plain `#[test]`s in this crate, so `cargo test` runs them too.

mod bench;
mod bench_rpm;
mod bench_workflows;
mod cluster;
mod demo;
mod e2e;
mod gates;
mod image;
mod package;
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
        "cluster" => cluster::command(&std::env::args().skip(2).collect::<Vec<_>>()),
        "realapi" => cluster::realapi(),
        "package" => package::run_package(),
        "rootfs" => rootfs::run_rootfs(),
        "image" => image::run_image(),
        "demo" => demo::run_demo(),
        _ => {
            eprintln!(
                "usage: cargo xtask <ci|gates|bench|e2e|cluster|realapi|package|rootfs|image|demo>"
            );
            eprintln!("  ci     fmt check, clippy -D warnings, all tests, external manifest gates");
            eprintln!(
                "  gates  kubernetes-validate --strict and checkov over every generated manifest"
            );
            eprintln!(
                "  cluster up [--k8s 1.37|1.34] | down | env   a real control plane on loopback"
            );
            eprintln!(
                "  realapi  the real-control-plane tests, on each Kubernetes release in turn"
            );
            eprintln!("  image  the agent's reproducible OCI image (layout + docker-load tar)");
            eprintln!(
                "  demo   a local sandbox (fake API server + runc test node): keyhole scan in each workflow"
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

pub(crate) fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// Packages whose tests need root (real `runc` containers, device nodes, `setpriv`, files of
/// other owners). As root they run with the rest; otherwise they are built as the user and
/// their test binaries run under `sudo -n`, so that nothing in `target/` becomes root's.
/// keyhole-rpmdb installs test packages whose files belong to other users into a test root.
/// keyhole-testkit's test node runs pods as real runc containers; keyhole-agent's and
/// keyhole-cli's cluster-scan tests run real target processes in their own namespaces.
const ROOT_TIER: &[&str] = &[
    "keyhole-engine",
    "keyhole-rpmdb",
    "keyhole-testkit",
    "keyhole-agent",
    "keyhole-cli",
];

fn ci() -> Result<()> {
    let started = std::time::Instant::now();
    let privilege = tools::Privilege::detect()?;
    if privilege == tools::Privilege::Sudo {
        eprintln!(
            "xtask ci: not running as root: apt-get and the tests of {ROOT_TIER:?} (real \
             containers) run under `sudo -n`"
        );
    }
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
    let mut test = cargo();
    test.args(["test", "--workspace", "--locked"])
        .env("CI", "true")
        .env("KEYHOLE_SAF_BIN", &saf);
    let (passed, failed) = match privilege {
        tools::Privilege::Root => cargo_test(&mut test)?,
        tools::Privilege::Sudo => {
            for p in ROOT_TIER {
                test.args(["--exclude", p]);
            }
            let (mut passed, mut failed) = cargo_test(&mut test)?;
            let (p, f) = root_tier_under_sudo(&saf)?;
            passed += p;
            failed += f;
            (passed, failed)
        }
    };
    package::run_package()?;
    gates::run()?;
    static_agent()?;
    // The default agent image keyhole pins is the one this checkout builds.
    image::check_pin()?;
    cluster::realapi()?;
    eprintln!("xtask ci: all checks passed in {:.0?}", started.elapsed());
    // One plain closing line for whoever reads the log: the sum over all test binaries.
    println!("tests: {passed} passed, {failed} failed");
    Ok(())
}

/// The [`ROOT_TIER`] when not root: builds its test binaries as the user, runs each under
/// `sudo -n` from its package directory (as cargo would), and its doc tests as the user.
fn root_tier_under_sudo(saf: &Path) -> Result<(u64, u64)> {
    let mut build = cargo();
    build
        .args(["test", "--locked", "--no-run", "--message-format=json"])
        .env("CI", "true")
        .current_dir(root())
        .stderr(std::process::Stdio::inherit());
    for p in ROOT_TIER {
        build.args(["-p", p]);
    }
    eprintln!("$ {}", show(&build));
    let out = build.output().context("cannot start cargo test --no-run")?;
    if !out.status.success() {
        bail!(
            "building the tests of {ROOT_TIER:?} failed ({})",
            out.status
        );
    }
    let binaries = test_binaries(&String::from_utf8_lossy(&out.stdout));
    if binaries.is_empty() {
        bail!("cargo built no test binary for {ROOT_TIER:?}");
    }
    let path = std::env::var("PATH").unwrap_or_default();
    let saf = saf.display().to_string();
    let (mut passed, mut failed) = (0, 0);
    for (exe, dir) in &binaries {
        let dir_text = dir.display().to_string();
        let env = [
            ("CI", "true"),
            ("KEYHOLE_SAF_BIN", saf.as_str()),
            ("PATH", path.as_str()),
            ("CARGO_MANIFEST_DIR", dir_text.as_str()),
            ("RUST_BACKTRACE", "1"),
        ];
        let mut cmd = tools::Privilege::Sudo.command(&env, exe);
        cmd.current_dir(dir);
        let (p, f) = cargo_test(&mut cmd)?;
        passed += p;
        failed += f;
    }
    let mut doc = cargo();
    doc.args(["test", "--locked", "--doc"]).env("CI", "true");
    for p in ROOT_TIER {
        doc.args(["-p", p]);
    }
    let (p, f) = cargo_test(&mut doc)?;
    Ok((passed + p, failed + f))
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

/// The test executables in cargo's `--message-format=json` output, each with its package
/// directory (where cargo would run it).
fn test_binaries(messages: &str) -> Vec<(PathBuf, PathBuf)> {
    messages
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["profile"]["test"] == true)
        .filter_map(|m| {
            let exe = m["executable"].as_str()?;
            let dir = Path::new(m["manifest_path"].as_str()?).parent()?;
            Some((PathBuf::from(exe), dir.to_path_buf()))
        })
        .collect()
}

#[cfg(test)]
#[test]
fn test_binaries_are_the_test_artifacts_with_their_package_directories() {
    let messages = [
        r#"{"reason":"compiler-artifact","manifest_path":"/w/crates/engine/Cargo.toml","profile":{"test":false},"executable":null}"#,
        r#"{"reason":"compiler-artifact","manifest_path":"/w/crates/engine/Cargo.toml","profile":{"test":true},"executable":"/w/target/debug/deps/it-1"}"#,
        r#"{"reason":"compiler-artifact","manifest_path":"/w/crates/engine/Cargo.toml","profile":{"test":false},"executable":"/w/target/debug/examples/gather"}"#,
        r#"{"reason":"build-finished","success":true}"#,
        "not json",
    ]
    .join("\n");
    assert_eq!(
        test_binaries(&messages),
        [(
            PathBuf::from("/w/target/debug/deps/it-1"),
            PathBuf::from("/w/crates/engine")
        )]
    );
}

/// Runs `cargo test` (or one test binary), in the workspace root unless `cmd` names a
/// directory, passing its output through, and sums the `test result:` lines of every test
/// binary; fails when the command does.
fn cargo_test(cmd: &mut Command) -> Result<(u64, u64)> {
    use std::io::{BufRead as _, BufReader};
    eprintln!("$ {}", show(cmd));
    if cmd.get_current_dir().is_none() {
        cmd.current_dir(root());
    }
    let mut child = cmd
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
        bail!(
            "{} failed ({status}): {passed} passed, {failed} failed",
            show(cmd)
        );
    }
    Ok((passed, failed))
}
