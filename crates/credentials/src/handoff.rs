//! Handing a kubeconfig to a child process without a plain file on disk.

use std::fs::File;
use std::io::Write as _;
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use rustix::fs::{MemfdFlags, SealFlags, fcntl_add_seals, memfd_create};
use secrecy::{ExposeSecret as _, SecretString};

use crate::CredentialsError;

/// A kubeconfig a child process can read at [`ChildKubeconfig::path`] (set `KUBECONFIG` to
/// it), gone when this value is dropped.
///
/// Preferred: an anonymous, sealed `memfd` inherited by the child and named `/dev/fd/N` — it
/// never touches a filesystem. The fd is deliberately not close-on-exec, so every child spawned
/// while this value lives inherits it: spawn only the intended child meanwhile. Fallback (no
/// memfd): a 0600 file in a fresh 0700 directory, overwritten with zeros and unlinked on drop.
#[derive(Debug)]
pub struct ChildKubeconfig {
    path: PathBuf,
    backing: Backing,
}

#[derive(Debug)]
enum Backing {
    Memfd(#[allow(dead_code, reason = "kept open for the child; closed on drop")] OwnedFd),
    File { dir: PathBuf, len: usize },
}

fn os(action: &'static str) -> impl Fn(std::io::Error) -> CredentialsError {
    move |e| CredentialsError::Os {
        action,
        message: e.to_string(),
    }
}

impl ChildKubeconfig {
    /// A memfd if the kernel has them, else the private-file fallback under the system temp dir.
    pub fn new(config: &SecretString) -> Result<Self, CredentialsError> {
        Self::memfd(config).or_else(|_| Self::private_file(config, &std::env::temp_dir()))
    }

    /// The memfd form.
    pub fn memfd(config: &SecretString) -> Result<Self, CredentialsError> {
        let fd = memfd_create("keyhole-kubeconfig", MemfdFlags::ALLOW_SEALING)
            .map_err(|e| os("memfd_create")(e.into()))?;
        let mut file = File::from(fd);
        file.write_all(config.expose_secret().as_bytes())
            .map_err(os("writing the kubeconfig memfd"))?;
        let fd = OwnedFd::from(file);
        // Sealed: neither the child nor anything else can change what it reads.
        fcntl_add_seals(
            &fd,
            SealFlags::WRITE | SealFlags::GROW | SealFlags::SHRINK | SealFlags::SEAL,
        )
        .map_err(|e| os("sealing the kubeconfig memfd")(e.into()))?;
        Ok(Self {
            path: PathBuf::from(format!("/dev/fd/{}", fd.as_raw_fd())),
            backing: Backing::Memfd(fd),
        })
    }

    /// The fallback: a 0600 file in a new 0700 directory under `parent`.
    pub fn private_file(config: &SecretString, parent: &Path) -> Result<Self, CredentialsError> {
        let random = keyhole_core::random_bytes::<8>().map_err(|e| CredentialsError::Os {
            action: "naming the private kubeconfig directory",
            message: e.to_string(),
        })?;
        let name = hex::encode(random);
        let dir = parent.join(format!("keyhole-{name}"));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(os("creating the private kubeconfig directory"))?;
        let path = dir.join("kubeconfig");
        let bytes = config.expose_secret().as_bytes();
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()));
        let this = Self {
            path,
            backing: Backing::File {
                dir,
                len: bytes.len(),
            },
        };
        // On a failed write `this` is dropped here, which removes what was created.
        written.map_err(os("writing the private kubeconfig file"))?;
        Ok(this)
    }

    /// The path to give the child as `KUBECONFIG`.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ChildKubeconfig {
    fn drop(&mut self) {
        if let Backing::File { dir, len } = &self.backing {
            // Overwrite before unlinking so the bytes do not linger in a reused block.
            if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&self.path) {
                let _ = f.write_all(&vec![0u8; *len]).and_then(|()| f.sync_all());
            }
            let _ = std::fs::remove_file(&self.path);
            let _ = std::fs::remove_dir(dir);
        }
        // A memfd disappears with its last descriptor, closed when `OwnedFd` drops.
    }
}
