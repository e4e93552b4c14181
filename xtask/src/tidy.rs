//! Repository hygiene checks, run by plain `cargo test` (and so by `cargo xtask ci`).

use std::path::{Path, PathBuf};

use crate::root;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir)
        .expect("readable source tree")
        .flatten()
    {
        let p = e.path();
        if p.is_dir() {
            if !matches!(
                p.file_name().and_then(|n| n.to_str()),
                Some("target" | ".git" | "snapshots")
            ) {
                rust_files(&p, out);
            }
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn every_rust_file_starts_with_a_module_doc() {
    let mut files = Vec::new();
    rust_files(&root().join("crates"), &mut files);
    rust_files(&root().join("xtask"), &mut files);
    assert!(files.len() > 10, "found only {} files", files.len());
    let missing: Vec<_> = files
        .iter()
        .filter(|f| {
            !std::fs::read_to_string(f)
                .unwrap_or_default()
                .trim_start()
                .starts_with("//!")
        })
        .collect();
    assert!(
        missing.is_empty(),
        "files without a `//!` doc at the top: {missing:?}"
    );
}

#[test]
fn ci_and_readme_agree_on_the_test_command() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let ci = std::fs::read_to_string(root().join(".ci/run")).expect(".ci/run");
    assert!(
        readme.contains("cargo xtask ci"),
        "README must show the test command"
    );
    assert!(
        ci.contains("cargo xtask ci"),
        ".ci/run must call the README's test command"
    );
}

#[test]
fn every_crate_uses_the_workspace_lints() {
    let crates: Vec<_> = std::fs::read_dir(root().join("crates"))
        .expect("crates/")
        .flatten()
        .collect();
    assert!(crates.len() > 10, "found only {} crates", crates.len());
    for e in crates {
        let manifest = std::fs::read_to_string(e.path().join("Cargo.toml")).expect("Cargo.toml");
        assert!(
            manifest.contains("[lints]\nworkspace = true"),
            "{} lacks [lints] workspace = true",
            e.path().display()
        );
    }
}

/// One reference in a tracked file to a path outside the repository.
#[derive(Debug, PartialEq, Eq)]
struct Outside {
    /// 1-based line number.
    line: usize,
    /// The path as written.
    path: String,
}

/// Characters a path token is made of (anything else, quotes and parentheses included, ends it).
fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "._-/{}$~+@".contains(c)
}

/// Whether `dir/token` (both relative to the repository root, `dir` split into components)
/// climbs above the root. A first component that is empty (a leading `/`) or a placeholder
/// (`{}`, `{name}`, `$VAR`) stands for `dir` itself and is dropped only when `anchored`;
/// otherwise such tokens are absolute or of unknown origin and are not judged here.
fn climbs_out(dir: &[&str], token: &str, anchored: bool) -> bool {
    let mut parts = token.split('/').peekable();
    if let Some(first) = parts.peek() {
        let placeholder = first.is_empty() || first.contains(['{', '$']);
        if placeholder {
            if !anchored {
                return false;
            }
            parts.next();
        }
    }
    let mut depth = dir.len();
    for part in parts {
        match part {
            "" | "." => {}
            ".." => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => return true,
            },
            _ => depth += 1,
        }
    }
    false
}

/// The directory of the crate `file` belongs to: the longest of `manifest_dirs` (directories
/// holding a tracked `Cargo.toml`, `""` for the root) that contains it.
fn crate_dir<'a>(file: &str, manifest_dirs: &[&'a str]) -> &'a str {
    manifest_dirs
        .iter()
        .copied()
        .filter(|d| d.is_empty() || file.starts_with(&format!("{d}/")))
        .max_by_key(|d| d.len())
        .unwrap_or("")
}

/// The references in `text` (the tracked file `file`, relative to the root) to paths outside
/// the repository:
///
/// - this machine's layout (`/work/...`), anywhere;
/// - relative paths that climb above the root, resolved from where the file's tool resolves
///   them: Markdown, TOML and scripts from the file's directory, GitHub workflows from the
///   root. In Rust, only paths tied to the source tree are judged, since tests also spell
///   hostile paths as data (symlink targets, `/../../etc/passwd`): paths near
///   `CARGO_MANIFEST_DIR` or a file-system call resolve from the crate directory (where cargo
///   runs tests), `include_str!`/`include_bytes!`/`#[path]` from the file's directory, and
///   xtask's `root()` from the root.
fn outside_references(file: &str, text: &str, manifest_dirs: &[&str]) -> Vec<Outside> {
    let components = |d: &str| -> Vec<String> {
        d.split('/')
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let file_dir = components(file.rsplit_once('/').map_or("", |(d, _)| d));
    let krate = components(crate_dir(file, manifest_dirs));
    let rust = file.ends_with(".rs");
    let workflow = file.starts_with(".github/");
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let mut push = |path: &str| {
            out.push(Outside {
                line: i + 1,
                path: path.to_owned(),
            })
        };
        // Absolute paths of this machine's layout.
        let mut from = 0;
        while let Some(at) = line[from..].find("/work/") {
            let start = from + at;
            let preceded = line[..start]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
            if !preceded {
                let end = line[start..]
                    .find(|c: char| !is_path_char(c))
                    .map_or(line.len(), |n| start + n);
                push(&line[start..end]);
            }
            from = start + 1;
        }
        // Relative paths that climb out.
        for token in line.split(|c: char| !is_path_char(c)) {
            if !token.split('/').any(|p| p == "..") || !token.contains('/') {
                continue;
            }
            let (base, anchored): (&[String], bool) = if rust {
                let window = lines[i.saturating_sub(3)..lines.len().min(i + 3)].join("\n");
                if window.contains("CARGO_MANIFEST_DIR") {
                    (&krate, true)
                } else if ["include_str!", "include_bytes!", "#[path"]
                    .iter()
                    .any(|m| line.contains(m))
                {
                    (&file_dir, false)
                } else if file.starts_with("xtask/") && window.contains("root()") {
                    (&[], false)
                } else if [
                    "read_to_string(",
                    "fs::read(",
                    "File::open(",
                    "Path::new(",
                    "PathBuf::from(",
                    "current_dir(",
                ]
                .iter()
                .any(|m| window.contains(m))
                {
                    (&krate, false)
                } else {
                    continue;
                }
            } else if workflow {
                (&[], false)
            } else {
                (&file_dir, false)
            };
            let base: Vec<&str> = base.iter().map(String::as_str).collect();
            if climbs_out(&base, token, anchored) {
                push(token);
            }
        }
    }
    out
}

/// The tracked files (`git ls-files`), relative to the root.
fn tracked_files() -> Vec<String> {
    let out = std::process::Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(root())
        .output()
        .expect("git must be installed to list the tracked files");
    assert!(
        out.status.success(),
        "git ls-files failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("tracked paths are UTF-8")
        .split('\0')
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn no_tracked_file_refers_to_a_path_outside_the_repository() {
    let files = tracked_files();
    assert!(files.len() > 50, "git lists only {} files", files.len());
    let manifest_dirs: Vec<&str> = files
        .iter()
        .filter_map(|f| f.strip_suffix("Cargo.toml"))
        .map(|d| d.trim_end_matches('/'))
        .collect();
    let mut found = Vec::new();
    let mut read = 0;
    for file in &files {
        // This file's own examples are references by design.
        if file == "xtask/src/tidy.rs" {
            continue;
        }
        let Ok(bytes) = std::fs::read(root().join(file)) else {
            // Deleted in the work tree but still in the index: nothing to read.
            continue;
        };
        let Ok(text) = String::from_utf8(bytes) else {
            continue;
        };
        read += 1;
        for o in outside_references(file, &text, &manifest_dirs) {
            found.push(format!("{file}:{}: {}", o.line, o.path));
        }
    }
    assert!(read > 50, "read only {read} tracked text files");
    assert!(
        found.is_empty(),
        "tracked files refer to paths outside the repository (a clone must stand on its own: \
         copy what is needed under fixtures/ with a note of its source):\n{}",
        found.join("\n")
    );
}

#[cfg(test)]
mod outside {
    use super::{Outside, outside_references};

    const MANIFESTS: &[&str] = &[
        "",
        "crates/hdf",
        "crates/engine",
        "crates/cli",
        "crates/scanners",
        "xtask",
    ];

    fn found(file: &str, text: &str) -> Vec<String> {
        outside_references(file, text, MANIFESTS)
            .into_iter()
            .map(|Outside { line, path }| format!("{line}:{path}"))
            .collect()
    }

    #[test]
    fn flags_paths_beside_the_clone_reached_from_the_crate_directory() {
        let support = "pub(crate) fn dir() -> PathBuf {\n    \
                       PathBuf::from(env!(\"CARGO_MANIFEST_DIR\")).join(\"../../../beside\")\n}\n";
        assert_eq!(
            found("crates/hdf/tests/it/support.rs", support),
            ["2:../../../beside"]
        );
        let concat = "let path = concat!(\n    env!(\"CARGO_MANIFEST_DIR\"),\n    \
                      \"/../../../beside/hdf-schema/exec-json.json\"\n);\n";
        assert_eq!(
            found("crates/engine/tests/it/eval_fixture.rs", concat),
            ["3:/../../../beside/hdf-schema/exec-json.json"]
        );
        let cwd = "let t = std::fs::read_to_string(\"../../../beside/x.json\").unwrap();";
        assert_eq!(
            found("crates/hdf/tests/it/x.rs", cwd),
            ["1:../../../beside/x.json"]
        );
        let include = "const P: &str = include_str!(\"../../../../../README.md\");";
        assert_eq!(
            found("crates/engine/src/a/b.rs", include),
            ["1:../../../../../README.md"]
        );
    }

    #[test]
    fn accepts_paths_that_stay_inside() {
        let cli = "PathBuf::from(env!(\"CARGO_MANIFEST_DIR\"))\n    \
                   .join(\"../../fixtures/workloads\")\n    .join(name)";
        assert!(found("crates/cli/tests/it/main.rs", cli).is_empty());
        let format = "let p = format!(\n    \"{}/../../fixtures/workloads/{name}\",\n    \
                      env!(\"CARGO_MANIFEST_DIR\")\n);";
        assert!(found("crates/scanners/tests/it/main.rs", format).is_empty());
        let concat = "concat!(env!(\"CARGO_MANIFEST_DIR\"), \"/../../docs/profile.schema.json\")";
        assert!(found("crates/engine/tests/it/eval_profile.rs", concat).is_empty());
        let include = "include_str!(\"../profiles/container-baseline.yaml\"),";
        assert!(found("crates/engine/src/profile.rs", include).is_empty());
        let xtask = "let path = root().join(\"fixtures/workloads/pod.yaml\");";
        assert!(found("xtask/src/gates.rs", xtask).is_empty());
        assert!(
            found(
                "crates/cli/Cargo.toml",
                "keyhole-core = { path = \"../core\" }"
            )
            .is_empty()
        );
        let link = "See the [workspace README](../../README.md) and `../engine/src/lib.rs`.";
        assert!(found("crates/hdf/README.md", link).is_empty());
        let ci = "cd \"$(dirname \"$0\")/..\"\ncargo xtask ci\n";
        assert!(found(".ci/run", ci).is_empty());
    }

    #[test]
    fn leaves_hostile_paths_spelled_as_test_data_alone() {
        let data = "symlink(\"../../../../../etc/hostname\", r(\"etc/dotdot\")).unwrap();\n\
                    let facts = answer(&facts, &read(\"/../../etc/passwd\", 64));\n\
                    line(A, \"usr/bin/../../etc/shadow\"),\n\
                    /// Handles POST `.../serviceaccounts/NAME/token`.\n";
        assert!(found("crates/engine/tests/it/source_fixtures.rs", data).is_empty());
        assert!(
            found(
                "crates/engine/src/check.rs",
                "let home = \"/srv/work/app\";"
            )
            .is_empty()
        );
    }

    #[test]
    fn flags_escapes_in_documents_and_workflows() {
        let readme = "The design is in [DESIGN.md](../beside/DESIGN.md).";
        assert_eq!(found("README.md", readme), ["1:../beside/DESIGN.md"]);
        assert_eq!(
            found("crates/hdf/README.md", "[x](../../../other/x.md)"),
            ["1:../../../other/x.md"]
        );
        // Workflow steps run in the checkout's root, whatever directory the file is in.
        let workflow = "      - run: cargo test\n        working-directory: ../other\n";
        assert_eq!(found(".github/workflows/ci.yml", workflow), ["2:../other"]);
        let machine = ["", "work", "shared", "samples", "x.json"].join("/");
        assert_eq!(
            found("docs/a.md", &format!("read `{machine}` first")),
            [format!("1:{machine}")]
        );
    }
}

/// The default agent image is pinned by digest, under the name and tag `cargo xtask image`
/// gives it. That the digest is the one this checkout builds is checked by `cargo xtask ci`
/// (`image::check_pin`): it needs a release build of the static agent, minutes when nothing is
/// cached, too slow for every `cargo test`.
#[test]
fn the_default_agent_image_is_pinned_by_digest_with_the_workspace_version() {
    let source = std::fs::read_to_string(root().join("crates/scanners/src/image.rs"))
        .expect("crates/scanners/src/image.rs");
    let reference = crate::image::pinned_reference(&source)
        .expect("crates/scanners/src/image.rs defines DEFAULT_SCANNER_IMAGE");
    let version = crate::image::workspace_version().expect("the workspace version");
    let Some((name, digest)) = reference.split_once('@') else {
        panic!(
            "DEFAULT_SCANNER_IMAGE {reference:?} is not pinned by digest: run `cargo xtask image` and pin what it prints"
        );
    };
    assert_eq!(
        name,
        format!("ghcr.io/keyhole-scanner/keyhole-agent:{version}"),
        "the default image's tag must be the workspace version"
    );
    let hex = digest.strip_prefix("sha256:").unwrap_or_default();
    assert!(
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "{digest:?} is not sha256:<64 lowercase hex>"
    );
}
