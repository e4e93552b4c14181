//! Validated, pinned container image references.

use std::fmt;

use crate::ScannerError;

/// The scanner image used when the user names none, pinned by the manifest digest of the image
/// `cargo xtask image` builds reproducibly from this source (static release agent,
/// `SOURCE_DATE_EPOCH` 0). `cargo xtask ci` rebuilds it and fails, naming the new digest, when
/// the agent, its dependencies or the toolchain changed it.
pub const DEFAULT_SCANNER_IMAGE: &str = "ghcr.io/keyhole-scanner/keyhole-agent:0.1.0@sha256:01417bb7ac611e9d0af97f2b8d913636942f5eeedfefe99ca0806d220c5eb1b8";

/// Longest repository name (registry and path) that registries accept.
const NAME_MAX: usize = 255;
/// Longest tag.
const TAG_MAX: usize = 128;
/// Length of a sha256 digest in hex.
const SHA256_HEX: usize = 64;

/// A container image reference `[registry[:port]/]path[:tag][@sha256:<64 lowercase hex>]`,
/// checked with the grammar registries use, and pinned: it has a tag or a digest, and `:latest`
/// only together with a digest.
///
/// A scanner that runs whatever `latest` resolves to today could be a different program from
/// the one that was vetted, so an unpinned reference is refused rather than warned about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    full: String,
    registry: Option<String>,
    path: String,
    tag: Option<String>,
    digest: Option<String>,
}

impl ImageRef {
    /// Parses and checks `reference`.
    pub fn parse(reference: &str) -> Result<Self, ScannerError> {
        let invalid = |reason: &str| ScannerError::InvalidImage {
            value: reference.to_string(),
            reason: reason.to_string(),
        };
        if reference.is_empty() {
            return Err(invalid("it is empty"));
        }
        let (name_tag, digest) = match reference.split_once('@') {
            Some((n, d)) => {
                let hex = d
                    .strip_prefix("sha256:")
                    .ok_or_else(|| invalid("the digest must be sha256:<64 lowercase hex>"))?;
                let ok = hex.len() == SHA256_HEX
                    && hex
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
                if !ok {
                    return Err(invalid("the digest must be sha256:<64 lowercase hex>"));
                }
                (n, Some(d.to_string()))
            }
            None => (reference, None),
        };
        // A tag is the part after the last ':' that follows the last '/': earlier colons belong
        // to a registry port.
        let last_slash = name_tag.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name_tag[last_slash..].rfind(':') {
            Some(i) => {
                let i = last_slash + i;
                (&name_tag[..i], Some(&name_tag[i + 1..]))
            }
            None => (name_tag, None),
        };
        if let Some(t) = tag {
            check_tag(t).map_err(invalid)?;
        }
        if name.len() > NAME_MAX {
            return Err(invalid("the name must be at most 255 characters"));
        }
        let (registry, path) = split_registry(name);
        if let Some(r) = registry {
            check_registry(r).map_err(invalid)?;
        }
        check_path(path).map_err(invalid)?;

        let unpinned = |reason: &str| ScannerError::UnpinnedImage {
            value: reference.to_string(),
            reason: reason.to_string(),
        };
        match (tag, &digest) {
            (None, None) => return Err(unpinned("it has neither a tag nor a digest")),
            (Some("latest"), None) => {
                return Err(unpinned(":latest names whatever was pushed last"));
            }
            _ => {}
        }
        Ok(Self {
            full: reference.to_string(),
            registry: registry.map(str::to_string),
            path: path.to_string(),
            tag: tag.map(str::to_string),
            digest,
        })
    }

    /// True when the reference carries a digest, so it names exactly one image whatever happens
    /// to the tags in the registry.
    pub fn is_digest_pinned(&self) -> bool {
        self.digest.is_some()
    }

    /// The registry host (with port), when the reference names one.
    pub fn registry(&self) -> Option<&str> {
        self.registry.as_deref()
    }

    /// The repository path inside the registry.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The tag, when there is one.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest (`sha256:<hex>`), when there is one.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// The whole reference, as given.
    pub fn as_str(&self) -> &str {
        &self.full
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

impl std::str::FromStr for ImageRef {
    type Err = ScannerError;
    fn from_str(s: &str) -> Result<Self, ScannerError> {
        Self::parse(s)
    }
}

/// Splits off the registry the way container runtimes do: the first component is a registry
/// when it has a '.' or ':', is `localhost`, or has uppercase letters (never valid in a path).
fn split_registry(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (Some(first), rest)
        }
        _ => (None, name),
    }
}

fn check_tag(tag: &str) -> Result<(), &'static str> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let b = tag.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= TAG_MAX
        && word(b[0])
        && b.iter().all(|&c| word(c) || c == b'.' || c == b'-');
    if ok {
        Ok(())
    } else {
        Err("the tag must be 1-128 of letters, digits, '_', '.', '-', not starting with '.' or '-'")
    }
}

fn check_registry(registry: &str) -> Result<(), &'static str> {
    const MSG: &str = "the registry must be a host name or [IPv6] address with an optional :port";
    let port_ok =
        |p: Option<&str>| p.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if let Some(rest) = registry.strip_prefix('[') {
        let (ip, after) = rest.split_once(']').ok_or(MSG)?;
        let ip_ok = !ip.is_empty() && ip.bytes().all(|b| b.is_ascii_hexdigit() || b == b':');
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or(MSG)?),
        };
        return if ip_ok && port_ok(port) {
            Ok(())
        } else {
            Err(MSG)
        };
    }
    let (host, port) = match registry.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (registry, None),
    };
    let label_ok = |l: &str| {
        let b = l.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
    };
    if host.split('.').all(label_ok) && port_ok(port) {
        Ok(())
    } else {
        Err(MSG)
    }
}

fn check_path(path: &str) -> Result<(), &'static str> {
    const MSG: &str = "each path component must be lowercase letters and digits, joined by '.', '_', '__' or dashes";
    for component in path.split('/') {
        // Split on the separators and require alphanumeric runs in between: that rejects empty
        // components, leading/trailing separators and doubled separators other than `__` and
        // dash runs.
        let b = component.as_bytes();
        let mut i = 0;
        let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
        loop {
            let start = i;
            while i < b.len() && alnum(b[i]) {
                i += 1;
            }
            if i == start {
                return Err(MSG);
            }
            if i == b.len() {
                break;
            }
            match b[i] {
                b'.' => i += 1,
                b'_' if b.get(i + 1) == Some(&b'_') => i += 2,
                b'_' => i += 1,
                b'-' => {
                    while b.get(i) == Some(&b'-') {
                        i += 1;
                    }
                }
                _ => return Err(MSG),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn accepts_pinned_references() {
        let r = ImageRef::parse(DEFAULT_SCANNER_IMAGE).unwrap();
        assert_eq!(r.registry(), Some("ghcr.io"));
        assert_eq!(r.path(), "keyhole-scanner/keyhole-agent");
        assert_eq!(r.tag(), Some("0.1.0"));
        assert!(r.is_digest_pinned());

        let r = ImageRef::parse("ghcr.io/keyhole-scanner/keyhole-agent:0.1.0").unwrap();
        assert!(!r.is_digest_pinned());

        let s = format!("localhost:5000/a/b__c.d--e:v1_2-x@{DIGEST}");
        let r = ImageRef::parse(&s).unwrap();
        assert_eq!(r.registry(), Some("localhost:5000"));
        assert_eq!(r.path(), "a/b__c.d--e");
        assert_eq!(r.tag(), Some("v1_2-x"));
        assert_eq!(r.digest(), Some(DIGEST));
        assert_eq!(r.to_string(), s);

        let r = ImageRef::parse(&format!("busybox@{DIGEST}")).unwrap();
        assert!(r.is_digest_pinned());
        assert_eq!(r.registry(), None);
        assert!(ImageRef::parse(&format!("busybox:latest@{DIGEST}")).is_ok());
        assert!(ImageRef::parse("[::1]:5000/scan:1").is_ok());
        assert!(ImageRef::parse("[fd00::1]/scan:1").is_ok());
        assert!(ImageRef::parse("Registry.Example/scan:1").is_ok());
    }

    #[test]
    fn refuses_unpinned_references_saying_so() {
        for bad in [
            "busybox",
            "ghcr.io/a/b",
            "busybox:latest",
            "localhost:5000/b",
        ] {
            let e = ImageRef::parse(bad).unwrap_err();
            assert!(
                matches!(e, ScannerError::UnpinnedImage { .. }),
                "{bad}: {e}"
            );
            assert!(e.to_string().contains("not pinned"), "{e}");
        }
    }

    #[test]
    fn refuses_malformed_references() {
        for bad in [
            "",
            "Busybox:1",
            "a//b:1",
            "a/b/:1",
            "a:",
            "a:.x",
            "a:-x",
            "a:b/c",
            "a@sha256:abc",
            "a@sha512:0123",
            &format!("a@{}", DIGEST.to_uppercase()),
            "a b:1",
            "-a:1",
            "a-:1",
            "a..b:1",
            "a___b:1",
            "reg.io:port/a:1",
            "[zz]:1/a:1",
            "[::1]x/a:1",
            "reg.io:/a:1",
            &format!("a:{}", "x".repeat(129)),
        ] {
            let e = ImageRef::parse(bad).unwrap_err();
            assert!(matches!(e, ScannerError::InvalidImage { .. }), "{bad}: {e}");
        }
    }
}
