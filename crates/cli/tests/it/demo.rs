//! `cargo xtask demo`'s program (`examples/demo.rs`) run as the task runs it, with this test
//! build's `keyhole`: three workloads scanned in their workflows on the runc test node, each
//! HDF written and schema-valid, and the closing lines saying what was created and that
//! nothing was left. Needs root, `runc` and `busybox-static` (as the node tests do).

use std::path::{Path, PathBuf};
use std::process::Command;

use keyhole_hdf::Execution;

use crate::cluster_scan::require_root;
use crate::support::scratch;

/// The demo program, built by the cargo running these tests.
fn demo_binary() -> PathBuf {
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "-p", "keyhole-cli", "--example", "demo"])
        .status()
        .expect("cargo runs");
    assert!(status.success(), "cargo build --example demo failed");
    let bin = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("debug/examples/demo");
    assert!(bin.exists(), "{} was not built", bin.display());
    bin
}

#[test]
fn the_demo_scans_its_three_workloads_and_leaves_nothing() {
    require_root();
    let out = scratch("demo");
    let run = Command::new(demo_binary())
        .arg(env!("CARGO_BIN_EXE_keyhole"))
        .arg(&out)
        .output()
        .expect("the demo starts");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "stdout {stdout}\nstderr {stderr}");
    assert!(stdout.contains("LOCAL SANDBOX, not Kubernetes"), "{stdout}");
    // The closing lines: mode, pod, controls, failed, objects created, objects left.
    let table: Vec<Vec<&str>> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("== summary"))
        .skip(2)
        .map(|l| l.split_whitespace().collect())
        .collect();
    let pods = [
        ("standard", "shell-0"),
        ("distroless", "distroless-0"),
        ("sidecar", "sidecar-0"),
    ];
    assert_eq!(table.len(), pods.len(), "{stdout}");
    for (row, (mode, pod)) in table.iter().zip(pods) {
        assert_eq!(row[..2], [mode, pod], "{row:?}");
        let hdf = out.join(format!("{mode}.json"));
        let exec = Execution::from_json_str(&std::fs::read_to_string(&hdf).unwrap()).unwrap();
        exec.validate().unwrap();
        let controls = exec.profiles[0].controls.len();
        assert!(controls > 50, "{mode}: {controls} controls");
        assert_eq!(row[2], controls.to_string(), "{row:?}");
        // ServiceAccount, anchor Secret, Role, RoleBinding; none left.
        assert_eq!(row[4..], ["4", "0"], "{row:?}");
    }
    // The workflows really differed: the distroless target has no shell to find, the others do.
    let shell_failed = |mode: &str| {
        let text = std::fs::read_to_string(out.join(format!("{mode}.json"))).unwrap();
        let exec = Execution::from_json_str(&text).unwrap();
        exec.profiles[0]
            .controls
            .iter()
            .find(|c| c.id == "KH-TOOL-006")
            .map(|c| c.status().as_str())
            .unwrap()
    };
    assert_eq!(shell_failed("standard"), "Failed");
    assert_eq!(shell_failed("sidecar"), "Failed");
    assert_eq!(shell_failed("distroless"), "Passed");
    keyhole_audit::verify(&out.join("audit.jsonl")).expect("the demo's audit chain verifies");
    let _ = std::fs::remove_dir_all(&out);
}
