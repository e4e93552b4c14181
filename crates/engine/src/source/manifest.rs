//! The shell script's answer to a [`FactRequest::ManagedIntegrity`]: the `W` sub-frames (one
//! walk per prefix, every entry with its `lstat`, link text and digests) parsed into a tree,
//! and [`crate::managed::verify`] asking it as it asks [`LocalRoot`](crate::LocalRoot).
//!
//! The script cannot read the RPM database (binary SQLite), so it cannot know which files to
//! examine: it examines all of them under the prefixes, and this parser answers the `Stat` and
//! `Hash` requests of the verification from what the walk saw. A path the walk could not have
//! seen (below a symlink, a mount point `-xdev` did not enter, a directory it could not list,
//! outside the prefixes, or after a bound stopped the walk) is "not gathered", never missing and
//! never a pass. The database and account reads are the plan's own top-level reads.

use std::collections::HashMap;

use super::frame::{hex_vec, status_error, text};
use super::join_rel;
use crate::facts::{
    FactError, FactRequest, FactValue, Facts, FileKind, FileMeta, HashAlgo, IntegrityReport,
    ManagedSpec, TargetPath,
};

/// What the walk saw of one entry.
#[derive(Debug, Default)]
struct Entry {
    meta: Option<FileMeta>,
    /// `st_dev`.
    dev: u64,
    /// Digests (or why not) per algorithm.
    hashes: Vec<(HashAlgo, Result<Vec<u8>, FactError>)>,
    /// A directory the walk could not list.
    unlisted: bool,
}

/// One walk: its start as keyed, its device, and whether it saw everything.
struct Root {
    path: Vec<u8>,
    dev: Option<u64>,
    complete: bool,
    /// Why the walk did not start (the prefix missing, unreadable, a tool missing).
    error: Option<FactError>,
}

/// Every entry the walks saw, by normalized path.
#[derive(Default)]
struct Tree {
    entries: HashMap<Vec<u8>, Entry>,
    roots: Vec<Root>,
}

/// `path` without trailing slashes (`/` stays `/`).
fn norm(path: &[u8]) -> &[u8] {
    let mut p = path;
    while p.len() > 1 && p.ends_with(b"/") {
        p = &p[..p.len() - 1];
    }
    p
}

/// The parent of a normalized path (`None` for `/`).
fn parent(p: &[u8]) -> Option<&[u8]> {
    if p == b"/" {
        return None;
    }
    let at = p.iter().rposition(|&b| b == b'/')?;
    Some(if at == 0 { b"/" } else { &p[..at] })
}

/// Whether normalized `p` is `root` or below it.
fn under(p: &[u8], root: &[u8]) -> bool {
    root == b"/" || p == root || (p.starts_with(root) && p.get(root.len()) == Some(&b'/'))
}

fn not_gathered() -> FactError {
    FactError::Io("not gathered".into())
}

impl Tree {
    fn parse(spec: &ManagedSpec, walks: Vec<(String, Vec<u8>)>) -> Result<Self, FactError> {
        let bad = |what: &str| {
            FactError::Io(format!(
                "malformed package integrity walk from the fact script: {what}"
            ))
        };
        let mut tree = Tree::default();
        if walks.len() > spec.prefixes.len() {
            return Err(bad("more walks than prefixes"));
        }
        let limits = crate::managed::SCRIPT_WALK;
        for (prefix, (status, payload)) in spec.prefixes.iter().zip(walks) {
            let root_key = norm(prefix.as_bytes()).to_vec();
            if status != "ok" {
                // The prefix itself is missing (so is everything below it), unreadable, or a
                // tool is missing: what is below it answers that.
                let r = FactRequest::Stat(prefix.clone());
                tree.roots.push(Root {
                    path: root_key,
                    dev: None,
                    complete: false,
                    error: Some(status_error(&status, &r)),
                });
                continue;
            }
            let mut complete = true;
            let mut dev = None;
            let mut examined = 0u64;
            let mut last: Option<Vec<u8>> = None;
            for record in payload.split(|&b| b == b'\n') {
                let record: Vec<u8> = record
                    .iter()
                    .map(|&b| if b == 0 { b'\n' } else { b })
                    .collect();
                let Some((&tag, rest)) = record.split_first() else {
                    continue;
                };
                match tag {
                    b'M' => {
                        examined += 1;
                        if examined > limits.max_entries {
                            complete = false;
                            break;
                        }
                        let mut parts = rest.splitn(6, |&b| b == b':');
                        let fields: Vec<&[u8]> = parts.by_ref().take(5).collect();
                        let rel = parts.next().ok_or_else(|| bad("entry"))?;
                        let [mode, uid, gid, size, d] = fields[..] else {
                            return Err(bad("entry"));
                        };
                        let num = |f: &[u8]| text(f).parse::<u64>().ok();
                        let mode =
                            u32::from_str_radix(&text(mode), 16).map_err(|_| bad("entry mode"))?;
                        let (uid, gid, size, d) = match (num(uid), num(gid), num(size), num(d)) {
                            (Some(u), Some(g), Some(s), Some(d)) => (u, g, s, d),
                            _ => return Err(bad("entry metadata")),
                        };
                        let meta = super::meta_from_raw(
                            mode,
                            u32::try_from(uid).map_err(|_| bad("uid"))?,
                            u32::try_from(gid).map_err(|_| bad("gid"))?,
                            size,
                        )
                        .ok_or_else(|| bad("entry type"))?;
                        let path = join_rel(prefix, rel).ok_or_else(|| bad("path"))?;
                        let key = norm(path.as_bytes()).to_vec();
                        if rel.is_empty() {
                            dev = Some(d);
                        }
                        tree.entries.insert(
                            key.clone(),
                            Entry {
                                meta: Some(meta),
                                dev: d,
                                ..Entry::default()
                            },
                        );
                        last = Some(key);
                    }
                    b'L' => {
                        let e = last
                            .as_ref()
                            .and_then(|k| tree.entries.get_mut(k))
                            .and_then(|e| e.meta.as_mut())
                            .filter(|m| m.kind == FileKind::Symlink)
                            .ok_or_else(|| bad("link"))?;
                        e.link_target = Some(rest.to_vec());
                    }
                    b'F' => {
                        // The file whose digests follow.
                        let path = join_rel(prefix, rest).ok_or_else(|| bad("path"))?;
                        let key = norm(path.as_bytes()).to_vec();
                        let is_file = tree
                            .entries
                            .get(&key)
                            .and_then(|e| e.meta.as_ref())
                            .is_some_and(|m| m.kind == FileKind::File);
                        if !is_file {
                            return Err(bad("digest of an entry that is no regular file"));
                        }
                        last = Some(key);
                    }
                    b'H' | b'X' => {
                        let at = rest
                            .iter()
                            .position(|&b| b == b':')
                            .ok_or_else(|| bad("digest"))?;
                        let algo = HashAlgo::from_name(&text(&rest[..at]))
                            .filter(|a| spec.algorithms.contains(a))
                            .ok_or_else(|| bad("digest algorithm"))?;
                        let value = text(&rest[at + 1..]);
                        let key = last.as_ref().ok_or_else(|| bad("digest"))?;
                        let answer = if tag == b'H' {
                            Ok(hex_vec(Some(&value), algo.digest_len())?)
                        } else {
                            let r = crate::managed::hash_request(
                                TargetPath::new(key.clone()).ok_or_else(|| bad("path"))?,
                                algo,
                            );
                            Err(status_error(&value, &r))
                        };
                        let e = tree.entries.get_mut(key).ok_or_else(|| bad("digest"))?;
                        e.hashes.push((algo, answer));
                    }
                    b'S' => {
                        // A directory it could not list (or an entry that vanished).
                        let at = rest
                            .iter()
                            .position(|&b| b == b':')
                            .ok_or_else(|| bad("skip"))?;
                        let path = join_rel(prefix, &rest[at + 1..]).ok_or_else(|| bad("path"))?;
                        let key = norm(path.as_bytes()).to_vec();
                        tree.entries.entry(key).or_default().unlisted = true;
                    }
                    // The deadline passed, or entries lie deeper than the walk goes.
                    b'T' | b'D' => complete = false,
                    b'.' => {}
                    _ => return Err(bad("tag")),
                }
            }
            tree.roots.push(Root {
                path: root_key,
                dev,
                complete,
                error: None,
            });
        }
        Ok(tree)
    }

    /// Why normalized `p` is absent from the walk: `NotFound` when the walk would have seen
    /// it, else "not gathered" (or `WrongKind` below a file, as `lstat` says).
    fn absent(&self, p: &[u8]) -> FactError {
        // Below a prefix whose walk did not start: its error (only if no walk saw the path).
        if let Some(e) = self
            .roots
            .iter()
            .filter(|r| under(p, &r.path))
            .find_map(|r| r.error.clone())
            && !self.roots.iter().any(|r| r.complete && under(p, &r.path))
        {
            return e;
        }
        let Some(root) = self
            .roots
            .iter()
            .find(|r| r.complete && r.dev.is_some() && under(p, &r.path))
        else {
            return not_gathered();
        };
        let mut at = parent(p);
        while let Some(a) = at {
            if !under(a, &root.path) {
                return not_gathered();
            }
            if let Some(e) = self.entries.get(a) {
                return match &e.meta {
                    Some(m) if m.kind == FileKind::Directory => {
                        if e.unlisted || Some(e.dev) != root.dev {
                            not_gathered()
                        } else {
                            FactError::NotFound
                        }
                    }
                    Some(m) if m.kind != FileKind::Symlink => FactError::WrongKind {
                        expected: "directory".into(),
                    },
                    _ => not_gathered(),
                };
            }
            at = parent(a);
        }
        not_gathered()
    }

    /// The `lstat` of `path` (of the directory it leads to with a trailing `/`).
    fn stat(&self, path: &TargetPath) -> Result<FileMeta, FactError> {
        let bytes = path.as_bytes();
        let p = norm(bytes);
        let Some(e) = self.entries.get(p) else {
            return Err(self.absent(p));
        };
        let m = e.meta.clone().ok_or_else(not_gathered)?;
        if !(bytes.ends_with(b"/") && bytes.len() > 1) {
            return Ok(m);
        }
        match m.kind {
            FileKind::Directory => Ok(m),
            FileKind::Symlink => {
                // Followed once inside the walked tree; anything further is not gathered.
                let text = m.link_target.unwrap_or_default();
                let mut target = if text.starts_with(b"/") {
                    Vec::new()
                } else {
                    parent(p).unwrap_or(b"/").to_vec()
                };
                for c in text.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
                    match c {
                        b"." => {}
                        b".." => target = parent(&target).unwrap_or(b"/").to_vec(),
                        _ => {
                            if target.last() != Some(&b'/') {
                                target.push(b'/');
                            }
                            target.extend_from_slice(c);
                        }
                    }
                }
                if target.is_empty() {
                    target.push(b'/');
                }
                match self.entries.get(&target).and_then(|e| e.meta.clone()) {
                    Some(t) if t.kind == FileKind::Directory => Ok(t),
                    Some(t) if t.kind == FileKind::Symlink => Err(not_gathered()),
                    Some(_) => Err(FactError::WrongKind {
                        expected: "directory".into(),
                    }),
                    None => Err(self.absent(&target)),
                }
            }
            _ => Err(FactError::WrongKind {
                expected: "directory".into(),
            }),
        }
    }

    fn hash(&self, path: &TargetPath, algo: HashAlgo) -> Result<Vec<u8>, FactError> {
        let p = norm(path.as_bytes());
        let Some(e) = self.entries.get(p) else {
            return Err(self.absent(p));
        };
        match e.meta.as_ref().map(|m| m.kind) {
            Some(FileKind::File) => e
                .hashes
                .iter()
                .find(|(a, _)| *a == algo)
                .map_or_else(|| Err(not_gathered()), |(_, h)| h.clone()),
            _ => Err(not_gathered()),
        }
    }
}

/// The report of `spec` from its walks and the plan's other answers.
pub(super) fn report(
    spec: &ManagedSpec,
    walks: Vec<(String, Vec<u8>)>,
    facts: &Facts,
) -> Result<IntegrityReport, FactError> {
    let tree = Tree::parse(spec, walks)?;
    let mut ask = |rs: &[FactRequest]| -> Vec<Result<FactValue, FactError>> {
        rs.iter()
            .map(|r| match r {
                FactRequest::Read { .. } => {
                    facts.get(r).cloned().unwrap_or_else(|| Err(not_gathered()))
                }
                FactRequest::Stat(p) => tree.stat(p).map(FactValue::Meta),
                FactRequest::Hash { path, algo, .. } => tree.hash(path, *algo).map(FactValue::Hash),
                _ => Err(not_gathered()),
            })
            .collect()
    };
    crate::managed::verify(spec, &mut ask)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::PackageManager;

    fn spec(prefixes: &[&str]) -> ManagedSpec {
        ManagedSpec {
            manager: PackageManager::Rpm,
            prefixes: prefixes
                .iter()
                .map(|p| TargetPath::new(*p).unwrap())
                .collect(),
            max_files: 10,
            algorithms: vec![HashAlgo::Sha256],
        }
    }

    /// A walk's payload: records as the handler writes them (`\n`-terminated after `tr`).
    fn walk(records: &[&str]) -> (String, Vec<u8>) {
        let mut p = Vec::new();
        for r in records {
            p.extend_from_slice(r.as_bytes());
            p.push(b'\n');
        }
        ("ok".into(), p)
    }

    fn tp(p: &str) -> TargetPath {
        TargetPath::new(p).unwrap()
    }

    const D: &str = "41ed:0:0:4096";
    const F: &str = "81a4:0:0:3";

    #[test]
    fn only_what_the_walk_could_have_seen_is_missing() {
        let h = "ab".repeat(32);
        let records = [
            format!("M{D}:7:"),
            format!("M{D}:7:/usr"),
            format!("M{D}:7:/usr/bin"),
            format!("M{F}:7:/usr/bin/sh"),
            "F/usr/bin/sh".into(),
            format!("Hsha256:{h}"),
            "Ma1ff:0:0:7:7:/bin".into(),
            "Lusr/bin".into(),
            // A mount point -xdev did not enter, and a directory it could not list.
            format!("M{D}:9:/mnt"),
            format!("M{D}:7:/secret"),
            "SPermissionDenied:/secret".into(),
            format!("M{F}:7:/file"),
        ];
        let refs: Vec<&str> = records.iter().map(String::as_str).collect();
        let tree = Tree::parse(&spec(&["/"]), vec![walk(&refs)]).unwrap();
        assert_eq!(tree.stat(&tp("/usr/bin/sh")).unwrap().size, 3);
        assert_eq!(
            tree.hash(&tp("/usr/bin/sh"), HashAlgo::Sha256),
            Ok(vec![0xab; 32])
        );
        // Seen directory, no such entry: missing.
        assert_eq!(tree.stat(&tp("/usr/bin/gone")), Err(FactError::NotFound));
        assert_eq!(tree.stat(&tp("/usr/lib/x/y")), Err(FactError::NotFound));
        // Below a symlink, a mount point, an unlisted directory: not gathered, never missing.
        for p in ["/bin/sh", "/mnt/x", "/secret/x"] {
            assert_eq!(tree.stat(&tp(p)), Err(not_gathered()), "{p}");
        }
        // Below a file: not a directory, as lstat says.
        assert!(matches!(
            tree.stat(&tp("/file/x")),
            Err(FactError::WrongKind { .. })
        ));
        // A symlink followed where a directory is expected (`path/`), inside the walk.
        assert_eq!(tree.stat(&tp("/bin/")).unwrap().kind, FileKind::Directory);
        // No digest was computed for another algorithm.
        assert_eq!(
            tree.hash(&tp("/usr/bin/sh"), HashAlgo::Md5),
            Err(not_gathered())
        );
    }

    #[test]
    fn a_walk_cut_short_or_failed_gathers_nothing_missing() {
        for cut in ["T", "D"] {
            let records = [format!("M{D}:7:"), cut.to_string()];
            let refs: Vec<&str> = records.iter().map(String::as_str).collect();
            let tree = Tree::parse(&spec(&["/"]), vec![walk(&refs)]).unwrap();
            assert_eq!(tree.stat(&tp("/gone")), Err(not_gathered()), "{cut}");
        }
        // A prefix that is not there: nothing below it is; a tool missing: its error.
        let tree = Tree::parse(&spec(&["/usr/"]), vec![("NotFound".into(), Vec::new())]).unwrap();
        assert_eq!(tree.stat(&tp("/usr/bin")), Err(FactError::NotFound));
        let tree = Tree::parse(
            &spec(&["/usr/"]),
            vec![("Io:find-not-available".into(), Vec::new())],
        )
        .unwrap();
        assert_eq!(
            tree.stat(&tp("/usr/bin")),
            Err(FactError::Io("find not available".into()))
        );
        // Outside every prefix.
        let records = [format!("M{D}:7:")];
        let refs: Vec<&str> = records.iter().map(String::as_str).collect();
        let tree = Tree::parse(&spec(&["/usr/"]), vec![walk(&refs)]).unwrap();
        assert_eq!(tree.stat(&tp("/etc/x")), Err(not_gathered()));
        assert_eq!(tree.stat(&tp("/usr/x")), Err(FactError::NotFound));
    }

    #[test]
    fn damaged_records_are_errors() {
        for bad in [
            "Mzz:0:0:1:7:/x",
            "M81a4:0:0:1:/x",
            "Lorphan",
            "Hsha256:00",
            "Q?",
        ] {
            let records = [format!("M{D}:7:"), bad.to_string()];
            let refs: Vec<&str> = records.iter().map(String::as_str).collect();
            assert!(
                Tree::parse(&spec(&["/"]), vec![walk(&refs)]).is_err(),
                "{bad}"
            );
        }
    }
}
