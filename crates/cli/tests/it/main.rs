//! End-to-end tests of the `keyhole` binary: plan and sidecar-inject output (insta snapshots,
//! reviewed and committed), the properties checkov cannot see, and bad input; and the cluster
//! flows (`keyhole access`, `keyhole reap`) against the testkit fake, in-process and over HTTPS.

mod audit_log;
mod cinc;
mod cluster_scan;
mod demo;
mod errors;
mod fault_matrix;
mod fleet;
mod fleet_node;
mod invariants;
mod launch;
mod leaks;
mod least_privilege;
mod node_faults;
mod node_identity;
mod node_scan;
mod plan_profile;
mod postscan;
mod precheck_gate;
mod realapi;
mod realapi_node;
mod reap;
mod scan;
mod scenarios;
mod session;
mod signals;
mod support;
mod tls;
mod uid_probe;
mod workflow_faults;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// A fixed run id and issue time make plans reproducible.
const FIXED: &[&str] = &[
    "--run-id",
    "snaprun001",
    "--issued-at",
    "2026-11-26T14:00:00Z",
];
const SCANNER: &str = "ghcr.io/keyhole-scanner/keyhole-agent:0.1.0@sha256:2f1b6c0d9a4e7f3b8c5d1e6a9b0c4d7e2f5a8b1c3d6e9f0a2b4c6d8e0f1a3b5c";

/// What one run of the binary did.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn keyhole(args: &[&str], stdin: Option<&str>) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_keyhole"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("keyhole starts");
    let mut input = child.stdin.take().expect("stdin is piped");
    input
        .write_all(stdin.unwrap_or_default().as_bytes())
        .expect("stdin accepts input");
    drop(input);
    let out = child.wait_with_output().expect("keyhole ends");
    Run {
        code: out.status.code().expect("keyhole exits, not killed"),
        stdout: String::from_utf8(out.stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8(out.stderr).expect("utf-8 stderr"),
    }
}

/// `keyhole plan` with the fixed run id/time: must succeed, returns stdout.
fn plan(args: &[&str]) -> String {
    let mut all = vec!["plan"];
    all.extend_from_slice(args);
    all.extend_from_slice(FIXED);
    let r = keyhole(&all, None);
    assert_eq!(r.code, 0, "keyhole {all:?} failed: {}", r.stderr);
    r.stdout
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/workloads")
        .join(name)
}

/// The one snapshot helper: the command's stdout must match the committed snapshot `name`.
fn check(name: &str, args: &[&str]) {
    let out = if args.first() == Some(&"sidecar") {
        let r = keyhole(args, None);
        assert_eq!(r.code, 0, "keyhole {args:?} failed: {}", r.stderr);
        r.stdout
    } else {
        plan(args)
    };
    insta::assert_snapshot!(name, out);
}

#[test]
fn plan_standard() {
    check(
        "plan_standard",
        &["web-0", "-n", "shop", "--mode", "standard"],
    );
}

#[test]
fn plan_standard_multi_pod() {
    check(
        "plan_standard_multi_pod",
        &[
            "pod/web-2",
            "web-0",
            "web-1",
            "web-0",
            "-n",
            "shop",
            "--mode",
            "standard",
        ],
    );
}

#[test]
fn plan_distroless() {
    check(
        "plan_distroless",
        &[
            "web-0",
            "-n",
            "shop",
            "--mode",
            "distroless",
            "-c",
            "web",
            "--target-uid",
            "10001",
            "--target-gid",
            "10001",
            "--image",
            SCANNER,
        ],
    );
}

#[test]
fn plan_distroless_multi_pod() {
    check(
        "plan_distroless_multi_pod",
        &[
            "web-0",
            "web-1",
            "-n",
            "shop",
            "--mode",
            "distroless",
            "-c",
            "web",
            "--target-uid",
            "10001",
            "--image",
            SCANNER,
            "--ttl",
            "30m",
        ],
    );
}

#[test]
fn plan_sidecar() {
    check(
        "plan_sidecar",
        &["web-0", "-n", "shop", "--mode", "sidecar"],
    );
}

#[test]
fn plan_sidecar_launch() {
    check(
        "plan_sidecar_launch",
        &[
            "scan-web",
            "-n",
            "shop",
            "--mode",
            "sidecar",
            "-c",
            "app",
            "--target-uid",
            "10001",
            "--image",
            SCANNER,
            "--launch",
            "registry.example.com/shop/web:1.4.2@sha256:9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b",
            "--api-server",
            "10.96.0.1:443",
        ],
    );
}

#[test]
fn plan_in_cluster_json() {
    check(
        "plan_in_cluster_json",
        &[
            "web-0",
            "-n",
            "shop",
            "--mode",
            "standard",
            "--api-server",
            "10.96.0.1:443",
            "--allow-dns",
            "-o",
            "json",
        ],
    );
}

#[test]
fn sidecar_inject_deployment() {
    let f = fixture("deployment.yaml");
    check(
        "sidecar_inject_deployment",
        &["sidecar", "inject", f.to_str().unwrap(), "--image", SCANNER],
    );
}

#[test]
fn sidecar_inject_job() {
    let f = fixture("job.yaml");
    check(
        "sidecar_inject_job",
        &["sidecar", "inject", f.to_str().unwrap(), "--image", SCANNER],
    );
}

#[test]
fn sidecar_inject_reads_stdin() {
    let text = std::fs::read_to_string(fixture("job.yaml")).unwrap();
    let from_stdin = keyhole(&["sidecar", "inject", "-", "--image", SCANNER], Some(&text));
    let from_file = keyhole(
        &[
            "sidecar",
            "inject",
            fixture("job.yaml").to_str().unwrap(),
            "--image",
            SCANNER,
        ],
        None,
    );
    assert_eq!(from_stdin.code, 0, "{}", from_stdin.stderr);
    assert_eq!(from_stdin.stdout, from_file.stdout);
}
