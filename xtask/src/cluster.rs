//! A real Kubernetes control plane on loopback, built from Kubernetes' own Go modules:
//! `cargo xtask cluster up [--k8s 1.37|1.34] | down | env`, and `cargo xtask realapi`, which
//! runs the real-control-plane tests against each release in turn.
//!
//! What runs: `etcd` (mutual TLS), `kube-apiserver` (`--authorization-mode=Node,RBAC`, Pod
//! Security admission on, TokenRequest with a project-made ServiceAccount signing key) and
//! `kube-controller-manager` (garbage collector, namespace and ServiceAccount controllers, each
//! with its own ServiceAccount credentials). Every certificate and key is made here with rcgen;
//! nothing is downloaded but Go modules. No kubelet, no scheduler, no CNI: the test node (below)
//! runs pods bound to it, or that name no node, as runc containers.
//!
//! The binaries are built once per release by `go build` from the wrapper modules in
//! `tools/kube/<release>` and `tools/etcd` and cached in the user's cache
//! (`${XDG_CACHE_HOME:-$HOME/.cache}/keyhole/kube/<version>/<hash of go.mod+go.sum>/`), with the
//! Go module and build caches beside them, so any clone on the machine reuses them. A cold
//! build takes tens of minutes on two cores; later runs start in seconds.
//!
//! State lives in `target/cluster/` (certificates, etcd data, logs, `pids`, the admin
//! `kubeconfig`); `down` stops exactly the processes listed in `pids` (after checking each pid
//! still runs the binary that was started) and removes the directory.
//!
//! # The test node
//! When `up` runs as root, the node that runs pods as `runc` containers (crates/testkit, its
//! `node` example) is started after the controller manager is ready and registers itself: a
//! `Node` object `keyhole-node` with one `InternalIP` (127.0.0.1), its kubelet port in
//! `status.daemonEndpoints`, `Ready`, and a renewed Lease. Its identities, from `pki/`:
//! - `node-client` (`system:node:keyhole-node` in `system:nodes`): what it reads and writes
//!   pods, their status and its Node with, so the Node authorizer and NodeRestriction judge it;
//! - `scheduler-client` (`system:kube-scheduler`): binds pods that name no node (no scheduler
//!   runs; `pods/binding` is not a node's right);
//! - `kubelet-serving` (from `node-ca`, the `--kubelet-certificate-authority`): its serving
//!   certificate; it accepts only the API server's `kubelet-client` certificate.
//!
//! Exec reaches it as SPDY/3.1 (the API server's WebSocket-to-SPDY stream translator, on by
//! default since 1.30) and logs as plain HTTPS. `down` stops it first (SIGTERM: it kills and
//! deletes its containers), then removes whatever a killed node left (`runc` containers with
//! its id prefix, overlay mounts).
//!
//! Not root (the GitHub runner): the control plane runs as the user, and the node binary and
//! the static agent are built as the user too; then the node alone runs under `sudo -n` (said
//! in the output), given the built agent (`--agent`), and makes its image trees in
//! `target/rootfs` as root (they hold files of other owners, as the root-tier tests' do).
//! `down` signals it, removes its leftovers and its root-owned work directory through
//! `sudo -n`; `realapi` runs the test binary under `sudo -n` (the node tests ask `runc` about
//! containers, which only root can). Without password-less
//! sudo the control plane comes up without a node, and the tests that need one fail saying so.
//! Its images are the testkit's trees (busybox, the
//! distroless `pause` tree, the static agent), built into `target/rootfs` and `target/static`
//! on first use (the static agent takes minutes once).

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use sha2::{Digest as _, Sha256};

use crate::{cargo, root, run, show};

/// A Kubernetes release the control plane can run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Release {
    /// What `--k8s` takes: `1.37`.
    pub(crate) short: &'static str,
    /// The full version, stamped into the binaries (`/version` reports it).
    pub(crate) version: &'static str,
    /// The wrapper module, relative to the workspace root.
    module_dir: &'static str,
}

/// The releases, newest first: 1.37 and one before 1.35, because WebSocket exec is authorized
/// differently on each side of 1.35.
pub(crate) const RELEASES: &[Release] = &[
    Release {
        short: "1.37",
        version: "v1.37.2",
        module_dir: "tools/kube/v1.37",
    },
    Release {
        short: "1.34",
        version: "v1.34.4",
        module_dir: "tools/kube/v1.34",
    },
];

const ETCD_VERSION: &str = "v3.6.16";
const ETCD_MODULE_DIR: &str = "tools/etcd";

/// The environment variable the real-control-plane tests read the admin kubeconfig from.
pub(crate) const KUBECONFIG_ENV: &str = "KEYHOLE_REALAPI_KUBECONFIG";
/// The environment variable that tells the tests which release is running.
pub(crate) const VERSION_ENV: &str = "KEYHOLE_REALAPI_VERSION";
/// The environment variable naming the registered test node (unset: no node runs).
pub(crate) const NODE_ENV: &str = "KEYHOLE_REALAPI_NODE";
/// The test node's name (its Node object, and `system:node:<name>`).
const NODE_NAME: &str = "keyhole-node";

fn release(short: &str) -> Result<Release> {
    RELEASES
        .iter()
        .copied()
        .find(|r| r.short == short || r.version == short)
        .with_context(|| {
            let known: Vec<&str> = RELEASES.iter().map(|r| r.short).collect();
            format!("unknown Kubernetes release {short:?}: use one of {known:?}")
        })
}

/// `cargo xtask cluster <up [--k8s X]|down|env>`.
pub(crate) fn command(args: &[String]) -> Result<()> {
    match args.first().map(String::as_str) {
        Some("up") => {
            let k8s = match args.get(1).map(String::as_str) {
                None => RELEASES[0],
                Some("--k8s") => release(args.get(2).context("--k8s needs a release")?)?,
                Some(a) => bail!("unknown argument {a:?} (usage: cluster up [--k8s 1.37|1.34])"),
            };
            let up = up(k8s)?;
            println!("{}", up.kubeconfig.display());
            eprintln!(
                "kube-apiserver {} at {}; admin kubeconfig: {}\n\
                 use it: eval \"$(cargo xtask cluster env)\"; stop it: cargo xtask cluster down",
                k8s.version,
                up.server,
                up.kubeconfig.display()
            );
            Ok(())
        }
        Some("down") => down(),
        Some("env") => {
            let state = state_dir();
            let kubeconfig = state.join("kubeconfig");
            ensure!(
                kubeconfig.exists(),
                "no cluster is up (start one with cargo xtask cluster up)"
            );
            let version = std::fs::read_to_string(state.join("version")).unwrap_or_default();
            println!("export KUBECONFIG={}", kubeconfig.display());
            println!("export {KUBECONFIG_ENV}={}", kubeconfig.display());
            println!("export {VERSION_ENV}={}", version.trim());
            if state.join("node.port").exists() {
                println!("export {NODE_ENV}={NODE_NAME}");
            }
            Ok(())
        }
        _ => bail!("usage: cargo xtask cluster <up [--k8s 1.37|1.34]|down|env>"),
    }
}

/// The one real-control-plane test that waits for a token to expire (ten minutes).
const SLOW_EXPIRY_TEST: &str = "realapi_bound_token_expires_when_kubernetes_says";

/// `cargo xtask realapi`: for each release, bring the control plane up, run the
/// real-control-plane tests (`crates/cli/tests/it/realapi.rs`), and tear it down whatever
/// happened.
pub(crate) fn realapi() -> Result<()> {
    crate::tools::apt_install(&["curl"])?;
    // Build the test binary once, before any cluster runs, so its time is not in the runs.
    // Not root, it is built as the user and run under `sudo -n` (see the module doc).
    let sudo_test = if is_root() {
        run(cargo().args([
            "test",
            "--locked",
            "-p",
            "keyhole-cli",
            "--test",
            "it",
            "--no-run",
        ]))?;
        None
    } else {
        crate::tools::Privilege::detect()?;
        let mut build = cargo();
        build
            .args(["test", "--locked", "-p", "keyhole-cli", "--test", "it"])
            .args(["--no-run", "--message-format=json"])
            .current_dir(root())
            .stderr(Stdio::inherit());
        eprintln!("$ {}", show(&build));
        let out = build.output().context("cannot start cargo test --no-run")?;
        ensure!(
            out.status.success(),
            "building keyhole-cli's it tests failed"
        );
        let mut binaries = crate::test_binaries(&String::from_utf8_lossy(&out.stdout));
        ensure!(
            binaries.len() == 1,
            "expected one test binary for keyhole-cli --test it, cargo built {binaries:?}"
        );
        binaries.pop()
    };
    for (i, k8s) in RELEASES.iter().enumerate() {
        let started = Instant::now();
        // The token-expiry test waits out a bound token's ten minutes; what it checks is the
        // service-account authenticator's exp check, the same in every release, so only the
        // first (newest) release pays for it.
        let skip: &[&str] = if i == 0 {
            &[]
        } else {
            &["--skip", SLOW_EXPIRY_TEST]
        };
        let result = up(*k8s).and_then(|up| {
            let tests = Instant::now();
            match &sudo_test {
                None => run(cargo()
                    .args(["test", "--locked", "-p", "keyhole-cli", "--test", "it"])
                    .args(["realapi", "--", "--ignored"])
                    .args(skip)
                    .env(KUBECONFIG_ENV, &up.kubeconfig)
                    .env(VERSION_ENV, k8s.version)
                    .envs(up.node.iter().map(|n| (NODE_ENV, n))))?,
                Some((exe, dir)) => {
                    let kubeconfig = up.kubeconfig.display().to_string();
                    let kept = sudo_env();
                    let dir_text = dir.display().to_string();
                    let mut env: Vec<(&str, &str)> =
                        kept.iter().map(|(k, v)| (*k, v.as_str())).collect();
                    env.extend([
                        (KUBECONFIG_ENV, kubeconfig.as_str()),
                        (VERSION_ENV, k8s.version),
                        ("CARGO_MANIFEST_DIR", dir_text.as_str()),
                        ("RUST_BACKTRACE", "1"),
                    ]);
                    if let Some(n) = &up.node {
                        env.push((NODE_ENV, n.as_str()));
                    }
                    eprintln!("realapi: not root, so the test binary runs under `sudo -n`");
                    run(crate::tools::Privilege::Sudo
                        .command(&env, exe)
                        .args(["realapi", "--ignored"])
                        .args(skip)
                        .current_dir(dir))?;
                }
            }
            Ok(tests.elapsed())
        });
        if result.is_err() {
            keep_logs(k8s);
        }
        let stopped = down();
        let tests = result.with_context(|| format!("realapi on Kubernetes {}", k8s.version))?;
        stopped?;
        eprintln!(
            "realapi {}: passed; tests {:.1?}, with start and stop {:.1?}",
            k8s.version,
            tests,
            started.elapsed()
        );
    }
    Ok(())
}

/// Copies the control plane's logs to `target/cluster-logs/<version>/` (the state directory
/// is removed by `down`), for a failed run to be diagnosed.
fn keep_logs(k8s: &Release) {
    let keep = root().join("target/cluster-logs").join(k8s.version);
    let _ = std::fs::create_dir_all(&keep);
    for name in ["etcd", "kube-apiserver", "kube-controller-manager", "node"] {
        let log = format!("{name}.log");
        let _ = std::fs::copy(state_dir().join(&log), keep.join(&log));
    }
    eprintln!("control-plane logs kept in {}", keep.display());
}

// ------------------------------------------------------------------------------ binaries

/// `${XDG_CACHE_HOME:-$HOME/.cache}/keyhole/kube`.
fn cache_root() -> Result<PathBuf> {
    let base = match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        Some(x) => PathBuf::from(x),
        None => PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?).join(".cache"),
    };
    Ok(base.join("keyhole/kube"))
}

/// The first 16 hex digits of SHA-256(go.mod ‖ go.sum): a changed pin means another build.
fn module_key(module: &Path) -> Result<String> {
    let mut h = Sha256::new();
    for f in ["go.mod", "go.sum"] {
        let p = module.join(f);
        h.update(std::fs::read(&p).with_context(|| format!("cannot read {}", p.display()))?);
    }
    Ok(h.finalize().iter().take(8).fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    }))
}

/// Where the binaries of one module build go.
fn bin_dir(version: &str, module: &Path) -> Result<PathBuf> {
    Ok(cache_root()?.join(version).join(module_key(module)?))
}

/// Builds `packages` of `module` into `out` (atomically: into `out/.partial-<pid>` first, so
/// two clones building at once do not mix their files), niced so it shares the machine.
fn go_build(module: &Path, out: &Path, tags: &str, ldflags: &str, packages: &[&str]) -> Result<()> {
    let cache = cache_root()?;
    let go = Command::new("go").arg("version").output();
    ensure!(
        go.map(|o| o.status.success()).unwrap_or(false),
        "the real control plane is built from Go modules: install Go (1.26 or later; see {})",
        module.join("go.mod").display()
    );
    let partial = out.join(format!(".partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(&partial)?;
    let started = Instant::now();
    let mut cmd = Command::new("nice");
    cmd.args([
        "-n",
        "10",
        "go",
        "build",
        "-p",
        "2",
        "-trimpath",
        "-mod=readonly",
    ])
    .args(["-buildvcs=false", "-tags", tags, "-ldflags", ldflags, "-o"])
    .arg(format!("{}/", partial.display()))
    .args(packages)
    .current_dir(module)
    .env("CGO_ENABLED", "0")
    .env("GOTOOLCHAIN", "local")
    .env("GOFLAGS", "")
    .env("GOMODCACHE", cache.join("gomod"))
    .env("GOCACHE", cache.join("gocache"));
    run(&mut cmd)?;
    for entry in std::fs::read_dir(&partial)? {
        let entry = entry?;
        std::fs::rename(entry.path(), out.join(entry.file_name()))?;
    }
    std::fs::remove_dir(&partial)?;
    eprintln!(
        "built {} in {:.0?} into {}",
        packages.join(" "),
        started.elapsed(),
        out.display()
    );
    Ok(())
}

/// `kube-apiserver` and `kube-controller-manager` of `k8s`, built when missing.
fn kube_binaries(k8s: Release) -> Result<PathBuf> {
    let module = root().join(k8s.module_dir);
    let out = bin_dir(k8s.version, &module)?;
    let names = ["kube-apiserver", "kube-controller-manager"];
    if names.iter().all(|n| out.join(n).exists()) {
        return Ok(out);
    }
    let minor = k8s
        .version
        .split('.')
        .nth(1)
        .context("a version is vMAJOR.MINOR.PATCH")?;
    // Upstream stamps both packages (hack/lib/version.sh); /version reads component-base's.
    let mut ldflags = String::from("-s -w");
    for pkg in [
        "k8s.io/component-base/version",
        "k8s.io/client-go/pkg/version",
    ] {
        let _ = write!(
            ldflags,
            " -X {pkg}.gitVersion={v} -X {pkg}.gitMajor=1 -X {pkg}.gitMinor={minor} \
             -X {pkg}.gitTreeState=clean",
            v = k8s.version
        );
    }
    go_build(
        &module,
        &out,
        "selinux,notest",
        &ldflags,
        &names
            .map(|n| format!("k8s.io/kubernetes/cmd/{n}"))
            .each_ref()
            .map(String::as_str),
    )?;
    Ok(out)
}

/// `etcd`, built when missing.
fn etcd_binary() -> Result<PathBuf> {
    let module = root().join(ETCD_MODULE_DIR);
    let out = bin_dir(&format!("etcd-{ETCD_VERSION}"), &module)?;
    let bin = out.join("etcd");
    if !bin.exists() {
        go_build(&module, &out, "", "-s -w", &["go.etcd.io/etcd/server/v3"])?;
        // `go build` names the binary after the package path's last element that is not a
        // major-version suffix: `server`.
        for built in ["server", "v3"].map(|n| out.join(n)) {
            if built.exists() {
                std::fs::rename(built, &bin)?;
            }
        }
        ensure!(
            bin.exists(),
            "go build made no etcd binary in {}",
            out.display()
        );
    }
    Ok(bin)
}

// --------------------------------------------------------------------------- certificates

/// A CA: its parameters and key (to issue) and certificate (to trust).
struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pem: String,
}

fn validity(p: &mut CertificateParams) {
    // The state is remade on every `up`; a fixed window keeps the files independent of the clock.
    p.not_before = rcgen::date_time_ymd(2020, 1, 1);
    p.not_after = rcgen::date_time_ymd(2100, 1, 1);
}

fn ca(common_name: &str) -> Result<Ca> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut params);
    let pem = params.self_signed(&key)?.pem();
    Ok(Ca { params, key, pem })
}

/// A leaf certificate from `ca`: a server one for `sans`, or a client one for `cn` in `groups`.
fn leaf(
    ca: &Ca,
    cn: &str,
    groups: &[&str],
    sans: &[&str],
    server: bool,
) -> Result<(String, String)> {
    let key = KeyPair::generate()?;
    let mut params =
        CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
    params.distinguished_name.push(DnType::CommonName, cn);
    for g in groups {
        params.distinguished_name.push(DnType::OrganizationName, *g);
    }
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![if server {
        ExtendedKeyUsagePurpose::ServerAuth
    } else {
        ExtendedKeyUsagePurpose::ClientAuth
    }];
    params.use_authority_key_identifier_extension = true;
    validity(&mut params);
    let cert = params.signed_by(&key, &Issuer::from_params(&ca.params, &ca.key))?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Writes a file readable by its owner only (keys, and anything holding one).
fn write_private(path: &Path, text: &str) -> Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

/// Paths of the certificates and keys in `pki/`.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn put_pair(&self, name: &str, (cert, key): (String, String)) -> Result<()> {
        std::fs::write(self.path(&format!("{name}.crt")), cert)?;
        write_private(&self.path(&format!("{name}.key")), &key)
    }

    /// Makes every certificate and key of the control plane (and of the node to come).
    fn make(dir: PathBuf) -> Result<Self> {
        std::fs::create_dir_all(&dir)?;
        let pki = Self { dir };
        let server_ca = ca("keyhole-cluster-server-ca")?;
        let client_ca = ca("keyhole-cluster-client-ca")?;
        let etcd_ca = ca("keyhole-cluster-etcd-ca")?;
        let node_ca = ca("keyhole-cluster-node-ca")?;
        for (name, c) in [
            ("server-ca", &server_ca),
            ("client-ca", &client_ca),
            ("etcd-ca", &etcd_ca),
            ("node-ca", &node_ca),
        ] {
            std::fs::write(pki.path(&format!("{name}.crt")), &c.pem)?;
        }
        // The node issues its serving certificate from this CA (see the module doc).
        write_private(&pki.path("node-ca.key"), &node_ca.key.serialize_pem())?;
        pki.put_pair(
            "apiserver",
            leaf(
                &server_ca,
                "kube-apiserver",
                &[],
                &[
                    "127.0.0.1",
                    "localhost",
                    "10.0.0.1",
                    "kubernetes",
                    "kubernetes.default",
                    "kubernetes.default.svc",
                    "kubernetes.default.svc.cluster.local",
                ],
                true,
            )?,
        )?;
        pki.put_pair(
            "controller-manager",
            leaf(
                &server_ca,
                "kube-controller-manager",
                &[],
                &["127.0.0.1"],
                true,
            )?,
        )?;
        pki.put_pair(
            "admin",
            leaf(&client_ca, "keyhole-admin", &["system:masters"], &[], false)?,
        )?;
        pki.put_pair(
            "controller-manager-client",
            leaf(
                &client_ca,
                "system:kube-controller-manager",
                &[],
                &[],
                false,
            )?,
        )?;
        pki.put_pair(
            "kubelet-client",
            leaf(&client_ca, "kube-apiserver-kubelet-client", &[], &[], false)?,
        )?;
        // The test node (see the module doc): its own identity under the Node authorizer, the
        // scheduler's (the node binds pods nobody bound; nodes may not), and its serving
        // certificate for its InternalIP from the CA the API server trusts for kubelets.
        pki.put_pair(
            "node-client",
            leaf(
                &client_ca,
                &format!("system:node:{NODE_NAME}"),
                &["system:nodes"],
                &[],
                false,
            )?,
        )?;
        pki.put_pair(
            "scheduler-client",
            leaf(&client_ca, "system:kube-scheduler", &[], &[], false)?,
        )?;
        pki.put_pair(
            "kubelet-serving",
            leaf(&node_ca, NODE_NAME, &[], &["127.0.0.1"], true)?,
        )?;
        pki.put_pair(
            "etcd-server",
            leaf(&etcd_ca, "etcd", &[], &["127.0.0.1", "localhost"], true)?,
        )?;
        pki.put_pair(
            "etcd-client",
            leaf(&etcd_ca, "kube-apiserver-etcd-client", &[], &[], false)?,
        )?;
        // The ServiceAccount token signing key (ES256) and the public key that verifies tokens
        // (the API server reads only public keys, or PKCS#1/SEC1 private keys, from
        // --service-account-key-file; rcgen writes PKCS#8).
        let sa = KeyPair::generate()?;
        write_private(&pki.path("sa.key"), &sa.serialize_pem())?;
        std::fs::write(pki.path("sa.pub"), sa.public_key_pem())?;
        Ok(pki)
    }

    fn arg(&self, flag: &str, name: &str) -> String {
        format!("--{flag}={}", self.path(name).display())
    }
}

/// A kubeconfig with everything embedded, for `user` with the client pair `name`.
fn kubeconfig(pki: &Pki, server: &str, user: &str, name: &str) -> Result<String> {
    let b64 = |f: &str| -> Result<String> {
        Ok(base64::engine::general_purpose::STANDARD.encode(std::fs::read(pki.path(f))?))
    };
    Ok(format!(
        "apiVersion: v1\nkind: Config\n\
         clusters:\n- name: keyhole-local\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\n\
         users:\n- name: {user}\n  user:\n    client-certificate-data: {cert}\n    client-key-data: {key}\n\
         contexts:\n- name: keyhole-local\n  context:\n    cluster: keyhole-local\n    user: {user}\n\
         current-context: keyhole-local\n",
        ca = b64("server-ca.crt")?,
        cert = b64(&format!("{name}.crt"))?,
        key = b64(&format!("{name}.key"))?,
    ))
}

// ------------------------------------------------------------------------------ processes

/// `target/cluster`.
fn state_dir() -> PathBuf {
    root().join("target/cluster")
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// One started process, as listed in `pids`: `NAME PID EXE`.
struct Started {
    name: String,
    pid: i32,
    exe: PathBuf,
}

fn read_pids(state: &Path) -> Vec<Started> {
    let text = std::fs::read_to_string(state.join("pids")).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ' ');
            Some(Started {
                name: parts.next()?.to_string(),
                pid: parts.next()?.parse().ok()?,
                exe: PathBuf::from(parts.next()?),
            })
        })
        .collect()
}

/// Whether `p` still runs (a zombie does not) the binary that was started.
fn alive(p: &Started) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", p.pid)).unwrap_or_default();
    let zombie = stat
        .rsplit_once(')')
        .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
    let exe = match std::fs::read_link(format!("/proc/{}/exe", p.pid)) {
        Ok(exe) => Some(exe),
        // A process of root's (the node under sudo) seen by a user: its exe link is not
        // readable, its command line is; the node is exec'd by its canonical path.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            std::fs::read(format!("/proc/{}/cmdline", p.pid))
                .ok()
                .and_then(|c| {
                    c.split(|b| *b == 0)
                        .next()
                        .map(|a| PathBuf::from(String::from_utf8_lossy(a).into_owned()))
                })
        }
        Err(_) => None,
    };
    !stat.is_empty() && !zombie && exe.as_deref() == Some(p.exe.as_path())
}

/// Whether xtask runs as root.
fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Records a started process in `<state>/pids`.
fn record(state: &Path, started: &Started) -> Result<()> {
    let mut pids = OpenOptions::new()
        .create(true)
        .append(true)
        .open(state.join("pids"))?;
    writeln!(
        pids,
        "{} {} {}",
        started.name,
        started.pid,
        started.exe.display()
    )?;
    Ok(())
}

/// Starts `exe` in its own process group, logging to `<state>/<name>.log`, and records it.
fn spawn(state: &Path, name: &str, exe: &Path, args: &[String]) -> Result<Started> {
    let log = File::create(state.join(format!("{name}.log")))?;
    let mut cmd = Command::new(exe);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0);
    eprintln!("$ {} &", show(&cmd));
    let child = cmd
        .spawn()
        .with_context(|| format!("cannot start {}", exe.display()))?;
    let started = Started {
        name: name.to_string(),
        pid: i32::try_from(child.id())?,
        exe: exe.canonicalize()?,
    };
    record(state, &started)?;
    Ok(started)
}

/// What a process under `sudo -n` keeps of the user's environment (sudo resets it): the
/// node, and tests, build small binaries with the user's rustc, through rustup, which finds its
/// toolchains by RUSTUP_HOME, else by HOME (root's, under sudo).
fn sudo_env() -> Vec<(&'static str, String)> {
    let home = std::env::var("HOME").unwrap_or_default();
    [
        ("PATH", std::env::var("PATH").ok()),
        ("CARGO_TARGET_DIR", std::env::var("CARGO_TARGET_DIR").ok()),
        (
            "RUSTUP_HOME",
            std::env::var("RUSTUP_HOME")
                .ok()
                .or_else(|| Some(format!("{home}/.rustup"))),
        ),
        (
            "CARGO_HOME",
            std::env::var("CARGO_HOME")
                .ok()
                .or_else(|| Some(format!("{home}/.cargo"))),
        ),
    ]
    .into_iter()
    .filter_map(|(k, v)| Some((k, v?)))
    .collect()
}

/// Starts `exe` as root through `sudo -n`, like [`spawn`]; what is recorded is the process
/// of `exe` itself (a shell writes its pid, then execs it by its canonical path), so that
/// `down` signals and checks the node rather than sudo.
fn spawn_sudo(state: &Path, name: &str, exe: &Path, args: &[String]) -> Result<Started> {
    let log = File::create(state.join(format!("{name}.log")))?;
    let exe = exe.canonicalize()?;
    let pid_file = state.join(format!("{name}.pid"));
    let kept = sudo_env();
    let env: Vec<(&str, &str)> = kept.iter().map(|(k, v)| (*k, v.as_str())).collect();

    let mut cmd = crate::tools::Privilege::Sudo.command(&env, "sh");
    cmd.args(["-c", r#"echo $$ > "$0"; exec "$@""#])
        .arg(&pid_file)
        .arg(&exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0);
    eprintln!("not root: {name} runs as root under `sudo -n`");
    eprintln!("$ {} &", show(&cmd));
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start sudo for {}", exe.display()))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let pid = loop {
        let text = std::fs::read_to_string(&pid_file).unwrap_or_default();
        if let Ok(pid) = text.trim().parse::<i32>() {
            break pid;
        }
        if let Some(status) = child.try_wait()? {
            bail!(
                "sudo -n for {name} exited ({status}); the end of its log:\n{}",
                log_tail(state, name)
            );
        }
        ensure!(
            Instant::now() < deadline,
            "{name} under sudo wrote no pid within 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let started = Started {
        name: name.to_string(),
        pid,
        exe,
    };
    record(state, &started)?;
    Ok(started)
}

fn log_tail(state: &Path, name: &str) -> String {
    let text = std::fs::read_to_string(state.join(format!("{name}.log"))).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(25)..].join("\n")
}

/// Polls `url` with curl and the admin-side client `pair` until it answers 2xx.
fn wait_ready(
    state: &Path,
    p: &Started,
    url: &str,
    ca: &Path,
    pair: &Path,
    limit: Duration,
) -> Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        let ok = Command::new("curl")
            .args([
                "-sS",
                "--fail",
                "--max-time",
                "3",
                "-o",
                "/dev/null",
                "--cacert",
            ])
            .arg(ca)
            .arg("--cert")
            .arg(pair.with_extension("crt"))
            .arg("--key")
            .arg(pair.with_extension("key"))
            .arg(url)
            .stderr(Stdio::null())
            .status()
            .context("cannot run curl (needed to wait for the control plane)")?
            .success();
        if ok {
            return Ok(());
        }
        if !alive(p) {
            bail!(
                "{} exited while starting; the end of {}:\n{}",
                p.name,
                state.join(format!("{}.log", p.name)).display(),
                log_tail(state, &p.name)
            );
        }
        if Instant::now() > deadline {
            bail!(
                "{} was not ready at {url} within {limit:?}; the end of its log:\n{}",
                p.name,
                log_tail(state, &p.name)
            );
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// A running control plane.
pub(crate) struct Up {
    /// The admin kubeconfig (`system:masters`).
    pub(crate) kubeconfig: PathBuf,
    /// The API server's URL.
    pub(crate) server: String,
    /// The registered test node's name; `None` when it could not run here (not root).
    pub(crate) node: Option<String>,
}

/// Builds (when missing) and starts etcd, the API server and the controller manager of `k8s`,
/// and writes the admin kubeconfig. On failure, stops what it started.
pub(crate) fn up(k8s: Release) -> Result<Up> {
    let state = state_dir();
    if read_pids(&state).iter().any(alive) {
        bail!("a control plane is already up: stop it with cargo xtask cluster down");
    }
    let kube = kube_binaries(k8s)?;
    let etcd = etcd_binary()?;
    let node = node_binary()?;
    let _ = std::fs::remove_dir_all(&state);
    std::fs::create_dir_all(&state)?;
    std::fs::write(state.join("version"), k8s.version)?;
    let result = start(&state, &kube, &etcd, node.as_deref());
    if result.is_err() {
        let _ = stop(&state);
    }
    result
}

fn start(state: &Path, kube: &Path, etcd: &Path, node: Option<&Path>) -> Result<Up> {
    let started = Instant::now();
    let pki = Pki::make(state.join("pki"))?;
    let (etcd_port, peer_port, api_port, kcm_port) =
        (free_port()?, free_port()?, free_port()?, free_port()?);
    let etcd_url = format!("https://127.0.0.1:{etcd_port}");
    let peer_url = format!("http://127.0.0.1:{peer_port}");
    let etcd_data = state.join("etcd");
    let e = spawn(
        state,
        "etcd",
        etcd,
        &[
            "--name=keyhole".into(),
            format!("--data-dir={}", etcd_data.display()),
            format!("--listen-client-urls={etcd_url}"),
            format!("--advertise-client-urls={etcd_url}"),
            format!("--listen-peer-urls={peer_url}"),
            format!("--initial-advertise-peer-urls={peer_url}"),
            format!("--initial-cluster=keyhole={peer_url}"),
            pki.arg("cert-file", "etcd-server.crt"),
            pki.arg("key-file", "etcd-server.key"),
            pki.arg("trusted-ca-file", "etcd-ca.crt"),
            "--client-cert-auth".into(),
            // Throwaway data: durability buys nothing and fsync costs seconds on slow disks.
            "--unsafe-no-fsync".into(),
            "--log-level=warn".into(),
        ],
    )?;
    wait_ready(
        state,
        &e,
        &format!("{etcd_url}/health"),
        &pki.path("etcd-ca.crt"),
        &pki.path("etcd-client"),
        Duration::from_secs(60),
    )?;
    let server = format!("https://127.0.0.1:{api_port}");
    let a = spawn(
        state,
        "kube-apiserver",
        &kube.join("kube-apiserver"),
        &[
            format!("--etcd-servers={etcd_url}"),
            pki.arg("etcd-cafile", "etcd-ca.crt"),
            pki.arg("etcd-certfile", "etcd-client.crt"),
            pki.arg("etcd-keyfile", "etcd-client.key"),
            "--bind-address=127.0.0.1".into(),
            format!("--secure-port={api_port}"),
            format!("--cert-dir={}", state.join("apiserver-certs").display()),
            pki.arg("tls-cert-file", "apiserver.crt"),
            pki.arg("tls-private-key-file", "apiserver.key"),
            pki.arg("client-ca-file", "client-ca.crt"),
            "--anonymous-auth=false".into(),
            "--authorization-mode=Node,RBAC".into(),
            // Pod Security admission is on by default; privileged pods are allowed by the
            // cluster so that Pod Security (not this flag) is what refuses them.
            "--allow-privileged=true".into(),
            "--service-cluster-ip-range=10.0.0.0/24".into(),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
            pki.arg("service-account-key-file", "sa.pub"),
            pki.arg("service-account-signing-key-file", "sa.key"),
            // For the node to come (see the module doc).
            pki.arg("kubelet-client-certificate", "kubelet-client.crt"),
            pki.arg("kubelet-client-key", "kubelet-client.key"),
            pki.arg("kubelet-certificate-authority", "node-ca.crt"),
            "--kubelet-preferred-address-types=InternalIP".into(),
            "--endpoint-reconciler-type=none".into(),
            "--profiling=false".into(),
        ],
    )?;
    wait_ready(
        state,
        &a,
        &format!("{server}/readyz"),
        &pki.path("server-ca.crt"),
        &pki.path("admin"),
        Duration::from_secs(120),
    )?;
    let admin = state.join("kubeconfig");
    write_private(
        &admin,
        &kubeconfig(&pki, &server, "keyhole-admin", "admin")?,
    )?;
    let kcm_config = state.join("controller-manager.kubeconfig");
    write_private(
        &kcm_config,
        &kubeconfig(
            &pki,
            &server,
            "system:kube-controller-manager",
            "controller-manager-client",
        )?,
    )?;
    let c = spawn(
        state,
        "kube-controller-manager",
        &kube.join("kube-controller-manager"),
        &[
            format!("--kubeconfig={}", kcm_config.display()),
            format!("--authentication-kubeconfig={}", kcm_config.display()),
            format!("--authorization-kubeconfig={}", kcm_config.display()),
            "--bind-address=127.0.0.1".into(),
            format!("--secure-port={kcm_port}"),
            pki.arg("tls-cert-file", "controller-manager.crt"),
            pki.arg("tls-private-key-file", "controller-manager.key"),
            pki.arg("client-ca-file", "client-ca.crt"),
            "--leader-elect=false".into(),
            "--controllers=garbage-collector-controller,namespace-controller,\
             serviceaccount-controller,serviceaccount-token-controller,\
             root-ca-certificate-publisher-controller"
                .into(),
            "--use-service-account-credentials=true".into(),
            pki.arg("service-account-private-key-file", "sa.key"),
            pki.arg("root-ca-file", "server-ca.crt"),
            "--profiling=false".into(),
        ],
    )?;
    wait_ready(
        state,
        &c,
        &format!("https://127.0.0.1:{kcm_port}/healthz"),
        &pki.path("server-ca.crt"),
        &pki.path("admin"),
        Duration::from_secs(60),
    )?;
    let node = match node {
        Some(bin) => Some(start_node(state, &pki, &server, bin, !is_root())?),
        None => None,
    };
    eprintln!("control plane ready in {:.1?}", started.elapsed());
    Ok(Up {
        kubeconfig: admin,
        server,
        node,
    })
}

/// Builds the test node (`keyhole-testkit`'s `node` example), which runs runc containers, so
/// as root or, not root, under `sudo -n` (then the static agent is built here, as the user:
/// cargo need not be root's); `None` when neither is possible, and the control plane comes up
/// without it.
fn node_binary() -> Result<Option<PathBuf>> {
    if !is_root()
        && let Err(e) = crate::tools::Privilege::detect()
    {
        eprintln!(
            "the test node (runc containers) will not run; the tests that need it fail: {e:#}"
        );
        return Ok(None);
    }
    run(cargo().args([
        "build",
        "--locked",
        "--quiet",
        "-p",
        "keyhole-testkit",
        "--example",
        "node",
    ]))?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    Ok(Some(target.join("debug/examples/node")))
}

/// Starts the test node with its own identity and waits until it registered its Node object;
/// returns its name.
fn start_node(state: &Path, pki: &Pki, server: &str, bin: &Path, sudo: bool) -> Result<String> {
    let node_config = state.join("node.kubeconfig");
    write_private(
        &node_config,
        &kubeconfig(
            pki,
            server,
            &format!("system:node:{NODE_NAME}"),
            "node-client",
        )?,
    )?;
    let sched_config = state.join("scheduler.kubeconfig");
    write_private(
        &sched_config,
        &kubeconfig(pki, server, "system:kube-scheduler", "scheduler-client")?,
    )?;
    let ready = state.join("node.port");
    let workdir = state.join("node");
    let path = |p: &Path| p.display().to_string();
    let mut args: Vec<String> = vec![
        "--name".into(),
        NODE_NAME.into(),
        "--kubeconfig".into(),
        path(&node_config),
        "--scheduler-kubeconfig".into(),
        path(&sched_config),
        "--serving-cert".into(),
        path(&pki.path("kubelet-serving.crt")),
        "--serving-key".into(),
        path(&pki.path("kubelet-serving.key")),
        "--client-ca".into(),
        path(&pki.path("client-ca.crt")),
        "--apiserver-client-cert".into(),
        path(&pki.path("kubelet-client.crt")),
        "--ready-file".into(),
        path(&ready),
        "--workdir".into(),
        path(&workdir),
        "--with-agent".into(),
    ];
    let n = if sudo {
        // Built as the user (as `cargo xtask ci` does): root may have no cargo.
        crate::static_agent()?;
        let agent = root().join("target/static/x86_64-unknown-linux-gnu/debug/keyhole-agent");
        args.extend(["--agent".into(), path(&agent)]);
        spawn_sudo(state, "node", bin, &args)?
    } else {
        spawn(state, "node", bin, &args)?
    };
    let deadline = Instant::now() + Duration::from_secs(600);
    while !ready.exists() {
        if !alive(&n) {
            bail!(
                "the test node exited while starting; the end of its log:\n{}",
                log_tail(state, "node")
            );
        }
        if Instant::now() > deadline {
            bail!(
                "the test node did not register within 10 minutes; the end of its log:\n{}",
                log_tail(state, "node")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!(
        "test node {NODE_NAME} registered (kubelet on 127.0.0.1:{})",
        std::fs::read_to_string(&ready)?.trim()
    );
    Ok(NODE_NAME.to_owned())
}

/// Stops the processes listed in `state/pids` (newest first; TERM, then KILL after 15 s).
fn stop(state: &Path) -> Result<()> {
    let mut pids = read_pids(state);
    pids.reverse();
    for p in pids.iter().filter(|p| alive(p)) {
        eprintln!("stopping {} (pid {})", p.name, p.pid);
        signal(p, rustix::process::Signal::TERM);
        let deadline = Instant::now() + Duration::from_secs(15);
        while alive(p) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        if alive(p) {
            signal(p, rustix::process::Signal::KILL);
            std::thread::sleep(Duration::from_millis(200));
        }
        ensure!(!alive(p), "{} (pid {}) does not stop", p.name, p.pid);
    }
    Ok(())
}

fn signal(p: &Started, sig: rustix::process::Signal) {
    if let Some(pid) = rustix::process::Pid::from_raw(p.pid)
        && rustix::process::kill_process(pid, sig) == Err(rustix::io::Errno::PERM)
    {
        // Root's process (the node under sudo): signal it as root.
        let name = if sig == rustix::process::Signal::KILL {
            "KILL"
        } else {
            "TERM"
        };
        eprintln!(
            "{} (pid {}) is root's: signalling it under `sudo -n`",
            p.name, p.pid
        );
        let _ = root_command("kill")
            .args(["-s", name, &p.pid.to_string()])
            .status();
    }
}

/// `program` run as root: directly when root, else through `sudo -n`.
fn root_command(program: &str) -> Command {
    if is_root() {
        Command::new(program)
    } else {
        crate::tools::Privilege::Sudo.command(&[], program)
    }
}

/// `cargo xtask cluster down`: stops every process `up` started and removes the state.
pub(crate) fn down() -> Result<()> {
    let state = state_dir();
    let nodes: Vec<i32> = read_pids(&state)
        .into_iter()
        .filter(|p| p.name == "node")
        .map(|p| p.pid)
        .collect();
    stop(&state)?;
    for pid in nodes {
        remove_node_leftovers(&state, pid)?;
    }
    if state.exists()
        && let Err(e) = std::fs::remove_dir_all(&state)
    {
        ensure!(
            e.kind() == std::io::ErrorKind::PermissionDenied && !is_root(),
            "cannot remove {}: {e}",
            state.display()
        );
        // The node's work directory under sudo is root's; its mounts are gone (above), and
        // --one-file-system keeps rm from crossing into one that is not.
        eprintln!(
            "removing {} under `sudo -n` (the node's files are root's)",
            state.display()
        );
        run(root_command("rm")
            .args(["-rf", "--one-file-system"])
            .arg(&state))?;
    }
    Ok(())
}

/// What a test node (pid `pid`) leaves when it could not stop cleanly (SIGKILL): its runc
/// containers (`khnode-<pid>-…`), deleted by force, and overlay mounts under its workdir. A
/// node that stopped on SIGTERM left neither.
fn remove_node_leftovers(state: &Path, pid: i32) -> Result<()> {
    let prefix = format!("khnode-{pid}-");
    let out = root_command("runc").args(["list", "-q"]).output();
    let Ok(out) = out else {
        return Ok(());
    };
    for id in String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with(&prefix))
    {
        eprintln!("removing the node's leftover runc container {id}");
        let _ = root_command("runc")
            .args(["delete", "--force", id])
            .status();
    }
    let workdir = state.join("node").display().to_string();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut points: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&workdir))
        .collect();
    // Deepest first.
    points.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in points {
        eprintln!("unmounting the node's leftover {m}");
        if is_root() {
            rustix::mount::unmount(m, rustix::mount::UnmountFlags::DETACH)
                .with_context(|| format!("cannot unmount {m}"))?;
        } else {
            run(root_command("umount").args(["-l", m]))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every k8s.io module of a wrapper is pinned to the one release (v1.X.Y ↔ v0.X.Y), so a
    /// stray pin cannot mix releases.
    #[test]
    fn wrapper_modules_pin_one_release_each() {
        for k8s in RELEASES {
            let text = std::fs::read_to_string(root().join(k8s.module_dir).join("go.mod")).unwrap();
            let want = format!("k8s.io/kubernetes {}", k8s.version);
            assert!(
                text.lines()
                    .any(|l| l.trim_start_matches("require ").trim().starts_with(&want)),
                "{}: k8s.io/kubernetes is not at {}",
                k8s.module_dir,
                k8s.version
            );
            let staging = k8s.version.replacen("v1.", "v0.", 1);
            let replaces: Vec<&str> = text.lines().filter(|l| l.contains(" => ")).collect();
            assert!(replaces.len() >= 30, "{}: {replaces:?}", k8s.module_dir);
            for l in replaces {
                assert!(l.trim_end().ends_with(&staging), "{}: {l}", k8s.module_dir);
            }
        }
        let etcd = std::fs::read_to_string(root().join(ETCD_MODULE_DIR).join("go.mod")).unwrap();
        assert!(etcd.contains(&format!("go.etcd.io/etcd/server/v3 {ETCD_VERSION}")));
        for l in etcd.lines().filter(|l| l.contains(" => ")) {
            assert!(l.trim_end().ends_with(ETCD_VERSION), "tools/etcd: {l}");
        }
    }
}
