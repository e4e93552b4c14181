//! Bad input: one line on stderr naming the problem, exit code 2, nothing on stdout.

use crate::{fixture, keyhole};

/// Asserts the contract of bad input and that the message mentions `needle`.
fn rejects(args: &[&str], stdin: Option<&str>, needle: &str) {
    let r = keyhole(args, stdin);
    assert_eq!(
        r.code, 2,
        "keyhole {args:?} should exit 2; stderr: {}",
        r.stderr
    );
    assert_eq!(r.stdout, "", "keyhole {args:?} printed to stdout");
    assert_eq!(
        r.stderr.lines().count(),
        1,
        "keyhole {args:?}: not one line: {:?}",
        r.stderr
    );
    assert!(r.stderr.starts_with("keyhole: "), "{}", r.stderr);
    assert!(
        r.stderr.contains(needle),
        "keyhole {args:?}: {:?} lacks {needle:?}",
        r.stderr
    );
}

#[test]
fn plan_rejects_bad_names_modes_and_ttls() {
    let base = ["plan", "web-0", "--mode", "standard"];
    let with = |extra: &[&'static str]| -> Vec<&'static str> {
        base.iter().chain(extra).copied().collect()
    };
    rejects(
        &["plan", "Web_0", "--mode", "standard"],
        None,
        "invalid pod name \"Web_0\"",
    );
    rejects(
        &with(&["-n", "Prod"]),
        None,
        "invalid namespace name \"Prod\"",
    );
    rejects(
        &with(&["--container=-app"]),
        None,
        "invalid container name \"-app\"",
    );
    rejects(
        &["plan", "web-0", "--mode", "fast"],
        None,
        "unknown scan mode \"fast\"",
    );
    rejects(&with(&["--ttl", "5m"]), None, "must be between 10m and 24h");
    rejects(
        &with(&["--ttl", "25h"]),
        None,
        "must be between 10m and 24h",
    );
    rejects(&with(&["--ttl", "ten"]), None, "invalid ttl \"ten\"");
    rejects(&with(&["--run-id", "UPPER"]), None, "invalid run id");
    rejects(
        &with(&["--api-server", "10.0.0.1"]),
        None,
        "invalid API server endpoint",
    );
    rejects(&with(&["--image", "busybox"]), None, "busybox");
    rejects(&with(&["--bogus"]), None, "--bogus");
    rejects(&["plan", "--mode", "standard"], None, "TARGET");
}

#[test]
fn plan_rejects_incomplete_workflows() {
    // No default mode: the message says which modes plan takes, and why not auto.
    rejects(
        &["plan", "web-0"],
        None,
        "keyhole plan needs --mode standard, distroless or sidecar",
    );
    rejects(
        &["plan", "web-0", "--mode", "auto"],
        None,
        "--mode auto is decided at scan time",
    );
    rejects(
        &["plan", "web-0", "--mode", "distroless", "--target-uid", "1"],
        None,
        "needs -c CONTAINER",
    );
    rejects(
        &["plan", "web-0", "--mode", "distroless", "-c", "app"],
        None,
        "--target-uid",
    );
    rejects(
        &[
            "plan",
            "a",
            "b",
            "--mode",
            "sidecar",
            "-c",
            "app",
            "--target-uid",
            "10001",
            "--launch",
            "nginx:1.27",
        ],
        None,
        "exactly one TARGET",
    );
    rejects(
        &[
            "plan",
            "web-0",
            "--mode",
            "standard",
            "--launch",
            "nginx:1.27",
        ],
        None,
        "--launch only applies to --mode sidecar",
    );
}

#[test]
fn sidecar_inject_rejects_bad_manifests() {
    let inject = ["sidecar", "inject", "-", "--target-uid", "10001"];
    rejects(&inject, Some("kind: Pod\nspec: [unclosed"), "YAML");
    rejects(
        &inject,
        Some("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: b}\n"),
        "ConfigMap",
    );
    rejects(&inject, Some(""), "empty");
    let two = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - {name: a, image: x:1}\n  - {name: b, image: y:1}\n";
    rejects(&inject, Some(two), "-c");
    let missing = fixture("job.yaml");
    rejects(
        &["sidecar", "inject", missing.to_str().unwrap(), "-c", "nope"],
        None,
        "nope",
    );
    rejects(
        &["sidecar", "inject", "/nonexistent/keyhole.yaml"],
        None,
        "cannot read /nonexistent/keyhole.yaml",
    );
}

#[test]
fn a_bad_api_timeout_is_refused_and_a_good_one_in_any_unit_accepted() {
    let run = |value: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_keyhole"))
            .args([
                "access",
                "web-0",
                "--kubeconfig",
                "/nonexistent",
                "--",
                "true",
            ])
            .env("KEYHOLE_API_TIMEOUT", value)
            .output()
            .unwrap()
    };
    for bad in ["0s", "ten", "5", "-1s"] {
        let out = run(bad);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {stderr}");
        assert!(stderr.contains("KEYHOLE_API_TIMEOUT"), "{bad}: {stderr}");
    }
    // Accepted: the run goes on to the kubeconfig, which does not exist.
    for good in ["500ms", "3s", "1m", "1.5s"] {
        let out = run(good);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("cannot read your kubeconfig"),
            "{good}: {stderr}"
        );
    }
}
