//! Properties: evaluation never panics on any combination of security-context fields, and a
//! few rules hold whatever else is set.

use k8s_openapi::api::core::v1::{
    AppArmorProfile, Capabilities, PodSecurityContext, SeccompProfile, SecurityContext,
};
use keyhole_precheck::{CheckId, Outcome, Policy, evaluate};
use proptest::prelude::*;

use crate::support::hardened_with;

fn profile_type() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(prop_oneof![
        Just("Unconfined".to_owned()),
        Just("RuntimeDefault".to_owned()),
        Just("Localhost".to_owned()),
        ".{0,12}",
    ])
}

fn caps() -> impl Strategy<Value = Option<Vec<String>>> {
    proptest::option::of(proptest::collection::vec(
        prop_oneof![
            Just("SYS_ADMIN".to_owned()),
            Just("cap_net_raw".to_owned()),
            Just("ALL".to_owned()),
            Just("CHOWN".to_owned()),
            ".{0,10}",
        ],
        0..4,
    ))
}

prop_compose! {
    fn container_sc()(
        privileged in any::<Option<bool>>(),
        ape in any::<Option<bool>>(),
        add in caps(),
        proc_mount in proptest::option::of(prop_oneof![Just("Unmasked".to_owned()), Just("Default".to_owned()), ".{0,8}"]),
        uid in proptest::option::of(prop_oneof![Just(0i64), any::<i64>()]),
        non_root in any::<Option<bool>>(),
        seccomp in profile_type(),
        apparmor in profile_type(),
    ) -> SecurityContext {
        SecurityContext {
            privileged,
            allow_privilege_escalation: ape,
            capabilities: add.map(|a| Capabilities { add: Some(a), drop: None }),
            proc_mount,
            run_as_user: uid,
            run_as_non_root: non_root,
            seccomp_profile: seccomp.map(|t| SeccompProfile { type_: t, localhost_profile: None }),
            app_armor_profile: apparmor.map(|t| AppArmorProfile { type_: t, localhost_profile: None }),
            ..SecurityContext::default()
        }
    }
}

prop_compose! {
    fn pod_sc()(
        uid in proptest::option::of(prop_oneof![Just(0i64), any::<i64>()]),
        non_root in any::<Option<bool>>(),
        seccomp in profile_type(),
        apparmor in profile_type(),
    ) -> PodSecurityContext {
        PodSecurityContext {
            run_as_user: uid,
            run_as_non_root: non_root,
            seccomp_profile: seccomp.map(|t| SeccompProfile { type_: t, localhost_profile: None }),
            app_armor_profile: apparmor.map(|t| AppArmorProfile { type_: t, localhost_profile: None }),
            ..PodSecurityContext::default()
        }
    }
}

proptest! {
    #[test]
    fn evaluate_never_panics_and_judges_every_check(
        sc in proptest::option::of(container_sc()),
        psc in proptest::option::of(pod_sc()),
        host in any::<(Option<bool>, Option<bool>, Option<bool>)>(),
        image in ".{0,40}",
        image_id in ".{0,80}",
        restarts in any::<i32>(),
    ) {
        let pod = hardened_with(|p| {
            let spec = p.spec.as_mut().unwrap();
            spec.containers[0].security_context = sc.clone();
            spec.containers[0].image = Some(image.clone());
            spec.security_context = psc.clone();
            (spec.host_pid, spec.host_network, spec.host_ipc) = host;
            let st = p.status.as_mut().unwrap().container_statuses.as_mut().unwrap();
            st[1].image_id = image_id.clone();
            st[1].restart_count = restarts;
        });
        let v = evaluate(&pod, "app", &Policy::builtin());
        prop_assert_eq!(v.checks.len(), CheckId::ALL.len());
        let _ = v.to_hdf("2026-12-03T08:00:00Z".parse().unwrap()).to_json().expect("valid HDF");

        let privileged = sc.as_ref().and_then(|s| s.privileged) == Some(true);
        let o = |c| v.get(c).unwrap().outcome;
        // A privileged container fails privileged, escalation, seccomp and AppArmor, always.
        if privileged {
            for c in [CheckId::Privileged, CheckId::PrivilegeEscalation, CheckId::SeccompUnconfined, CheckId::ApparmorUnconfined] {
                prop_assert_eq!(o(c), Outcome::Failed, "{}", c);
            }
        }
        // Escalation passes only when explicitly false (and nothing forces it).
        if sc.as_ref().and_then(|s| s.allow_privilege_escalation) != Some(false) {
            prop_assert_eq!(o(CheckId::PrivilegeEscalation), Outcome::Failed);
        }
        // Effective uid 0 (container over pod) always fails run-as-root.
        let uid = sc.as_ref().and_then(|s| s.run_as_user).or(psc.as_ref().and_then(|s| s.run_as_user));
        if uid == Some(0) {
            prop_assert_eq!(o(CheckId::RunAsRoot), Outcome::Failed);
        }
        prop_assert_eq!(o(CheckId::HostPid) == Outcome::Failed, host.0 == Some(true));
    }
}

/// A socket-table line built from plausible and implausible columns.
fn table_line() -> impl Strategy<Value = String> {
    let addr = prop_oneof![
        "[0-9A-F]{8}:[0-9A-F]{4}",
        "[0-9A-F]{32}:[0-9A-F]{4}",
        ".{0,12}"
    ];
    (
        addr.clone(),
        addr,
        "[0-9A-F]{2}|.{0,3}",
        "[0-9]{1,6}|.{0,3}",
    )
        .prop_map(|(l, r, st, uid)| format!(" 0: {l} {r} {st} 0:0 0:0 0 {uid} 0 1"))
}

proptest! {
    #[test]
    fn socket_tables_never_panic_and_every_line_is_counted(
        lines in proptest::collection::vec(table_line(), 0..20),
        table in proptest::sample::select(keyhole_precheck::ProcNetTable::ALL.to_vec()),
    ) {
        let text = format!("  sl  local_address rem_address   st\n{}\n", lines.join("\n"));
        let f = keyhole_precheck::NetworkFacts::parse(&[(table, &text)]);
        // Every line is a socket, a problem, or a state that is neither listening nor connected.
        prop_assert!(f.sockets.len() + f.problems.len() <= lines.len());
        let [a, b] = keyhole_precheck::check_network(&f, &Policy::builtin());
        if !f.problems.is_empty() {
            prop_assert_eq!((a.outcome, b.outcome), (Outcome::Failed, Outcome::Failed));
        }
    }

    #[test]
    fn policy_text_never_panics(text in "(checks|allow|max-restarts|images|: |\n|  |- |\\[|\\]|[a-z0-9/.*:-]{0,6}){0,30}") {
        let _ = Policy::from_yaml_str(&text, "p.yaml");
    }

    #[test]
    fn image_names_never_panic(image in ".{0,60}") {
        let n = keyhole_precheck::ImageName::parse(&image);
        // An image without a registry component always gets Docker Hub's.
        prop_assert!(!n.registry.is_empty());
        let _ = keyhole_precheck::image_id_digest(&image);
    }
}
