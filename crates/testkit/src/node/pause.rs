//! `pause`: sleeps until killed, like Kubernetes' pause image. The one program of the node's
//! true distroless test image; not part of the crate: `node::rootfs::pause_binary` compiles it
//! alone with `rustc -C target-feature=+crt-static` (std only, so no cargo and no libc needed
//! at run time).

fn main() {
    loop {
        // park may return spuriously; nothing else ever wakes this thread.
        std::thread::park();
    }
}
