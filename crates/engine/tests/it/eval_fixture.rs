//! An in-memory [`FactSource`] built from a fixture tree description, so the engine's
//! evaluation is tested without any real filesystem: files, directories and symlinks with
//! modes and owners, unreadable paths, and an optional target process.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use keyhole_engine::{
    Bound, Content, DirEntry, FactError, FactPlan, FactRequest, FactSource, FactValue, Facts,
    FileKind, FileMeta, HashAlgo, NamedContent, ProcFile, TargetPath, WalkLimits, WalkOutcome,
    WalkQuery,
};
use md5::Md5;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// One entry of the tree.
#[derive(Debug, Clone)]
enum Node {
    File(Vec<u8>),
    Dir,
    Symlink(Vec<u8>),
}

#[derive(Debug, Clone)]
struct Entry {
    node: Node,
    mode: u32,
    uid: u32,
    gid: u32,
}

/// A container described in memory.
#[derive(Debug, Clone, Default)]
pub(crate) struct Fixture {
    tree: BTreeMap<Vec<u8>, Entry>,
    denied: BTreeSet<Vec<u8>>,
    process: Option<BTreeMap<ProcFile, Vec<u8>>>,
    /// Every plan this source answered (to count rounds and requests).
    pub(crate) rounds: RefCell<Vec<usize>>,
}

fn parent(p: &[u8]) -> &[u8] {
    match p.iter().rposition(|b| *b == b'/') {
        Some(0) => b"/",
        Some(i) => &p[..i],
        None => b"/",
    }
}

fn name(p: &[u8]) -> &[u8] {
    p.rsplit(|b| *b == b'/').next().unwrap_or_default()
}

impl Fixture {
    /// An empty root directory.
    pub(crate) fn new() -> Self {
        let mut f = Self::default();
        f.put(b"/", Node::Dir, 0o755, 0, 0);
        f
    }

    fn put(&mut self, path: &[u8], node: Node, mode: u32, uid: u32, gid: u32) {
        let mut p = path.to_vec();
        if p.len() > 1 && p.ends_with(b"/") {
            p.pop();
        }
        let dir = parent(&p).to_vec();
        if p != b"/" && !self.tree.contains_key(&dir) {
            self.put(&dir, Node::Dir, 0o755, 0, 0);
        }
        self.tree.insert(
            p,
            Entry {
                node,
                mode,
                uid,
                gid,
            },
        );
    }

    /// A root-owned file.
    pub(crate) fn file(self, path: &str, mode: u32, content: impl AsRef<[u8]>) -> Self {
        self.owned(path, mode, 0, 0, content)
    }

    /// A file with an owner.
    pub(crate) fn owned(
        mut self,
        path: &str,
        mode: u32,
        uid: u32,
        gid: u32,
        content: impl AsRef<[u8]>,
    ) -> Self {
        self.put(
            path.as_bytes(),
            Node::File(content.as_ref().to_vec()),
            mode,
            uid,
            gid,
        );
        self
    }

    /// A root-owned directory.
    pub(crate) fn dir(mut self, path: &str, mode: u32) -> Self {
        self.put(path.as_bytes(), Node::Dir, mode, 0, 0);
        self
    }

    /// A directory with an owner.
    pub(crate) fn dir_owned(mut self, path: &str, mode: u32, uid: u32, gid: u32) -> Self {
        self.put(path.as_bytes(), Node::Dir, mode, uid, gid);
        self
    }

    /// A symbolic link.
    pub(crate) fn symlink(mut self, path: &str, target: &str) -> Self {
        self.put(
            path.as_bytes(),
            Node::Symlink(target.as_bytes().to_vec()),
            0o777,
            0,
            0,
        );
        self
    }

    /// Removes a path (and everything below it).
    pub(crate) fn remove(mut self, path: &str) -> Self {
        let p = path.as_bytes().to_vec();
        self.tree
            .retain(|k, _| !(k == &p || (k.starts_with(&p) && k.get(p.len()) == Some(&b'/'))));
        self
    }

    /// Reads of this path fail with `PermissionDenied` (its metadata stays visible).
    pub(crate) fn deny(mut self, path: &str) -> Self {
        self.denied.insert(path.as_bytes().to_vec());
        self
    }

    /// Makes the fixture a running process with these `/proc/<pid>/` files.
    pub(crate) fn process(mut self, files: &[(ProcFile, &[u8])]) -> Self {
        self.process = Some(files.iter().map(|(f, b)| (*f, b.to_vec())).collect());
        self
    }

    /// Scans the root filesystem only: no process.
    pub(crate) fn without_process(mut self) -> Self {
        self.process = None;
        self
    }

    /// Resolves `path` inside the root: symlinks in every component but the last are followed
    /// (the last only when `follow_last`), absolute targets relative to the root.
    fn resolve(&self, path: &[u8], follow_last: bool) -> Result<Vec<u8>, FactError> {
        let mut pending: Vec<Vec<u8>> = path
            .split(|b| *b == b'/')
            .filter(|c| !c.is_empty())
            .map(<[u8]>::to_vec)
            .rev()
            .collect();
        let mut cur: Vec<u8> = b"/".to_vec();
        let mut hops = 0;
        while let Some(comp) = pending.pop() {
            if comp == b"." {
                continue;
            }
            if comp == b".." {
                cur = parent(&cur).to_vec();
                continue;
            }
            let next = if cur == b"/" {
                [b"/".as_slice(), &comp].concat()
            } else {
                [cur.as_slice(), b"/", &comp].concat()
            };
            let entry = self.tree.get(&next).ok_or(FactError::NotFound)?;
            match &entry.node {
                Node::Symlink(target) if follow_last || !pending.is_empty() => {
                    hops += 1;
                    if hops > 40 {
                        return Err(FactError::Loop);
                    }
                    if target.starts_with(b"/") {
                        cur = b"/".to_vec();
                    }
                    pending.extend(
                        target
                            .split(|b| *b == b'/')
                            .filter(|c| !c.is_empty())
                            .map(<[u8]>::to_vec)
                            .rev(),
                    );
                }
                Node::File(_) | Node::Symlink(_) if !pending.is_empty() => {
                    return Err(FactError::WrongKind {
                        expected: "directory".into(),
                    });
                }
                _ => cur = next,
            }
        }
        Ok(cur)
    }

    fn meta(e: &Entry) -> FileMeta {
        let (kind, size, link_target) = match &e.node {
            Node::File(c) => (FileKind::File, c.len() as u64, None),
            Node::Dir => (FileKind::Directory, 4096, None),
            Node::Symlink(t) => (FileKind::Symlink, t.len() as u64, Some(t.clone())),
        };
        FileMeta {
            kind,
            mode: e.mode,
            uid: e.uid,
            gid: e.gid,
            size,
            link_target,
        }
    }

    fn regular(&self, path: &TargetPath) -> Result<&[u8], FactError> {
        let p = self.resolve(path.as_bytes(), true)?;
        if self.denied.contains(&p) || self.denied.contains(path.as_bytes()) {
            return Err(FactError::PermissionDenied);
        }
        match &self.tree[&p].node {
            Node::File(c) => Ok(c),
            _ => Err(FactError::WrongKind {
                expected: "regular file".into(),
            }),
        }
    }

    fn children(&self, dir: &[u8]) -> Vec<(Vec<u8>, &Entry)> {
        self.tree
            .range(dir.to_vec()..)
            .skip(1)
            .filter(|(k, _)| parent(k) == dir)
            .map(|(k, e)| (k.clone(), e))
            .collect()
    }

    fn walk(
        &self,
        root: &TargetPath,
        query: &WalkQuery,
        limits: &WalkLimits,
    ) -> Result<WalkOutcome, FactError> {
        let start = self.resolve(root.as_bytes(), true)?;
        let mut out = WalkOutcome {
            matches: Vec::new(),
            examined: 0,
            truncated: None,
            skipped: Vec::new(),
        };
        let mut stack = vec![(start, 0u32)];
        while let Some((dir, depth)) = stack.pop() {
            for (path, e) in self.children(&dir) {
                if out.examined >= limits.max_entries {
                    out.truncated = Some(Bound::Entries);
                    return Ok(out);
                }
                out.examined += 1;
                let meta = Self::meta(e);
                let hit = match query {
                    WalkQuery::Setuid => meta.kind == FileKind::File && meta.mode & 0o4000 != 0,
                    WalkQuery::Setgid => meta.kind == FileKind::File && meta.mode & 0o2000 != 0,
                    WalkQuery::WorldWritable => {
                        meta.kind != FileKind::Symlink
                            && meta.mode & 0o002 != 0
                            && !(meta.kind == FileKind::Directory && meta.mode & 0o1000 != 0)
                    }
                    WalkQuery::Contains {
                        pattern,
                        max_bytes,
                        max_file_size,
                    } => match &e.node {
                        Node::File(c) if (c.len() as u64) <= *max_file_size => {
                            let head = &c[..c.len().min(*max_bytes as usize)];
                            head.windows(pattern.len()).any(|w| w == pattern.as_slice())
                        }
                        Node::File(_) => {
                            out.skipped.push((
                                TargetPath::new(path.clone()).unwrap(),
                                FactError::TooLarge {
                                    limit: *max_file_size,
                                },
                            ));
                            false
                        }
                        _ => false,
                    },
                    WalkQuery::Named(names) => names.contains(name(&path)),
                };
                if hit {
                    out.matches
                        .push((TargetPath::new(path.clone()).unwrap(), meta.clone()));
                }
                if matches!(e.node, Node::Dir) {
                    if depth + 1 >= limits.max_depth {
                        out.truncated = Some(Bound::Depth);
                    } else {
                        stack.push((path, depth + 1));
                    }
                }
            }
        }
        Ok(out)
    }

    fn answer(&self, r: &FactRequest) -> Result<FactValue, FactError> {
        match r {
            FactRequest::Stat(p) => {
                let resolved = self.resolve(p.as_bytes(), false)?;
                Ok(FactValue::Meta(Self::meta(&self.tree[&resolved])))
            }
            FactRequest::Read { path, max_bytes } => {
                let c = self.regular(path)?;
                let n = c.len().min(*max_bytes as usize);
                Ok(FactValue::Content(Content {
                    bytes: c[..n].to_vec(),
                    truncated: n < c.len(),
                }))
            }
            FactRequest::Sha256 { path, max_bytes } => {
                let c = self.regular(path)?;
                if c.len() as u64 > *max_bytes {
                    return Err(FactError::TooLarge { limit: *max_bytes });
                }
                Ok(FactValue::Digest(Sha256::digest(c).into()))
            }
            FactRequest::ReadDir {
                path,
                max_files,
                max_bytes,
            } => {
                let dir = self.resolve(path.as_bytes(), true)?;
                if !matches!(self.tree[&dir].node, Node::Dir) {
                    return Err(FactError::WrongKind {
                        expected: "directory".into(),
                    });
                }
                let files: Vec<Vec<u8>> = self
                    .children(&dir)
                    .into_iter()
                    .filter(|(p, e)| {
                        Self::meta(e).kind == FileKind::File && !name(p).starts_with(b".")
                    })
                    .map(|(p, _)| p)
                    .collect();
                let bound = (files.len() as u64 > *max_files).then_some(Bound::Entries);
                let read = files
                    .into_iter()
                    .take(*max_files as usize)
                    .map(|p| NamedContent {
                        name: name(&p).to_vec(),
                        content: self.regular(&TargetPath::new(p.clone()).unwrap()).map(|c| {
                            let n = c.len().min(*max_bytes as usize);
                            Content {
                                bytes: c[..n].to_vec(),
                                truncated: n < c.len(),
                            }
                        }),
                    })
                    .collect();
                Ok(FactValue::Files(read, bound))
            }
            // Composed from this source's own primitive answers, as every source does.
            FactRequest::PackageIntegrity(spec) => spec
                .verify(&mut |rs: &[FactRequest]| rs.iter().map(|r| self.answer(r)).collect())
                .map(FactValue::Integrity),
            FactRequest::ManagedIntegrity(spec) => spec
                .verify(&mut |rs: &[FactRequest]| rs.iter().map(|r| self.answer(r)).collect())
                .map(FactValue::Integrity),
            FactRequest::Hash {
                path,
                algo,
                max_bytes,
            } => {
                use sha2::Digest as _;
                let c = self.regular(path)?;
                if c.len() as u64 > *max_bytes {
                    return Err(FactError::TooLarge { limit: *max_bytes });
                }
                Ok(FactValue::Hash(match algo {
                    HashAlgo::Md5 => Md5::digest(c).to_vec(),
                    HashAlgo::Sha1 => sha1::Sha1::digest(c).to_vec(),
                    HashAlgo::Sha224 => sha2::Sha224::digest(c).to_vec(),
                    HashAlgo::Sha256 => sha2::Sha256::digest(c).to_vec(),
                    HashAlgo::Sha384 => sha2::Sha384::digest(c).to_vec(),
                    HashAlgo::Sha512 => sha2::Sha512::digest(c).to_vec(),
                }))
            }
            FactRequest::Md5 { path, max_bytes } => {
                let c = self.regular(path)?;
                if c.len() as u64 > *max_bytes {
                    return Err(FactError::TooLarge { limit: *max_bytes });
                }
                Ok(FactValue::Md5(Md5::digest(c).into()))
            }
            FactRequest::List { path, max_entries } => {
                let dir = self.resolve(path.as_bytes(), true)?;
                if !matches!(self.tree[&dir].node, Node::Dir) {
                    return Err(FactError::WrongKind {
                        expected: "directory".into(),
                    });
                }
                let mut entries: Vec<DirEntry> = self
                    .children(&dir)
                    .into_iter()
                    .map(|(p, e)| DirEntry {
                        name: name(&p).to_vec(),
                        kind: Self::meta(e).kind,
                    })
                    .collect();
                let bound = (entries.len() as u64 > *max_entries).then_some(Bound::Entries);
                entries.truncate(*max_entries as usize);
                Ok(FactValue::Entries(entries, bound))
            }
            FactRequest::Walk {
                root,
                query,
                limits,
            } => self.walk(root, query, limits).map(FactValue::Walk),
            FactRequest::Proc { file, max_bytes } => {
                let files = self.process.as_ref().ok_or(FactError::NoProcess)?;
                let c = files.get(file).ok_or(FactError::NotFound)?;
                let n = c.len().min(*max_bytes as usize);
                Ok(FactValue::Content(Content {
                    bytes: c[..n].to_vec(),
                    truncated: n < c.len(),
                }))
            }
        }
    }
}

impl FactSource for Fixture {
    fn gather(&self, plan: &FactPlan) -> Facts {
        self.rounds.borrow_mut().push(plan.len());
        let mut facts = Facts::default();
        for r in plan.requests() {
            facts.insert(r.clone(), self.answer(r));
        }
        facts
    }
}

/// `/proc/<pid>/status` of a process with these ids and capability masks.
pub(crate) fn status(
    uid: u32,
    gid: u32,
    cap_eff: u64,
    cap_bnd: u64,
    cap_amb: u64,
    nnp: u8,
    seccomp: u8,
) -> Vec<u8> {
    format!(
        "Name:\tapp\nUmask:\t0022\nState:\tS (sleeping)\nPid:\t1\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n\
         Gid:\t{gid}\t{gid}\t{gid}\t{gid}\nCapInh:\t0000000000000000\nCapPrm:\t{cap_eff:016x}\n\
         CapEff:\t{cap_eff:016x}\nCapBnd:\t{cap_bnd:016x}\nCapAmb:\t{cap_amb:016x}\n\
         NoNewPrivs:\t{nnp}\nSeccomp:\t{seccomp}\nSeccomp_filters:\t1\n"
    )
    .into_bytes()
}

/// A `/proc/net/tcp`-style table with one listening socket per `(ipv4 hex, port)`.
pub(crate) fn tcp_listen(sockets: &[(&str, u16)]) -> Vec<u8> {
    let mut s = String::from(
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n",
    );
    for (i, (addr, port)) in sockets.iter().enumerate() {
        s.push_str(&format!(
            "   {i}: {addr}:{port:04X} 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 {}\n",
            1000 + i
        ));
    }
    s.into_bytes()
}

/// The MD5 of `content` as dpkg writes it in `*.md5sums`.
pub(crate) fn md5_hex(content: &[u8]) -> String {
    Md5::digest(content)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A fixed evaluation time, so end-of-support and waiver expiry are deterministic.
pub(crate) fn now() -> jiff::Timestamp {
    "2026-11-26T13:00:00Z".parse().unwrap()
}

fn exec_schema() -> &'static jsonschema::Validator {
    static V: OnceLock<jsonschema::Validator> = OnceLock::new();
    V.get_or_init(|| {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fixtures/hdf-schema/exec-json.json"
        );
        let text =
            std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
        let schema: Value = serde_json::from_str(&text).expect("schema is JSON");
        jsonschema::validator_for(&schema).expect("exec-json.json compiles")
    })
}

/// Asserts that an execution writes schema-valid HDF (keyhole's validator and MITRE's schema).
pub(crate) fn assert_valid_hdf(exec: &keyhole_hdf::Execution) -> Value {
    let text = exec.to_json_pretty().expect("the execution validates");
    let value: Value = serde_json::from_str(&text).unwrap();
    let errors: Vec<String> = exec_schema()
        .iter_errors(&value)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "HDF violates exec-json.json:\n{}",
        errors.join("\n")
    );
    value
}
