//! The node's "registry": image references mapped to root filesystem directories on this
//! machine, with the few image-config defaults a kubelet takes from an image (entrypoint, cmd,
//! user, env, working directory). Nothing is pulled; an unregistered image is `ErrImagePull`.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// One image: a root filesystem directory (never written: each container gets an overlay on
/// top of it) and its config defaults. Test double for an OCI image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// The root filesystem directory (the overlay's lower layer).
    pub rootfs: PathBuf,
    /// `ENTRYPOINT`.
    pub entrypoint: Vec<String>,
    /// `CMD`.
    pub cmd: Vec<String>,
    /// `USER` as numeric `(uid, gid)`; `None` is root.
    pub user: Option<(u32, u32)>,
    /// `ENV`, in order.
    pub env: Vec<(String, String)>,
    /// `WORKDIR`; `None` is `/`.
    pub working_dir: Option<String>,
}

impl Image {
    /// An image of `rootfs` with no entrypoint, cmd, user, env or workdir.
    pub fn new(rootfs: impl Into<PathBuf>) -> Self {
        Self {
            rootfs: rootfs.into(),
            entrypoint: Vec::new(),
            cmd: Vec::new(),
            user: None,
            env: Vec::new(),
            working_dir: None,
        }
    }

    /// Sets `ENTRYPOINT`.
    pub fn entrypoint<S: Into<String>>(mut self, argv: impl IntoIterator<Item = S>) -> Self {
        self.entrypoint = argv.into_iter().map(Into::into).collect();
        self
    }

    /// Sets `CMD`.
    pub fn cmd<S: Into<String>>(mut self, argv: impl IntoIterator<Item = S>) -> Self {
        self.cmd = argv.into_iter().map(Into::into).collect();
        self
    }

    /// Sets `USER uid:gid`.
    pub fn user(mut self, uid: u32, gid: u32) -> Self {
        self.user = Some((uid, gid));
        self
    }

    /// Adds an `ENV` entry.
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    /// Sets `WORKDIR`.
    pub fn working_dir(mut self, dir: impl Into<String>) -> Self {
        self.working_dir = Some(dir.into());
        self
    }
}

/// Image reference → [`Image`]. A pod's `image` matches a registered reference exactly, else
/// with its `@digest` removed, else with its `:tag` removed too (so registering
/// `example/agent` serves `example/agent:1.0@sha256:…`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Images {
    map: BTreeMap<String, Image>,
}

impl Images {
    /// No images.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `reference` (builder form).
    pub fn with(mut self, reference: impl Into<String>, image: Image) -> Self {
        self.insert(reference, image);
        self
    }

    /// Registers (or replaces) `reference`.
    pub fn insert(&mut self, reference: impl Into<String>, image: Image) {
        self.map.insert(reference.into(), image);
    }

    /// Forgets `reference` (exactly as registered).
    pub fn remove(&mut self, reference: &str) -> Option<Image> {
        self.map.remove(reference)
    }

    /// The image a pod's `image` field names, if registered.
    pub fn resolve(&self, reference: &str) -> Option<&Image> {
        let no_digest = reference.split_once('@').map_or(reference, |(r, _)| r);
        // A tag is a ':' after the last '/' (a ':' before it is a registry port).
        let slash = no_digest.rfind('/').map_or(0, |i| i + 1);
        let no_tag = match no_digest[slash..].find(':') {
            Some(i) => &no_digest[..slash + i],
            None => no_digest,
        };
        self.map
            .get(reference)
            .or_else(|| self.map.get(no_digest))
            .or_else(|| self.map.get(no_tag))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_resolve_exactly_then_without_digest_then_without_tag() {
        let images = Images::new()
            .with("localhost:5000/agent", Image::new("/agent"))
            .with("busybox:1.36", Image::new("/bb"));
        let root = |r: &str| images.resolve(r).map(|i| i.rootfs.clone());
        assert_eq!(
            root("localhost:5000/agent:0.1@sha256:ab"),
            Some("/agent".into())
        );
        assert_eq!(root("localhost:5000/agent"), Some("/agent".into()));
        assert_eq!(root("busybox:1.36@sha256:cd"), Some("/bb".into()));
        assert_eq!(root("busybox:1.37"), None);
        assert_eq!(root("localhost:5000/other"), None);
    }
}
