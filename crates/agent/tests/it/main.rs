//! The agent binary's contract: argument errors exit 2, a target it must not or cannot read
//! exits 3 with the reason, and it never prints a partial result.

mod gather;
mod rpm;

use std::process::Command;

fn agent(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_keyhole-agent"))
        .args(args)
        .output()
        .expect("agent runs");
    (
        out.status.code().expect("exits"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_arguments_exit_2() {
    for args in [
        &["frobnicate"][..],
        &["scan", "--pid"],
        &["scan", "--target", "web"],
        &["scan", "--time-limit", "soon"],
        &["sidecar"],
    ] {
        let (code, out, err) = agent(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(out.is_empty());
        assert!(err.starts_with("keyhole-agent: "), "{err}");
    }
}

#[test]
fn a_process_sharing_the_agents_root_is_refused() {
    // A child of the test shares its root: scanning it would report the scanner's own files.
    let mut child = Command::new("sleep").arg("30").spawn().expect("sleep runs");
    let (code, out, err) = agent(&["scan", "--pid", &child.id().to_string()]);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(code, 3, "{err}");
    assert!(out.is_empty(), "partial output: {out}");
    assert!(err.contains("root"), "{err}");
}
