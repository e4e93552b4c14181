//! `package_integrity` on RPM-family targets against the real `rpm -Va --root`: a test root
//! built by `rpmbuild` and installed by `rpm` (the rpmdb crate's generator: config, doc, ghost
//! files, symlinks, other owners, names that are not UTF-8, an MD5 package) is tampered with, and
//! the engine's findings must equal rpm's, file by file; the shell script (dash and busybox sh)
//! must gather the same facts as `LocalRoot`.

#[path = "../../../rpmdb/tests/common/rpmroot.rs"]
mod rpmroot;

use std::collections::BTreeSet;
use std::path::Path;

use keyhole_engine::{
    FactRequest, FactSource, FactValue, Facts, FileStatus, Inputs, LocalRoot, PackageManager,
    Profile, ShellScript, Waivers, evaluate, plan,
};
use keyhole_hdf::ControlStatus;

use crate::eval_fixture::now;
use crate::source_fixtures::{assert_same_facts, shells, shells_without_find, within};

const CONTROLS: &str = "  - id: BIN
    impact: 0.7
    checks:
      - package_integrity: {digests: [sha256, md5]}
        where: {manager: rpm, config: false}
        exists: false
  - id: CONF
    impact: 0.1
    checks:
      - package_integrity: {digests: [sha256, md5]}
        where: {manager: rpm, config: true}
        exists: false
";

fn profile() -> Profile {
    let text = format!("name: t\nversion: 0.1.0\ncontrols:\n{CONTROLS}");
    Profile::from_yaml_str(&text, "t.yaml").unwrap()
}

/// One finding, as both sides can say it: the path, `missing` or the attributes that differ
/// (rpm's letters), and whether it is a config file.
type Line = (Vec<u8>, String, bool);

/// The RPM answer of the facts as findings.
fn ours(facts: &Facts) -> BTreeSet<Line> {
    let (_, answer) = facts
        .iter()
        .find(|(r, _)| {
            matches!(r, FactRequest::ManagedIntegrity(s) if s.manager == PackageManager::Rpm)
        })
        .expect("the plan verifies RPM packages");
    let Ok(FactValue::Integrity(report)) = answer else {
        panic!("no RPM integrity report: {answer:?}");
    };
    assert!(report.incomplete.is_empty(), "{:?}", report.incomplete);
    assert!(report.files.len() > 300, "{} files", report.files.len());
    report
        .files
        .iter()
        .filter_map(|f| {
            let what = match &f.status {
                FileStatus::Unchanged => return None,
                FileStatus::Missing => "missing".to_string(),
                FileStatus::Changed => {
                    let mut letters: Vec<char> = f
                        .differs
                        .iter()
                        .map(|a| match a.name() {
                            "size" => 'S',
                            "mode" => 'M',
                            "digest" => '5',
                            "link" => 'L',
                            "owner" => 'U',
                            "group" => 'G',
                            other => panic!("{other}"),
                        })
                        .collect();
                    letters.sort_unstable();
                    letters.into_iter().collect()
                }
                FileStatus::Unverified(e) => panic!("{} unverified: {e}", f.path),
            };
            Some((f.path.as_bytes().to_vec(), what, f.config))
        })
        .collect()
}

/// `rpm -Va --noghost --nomtime --nordev` of the root as findings: what the facts check.
fn theirs(root: &rpmroot::RpmRoot) -> BTreeSet<Line> {
    let out = root.rpm_status(&[
        "-Va",
        "--nodeps",
        "--noscripts",
        "--noghost",
        "--nomtime",
        "--nordev",
    ]);
    out.stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            if let Some(rest) = l.strip_prefix(b"missing") {
                // `missing   c /path`
                (rest[5..].to_vec(), "missing".to_string(), rest[3] == b'c')
            } else {
                let mut letters: Vec<char> = l[..9]
                    .iter()
                    .filter(|&&b| b != b'.')
                    .map(|&b| b as char)
                    .collect();
                letters.sort_unstable();
                (
                    l[13..].to_vec(),
                    letters.into_iter().collect(),
                    l[11] == b'c',
                )
            }
        })
        .collect()
}

fn show(s: &BTreeSet<Line>) -> String {
    s.iter()
        .map(|(p, w, c)| {
            format!(
                "{w:>9} {} {}",
                if *c { 'c' } else { ' ' },
                String::from_utf8_lossy(p)
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn rpm_findings_equal_rpm_va_file_by_file_and_the_script_gathers_the_same_facts() {
    let root = rpmroot::build();
    let p = profile();
    let inputs = Inputs::defaults(&p);
    let fact_plan = plan(&p, &inputs);
    let local = || LocalRoot::directory(&root.root).unwrap().gather(&fact_plan);

    // Untouched, both find nothing.
    assert_eq!(theirs(&root), BTreeSet::new());
    assert_eq!(ours(&local()), BTreeSet::new());

    rpmroot::tamper(&root.root);
    let facts = local();
    let (mine, rpms) = (ours(&facts), theirs(&root));
    assert_eq!(
        mine,
        rpms,
        "only ours:\n{}\nonly rpm's:\n{}",
        show(&(&mine - &rpms)),
        show(&(&rpms - &mine))
    );
    // The oracle saw the tampering, as written out by hand here.
    let line = |p: &[u8], w: &str, c: bool| (p.to_vec(), w.to_string(), c);
    for want in [
        line(b"/opt/kh/p01/data0", "5", false),
        line(b"/opt/kh/p02/data1", "5S", false),
        line(b"/opt/kh/p03/bin", "M", false),
        line(b"/opt/kh/p04/data2", "U", false),
        line(b"/opt/kh/p05/data0", "G", false),
        line(b"/opt/kh/p06/data1", "missing", false),
        line(b"/opt/kh/p07/link-rel", "L", false),
        line(b"/opt/kh/p08/etc/main.conf", "5S", true),
        line(b"/opt/kh/p09/etc/main.conf", "missing", true),
        line(b"/opt/kh/p11/empty.d", "M", false),
        line(b"/opt/kh/p12/bin", "M", false),
        line(b"/opt/kh/p13/data0", "GLU", false),
        line(b"/opt/kh/p15/latin-caf\xe9", "5S", false),
        line(b"/opt/kh/p90/data0", "5S", false),
    ] {
        assert!(
            rpms.contains(&want),
            "rpm did not report {want:?}:\n{}",
            show(&rpms)
        );
    }
    // Ghost files and the timestamp are not judged.
    assert!(
        !rpms
            .iter()
            .any(|(p, ..)| p.windows(4).any(|w| w == b"p10/"))
    );
    assert!(!rpms.iter().any(|(p, ..)| p.ends_with(b"p14/data0")));

    // The resource: binaries and config files apart.
    let exec = evaluate(&p, &inputs, &facts, &Waivers::none(), now());
    let msg = |id: &str| {
        let c = exec.profiles[0]
            .controls
            .iter()
            .find(|c| c.id == id)
            .unwrap();
        let m: Vec<String> = c.results.iter().filter_map(|r| r.message.clone()).collect();
        (c.status(), m.join("; "))
    };
    let (bin, bin_msg) = msg("BIN");
    let (conf, conf_msg) = msg("CONF");
    assert_eq!((bin, conf), (ControlStatus::Failed, ControlStatus::Failed));
    assert!(bin_msg.contains("/opt/kh/p03/bin"), "{bin_msg}");
    assert!(!bin_msg.contains("main.conf"), "{bin_msg}");
    assert!(conf_msg.contains("/opt/kh/p08/etc/main.conf"), "{conf_msg}");
    assert!(!conf_msg.contains("p03/bin"), "{conf_msg}");

    // The shell script, through the root as a prefix, gathers the same facts.
    for (name, shell) in shells() {
        let script = ShellScript::in_container()
            .with_root_prefix(&root.root)
            .unwrap()
            .with_pid(None);
        let fp = fact_plan.clone();
        let got: Facts = within(600, name, move || script.run_local(&fp, shell).unwrap());
        assert_same_facts(&format!("{name} vs LocalRoot"), &got, &facts);
    }
    // Without findutils (UBI-minimal), sh walks the prefixes itself: the same facts, every
    // file verified (`ours` fails on an unverified one, such as "find not available").
    for (name, shell) in shells_without_find() {
        let script = ShellScript::in_container()
            .with_root_prefix(&root.root)
            .unwrap()
            .with_pid(None);
        let fp = fact_plan.clone();
        let got: Facts = within(600, name, move || script.run_local(&fp, shell).unwrap());
        assert_same_facts(&format!("{name} without find vs LocalRoot"), &got, &facts);
        assert_eq!(ours(&got), mine, "{name} without find");
        assert!(
            !format!("{got:?}").contains("not available"),
            "{name} without find"
        );
    }
}

/// Busybox (`sh` and every applet) in `root`'s `/bin`, and the mount points of a container.
fn add_busybox(root: &Path) {
    let busybox = crate::source_fixtures::require("busybox", "busybox-static");
    for d in ["bin", "proc", "dev", "sys", "tmp"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy(&busybox, root.join("bin/busybox")).unwrap();
    let list = std::process::Command::new(&busybox)
        .arg("--list")
        .output()
        .unwrap();
    for applet in String::from_utf8_lossy(&list.stdout)
        .lines()
        .filter(|a| *a != "busybox")
    {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
}

#[test]
fn rpm_facts_are_the_same_through_the_process_root_and_the_script_inside_a_container() {
    crate::source_runc::require_root();
    let root = rpmroot::build();
    add_busybox(&root.root);
    rpmroot::tamper(&root.root);
    let p = profile();
    let fact_plan = plan(&p, &Inputs::defaults(&p));
    let local = LocalRoot::directory(&root.root).unwrap().gather(&fact_plan);
    assert_eq!(ours(&local), theirs(&root));

    let c = crate::source_runc::Container::start(&root.root, 0);
    // The agent's way: the container's root through /proc/PID/root.
    let by_process = LocalRoot::process(c.pid).unwrap().gather(&fact_plan);
    assert_same_facts("process root vs directory", &by_process, &local);
    // Standard mode: the script inside the container, with busybox's sh and applets only, as
    // root allowed to read every file (as the host's root is).
    let caps = ["CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_SYS_PTRACE"];
    let script = ShellScript::in_container().render(&fact_plan);
    let stdout = c.exec_script(&script, 0, &caps);
    let inside = ShellScript::parse(&fact_plan, &stdout);
    assert_same_facts("script in the container vs LocalRoot", &inside, &local);
}
