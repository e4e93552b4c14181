//! Each rule, negative (the hardened fixture passes it) and positive (a mutation or fixture
//! that fails it), with the evidence the failure must carry.

use k8s_openapi::api::core::v1::{
    AppArmorProfile, Capabilities, HostPathVolumeSource, SeccompProfile, Volume,
};
use keyhole_precheck::{CheckId, Decision, Outcome, Policy, evaluate, evaluate_missing};

use crate::support::{app_status, eval_app, evidence, hardened_with, outcome, pod, psc, sc};

const POD_CHECKS: [CheckId; 18] = [
    CheckId::TargetExists,
    CheckId::TargetRunning,
    CheckId::ContainerReady,
    CheckId::ContainerRestarts,
    CheckId::ImageDigestMatch,
    CheckId::Privileged,
    CheckId::PrivilegeEscalation,
    CheckId::DangerousCapabilities,
    CheckId::HostPid,
    CheckId::HostNetwork,
    CheckId::HostIpc,
    CheckId::HostPath,
    CheckId::RunAsRoot,
    CheckId::ProcMount,
    CheckId::SeccompUnconfined,
    CheckId::ApparmorUnconfined,
    CheckId::ImageSource,
    CheckId::ImagePinned,
];

#[test]
fn hardened_pod_passes_every_pod_check_and_records_the_target() {
    let v = eval_app(&pod("hardened"));
    for c in POD_CHECKS {
        assert_eq!(outcome(&v, c), Outcome::Passed, "{c}: {:?}", v.get(c));
    }
    for c in [CheckId::NetworkListeners, CheckId::NetworkPeers] {
        assert_eq!(outcome(&v, c), Outcome::NotApplicable, "{c}");
    }
    assert_eq!(v.checks.len(), 20);
    assert_eq!(v.decision, Decision::Proceed);
    assert_eq!(v.failures().count(), 0);
    assert_eq!(v.exit_code(), None);
    let t = &v.target;
    assert_eq!((t.namespace.as_str(), t.pod.as_str()), ("shop", "web"));
    assert_eq!(t.restart_count, Some(0));
    assert_eq!(t.started_at.as_deref(), Some("2026-12-01T10:00:05Z"));
    assert_eq!(t.resource_version.as_deref(), Some("4242"));
    assert_eq!(t.node.as_deref(), Some("node-1"));
}

/// Fails `check` on the hardened pod after `edit`, and checks the evidence names `path`.
fn fails(check: CheckId, path: &str, edit: impl FnOnce(&mut k8s_openapi::api::core::v1::Pod)) {
    let v = eval_app(&hardened_with(edit));
    assert_eq!(
        outcome(&v, check),
        Outcome::Failed,
        "{check}: {:?}",
        v.get(check)
    );
    let ev = evidence(&v, check);
    assert!(
        ev.iter().any(|e| e.contains(path)),
        "{check}: no `{path}` in {ev:?}"
    );
}

#[test]
fn target_exists() {
    let p = Policy::builtin();
    let v = evaluate(&pod("hardened"), "nope", &p);
    assert_eq!(outcome(&v, CheckId::TargetExists), Outcome::Failed);
    assert_eq!(
        evidence(&v, CheckId::TargetExists),
        ["spec.containers[*].name = [app, cache]"]
    );
    assert_eq!(outcome(&v, CheckId::Privileged), Outcome::NotApplicable);
    assert_eq!(v.decision, Decision::Abort);
    assert_eq!(v.exit_code(), Some(5));
    let v = evaluate_missing("shop", "gone", "app", &p);
    assert_eq!(outcome(&v, CheckId::TargetExists), Outcome::Failed);
    assert_eq!(v.decision, Decision::Abort);
    let v = evaluate(&k8s_openapi::api::core::v1::Pod::default(), "app", &p);
    assert_eq!(
        v.decision,
        Decision::Abort,
        "a pod without spec is no target"
    );
}

#[test]
fn target_running() {
    fails(CheckId::TargetRunning, "status.phase = Pending", |p| {
        p.status.as_mut().unwrap().phase = Some("Pending".into());
    });
    fails(CheckId::TargetRunning, "metadata.deletionTimestamp", |p| {
        p.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            "2026-12-01T11:00:00Z".parse().unwrap(),
        ));
    });
    fails(CheckId::TargetRunning, "status.phase = unset", |p| {
        p.status = None
    });
}

#[test]
fn container_ready_and_restarts_on_a_crash_loop() {
    let v = eval_app(&pod("crashloop"));
    assert_eq!(outcome(&v, CheckId::ContainerReady), Outcome::Failed);
    assert_eq!(
        evidence(&v, CheckId::ContainerReady),
        [
            "status.containerStatuses[0].ready = false",
            "status.containerStatuses[0].state = waiting (CrashLoopBackOff)"
        ]
    );
    assert_eq!(outcome(&v, CheckId::ContainerRestarts), Outcome::Failed);
    assert_eq!(
        evidence(&v, CheckId::ContainerRestarts),
        [
            "status.containerStatuses[0].restartCount = 7",
            "status.containerStatuses[0].lastState.terminated = reason Error, exit code 1, finished 2026-12-01T10:05:00Z",
            "status.containerStatuses[0].state.waiting.reason = CrashLoopBackOff",
        ]
    );
    assert_eq!(v.target.restart_count, Some(7));
    assert_eq!(v.target.started_at, None);
    assert_eq!(
        v.decision,
        Decision::Abort,
        "container-ready aborts by default"
    );
}

#[test]
fn container_ready_without_status() {
    fails(
        CheckId::ContainerReady,
        "status.containerStatuses[*].name",
        |p| {
            p.status.as_mut().unwrap().container_statuses = None;
        },
    );
    fails(CheckId::ContainerReady, "ready = false", |p| {
        app_status(p).ready = false;
    });
}

#[test]
fn container_restarts_against_the_policys_maximum() {
    let p = hardened_with(|p| app_status(p).restart_count = 2);
    let v = eval_app(&p);
    assert_eq!(outcome(&v, CheckId::ContainerRestarts), Outcome::Failed);
    assert_eq!(
        v.decision,
        Decision::Proceed,
        "container-restarts only warns by default"
    );
    let lenient = Policy::from_yaml_str("max-restarts: 2\n", "t.yaml").unwrap();
    let v = evaluate(&p, "app", &lenient);
    assert_eq!(outcome(&v, CheckId::ContainerRestarts), Outcome::Passed);
    fails(CheckId::ContainerRestarts, "restartCount = -1", |p| {
        app_status(p).restart_count = -1;
    });
}

#[test]
fn image_digest_match() {
    let other = format!("sha256:{}", "e".repeat(64));
    let o = other.clone();
    fails(
        CheckId::ImageDigestMatch,
        "imageID = registry.example.com/shop/web@sha256:eee",
        move |p| {
            app_status(p).image_id = format!("registry.example.com/shop/web@{o}");
        },
    );
    fails(
        CheckId::ImageDigestMatch,
        "imageID = registry.example.com/shop/web:1.4.2",
        |p| {
            app_status(p).image_id = "registry.example.com/shop/web:1.4.2".into();
        },
    );
    // A differing digest passes when the policy lists it.
    let p = hardened_with(|p| app_status(p).image_id = format!("docker-pullable://x@{other}"));
    let allow =
        Policy::from_yaml_str(&format!("allow:\n  image-digests: [\"{other}\"]\n"), "t").unwrap();
    assert_eq!(
        outcome(&evaluate(&p, "app", &allow), CheckId::ImageDigestMatch),
        Outcome::Passed
    );
    // No digest in the spec: nothing to compare, unless the policy lists digests.
    let v = eval_app(&pod("crashloop"));
    assert_eq!(
        outcome(&v, CheckId::ImageDigestMatch),
        Outcome::NotApplicable
    );
    let v = evaluate(&pod("crashloop"), "app", &allow);
    assert_eq!(outcome(&v, CheckId::ImageDigestMatch), Outcome::Failed);
}

#[test]
fn privileged_status_fixture_fails_every_privilege_rule() {
    let v = evaluate(&pod("privileged"), "agent", &Policy::builtin());
    let expect = [
        (
            CheckId::Privileged,
            "spec.containers[0].securityContext.privileged = true",
        ),
        (
            CheckId::PrivilegeEscalation,
            "spec.containers[0].securityContext.allowPrivilegeEscalation = unset (defaults to true)",
        ),
        (
            CheckId::DangerousCapabilities,
            "spec.containers[0].securityContext.capabilities.add = [SYS_ADMIN, CAP_SYS_PTRACE, NET_BIND_SERVICE]",
        ),
        (CheckId::HostPid, "spec.hostPID = true"),
        (CheckId::HostNetwork, "spec.hostNetwork = true"),
        (CheckId::HostIpc, "spec.hostIPC = true"),
        (
            CheckId::HostPath,
            "spec.volumes[0].hostPath.path = / (volume `root`)",
        ),
        (CheckId::RunAsRoot, "spec.securityContext.runAsUser = 0"),
        (
            CheckId::ProcMount,
            "spec.containers[0].securityContext.procMount = Unmasked",
        ),
        (
            CheckId::SeccompUnconfined,
            "spec.containers[0].securityContext.privileged = true",
        ),
        (
            CheckId::ApparmorUnconfined,
            "spec.containers[0].securityContext.privileged = true",
        ),
        (
            CheckId::ImagePinned,
            "spec.containers[0].image = quay.io/ops/agent:latest",
        ),
    ];
    for (check, ev) in expect {
        assert_eq!(outcome(&v, check), Outcome::Failed, "{check}");
        assert!(
            evidence(&v, check).iter().any(|e| e == ev),
            "{check}: {:?}",
            evidence(&v, check)
        );
    }
    let msg = &v.get(CheckId::DangerousCapabilities).unwrap().message;
    assert_eq!(
        msg,
        "dangerous capabilities added: SYS_ADMIN, CAP_SYS_PTRACE"
    );
    assert_eq!(v.decision, Decision::Abort);
}

#[test]
fn privilege_escalation() {
    fails(
        CheckId::PrivilegeEscalation,
        "allowPrivilegeEscalation = true",
        |p| {
            sc(p).allow_privilege_escalation = Some(true);
        },
    );
    fails(
        CheckId::PrivilegeEscalation,
        "allowPrivilegeEscalation = unset",
        |p| {
            sc(p).allow_privilege_escalation = None;
        },
    );
    // CAP_SYS_ADMIN always allows escalation, whatever the field says.
    fails(CheckId::PrivilegeEscalation, "includes SYS_ADMIN", |p| {
        sc(p).capabilities = Some(Capabilities {
            add: Some(vec!["SYS_ADMIN".into()]),
            drop: None,
        });
    });
}

#[test]
fn dangerous_capabilities_are_the_policys_list() {
    fails(
        CheckId::DangerousCapabilities,
        "capabilities.add = [net_raw]",
        |p| {
            sc(p).capabilities = Some(Capabilities {
                add: Some(vec!["net_raw".into()]),
                drop: None,
            });
        },
    );
    fails(
        CheckId::DangerousCapabilities,
        "capabilities.add = [ALL]",
        |p| {
            sc(p).capabilities = Some(Capabilities {
                add: Some(vec!["ALL".into()]),
                drop: None,
            });
        },
    );
    let p = hardened_with(|p| {
        sc(p).capabilities = Some(Capabilities {
            add: Some(vec!["CHOWN".into()]),
            drop: None,
        });
    });
    assert_eq!(
        outcome(&eval_app(&p), CheckId::DangerousCapabilities),
        Outcome::Passed
    );
    let strict = Policy::from_yaml_str("dangerous-capabilities: [chown]\n", "t").unwrap();
    assert_eq!(
        outcome(
            &evaluate(&p, "app", &strict),
            CheckId::DangerousCapabilities
        ),
        Outcome::Failed
    );
}

#[test]
fn host_namespaces_and_host_path() {
    fails(CheckId::HostPid, "spec.hostPID = true", |p| {
        p.spec.as_mut().unwrap().host_pid = Some(true)
    });
    fails(CheckId::HostNetwork, "spec.hostNetwork = true", |p| {
        p.spec.as_mut().unwrap().host_network = Some(true);
    });
    fails(CheckId::HostIpc, "spec.hostIPC = true", |p| {
        p.spec.as_mut().unwrap().host_ipc = Some(true)
    });
    fails(
        CheckId::HostPath,
        "spec.volumes[1].hostPath.path = /var/run/docker.sock",
        |p| {
            p.spec
                .as_mut()
                .unwrap()
                .volumes
                .as_mut()
                .unwrap()
                .push(Volume {
                    name: "sock".into(),
                    host_path: Some(HostPathVolumeSource {
                        path: "/var/run/docker.sock".into(),
                        type_: None,
                    }),
                    ..Volume::default()
                });
        },
    );
    // Explicit false is not a failure.
    let p = hardened_with(|p| p.spec.as_mut().unwrap().host_pid = Some(false));
    assert_eq!(outcome(&eval_app(&p), CheckId::HostPid), Outcome::Passed);
}

#[test]
fn run_as_root_follows_container_over_pod() {
    // Container runAsUser 0 overrides the pod's 1000.
    fails(
        CheckId::RunAsRoot,
        "spec.containers[0].securityContext.runAsUser = 0",
        |p| {
            sc(p).run_as_user = Some(0);
        },
    );
    // Pod says 0, container says 1000: the container wins.
    let p = hardened_with(|p| {
        psc(p).run_as_user = Some(0);
        psc(p).run_as_non_root = None;
        sc(p).run_as_user = Some(1000);
    });
    assert_eq!(outcome(&eval_app(&p), CheckId::RunAsRoot), Outcome::Passed);
    // Nothing set: the image decides, which may be root.
    fails(
        CheckId::RunAsRoot,
        "runAsUser = unset (the image's USER decides)",
        |p| {
            psc(p).run_as_user = None;
            psc(p).run_as_non_root = None;
        },
    );
    // Only runAsNonRoot (container level overriding a pod-level false): the kubelet refuses root.
    let p = hardened_with(|p| {
        psc(p).run_as_user = None;
        psc(p).run_as_non_root = Some(false);
        sc(p).run_as_non_root = Some(true);
    });
    assert_eq!(outcome(&eval_app(&p), CheckId::RunAsRoot), Outcome::Passed);
    // Container-level runAsNonRoot false overrides the pod's true.
    fails(
        CheckId::RunAsRoot,
        "spec.containers[0].securityContext.runAsNonRoot = false",
        |p| {
            psc(p).run_as_user = None;
            sc(p).run_as_non_root = Some(false);
        },
    );
}

#[test]
fn proc_mount() {
    fails(CheckId::ProcMount, "procMount = Unmasked", |p| {
        sc(p).proc_mount = Some("Unmasked".into())
    });
    let p = hardened_with(|p| sc(p).proc_mount = Some("Default".into()));
    assert_eq!(outcome(&eval_app(&p), CheckId::ProcMount), Outcome::Passed);
}

fn seccomp(t: &str) -> Option<SeccompProfile> {
    Some(SeccompProfile {
        type_: t.into(),
        localhost_profile: None,
    })
}

fn apparmor(t: &str) -> Option<AppArmorProfile> {
    Some(AppArmorProfile {
        type_: t.into(),
        localhost_profile: None,
    })
}

#[test]
fn seccomp_container_over_pod_and_annotations() {
    fails(
        CheckId::SeccompUnconfined,
        "spec.containers[0].securityContext.seccompProfile.type = Unconfined",
        |p| {
            sc(p).seccomp_profile = seccomp("Unconfined");
        },
    );
    // Container RuntimeDefault overrides a pod-level Unconfined.
    let p = hardened_with(|p| {
        psc(p).seccomp_profile = seccomp("Unconfined");
        sc(p).seccomp_profile = seccomp("RuntimeDefault");
    });
    assert_eq!(
        outcome(&eval_app(&p), CheckId::SeccompUnconfined),
        Outcome::Passed
    );
    fails(CheckId::SeccompUnconfined, "seccompProfile = unset", |p| {
        psc(p).seccomp_profile = None
    });
    fails(
        CheckId::SeccompUnconfined,
        "metadata.annotations[container.seccomp.security.alpha.kubernetes.io/app] = unconfined",
        |p| {
            psc(p).seccomp_profile = None;
            p.metadata.annotations = Some(
                [(
                    "container.seccomp.security.alpha.kubernetes.io/app".to_owned(),
                    "unconfined".to_owned(),
                )]
                .into(),
            );
        },
    );
    fails(CheckId::SeccompUnconfined, "privileged = true", |p| {
        sc(p).privileged = Some(true)
    });
}

#[test]
fn apparmor_container_field_annotation_pod_field() {
    fails(
        CheckId::ApparmorUnconfined,
        "spec.securityContext.appArmorProfile.type = Unconfined",
        |p| {
            psc(p).app_armor_profile = apparmor("Unconfined");
        },
    );
    fails(
        CheckId::ApparmorUnconfined,
        "spec.containers[0].securityContext.appArmorProfile.type = Unconfined",
        |p| {
            sc(p).app_armor_profile = apparmor("Unconfined");
        },
    );
    fails(
        CheckId::ApparmorUnconfined,
        "metadata.annotations[container.apparmor.security.beta.kubernetes.io/app] = unconfined",
        |p| {
            p.metadata.annotations = Some(
                [(
                    "container.apparmor.security.beta.kubernetes.io/app".to_owned(),
                    "unconfined".to_owned(),
                )]
                .into(),
            );
        },
    );
    // The container's field wins over the pod's.
    let p = hardened_with(|p| {
        psc(p).app_armor_profile = apparmor("Unconfined");
        sc(p).app_armor_profile = apparmor("RuntimeDefault");
    });
    assert_eq!(
        outcome(&eval_app(&p), CheckId::ApparmorUnconfined),
        Outcome::Passed
    );
    // The container's annotation wins over the pod's field.
    let p = hardened_with(|p| {
        psc(p).app_armor_profile = apparmor("Unconfined");
        p.metadata.annotations = Some(
            [(
                "container.apparmor.security.beta.kubernetes.io/app".to_owned(),
                "runtime/default".to_owned(),
            )]
            .into(),
        );
    });
    assert_eq!(
        outcome(&eval_app(&p), CheckId::ApparmorUnconfined),
        Outcome::Passed
    );
    // Another container's annotation does not apply to this one.
    let p = hardened_with(|p| {
        p.metadata.annotations = Some(
            [(
                "container.apparmor.security.beta.kubernetes.io/cache".to_owned(),
                "unconfined".to_owned(),
            )]
            .into(),
        );
    });
    assert_eq!(
        outcome(&eval_app(&p), CheckId::ApparmorUnconfined),
        Outcome::Passed
    );
}

#[test]
fn image_source_allowlist_globs() {
    let p = Policy::from_yaml_str("allow:\n  images: [\"registry.example.com/shop/*\"]\n", "t")
        .unwrap();
    let v = evaluate(&pod("hardened"), "app", &p);
    assert_eq!(outcome(&v, CheckId::ImageSource), Outcome::Passed);
    assert!(
        evidence(&v, CheckId::ImageSource)
            .contains(&"policy.allow.images = registry.example.com/shop/*".to_owned())
    );
    // `*` stays in one path segment; docker.io/library/redis is not under shop/.
    let v = evaluate(&pod("hardened"), "cache", &p);
    assert_eq!(outcome(&v, CheckId::ImageSource), Outcome::Failed);
    assert_eq!(
        evidence(&v, CheckId::ImageSource),
        ["spec.containers[1].image = redis:7 (docker.io/library/redis)"]
    );
    let nested = hardened_with(|p| {
        p.spec.as_mut().unwrap().containers[0].image =
            Some("registry.example.com/shop/a/b:1".into());
    });
    assert_eq!(
        outcome(&evaluate(&nested, "app", &p), CheckId::ImageSource),
        Outcome::Failed
    );
    let deep =
        Policy::from_yaml_str("allow:\n  images: [\"registry.example.com/**\"]\n", "t").unwrap();
    assert_eq!(
        outcome(&evaluate(&nested, "app", &deep), CheckId::ImageSource),
        Outcome::Passed
    );
}

#[test]
fn image_pinned() {
    fails(CheckId::ImagePinned, "image = nginx", |p| {
        p.spec.as_mut().unwrap().containers[0].image = Some("nginx".into());
    });
    fails(CheckId::ImagePinned, "image = nginx:latest", |p| {
        p.spec.as_mut().unwrap().containers[0].image = Some("nginx:latest".into());
    });
    fails(CheckId::ImagePinned, "image = nginx:1.27", |p| {
        p.spec.as_mut().unwrap().containers[0].image = Some("nginx:1.27".into());
    });
    let d = format!("nginx:latest@sha256:{}", "f".repeat(64));
    let p = hardened_with(|p| p.spec.as_mut().unwrap().containers[0].image = Some(d));
    assert_eq!(
        outcome(&eval_app(&p), CheckId::ImagePinned),
        Outcome::Passed,
        "a digest pins even :latest"
    );
}
