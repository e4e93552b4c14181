//! A pod's container → an OCI runtime `config.json`, as containerd's CRI plugin builds it for
//! the kubelet: the image's defaults under the container's `command`/`args`/`env`/`workingDir`,
//! and the pod's and container's securityContext mapped to the process (user, groups,
//! capabilities, `noNewPrivileges`) and the root (read-only).
//!
//! Pure functions over JSON, so the mapping is unit-tested without root.

use k8s_openapi::api::core::v1::{Container, Pod, SecurityContext};
use serde_json::{Value, json};

use super::image::Image;

/// The capabilities a container gets when its securityContext says nothing: containerd's (and
/// Docker's) default set.
pub(crate) const DEFAULT_CAPS: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every capability the kernel and runc know (`add: [ALL]`).
const ALL_CAPS: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// What a container's process is, once the pod, container and image are combined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Process {
    /// argv.
    pub(crate) args: Vec<String>,
    /// `NAME=value` entries.
    pub(crate) env: Vec<String>,
    /// Working directory.
    pub(crate) cwd: String,
    /// UID.
    pub(crate) uid: u32,
    /// Primary GID.
    pub(crate) gid: u32,
    /// Supplementary GIDs.
    pub(crate) groups: Vec<u32>,
    /// Bounding, permitted and effective capabilities (`CAP_…`, sorted).
    pub(crate) caps: Vec<String>,
    /// `noNewPrivileges` (`allowPrivilegeEscalation: false`).
    pub(crate) no_new_privileges: bool,
    /// `readOnlyRootFilesystem`.
    pub(crate) readonly_root: bool,
}

/// A container the node cannot create as specified: the kubelet's
/// `CreateContainerConfigError`, with its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConfigError(pub(crate) String);

fn normalize_cap(c: &str) -> String {
    let up = c.to_ascii_uppercase();
    if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    }
}

/// The capability set containerd computes from `capabilities.add/drop` (add ALL, then drop
/// ALL, then the named adds, then the named drops).
fn capabilities(sc: Option<&SecurityContext>) -> Vec<String> {
    let mut caps: Vec<String> = DEFAULT_CAPS.iter().map(|c| (*c).to_owned()).collect();
    if let Some(c) = sc.and_then(|s| s.capabilities.as_ref()) {
        let add = c.add.clone().unwrap_or_default();
        let drop = c.drop.clone().unwrap_or_default();
        let is_all = |s: &String| s.eq_ignore_ascii_case("ALL");
        if add.iter().any(is_all) {
            caps = ALL_CAPS.iter().map(|c| (*c).to_owned()).collect();
        }
        if drop.iter().any(is_all) {
            caps.clear();
        }
        for a in add.iter().filter(|a| !is_all(a)) {
            let a = normalize_cap(a);
            if !caps.contains(&a) {
                caps.push(a);
            }
        }
        for d in drop.iter().filter(|d| !is_all(d)) {
            let d = normalize_cap(d);
            caps.retain(|c| *c != d);
        }
    }
    caps.sort();
    caps.dedup();
    caps
}

/// Combines pod, container and image into the process to run.
pub(crate) fn process(pod: &Pod, c: &Container, image: &Image) -> Result<Process, ConfigError> {
    let spec = pod.spec.clone().unwrap_or_default();
    let psc = spec.security_context.unwrap_or_default();
    let sc = c.security_context.as_ref();
    if sc.and_then(|s| s.privileged) == Some(true) {
        return Err(ConfigError(
            "privileged containers are not supported by the keyhole-testkit node".into(),
        ));
    }
    // command replaces the image's ENTRYPOINT (and drops its CMD); args replace CMD.
    let (entry, cmd) = match (&c.command, &c.args) {
        (Some(command), args) => (command.clone(), args.clone().unwrap_or_default()),
        (None, Some(args)) => (image.entrypoint.clone(), args.clone()),
        (None, None) => (image.entrypoint.clone(), image.cmd.clone()),
    };
    let args: Vec<String> = entry.into_iter().chain(cmd).collect();
    if args.is_empty() {
        return Err(ConfigError(format!(
            "no command specified for container {:?} and image {:?} has no entrypoint or cmd",
            c.name, c.image
        )));
    }
    let uid = sc
        .and_then(|s| s.run_as_user)
        .or(psc.run_as_user)
        .map(|u| u as u32)
        .or(image.user.map(|(u, _)| u))
        .unwrap_or(0);
    let gid = sc
        .and_then(|s| s.run_as_group)
        .or(psc.run_as_group)
        .map(|g| g as u32)
        .or(image.user.map(|(_, g)| g))
        .unwrap_or(0);
    let non_root = sc.and_then(|s| s.run_as_non_root).or(psc.run_as_non_root);
    if non_root == Some(true) && uid == 0 {
        return Err(ConfigError(
            "container has runAsNonRoot and image will run as root".into(),
        ));
    }
    let mut groups: Vec<u32> = psc
        .supplemental_groups
        .unwrap_or_default()
        .into_iter()
        .map(|g| g as u32)
        .chain(psc.fs_group.map(|g| g as u32))
        .collect();
    groups.sort_unstable();
    groups.dedup();
    let mut env: Vec<String> = vec![
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned(),
        format!(
            "HOSTNAME={}",
            pod.metadata.name.as_deref().unwrap_or_default()
        ),
    ];
    let mut set = |name: &str, value: String| {
        env.retain(|e| e.split_once('=').is_none_or(|(k, _)| k != name));
        env.push(format!("{name}={value}"));
    };
    for (k, v) in &image.env {
        set(k, v.clone());
    }
    for e in c.env.iter().flatten() {
        if e.value_from.is_some() {
            return Err(ConfigError(format!(
                "env {:?}: valueFrom is not supported by the keyhole-testkit node",
                e.name
            )));
        }
        set(&e.name, e.value.clone().unwrap_or_default());
    }
    Ok(Process {
        args,
        env,
        cwd: c
            .working_dir
            .clone()
            .or_else(|| image.working_dir.clone())
            .unwrap_or_else(|| "/".to_owned()),
        uid,
        gid,
        groups,
        caps: capabilities(sc),
        no_new_privileges: sc.and_then(|s| s.allow_privilege_escalation) == Some(false),
        readonly_root: sc.and_then(|s| s.read_only_root_filesystem) == Some(true),
    })
}

/// A namespace the container joins instead of creating (`/proc/PID/ns/TYPE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Join {
    /// `pid`, `network`, `ipc`, `uts`.
    pub(crate) kind: &'static str,
    /// The host PID whose namespace is joined.
    pub(crate) pid: u32,
}

/// The OCI config: `runc spec`'s template with the TOOLS.md edits (no rlimits, no
/// `linux.resources`, no terminal) and the process, root and namespaces filled in.
pub(crate) fn config(
    template: &Value,
    p: &Process,
    rootfs: &std::path::Path,
    hostname: &str,
    joins: &[Join],
) -> Value {
    let mut config = template.clone();
    config["process"]["terminal"] = json!(false);
    config["process"]["rlimits"] = json!([]);
    config["process"]["args"] = json!(p.args);
    config["process"]["env"] = json!(p.env);
    config["process"]["cwd"] = json!(p.cwd);
    let mut user = json!({"uid": p.uid, "gid": p.gid});
    if !p.groups.is_empty() {
        user["additionalGids"] = json!(p.groups);
    }
    config["process"]["user"] = user;
    // Inheritable and ambient stay empty, as containerd leaves them.
    config["process"]["capabilities"] = json!({
        "bounding": p.caps, "effective": p.caps, "permitted": p.caps,
    });
    config["process"]["noNewPrivileges"] = json!(p.no_new_privileges);
    config["root"] = json!({"path": rootfs, "readonly": p.readonly_root});
    config["hostname"] = json!(hostname);
    if let Some(linux) = config["linux"].as_object_mut() {
        linux.remove("resources");
        if let Some(list) = linux.get_mut("namespaces").and_then(Value::as_array_mut) {
            for ns in list.iter_mut() {
                if let Some(j) = joins.iter().find(|j| ns["type"] == j.kind) {
                    ns["path"] = json!(format!("/proc/{}/ns/{}", j.pid, proc_ns(j.kind)));
                }
            }
        }
    }
    config
}

/// The `/proc/PID/ns/` entry of an OCI namespace type.
fn proc_ns(kind: &str) -> &str {
    match kind {
        "network" => "net",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(v: Value) -> (Pod, Container) {
        let pod: Pod = serde_json::from_value(v).unwrap();
        let c = pod.spec.as_ref().unwrap().containers[0].clone();
        (pod, c)
    }

    fn image() -> Image {
        Image::new("/nonexistent")
            .entrypoint(["/bin/app"])
            .cmd(["--serve"])
            .env("MODE", "image")
    }

    #[test]
    fn defaults_follow_the_image_and_containerd() {
        let (p, c) = pod(json!({"metadata": {"name": "web-0"},
            "spec": {"containers": [{"name": "app", "image": "x"}]}}));
        let got = process(&p, &c, &image()).unwrap();
        assert_eq!(got.args, ["/bin/app", "--serve"]);
        assert_eq!((got.uid, got.gid), (0, 0));
        assert_eq!(got.caps.len(), 14);
        assert!(got.caps.contains(&"CAP_DAC_OVERRIDE".to_owned()));
        assert!(!got.no_new_privileges);
        assert!(!got.readonly_root);
        assert!(got.env.contains(&"HOSTNAME=web-0".to_owned()));
        assert!(got.env.contains(&"MODE=image".to_owned()));
        assert_eq!(got.cwd, "/");
    }

    #[test]
    fn security_context_maps_to_the_process() {
        let (p, c) = pod(json!({"metadata": {"name": "web-0"},
            "spec": {
                "securityContext": {"runAsUser": 1, "runAsGroup": 2, "supplementalGroups": [7, 5], "fsGroup": 9},
                "containers": [{"name": "app", "image": "x",
                    "command": ["/bin/sh"], "args": ["-c", "true"],
                    "env": [{"name": "MODE", "value": "pod"}],
                    "workingDir": "/work",
                    "securityContext": {"runAsUser": 10001,
                        "capabilities": {"drop": ["ALL"], "add": ["net_bind_service", "CAP_CHOWN"]},
                        "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true}}]}}));
        let got = process(&p, &c, &image()).unwrap();
        assert_eq!(got.args, ["/bin/sh", "-c", "true"]);
        assert_eq!((got.uid, got.gid), (10001, 2));
        assert_eq!(got.groups, [5, 7, 9]);
        assert_eq!(got.caps, ["CAP_CHOWN", "CAP_NET_BIND_SERVICE"]);
        assert!(got.no_new_privileges);
        assert!(got.readonly_root);
        assert!(got.env.contains(&"MODE=pod".to_owned()));
        assert!(!got.env.contains(&"MODE=image".to_owned()));
        assert_eq!(got.cwd, "/work");

        let template = json!({"process": {"rlimits": [{"type": "RLIMIT_NOFILE"}], "terminal": true},
            "linux": {"resources": {}, "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "mount"}]}});
        let cfg = config(
            &template,
            &got,
            std::path::Path::new("/r"),
            "web-0",
            &[Join {
                kind: "pid",
                pid: 42,
            }],
        );
        assert_eq!(cfg["process"]["rlimits"], json!([]));
        assert_eq!(cfg["process"]["terminal"], json!(false));
        assert!(cfg["linux"].get("resources").is_none());
        assert_eq!(
            cfg["linux"]["namespaces"],
            json!([{"type": "pid", "path": "/proc/42/ns/pid"}, {"type": "network"}, {"type": "mount"}])
        );
        assert_eq!(
            cfg["process"]["user"],
            json!({"uid": 10001, "gid": 2, "additionalGids": [5, 7, 9]})
        );
        assert_eq!(
            cfg["process"]["capabilities"]["effective"],
            json!(["CAP_CHOWN", "CAP_NET_BIND_SERVICE"])
        );
        assert_eq!(cfg["process"]["noNewPrivileges"], json!(true));
        assert_eq!(cfg["root"], json!({"path": "/r", "readonly": true}));
    }

    #[test]
    fn args_alone_keep_the_entrypoint_and_all_then_drop() {
        let (p, c) = pod(json!({"metadata": {"name": "p"},
            "spec": {"containers": [{"name": "app", "image": "x", "args": ["--once"],
                "securityContext": {"capabilities": {"add": ["ALL"], "drop": ["SYS_ADMIN"]}}}]}}));
        let got = process(&p, &c, &image()).unwrap();
        assert_eq!(got.args, ["/bin/app", "--once"]);
        assert_eq!(got.caps.len(), ALL_CAPS.len() - 1);
        assert!(!got.caps.contains(&"CAP_SYS_ADMIN".to_owned()));
    }

    #[test]
    fn refusals_carry_the_kubelet_message() {
        let (p, c) = pod(json!({"metadata": {"name": "p"},
            "spec": {"securityContext": {"runAsNonRoot": true},
                "containers": [{"name": "app", "image": "x"}]}}));
        let e = process(&p, &c, &image()).unwrap_err();
        assert!(e.0.contains("runAsNonRoot"), "{e:?}");
        let (p, c) = pod(json!({"metadata": {"name": "p"},
            "spec": {"containers": [{"name": "app", "image": "x"}]}}));
        let e = process(&p, &c, &Image::new("/r")).unwrap_err();
        assert!(e.0.contains("no command"), "{e:?}");
    }
}
