//! `cargo xtask e2e`: the real-cluster tier, on a throwaway kind cluster.
//!
//! Needs Docker, kind and kubectl, none of which run on the project's own machines (no Docker
//! engine there): it is run by the GitHub workflow. It checks what the fake API server cannot
//! prove: a real authorizer, real garbage collection, real exec through the scoped kubeconfig,
//! a real kubelet and container runtime. It runs the scan workflows of the scenario list
//! (crates/cli/tests/it/scenarios.rs) as a user would, through the `keyhole` binary: the
//! standard scan (one exec) and the distroless scan (the agent image built by `cargo xtask
//! image`, loaded into kind), each leaving nothing behind and a valid audit chain.

use std::process::Command;

use anyhow::{Context as _, Result, bail, ensure};

use crate::{root, run, show};

const CLUSTER: &str = "keyhole-e2e";
const NS: &str = "keyhole-e2e";

fn need(tool: &str, args: &[&str]) -> Result<()> {
    let ok = Command::new(tool)
        .args(args)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    ensure!(
        ok,
        "cargo xtask e2e needs `{tool}` (with a running Docker engine for kind); it is not available here"
    );
    Ok(())
}

fn output(cmd: &mut Command) -> Result<(bool, String)> {
    eprintln!("$ {}", show(cmd));
    let out = cmd
        .current_dir(root())
        .output()
        .with_context(|| format!("cannot run {}", show(cmd)))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprint!("{text}");
    Ok((out.status.success(), text))
}

fn kubectl(args: &[&str]) -> Command {
    let mut c = Command::new("kubectl");
    c.args(["--context", &format!("kind-{CLUSTER}")]).args(args);
    c
}

/// Creates the cluster, runs the checks, and deletes the cluster whatever happened.
pub(crate) fn run_e2e() -> Result<()> {
    need("docker", &["info"])?;
    need("kind", &["version"])?;
    need("kubectl", &["version", "--client"])?;
    run(Command::new("kind").args(["create", "cluster", "--name", CLUSTER, "--wait", "180s"]))?;
    let result = checks();
    let _ = run(Command::new("kind").args(["delete", "cluster", "--name", CLUSTER]));
    result
}

fn checks() -> Result<()> {
    run(&mut kubectl(&["create", "namespace", NS]))?;
    run(&mut kubectl(&[
        "run",
        "web-0",
        "-n",
        NS,
        "--image=busybox:1.36",
        "--restart=Never",
        "--",
        "sleep",
        "3600",
    ]))?;
    run(&mut kubectl(&[
        "wait",
        "-n",
        NS,
        "--for=condition=Ready",
        "pod/web-0",
        "--timeout=180s",
    ]))?;
    run(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())).args([
            "build",
            "-p",
            "keyhole-cli",
        ]),
    )?;
    let keyhole = root().join("target/debug/keyhole");
    let audit = root().join("target/e2e/audit.jsonl");
    let _ = std::fs::remove_file(&audit);
    let access = |cmd: &[&str]| {
        let mut c = Command::new(&keyhole);
        c.args([
            "access",
            "web-0",
            "-n",
            NS,
            "--context",
            &format!("kind-{CLUSTER}"),
            "--audit-log",
        ])
        .arg(&audit)
        .arg("--")
        .args(cmd);
        c
    };
    // The scoped identity can exec into its target...
    let (ok, text) = output(&mut access(&[
        "kubectl",
        "exec",
        "-n",
        NS,
        "web-0",
        "--",
        "cat",
        "/etc/hostname",
    ]))?;
    ensure!(
        ok && text.contains("web-0"),
        "exec through the scoped kubeconfig failed"
    );
    // ...and nothing else.
    let (ok, _) = output(&mut access(&["kubectl", "get", "secrets", "-n", NS]))?;
    ensure!(!ok, "the scoped identity could list secrets");
    // Nothing is left behind, and the audit chain holds.
    let (_, left) = output(&mut kubectl(&[
        "get",
        "serviceaccounts,secrets,roles,rolebindings,networkpolicies,pods",
        "-n",
        NS,
        "-l",
        "app.kubernetes.io/managed-by=keyhole",
        "-o",
        "name",
    ]))?;
    if !left.trim().is_empty() && !left.contains("No resources found") {
        bail!("objects left behind: {left}");
    }
    run(Command::new(&keyhole).args(["audit", "verify"]).arg(&audit))?;
    scans(&keyhole, &audit)?;
    Ok(())
}

/// The main job on a real cluster: `keyhole scan` of web-0 in standard mode, then in
/// distroless mode with the agent image of this checkout; each must exit 0, write an HDF with
/// the built-in profile's controls, leave no keyhole object, and keep the audit chain valid.
fn scans(keyhole: &std::path::Path, audit: &std::path::Path) -> Result<()> {
    // The agent image, built reproducibly and loaded into the kind node's containerd under the
    // tag `docker load` gives it (docker.io/library/keyhole-agent:VERSION).
    crate::image::run_image()?;
    let tar = root().join("target/image/keyhole-agent.tar");
    run(Command::new("kind")
        .args(["load", "image-archive"])
        .arg(&tar)
        .args(["--name", CLUSTER]))?;
    let agent = format!("keyhole-agent:{}", crate::image::workspace_version()?);
    let dir = root().join("target/e2e");
    for (mode, extra) in [
        ("standard", vec![]),
        // busybox runs as root: the scanner then runs as root with exactly its capabilities.
        (
            "distroless",
            vec!["--scanner-as-target-root", "--image", agent.as_str()],
        ),
    ] {
        let out = dir.join(format!("{mode}.json"));
        let _ = std::fs::remove_file(&out);
        let mut c = Command::new(keyhole);
        c.args(["scan", "pod/web-0", "-n", NS, "--mode", mode])
            .args(["--context", &format!("kind-{CLUSTER}"), "--out"])
            .arg(&out)
            .arg("--audit-log")
            .arg(audit)
            .args(&extra);
        let (ok, text) = output(&mut c)?;
        ensure!(ok, "keyhole scan --mode {mode} failed: {text}");
        let hdf: serde_json::Value = serde_json::from_slice(
            &std::fs::read(&out).with_context(|| format!("{mode}: no HDF at {}", out.display()))?,
        )?;
        let controls = hdf["profiles"][0]["controls"]
            .as_array()
            .map_or(0, Vec::len);
        ensure!(
            hdf["profiles"][0]["name"] == "container-baseline" && controls > 50,
            "{mode}: the HDF has no container-baseline results ({controls} controls)"
        );
        let (_, left) = output(&mut kubectl(&[
            "get",
            "serviceaccounts,secrets,roles,rolebindings,networkpolicies,pods",
            "-n",
            NS,
            "-l",
            "app.kubernetes.io/managed-by=keyhole",
            "-o",
            "name",
        ]))?;
        if !left.trim().is_empty() && !left.contains("No resources found") {
            bail!("{mode}: objects left behind: {left}");
        }
    }
    run(Command::new(keyhole).args(["audit", "verify"]).arg(audit))?;
    Ok(())
}
