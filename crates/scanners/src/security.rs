//! The hardened security context of every container Keyhole adds to a pod.

use k8s_openapi::api::core::v1::{
    AppArmorProfile, Capabilities, PodSecurityContext, SeccompProfile, SecurityContext,
};

/// The profile type that selects the container runtime's default seccomp or AppArmor profile.
const RUNTIME_DEFAULT: &str = "RuntimeDefault";

/// The security context of the debug and sidecar containers, for a target running as `uid`
/// (and `gid`, when known).
///
/// Reading `/proc/<pid>/root` of the target needs ptrace read access: the kernel grants it to
/// a process with the target's uid *and* gid and no capabilities the target lacks, or to one
/// holding `CAP_SYS_PTRACE`. Keyhole takes the first way, so the scanner runs **as the target's
/// uid** with every capability dropped, instead of as some other non-root user with
/// `CAP_SYS_PTRACE`. When `gid` is `None` the runtime picks the group (the image's, or 0), which
/// must then match the target's for the read to work.
///
/// `runAsNonRoot` is `uid != 0`: a root target can only be scanned as root (with no capabilities,
/// which also means only a target that has no capabilities either).
pub fn hardened_security_context(uid: u32, gid: Option<u32>) -> SecurityContext {
    SecurityContext {
        run_as_user: Some(i64::from(uid)),
        run_as_group: gid.map(i64::from),
        run_as_non_root: Some(uid != 0),
        allow_privilege_escalation: Some(false),
        privileged: Some(false),
        read_only_root_filesystem: Some(true),
        capabilities: Some(Capabilities {
            add: None,
            drop: Some(vec!["ALL".to_string()]),
        }),
        seccomp_profile: Some(SeccompProfile {
            type_: RUNTIME_DEFAULT.to_string(),
            localhost_profile: None,
        }),
        // The `appArmorProfile` field (GA in Kubernetes 1.30) replaces the old
        // `container.apparmor.security.beta.kubernetes.io/*` annotations.
        app_armor_profile: Some(AppArmorProfile {
            type_: RUNTIME_DEFAULT.to_string(),
            localhost_profile: None,
        }),
        ..SecurityContext::default()
    }
}

/// The pod-level security context of a pod Keyhole creates: the same identity as its containers
/// and the runtime's default seccomp profile, so the Pod Security `restricted` level holds at the
/// pod level too.
pub(crate) fn pod_security_context(uid: u32, gid: Option<u32>) -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: (uid != 0).then_some(true),
        run_as_user: Some(i64::from(uid)),
        run_as_group: gid.map(i64::from),
        seccomp_profile: Some(SeccompProfile {
            type_: RUNTIME_DEFAULT.to_string(),
            localhost_profile: None,
        }),
        ..PodSecurityContext::default()
    }
}
