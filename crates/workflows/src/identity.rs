//! The target process's identity as the distroless scanner must copy it: its UID and GID, and
//! — for a target running as root — its capability set, read from the pod spec when the spec
//! settles it, else from `/proc/1/status` (as the UID probe reads it).
//!
//! Why copy and never exceed: reading `/proc/1/root` needs ptrace-read access, which the kernel
//! grants to a reader with the target's UIDs whose *permitted* capabilities contain the
//! target's (`cap_ptrace_access_check`). So a non-root target is read with no capability at all,
//! and a root target with exactly its own set: less fails, more is privilege the scan does not
//! need.

use k8s_openapi::api::core::v1::SecurityContext;

/// Linux capability names by bit number (`include/uapi/linux/capability.h`), as Kubernetes
/// spells them in `securityContext.capabilities` (no `CAP_` prefix).
const CAPABILITIES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// What `/proc/<pid>/status` says about a process's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcIdentity {
    /// The UID (real = effective = saved; a process whose UIDs differ is refused).
    pub uid: u32,
    /// The GID (likewise).
    pub gid: u32,
    /// `CapEff`: the effective capability set, as a bit mask.
    pub cap_eff: u64,
}

/// Parses the `Uid:`, `Gid:` and `CapEff:` lines of a `/proc/<pid>/status` text. A process whose
/// real, effective and saved IDs differ has no single identity to copy (ptrace-read access wants
/// all three equal to the reader's): refused with the reason.
pub fn parse_status(text: &str) -> Result<ProcIdentity, String> {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
            .ok_or_else(|| format!("no {name}: line in /proc/1/status"))
    };
    let ids = |name: &str| -> Result<u32, String> {
        let line = field(name)?;
        let v: Vec<u32> = line
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map_err(|e| format!("{name}: {line:?}: {e}"))?;
        match v.as_slice() {
            [real, eff, saved, ..] if real == eff && eff == saved => Ok(*real),
            [_, _, _, ..] => Err(format!(
                "the target's {name}s differ (real, effective, saved, fs: {line}): it has no \
                 single identity a scanner could copy"
            )),
            _ => Err(format!("{name}: {line:?} is not four IDs")),
        }
    };
    let (uid, gid) = (ids("Uid")?, ids("Gid")?);
    let cap = field("CapEff")?;
    let cap_eff = u64::from_str_radix(cap, 16).map_err(|e| format!("CapEff: {cap:?}: {e}"))?;
    Ok(ProcIdentity { uid, gid, cap_eff })
}

/// The Kubernetes names of the capabilities in `mask`, in bit order. A bit this build does not
/// know (a newer kernel's capability) is an error: granting "the target's set" without it would
/// make the scan fail on permissions for an unclear reason, and guessing a name is worse.
pub fn capability_names(mask: u64) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    for bit in 0..64u32 {
        if mask & (1u64 << bit) == 0 {
            continue;
        }
        let name = CAPABILITIES
            .get(bit as usize)
            .ok_or_else(|| format!("the target holds capability bit {bit}, unknown to keyhole"))?;
        names.push((*name).to_string());
    }
    Ok(names)
}

/// The capability set a container's `securityContext` gives it **whatever the runtime's default
/// set**: only when it drops `ALL` and adds named capabilities (then the set is exactly those
/// adds, on containerd and CRI-O alike). `None` when the set depends on the runtime's defaults,
/// which differ between runtimes and versions: then it is read from the process instead
/// (computing it from one runtime's defaults could grant the scanner more than the target has).
pub fn spec_capabilities(sc: Option<&SecurityContext>) -> Option<Vec<String>> {
    let caps = sc?.capabilities.as_ref()?;
    let is_all = |s: &String| s.eq_ignore_ascii_case("ALL");
    if !caps.drop.iter().flatten().any(is_all) || caps.add.iter().flatten().any(is_all) {
        return None;
    }
    let mut names: Vec<String> = Vec::new();
    for a in caps.add.iter().flatten() {
        let up = a.to_ascii_uppercase();
        let n = up.strip_prefix("CAP_").unwrap_or(&up).to_string();
        // A named drop after the adds removes it again (drops are applied last).
        let dropped = caps.drop.iter().flatten().any(|d| {
            let d = d.to_ascii_uppercase();
            d.strip_prefix("CAP_").unwrap_or(&d) == n
        });
        if !dropped && !names.contains(&n) {
            names.push(n);
        }
    }
    // Bit order, as `capability_names` gives them, so both sources compare equal.
    names.sort_by_key(|n| {
        CAPABILITIES
            .iter()
            .position(|c| c == n)
            .unwrap_or(usize::MAX)
    });
    Some(names)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Capabilities;

    use super::*;

    /// A root process with containerd's default set (`grep Cap /proc/PID/status` of a
    /// `docker run busybox` process: 00000000a80425fb).
    const ROOT_STATUS: &str = "Name:\tsleep\nUmask:\t0022\nState:\tS (sleeping)\n\
        Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\t0 \nCapInh:\t0000000000000000\n\
        CapPrm:\t00000000a80425fb\nCapEff:\t00000000a80425fb\nCapBnd:\t00000000a80425fb\n";

    #[test]
    fn a_root_process_with_containerds_default_set() {
        let id = parse_status(ROOT_STATUS).unwrap();
        assert_eq!((id.uid, id.gid), (0, 0));
        let names = capability_names(id.cap_eff).unwrap();
        // containerd's default set, written out by hand (oci/spec.go defaultUnixCaps).
        assert_eq!(
            names,
            [
                "CHOWN",
                "DAC_OVERRIDE",
                "FOWNER",
                "FSETID",
                "KILL",
                "SETGID",
                "SETUID",
                "SETPCAP",
                "NET_BIND_SERVICE",
                "NET_RAW",
                "SYS_CHROOT",
                "MKNOD",
                "AUDIT_WRITE",
                "SETFCAP",
            ]
        );
    }

    #[test]
    fn mixed_ids_and_unknown_bits_are_refused() {
        let mixed = ROOT_STATUS.replace("Uid:\t0\t0\t0\t0", "Uid:\t1000\t0\t0\t0");
        assert!(parse_status(&mixed).unwrap_err().contains("differ"));
        assert!(
            parse_status("Uid:\t1\t1\t1\t1\n")
                .unwrap_err()
                .contains("Gid")
        );
        assert!(capability_names(1 << 41).unwrap_err().contains("bit 41"));
        assert_eq!(capability_names(0).unwrap(), Vec::<String>::new());
        let id = parse_status(
            "Uid:\t10001\t10001\t10001\t10001\nGid:\t7\t7\t7\t7\nCapEff:\t0000000000000000\n",
        )
        .unwrap();
        assert_eq!((id.uid, id.gid, id.cap_eff), (10001, 7, 0));
    }

    fn sc(add: &[&str], drop: &[&str]) -> SecurityContext {
        let v = |s: &[&str]| Some(s.iter().map(|x| (*x).to_string()).collect());
        SecurityContext {
            capabilities: Some(Capabilities {
                add: v(add),
                drop: v(drop),
            }),
            ..SecurityContext::default()
        }
    }

    #[test]
    fn the_spec_settles_the_set_only_when_it_drops_all() {
        assert_eq!(
            spec_capabilities(Some(&sc(
                &["cap_net_raw", "CHOWN", "KILL"],
                &["ALL", "kill"]
            ))),
            Some(vec!["CHOWN".to_string(), "NET_RAW".to_string()])
        );
        assert_eq!(spec_capabilities(Some(&sc(&[], &["ALL"]))), Some(vec![]));
        // On top of the runtime's defaults, or ALL: runtime-dependent.
        assert_eq!(
            spec_capabilities(Some(&sc(&["NET_ADMIN"], &["KILL"]))),
            None
        );
        assert_eq!(spec_capabilities(Some(&sc(&["ALL"], &["ALL"]))), None);
        assert_eq!(spec_capabilities(None), None);
        assert_eq!(spec_capabilities(Some(&SecurityContext::default())), None);
    }
}
