//! Container image references as Kubernetes and the runtimes read them: registry, repository,
//! tag and digest, with Docker Hub's implicit names made explicit.

use serde::Serialize;

/// Docker Hub's registry name, implied by a reference without one.
const DOCKER_HUB: &str = "docker.io";

/// An image reference split into its parts and normalized (`nginx` is
/// `docker.io/library/nginx`). Parsing is lenient: this describes what a pod runs, it does not
/// refuse it; the checks judge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageName {
    /// Registry host (with port), `docker.io` when the reference names none.
    pub registry: String,
    /// Repository path inside the registry (`library/nginx`).
    pub repository: String,
    /// Tag, when there is one.
    pub tag: Option<String>,
    /// Digest (`algorithm:hex`), when there is one.
    pub digest: Option<String>,
}

impl ImageName {
    /// Splits `reference` (`[registry[:port]/]path[:tag][@digest]`).
    #[must_use]
    pub fn parse(reference: &str) -> Self {
        let reference = reference.trim();
        let (name_tag, digest) = match reference.split_once('@') {
            Some((n, d)) => (n, Some(d.to_owned())),
            None => (reference, None),
        };
        // A tag follows the last ':' after the last '/'; earlier colons are a registry port.
        let last_slash = name_tag.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name_tag[last_slash..].rfind(':') {
            Some(i) => (
                &name_tag[..last_slash + i],
                Some(name_tag[last_slash + i + 1..].to_owned()),
            ),
            None => (name_tag, None),
        };
        let (registry, repository) = match name.split_once('/') {
            // The runtimes' rule: the first component is a registry when it has a '.' or ':',
            // is `localhost`, or has an uppercase letter (never valid in a path).
            Some((first, rest))
                if first.contains(['.', ':'])
                    || first == "localhost"
                    || first.bytes().any(|b| b.is_ascii_uppercase()) =>
            {
                (first.to_owned(), rest.to_owned())
            }
            _ => (DOCKER_HUB.to_owned(), name.to_owned()),
        };
        let registry = if registry == "index.docker.io" || registry == "registry-1.docker.io" {
            DOCKER_HUB.to_owned()
        } else {
            registry
        };
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        Self {
            registry,
            repository,
            tag,
            digest,
        }
    }

    /// `REGISTRY/REPOSITORY`, what the image allowlist's globs match.
    #[must_use]
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

/// The digest in a container status's `imageID`, whatever the runtime's spelling:
/// `docker-pullable://repo@sha256:…`, `repo@sha256:…` or a bare `sha256:…`.
#[must_use]
pub fn image_id_digest(image_id: &str) -> Option<&str> {
    let d = match image_id.rsplit_once('@') {
        Some((_, d)) => d,
        None => image_id.rsplit_once("://").map_or(image_id, |(_, d)| d),
    };
    is_sha256_digest(d).then_some(d)
}

/// Whether `s` is `sha256:` followed by 64 lowercase hex digits.
#[must_use]
pub fn is_sha256_digest(s: &str) -> bool {
    s.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_like_the_runtimes() {
        let n = ImageName::parse("nginx");
        assert_eq!(n.name(), "docker.io/library/nginx");
        assert_eq!((n.tag, n.digest), (None, None));
        let n = ImageName::parse("localhost:5000/team/app:1.2@sha256:abc");
        assert_eq!(n.registry, "localhost:5000");
        assert_eq!(n.repository, "team/app");
        assert_eq!(n.tag.as_deref(), Some("1.2"));
        assert_eq!(n.digest.as_deref(), Some("sha256:abc"));
        assert_eq!(
            ImageName::parse("bitnami/redis:7").name(),
            "docker.io/bitnami/redis"
        );
        assert_eq!(
            ImageName::parse("index.docker.io/busybox:latest").name(),
            "docker.io/library/busybox"
        );
        assert_eq!(ImageName::parse("ghcr.io/a/b/c").name(), "ghcr.io/a/b/c");
    }

    #[test]
    fn image_ids() {
        let hex = "a".repeat(64);
        let d = format!("sha256:{hex}");
        assert_eq!(
            image_id_digest(&format!("docker-pullable://nginx@{d}")),
            Some(d.as_str())
        );
        assert_eq!(
            image_id_digest(&format!("docker.io/library/nginx@{d}")),
            Some(d.as_str())
        );
        assert_eq!(image_id_digest(&d), Some(d.as_str()));
        assert_eq!(image_id_digest(&format!("docker://{d}")), Some(d.as_str()));
        assert_eq!(image_id_digest("nginx:1"), None);
        assert_eq!(image_id_digest("sha256:ABC"), None);
    }
}
