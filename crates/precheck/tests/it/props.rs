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
