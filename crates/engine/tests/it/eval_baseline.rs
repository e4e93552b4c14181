//! The built-in `container-baseline` profile over a hardened ("good") and a careless ("bad")
//! synthetic container: the expected status of every control, schema-valid HDF, and a fact
//! plan whose size does not depend on the target.

use std::collections::BTreeMap;

use keyhole_engine::{FactRequest, Inputs, ProcFile, Profile, Waivers, evaluate, gather, plan};
use keyhole_hdf::{ControlStatus, Execution, Threshold};

use crate::eval_fixture::{Fixture, assert_valid_hdf, md5_hex, now, status, tcp_listen};

fn baseline() -> Profile {
    Profile::builtin("container-baseline").unwrap()
}

fn scan(fx: &Fixture) -> Execution {
    let p = baseline();
    let inputs = Inputs::defaults(&p);
    let facts = gather(&p, &inputs, fx);
    let exec = evaluate(&p, &inputs, &facts, &Waivers::none(), now());
    assert_valid_hdf(&exec);
    exec
}

/// Status and messages of every control, by id; fails unless the whole built-in profile was
/// judged (so that loops over the map cannot pass on nothing).
fn by_id(exec: &Execution) -> BTreeMap<String, (ControlStatus, String)> {
    let map: BTreeMap<String, (ControlStatus, String)> = exec.profiles[0]
        .controls
        .iter()
        .map(|c| {
            let why: Vec<String> = c
                .results
                .iter()
                .filter_map(|r| r.message.clone().or_else(|| r.skip_message.clone()))
                .collect();
            (c.id.clone(), (c.status(), why.join(" | ")))
        })
        .collect();
    assert!(
        map.len() >= 80,
        "the built-in profile has over 80 controls; the HDF holds {}",
        map.len()
    );
    map
}

/// A hardened Debian 12 image: no shell, non-root process, nothing to find.
pub(crate) fn good() -> Fixture {
    let app = b"app-binary".as_slice();
    Fixture::new()
        .file(
            "/etc/passwd",
            0o644,
            "root:x:0:0:root:/root:/usr/sbin/nologin\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
             nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\napp:x:10001:10001::/home/app:/usr/sbin/nologin\n",
        )
        .owned(
            "/etc/shadow",
            0o640,
            0,
            42,
            "root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\napp:!:19000::::::\n",
        )
        .file("/etc/group", 0o644, "root:x:0:\ndaemon:x:1:\nshadow:x:42:\nnogroup:x:65534:\napp:x:10001:\n")
        .file(
            "/etc/os-release",
            0o644,
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n",
        )
        .dir("/root", 0o700)
        .dir("/tmp", 0o1777)
        .dir("/var/tmp", 0o1777)
        .dir("/usr/sbin", 0o755)
        .dir("/usr/lib", 0o755)
        .dir_owned("/home/app", 0o750, 10001, 10001)
        .file("/usr/bin/app", 0o755, app)
        .file(
            "/var/lib/dpkg/status",
            0o644,
            "Package: base-files\nStatus: install ok installed\nVersion: 12.4+deb12u5\n\n\
             Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2.36-9+deb12u4\n\n\
             Package: app\nStatus: install ok installed\nVersion: 1.0\n",
        )
        .file("/var/lib/dpkg/info/app.md5sums", 0o644, format!("{}  usr/bin/app\n", md5_hex(app)))
        .file("/var/lib/dpkg/info/libc6:amd64.md5sums", 0o644, format!("{}  usr/lib/libc.so.6\n", md5_hex(b"libc")))
        .file("/usr/lib/libc.so.6", 0o755, "libc")
        .process(&[
            (ProcFile::Status, &status(10001, 10001, 0, 0, 0, 1, 2)),
            (ProcFile::Environ, b"PATH=/usr/bin\0HOME=/home/app\0DB_PASSWORD_FILE=/run/secrets/db\0TOKEN=\0"),
            (ProcFile::Cmdline, b"/usr/bin/app\0--listen=:8080\0"),
            (ProcFile::NetTcp, &tcp_listen(&[("00000000", 8080), ("0100007F", 9090)])),
            (ProcFile::NetTcp6, &tcp_listen(&[])),
            (ProcFile::NetUdp, &tcp_listen(&[])),
            (ProcFile::NetUdp6, &tcp_listen(&[])),
        ])
}

/// Everything a careless image gets wrong.
pub(crate) fn bad() -> Fixture {
    let elf = "elf";
    Fixture::new()
        .file(
            "/etc/passwd",
            0o666,
            "root:x:0:0:root:/root:/bin/bash\ntoor:x:0:0::/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/bash\n\
             legacy:$1$abc$def:1001:1001::/home/legacy:/bin/sh\ndup:x:1001:1001::/home/dup:/usr/sbin/nologin\n\
             daemon:x:2:2::/:/usr/sbin/nologin\n",
        )
        .file(
            "/etc/shadow",
            0o644,
            "root:$6$salt$hash:19000:0:99999:7:::\nguest::19000:0:99999:7:::\nold:$1$salt$hash:19000::::::\n",
        )
        .owned("/etc/group", 0o644, 1000, 0, "root:x:0:\nsudo:x:27:legacy\nstaff:x:50:\nstaff:x:51:\ngames:x:50:\nsecret:$6$x$y:60:\n")
        .file("/etc/gshadow", 0o644, "root:*::\n")
        .file("/etc/os-release", 0o644, "ID=debian\nVERSION_ID=\"9\"\n")
        .file("/etc/sudoers", 0o644, "root ALL=(ALL) ALL\napp ALL=(ALL) NOPASSWD: ALL\n")
        .dir("/etc/sudoers.d", 0o777)
        .file("/etc/ssh/sshd_config", 0o666, "PermitRootLogin yes\nPasswordAuthentication yes\n")
        .file("/etc/crontab", 0o666, "* * * * * root /opt/tool\n")
        .dir("/root", 0o755)
        .dir("/tmp", 0o777)
        .dir("/var/tmp", 0o777)
        .dir("/usr/bin", 0o775)
        .file("/usr/bin/passwd", 0o4755, elf)
        .file("/usr/bin/wall", 0o2755, elf)
        .owned("/opt/tool", 0o4755, 1000, 1000, elf)
        .file("/opt/evil", 0o4777, elf)
        .file("/usr/bin/apt", 0o755, elf)
        .file("/usr/bin/curl", 0o755, elf)
        .symlink("/usr/bin/nc", "/etc/alternatives/nc")
        .file("/usr/bin/ssh", 0o755, elf)
        .file("/usr/bin/gcc", 0o755, elf)
        .file("/bin/sh", 0o755, elf)
        .file("/bin/bash", 0o755, elf)
        .file("/usr/bin/sudo", 0o755, elf)
        .file("/usr/bin/gdb", 0o755, elf)
        .file("/usr/bin/kubectl", 0o755, elf)
        .file("/sbin/modprobe", 0o755, elf)
        .file("/usr/bin/perl", 0o755, elf)
        .file("/usr/sbin/sshd", 0o755, elf)
        .file("/usr/sbin/cron", 0o755, elf)
        .file("/usr/sbin/inetd", 0o755, elf)
        .file("/root/.ssh/id_rsa", 0o600, "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n-----END OPENSSH PRIVATE KEY-----\n")
        .file("/root/.aws/credentials", 0o600, "[default]\naws_secret_access_key=x\n")
        .file("/root/.docker/config.json", 0o600, "{\"auths\":{}}")
        .file("/home/app/.npmrc", 0o600, "//registry.npmjs.org/:_authToken=x\n")
        .file("/root/.kube/config", 0o600, "apiVersion: v1\n")
        .file("/root/.git-credentials", 0o600, "https://u:p@example.org\n")
        .file("/root/.bash_history", 0o600, "ls\n")
        .file("/app/.env", 0o644, "KEY=1\n")
        .dir("/app/.git", 0o755)
        .file(
            "/var/lib/dpkg/status",
            0o644,
            "Package: openssh-server\nStatus: install ok installed\nVersion: 1:7.4p1-10\n\n\
             Package: telnetd\nStatus: install ok installed\nVersion: 0.17-41\n\n\
             Package: telnet\nStatus: install ok installed\nVersion: 0.17-41\n",
        )
        .file(
            "/var/lib/dpkg/info/app.md5sums",
            0o644,
            format!("{}  usr/bin/app\n{}  usr/bin/removed\n", md5_hex(b"original"), md5_hex(b"x")),
        )
        .file("/usr/bin/app", 0o755, "trojan")
        .process(&[
            (ProcFile::Status, &status(0, 0, (1 << 41) - 1, (1 << 41) - 1, 1 << 12, 0, 0)),
            (
                ProcFile::Environ,
                b"DB_PASSWORD=hunter2\0AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\0\
                  GITHUB_TOKEN=ghp_abcdefghijklmnopqrstuvwxyz0123456789\0DATABASE_URL=postgres://u:pw@db:5432/app\0",
            ),
            (ProcFile::Cmdline, b"/usr/bin/app\0--password=hunter2\0"),
            (ProcFile::NetTcp, &tcp_listen(&[("00000000", 22)])),
            (ProcFile::NetTcp6, &tcp_listen(&[])),
            (ProcFile::NetUdp, &tcp_listen(&[])),
            (ProcFile::NetUdp6, &tcp_listen(&[])),
        ])
}

#[test]
fn a_hardened_container_passes_every_applicable_control() {
    let results = by_id(&scan(&good()));
    let not_applicable = [
        "KH-SVC-002",
        "KH-SVC-004",
        "KH-PKG-001",
        "KH-PKG-005",
        "KH-PKG-006",
        "KH-PKG-007",
        "KH-PKG-008",
    ];
    for (id, (status, why)) in &results {
        let want = if not_applicable.contains(&id.as_str()) {
            ControlStatus::NotApplicable
        } else {
            ControlStatus::Passed
        };
        assert_eq!(*status, want, "{id}: {why}");
    }
}

#[test]
fn a_careless_container_fails_every_control_it_violates() {
    let exec = scan(&bad());
    let results = by_id(&exec);
    // The OS is identified and it has a package database; everything else is wrong.
    let passing = ["KH-OS-001", "KH-PKG-001"];
    // A dpkg image, not a distroless or RPM one.
    let not_applicable = ["KH-PKG-005", "KH-PKG-006", "KH-PKG-007", "KH-PKG-008"];
    for (id, (status, why)) in &results {
        let want = if passing.contains(&id.as_str()) {
            ControlStatus::Passed
        } else if not_applicable.contains(&id.as_str()) {
            ControlStatus::NotApplicable
        } else {
            ControlStatus::Failed
        };
        assert_eq!(*status, want, "{id}: {why}");
    }
    // Secrets are named, never shown.
    let text = serde_json::to_string(&exec).unwrap();
    for secret in ["hunter2", "AKIAIOSFODNN7EXAMPLE", "ghp_abc", "$6$salt"] {
        assert!(!text.contains(secret), "{secret} leaked into HDF");
    }
    assert!(results["KH-ENV-002"].1.contains("AWS_ACCESS_KEY_ID"));
}

#[test]
fn thresholds_judge_the_results_as_the_saf_cli_would() {
    let strict = Threshold::from_yaml_str("compliance:\n  min: 100\n").unwrap();
    assert!(
        keyhole_hdf::evaluate(&scan(&good()), &strict)
            .unwrap()
            .passed
    );
    let verdict = keyhole_hdf::evaluate(&scan(&bad()), &strict).unwrap();
    assert!(!verdict.passed);
    assert!(verdict.compliance < 5, "compliance {}", verdict.compliance);
}

#[test]
fn a_root_only_scan_leaves_process_controls_not_reviewed() {
    let results = by_id(&scan(&bad().without_process()));
    let mut process_controls = 0;
    for (id, (status, why)) in &results {
        if ["KH-PROC-", "KH-ENV-", "KH-NET-"]
            .iter()
            .any(|p| id.starts_with(p))
        {
            process_controls += 1;
            assert_eq!(*status, ControlStatus::NotReviewed, "{id}: {why}");
            assert!(why.contains("no target process"), "{id}: {why}");
        }
    }
    assert!(process_controls > 0, "the profile has process controls");
}

#[test]
fn an_unprivileged_scanner_reports_unreadable_files_as_errors() {
    let results = by_id(&scan(&good().deny("/etc/shadow")));
    for id in ["KH-ACCT-002", "KH-ACCT-004", "KH-ACCT-006", "KH-ACCT-011"] {
        let (status, why) = &results[id];
        assert_eq!(*status, ControlStatus::ProfileError, "{id}: {why}");
        assert!(
            why.contains("/etc/shadow") && why.contains("permission denied"),
            "{id}: {why}"
        );
    }
    // Its metadata is still judged.
    assert_eq!(results["KH-PERM-002"].0, ControlStatus::Passed);
}

#[test]
fn the_fact_plan_is_small_and_does_not_depend_on_the_target() {
    let p = baseline();
    let inputs = Inputs::defaults(&p);
    let first = plan(&p, &inputs);
    let controls = p.control_ids().count();
    let walks = first
        .requests()
        .filter(|r| matches!(r, FactRequest::Walk { .. }))
        .count();
    eprintln!(
        "container-baseline: {controls} controls, fact plan of {} requests ({walks} walks)",
        first.len()
    );
    assert!(
        first.len() <= 60,
        "the plan grew to {} requests",
        first.len()
    );
    // setuid, setgid, world-writable, private-key content, and one merged name search.
    assert_eq!(walks, 5);
    for fx in [good(), bad()] {
        let _ = gather(&p, &inputs, &fx);
        let rounds = fx.rounds.borrow();
        // One pass, package integrity included: what standard mode's one exec session needs.
        assert_eq!(*rounds, [first.len()], "{rounds:?}");
    }
}

#[test]
fn a_distroless_image_is_verified_through_status_d() {
    // Distroless: one control file per package and its md5sums in status.d, no dpkg info.
    let app = b"#!app binary";
    let distroless = good()
        .remove("/var/lib/dpkg")
        .file(
            "/var/lib/dpkg/status.d/app",
            0o644,
            "Package: app\nVersion: 1.0\n",
        )
        .file(
            "/var/lib/dpkg/status.d/app.md5sums",
            0o644,
            format!("{}  usr/bin/app\n", md5_hex(app)),
        )
        .file("/usr/bin/app", 0o755, app.as_slice());
    let results = by_id(&scan(&distroless));
    for id in ["KH-PKG-005", "KH-PKG-006"] {
        assert_eq!(
            results[id].0,
            ControlStatus::Passed,
            "{id}: {}",
            results[id].1
        );
    }
    for id in ["KH-PKG-002", "KH-PKG-003"] {
        assert_eq!(
            results[id].0,
            ControlStatus::NotApplicable,
            "{id}: {}",
            results[id].1
        );
    }
    let tampered = distroless.file("/usr/bin/app", 0o755, "trojan").file(
        "/var/lib/dpkg/status.d/app.md5sums",
        0o644,
        format!(
            "{}  usr/bin/app\n{}  usr/bin/gone\n",
            md5_hex(app),
            md5_hex(b"x")
        ),
    );
    let results = by_id(&scan(&tampered));
    assert_eq!(results["KH-PKG-005"].0, ControlStatus::Failed);
    assert!(
        results["KH-PKG-005"].1.contains("/usr/bin/app"),
        "{}",
        results["KH-PKG-005"].1
    );
    assert_eq!(results["KH-PKG-006"].0, ControlStatus::Failed);
    assert!(
        results["KH-PKG-006"].1.contains("/usr/bin/gone"),
        "{}",
        results["KH-PKG-006"].1
    );
}
