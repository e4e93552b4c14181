//! `cargo xtask package`: every crate under `crates/` can be reused on its own. Its manifest
//! has the metadata crates.io shows (description, license, repository, documentation, readme,
//! keywords, categories, rust-version), its README exists and, for a library, is compiled as a
//! doctest (`include_str!("../README.md")` in `src/lib.rs`), and `cargo package` builds its
//! `.crate` file.
//!
//! The crates are packaged in one `cargo package` call: cargo then resolves the path
//! dependencies between them (`keyhole-rbac` on `keyhole-core 0.1.0`, …) against the crates being
//! packaged instead of crates.io, where they are not published. `--no-verify` skips building
//! each package again from its tarball (the workspace build already compiles the same sources;
//! the only file a crate includes from disk, the built-in profile, lives inside its crate).
//! Crates marked `publish = false` (test support) are packaged too, so they stay
//! packageable; the summary says which are publishable.

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use crate::{cargo, root, run};

/// One workspace crate, as `cargo metadata` describes it.
struct Member {
    name: String,
    dir: std::path::PathBuf,
    publish: bool,
    has_lib: bool,
}

/// Checks every crate's metadata and README, then packages them all.
pub(crate) fn run_package() -> Result<()> {
    let members = members()?;
    let mut problems = Vec::new();
    for m in &members {
        problems.extend(metadata_problems(m)?);
    }
    if !problems.is_empty() {
        bail!(
            "crates are not ready to be reused on their own:\n  {}",
            problems.join("\n  ")
        );
    }
    let mut cmd = cargo();
    cmd.args(["package", "--no-verify", "--allow-dirty", "--locked"]);
    for m in &members {
        cmd.args(["-p", &m.name]);
    }
    run(&mut cmd)?;
    let (publishable, private): (Vec<_>, Vec<_>) = members.iter().partition(|m| m.publish);
    let names = |ms: &[&Member]| {
        ms.iter()
            .map(|m| m.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    eprintln!(
        "xtask package: {} crates packaged into target/package (publishable: {}; publish = false: {})",
        members.len(),
        names(&publishable),
        names(&private)
    );
    Ok(())
}

/// The workspace members under `crates/`.
fn members() -> Result<Vec<Member>> {
    let out = cargo()
        .args(["metadata", "--no-deps", "--format-version", "1", "--locked"])
        .current_dir(root())
        .output()
        .context("cannot run cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let meta: Value = serde_json::from_slice(&out.stdout).context("cargo metadata output")?;
    let crates_dir = root().join("crates");
    let mut members = Vec::new();
    for p in meta["packages"]
        .as_array()
        .context("no packages in cargo metadata")?
    {
        let manifest = std::path::PathBuf::from(p["manifest_path"].as_str().unwrap_or_default());
        let dir = manifest.parent().context("manifest without a directory")?;
        if !dir.starts_with(&crates_dir) {
            continue;
        }
        members.push(Member {
            name: p["name"].as_str().unwrap_or_default().to_owned(),
            dir: dir.to_path_buf(),
            // `publish = false` is an empty registry list; absent (null) means crates.io.
            publish: p["publish"].as_array().is_none_or(|r| !r.is_empty()),
            has_lib: p["targets"].as_array().is_some_and(|ts| {
                ts.iter().any(|t| {
                    t["kind"]
                        .as_array()
                        .is_some_and(|k| k.iter().any(|k| k == "lib"))
                })
            }),
        });
        let m = members.last().expect("just pushed");
        let missing: Vec<&str> = [
            "description",
            "license",
            "repository",
            "documentation",
            "readme",
            "rust_version",
        ]
        .into_iter()
        .filter(|k| p[*k].as_str().is_none_or(str::is_empty))
        .chain(
            ["keywords", "categories"]
                .into_iter()
                .filter(|k| p[*k].as_array().is_none_or(Vec::is_empty)),
        )
        .collect();
        if !missing.is_empty() {
            bail!(
                "{}: Cargo.toml lacks {} (see crates/core/Cargo.toml)",
                m.name,
                missing.join(", ")
            );
        }
    }
    if members.len() < 2 {
        bail!("found only {} crates under crates/", members.len());
    }
    members.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(members)
}

/// What keeps `m` from being reused on its own: a missing README, or a library README that is
/// not compiled as a doctest.
fn metadata_problems(m: &Member) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    let readme = m.dir.join("README.md");
    let text = match std::fs::read_to_string(&readme) {
        Ok(t) => t,
        Err(e) => return Ok(vec![format!("{}: {e}", readme.display())]),
    };
    if !text.contains("```") && m.publish {
        problems.push(format!("{}: README.md shows no example", m.name));
    }
    if m.has_lib && text.contains("```rust") {
        let lib = m.dir.join("src/lib.rs");
        let src = std::fs::read_to_string(&lib)
            .with_context(|| format!("cannot read {}", lib.display()))?;
        if !src.contains("include_str!(\"../README.md\")") {
            problems.push(format!(
                "{}: the README's example is not a doctest; add to src/lib.rs:\n    \
                 #[cfg(doctest)]\n    #[doc = include_str!(\"../README.md\")]\n    struct ReadmeDoctest;",
                m.name
            ));
        }
    }
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_crate_is_ready_to_package() {
        let members = members().expect("cargo metadata");
        let problems: Vec<String> = members
            .iter()
            .flat_map(|m| metadata_problems(m).expect("readable crate"))
            .collect();
        assert!(problems.is_empty(), "{problems:#?}");
        // Test support is never published; everything else is.
        let private: Vec<&str> = members
            .iter()
            .filter(|m| !m.publish)
            .map(|m| m.name.as_str())
            .collect();
        assert_eq!(private, ["keyhole-testkit"]);
    }
}
