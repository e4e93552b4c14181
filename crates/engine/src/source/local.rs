//! [`LocalRoot`]: facts read directly from a root filesystem on this machine, with containment
//! enforced by the kernel.
//!
//! Every path of a request is resolved by `openat2(root_fd, path, RESOLVE_IN_ROOT |
//! RESOLVE_NO_MAGICLINKS)`: absolute symlinks and `..` chains resolve against the *target's*
//! root, never the scanner's, and `/proc` magic links (`/proc/1/root`, `/proc/self/fd/N`) are not
//! followed at all. Nothing that resolves onto procfs is opened (`Escape`): the target's `/proc`
//! shows the scanner's own process too (`/proc/self`, or its PID guessed). A file is read only after `fstat` of an `O_PATH` descriptor said it is a
//! regular file, and is then opened *through that descriptor* (`/proc/self/fd/N`, the scanner's
//! own magic link), so no rename between the check and the open can substitute a FIFO or a
//! device. Walks descend through directory descriptors (`openat(dir_fd, name, O_NOFOLLOW |
//! O_DIRECTORY)`), never through path strings, so a rename race cannot lead them out of the tree.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use rustix::fs::{self as rfs, AtFlags, Dir, FileType, Mode, OFlags, ResolveFlags, Stat};
use rustix::io::Errno;
use sha2::Digest;

use super::{DIRECTORY, REGULAR_FILE, SourceError, kind_from_mode, meta_from_raw};
use crate::{
    Bound, Content, DirEntry, FactError, FactPlan, FactRequest, FactSource, FactValue, Facts,
    FileKind, FileMeta, HashAlgo, NamedContent, ProcFile, TargetPath, WalkLimits,
};

mod integrity;
mod walk;

/// Whether a [`LocalRoot`] may be the scanner's own root filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnRoot {
    /// Refuse it ([`SourceError::OwnRoot`]): a target process that shares the scanner's root is
    /// almost always a mistake (the wrong PID, or a PID namespace that is not the target's), and
    /// scanning it would report the scanner's own files as the target's.
    Refuse,
    /// Scan it on purpose (the local host scan: `LocalRoot::directory("/")`).
    Allow,
}

/// A fact source reading a root filesystem on this machine: a directory (an unpacked image, a
/// mounted snapshot, the host's `/`) or the root of a running process (`/proc/PID/root`, as the
/// agent does in a debug or sidecar container).
///
/// Problems of the target (a path that is missing, unreadable, a FIFO, a loop, an escape) are
/// answered as [`FactError`]s, never as a failure of the source. In particular, a process whose
/// root the scanner may not read (another UID without `CAP_SYS_PTRACE`) gives
/// [`FactError::PermissionDenied`] for every filesystem request.
#[derive(Debug)]
pub struct LocalRoot {
    /// The root as named by the caller, for error messages.
    label: PathBuf,
    /// The root directory (`O_PATH`), or why it could not be opened.
    root: Result<OwnedFd, FactError>,
    /// `/proc/PID` when scanning a process: pins that process (a recycled PID does not reach a
    /// new one) and answers [`FactRequest::Proc`].
    proc_dir: Option<OwnedFd>,
    /// True when the root is the scanner's own `/` (same device and inode).
    own_root: bool,
}

impl LocalRoot {
    /// Scans the root filesystem at `path` (no process: [`FactRequest::Proc`] answers
    /// [`FactError::NoProcess`]). The scanner's own `/` is allowed: the caller named it.
    pub fn directory(path: impl AsRef<Path>) -> Result<Self, SourceError> {
        Self::directory_with(path, OwnRoot::Allow)
    }

    /// [`LocalRoot::directory`], refusing the scanner's own root unless `own_root` allows it.
    pub fn directory_with(path: impl AsRef<Path>, own_root: OwnRoot) -> Result<Self, SourceError> {
        let path = path.as_ref();
        // The caller's own path is trusted, so it is opened normally (symlinks followed).
        let fd = rfs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| SourceError::Open {
            path: path.to_path_buf(),
            source: e.into(),
        })?;
        Self::finish(path.to_path_buf(), Ok(fd), None, own_root)
    }

    /// Scans the process `pid`: its root is `/proc/PID/root`, and [`FactRequest::Proc`] reads
    /// `/proc/PID/<file>`. Refuses a process whose root is the scanner's own
    /// ([`SourceError::OwnRoot`]); see [`LocalRoot::process_with`].
    ///
    /// Reading another process's root needs ptrace-read rights: the same UID as the target (and
    /// the target dumpable), or `CAP_SYS_PTRACE`. Without them the source still builds, and every
    /// filesystem request answers [`FactError::PermissionDenied`].
    pub fn process(pid: u32) -> Result<Self, SourceError> {
        Self::process_with(pid, OwnRoot::Refuse)
    }

    /// [`LocalRoot::process`] with an explicit choice about the scanner's own root.
    pub fn process_with(pid: u32, own_root: OwnRoot) -> Result<Self, SourceError> {
        let dir = PathBuf::from(format!("/proc/{pid}"));
        let proc_dir = rfs::open(
            &dir,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| SourceError::Open {
            path: dir.clone(),
            source: e.into(),
        })?;
        // Following the `root` magic link is the point here: it is the kernel's own handle on the
        // target's root. This is where the ptrace-read check happens.
        let root = rfs::openat(
            &proc_dir,
            "root",
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(fact_error);
        Self::finish(dir.join("root"), root, Some(proc_dir), own_root)
    }

    fn finish(
        label: PathBuf,
        root: Result<OwnedFd, FactError>,
        proc_dir: Option<OwnedFd>,
        own_root: OwnRoot,
    ) -> Result<Self, SourceError> {
        let own = root.as_ref().is_ok_and(is_own_root);
        if own && own_root == OwnRoot::Refuse {
            return Err(SourceError::OwnRoot { path: label });
        }
        Ok(Self {
            label,
            root,
            proc_dir,
            own_root: own,
        })
    }

    /// True when the target root is the scanner's own root filesystem.
    pub fn is_own_root(&self) -> bool {
        self.own_root
    }

    /// The target root as named by the caller (`/proc/PID/root` for a process).
    pub fn root_path(&self) -> &Path {
        &self.label
    }

    /// Why the root could not be opened, if it could not (then every filesystem request answers
    /// this error).
    pub fn root_error(&self) -> Option<&FactError> {
        self.root.as_ref().err()
    }

    fn answer(&self, reopen: &Reopener, request: &FactRequest) -> Result<FactValue, FactError> {
        if let FactRequest::Proc { file, max_bytes } = request {
            return self.proc(*file, *max_bytes);
        }
        let root = self.root.as_ref().map_err(Clone::clone)?.as_fd();
        match request {
            FactRequest::Stat(path) => stat(root, path).map(FactValue::Meta),
            FactRequest::Read { path, max_bytes } => {
                let (file, size) = open_regular(root, reopen, path)?;
                read_bounded(file, size, *max_bytes).map(FactValue::Content)
            }
            FactRequest::Sha256 { path, max_bytes } => {
                let (file, size) = open_regular(root, reopen, path)?;
                let digest = digest::<sha2::Sha256>(file, size, *max_bytes)?;
                Ok(FactValue::Digest(digest.into()))
            }
            FactRequest::Md5 { path, max_bytes } => {
                let (file, size) = open_regular(root, reopen, path)?;
                let digest = digest::<md5::Md5>(file, size, *max_bytes)?;
                Ok(FactValue::Md5(digest.into()))
            }
            FactRequest::Hash {
                path,
                algo,
                max_bytes,
            } => {
                let (file, size) = open_regular(root, reopen, path)?;
                hash(file, size, *algo, *max_bytes).map(FactValue::Hash)
            }
            FactRequest::ManagedIntegrity(spec) => {
                integrity::answer_managed(self, reopen, spec).map(FactValue::Integrity)
            }
            FactRequest::ReadDir {
                path,
                max_files,
                max_bytes,
            } => read_dir(root, reopen, path, *max_files, *max_bytes),
            FactRequest::PackageIntegrity(spec) => {
                integrity::answer(self, reopen, spec).map(FactValue::Integrity)
            }
            FactRequest::List { path, max_entries } => list(root, path, *max_entries),
            FactRequest::Walk {
                root: start,
                limits,
                ..
            } => walk::walk_group(root, reopen, start, *limits, &[request], cpus())
                .pop()
                .expect("one answer per request")
                .map(FactValue::Walk),
            FactRequest::Proc { file, max_bytes } => self.proc(*file, *max_bytes),
        }
    }

    fn proc(&self, file: ProcFile, max_bytes: u64) -> Result<FactValue, FactError> {
        let dir = self.proc_dir.as_ref().ok_or(FactError::NoProcess)?;
        // Kernel files below `/proc/PID`: no symlink of any kind is needed to reach them.
        let fd = rfs::openat2(
            dir,
            file.relative_path(),
            OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::BENEATH
                | ResolveFlags::NO_SYMLINKS
                | ResolveFlags::NO_MAGICLINKS
                | ResolveFlags::NO_XDEV,
        )
        .map_err(fact_error)?;
        read_bounded(File::from(fd), 0, max_bytes).map(FactValue::Content)
    }
}

impl FactSource for LocalRoot {
    fn gather(&self, plan: &FactPlan) -> Facts {
        let started = Instant::now();
        let reopen = Reopener::new();
        // Walks sharing a start and limits are one job (one traversal); every other request is
        // a job of its own. The longest go first (walks, then package integrity, which hashes
        // on threads of its own), so that they overlap and the short ones fill the gaps.
        let groups = walk::group(plan.requests());
        let heavy = |r: &&FactRequest| {
            matches!(
                r,
                FactRequest::PackageIntegrity(_) | FactRequest::ManagedIntegrity(_)
            )
        };
        // The walks get the CPUs the hashing does not keep busy: on two CPUs, a second walk
        // thread only competes with the hashing inside the kernel (measured: slower overall).
        let hashing = |r: &&FactRequest| matches!(r, FactRequest::PackageIntegrity(spec) if !spec.prefixes.is_empty());
        // One CPU for hashing, however many lists directories are asked (dpkg's and
        // distroless's: an image has one of them, and the other answers at once).
        let walk_cpus = cpus()
            .saturating_sub(usize::from(plan.requests().any(|r| hashing(&r))))
            .max(1);
        let jobs: Vec<Job<'_>> = groups
            .into_iter()
            .map(|((start, limits), requests)| Job::Walks(start, limits, requests, walk_cpus))
            .chain(plan.requests().filter(heavy).map(Job::One))
            .chain(
                plan.requests()
                    .filter(|r| !matches!(r, FactRequest::Walk { .. }) && !heavy(r))
                    .map(Job::One),
            )
            .collect();
        let mut facts = Facts::default();
        for (request, answer) in self.run_jobs(&reopen, &jobs) {
            facts.insert(request.clone(), answer);
        }
        facts.elapsed = started.elapsed();
        facts
    }
}

/// A unit of gathering work.
enum Job<'p> {
    /// Walks answered by one traversal (see [`walk`]), on up to that many CPUs.
    Walks(&'p TargetPath, WalkLimits, Vec<&'p FactRequest>, usize),
    /// Any other request.
    One(&'p FactRequest),
}

/// Most threads answering one plan: the work is mostly system calls and hashing, which the
/// kernel and the CPUs do in parallel, but a scanner should stay a light guest.
const MAX_WORKERS: usize = 4;

/// The answers of a job.
type Answers<'p> = Vec<(&'p FactRequest, Result<FactValue, FactError>)>;

impl LocalRoot {
    /// Answers `jobs` on up to [`MAX_WORKERS`] threads. Requests are independent, so the
    /// answers are the same as one after the other.
    fn run_jobs<'p>(&self, reopen: &Reopener, jobs: &[Job<'p>]) -> Answers<'p> {
        in_parallel(jobs.len(), |i| {
            let mut out = Vec::new();
            self.run_job(reopen, &jobs[i], &mut out);
            out
        })
        .into_iter()
        .flatten()
        .collect()
    }

    fn run_job<'p>(&self, reopen: &Reopener, job: &Job<'p>, out: &mut Answers<'p>) {
        match job {
            Job::One(request) => out.push((request, self.answer(reopen, request))),
            Job::Walks(start, limits, requests, cpus) => match &self.root {
                Ok(root) => {
                    let answers =
                        walk::walk_group(root.as_fd(), reopen, start, *limits, requests, *cpus);
                    out.extend(
                        requests
                            .iter()
                            .copied()
                            .zip(answers.into_iter().map(|a| a.map(FactValue::Walk))),
                    );
                }
                Err(e) => out.extend(requests.iter().map(|&r| (r, Err(e.clone())))),
            },
        }
    }
}

/// `work(i)` for every `i < len`, in index order, computed on up to [`MAX_WORKERS`] threads
/// (this one included; each takes the next index not taken).
pub(super) fn in_parallel<T: Send + Sync>(len: usize, work: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let next = AtomicUsize::new(0);
    let slots: Vec<OnceLock<T>> = (0..len).map(|_| OnceLock::new()).collect();
    let run = || {
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(slot) = slots.get(i) else {
                return;
            };
            let _ = slot.set(work(i));
        }
    };
    let workers = cpus().min(MAX_WORKERS).min(len);
    std::thread::scope(|s| {
        // A helper thread that cannot be started (a thread limit, a sandbox) only means less
        // parallelism: this thread works through the indices anyway.
        let helpers: Vec<_> = (1..workers)
            .filter_map(|_| std::thread::Builder::new().spawn_scoped(s, run).ok())
            .collect();
        run();
        for h in helpers {
            if let Err(panic) = h.join() {
                std::panic::resume_unwind(panic);
            }
        }
    });
    slots
        .into_iter()
        .map(|s| {
            s.into_inner()
                .expect("every index is worked before the threads end")
        })
        .collect()
}

/// The CPUs this process may use.
fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Same device and inode as the scanner's `/`. Fails closed: if `/` cannot be examined, the root
/// counts as the scanner's own.
fn is_own_root(fd: &OwnedFd) -> bool {
    match (rfs::fstat(fd), rfs::stat("/")) {
        (Ok(a), Ok(b)) => (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino),
        _ => true,
    }
}

/// The fact an OS error stands for.
fn fact_error(e: Errno) -> FactError {
    match e {
        Errno::ACCESS | Errno::PERM => FactError::PermissionDenied,
        // ESRCH: the target process is gone.
        Errno::NOENT | Errno::SRCH => FactError::NotFound,
        Errno::LOOP => FactError::Loop,
        // RESOLVE_IN_ROOT reports a `..` that a concurrent rename would have let out as EXDEV.
        Errno::XDEV => FactError::Escape,
        Errno::NOTDIR => FactError::WrongKind {
            expected: DIRECTORY.into(),
        },
        other => FactError::Io(std::io::Error::from(other).to_string()),
    }
}

/// [`fact_error`] for a `std::io` error.
fn io_fact_error(e: &std::io::Error) -> FactError {
    match e.raw_os_error() {
        Some(code) => fact_error(Errno::from_raw_os_error(code)),
        None => FactError::Io(e.to_string()),
    }
}

/// Resolution of every target path: inside the root, no magic links.
const IN_ROOT: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

/// Opens `path` resolved inside `root` with `flags` (plus `O_CLOEXEC`).
fn open_in_root(
    root: BorrowedFd<'_>,
    path: &TargetPath,
    flags: OFlags,
) -> Result<OwnedFd, FactError> {
    let bytes = path.as_bytes();
    let mut retries = 0;
    loop {
        match rfs::openat2(root, bytes, flags | OFlags::CLOEXEC, Mode::empty(), IN_ROOT) {
            // The target's /proc shows every process of its PID namespace, the scanner's
            // included (`/proc/self`, or its PID guessed): nothing there is the image's, and a
            // symlink into it would hand the scanner's own environment or files to the facts.
            Ok(fd) if rfs::fstatfs(&fd).is_ok_and(|s| is_procfs(&s)) => {
                return Err(FactError::Escape);
            }
            Ok(fd) => return Ok(fd),
            // A rename or mount raced the lookup: the kernel refuses rather than risk an escape,
            // and asks the caller to try again.
            Err(Errno::AGAIN) if retries < 16 => retries += 1,
            Err(Errno::LOOP) => return Err(loop_or_escape(root, bytes, flags)),
            Err(e) => return Err(fact_error(e)),
        }
    }
}

/// ELOOP means either a symlink loop or a refused magic link (`RESOLVE_IN_ROOT` refuses every
/// magic link with ELOOP too). They are told apart by replaying the resolution one component at a
/// time with `O_PATH | O_NOFOLLOW` descriptors (which open nothing: no FIFO can block, no device
/// driver runs): a symlink followed from a procfs directory is taken for a magic link.
fn loop_or_escape(root: BorrowedFd<'_>, bytes: &[u8], flags: OFlags) -> FactError {
    let follow_last = !flags.contains(OFlags::NOFOLLOW) || bytes.ends_with(b"/");
    // Components still to resolve, the next one last; `true` marks the path's final component.
    let mut pending: Vec<(Vec<u8>, bool)> = Vec::new();
    let push_path = |pending: &mut Vec<(Vec<u8>, bool)>, path: &[u8], is_tail: bool| {
        let mut comps: Vec<&[u8]> = path
            .split(|&b| b == b'/')
            .filter(|c| !c.is_empty())
            .collect();
        comps.reverse();
        for (i, c) in comps.into_iter().enumerate() {
            pending.push((c.to_vec(), is_tail && i == 0));
        }
    };
    push_path(&mut pending, bytes, true);
    // The directories walked through, for `..` (never above the root).
    let Ok(top) = root.try_clone_to_owned() else {
        return FactError::Loop;
    };
    let mut dirs = vec![top];
    let mut links = 0;
    while let Some((name, last)) = pending.pop() {
        match name.as_slice() {
            b"." => continue,
            b".." => {
                if dirs.len() > 1 {
                    dirs.pop();
                }
                continue;
            }
            _ => {}
        }
        let dir = dirs.last().expect("the root is never popped");
        let Ok(fd) = rfs::openat(
            dir,
            name.as_slice(),
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) else {
            return FactError::Loop;
        };
        let Ok(st) = rfs::fstat(&fd) else {
            return FactError::Loop;
        };
        match kind_from_mode(st.st_mode) {
            Some(FileKind::Symlink) if !last || follow_last => {
                let on_procfs = rfs::fstatfs(dir).is_ok_and(|s| is_procfs(&s));
                if on_procfs {
                    return FactError::Escape;
                }
                links += 1;
                let Ok(target) = rfs::readlinkat(&fd, "", Vec::new()) else {
                    return FactError::Loop;
                };
                if links > 40 {
                    return FactError::Loop;
                }
                let target = target.into_bytes();
                if target.starts_with(b"/") {
                    dirs.truncate(1);
                }
                push_path(&mut pending, &target, last);
            }
            Some(FileKind::Directory) => dirs.push(fd),
            // A file in the middle of the path (or a final file): not what looped.
            _ => return FactError::Loop,
        }
    }
    FactError::Loop
}

/// True for procfs.
#[allow(clippy::unnecessary_cast)] // `f_type`'s type differs between architectures
fn is_procfs(s: &rfs::StatFs) -> bool {
    s.f_type as i64 == PROC_SUPER_MAGIC
}

/// `lstat` fields as metadata.
#[allow(clippy::unnecessary_cast)] // `st_size` is not i64 on every architecture
fn meta_of(st: &Stat) -> Result<FileMeta, FactError> {
    meta_from_raw(st.st_mode, st.st_uid, st.st_gid, st.st_size as u64)
        .ok_or_else(|| FactError::Io(format!("unknown file type (mode {:o})", st.st_mode)))
}

/// `(device, inode)`: identity of a file across two opens.
#[allow(clippy::unnecessary_cast)] // `st_dev`/`st_ino` are not u64 on every architecture
fn identity(st: &Stat) -> (u64, u64) {
    (st.st_dev as u64, st.st_ino as u64)
}

fn stat(root: BorrowedFd<'_>, path: &TargetPath) -> Result<FileMeta, FactError> {
    // O_PATH | O_NOFOLLOW: the last component itself, as lstat sees it (a symlink stays a symlink).
    let fd = open_in_root(root, path, OFlags::PATH | OFlags::NOFOLLOW)?;
    let st = rfs::fstat(&fd).map_err(fact_error)?;
    let mut meta = meta_of(&st)?;
    if meta.kind == FileKind::Symlink {
        // An empty path reads the link an O_PATH|O_NOFOLLOW descriptor refers to.
        let target = rfs::readlinkat(&fd, "", Vec::new()).map_err(fact_error)?;
        meta.link_target = Some(target.into_bytes());
    }
    Ok(meta)
}

/// A regular file's kind check: FIFOs, sockets and devices are never opened for reading.
fn require_regular(st: &Stat) -> Result<(), FactError> {
    match kind_from_mode(st.st_mode) {
        Some(FileKind::File) => Ok(()),
        Some(
            kind @ (FileKind::Fifo
            | FileKind::Socket
            | FileKind::CharDevice
            | FileKind::BlockDevice),
        ) => Err(FactError::Special(kind)),
        _ => Err(FactError::WrongKind {
            expected: REGULAR_FILE.into(),
        }),
    }
}

/// Opens a regular file at `path` (symlinks followed inside the root) for reading; returns it
/// with its size.
fn open_regular(
    root: BorrowedFd<'_>,
    reopen: &Reopener,
    path: &TargetPath,
) -> Result<(File, u64), FactError> {
    let (file, st) = open_regular_stat(root, reopen, path)?;
    Ok((file, st.st_size as u64))
}

/// [`open_regular`], returning the file's `fstat` (its identity) instead of only its size.
fn open_regular_stat(
    root: BorrowedFd<'_>,
    reopen: &Reopener,
    path: &TargetPath,
) -> Result<(File, Stat), FactError> {
    let fd = open_in_root(root, path, OFlags::PATH)?;
    let st = rfs::fstat(&fd).map_err(fact_error)?;
    require_regular(&st)?;
    let file = reopen.open_read(&fd, &st, || {
        rfs::openat2(root, path.as_bytes(), READ_FLAGS, Mode::empty(), IN_ROOT)
    })?;
    Ok((file, st))
}

/// How a checked regular file is opened for reading. `O_NONBLOCK` is a second guard: should a
/// FIFO ever be opened after all, neither the open nor a read can block. `O_NOCTTY`: a terminal
/// never becomes the scanner's controlling terminal.
const READ_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::NONBLOCK)
    .union(OFlags::NOCTTY)
    .union(OFlags::CLOEXEC);

/// Opens `O_PATH` descriptors for reading without resolving any path the target controls.
struct Reopener {
    /// The scanner's `/proc/self/fd`, checked to be procfs; `None` where there is no procfs.
    fds: Option<OwnedFd>,
}

/// `statfs.f_type` of procfs.
const PROC_SUPER_MAGIC: i64 = 0x9fa0;

impl Reopener {
    fn new() -> Self {
        let is_proc = |fd: &OwnedFd| rfs::fstatfs(fd).is_ok_and(|s| is_procfs(&s));
        let fds = rfs::open(
            "/proc",
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ok()
        .filter(is_proc)
        .and_then(|proc| {
            rfs::openat2(
                &proc,
                "self/fd",
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
                ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS | ResolveFlags::NO_XDEV,
            )
            .ok()
        })
        .filter(is_proc);
        Self { fds }
    }

    /// Opens the file behind `path_fd` (whose `fstat` was `checked`) for reading. Through
    /// `/proc/self/fd/N` this reopens exactly the inode that was checked; without procfs,
    /// `fallback` resolves the path again, and a file swapped in meanwhile is detected by its
    /// identity (it may have been opened, non-blocking, but is never read).
    fn open_read(
        &self,
        path_fd: &OwnedFd,
        checked: &Stat,
        fallback: impl FnOnce() -> rustix::io::Result<OwnedFd>,
    ) -> Result<File, FactError> {
        if let Some(fds) = &self.fds {
            // No second identity check here: `N` is our own descriptor (no path the target
            // controls is resolved), and the magic link refers to the open file itself, not to
            // a name, so the kernel reopens the very inode `checked` describes. A rename in the
            // target cannot change what it refers to; `fds` was checked to be procfs.
            let fd = rfs::openat(
                fds,
                // The number formatted on the stack: no allocation per file.
                rustix::path::DecInt::new(path_fd.as_raw_fd()),
                READ_FLAGS,
                Mode::empty(),
            )
            .map_err(fact_error)?;
            return Ok(File::from(fd));
        }
        let fd = fallback().map_err(fact_error)?;
        let st = rfs::fstat(&fd).map_err(fact_error)?;
        if identity(&st) != identity(checked) || require_regular(&st).is_err() {
            return Err(FactError::Io(
                "the file was replaced while being opened".into(),
            ));
        }
        Ok(File::from(fd))
    }
}

/// The first `max` bytes of `file`, and whether there was more.
fn read_bounded(mut file: File, size_hint: u64, max: u64) -> Result<Content, FactError> {
    let capacity = max.min(size_hint).min(1 << 20) as usize;
    let mut bytes = Vec::with_capacity(capacity);
    (&mut file)
        .take(max)
        .read_to_end(&mut bytes)
        .map_err(|e| io_fact_error(&e))?;
    let truncated = if bytes.len() as u64 == max {
        let mut probe = [0u8; 1];
        loop {
            match file.read(&mut probe) {
                Ok(n) => break n > 0,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(io_fact_error(&e)),
            }
        }
    } else {
        false
    };
    Ok(Content { bytes, truncated })
}

/// A digest of the whole file, streamed; larger than `max` bytes → [`FactError::TooLarge`]
/// (checked before reading, and again while reading in case the file grows).
fn digest<D: Digest>(
    mut file: File,
    size: u64,
    max: u64,
) -> Result<sha2::digest::Output<D>, FactError> {
    let too_large = FactError::TooLarge { limit: max };
    if size > max {
        return Err(too_large);
    }
    let mut hasher = D::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_fact_error(&e)),
        };
        total += n as u64;
        if total > max {
            return Err(too_large);
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize())
}

/// The digest of the whole file in `algo` (see [`digest`]).
fn hash(file: File, size: u64, algo: HashAlgo, max: u64) -> Result<Vec<u8>, FactError> {
    Ok(match algo {
        HashAlgo::Md5 => digest::<md5::Md5>(file, size, max)?.to_vec(),
        HashAlgo::Sha1 => digest::<sha1::Sha1>(file, size, max)?.to_vec(),
        HashAlgo::Sha224 => digest::<sha2::Sha224>(file, size, max)?.to_vec(),
        HashAlgo::Sha256 => digest::<sha2::Sha256>(file, size, max)?.to_vec(),
        HashAlgo::Sha384 => digest::<sha2::Sha384>(file, size, max)?.to_vec(),
        HashAlgo::Sha512 => digest::<sha2::Sha512>(file, size, max)?.to_vec(),
    })
}

/// The kind a directory entry says it has (`None`: the filesystem does not say).
fn dirent_kind(t: FileType) -> Option<FileKind> {
    Some(match t {
        FileType::RegularFile => FileKind::File,
        FileType::Directory => FileKind::Directory,
        FileType::Symlink => FileKind::Symlink,
        FileType::Fifo => FileKind::Fifo,
        FileType::Socket => FileKind::Socket,
        FileType::CharacterDevice => FileKind::CharDevice,
        FileType::BlockDevice => FileKind::BlockDevice,
        FileType::Unknown => return None,
    })
}

/// Up to `limit` entries of `dir` (without `.` and `..`) in directory order, and whether there
/// were more.
#[allow(clippy::type_complexity)]
fn read_entries(
    dir: &mut Dir,
    limit: u64,
) -> Result<(Vec<(Vec<u8>, Option<FileKind>)>, bool), FactError> {
    let mut out = Vec::new();
    while let Some(entry) = dir.read() {
        let entry = entry.map_err(fact_error)?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        if out.len() as u64 >= limit {
            return Ok((out, true));
        }
        out.push((name.to_vec(), dirent_kind(entry.file_type())));
    }
    Ok((out, false))
}

fn list(root: BorrowedFd<'_>, path: &TargetPath, max_entries: u64) -> Result<FactValue, FactError> {
    // O_DIRECTORY: anything but a directory fails at lookup, before any open.
    let fd = open_in_root(
        root,
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOCTTY,
    )?;
    let mut dir = Dir::new(fd).map_err(fact_error)?;
    let (names, more) = read_entries(&mut dir, max_entries)?;
    let dir_fd = dir.fd().map_err(fact_error)?;
    let mut entries: Vec<DirEntry> = names
        .into_iter()
        .filter_map(|(name, kind)| {
            // An entry that vanished before its type could be learnt is not listed.
            let kind = match kind {
                Some(kind) => kind,
                None => rfs::statat(dir_fd, name.as_slice(), AtFlags::SYMLINK_NOFOLLOW)
                    .ok()
                    .and_then(|st| kind_from_mode(st.st_mode))?,
            };
            Some(DirEntry { name, kind })
        })
        .collect();
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(FactValue::Entries(entries, more.then_some(Bound::Entries)))
}

/// Most entries of a directory listed to find the files a [`FactRequest::ReadDir`] reads.
const READ_DIR_LIST_MAX: u64 = 100_000;

/// The first `max_files` regular files of `path` by name (not the hidden ones), each read up to
/// `max_bytes`.
fn read_dir(
    root: BorrowedFd<'_>,
    reopen: &Reopener,
    path: &TargetPath,
    max_files: u64,
    max_bytes: u64,
) -> Result<FactValue, FactError> {
    let FactValue::Entries(entries, listed_bound) = list(root, path, READ_DIR_LIST_MAX)? else {
        unreachable!("a listing answers entries")
    };
    let files: Vec<&DirEntry> = entries
        .iter()
        .filter(|e| e.kind == FileKind::File && !e.name.starts_with(b"."))
        .collect();
    let cap = usize::try_from(max_files).unwrap_or(usize::MAX);
    let bound = listed_bound.or((files.len() > cap).then_some(Bound::Entries));
    let read = files
        .into_iter()
        .take(cap)
        .map(|e| {
            let content = path
                .join(&e.name)
                .ok_or_else(|| FactError::Io("a name with a NUL byte".into()))
                .and_then(|p| open_regular(root, reopen, &p))
                .and_then(|(file, size)| read_bounded(file, size, max_bytes));
            NamedContent {
                name: e.name.clone(),
                content,
            }
        })
        .collect();
    Ok(FactValue::Files(read, bound))
}

/// The last component of a walk's start as written (empty for `/`): the name `Named` compares
/// the start with, as `find -name` does.
pub(super) fn start_name(path: &TargetPath) -> &[u8] {
    path.as_bytes()
        .split(|&b| b == b'/')
        .rev()
        .find(|c| !c.is_empty())
        .unwrap_or_default()
}
