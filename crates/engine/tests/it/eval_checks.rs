//! Evaluation semantics, resource by resource, on small profiles and in-memory targets: what
//! passes, what fails, and that missing or unreadable facts never pass.

use keyhole_engine::{
    FactRequest, Inputs, ProcFile, Profile, Waivers, WalkQuery, evaluate, gather, plan,
};
use keyhole_hdf::{ControlStatus, Execution, ResultStatus};

use crate::eval_fixture::{Fixture, assert_valid_hdf, md5_hex, now, status, tcp_listen};

fn profile(controls: &str) -> Profile {
    let text = format!("name: t\nversion: 0.1.0\ncontrols:\n{controls}");
    Profile::from_yaml_str(&text, "t.yaml").unwrap_or_else(|e| panic!("{e}"))
}

fn run(p: &Profile, fx: &Fixture) -> Execution {
    let inputs = Inputs::defaults(p);
    let facts = gather(p, &inputs, fx);
    let exec = evaluate(p, &inputs, &facts, &Waivers::none(), now());
    assert_valid_hdf(&exec);
    exec
}

fn control<'a>(exec: &'a Execution, id: &str) -> &'a keyhole_hdf::Control {
    exec.profiles[0]
        .controls
        .iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("no control {id}"))
}

fn statuses(exec: &Execution, id: &str) -> Vec<ResultStatus> {
    control(exec, id)
        .results
        .iter()
        .map(|r| r.status.unwrap())
        .collect()
}

fn message(exec: &Execution, id: &str) -> String {
    let r = &control(exec, id).results[0];
    r.message
        .clone()
        .or_else(|| r.skip_message.clone())
        .unwrap_or_default()
}

fn base() -> Fixture {
    Fixture::new()
        .file(
            "/etc/passwd",
            0o644,
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/usr/sbin/nologin\n",
        )
        .file(
            "/etc/group",
            0o644,
            "root:x:0:\nshadow:x:42:\napp:x:1000:\n",
        )
        .owned(
            "/etc/shadow",
            0o640,
            0,
            42,
            "root:*:19000:0:99999:7:::\napp:!:19000::::::\n",
        )
        .file(
            "/etc/os-release",
            0o644,
            "ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n",
        )
}

const FILE_CONTROLS: &str = "
  - id: F-1
    impact: 0.5
    desc: passwd is fine
    descriptions: {check: look at it, fix: chmod it}
    tags: {nist: [AC-3], cci: [CCI-000366], custom: value}
    refs: [{ref: Some book, url: 'https://example.org'}, plain text ref]
    checks:
      - file: /etc/shadow
        owner: root
        group: {in: [root, shadow]}
        mode: {max: '0640'}
        type: file
  - id: F-2
    impact: 0.5
    checks:
      - file: /etc/shadow
        mode: {max: '0600'}
  - id: F-3
    impact: 0.5
    checks:
      - file: /etc/missing
        mode: {max: '0600'}
  - id: F-4
    impact: 0.5
    checks:
      - file: /etc/missing
        optional: true
        mode: {max: '0600'}
      - file: /etc/missing
        exists: false
  - id: F-5
    impact: 0.5
    checks:
      - file: /etc/passwd
        content: {matches: '^app:', not_matches: '^toor:'}
        sha256: {matches: '^[0-9a-f]{64}$'}
  - id: F-6
    impact: 0.5
    checks:
      - directory: /etc/passwd
        exists: true
";

#[test]
fn file_metadata_owner_names_content_and_digest() {
    let p = profile(FILE_CONTROLS);
    let exec = run(&p, &base());
    assert_eq!(control(&exec, "F-1").status(), ControlStatus::Passed);
    assert_eq!(control(&exec, "F-2").status(), ControlStatus::Failed);
    assert!(
        message(&exec, "F-2").contains("mode is 0640"),
        "{}",
        message(&exec, "F-2")
    );
    // Conditions on a missing object fail; `optional` and `exists: false` accept absence.
    assert_eq!(control(&exec, "F-3").status(), ControlStatus::Failed);
    assert!(message(&exec, "F-3").contains("does not exist"));
    assert_eq!(
        statuses(&exec, "F-4"),
        [ResultStatus::Passed, ResultStatus::Passed]
    );
    assert_eq!(control(&exec, "F-5").status(), ControlStatus::Passed);
    assert_eq!(control(&exec, "F-6").status(), ControlStatus::Failed);
    assert!(
        message(&exec, "F-6").contains("type is `file`"),
        "{}",
        message(&exec, "F-6")
    );
}

#[test]
fn hdf_carries_metadata_locations_and_code() {
    let p = profile(FILE_CONTROLS);
    let exec = run(&p, &base());
    assert_eq!(
        (exec.platform.name.as_str(), exec.platform.release.as_str()),
        ("debian", "12")
    );
    let hp = &exec.profiles[0];
    assert_eq!(
        (hp.name.as_str(), hp.version.as_deref()),
        ("t", Some("0.1.0"))
    );
    assert_eq!(hp.sha256, p.sha256());
    let c = control(&exec, "F-1");
    assert_eq!(c.source_location.reference.as_deref(), Some("t.yaml"));
    // The profile text starts with 3 header lines and a blank line before the first control.
    assert_eq!(
        c.source_location
            .line
            .as_ref()
            .and_then(serde_json::Number::as_u64),
        Some(5)
    );
    assert!(c.code.as_deref().unwrap().starts_with("  - id: F-1"));
    assert!(!c.code.as_deref().unwrap().contains("F-2"));
    assert_eq!(c.tags["severity"], "medium");
    assert_eq!(c.tags["nist"], serde_json::json!(["AC-3"]));
    assert_eq!(c.tags["custom"], "value");
    assert_eq!(c.refs.len(), 2);
    let labels: Vec<&str> = c
        .descriptions
        .as_ref()
        .unwrap()
        .iter()
        .map(|d| d.label.as_str())
        .collect();
    assert_eq!(labels, ["default", "check", "fix"]);
    let r = &c.results[0];
    assert!(
        r.code_desc.starts_with("file /etc/shadow: owner is `root`"),
        "{}",
        r.code_desc
    );
    assert_eq!(r.resource.as_deref(), Some("file"));
    assert!(
        r.start_time.starts_with("2026-11-26T13:00:0"),
        "{}",
        r.start_time
    );
    assert!(r.run_time.is_some());
}

#[test]
fn unreadable_facts_are_errors_never_passes() {
    let p = profile(FILE_CONTROLS);
    let exec = run(&p, &base().deny("/etc/passwd").deny("/etc/shadow"));
    // The owner name needs /etc/passwd, the content /etc/shadow: both unreadable.
    assert_eq!(control(&exec, "F-1").status(), ControlStatus::ProfileError);
    assert!(
        message(&exec, "F-1").contains("permission denied"),
        "{}",
        message(&exec, "F-1")
    );
    assert_eq!(control(&exec, "F-5").status(), ControlStatus::ProfileError);
    // Metadata alone is still readable, so F-2 is judged.
    assert_eq!(control(&exec, "F-2").status(), ControlStatus::Failed);
}

#[test]
fn a_capped_read_cannot_prove_absence() {
    let big = format!("{}\nsecret=1\n", "x".repeat(5000));
    let p = profile(
        "  - id: C-1
    impact: 0.5
    checks:
      - file: {path: /app/conf, max_bytes: 100}
        content: {not_matches: 'secret='}
  - id: C-2
    impact: 0.5
    checks:
      - file: {path: /app/conf, max_bytes: 100}
        content: {matches: '^x'}
",
    );
    let exec = run(&p, &base().file("/app/conf", 0o644, big));
    assert_eq!(control(&exec, "C-1").status(), ControlStatus::ProfileError);
    assert!(message(&exec, "C-1").contains("max_bytes"));
    assert_eq!(control(&exec, "C-2").status(), ControlStatus::Passed);
}

#[test]
fn collections_filter_count_unique_and_apply_fields_to_every_record() {
    let p = profile(
        "  - id: A-1
    impact: 0.7
    checks:
      - passwd: ~
        where: {uid: 0}
        count: 1
        user: root
  - id: A-2
    impact: 0.5
    checks:
      - passwd: ~
        unique: uid
  - id: A-3
    impact: 0.5
    checks:
      - passwd: ~
        where: {uid: {min: 5000}}
        shell: /bin/false
  - id: A-4
    impact: 0.5
    checks:
      - shadow: ~
        where: {password: empty}
        exists: false
      - shadow: ~
        where: {password: set}
        hash: {in: [sha512, yescrypt]}
  - id: A-5
    impact: 0.3
    checks:
      - group: ~
        where: {name: sudo}
        members: {subset_of: [root]}
",
    );
    let good = run(&p, &base());
    for id in ["A-1", "A-2", "A-3", "A-4", "A-5"] {
        assert_eq!(
            control(&good, id).status(),
            ControlStatus::Passed,
            "{id}: {}",
            message(&good, id)
        );
    }
    // No record matches A-3's filter: a condition on every record of none holds.
    assert!(
        message(&good, "A-3").contains("0 of 2"),
        "{}",
        message(&good, "A-3")
    );
    let bad = run(
        &p,
        &base()
            .file(
                "/etc/passwd",
                0o644,
                "root:x:0:0::/root:/bin/sh\ntoor:x:0:0::/:/bin/sh\napp:x:1000:1000::/:/bin/sh\n",
            )
            .owned(
                "/etc/shadow",
                0o640,
                0,
                42,
                "root:$1$salt$hash:1::::::\nguest::1::::::\n",
            )
            .file("/etc/group", 0o644, "root:x:0:\nsudo:x:27:app,root\n"),
    );
    assert_eq!(control(&bad, "A-1").status(), ControlStatus::Failed);
    let m = message(&bad, "A-1");
    assert!(
        m.contains("count is 2") && m.contains("`toor`: user is `toor`"),
        "{m}"
    );
    assert!(
        message(&bad, "A-2").contains("uid 0 is shared by `root`, `toor`"),
        "{}",
        message(&bad, "A-2")
    );
    assert_eq!(
        statuses(&bad, "A-4"),
        [ResultStatus::Failed, ResultStatus::Failed]
    );
    // A hash is never shown, only its scheme.
    let hash_msg = control(&bad, "A-4").results[1].message.clone().unwrap();
    assert!(
        hash_msg.contains("hash is `md5`") && !hash_msg.contains("salt"),
        "{hash_msg}"
    );
    assert_eq!(control(&bad, "A-5").status(), ControlStatus::Failed);
}

#[test]
fn only_if_makes_a_control_not_applicable() {
    let p = profile(
        "  - id: G-1
    impact: 0.7
    only_if:
      - file: /etc/sudoers
        exists: true
        reason: no sudo here
    checks:
      - file: /etc/sudoers
        mode: {max: '0440'}
  - id: G-2
    impact: 0.7
    only_if:
      - file: /etc/passwd
        exists: true
    checks:
      - file: /etc/passwd
        mode: {max: '0600'}
",
    );
    let exec = run(&p, &base());
    let g1 = control(&exec, "G-1");
    assert_eq!(g1.status(), ControlStatus::NotApplicable);
    assert_eq!(g1.impact, 0.0);
    assert_eq!(g1.results[0].status, Some(ResultStatus::Skipped));
    assert_eq!(g1.results[0].skip_message.as_deref(), Some("no sudo here"));
    assert_eq!(control(&exec, "G-2").status(), ControlStatus::Failed);
    assert_eq!(control(&exec, "G-2").impact, 0.7);
}

const PROCESS_CONTROLS: &str = "
  - id: P-1
    impact: 0.7
    checks:
      - process: ~
        uid: {ne: 0}
        cap_eff: []
        cap_bnd: {excludes: CAP_SYS_ADMIN}
        no_new_privs: true
        seccomp: filter
  - id: P-2
    impact: 0.5
    checks:
      - environment: ~
        where: {name: {matches: '(?i)password'}}
        exists: false
  - id: P-3
    impact: 0.5
    checks:
      - listening: ~
        where: {port: {lt: 1024}}
        exists: false
      - listening: ~
        where: {all_interfaces: true}
        port: {in: [8080]}
  - id: P-4
    impact: 0.5
    checks:
      - process: ~
        cmdline: {not_matches: 'password='}
";

fn with_process(
    fx: Fixture,
    uid: u32,
    caps: u64,
    env: &[u8],
    tcp: &[(&str, u16)],
    cmd: &[u8],
) -> Fixture {
    fx.process(&[
        (ProcFile::Status, &status(uid, uid, caps, caps, 0, 1, 2)),
        (ProcFile::Environ, env),
        (ProcFile::Cmdline, cmd),
        (ProcFile::NetTcp, &tcp_listen(tcp)),
        (ProcFile::NetUdp, &tcp_listen(&[])),
    ])
}

#[test]
fn process_environment_and_sockets() {
    let p = profile(PROCESS_CONTROLS);
    let good = run(
        &p,
        &with_process(
            base(),
            1000,
            0,
            b"PATH=/bin\0HOME=/\0",
            &[("00000000", 8080)],
            b"/app\0--port\08080\0",
        ),
    );
    for id in ["P-1", "P-2", "P-3", "P-4"] {
        assert_eq!(
            control(&good, id).status(),
            ControlStatus::Passed,
            "{id}: {}",
            message(&good, id)
        );
    }
    let bad = run(
        &p,
        &with_process(
            base(),
            0,
            1 << 21,
            b"DB_PASSWORD=hunter2\0",
            &[("00000000", 22), ("0100007F", 9000)],
            b"/app\0--password=hunter2\0",
        ),
    );
    for id in ["P-1", "P-2", "P-3", "P-4"] {
        assert_eq!(control(&bad, id).status(), ControlStatus::Failed, "{id}");
    }
    let p1 = message(&bad, "P-1");
    assert!(
        p1.contains("CAP_SYS_ADMIN") && p1.contains("uid is 0"),
        "{p1}"
    );
    // Secrets never reach the report: environment values and command lines are redacted.
    let all = serde_json::to_string(&bad).unwrap();
    assert!(!all.contains("hunter2"), "a secret leaked into HDF");
    assert!(message(&bad, "P-2").contains("DB_PASSWORD"));
}

#[test]
fn a_root_only_scan_skips_process_controls() {
    let p = profile(PROCESS_CONTROLS);
    let exec = run(&p, &base().without_process());
    for id in ["P-1", "P-2", "P-3", "P-4"] {
        let c = control(&exec, id);
        assert_eq!(c.status(), ControlStatus::NotReviewed, "{id}");
        assert!(
            message(&exec, id).contains("no target process"),
            "{}",
            message(&exec, id)
        );
    }
}

#[test]
fn walks_report_what_they_find_and_never_pass_when_cut_short() {
    let p = profile(
        "  - id: W-1
    impact: 0.5
    checks:
      - files: {find: setuid}
        path: {in: [/usr/bin/passwd]}
  - id: W-2
    impact: 0.5
    checks:
      - files: {find: world_writable}
        where: {path: {not_matches: '^/tmp/'}}
        exists: false
  - id: W-3
    impact: 0.5
    checks:
      - files: {find: named, names: [id_rsa]}
        exists: false
  - id: W-4
    impact: 0.5
    checks:
      - files: {find: named, names: [.npmrc]}
        exists: false
  - id: W-5
    impact: 0.5
    checks:
      - files: {find: containing, pattern: 'PRIVATE KEY-----', max_file_size: 1000}
        exists: false
  - id: W-6
    impact: 0.5
    checks:
      - files: {find: setuid, max_entries: 3}
        exists: false
",
    );
    let fx = base()
        .file("/usr/bin/passwd", 0o4755, "elf")
        .file("/usr/bin/other", 0o755, "elf")
        .dir("/tmp", 0o1777)
        .file("/tmp/scratch", 0o666, "")
        .file("/root/.npmrc", 0o600, "//registry/:_authToken=x")
        .file(
            "/big",
            0o644,
            format!("{}PRIVATE KEY-----", "x".repeat(2000)),
        );
    let exec = run(&p, &fx);
    for id in ["W-1", "W-2", "W-3", "W-5"] {
        assert_eq!(
            control(&exec, id).status(),
            ControlStatus::Passed,
            "{id}: {}",
            message(&exec, id)
        );
    }
    // The file too large to search is said, not hidden.
    assert!(
        message(&exec, "W-5").contains("1 file(s) over the size limit were not searched"),
        "{}",
        message(&exec, "W-5")
    );
    assert_eq!(control(&exec, "W-4").status(), ControlStatus::Failed);
    assert!(message(&exec, "W-4").contains("/root/.npmrc"));
    assert_eq!(control(&exec, "W-6").status(), ControlStatus::ProfileError);
    assert!(
        message(&exec, "W-6").contains("bound"),
        "{}",
        message(&exec, "W-6")
    );
    // The named walks of W-3 and W-4 are one walk.
    let named = plan(&p, &Inputs::defaults(&p))
        .requests()
        .filter(|r| {
            matches!(
                r,
                FactRequest::Walk {
                    query: WalkQuery::Named(_),
                    ..
                }
            )
        })
        .count();
    assert_eq!(named, 1);

    let worse = fx
        .file("/usr/bin/su", 0o4755, "elf")
        .file("/srv/shared", 0o666, "")
        .file(
            "/root/.ssh/id_rsa",
            0o600,
            "-----BEGIN OPENSSH PRIVATE KEY-----\n",
        );
    let exec = run(&p, &worse);
    for id in ["W-1", "W-2", "W-3", "W-5"] {
        assert_eq!(control(&exec, id).status(), ControlStatus::Failed, "{id}");
    }
    assert!(message(&exec, "W-1").contains("/usr/bin/su"));
}

#[test]
fn a_hostile_file_name_cannot_dodge_an_anchored_exclusion() {
    let p = profile(
        "  - id: H-1
    impact: 0.5
    checks:
      - files: {find: world_writable}
        where: {path: {not_matches: '^/tmp/'}}
        exists: false
",
    );
    let fx = base().dir("/tmp", 0o1777).file("/etc/x\n/tmp/y", 0o666, "");
    let exec = run(&p, &fx);
    assert_eq!(control(&exec, "H-1").status(), ControlStatus::Failed);
    // The name is shown escaped, so it cannot forge a line of the report.
    assert!(
        message(&exec, "H-1").contains("/etc/x\\n/tmp/y"),
        "{}",
        message(&exec, "H-1")
    );
}

#[test]
fn commands_os_release_and_packages() {
    let p = profile(
        "  - id: K-1
    impact: 0.5
    checks:
      - commands: [curl, wget]
        exists: false
  - id: K-2
    impact: 0.5
    checks:
      - os_release: ~
        id: debian
        days_to_eol: {min: 0}
  - id: K-3
    impact: 0.5
    checks:
      - package: openssl
        version: {min: '3.0.11-1~deb12u2'}
      - package: telnet
        exists: false
      - packages: ~
        where: {manager: apk}
        exists: false
",
    );
    let status_db = "Package: openssl\nStatus: install ok installed\nVersion: 3.0.15-1~deb12u1\n\n\
                     Package: telnet\nStatus: deinstall ok config-files\nVersion: 1\n";
    let fx = base()
        .symlink("/bin", "usr/bin")
        .file("/usr/bin/ls", 0o755, "elf")
        .file("/var/lib/dpkg/status", 0o644, status_db);
    let exec = run(&p, &fx);
    for id in ["K-1", "K-2", "K-3"] {
        assert_eq!(
            control(&exec, id).status(),
            ControlStatus::Passed,
            "{id}: {}",
            message(&exec, id)
        );
    }
    let worse = fx
        .symlink("/usr/bin/wget", "busybox")
        .file("/etc/os-release", 0o644, "ID=debian\nVERSION_ID=9\n")
        .file(
            "/var/lib/dpkg/status",
            0o644,
            "Package: openssl\nStatus: install ok installed\nVersion: 1.1.0l-1~deb9u1\n",
        );
    let exec = run(&p, &worse);
    assert_eq!(control(&exec, "K-1").status(), ControlStatus::Failed);
    assert!(message(&exec, "K-1").contains("/usr/bin/wget"));
    assert_eq!(control(&exec, "K-2").status(), ControlStatus::Failed);
    assert_eq!(exec.platform.release, "9");
    assert_eq!(control(&exec, "K-3").status(), ControlStatus::Failed);
}

#[test]
fn package_integrity_is_one_request_in_one_round() {
    let p = profile(
        "  - id: I-1
    impact: 0.7
    checks:
      - package_integrity: {paths: [/usr/bin/]}
        where: {problem: changed}
        exists: false
  - id: I-2
    impact: 0.1
    checks:
      - package_integrity: {paths: [/usr/bin/]}
        where: {problem: missing}
        exists: false
",
    );
    let sums = format!(
        "{}  usr/bin/app\n{}  usr/bin/gone\n{}  usr/share/doc/app/README\n",
        md5_hex(b"original"),
        md5_hex(b"x"),
        md5_hex(b"doc")
    );
    let fx = base()
        .file("/var/lib/dpkg/info/app.md5sums", 0o644, &sums)
        .file("/var/lib/dpkg/info/app.list", 0o644, "")
        .file("/usr/bin/app", 0o755, "original")
        .file("/usr/bin/gone", 0o755, "x");
    let exec = run(&p, &fx);
    assert_eq!(
        control(&exec, "I-1").status(),
        ControlStatus::Passed,
        "{}",
        message(&exec, "I-1")
    );
    assert_eq!(control(&exec, "I-2").status(), ControlStatus::Passed);

    let tampered = fx
        .file("/usr/bin/app", 0o755, "trojan")
        .remove("/usr/bin/gone");
    tampered.rounds.borrow_mut().clear();
    let inputs = Inputs::defaults(&p);
    let facts = gather(&p, &inputs, &tampered);
    // One pass: the lists and digests are part of the one integrity request.
    assert_eq!(tampered.rounds.borrow().len(), 1);
    assert_eq!(
        tampered.rounds.borrow()[0],
        plan(&p, &inputs).len(),
        "one request for both controls"
    );
    let exec = evaluate(&p, &inputs, &facts, &Waivers::none(), now());
    assert_eq!(control(&exec, "I-1").status(), ControlStatus::Failed);
    assert!(message(&exec, "I-1").contains("/usr/bin/app"));
    assert_eq!(control(&exec, "I-2").status(), ControlStatus::Failed);
    assert!(message(&exec, "I-2").contains("/usr/bin/gone"));

    // A source that did not answer the integrity request verified nothing: that is no pass.
    let mut partial = keyhole_engine::Facts::default();
    for (r, a) in facts
        .iter()
        .filter(|(r, _)| !matches!(r, FactRequest::PackageIntegrity(_)))
    {
        partial.insert(r.clone(), a.clone());
    }
    let exec = evaluate(&p, &inputs, &partial, &Waivers::none(), now());
    assert_eq!(control(&exec, "I-1").status(), ControlStatus::ProfileError);
    assert!(
        message(&exec, "I-1").contains("not gathered"),
        "{}",
        message(&exec, "I-1")
    );

    // Without dpkg there is nothing to verify: both controls pass with nothing found.
    let plain = base();
    let facts = gather(&p, &inputs, &plain);
    let exec = evaluate(&p, &inputs, &facts, &Waivers::none(), now());
    assert_eq!(control(&exec, "I-1").status(), ControlStatus::Passed);
}

#[test]
fn distroless_status_d_lists_packages_and_a_partial_list_is_never_judged() {
    let p = profile(
        "  - id: D-1
    impact: 0.5
    checks:
      - package: libc6
        version: {min: '2.36-9+deb12u4'}
  - id: D-2
    impact: 0.5
    checks:
      - packages: ~
        count: 2
      - package: removed
        exists: false
",
    );
    // Distroless writes each package's control data, without a `Status` field, and (in newer
    // images) its md5sums beside it; a stanza with a Status counts only when installed.
    let fx = base()
        .file(
            "/var/lib/dpkg/status.d/libc6",
            0o644,
            "Package: libc6\nVersion: 2.36-9+deb12u4\nArchitecture: amd64\n",
        )
        .file(
            "/var/lib/dpkg/status.d/base-files",
            0o644,
            "Package: base-files\nVersion: 12.4+deb12u5\nArchitecture: amd64\n",
        )
        .file(
            "/var/lib/dpkg/status.d/libc6.md5sums",
            0o644,
            "Package: bogus\n",
        )
        .file(
            "/var/lib/dpkg/status.d/removed",
            0o644,
            "Package: removed\nStatus: deinstall ok config-files\nVersion: 1\n",
        )
        .file(
            "/var/lib/dpkg/status.d/.hidden",
            0o644,
            "Package: hidden\nVersion: 1\n",
        );
    let exec = run(&p, &fx);
    for id in ["D-1", "D-2"] {
        assert_eq!(
            control(&exec, id).status(),
            ControlStatus::Passed,
            "{id}: {}",
            message(&exec, id)
        );
    }
    let old = fx.clone().file(
        "/var/lib/dpkg/status.d/libc6",
        0o644,
        "Package: libc6\nVersion: 2.31-13+deb11u5\nArchitecture: amd64\n",
    );
    assert_eq!(
        control(&run(&p, &old), "D-1").status(),
        ControlStatus::Failed
    );
    // An unreadable package file leaves the list partial: an error, not a verdict.
    let unreadable = fx.deny("/var/lib/dpkg/status.d/base-files");
    let exec = run(&p, &unreadable);
    assert_eq!(control(&exec, "D-2").status(), ControlStatus::ProfileError);
    assert!(
        message(&exec, "D-2").contains("base-files"),
        "{}",
        message(&exec, "D-2")
    );
}

#[test]
fn integrity_of_a_database_it_cannot_read_is_an_error_never_a_pass() {
    let p = profile(
        "  - id: I-1
    impact: 0.5
    checks:
      - package_integrity: ~
        exists: false
",
    );
    // No package database at all: nothing to verify.
    let exec = run(&p, &base());
    assert_eq!(control(&exec, "I-1").status(), ControlStatus::Passed);
    // An apk image whose one recorded file is gone: a finding.
    let apk = base().file(
        "/lib/apk/db/installed",
        0o644,
        "P:musl\nV:1.2.5-r0\nF:lib\nR:ld-musl-x86_64.so.1\na:0:0:755\n\
         Z:Q1AAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n",
    );
    let exec = run(&p, &apk);
    assert_eq!(control(&exec, "I-1").status(), ControlStatus::Failed);
    assert!(
        message(&exec, "I-1").contains("/lib/ld-musl-x86_64.so.1"),
        "{}",
        message(&exec, "I-1")
    );
    // An RPM image whose database is not a database: an error naming it, never a pass.
    let rpm = base().file("/usr/lib/sysimage/rpm/rpmdb.sqlite", 0o644, "x");
    let exec = run(&p, &rpm);
    assert_eq!(control(&exec, "I-1").status(), ControlStatus::ProfileError);
    assert!(
        message(&exec, "I-1").contains("rpmdb.sqlite"),
        "{}",
        message(&exec, "I-1")
    );
}
