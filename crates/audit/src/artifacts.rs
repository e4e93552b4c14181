//! Credential artifacts: finding a scoped token's bytes in files, environment variables,
//! memfds and log text — without keeping the token.
//!
//! A [`TokenFingerprint`] holds, per form of the token (as is, and base64 as a Secret's `data`
//! or a hand-made kubeconfig would hold it), only its length, a 64-bit rolling hash and its
//! SHA-256. A search rolls the hash over the haystack and confirms each candidate window with
//! SHA-256: linear in the haystack, and the token itself can be dropped (zeroized) as soon as
//! it is minted. What is reported is a location and the fingerprint's id (a SHA-256 prefix),
//! never any byte of the token.

use std::ffi::OsString;
use std::fs::File;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use secrecy::zeroize::Zeroizing;
use secrecy::{ExposeSecret as _, SecretString};
use sha2::{Digest as _, Sha256};

/// The rolling hash's base (the 64-bit FNV prime: odd, so multiplication is invertible).
const BASE: u64 = 0x0000_0100_0000_01b3;

/// One form of a token: enough to recognise it, not enough to rebuild it.
#[derive(Clone)]
struct Form {
    encoding: &'static str,
    len: usize,
    roll: u64,
    sha256: [u8; 32],
}

fn roll_of(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0u64, |h, &b| {
        h.wrapping_mul(BASE).wrapping_add(u64::from(b) + 1)
    })
}

impl Form {
    fn new(encoding: &'static str, bytes: &[u8]) -> Self {
        Self {
            encoding,
            len: bytes.len(),
            roll: roll_of(bytes),
            sha256: Sha256::digest(bytes).into(),
        }
    }

    /// The offset of the first occurrence in `hay`, if any.
    fn find(&self, hay: &[u8]) -> Option<usize> {
        let l = self.len;
        if l == 0 || hay.len() < l {
            return None;
        }
        // BASE^(l-1): the weight of the byte leaving the window.
        let pow = (1..l).fold(1u64, |p, _| p.wrapping_mul(BASE));
        let mut h = roll_of(&hay[..l]);
        for start in 0..=hay.len() - l {
            if start > 0 {
                let out = u64::from(hay[start - 1]) + 1;
                let inn = u64::from(hay[start + l - 1]) + 1;
                h = h
                    .wrapping_sub(out.wrapping_mul(pow))
                    .wrapping_mul(BASE)
                    .wrapping_add(inn);
            }
            if h == self.roll && Sha256::digest(&hay[start..start + l])[..] == self.sha256[..] {
                return Some(start);
            }
        }
        None
    }
}

/// What identifies one token for the artifact search. `Debug` shows the id only.
#[derive(Clone)]
pub struct TokenFingerprint {
    id: String,
    forms: Vec<Form>,
}

impl std::fmt::Debug for TokenFingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenFingerprint({})", self.id)
    }
}

impl TokenFingerprint {
    /// The fingerprint of `token`. The token is read once, here; nothing of it is kept but
    /// lengths and hashes (the base64 copy made on the way is wiped).
    #[must_use]
    pub fn of(token: &SecretString) -> Self {
        use base64::Engine as _;
        let plain = token.expose_secret().as_bytes();
        let b64 = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(plain));
        let sha = Sha256::digest(plain);
        Self {
            id: hex::encode(&sha[..6]),
            forms: vec![
                Form::new("plain", plain),
                Form::new("base64", b64.as_bytes()),
            ],
        }
    }

    /// A short, non-secret name for the token: the first 12 hex digits of its SHA-256.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether (and in which form, where) the token occurs in `hay`.
    #[must_use]
    pub fn find(&self, hay: &[u8]) -> Option<(usize, &'static str)> {
        self.forms
            .iter()
            .find_map(|f| f.find(hay).map(|at| (at, f.encoding)))
    }

    fn longest(&self) -> usize {
        self.forms.iter().map(|f| f.len).max().unwrap_or(0)
    }
}

/// Where a token was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ArtifactKind {
    /// A file (or an open, deleted file).
    File,
    /// An environment variable of this process.
    EnvVar,
    /// A memfd this process still holds.
    Memfd,
    /// A log line.
    Log,
}

/// One credential artifact: where a token was found. Never the token.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Artifact {
    /// What kind of place.
    pub kind: ArtifactKind,
    /// The place: a path, a variable's name, `fd N (memfd:NAME)`, `LOG line N`.
    pub location: String,
    /// The token's fingerprint id.
    pub token: String,
    /// How it was written: `plain` or `base64`.
    pub encoding: String,
}

/// A log to search, already in memory.
#[derive(Debug, Clone)]
pub struct LogText {
    /// What it is, e.g. `stderr (KEYHOLE_LOG)`.
    pub location: String,
    /// Its bytes.
    pub text: Vec<u8>,
}

/// Bounds of the file search: a shared `/tmp` must not make the audit run for ever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanLimits {
    /// Directory levels below each root.
    pub max_depth: usize,
    /// Directory entries looked at, over all roots.
    pub max_entries: usize,
    /// Bytes read from one file; a longer file is searched up to here and reported as
    /// partly checked.
    pub max_file_bytes: u64,
}

impl Default for ScanLimits {
    fn default() -> Self {
        Self {
            max_depth: 8,
            max_entries: 200_000,
            max_file_bytes: 256 << 20,
        }
    }
}

/// Where to look for credential artifacts. [`ArtifactScope::for_process`] fills it for the
/// running process; tests build their own.
#[derive(Debug, Clone)]
pub struct ArtifactScope {
    /// Directories searched recursively (the temp dirs the process used).
    pub roots: Vec<PathBuf>,
    /// Single files the run wrote (an output file, the audit log).
    pub files: Vec<PathBuf>,
    /// When the run began: a file whose contents did not change since (mtime and ctime
    /// older) cannot hold a token minted later, and is not read.
    pub since: SystemTime,
    /// Environment variables (name, value) to search.
    pub env: Vec<(OsString, OsString)>,
    /// The open-descriptor directory to search for memfds and deleted files
    /// (`/proc/self/fd`).
    pub fd_dir: Option<PathBuf>,
    /// Log text to search.
    pub logs: Vec<LogText>,
    /// Bounds of the file search.
    pub limits: ScanLimits,
}

impl ArtifactScope {
    /// This process: its temp dir (`TMPDIR` or `/tmp`), `XDG_RUNTIME_DIR` and `~/.kube`
    /// (where kubectl keeps its caches) searched, the given `files`, its environment and
    /// `/proc/self/fd`, for a run that began at `since` (less a second of clock slack).
    #[must_use]
    pub fn for_process(since: SystemTime, files: Vec<PathBuf>, logs: Vec<LogText>) -> Self {
        let mut roots = vec![std::env::temp_dir()];
        if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR") {
            roots.push(PathBuf::from(d));
        }
        if let Some(h) = std::env::var_os("HOME") {
            roots.push(Path::new(&h).join(".kube"));
        }
        roots.sort();
        roots.dedup();
        Self {
            roots,
            files,
            since: since.checked_sub(Duration::from_secs(1)).unwrap_or(since),
            env: std::env::vars_os().collect(),
            fd_dir: Some(PathBuf::from("/proc/self/fd")),
            logs,
            limits: ScanLimits::default(),
        }
    }
}

/// What the artifact search found and how much it looked at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArtifactScan {
    /// Every place a token was found.
    pub found: Vec<Artifact>,
    /// Files read (changed since the run began).
    pub files_read: usize,
    /// Environment variables searched.
    pub env_vars: usize,
    /// Memfds (and open deleted files) searched.
    pub memfds: usize,
    /// Memfds named `keyhole-*` still open after teardown, as `fd N (memfd:NAME)`.
    pub keyhole_memfds: Vec<String>,
    /// Log bytes searched.
    pub log_bytes: usize,
    /// What could not be searched (unreadable, too big, too deep, a limit reached), per kind.
    pub unchecked_files: Vec<String>,
    /// Descriptors that could not be read.
    pub unchecked_fds: Vec<String>,
}

/// Searches `scope` for every token of `tokens`.
#[must_use]
pub fn scan_artifacts(tokens: &[TokenFingerprint], scope: &ArtifactScope) -> ArtifactScan {
    let mut out = ArtifactScan::default();
    if tokens.is_empty() {
        return out;
    }
    // Files.
    let mut budget = scope.limits.max_entries;
    for root in &scope.roots {
        // The walk stays on the root's filesystem: a mount below a temp dir (a container's
        // rootfs with its /proc, a FUSE share) is not what this process wrote, and /proc holds
        // "regular files" such as kcore that must never be read.
        match std::fs::metadata(root) {
            Ok(m) if m.is_dir() => walk(root, m.dev(), 0, tokens, scope, &mut budget, &mut out),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => out
                .unchecked_files
                .push(format!("{}: cannot read ({e})", root.display())),
        }
    }
    for f in &scope.files {
        match std::fs::symlink_metadata(f) {
            Ok(m) if m.is_file() => search_file(f, &m, tokens, scope, &mut out),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => out.unchecked_files.push(format!("{}: {e}", f.display())),
        }
    }
    // Environment.
    for (name, value) in &scope.env {
        out.env_vars += 1;
        for bytes in [name.as_encoded_bytes(), value.as_encoded_bytes()] {
            for t in tokens {
                if let Some((_, enc)) = t.find(bytes) {
                    out.found.push(Artifact {
                        kind: ArtifactKind::EnvVar,
                        location: format!("environment variable {}", name.to_string_lossy()),
                        token: t.id().to_owned(),
                        encoding: enc.to_owned(),
                    });
                }
            }
        }
    }
    // Open descriptors: memfds, and files deleted while still open.
    if let Some(dir) = &scope.fd_dir {
        search_fds(dir, tokens, &mut out);
    }
    // Logs.
    for log in &scope.logs {
        out.log_bytes += log.text.len();
        for t in tokens {
            if let Some((at, enc)) = t.find(&log.text) {
                let line = log.text[..at].iter().filter(|&&b| b == b'\n').count() + 1;
                out.found.push(Artifact {
                    kind: ArtifactKind::Log,
                    location: format!("{} line {line}", log.location),
                    token: t.id().to_owned(),
                    encoding: enc.to_owned(),
                });
            }
        }
    }
    out
}

fn walk(
    dir: &Path,
    dev: u64,
    depth: usize,
    tokens: &[TokenFingerprint],
    scope: &ArtifactScope,
    budget: &mut usize,
    out: &mut ArtifactScan,
) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && depth == 0 => return,
        Err(e) => {
            out.unchecked_files
                .push(format!("{}: cannot list ({e})", dir.display()));
            return;
        }
    };
    for entry in entries.flatten() {
        if *budget == 0 {
            out.unchecked_files.push(format!(
                "{}: entry limit ({}) reached, the rest not searched",
                dir.display(),
                scope.limits.max_entries
            ));
            return;
        }
        *budget -= 1;
        let path = entry.path();
        // Never follows symlinks: a link is not an artifact, its target is searched where it is.
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            if meta.dev() != dev {
                out.unchecked_files.push(format!(
                    "{}: another filesystem, not searched",
                    path.display()
                ));
            } else if depth + 1 >= scope.limits.max_depth {
                out.unchecked_files
                    .push(format!("{}: deeper than the depth limit", path.display()));
            } else {
                walk(&path, dev, depth + 1, tokens, scope, budget, out);
            }
        } else if meta.is_file() {
            search_file(&path, &meta, tokens, scope, out);
        }
    }
}

fn changed_since(meta: &std::fs::Metadata, since: SystemTime) -> bool {
    let secs = |s: i64, ns: i64| {
        let s = u64::try_from(s).unwrap_or(0);
        let ns = u32::try_from(ns).unwrap_or(0);
        SystemTime::UNIX_EPOCH + Duration::new(s, ns)
    };
    secs(meta.mtime(), meta.mtime_nsec()) >= since || secs(meta.ctime(), meta.ctime_nsec()) >= since
}

fn search_file(
    path: &Path,
    meta: &std::fs::Metadata,
    tokens: &[TokenFingerprint],
    scope: &ArtifactScope,
    out: &mut ArtifactScan,
) {
    if !changed_since(meta, scope.since) {
        return;
    }
    match File::open(path) {
        Ok(mut f) => {
            out.files_read += 1;
            let location = path.display().to_string();
            match search_reader(&mut f, tokens, scope.limits.max_file_bytes) {
                Ok((hits, complete)) => {
                    if !complete {
                        out.unchecked_files.push(format!(
                            "{location}: only the first {} bytes searched",
                            scope.limits.max_file_bytes
                        ));
                    }
                    for (t, enc) in hits {
                        out.found.push(Artifact {
                            kind: ArtifactKind::File,
                            location: location.clone(),
                            token: t,
                            encoding: enc.to_owned(),
                        });
                    }
                }
                Err(e) => out.unchecked_files.push(format!("{location}: {e}")),
            }
        }
        Err(e) => out
            .unchecked_files
            .push(format!("{}: cannot open ({e})", path.display())),
    }
}

/// Searches a stream in chunks that overlap by the longest form less one byte, so a token
/// across a chunk boundary is still found. Returns (token id, encoding) per token found, and
/// whether the whole stream was searched.
fn search_reader(
    r: &mut dyn std::io::Read,
    tokens: &[TokenFingerprint],
    max: u64,
) -> std::io::Result<(Vec<(String, &'static str)>, bool)> {
    const CHUNK: usize = 1 << 20;
    let overlap = tokens
        .iter()
        .map(TokenFingerprint::longest)
        .max()
        .unwrap_or(1)
        .saturating_sub(1);
    let mut found: Vec<(String, &'static str)> = Vec::new();
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK + overlap);
    let mut read_total: u64 = 0;
    let mut chunk = vec![0u8; CHUNK];
    loop {
        let want = usize::try_from((max - read_total).min(CHUNK as u64)).unwrap_or(CHUNK);
        if want == 0 {
            // Is there more than the limit?
            let more = r.read(&mut chunk[..1])? > 0;
            return Ok((found, !more));
        }
        let n = r.read(&mut chunk[..want])?;
        if n == 0 {
            return Ok((found, true));
        }
        read_total += n as u64;
        buf.extend_from_slice(&chunk[..n]);
        for t in tokens {
            if found.iter().any(|(id, _)| id == t.id()) {
                continue;
            }
            if let Some((_, enc)) = t.find(&buf) {
                found.push((t.id().to_owned(), enc));
            }
        }
        let keep = buf.len().min(overlap);
        buf.drain(..buf.len() - keep);
    }
}

fn search_fds(dir: &Path, tokens: &[TokenFingerprint], out: &mut ArtifactScan) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        out.unchecked_fds
            .push(format!("{}: cannot list", dir.display()));
        return;
    };
    for entry in entries.flatten() {
        let fd = entry.file_name().to_string_lossy().into_owned();
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        let target = target.to_string_lossy().into_owned();
        let memfd = target.strip_prefix("/memfd:");
        let deleted_file = target.starts_with('/') && target.ends_with(" (deleted)");
        if memfd.is_none() && !deleted_file {
            continue;
        }
        let location = match memfd {
            Some(name) => {
                let name = name.trim_end_matches(" (deleted)");
                let l = format!("fd {fd} (memfd:{name})");
                if name.starts_with("keyhole") {
                    out.keyhole_memfds.push(l.clone());
                }
                l
            }
            None => format!("fd {fd} ({target})"),
        };
        // A deleted regular file that is not a plain file (a socket, a pipe) cannot be read.
        match File::open(entry.path()) {
            Ok(mut f) => {
                if !f.metadata().is_ok_and(|m| m.is_file()) {
                    continue;
                }
                out.memfds += 1;
                match search_reader(&mut f, tokens, ScanLimits::default().max_file_bytes) {
                    Ok((hits, _)) => {
                        for (t, enc) in hits {
                            out.found.push(Artifact {
                                kind: if memfd.is_some() {
                                    ArtifactKind::Memfd
                                } else {
                                    ArtifactKind::File
                                },
                                location: location.clone(),
                                token: t,
                                encoding: enc.to_owned(),
                            });
                        }
                    }
                    Err(e) => out.unchecked_fds.push(format!("{location}: {e}")),
                }
            }
            Err(e) => out.unchecked_fds.push(format!("{location}: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(s: &str) -> TokenFingerprint {
        TokenFingerprint::of(&SecretString::from(s.to_owned()))
    }

    #[test]
    fn finds_the_token_anywhere_and_nothing_else() {
        let t = fp("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl");
        assert_eq!(
            t.find(b"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"),
            Some((0, "plain"))
        );
        assert_eq!(
            t.find(b"token: eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl\n"),
            Some((7, "plain"))
        );
        // One byte different, or cut short: not the token.
        assert_eq!(
            t.find(b"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJm"),
            None
        );
        assert_eq!(
            t.find(b"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJ"),
            None
        );
        assert_eq!(t.find(b""), None);
    }

    #[test]
    fn finds_the_base64_form_and_across_chunk_boundaries() {
        use base64::Engine as _;
        let token = "x".repeat(40) + "secret-part";
        let t = fp(&token);
        let b64 = base64::engine::general_purpose::STANDARD.encode(&token);
        assert_eq!(
            t.find(format!("data: {b64}").as_bytes()),
            Some((6, "base64"))
        );
        // A token straddling the 1 MiB chunk boundary.
        let mut hay = vec![b'.'; (1 << 20) - 10];
        hay.extend_from_slice(token.as_bytes());
        hay.extend_from_slice(b"....");
        let (hits, complete) =
            search_reader(&mut hay.as_slice(), std::slice::from_ref(&t), u64::MAX).unwrap();
        assert!(complete);
        assert_eq!(hits, vec![(t.id().to_owned(), "plain")]);
        // Past the byte limit: not searched, and said so.
        let (hits, complete) = search_reader(&mut hay.as_slice(), &[t], 1 << 19).unwrap();
        assert!(hits.is_empty() && !complete);
    }

    #[test]
    fn the_walk_stays_on_one_filesystem() {
        // `/proc` and `/sys` are mounts below `/` on every Linux: the walk notes them and does
        // not enter them. No file is read (`since` is in the future).
        let scope = ArtifactScope {
            roots: vec![PathBuf::from("/")],
            files: vec![],
            since: SystemTime::now() + Duration::from_secs(3600),
            env: vec![],
            fd_dir: None,
            logs: vec![],
            limits: ScanLimits {
                max_depth: 2,
                ..ScanLimits::default()
            },
        };
        let scan = scan_artifacts(&[fp("some-token-value-0123456789")], &scope);
        for mount in ["/proc", "/sys"] {
            assert!(
                scan.unchecked_files
                    .contains(&format!("{mount}: another filesystem, not searched")),
                "{:?}",
                scan.unchecked_files
            );
        }
        assert_eq!(scan.files_read, 0);
    }

    #[test]
    fn debug_shows_the_id_only() {
        let t = fp("a-very-secret-token-value");
        let d = format!("{t:?}");
        assert!(!d.contains("secret"), "{d}");
        assert!(d.contains(t.id()));
        assert_eq!(t.id().len(), 12);
    }
}
