//! `keyhole scan`: a local root in, a summary or schema-valid HDF out, exit codes by verdict.

use std::path::{Path, PathBuf};

use crate::keyhole;

/// A small root filesystem: a distroless-like image with one account, one setuid file and a
/// private key, so some controls pass and some fail.
fn tiny_root(name: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("scan-roots")
        .join(name);
    let _ = std::fs::remove_dir_all(&root);
    let file = |rel: &str, text: &str, mode: u32| {
        use std::os::unix::fs::PermissionsExt as _;
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    file(
        "etc/os-release",
        "ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME=\"Debian GNU/Linux 12\"\n",
        0o644,
    );
    file(
        "etc/passwd",
        "root:x:0:0:root:/root:/sbin/nologin\napp:x:10001:10001::/home/app:/sbin/nologin\n",
        0o644,
    );
    file("etc/group", "root:x:0:\napp:x:10001:\n", 0o644);
    file(
        "etc/shadow",
        "root:*:19000:0:99999:7:::\napp:!:19000:0:99999:7:::\n",
        0o640,
    );
    file("usr/bin/suid-tool", "#!/bin/false\n", 0o4755);
    file(
        "home/app/.ssh/id_ed25519",
        "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
        0o600,
    );
    root
}

fn scan(args: &[&str]) -> crate::Run {
    let mut all = vec!["scan"];
    all.extend_from_slice(args);
    keyhole(&all, None)
}

#[test]
fn summary_names_the_failures() {
    let root = tiny_root("summary");
    let r = scan(&["--root", root.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.starts_with("container-baseline"), "{}", r.stdout);
    assert!(r.stdout.contains("on debian 12"), "{}", r.stdout);
    assert!(r.stdout.contains("Failed"), "{}", r.stdout);
    assert!(
        r.stdout.contains("/usr/bin/suid-tool"),
        "the setuid file is named: {}",
        r.stdout
    );
    assert!(
        !r.stdout.contains("AAAA"),
        "file content must never be printed"
    );
}

#[test]
fn hdf_output_is_schema_valid_and_thresholds_gate_the_exit_code() {
    let root = tiny_root("hdf");
    let out = root.with_extension("json");
    let r = scan(&[
        "--root",
        root.to_str().unwrap(),
        "--format",
        "json",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "", "--out with json prints nothing else");
    let text = std::fs::read_to_string(&out).unwrap();
    let exec = keyhole_hdf::Execution::from_json_str(&text).unwrap();
    exec.validate().unwrap();
    assert!(exec.profiles[0].controls.len() >= 60);

    let threshold = |name: &str, yaml: &str| -> PathBuf {
        let p = root.with_extension(name);
        std::fs::write(&p, yaml).unwrap();
        p
    };
    let strict = threshold("strict.yaml", "compliance:\n  min: 100\n");
    let r = scan(&[
        "--root",
        root.to_str().unwrap(),
        "--threshold",
        strict.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("Overall compliance minimum was not satisfied"),
        "{}",
        r.stdout
    );
    let lax = threshold("lax.yaml", "compliance:\n  min: 1\n");
    let r = scan(&[
        "--root",
        root.to_str().unwrap(),
        "--threshold",
        lax.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("threshold: all validation tests passed"));
}

#[test]
fn waivers_skip_their_control_with_the_justification() {
    let root = tiny_root("waivers");
    let out = root.with_extension("json");
    let waivers = root.with_extension("waivers.yaml");
    std::fs::write(
        &waivers,
        "KH-SUID-001:\n  justification: \"suid-tool is reviewed (TICKET-1)\"\n  expiration_date: 2999-01-01\n  run: false\n",
    )
    .unwrap();
    let r = scan(&[
        "--root",
        root.to_str().unwrap(),
        "--waivers",
        waivers.to_str().unwrap(),
        "--format",
        "json",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let exec =
        keyhole_hdf::Execution::from_json_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let c = exec.profiles[0]
        .controls
        .iter()
        .find(|c| c.id == "KH-SUID-001")
        .expect("control present");
    assert!(c.is_waived(), "{c:?}");
    assert!(serde_json::to_string(c).unwrap().contains("TICKET-1"));
}

#[test]
fn bad_input_and_scan_errors_have_their_exit_codes() {
    let root = tiny_root("errors");
    let r = scan(&[]);
    assert_eq!((r.code, r.stdout.as_str()), (2, ""), "{}", r.stderr);
    let r = scan(&[
        "--root",
        root.to_str().unwrap(),
        "--profile",
        "builtin:nope",
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("no built-in profile `nope`"),
        "{}",
        r.stderr
    );
    let r = scan(&["--root", root.to_str().unwrap(), "--input", "nope=1"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let r = scan(&[
        "--root",
        root.to_str().unwrap(),
        "--threshold",
        "/nonexistent.yaml",
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let missing = Path::new("/nonexistent-keyhole-root");
    let r = scan(&["--root", missing.to_str().unwrap()]);
    assert_eq!((r.code, r.stdout.as_str()), (3, ""), "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
}
