//! The agent on an RPM-family target: the rpmdb crate's generated RPM root (built by `rpmbuild`,
//! installed by Debian's `rpm`), a file tampered with, a process chrooted into it, and the
//! agent's framed facts for `package_integrity` equal `LocalRoot`'s over the same root: RPM
//! integrity answered by the agent as by every other source.
//!
//! Needs root (chroot), `busybox-static`, `rpm` and `rpmbuild`; a missing one fails the test.

#[path = "../../../rpmdb/tests/common/rpmroot.rs"]
mod rpmroot;

use keyhole_engine::{
    FactRequest, FactSource as _, FactValue, FileStatus, Inputs, LocalRoot, PackageManager,
    Profile, read_facts_frames,
};

use crate::gather::{Target, agent, busybox, require_root};

#[test]
fn the_agent_answers_rpm_integrity_as_local_root_does() {
    require_root();
    let root = rpmroot::build();
    std::fs::copy(busybox(), root.root.join("busybox")).unwrap();
    std::fs::write(root.root.join("opt/kh/p03/bin"), b"trojan").unwrap();
    let profile = Profile::from_yaml_str(
        "name: t\nversion: 0.1.0\ncontrols:\n  - id: RPM\n    impact: 0.7\n    checks:\n      \
         - package_integrity: {digests: [sha256, md5]}\n        exists: false\n",
        "t.yaml",
    )
    .unwrap();
    let plan = keyhole_engine::plan(&profile, &Inputs::defaults(&profile));
    let target = Target::start(&root.root, &[]);
    let out = agent(
        &[
            "scan",
            "--pid",
            &target.0.id().to_string(),
            "--time-limit",
            "120s",
        ],
        Some(&serde_json::to_string(&plan).unwrap()),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = String::from_utf8(out.stdout).unwrap();
    let frames = read_facts_frames(&log);
    assert_eq!((frames.frames.len(), frames.damaged), (1, 0));
    let facts = &frames.frames[0].facts;
    let local = LocalRoot::directory(&root.root).unwrap().gather(&plan);
    assert_eq!(facts.len(), plan.len());
    for (r, a) in facts.iter() {
        assert_eq!(Some(a), local.get(r), "{r:?}");
    }
    // The RPM answer is a real verification that saw the tampering.
    let (_, rpm) = facts
        .iter()
        .find(|(r, _)| {
            matches!(r, FactRequest::ManagedIntegrity(s) if s.manager == PackageManager::Rpm)
        })
        .unwrap();
    let Ok(FactValue::Integrity(report)) = rpm else {
        panic!("{rpm:?}");
    };
    assert!(report.files.len() > 300, "{}", report.files.len());
    let changed: Vec<_> = report
        .files
        .iter()
        .filter(|f| f.status != FileStatus::Unchanged)
        .map(|f| (f.path.to_string(), f.status.clone()))
        .collect();
    assert_eq!(
        changed,
        [("/opt/kh/p03/bin".to_string(), FileStatus::Changed)]
    );
}
