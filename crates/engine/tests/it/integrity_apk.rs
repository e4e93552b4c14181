//! `package_integrity` on apk-based targets (Alpine, Wolfi, Chainguard): a generated
//! `/lib/apk/db/installed` with its files, tampered with (content, mode, owner, a removed file, a
//! retargeted symlink); the findings are written out by hand, and the shell script (dash and
//! busybox sh) gathers the same facts as `LocalRoot`. Hostile databases (truncated, huge lines,
//! too large, `..` paths, bad checksums) give bounded, clear answers.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use keyhole_engine::{
    FactRequest, FactSource, FactValue, Facts, FileStatus, Inputs, LocalRoot, PackageManager,
    Profile, ShellScript, Waivers, evaluate, plan,
};
use keyhole_hdf::ControlStatus;
use sha1::Digest as _;

use crate::eval_fixture::now;
use crate::source_fixtures::{assert_same_facts, shells, shells_without_find, within};

const CONTROLS: &str = "  - id: APK
    impact: 0.7
    checks:
      - package_integrity: {paths: [/bin/, /usr/, /etc/]}
        where: {manager: apk}
        exists: false
";

fn profile() -> Profile {
    let text = format!("name: t\nversion: 0.1.0\ncontrols:\n{CONTROLS}");
    Profile::from_yaml_str(&text, "t.yaml").unwrap()
}

/// Standard base64 with padding (what apk writes after `Q1`).
fn base64(bytes: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = c.iter().fold(0u32, |n, &b| n << 8 | u32::from(b)) << (8 * (3 - c.len()));
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn q1(bytes: &[u8]) -> String {
    format!("Q1{}", base64(&sha1::Sha1::digest(bytes)))
}

/// Writes the root: two packages, their files and the database; returns the database text.
fn build(root: &Path) -> String {
    let w = |p: &str, bytes: &[u8], mode: u32| {
        let full = root.join(p);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(&full, bytes).unwrap();
        std::fs::set_permissions(&full, PermissionsExt::from_mode(mode)).unwrap();
    };
    w("bin/busybox", b"busybox binary", 0o755);
    w("bin/su", b"su binary", 0o4755);
    w("etc/motd", b"welcome\n", 0o644);
    std::os::unix::fs::symlink("/bin/busybox", root.join("bin/sh")).unwrap();
    w("usr/bin/tool", b"a tool", 0o755);
    w("usr/lib/libx.so", b"library", 0o755);
    let mut db = String::new();
    db.push_str("C:Q1ignoredpackagechecksum=\nP:busybox\nV:1.36.1-r0\nA:x86_64\n");
    db.push_str(&format!(
        "F:bin\nR:busybox\na:0:0:755\nZ:{}\nR:su\na:0:0:4755\nZ:{}\nR:sh\na:0:0:777\nZ:{}\n",
        q1(b"busybox binary"),
        q1(b"su binary"),
        q1(b"/bin/busybox")
    ));
    db.push_str(&format!(
        "F:etc\nM:0:0:755\nR:motd\nZ:{}\n\n",
        q1(b"welcome\n")
    ));
    db.push_str("P:tools\nV:2.0-r1\nA:x86_64\n");
    db.push_str(&format!(
        "F:usr/bin\nR:tool\na:0:0:755\nZ:{}\nF:usr/lib\nR:libx.so\na:0:0:755\nZ:{}\n\n",
        q1(b"a tool"),
        q1(b"library")
    ));
    w("lib/apk/db/installed", db.as_bytes(), 0o644);
    db
}

/// The apk report of the facts: (path, status or what differs).
fn report(facts: &Facts) -> (BTreeSet<(String, String)>, Vec<String>, usize) {
    let (_, answer) = facts
        .iter()
        .find(|(r, _)| {
            matches!(r, FactRequest::ManagedIntegrity(s) if s.manager == PackageManager::Apk)
        })
        .expect("the plan verifies apk packages");
    let Ok(FactValue::Integrity(report)) = answer else {
        panic!("no apk report: {answer:?}");
    };
    let found = report
        .files
        .iter()
        .filter_map(|f| {
            let what = match &f.status {
                FileStatus::Unchanged => return None,
                FileStatus::Missing => "missing".to_string(),
                FileStatus::Changed => f
                    .differs
                    .iter()
                    .map(|a| a.name())
                    .collect::<Vec<_>>()
                    .join(","),
                FileStatus::Unverified(e) => format!("unverified: {e}"),
            };
            Some((f.path.to_string(), what))
        })
        .collect();
    (found, report.incomplete.clone(), report.files.len())
}

fn gather_local(root: &Path) -> Facts {
    let p = profile();
    LocalRoot::directory(root)
        .unwrap()
        .gather(&plan(&p, &Inputs::defaults(&p)))
}

fn status(root: &Path) -> (ControlStatus, String) {
    let p = profile();
    let inputs = Inputs::defaults(&p);
    let facts = gather_local(root);
    let exec = evaluate(&p, &inputs, &facts, &Waivers::none(), now());
    let c = &exec.profiles[0].controls[0];
    let m: Vec<String> = c.results.iter().filter_map(|r| r.message.clone()).collect();
    (c.status(), m.join("; "))
}

#[test]
fn apk_findings_are_the_tampering_and_the_script_gathers_the_same_facts() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    build(root);
    let (found, notes, checked) = report(&gather_local(root));
    assert_eq!(found, BTreeSet::new());
    assert_eq!((notes, checked), (Vec::<String>::new(), 6));
    assert_eq!(status(root).0, ControlStatus::Passed);

    // Content (same size), mode, owner, a removed file, a retargeted symlink.
    std::fs::write(root.join("bin/busybox"), b"busybox BINARY").unwrap();
    std::fs::set_permissions(root.join("usr/bin/tool"), PermissionsExt::from_mode(0o4755)).unwrap();
    std::os::unix::fs::lchown(root.join("usr/lib/libx.so"), Some(1), Some(2)).unwrap();
    std::fs::remove_file(root.join("etc/motd")).unwrap();
    std::fs::remove_file(root.join("bin/sh")).unwrap();
    std::os::unix::fs::symlink("/tmp/evil", root.join("bin/sh")).unwrap();
    let facts = gather_local(root);
    let (found, notes, _) = report(&facts);
    let want: BTreeSet<(String, String)> = [
        ("/bin/busybox", "digest"),
        ("/bin/sh", "digest"),
        ("/etc/motd", "missing"),
        ("/usr/bin/tool", "mode"),
        ("/usr/lib/libx.so", "owner,group"),
    ]
    .into_iter()
    .map(|(p, w)| (p.to_string(), w.to_string()))
    .collect();
    assert_eq!(found, want);
    assert!(notes.is_empty(), "{notes:?}");
    let (s, msg) = status(root);
    assert_eq!(s, ControlStatus::Failed);
    assert!(msg.contains("/usr/bin/tool"), "{msg}");

    // A name with a newline beside the packaged files: the script hashes that batch file by
    // file (a line of the batch output could not be told apart), with the same facts.
    std::fs::write(
        root.join("usr/bin/x\n0000000000000000000000000000000000000000  tool"),
        b"unpackaged",
    )
    .unwrap();
    let facts = gather_local(root);
    let p = profile();
    let fact_plan = plan(&p, &Inputs::defaults(&p));
    for (name, shell) in shells() {
        let script = ShellScript::in_container()
            .with_root_prefix(root)
            .unwrap()
            .with_pid(None);
        let fp = fact_plan.clone();
        let got: Facts = within(120, name, move || script.run_local(&fp, shell).unwrap());
        assert_same_facts(&format!("{name} vs LocalRoot"), &got, &facts);
    }
    // Without findutils sh walks itself; the name with a newline is handed on whole.
    for (name, shell) in shells_without_find() {
        let script = ShellScript::in_container()
            .with_root_prefix(root)
            .unwrap()
            .with_pid(None);
        let fp = fact_plan.clone();
        let got: Facts = within(120, name, move || script.run_local(&fp, shell).unwrap());
        assert_same_facts(&format!("{name} without find vs LocalRoot"), &got, &facts);
        assert_eq!(report(&got).0, want, "{name} without find");
    }

    // No prefixes: nothing is verified, and the script (with nothing to walk) agrees.
    let empty = Profile::from_yaml_str(
        "name: t\nversion: 0.1.0\ncontrols:\n  - id: APK\n    impact: 0.7\n    checks:\n      \
         - package_integrity: {paths: []}\n        exists: false\n",
        "t.yaml",
    )
    .unwrap();
    let fact_plan = plan(&empty, &Inputs::defaults(&empty));
    let facts = LocalRoot::directory(root).unwrap().gather(&fact_plan);
    assert_eq!(report(&facts).2, 0);
    for (name, shell) in shells() {
        let script = ShellScript::in_container()
            .with_root_prefix(root)
            .unwrap()
            .with_pid(None);
        let fp = fact_plan.clone();
        let got: Facts = within(120, name, move || script.run_local(&fp, shell).unwrap());
        assert_same_facts(&format!("{name} vs LocalRoot, no prefixes"), &got, &facts);
    }
}

#[test]
fn hostile_apk_databases_give_bounded_clear_answers() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let db = build(root);
    let installed = root.join("lib/apk/db/installed");

    // Truncated inside a checksum: that file cannot be verified (never passed), the rest is.
    let cut = db.find("R:su\n").unwrap() + "R:su\na:0:0:4755\nZ:Q1abc".len();
    std::fs::write(&installed, &db[..cut]).unwrap();
    let (found, _, checked) = report(&gather_local(root));
    assert_eq!(checked, 2, "{found:?}");
    assert_eq!(
        found,
        [(
            "/bin/su".to_string(),
            "unverified: malformed checksum in the apk database".to_string()
        )]
        .into()
    );
    let (s, msg) = status(root);
    // Nothing failed, but a file could not be verified: an error naming it, never a pass.
    assert_eq!(s, ControlStatus::ProfileError, "{msg}");
    assert!(
        msg.contains("/bin/su") && msg.contains("malformed"),
        "{msg}"
    );

    // A huge line (a 4 MiB file name), `..` paths and an unknown checksum format: bounded.
    let huge = "x".repeat(4 << 20);
    let hostile = format!(
        "P:evil\nV:1\nF:bin\nR:{huge}\nZ:Q1AAAAAAAAAAAAAAAAAAAAAAAAAAA=\nF:../../etc\nR:shadow\n\
         Z:Q1AAAAAAAAAAAAAAAAAAAAAAAAAAA=\nF:usr/bin\nR:tool\nZ:X9notachecksum\n\n"
    );
    std::fs::write(&installed, format!("{db}{hostile}")).unwrap();
    let at = root.to_path_buf();
    let (found, _, checked) = within(60, "a huge line", move || report(&gather_local(&at)));
    // The six files, the huge name (unverifiable: no such name can exist) and the unknown
    // format; the `..` path is never looked at.
    assert_eq!(checked, 8, "{found:?}");
    assert!(
        !found.iter().any(|(p, _)| p.contains("shadow")),
        "{found:?}"
    );
    let unknown = found
        .iter()
        .find(|(p, w)| p == "/usr/bin/tool" && w.contains("unknown checksum format"));
    assert!(unknown.is_some(), "{found:?}");
    assert!(
        found
            .iter()
            .any(|(p, w)| p.len() > 1 << 20 && w.starts_with("unverified")),
        "the huge name"
    );
}

#[test]
fn an_apk_database_larger_than_read_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let db = build(root);
    let installed = root.join("lib/apk/db/installed");
    // 64 MiB is read; one more byte makes the database partial, which is never judged.
    let mut big = db.into_bytes();
    big.resize((64 << 20) + 1, b'\n');
    std::fs::write(&installed, &big).unwrap();
    let (s, msg) = status(root);
    assert_eq!(s, ControlStatus::ProfileError, "{msg}");
    assert!(msg.contains("larger than"), "{msg}");
}

#[test]
fn without_find_sh_walks_itself_and_without_stat_the_script_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    build(&root);
    // Tampered: other content of the same size.
    std::fs::write(root.join("usr/bin/tool"), b"a TOOL").unwrap();
    let p = profile();
    let inputs = Inputs::defaults(&p);
    let fact_plan = plan(&p, &inputs);
    let local = LocalRoot::directory(&root).unwrap().gather(&fact_plan);
    // dash with only the tools the script uses, `find` left out (as in an image without
    // findutils). (busybox sh would run its own `find` applet whatever PATH says.)
    let run = |bin_name: &str, tools: &[&str]| {
        let bin = dir.path().join(bin_name);
        std::fs::create_dir(&bin).unwrap();
        let dash = crate::source_fixtures::require("dash", "dash");
        std::os::unix::fs::symlink(&dash, bin.join("sh")).unwrap();
        for tool in tools {
            let path = crate::source_fixtures::require(tool, "coreutils");
            std::os::unix::fs::symlink(path, bin.join(tool)).unwrap();
        }
        let mut sh = std::process::Command::new(dash);
        sh.env("PATH", &bin);
        let script = ShellScript::in_container()
            .with_root_prefix(&root)
            .unwrap()
            .with_pid(None);
        let fp = fact_plan.clone();
        within(120, bin_name, move || script.run_local(&fp, sh).unwrap())
    };
    let tools = [
        "od",
        "head",
        "tr",
        "stat",
        "readlink",
        "date",
        "sha1sum",
        "sha256sum",
        "md5sum",
        "grep",
        "cat",
    ];
    // sh walks the prefixes itself: the same facts, the tampering found, nothing unverified.
    let facts = run("no-find", &tools);
    assert_same_facts("dash without find vs LocalRoot", &facts, &local);
    let (found, incomplete, checked) = report(&facts);
    assert_eq!(checked, 6);
    assert!(incomplete.is_empty(), "{incomplete:?}");
    assert!(
        !found.iter().any(|(_, w)| w.starts_with("unverified")),
        "{found:?}"
    );
    assert!(
        found.contains(&("/usr/bin/tool".to_string(), "digest".to_string())),
        "{found:?}"
    );

    // Without `stat` either, nothing can be walked: every file unverified, and why.
    let no_stat: Vec<&str> = tools.iter().copied().filter(|t| *t != "stat").collect();
    let facts = run("no-find-no-stat", &no_stat);
    let (found, _, checked) = report(&facts);
    assert_eq!(checked, 6);
    assert!(
        found
            .iter()
            .all(|(_, w)| w == "unverified: stat not available"),
        "{found:?}"
    );
    let exec = evaluate(&p, &inputs, &facts, &Waivers::none(), now());
    let c = &exec.profiles[0].controls[0];
    let msg: Vec<String> = c.results.iter().filter_map(|r| r.message.clone()).collect();
    assert_eq!(c.status(), ControlStatus::ProfileError, "{msg:?}");
    assert!(msg.join(" ").contains("stat not available"), "{msg:?}");
}
