//! RPM-family targets: `packages` read from a real `rpmdb.sqlite` (written by Debian's `rpm`
//! into a test root) through `LocalRoot` equals `rpm -qa --root`, versions compare in rpm's
//! order, and a corrupt database is an error, never an empty list.

use std::path::Path;
use std::process::Command;

use keyhole_engine::{
    FactSource, Facts, Inputs, LocalRoot, Profile, ShellScript, Waivers, evaluate, gather, plan,
};
use keyhole_hdf::{ControlStatus, Execution};

use crate::eval_fixture::now;
use crate::source_fixtures::{assert_same_facts, shells, within};

/// Fails, saying how to get it, when `tool` is missing.
fn require(tool: &str) {
    assert!(
        Command::new(tool).arg("--version").output().is_ok(),
        "`{tool}` is needed by this test: apt-get install rpm"
    );
}

/// Builds three packages (one with an epoch, one with a tilde version) with `rpmbuild` and
/// installs them with `rpm` into `root`.
fn install(work: &Path, root: &Path) {
    require("rpm");
    require("rpmbuild");
    let spec = "Name: kh-main\nVersion: 1\nRelease: 1\nSummary: t\nLicense: none\nBuildArch: noarch\n\
        %description\nt\n\
        %package -n kh-a\nSummary: a\nVersion: 2.4.1\nRelease: 3.el9\n%description -n kh-a\na\n\
        %package -n kh-b\nSummary: b\nEpoch: 2\nVersion: 1.0\nRelease: 1\n%description -n kh-b\nb\n\
        %package -n kh-c\nSummary: c\nVersion: 1.0~rc1\nRelease: 1\n%description -n kh-c\nc\n\
        %install\nmkdir -p %{buildroot}/usr/share/kh\n\
        echo a > %{buildroot}/usr/share/kh/a\necho b > %{buildroot}/usr/share/kh/b\n\
        echo c > %{buildroot}/usr/share/kh/c\n\
        %files -n kh-a\n/usr/share/kh/a\n%files -n kh-b\n/usr/share/kh/b\n\
        %files -n kh-c\n/usr/share/kh/c\n";
    std::fs::write(work.join("t.spec"), spec).unwrap();
    let out = Command::new("rpmbuild")
        .arg("-bb")
        .arg("--define")
        .arg(format!("_topdir {}", work.join("top").display()))
        .arg(work.join("t.spec"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "rpmbuild: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut rpms: Vec<_> = std::fs::read_dir(work.join("top/RPMS/noarch"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    rpms.sort();
    assert_eq!(rpms.len(), 3, "{rpms:?}");
    let out = Command::new("rpm")
        .arg("--root")
        .arg(root)
        .args(["--dbpath", "/var/lib/rpm", "--define", "_db_backend sqlite"])
        .args(["-i", "--nodeps", "--noscripts", "--nosignature"])
        .args(&rpms)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "rpm -i: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `rpm -qa` of `root`: name and `[epoch:]version-release` of each package.
fn rpm_qa(root: &Path) -> Vec<(String, String)> {
    let out = Command::new("rpm")
        .arg("--root")
        .arg(root)
        .args(["--dbpath", "/var/lib/rpm", "-qa", "--qf"])
        .arg("%{NAME} %|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\\n")
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut all: Vec<_> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (n, v) = l.split_once(' ').unwrap();
            (n.to_owned(), v.to_owned())
        })
        .collect();
    all.sort();
    all
}

fn profile(controls: &str) -> Profile {
    let text = format!("name: t\nversion: 0.1.0\ncontrols:\n{controls}");
    Profile::from_yaml_str(&text, "t.yaml").unwrap()
}

fn run(root: &Path, controls: &str) -> Execution {
    let p = profile(controls);
    let inputs = Inputs::defaults(&p);
    let source = LocalRoot::directory(root).unwrap();
    let facts = gather(&p, &inputs, &source);
    evaluate(&p, &inputs, &facts, &Waivers::none(), now())
}

/// The facts of `controls` on `root` through the shell script, with each test shell; each must
/// equal `LocalRoot`'s (the binary database read byte for byte) and judge the same.
fn script_agrees(root: &Path, controls: &str, local: &Execution) {
    let p = profile(controls);
    let inputs = Inputs::defaults(&p);
    let fact_plan = plan(&p, &inputs);
    let local_facts = LocalRoot::directory(root).unwrap().gather(&fact_plan);
    for (name, shell) in shells() {
        let script = ShellScript::in_container()
            .with_root_prefix(root)
            .unwrap()
            .with_pid(None);
        let fp = fact_plan.clone();
        let facts: Facts = within(300, name, move || script.run_local(&fp, shell).unwrap());
        assert_same_facts(&format!("{name} vs LocalRoot"), &facts, &local_facts);
        let exec = evaluate(&p, &inputs, &facts, &Waivers::none(), now());
        for (a, b) in exec.profiles[0]
            .controls
            .iter()
            .zip(&local.profiles[0].controls)
        {
            assert_eq!((&a.id, a.status()), (&b.id, b.status()), "{name}");
        }
    }
}

fn status(exec: &Execution, id: &str) -> (ControlStatus, String) {
    let c = exec.profiles[0]
        .controls
        .iter()
        .find(|c| c.id == id)
        .unwrap();
    let msg = c
        .results
        .iter()
        .filter_map(|r| r.message.clone())
        .collect::<Vec<_>>()
        .join("; ");
    (c.status(), msg)
}

#[test]
fn rpm_packages_equal_rpm_qa_compare_in_rpm_order_and_corruption_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    install(dir.path(), &root);
    // A UBI 9 image's os-release (UBI carries RHEL's `ID`).
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(
        root.join("etc/os-release"),
        "NAME=\"Red Hat Enterprise Linux\"\nID=\"rhel\"\nVERSION_ID=\"9.4\"\n",
    )
    .unwrap();
    let qa = rpm_qa(&root);
    assert_eq!(qa.len(), 3, "{qa:?}");
    // One control per package `rpm -qa` lists: present with exactly its version; and the count.
    let mut controls = format!(
        "  - id: COUNT\n    impact: 0.5\n    checks:\n      - packages: ~\n        where: {{manager: rpm}}\n        count: {}\n",
        qa.len()
    );
    for (i, (name, evr)) in qa.iter().enumerate() {
        controls.push_str(&format!(
            "  - id: P{i}\n    impact: 0.5\n    checks:\n      - package: {name}\n        version: {{eq: '{evr}'}}\n"
        ));
    }
    // rpm's order: the epoch wins over any version; a tilde sorts before the release.
    controls.push_str(
        "  - id: ORDER\n    impact: 0.5\n    checks:\n      - package: kh-b\n        version: {min: '1:9.9-9'}\n      - package: kh-c\n        version: {lt: '1.0-1'}\n      - package: kh-a\n        version: {gt: '2.4.1-3.el8'}\n",
    );
    // RHEL 9 ends maintenance on 2032-05-31: 2013 days after the test's scan (2026-11-26).
    controls.push_str(
        "  - id: EOL\n    impact: 0.5\n    checks:\n      - os_release: ~\n        id: rhel\n        days_to_eol: {min: 2013, max: 2013}\n",
    );
    controls.push_str(
        "  - id: WRONG\n    impact: 0.5\n    checks:\n      - package: kh-a\n        version: {min: '2.4.1-10.el9'}\n",
    );
    let exec = run(&root, &controls);
    for c in &exec.profiles[0].controls {
        let (s, msg) = status(&exec, &c.id);
        let want = if c.id == "WRONG" {
            ControlStatus::Failed
        } else {
            ControlStatus::Passed
        };
        assert_eq!(s, want, "{}: {msg}", c.id);
    }
    script_agrees(&root, &controls, &exec);

    // The built-in baseline on this RPM root: dpkg's integrity controls do not apply, and the
    // RPM one verifies the RPM packages (none of whose files is a binary here).
    let p = Profile::builtin("container-baseline").unwrap();
    let inputs = Inputs::defaults(&p);
    let facts = gather(&p, &inputs, &LocalRoot::directory(&root).unwrap());
    let base = evaluate(&p, &inputs, &facts, &Waivers::none(), now());
    for id in ["KH-PKG-002", "KH-PKG-003"] {
        assert_eq!(status(&base, id).0, ControlStatus::NotApplicable, "{id}");
    }
    let (s, msg) = status(&base, "KH-PKG-007");
    assert_eq!(s, ControlStatus::Passed, "{msg}");
    assert_eq!(
        status(&base, "KH-OS-002").0,
        ControlStatus::Passed,
        "RHEL 9 is supported"
    );

    // A database that is a symlink out of the root resolves inside it: the good copy outside is
    // never read (here nothing is left inside, so no RPM package is listed).
    let db = root.join("var/lib/rpm/rpmdb.sqlite");
    let outside = dir.path().join("outside.sqlite");
    std::fs::rename(&db, &outside).unwrap();
    std::os::unix::fs::symlink(&outside, &db).unwrap();
    let count = "  - id: N\n    impact: 0.5\n    checks:\n      - packages: ~\n        where: {manager: rpm}\n        count: 0\n";
    let (s, msg) = status(&run(&root, count), "N");
    assert_eq!(s, ControlStatus::Passed, "{msg}");
    // A FIFO in its place is an error, and the scan does not block on it.
    std::fs::remove_file(&db).unwrap();
    let made = Command::new("mkfifo").arg(&db).status().unwrap();
    assert!(made.success());
    let exec = within(60, "a FIFO database", {
        let root = root.clone();
        move || run(&root, count)
    });
    let (s, msg) = status(&exec, "N");
    assert_eq!(s, ControlStatus::ProfileError, "{msg}");
    std::fs::remove_file(&db).unwrap();
    std::fs::rename(&outside, &db).unwrap();

    // A database present but corrupt is an error for the control, never an empty list.
    let db = root.join("var/lib/rpm/rpmdb.sqlite");
    let mut bytes = std::fs::read(&db).unwrap();
    let half = bytes.len() / 2;
    bytes[100..half].fill(0xa5);
    std::fs::write(&db, &bytes).unwrap();
    let _ = std::fs::remove_file(root.join("var/lib/rpm/rpmdb.sqlite-wal"));
    let exec = run(
        &root,
        "  - id: GONE\n    impact: 0.5\n    checks:\n      - package: telnet\n        exists: false\n",
    );
    let (s, msg) = status(&exec, "GONE");
    assert_eq!(s, ControlStatus::ProfileError, "{msg}");
    assert!(msg.contains("rpmdb.sqlite"), "{msg}");
}
