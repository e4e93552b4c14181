//! The builders: exact rules per mode, object shapes, errors, and snapshots.

use keyhole_core::{
    EXPIRES_AT_ANNOTATION, MANAGED_BY_LABEL, RUN_ID_LABEL, ScanMode, TARGET_ANNOTATION,
};
use keyhole_rbac::{RbacError, owner_reference, role, role_binding, rules, service_account};

use crate::{check, pod, sample_run};

/// The placeholder uid offline plans use.
const UID: &str = "00000000-0000-0000-0000-000000000000";

/// `(resource, verbs)` of each rule, with its resourceNames checked against `web-0, web-1`.
fn shape(mode: ScanMode) -> Vec<(String, Vec<String>)> {
    rules(mode, &[pod("web-1"), pod("web-0"), pod("web-1")])
        .unwrap()
        .into_iter()
        .map(|r| {
            assert_eq!(r.api_groups.as_deref(), Some(&[String::new()][..]));
            assert_eq!(
                r.resource_names.as_deref(),
                Some(&["web-0".to_string(), "web-1".to_string()][..]),
                "names are sorted and deduplicated"
            );
            assert_eq!(r.non_resource_urls, None);
            let resources = r.resources.unwrap();
            assert_eq!(resources.len(), 1, "one resource per rule");
            (resources[0].clone(), r.verbs)
        })
        .collect()
}

fn expected(rows: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
    rows.iter()
        .map(|(r, v)| (r.to_string(), v.iter().map(|s| s.to_string()).collect()))
        .collect()
}

#[test]
fn each_mode_gets_exactly_its_rules() {
    assert_eq!(
        shape(ScanMode::Standard),
        expected(&[("pods", &["get"]), ("pods/exec", &["create", "get"])])
    );
    assert_eq!(
        shape(ScanMode::Distroless),
        expected(&[
            ("pods", &["get"]),
            ("pods/ephemeralcontainers", &["get", "patch"]),
            ("pods/log", &["get"]),
        ])
    );
    assert_eq!(
        shape(ScanMode::Sidecar),
        expected(&[("pods", &["get"]), ("pods/log", &["get"])])
    );
}

#[test]
fn auto_mode_and_no_pods_are_refused() {
    assert_eq!(
        rules(ScanMode::Auto, &[pod("web-0")]),
        Err(RbacError::UnresolvedMode)
    );
    assert_eq!(rules(ScanMode::Standard, &[]), Err(RbacError::NoPods));
    assert_eq!(
        role(&sample_run(ScanMode::Auto), UID),
        Err(RbacError::UnresolvedMode)
    );
    let msg = RbacError::UnresolvedMode.to_string();
    assert!(msg.contains("auto") && msg.contains("decide"), "{msg}");
    let msg = RbacError::NoPods.to_string();
    assert!(
        msg.contains("resourceNames") && msg.contains("resolve"),
        "{msg}"
    );
}

#[test]
fn objects_share_name_namespace_labels_and_annotations() {
    let run = sample_run(ScanMode::Standard);
    let sa = service_account(&run);
    let role = role(&run, UID).unwrap();
    let rb = role_binding(&run, UID);
    for meta in [&sa.metadata, &role.metadata, &rb.metadata] {
        assert_eq!(meta.name.as_deref(), Some("keyhole-abcdefghij"));
        assert_eq!(meta.namespace.as_deref(), Some("prod"));
        let labels = meta.labels.as_ref().unwrap();
        assert_eq!(labels[MANAGED_BY_LABEL], "keyhole");
        assert_eq!(labels[RUN_ID_LABEL], "abcdefghij");
        let annotations = meta.annotations.as_ref().unwrap();
        assert_eq!(annotations[EXPIRES_AT_ANNOTATION], "2026-11-26T14:10:00Z");
        assert_eq!(annotations[TARGET_ANNOTATION], "prod/web-0,web-1");
    }
    assert_eq!(sa.automount_service_account_token, Some(false));
    assert_eq!(
        sa.metadata.owner_references, None,
        "the account is the owner"
    );
    let owner = owner_reference(&run, UID);
    assert_eq!(role.metadata.owner_references, Some(vec![owner.clone()]));
    assert_eq!(rb.metadata.owner_references, Some(vec![owner]));
}

#[test]
fn owner_reference_points_at_the_account_without_blocking() {
    let o = owner_reference(&sample_run(ScanMode::Sidecar), "uid-1");
    assert_eq!(
        (o.api_version.as_str(), o.kind.as_str(), o.name.as_str()),
        ("v1", "ServiceAccount", "keyhole-abcdefghij")
    );
    assert_eq!(o.uid, "uid-1");
    assert_eq!((o.controller, o.block_owner_deletion), (None, None));
}

#[test]
fn binding_ties_the_role_to_the_account_only() {
    let rb = role_binding(&sample_run(ScanMode::Distroless), UID);
    assert_eq!(rb.role_ref.kind, "Role");
    assert_eq!(rb.role_ref.name, "keyhole-abcdefghij");
    let subjects = rb.subjects.unwrap();
    assert_eq!(subjects.len(), 1);
    assert_eq!(subjects[0].kind, "ServiceAccount");
    assert_eq!(subjects[0].name, "keyhole-abcdefghij");
    assert_eq!(subjects[0].namespace.as_deref(), Some("prod"));
}

#[test]
fn snapshots() {
    for mode in [ScanMode::Standard, ScanMode::Distroless, ScanMode::Sidecar] {
        let run = sample_run(mode);
        check(&format!("role_{mode}"), &role(&run, UID).unwrap());
    }
    let run = sample_run(ScanMode::Standard);
    check("service_account", &service_account(&run));
    check("role_binding", &role_binding(&run, UID));
}
