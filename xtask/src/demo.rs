//! `cargo xtask demo`: keyhole end to end in a LOCAL SANDBOX — not Kubernetes.
//!
//! Builds `keyhole`, the static agent and the sandbox program (`crates/cli/examples/demo.rs`),
//! then runs the program (as root, through `sudo -n` when needed: its test node runs pods as
//! real `runc` containers). The program serves keyhole-testkit's fake API server over HTTPS on
//! loopback with the test node, starts three workloads (a shell container, a true distroless
//! one, a pod injected by `keyhole sidecar inject`), writes a kubeconfig for it, runs the real
//! `keyhole scan` on each in its workflow (standard, distroless, sidecar) printing each
//! summary, writes each HDF to `target/demo/<mode>.json`, and ends with one line per workload:
//! mode, controls, objects created, objects left.

use anyhow::{Context as _, Result, bail};

use crate::{cargo, root, run, tools};

/// `cargo xtask demo`.
pub(crate) fn run_demo() -> Result<()> {
    tools::apt_install(tools::TEST_PACKAGES)?;
    let privilege = tools::Privilege::detect()?;
    // Built as the user, so that nothing in target/ becomes root's.
    run(cargo().args([
        "build",
        "--locked",
        "--quiet",
        "-p",
        "keyhole-cli",
        "--bin",
        "keyhole",
        "--example",
        "demo",
    ]))?;
    crate::static_agent()?;
    let target = root().join("target");
    let keyhole = target.join("debug/keyhole");
    let program = target.join("debug/examples/demo");
    let out = target.join("demo");
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let path = std::env::var("PATH").unwrap_or_default();
    let cargo_bin = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // The program reuses the node's trees under target/rootfs (and checks the static agent
    // with cargo, which finds it fresh).
    let env = [
        ("PATH", path.as_str()),
        ("CARGO", cargo_bin.as_str()),
        ("RUST_BACKTRACE", "1"),
    ];
    let mut cmd = privilege.command(&env, &program);
    cmd.arg(&keyhole).arg(&out).current_dir(root());
    eprintln!("$ {}", crate::show(&cmd));
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {}", program.display()))?;
    if !status.success() {
        bail!("the demo failed ({status})");
    }
    eprintln!("demo: HDF in {}", out.display());
    Ok(())
}
