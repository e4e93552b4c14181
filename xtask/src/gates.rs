//! The external manifest gates: every object `keyhole plan` and `keyhole sidecar inject` emit
//! for a set of scenarios, validated by `kubernetes-validate --strict` (oldest and newest
//! supported Kubernetes) and `checkov` with zero failed checks.
//!
//! Validators need complete objects, so the ephemeral-container patch of the distroless plan is
//! applied to the fixture target pod before validation (which is what the API server stores).
//! checkov ignores `ephemeralContainers` and `shareProcessNamespace`; the Rust tests cover them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail, ensure};
use serde_json::Value;

use crate::{root, run as sh, show, tools};

/// Kubernetes versions whose schemas every manifest must satisfy: the oldest and newest we
/// support.
const KUBE_VERSIONS: &[&str] = &["1.30.0", "1.37.0"];
/// A digest-pinned scanner image, as a careful user passes it.
const SCANNER: &str = "ghcr.io/keyhole-scanner/keyhole-agent:0.1.0@sha256:2f1b6c0d9a4e7f3b8c5d1e6a9b0c4d7e2f5a8b1c3d6e9f0a2b4c6d8e0f1a3b5c";
/// A digest-pinned application image for `--launch`.
const APP: &str = "registry.example.com/shop/web:1.4.2@sha256:9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b";
/// Fixed run id and issue time: the gate output is reproducible.
const RUN_ID: &str = "gaterun001";
const ISSUED_AT: &str = "2026-01-01T00:00:00Z";

/// Generates all manifests and runs both validators; fails on any error or failed check.
pub(crate) fn run() -> Result<()> {
    let venv = tools::venv()?;
    sh(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())).args([
            "build",
            "--quiet",
            "--locked",
            "-p",
            "keyhole-cli",
        ]),
    )?;
    let keyhole = root().join("target/debug/keyhole");
    let out = root().join("target/gates");
    if out.exists() {
        std::fs::remove_dir_all(&out).context("cannot clear target/gates")?;
    }
    std::fs::create_dir_all(&out)?;

    let files = generate(&keyhole, &out)?;
    eprintln!("gates: {} manifest files in {}", files.len(), out.display());
    kubernetes_validate(&venv, &files)?;
    checkov(&venv, &out)?;
    Ok(())
}

/// Runs `keyhole ARGS`, which must succeed, and returns its stdout.
fn keyhole(bin: &Path, args: &[&str]) -> Result<String> {
    let mut cmd = Command::new(bin);
    cmd.args(args);
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {}", show(&cmd)))?;
    if !out.status.success() {
        bail!(
            "{} failed: {}",
            show(&cmd),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?)
}

fn read_yaml_docs(path: &Path) -> Result<Vec<Value>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    yaml_docs(&text).with_context(|| format!("in {}", path.display()))
}

fn yaml_docs(text: &str) -> Result<Vec<Value>> {
    let mut docs = Vec::new();
    for de in serde_norway::Deserializer::from_str(text) {
        let v: Value = serde::Deserialize::deserialize(de)?;
        if !v.is_null() {
            docs.push(v);
        }
    }
    Ok(docs)
}

fn write_doc(dir: &Path, index: usize, doc: &Value) -> Result<PathBuf> {
    let kind = doc["kind"].as_str().unwrap_or("object").to_lowercase();
    let name = doc["metadata"]["name"].as_str().unwrap_or("unnamed");
    let path = dir.join(format!("{index:02}-{kind}-{name}.json"));
    std::fs::write(&path, serde_json::to_string_pretty(doc)?)?;
    Ok(path)
}

/// The fixture pod that distroless plans patch, and the facts of it a plan needs.
struct TargetPod {
    doc: Value,
    name: String,
    namespace: String,
    container: String,
    uid: u64,
}

fn target_pod() -> Result<TargetPod> {
    let path = root().join("fixtures/workloads/pod.yaml");
    let doc = read_yaml_docs(&path)?
        .into_iter()
        .find(|d| d["kind"] == "Pod")
        .context("pod.yaml is empty")?;
    let s = |v: &Value, what: &str| {
        v.as_str()
            .map(str::to_string)
            .with_context(|| format!("target pod has no {what}"))
    };
    let c = &doc["spec"]["containers"][0];
    let uid = c["securityContext"]["runAsUser"]
        .as_u64()
        .or_else(|| doc["spec"]["securityContext"]["runAsUser"].as_u64())
        .context("target pod sets no runAsUser")?;
    Ok(TargetPod {
        name: s(&doc["metadata"]["name"], "name")?,
        namespace: s(&doc["metadata"]["namespace"], "namespace")?,
        container: s(&c["name"], "container name")?,
        uid,
        doc,
    })
}

/// Writes every object of every scenario as one JSON file per object.
fn generate(bin: &Path, out: &Path) -> Result<Vec<PathBuf>> {
    let pod = target_pod()?;
    let uid = pod.uid.to_string();
    let fixed = [
        "--run-id",
        RUN_ID,
        "--issued-at",
        ISSUED_AT,
        "-o",
        "json",
        "--image",
        SCANNER,
    ];
    let base = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = ["plan", "-n", &pod.namespace]
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v.extend(fixed.iter().map(|s| s.to_string()));
        v
    };
    let scenarios: BTreeMap<&str, Vec<String>> = BTreeMap::from([
        ("plan-standard", base(&[&pod.name, "--mode", "standard"])),
        (
            "plan-standard-multi",
            base(&[&pod.name, "web-1", "web-2", "--mode", "standard"]),
        ),
        (
            "plan-standard-in-cluster",
            base(&[
                &pod.name,
                "--mode",
                "standard",
                "--api-server",
                "10.96.0.1:443",
                "--allow-dns",
            ]),
        ),
        (
            "plan-distroless",
            base(&[
                &pod.name,
                "--mode",
                "distroless",
                "-c",
                &pod.container,
                "--target-uid",
                &uid,
                "--target-gid",
                &uid,
            ]),
        ),
        ("plan-sidecar", base(&[&pod.name, "--mode", "sidecar"])),
        (
            "plan-sidecar-launch",
            base(&[
                "scan-web",
                "--mode",
                "sidecar",
                "-c",
                "app",
                "--launch",
                APP,
                "--target-uid",
                &uid,
                "--api-server",
                "10.96.0.1/32:443",
            ]),
        ),
    ]);
    let mut files = Vec::new();
    for (name, args) in &scenarios {
        let dir = out.join(name);
        std::fs::create_dir_all(&dir)?;
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let plan: Value = serde_json::from_str(&keyhole(bin, &args)?)?;
        let steps = plan["steps"].as_array().context("plan has no steps")?;
        ensure!(!steps.is_empty(), "plan {name} is empty");
        for (i, step) in steps.iter().enumerate() {
            let body = &step["body"];
            let doc = match step["method"].as_str() {
                Some("POST") => body.clone(),
                Some("PATCH")
                    if step["path"]
                        .as_str()
                        .is_some_and(|p| p.ends_with("/ephemeralcontainers")) =>
                {
                    // What the API server stores after the patch: the target pod plus the debug container.
                    let mut patched = pod.doc.clone();
                    patched["spec"]["ephemeralContainers"] =
                        body["spec"]["ephemeralContainers"].clone();
                    patched
                }
                other => bail!("plan {name} step {i}: unexpected method {other:?}"),
            };
            files.push(write_doc(&dir, i + 1, &doc)?);
        }
    }
    // Every workload fixture, with the sidecar injected.
    let mut fixtures: Vec<PathBuf> = std::fs::read_dir(root().join("fixtures/workloads"))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    fixtures.sort();
    for f in fixtures
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "yaml"))
    {
        let stem = f.file_stem().unwrap_or_default().to_string_lossy();
        let dir = out.join(format!("inject-{stem}"));
        std::fs::create_dir_all(&dir)?;
        let text = keyhole(
            bin,
            &[
                "sidecar",
                "inject",
                &f.to_string_lossy(),
                "--image",
                SCANNER,
            ],
        )?;
        // Kept as the YAML text keyhole printed: converting it would re-interpret YAML 1.1
        // values (e.g. octal file modes) that the validators must see as Kubernetes does.
        ensure!(
            !yaml_docs(&text)?.is_empty(),
            "inject {stem} printed nothing"
        );
        let path = dir.join(format!("{stem}.yaml"));
        std::fs::write(&path, text)?;
        files.push(path);
    }
    Ok(files)
}

fn kubernetes_validate(venv: &Path, files: &[PathBuf]) -> Result<()> {
    for version in KUBE_VERSIONS {
        let mut cmd = Command::new(venv.join("bin/kubernetes-validate"));
        cmd.args(["--strict", "--quiet", "-k", version]).args(files);
        let out = cmd
            .output()
            .with_context(|| format!("cannot run {}", show(&cmd)))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let errors = text.lines().filter(|l| l.starts_with("ERROR")).count();
        if !out.status.success() || errors > 0 {
            eprintln!("{text}");
            bail!(
                "kubernetes-validate --strict -k {version}: {errors} error(s) in {} files",
                files.len()
            );
        }
        eprintln!(
            "kubernetes-validate --strict -k {version}: {} files, 0 errors",
            files.len()
        );
    }
    Ok(())
}

fn checkov(venv: &Path, dir: &Path) -> Result<()> {
    let mut cmd = Command::new(venv.join("bin/checkov"));
    cmd.args([
        "--framework",
        "kubernetes",
        "--skip-download",
        "-o",
        "json",
        "-d",
    ])
    .arg(dir);
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {}", show(&cmd)))?;
    let report: Value = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "checkov printed no JSON report: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    let summary = &report["summary"];
    let n = |k: &str| summary[k].as_u64().unwrap_or(0);
    let results = &report["results"];
    let ids = |k: &str| -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for c in results[k].as_array().into_iter().flatten() {
            *m.entry(c["check_id"].as_str().unwrap_or("?").to_string())
                .or_default() += 1;
        }
        m
    };
    let passed = ids("passed_checks");
    eprintln!(
        "checkov: {} passed, {} failed, {} skipped ({} distinct checks passed: {})",
        n("passed"),
        n("failed"),
        n("skipped"),
        passed.len(),
        passed.keys().cloned().collect::<Vec<_>>().join(" ")
    );
    for c in results["skipped_checks"].as_array().into_iter().flatten() {
        eprintln!(
            "checkov: skipped {} on {}: {}",
            c["check_id"].as_str().unwrap_or("?"),
            c["resource"].as_str().unwrap_or("?"),
            c["check_result"]["suppress_comment"].as_str().unwrap_or("")
        );
    }
    for c in results["failed_checks"].as_array().into_iter().flatten() {
        eprintln!(
            "checkov: FAILED {} {} on {} ({})",
            c["check_id"].as_str().unwrap_or("?"),
            c["check_name"].as_str().unwrap_or(""),
            c["resource"].as_str().unwrap_or("?"),
            c["file_path"].as_str().unwrap_or("?")
        );
    }
    ensure!(
        n("passed") > 0,
        "checkov passed no check: it did not see the manifests"
    );
    ensure!(n("failed") == 0, "checkov: {} failed check(s)", n("failed"));
    Ok(())
}
