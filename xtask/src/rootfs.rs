//! `cargo xtask rootfs`: the root filesystems of the test node (`keyhole_testkit::node`),
//! built once and cached under `target/rootfs/`:
//!
//! - `busybox/`, `distroless/` (one static `pause`, no shell) and `agent/` (only the static
//!   `keyhole-agent`), by the testkit's own builders (its `rootfs` example), so tests and this
//!   task make the same trees;
//! - `bookworm-minbase/`, the Debian minbase the benchmark already builds with debootstrap.
//!
//! Installs the Debian packages it needs (runc, busybox-static, debootstrap) when missing.

use anyhow::Result;

use crate::{bench, cargo, run, tools};

/// Builds every tree (each is skipped when already built).
pub(crate) fn run_rootfs() -> Result<()> {
    tools::apt_install(tools::TEST_PACKAGES)?;
    run(cargo().args([
        "run",
        "--quiet",
        "--locked",
        "-p",
        "keyhole-testkit",
        "--example",
        "rootfs",
    ]))?;
    let minbase = bench::rootfs("bookworm")?;
    println!("bookworm-minbase\t{}", minbase.display());
    Ok(())
}
