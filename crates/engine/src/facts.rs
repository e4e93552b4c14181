//! The fact plan (what a scan needs to know about a target) and the facts gathered for it.
//!
//! This is the seam between the two halves of the engine: resources of a profile *declare*
//! [`FactRequest`]s, a [`FactSource`] (a local root, or a POSIX `sh` script run over one exec
//! session) answers all of them in one pass, and controls are evaluated locally on the
//! [`Facts`]. Every answer is data, failures included: a path that could not be read is a
//! [`FactError`] the controls can report, never a panic or a silent pass.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// An absolute path *inside the target root*, kept as bytes because file names on Linux are not
/// necessarily UTF-8. Always starts with `/`; never contains NUL; `.`/`..` components are kept
/// as written (they are resolved by the fact source, inside the root).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TargetPath(Vec<u8>);

impl TargetPath {
    /// A path from bytes; `None` unless it is absolute and free of NUL bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Option<Self> {
        let bytes = bytes.into();
        (bytes.first() == Some(&b'/') && !bytes.contains(&0)).then_some(Self(bytes))
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// `self/name` (one more component).
    pub fn join(&self, name: &[u8]) -> Option<Self> {
        let mut b = self.0.clone();
        if b.last() != Some(&b'/') {
            b.push(b'/');
        }
        b.extend_from_slice(name);
        Self::new(b)
    }
}

impl fmt::Display for TargetPath {
    /// Lossy for display only; the bytes stay exact everywhere else.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.0))
    }
}

/// Upper bounds of one directory walk. A walk that reaches a bound stops and says which one
/// ([`WalkOutcome::truncated`]), so a hostile tree cannot hang or exhaust the scanner and the
/// report still tells what was not looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WalkLimits {
    /// Deepest directory level below the walk's root.
    pub max_depth: u32,
    /// Most directory entries examined in total.
    pub max_entries: u64,
    /// Longest wall time of the walk, in milliseconds.
    pub max_millis: u64,
    /// Stay on the filesystem of the walk's root (like `find -xdev`).
    pub same_filesystem: bool,
}

impl Default for WalkLimits {
    fn default() -> Self {
        Self {
            max_depth: 32,
            max_entries: 500_000,
            max_millis: 60_000,
            same_filesystem: true,
        }
    }
}

/// What a walk looks for. Symbolic links are never followed during a walk.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum WalkQuery {
    /// Regular files with the setuid bit.
    Setuid,
    /// Regular files with the setgid bit.
    Setgid,
    /// Files and directories writable by others (directories with the sticky bit excluded).
    WorldWritable,
    /// Regular files whose first `max_bytes` contain `pattern` (a plain byte string, e.g.
    /// `-----BEGIN OPENSSH PRIVATE KEY-----`), skipping files larger than `max_file_size`.
    Contains {
        /// The byte string to look for.
        pattern: Vec<u8>,
        /// How much of each file to read.
        max_bytes: u64,
        /// Files larger than this are not read (reported in `skipped`).
        max_file_size: u64,
    },
    /// Entries whose file name (last component) equals one of these names.
    Named(BTreeSet<Vec<u8>>),
}

/// Files of the target *process* (under `/proc/<pid>/`), as opposed to its root filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ProcFile {
    /// `/proc/<pid>/status` (uids, gids, capabilities, NoNewPrivs, Seccomp).
    Status,
    /// `/proc/<pid>/environ` (NUL-separated `KEY=value`).
    Environ,
    /// `/proc/<pid>/cmdline` (NUL-separated arguments).
    Cmdline,
    /// `/proc/<pid>/net/tcp` (IPv4 sockets of the process's network namespace).
    NetTcp,
    /// `/proc/<pid>/net/tcp6`.
    NetTcp6,
    /// `/proc/<pid>/net/udp`.
    NetUdp,
    /// `/proc/<pid>/net/udp6`.
    NetUdp6,
}

impl ProcFile {
    /// Every process file, in a stable order.
    pub const ALL: [ProcFile; 7] = [
        Self::Status,
        Self::Environ,
        Self::Cmdline,
        Self::NetTcp,
        Self::NetTcp6,
        Self::NetUdp,
        Self::NetUdp6,
    ];

    /// The path below `/proc/<pid>/`.
    pub fn relative_path(self) -> &'static str {
        match self {
            Self::Status => "status",
            Self::Environ => "environ",
            Self::Cmdline => "cmdline",
            Self::NetTcp => "net/tcp",
            Self::NetTcp6 => "net/tcp6",
            Self::NetUdp => "net/udp",
            Self::NetUdp6 => "net/udp6",
        }
    }
}

/// One thing the scan needs to know about the target.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum FactRequest {
    /// Metadata of the path itself (`lstat`: a symlink is reported as a symlink, with its
    /// target text), resolved inside the root.
    Stat(TargetPath),
    /// The first `max_bytes` of a regular file (the size cap is reported when reached). FIFOs,
    /// sockets and devices are never opened.
    Read {
        /// The file.
        path: TargetPath,
        /// Most bytes returned.
        max_bytes: u64,
    },
    /// SHA-256 of a whole regular file (streamed, bounded by `max_bytes`; larger files give
    /// [`FactError::TooLarge`]).
    Sha256 {
        /// The file.
        path: TargetPath,
        /// Largest file hashed.
        max_bytes: u64,
    },
    /// MD5 of a whole regular file (streamed, bounded by `max_bytes` like [`FactRequest::Sha256`]).
    /// Only for comparing with digests the target's package manager recorded (dpkg's
    /// `/var/lib/dpkg/info/*.md5sums`), which are MD5; never a security boundary on its own.
    Md5 {
        /// The file.
        path: TargetPath,
        /// Largest file hashed.
        max_bytes: u64,
    },
    /// The entries of a directory (names as bytes, with their types), up to `max_entries`.
    List {
        /// The directory.
        path: TargetPath,
        /// Most entries returned (the bound reached is reported).
        max_entries: u64,
    },
    /// A bounded walk from `root` collecting the entries matching `query`.
    Walk {
        /// Where the walk starts.
        root: TargetPath,
        /// What it looks for.
        query: WalkQuery,
        /// Its bounds.
        limits: WalkLimits,
    },
    /// The regular files directly in a directory, each read up to `max_bytes` (the first
    /// `max_files` by name; other entries and names starting with `.` are not read). For package databases kept as one file
    /// per package (distroless `/var/lib/dpkg/status.d/`).
    ReadDir {
        /// The directory.
        path: TargetPath,
        /// Most files read (the bound reached is reported).
        max_files: u64,
        /// Most bytes read of each.
        max_bytes: u64,
    },
    /// Verification of the files dpkg recorded MD5 digests for (see [`crate::integrity`]): the
    /// `*.md5sums` lists of a directory (`/var/lib/dpkg/info`) are read and every listed file under one of
    /// the prefixes is hashed, in one request, so that one gathering pass (one exec session)
    /// answers it.
    PackageIntegrity(IntegritySpec),
    /// A digest of a whole regular file in `algo` (streamed, bounded by `max_bytes` like
    /// [`FactRequest::Sha256`]). For comparing with the digests a package manager recorded in
    /// its own algorithm (RPM's `FILEDIGESTALGO`, apk's SHA-1).
    Hash {
        /// The file.
        path: TargetPath,
        /// The algorithm.
        algo: HashAlgo,
        /// Largest file hashed.
        max_bytes: u64,
    },
    /// Verification of the files an RPM or apk package database records (see
    /// [`ManagedSpec::verify`]): the database is read, and every recorded file under the prefixes is
    /// examined (`lstat`, link text, digest) in one request, so that one gathering pass answers
    /// it.
    ManagedIntegrity(ManagedSpec),
    /// A file of the target process (only when scanning a process; a root-only scan answers
    /// [`FactError::NoProcess`]), up to `max_bytes`.
    Proc {
        /// Which file.
        file: ProcFile,
        /// Most bytes returned.
        max_bytes: u64,
    },
}

/// What a [`FactRequest::PackageIntegrity`] verifies.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct IntegritySpec {
    /// The directory of the `<package>.md5sums` lists: `/var/lib/dpkg/info`, or distroless
    /// images' `/var/lib/dpkg/status.d`.
    pub lists: TargetPath,
    /// Path prefixes (e.g. `/usr/bin/`) whose listed files are verified; a file is verified
    /// when its path starts with one of them.
    pub prefixes: Vec<TargetPath>,
    /// Most `*.md5sums` lists read (the first ones by name); more makes the answer incomplete.
    pub max_packages: u64,
    /// Most files verified (in list order); more makes the answer incomplete.
    pub max_files: u64,
}

/// A digest algorithm of [`FactRequest::Hash`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum HashAlgo {
    /// MD5 (RPM packages built before rpm 4.6).
    Md5,
    /// SHA-1 (apk's `Z:Q1` checksums).
    Sha1,
    /// SHA-224.
    Sha224,
    /// SHA-256 (RPM packages of every current distribution).
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl HashAlgo {
    /// Every algorithm, in a stable order.
    pub const ALL: [HashAlgo; 6] = [
        Self::Md5,
        Self::Sha1,
        Self::Sha224,
        Self::Sha256,
        Self::Sha384,
        Self::Sha512,
    ];

    /// The name profiles use (`sha256`), which is also the prefix of the coreutils and busybox
    /// tool computing it (`sha256sum`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Md5 => "md5",
            Self::Sha1 => "sha1",
            Self::Sha224 => "sha224",
            Self::Sha256 => "sha256",
            Self::Sha384 => "sha384",
            Self::Sha512 => "sha512",
        }
    }

    /// The algorithm named `name` (see [`HashAlgo::name`]).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    /// Length of a digest in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            Self::Md5 => 16,
            Self::Sha1 => 20,
            Self::Sha224 => 28,
            Self::Sha256 => 32,
            Self::Sha384 => 48,
            Self::Sha512 => 64,
        }
    }
}

/// The package manager whose database a [`FactRequest::ManagedIntegrity`] verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PackageManager {
    /// RPM (`rpmdb.sqlite` or Berkeley DB `Packages`): digest, size, mode, owner, group and
    /// symlink target of every file, as `rpm -V --noghost --nomtime` checks them.
    Rpm,
    /// apk (`/lib/apk/db/installed`): each file's `Z:` checksum and its `a:` owner and mode.
    Apk,
}

/// What a [`FactRequest::ManagedIntegrity`] verifies.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ManagedSpec {
    /// Whose database.
    pub manager: PackageManager,
    /// Path prefixes (e.g. `/usr/bin/`) whose recorded files are verified.
    pub prefixes: Vec<TargetPath>,
    /// Most files verified (in database order); more makes the answer incomplete.
    pub max_files: u64,
    /// The digest algorithms computed. A file recorded with another algorithm is reported
    /// unverified, whichever source gathered the facts (the shell script hashes every file
    /// under the prefixes in each of them, so the list is also its cost).
    pub algorithms: Vec<HashAlgo>,
}

/// Everything one scan needs, deduplicated and ordered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FactPlan {
    requests: BTreeSet<FactRequest>,
}

impl FactPlan {
    /// An empty plan.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a request (duplicates are merged).
    pub fn add(&mut self, r: FactRequest) {
        self.requests.insert(r);
    }

    /// The requests, in a stable order.
    pub fn requests(&self) -> impl Iterator<Item = &FactRequest> {
        self.requests.iter()
    }

    /// Number of distinct requests.
    pub fn len(&self) -> usize {
        self.requests.len()
    }

    /// True when nothing is requested.
    pub fn is_empty(&self) -> bool {
        self.requests.is_empty()
    }
}

/// The type of a filesystem entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum FileKind {
    /// A regular file.
    File,
    /// A directory.
    Directory,
    /// A symbolic link (never followed by `Stat`).
    Symlink,
    /// A named pipe.
    Fifo,
    /// A socket.
    Socket,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
}

/// Metadata of one entry, as `lstat` gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMeta {
    /// The entry's type.
    pub kind: FileKind,
    /// Permission bits including setuid/setgid/sticky (`st_mode & 0o7777`).
    pub mode: u32,
    /// Owner uid.
    pub uid: u32,
    /// Group gid.
    pub gid: u32,
    /// Size in bytes.
    pub size: u64,
    /// For symlinks: the link text, as bytes.
    pub link_target: Option<Vec<u8>>,
}

/// The first bytes of a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Content {
    /// The bytes read.
    pub bytes: Vec<u8>,
    /// True when the file was longer than the cap and `bytes` is only its beginning.
    pub truncated: bool,
}

/// One directory entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirEntry {
    /// The name (last component), as bytes.
    pub name: Vec<u8>,
    /// Its type.
    pub kind: FileKind,
}

/// Which bound stopped a walk or listing early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Bound {
    /// `max_depth`.
    Depth,
    /// `max_entries`.
    Entries,
    /// `max_millis`.
    Time,
}

/// A walk's findings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalkOutcome {
    /// Matching entries with their metadata, in walk order.
    pub matches: Vec<(TargetPath, FileMeta)>,
    /// Entries examined.
    pub examined: u64,
    /// The bound that stopped the walk early, if any.
    pub truncated: Option<Bound>,
    /// Paths that could not be examined, with why (permission, too large, vanished).
    pub skipped: Vec<(TargetPath, FactError)>,
}

/// Why a fact could not be gathered. Controls turn these into `error` or `skipped` results
/// with the reason, never into a pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum FactError {
    /// Nothing at the path.
    #[error("not found")]
    NotFound,
    /// The scanner may not read it (e.g. another UID without `CAP_SYS_PTRACE` on `/proc/PID/root`).
    #[error("permission denied")]
    PermissionDenied,
    /// A path component is not a directory, or the path is not of the kind the request needs.
    #[error("not a {expected}")]
    WrongKind {
        /// What was expected (`regular file`, `directory`).
        expected: String,
    },
    /// A FIFO, socket or device: never opened, since reading one can block or never end.
    #[error("special file not opened ({0:?})")]
    Special(FileKind),
    /// Resolution would leave the target root, or crossed a `/proc` magic link.
    #[error("path escapes the target root")]
    Escape,
    /// Too many symlinks (a loop).
    #[error("too many levels of symbolic links")]
    Loop,
    /// Larger than the request allows.
    #[error("larger than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// Scanning a root filesystem only: there is no process to ask.
    #[error("no target process (scanning a root filesystem)")]
    NoProcess,
    /// Any other I/O error, with the OS message.
    #[error("{0}")]
    Io(String),
}

/// The answer to one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FactValue {
    /// Answer to [`FactRequest::Stat`].
    Meta(FileMeta),
    /// Answer to [`FactRequest::Read`] and [`FactRequest::Proc`].
    Content(Content),
    /// Answer to [`FactRequest::Sha256`]: 32 bytes.
    Digest([u8; 32]),
    /// Answer to [`FactRequest::Md5`]: 16 bytes.
    Md5([u8; 16]),
    /// Answer to [`FactRequest::Hash`]: as many bytes as the algorithm gives.
    Hash(Vec<u8>),
    /// Answer to [`FactRequest::List`]: entries and the bound reached, if any.
    Entries(Vec<DirEntry>, Option<Bound>),
    /// Answer to [`FactRequest::Walk`].
    Walk(WalkOutcome),
    /// Answer to [`FactRequest::PackageIntegrity`] and [`FactRequest::ManagedIntegrity`].
    Integrity(IntegrityReport),
    /// Answer to [`FactRequest::ReadDir`]: each regular file's name and content (or why it
    /// could not be read), by name, and the bound reached, if any.
    Files(Vec<NamedContent>, Option<Bound>),
}

/// One file of a [`FactRequest::ReadDir`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedContent {
    /// The name (last component), as bytes.
    pub name: Vec<u8>,
    /// Its first bytes, or why they could not be read.
    pub content: Result<Content, FactError>,
}

/// What a [`FactRequest::PackageIntegrity`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntegrityReport {
    /// Every listed file under the prefixes that was looked at, in list order (lists by name).
    pub files: Vec<CheckedFile>,
    /// Why the verification does not cover everything it should (a list unreadable or too
    /// large, more lists or files than allowed); empty when it is complete.
    pub incomplete: Vec<String>,
}

/// One packaged file and what its content says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckedFile {
    /// The package whose list names it (the list's file name without `.md5sums`).
    pub package: String,
    /// The file.
    pub path: TargetPath,
    /// The verdict.
    pub status: FileStatus,
    /// A configuration file (RPM's `%config`): expected to be edited, so reported apart from
    /// binaries and data.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub config: bool,
    /// What differs, for a [`FileStatus::Changed`] file of an RPM or apk package (dpkg records
    /// only an MD5, so its changes name nothing here).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub differs: Vec<Attribute>,
}

/// An attribute of a packaged file that differs from the package database's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Attribute {
    /// The content's digest (rpm's `5`).
    Digest,
    /// The size (`S`).
    Size,
    /// The mode, file type included (`M`).
    Mode,
    /// The owner (`U`).
    Owner,
    /// The group (`G`).
    Group,
    /// The symlink's target (`L`).
    LinkTarget,
}

impl Attribute {
    /// The word records show (`digest`, `size`, `mode`, `owner`, `group`, `link`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Digest => "digest",
            Self::Size => "size",
            Self::Mode => "mode",
            Self::Owner => "owner",
            Self::Group => "group",
            Self::LinkTarget => "link",
        }
    }
}

/// The verdict on one packaged file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileStatus {
    /// Its MD5 is the recorded one.
    Unchanged,
    /// Its MD5 differs from the recorded one.
    Changed,
    /// Nothing at its path.
    Missing,
    /// It could not be hashed (a special file, too large, unreadable): neither a pass nor a
    /// failure.
    Unverified(FactError),
}

/// All answers of one gathering pass.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Facts {
    answers: BTreeMap<FactRequest, Result<FactValue, FactError>>,
    /// How long gathering took.
    pub elapsed: Duration,
}

impl Facts {
    /// Records the answer to `r`.
    pub fn insert(&mut self, r: FactRequest, answer: Result<FactValue, FactError>) {
        self.answers.insert(r, answer);
    }

    /// The answer to `r`; `None` when `r` was not in the plan (a bug in the resource that
    /// forgot to declare it, reported as an error result by the evaluator).
    pub fn get(&self, r: &FactRequest) -> Option<&Result<FactValue, FactError>> {
        self.answers.get(r)
    }

    /// Every answer, in request order.
    pub fn iter(&self) -> impl Iterator<Item = (&FactRequest, &Result<FactValue, FactError>)> {
        self.answers.iter()
    }

    /// Number of answers.
    pub fn len(&self) -> usize {
        self.answers.len()
    }

    /// True when there are no answers.
    pub fn is_empty(&self) -> bool {
        self.answers.is_empty()
    }
}

/// Something that can answer a whole fact plan in one pass.
pub trait FactSource {
    /// Answers every request of `plan` (each one, even if only with an error).
    fn gather(&self, plan: &FactPlan) -> Facts;
}
