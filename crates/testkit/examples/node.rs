//! The test node as a process, registered with a real API server: what
//! `cargo xtask cluster up` starts beside the control plane (and `down` stops with SIGTERM,
//! which kills and deletes every runc container the node started).
//!
//! ```text
//! node --name NAME --kubeconfig NODE.kubeconfig [--scheduler-kubeconfig S.kubeconfig]
//!      --serving-cert C --serving-key K --client-ca CA --apiserver-client-cert A
//!      --ready-file F [--with-agent [--agent STATIC-AGENT]]
//! ```
//!
//! `--agent` names a static agent already built: `cargo xtask cluster up`, not root, builds it
//! as the user and starts the node under `sudo -n`, where cargo may not be on the PATH and
//! would write root's files into `target/`.
//!
//! Images: `busybox:1.36` (the busybox tree, `CMD sh`), `registry.example/distroless` (the
//! true distroless `pause` tree) and, with `--with-agent`, `ghcr.io/keyhole-scanner/keyhole-agent`
//! (the static agent, built when missing). Once the Node object is registered it writes its
//! kubelet port to the ready file.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use keyhole_testkit::node::{Image, Images, NodeOptions, RealNode, RealNodeConfig, rootfs};
use kube::config::{KubeConfigOptions, Kubeconfig};

type Error = Box<dyn std::error::Error>;

async fn config(path: &str) -> Result<kube::Config, Error> {
    let kc = Kubeconfig::read_from(path)?;
    Ok(kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?)
}

fn read(path: &str) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}").into())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let mut args: BTreeMap<String, String> = BTreeMap::new();
    let mut with_agent = false;

    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--with-agent" => with_agent = true,

            flag if flag.starts_with("--") => {
                let v = it.next().ok_or(format!("{flag} needs a value"))?;
                args.insert(flag.trim_start_matches("--").to_owned(), v);
            }
            other => return Err(format!("unexpected argument {other:?}").into()),
        }
    }
    let arg = |k: &str| {
        args.get(k)
            .cloned()
            .ok_or_else(|| Error::from(format!("--{k} is required")))
    };
    let scheduler = match args.get("scheduler-kubeconfig") {
        Some(p) => Some(config(p).await?),
        None => None,
    };
    let node_config = RealNodeConfig {
        node: config(&arg("kubeconfig")?).await?,
        scheduler,
        serving_cert_pem: read(&arg("serving-cert")?)?,
        serving_key_pem: read(&arg("serving-key")?)?,
        client_ca_pem: read(&arg("client-ca")?)?,
        apiserver_client_cert_pem: read(&arg("apiserver-client-cert")?)?,
    };
    let agent = match (with_agent, args.get("agent")) {
        (false, _) => None,
        (true, Some(prebuilt)) => Some(PathBuf::from(prebuilt)),
        (true, None) => Some(rootfs::static_agent()?),
    };
    let images = images(agent.as_deref())?;
    let options = NodeOptions {
        name: arg("name")?,
        poll: Duration::from_millis(100),
        workdir_parent: args.get("workdir").map(PathBuf::from),
        ..NodeOptions::default()
    };
    let node = RealNode::start(node_config, images, options)?;
    std::fs::write(arg("ready-file")?, node.port().to_string())?;
    eprintln!(
        "node {} registered; kubelet on 127.0.0.1:{}; runc ids {}-*",
        node.node().name(),
        node.port(),
        node.node().id_prefix()
    );
    use tokio::signal::unix::{SignalKind, signal};
    let (mut term, mut int) = (
        signal(SignalKind::terminate())?,
        signal(SignalKind::interrupt())?,
    );
    let mut reported = None;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            () = tokio::time::sleep(Duration::from_secs(1)) => {
                // The loop's errors (API unreachable…) go to the node's log, once each.
                let now = node.node().last_error();
                if now != reported {
                    eprintln!("node loop: {}", now.as_deref().unwrap_or("ok again"));
                    reported = now;
                }
            }
        }
    }
    eprintln!("stopping the node");
    node.shutdown()?;
    Ok(())
}

/// The node's images, their trees made when missing.
fn images(agent: Option<&std::path::Path>) -> Result<Images, Error> {
    let cache = rootfs::cache_dir();
    let mut images = Images::new()
        .with(
            "busybox:1.36",
            Image::new(rootfs::busybox(&cache.join("busybox"))?).cmd(["sh"]),
        )
        .with(
            "registry.example/distroless",
            Image::new(rootfs::distroless(&cache.join("distroless"))?).entrypoint(["/pause"]),
        );
    if let Some(agent) = agent {
        let agent = rootfs::agent(&cache.join("agent"), agent)?;
        images = images.with("ghcr.io/keyhole-scanner/keyhole-agent", Image::new(agent));
    }
    Ok(images)
}
