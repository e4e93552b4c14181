//! Builds the test node's root filesystems into the rootfs cache (`target/rootfs/`): busybox,
//! the true distroless `pause` tree, and the agent tree (with the static `keyhole-agent`).
//! `cargo xtask rootfs` runs this; tests build the same trees on first use.
//!
//! Prints one line per tree: its name and directory.

use keyhole_testkit::node::rootfs;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cache = rootfs::cache_dir();
    let busybox = rootfs::busybox(&cache.join("busybox"))?;
    let distroless = rootfs::distroless(&cache.join("distroless"))?;
    let agent = rootfs::agent(&cache.join("agent"), &rootfs::static_agent()?)?;
    for (name, dir) in [
        ("busybox", busybox),
        ("distroless", distroless),
        ("agent", agent),
    ] {
        println!("{name}\t{}", dir.display());
    }
    Ok(())
}
