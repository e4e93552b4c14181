//! The walks of a [`LocalRoot`](super::LocalRoot): every [`FactRequest::Walk`] of a plan that
//! starts at the same path with the same [`WalkLimits`] is answered by *one* traversal, which
//! applies each request's query to every entry it examines.
//!
//! A profile typically asks several questions of the whole tree (setuid files, setgid files,
//! world-writable entries, names, file contents); answered separately, each would list and
//! `lstat` every entry again. Grouping changes nothing a request sees: the traversal order,
//! `examined` count and bound reached depend only on the start and the limits, which a group
//! shares, and each request keeps its own matches and its own `skipped` list (a file too large
//! for one content query is not skipped by another). Requests with other limits form other
//! groups and are walked separately, so no request's bounds are ever widened or narrowed.
//!
//! Safety is the single walk's: descent through directory descriptors (`O_NOFOLLOW |
//! O_DIRECTORY`, identity checked), no symlink followed below the start, and file contents read
//! only from entries `fstat` showed to be regular files, reopened through their own `O_PATH`
//! descriptor with `O_NONBLOCK`.
//!
//! # Several threads, one answer
//!
//! The walk is system calls, one entry after the other, so a large tree is shared among up to
//! [`MAX_THREADS`] threads ([`Parallel`]): directories waiting to be listed go to a shared queue,
//! each thread examines whole directories and keeps its own partial answer, and the partial
//! answers are merged and sorted into the order of the *sequential* walk (entries by name, byte
//! by byte, each directory before what it holds: path components compared one by one). Helper
//! threads start only once the walk has proved large, and never when only one CPU is there.
//!
//! The answer is the sequential walk's, exactly. A walk that reaches no bound examines every
//! entry whatever the order, so only the order of the matches differs, and the sort restores it.
//! A bounded walk is different: *which* entries fall within `max_entries` depends on the order.
//! So the threads count the entries of every directory they list, and as soon as the walk is
//! sure to exceed `max_entries` (or runs out of time) they all stop, the parallel attempt is
//! dropped, and the sequential walk runs instead, from the start, on the same clock. A bounded
//! answer is therefore always the sequential one; the price is that a walk that runs out of time
//! in parallel has no time left for the sequential walk, which then examines only the start.
//!
//! Resources stay bounded: the queue holds at most [`QUEUE_MAX`] open directories (a thread that
//! finds it full descends itself, depth first), and the number of threads is lowered so that
//! the queue plus every thread's descent stay within [`DIR_FDS`] directory descriptors.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::ffi::CStr;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{self, AtomicBool, AtomicU64};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use memchr::memmem::Finder;
use rustix::fs::{self as rfs, Access, AtFlags, FileType, Mode, OFlags, RawDir, Stat};
use rustix::io::Errno;

use super::{
    READ_FLAGS, Reopener, fact_error, identity, io_fact_error, meta_of, open_in_root,
    require_regular, start_name,
};
use crate::{
    Bound, FactError, FactRequest, FileKind, FileMeta, TargetPath, WalkLimits, WalkOutcome,
    WalkQuery,
};

/// Walk requests sharing a start and limits, in plan order: one traversal answers them all.
pub(super) type Groups<'p> = BTreeMap<(&'p TargetPath, WalkLimits), Vec<&'p FactRequest>>;

/// Groups the walk requests among `requests` by (start, limits); other requests are ignored.
pub(super) fn group<'p>(requests: impl IntoIterator<Item = &'p FactRequest>) -> Groups<'p> {
    let mut groups = Groups::new();
    for r in requests {
        if let FactRequest::Walk { root, limits, .. } = r {
            groups.entry((root, *limits)).or_default().push(r);
        }
    }
    groups
}

/// The query of a walk request (`group` only collects walks).
fn query_of(r: &FactRequest) -> &WalkQuery {
    match r {
        FactRequest::Walk { query, .. } => query,
        _ => unreachable!("only walk requests are grouped"),
    }
}

/// Walks from `start` once and answers each of `requests` (walks with this start and `limits`),
/// in the same order, on up to `cpus` threads.
pub(super) fn walk_group(
    root: BorrowedFd<'_>,
    reopen: &Reopener,
    start: &TargetPath,
    limits: WalkLimits,
    requests: &[&FactRequest],
    cpus: usize,
) -> Vec<Result<WalkOutcome, FactError>> {
    let queries: Vec<&WalkQuery> = requests.iter().map(|r| query_of(r)).collect();
    let how = match Parallel::for_limits(limits, cpus) {
        Some(par) => How::Parallel(par),
        None => How::Sequential,
    };
    match run(root, reopen, start, &queries, limits, how) {
        Ok(outcomes) => outcomes
            .expect("a walk with a sequential fallback always answers")
            .into_iter()
            .map(Ok)
            .collect(),
        // The start could not be walked: the same answer for every query.
        Err(e) => queries.iter().map(|_| Err(e.clone())).collect(),
    }
}

/// Most threads of one walk: a scanner should stay a light guest.
const MAX_THREADS: usize = 4;

/// Entries the walk examines alone before it starts helper threads: a small tree is done in
/// less time than starting them takes.
const SPAWN_AFTER: u64 = 256;

/// Most open directories waiting in the queue of a parallel walk.
const QUEUE_MAX: usize = 64;

/// Most directory descriptors a parallel walk may hold at once (well below the usual limit of
/// 1024 descriptors a process has, which the rest of the scanner shares).
const DIR_FDS: u64 = 256;

/// How a walk is shared among threads.
#[derive(Debug, Clone, Copy)]
struct Parallel {
    /// Threads, this one included.
    threads: usize,
    /// Entries this thread examines before it starts the others.
    spawn_after: u64,
    /// Most directories waiting in the queue (at least 1).
    queue_max: usize,
}

impl Parallel {
    /// The parallel walk for `limits` on `cpus` CPUs, if one is worth it.
    fn for_limits(limits: WalkLimits, cpus: usize) -> Option<Self> {
        // A walk bounded below the spawning point would only pay for the attempt; one that may
        // not descend has a single directory to list.
        if limits.max_entries <= SPAWN_AFTER || limits.max_depth == 0 {
            return None;
        }
        // Each thread may hold one descriptor per level while the queue is full.
        let per_thread = u64::from(limits.max_depth).saturating_add(1);
        let threads = (2..=cpus.min(MAX_THREADS))
            .rev()
            .find(|&t| (t as u64).saturating_mul(per_thread) + QUEUE_MAX as u64 <= DIR_FDS)?;
        Some(Self {
            threads,
            spawn_after: SPAWN_AFTER,
            queue_max: QUEUE_MAX,
        })
    }
}

/// How [`run`] walks.
#[derive(Debug, Clone, Copy)]
enum How {
    /// One thread, in walk order.
    Sequential,
    /// Shared among threads; sequentially whenever a bound is reached.
    Parallel(Parallel),
    /// Shared among threads, with no fallback: `None` when a bound was reached.
    #[cfg(test)]
    ParallelOnly(Parallel),
}

/// What a walk query makes of one entry before any file content is read.
enum Verdict {
    Match,
    NoMatch,
    /// A `Contains` candidate: the file's beginning decides.
    ReadContent,
}

fn verdict(query: &WalkQuery, name: &[u8], meta: &FileMeta) -> Verdict {
    let file = meta.kind == FileKind::File;
    let hit = match query {
        WalkQuery::Setuid => file && meta.mode & 0o4000 != 0,
        WalkQuery::Setgid => file && meta.mode & 0o2000 != 0,
        WalkQuery::WorldWritable => {
            meta.mode & 0o002 != 0
                && (file || (meta.kind == FileKind::Directory && meta.mode & 0o1000 == 0))
        }
        WalkQuery::Named(names) => names.contains(name),
        WalkQuery::Contains { .. } => {
            return if file {
                Verdict::ReadContent
            } else {
                Verdict::NoMatch
            };
        }
    };
    if hit {
        Verdict::Match
    } else {
        Verdict::NoMatch
    }
}

/// A query ready to be applied: a content query's searcher is built once per walk.
struct Query<'a> {
    query: &'a WalkQuery,
    /// For `Contains`: the pattern's searcher, and the query's `max_bytes` and `max_file_size`.
    content: Option<(Finder<'a>, u64, u64)>,
}

/// What every thread of one walk shares.
struct Ctx<'a> {
    reopen: &'a Reopener,
    queries: Vec<Query<'a>>,
    /// Some query is a content query.
    reads_content: bool,
    limits: WalkLimits,
    started: Instant,
    max_time: Duration,
    root_dev: u64,
}

impl Ctx<'_> {
    fn out_of_time(&self) -> bool {
        self.started.elapsed() > self.max_time
    }
}

/// Walks from `start` and answers each of `queries`; `Ok(None)` only in
/// [`How::ParallelOnly`], when a bound was reached.
fn run(
    root: BorrowedFd<'_>,
    reopen: &Reopener,
    start: &TargetPath,
    queries: &[&WalkQuery],
    limits: WalkLimits,
    how: How,
) -> Result<Option<Vec<WalkOutcome>>, FactError> {
    // The start itself may be reached through symlinks (inside the root); below it, none is
    // followed.
    let fd = open_in_root(
        root,
        start,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOCTTY,
    )?;
    // A walk starts only where it may list and enter (the script checks the same).
    rfs::accessat(
        &fd,
        ".",
        Access::READ_OK | Access::EXEC_OK,
        AtFlags::EACCESS,
    )
    .map_err(fact_error)?;
    let st = rfs::fstat(&fd).map_err(fact_error)?;
    let ctx = Ctx {
        reopen,
        queries: queries
            .iter()
            .map(|&query| Query {
                query,
                content: match query {
                    WalkQuery::Contains {
                        pattern,
                        max_bytes,
                        max_file_size,
                    } => Some((Finder::new(pattern), *max_bytes, *max_file_size)),
                    _ => None,
                },
            })
            .collect(),
        reads_content: queries
            .iter()
            .any(|q| matches!(q, WalkQuery::Contains { .. })),
        limits,
        started: Instant::now(),
        max_time: Duration::from_millis(limits.max_millis),
        root_dev: identity(&st).0,
    };
    // The start is examined like any entry (as `find` does). It is a directory, so no content
    // is ever read for it.
    if limits.max_entries == 0 {
        let part = Part::new(&ctx);
        return Ok(Some(outcomes(vec![part], 0, Some(Bound::Entries))));
    }
    let meta = meta_of(&st)?;
    let start_hits: Vec<bool> = ctx
        .queries
        .iter()
        .map(|q| matches!(verdict(q.query, start_name(start), &meta), Verdict::Match))
        .collect();
    let with_start = |part: &mut Part| {
        for (matches, _) in part
            .matches
            .iter_mut()
            .zip(&start_hits)
            .filter(|(_, h)| **h)
        {
            matches.insert(0, (start.clone(), meta.clone()));
        }
    };
    let par = match how {
        How::Sequential => None,
        How::Parallel(par) => Some(par),
        #[cfg(test)]
        How::ParallelOnly(par) => {
            let Some((mut parts, deeper)) = parallel(&ctx, fd.as_fd(), start, par) else {
                return Ok(None);
            };
            with_start(&mut parts[0]);
            return Ok(Some(merge(parts, deeper)));
        }
    };
    if let Some((mut parts, deeper)) = par.and_then(|par| parallel(&ctx, fd.as_fd(), start, par)) {
        with_start(&mut parts[0]);
        return Ok(Some(merge(parts, deeper)));
    }
    let mut part = Part::new(&ctx);
    with_start(&mut part);
    let stopped = sequential(&ctx, &mut part, fd, start);
    let truncated = stopped.or(part.deeper.then_some(Bound::Depth));
    let examined = part.examined + 1;
    Ok(Some(outcomes(vec![part], examined, truncated)))
}

/// The answers of the threads of a complete parallel walk, in the sequential walk's order.
fn merge(parts: Vec<Part>, deeper: bool) -> Vec<WalkOutcome> {
    let examined = 1 + parts.iter().map(|p| p.examined).sum::<u64>();
    let mut out = outcomes(parts, examined, deeper.then_some(Bound::Depth));
    for o in &mut out {
        // Stable sorts, though no path occurs twice in one list: each entry is examined once,
        // and each query matches or skips it at most once.
        o.matches.sort_by(|a, b| walk_order(&a.0, &b.0));
        o.skipped.sort_by(|a, b| walk_order(&a.0, &b.0));
    }
    out
}

/// The order of the sequential walk: below a common start, by path components compared one by
/// one, each as bytes. A directory comes before its entries (a prefix is smaller), and `/a/b`
/// before `/a.b` (component `a` before `a.b`), unlike a comparison of the whole paths' bytes.
fn walk_order(a: &TargetPath, b: &TargetPath) -> Ordering {
    let a = a.as_bytes().split(|&c| c == b'/');
    a.cmp(b.as_bytes().split(|&c| c == b'/'))
}

/// One outcome per query, from the threads' partial answers (concatenated).
fn outcomes(parts: Vec<Part>, examined: u64, truncated: Option<Bound>) -> Vec<WalkOutcome> {
    let mut out: Vec<WalkOutcome> = Vec::new();
    for part in parts {
        if out.is_empty() {
            out = part
                .matches
                .into_iter()
                .zip(part.skipped)
                .map(|(matches, skipped)| WalkOutcome {
                    truncated,
                    matches,
                    examined,
                    skipped,
                })
                .collect();
            continue;
        }
        for (o, (matches, skipped)) in out
            .iter_mut()
            .zip(part.matches.into_iter().zip(part.skipped))
        {
            o.matches.extend(matches);
            o.skipped.extend(skipped);
        }
    }
    out
}

/// The sequential walk: depth first, each directory's entries in ascending name order. Returns
/// the bound (entries or time) that stopped it, if one did.
fn sequential(
    ctx: &Ctx<'_>,
    part: &mut Part,
    start_fd: OwnedFd,
    start: &TargetPath,
) -> Option<Bound> {
    let limits = ctx.limits;
    // The start counts as examined.
    let examined = |part: &Part| part.examined + 1;
    // One more than the entries still allowed: enough to see the entries bound reached.
    let budget = |part: &Part| {
        limits
            .max_entries
            .saturating_sub(examined(part))
            .saturating_add(1)
    };
    let mut stack: Vec<Frame> = Vec::new();
    if let Some(dir) = part.descend(ctx, start_fd, start.clone(), 0) {
        let limit = budget(part);
        if let Some(frame) = part.list(dir, limit) {
            stack.push(frame);
        }
    }
    while let Some(frame) = stack.last_mut() {
        let Some(i) = frame.names.advance() else {
            stack.pop();
            continue;
        };
        // The time bound is the group's: every query has examined exactly the same entries
        // when it is reached, so each reports it.
        if ctx.out_of_time() {
            return Some(Bound::Time);
        }
        if examined(part) >= limits.max_entries {
            return Some(Bound::Entries);
        }
        part.examined += 1;
        let frame = &*frame;
        let Some(dir) = part.examine(ctx, frame, i) else {
            continue;
        };
        let limit = budget(part);
        if let Some(child) = part.list(dir, limit) {
            stack.push(child);
        }
    }
    None
}

/// A directory to list: open (`O_NOFOLLOW | O_DIRECTORY`, identity checked) and above
/// `max_depth`.
struct Dir {
    fd: OwnedFd,
    path: TargetPath,
    depth: u32,
}

/// A directory being walked: its descriptor and its entries.
struct Frame {
    fd: OwnedFd,
    path: TargetPath,
    depth: u32,
    names: Names,
}

/// A directory's entry names (`.` and `..` left out), in ascending byte order, each kept with
/// its NUL terminator so it can be passed to the kernel as it is.
#[derive(Default)]
struct Names {
    bytes: Vec<u8>,
    /// Where each name is in `bytes`, NUL included, and whether the listing said it is a
    /// regular file (a hint only: the entry may change before it is examined).
    spans: Vec<(usize, usize, bool)>,
    /// The next name to visit.
    next: usize,
}

impl Names {
    fn len(&self) -> usize {
        self.spans.len()
    }

    fn push(&mut self, name: &CStr, regular: bool) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(name.to_bytes_with_nul());
        self.spans.push((start, self.bytes.len(), regular));
    }

    fn sort(&mut self) {
        let bytes = &self.bytes;
        // The terminating NUL sorts below every byte, so `a` comes before `ab` as it should.
        self.spans
            .sort_unstable_by(|a, b| bytes[a.0..a.1].cmp(&bytes[b.0..b.1]));
    }

    /// The index of the next name to visit, if any is left.
    fn advance(&mut self) -> Option<usize> {
        let i = self.next;
        (i < self.spans.len()).then(|| {
            self.next += 1;
            i
        })
    }

    /// The `i`th name, and whether the listing said it is a regular file.
    fn get(&self, i: usize) -> (&CStr, bool) {
        let (a, b, regular) = self.spans[i];
        let name = CStr::from_bytes_with_nul(&self.bytes[a..b]);
        (name.expect("stored with its only NUL at the end"), regular)
    }
}

/// Why a directory could not be listed, and how many entries had been read before.
struct ListError {
    error: FactError,
    read: usize,
}

/// Up to `limit` entries of the directory `fd`, sorted, and whether it has more. `buf` is the
/// space `getdents` fills (its capacity; kept from directory to directory).
fn read_names(
    fd: BorrowedFd<'_>,
    limit: u64,
    buf: &mut Vec<u8>,
) -> Result<(Names, bool), ListError> {
    let mut names = Names::default();
    let mut dir = RawDir::new(fd, buf.spare_capacity_mut());
    loop {
        let entry = match dir.next() {
            None => break,
            Some(Ok(entry)) => entry,
            Some(Err(Errno::INTR)) => continue,
            // The directory was removed while being listed: it has no more entries (as
            // `readdir` has it).
            Some(Err(Errno::NOENT)) => break,
            Some(Err(e)) => {
                return Err(ListError {
                    error: fact_error(e),
                    read: names.len(),
                });
            }
        };
        let name = entry.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        if names.len() as u64 >= limit {
            names.sort();
            return Ok((names, true));
        }
        names.push(name, entry.file_type() == FileType::RegularFile);
    }
    names.sort();
    Ok((names, false))
}

/// Room for the entries one `getdents` call returns (a few hundred typical names).
const DIRENT_BUF: usize = 32 * 1024;

/// What one thread of a walk has found: its matches and skipped entries per query, and how much
/// it examined; with the buffers it reuses from entry to entry.
struct Part {
    matches: Vec<Vec<(TargetPath, FileMeta)>>,
    skipped: Vec<Vec<(TargetPath, FactError)>>,
    /// Entries this thread examined (the start is not one of them).
    examined: u64,
    /// A directory at `max_depth` had entries that were not examined.
    deeper: bool,
    /// The beginning of the file being searched.
    content: Vec<u8>,
    /// Which queries the entry being examined matches.
    hits: Vec<bool>,
    /// The content queries the entry being examined is small enough for.
    readers: Vec<usize>,
    /// Space for `getdents`.
    dirents: Vec<u8>,
}

impl Part {
    fn new(ctx: &Ctx<'_>) -> Self {
        let n = ctx.queries.len();
        Self {
            matches: (0..n).map(|_| Vec::new()).collect(),
            skipped: (0..n).map(|_| Vec::new()).collect(),
            examined: 0,
            deeper: false,
            content: Vec::new(),
            hits: Vec::with_capacity(n),
            readers: Vec::with_capacity(n),
            dirents: Vec::with_capacity(DIRENT_BUF),
        }
    }

    /// Records that `path` could not be examined, for every query (none of them saw it).
    fn skip_all(&mut self, path: &TargetPath, e: FactError) {
        for skipped in &mut self.skipped {
            skipped.push((path.clone(), e.clone()));
        }
    }

    /// A directory opened at `depth`: the directory to list, or, at `max_depth`, a look
    /// whether it has any entries, which is the depth bound being reached.
    fn descend(&mut self, ctx: &Ctx<'_>, fd: OwnedFd, path: TargetPath, depth: u32) -> Option<Dir> {
        if depth >= ctx.limits.max_depth {
            if matches!(read_names(fd.as_fd(), 0, &mut self.dirents), Ok((_, true))) {
                self.deeper = true;
            }
            return None;
        }
        Some(Dir { fd, path, depth })
    }

    /// Lists `dir` (up to `limit` entries): the frame to walk; `None` when it could not be
    /// listed (reported as skipped).
    fn list(&mut self, dir: Dir, limit: u64) -> Option<Frame> {
        match read_names(dir.fd.as_fd(), limit, &mut self.dirents) {
            Ok((names, _)) => Some(Frame {
                fd: dir.fd,
                path: dir.path,
                depth: dir.depth,
                names,
            }),
            Err(e) => {
                self.skip_all(&dir.path, e.error);
                None
            }
        }
    }

    /// Examines the `i`th entry of `frame` for every query; returns the directory to descend
    /// into, if it is one to list.
    fn examine(&mut self, ctx: &Ctx<'_>, frame: &Frame, i: usize) -> Option<Dir> {
        let dir = frame.fd.as_fd();
        let (name, regular) = frame.names.get(i);
        // The entry's path is built only when something is reported or descended into.
        let mut path = None;
        let path_of = |path: &mut Option<TargetPath>| -> TargetPath {
            path.get_or_insert_with(|| {
                frame
                    .path
                    .join(name.to_bytes())
                    .expect("a directory entry's name has no NUL byte")
            })
            .clone()
        };
        // A file whose content may be read is opened `O_PATH` (which opens nothing: no FIFO,
        // no device) right away, and that descriptor's `fstat` is its `lstat`: one path lookup
        // fewer than `lstat` then `O_PATH`, and nothing can be swapped in between. Should that
        // fail, `lstat` decides, as for any other entry (so errors are reported the same way).
        let opened = (regular && ctx.reads_content).then(|| {
            let fd = rfs::openat(
                dir,
                name,
                OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .ok()?;
            let st = rfs::fstat(&fd).ok()?;
            Some((fd, st))
        });
        let (path_fd, st) = match opened.flatten() {
            Some((fd, st)) => (Some(fd), st),
            None => match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => (None, st),
                Err(e) => {
                    self.skip_all(&path_of(&mut path), fact_error(e));
                    return None;
                }
            },
        };
        let mut meta = match meta_of(&st) {
            Ok(meta) => meta,
            Err(e) => {
                self.skip_all(&path_of(&mut path), e);
                return None;
            }
        };
        self.hits(ctx, dir, name, &st, path_fd, &meta, &mut || {
            path_of(&mut path)
        });
        if self.hits.iter().any(|&h| h) {
            if meta.kind == FileKind::Symlink {
                meta.link_target = rfs::readlinkat(dir, name, Vec::new())
                    .ok()
                    .map(|t| t.into_bytes());
            }
            let p = path_of(&mut path);
            for (matches, _) in self.matches.iter_mut().zip(&self.hits).filter(|(_, h)| **h) {
                matches.push((p.clone(), meta.clone()));
            }
        }
        if meta.kind != FileKind::Directory {
            return None;
        }
        // Every directory must be listable and enterable, or it is reported as skipped (also
        // one not descended into because of the depth or filesystem bound: the script, which
        // cannot tell those apart, reports it too).
        if let Err(e) = rfs::accessat(
            dir,
            name,
            Access::READ_OK | Access::EXEC_OK,
            AtFlags::EACCESS,
        ) {
            self.skip_all(&path_of(&mut path), fact_error(e));
            return None;
        }
        if ctx.limits.same_filesystem && identity(&st).0 != ctx.root_dev {
            return None;
        }
        // O_NOFOLLOW | O_DIRECTORY: an entry swapped for a symlink or a non-directory since the
        // lstat is refused rather than followed; the identity check catches any other swap.
        let child = match rfs::openat(
            dir,
            name,
            OFlags::RDONLY
                | OFlags::DIRECTORY
                | OFlags::NOFOLLOW
                | OFlags::NOCTTY
                | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(child) => child,
            Err(e) => {
                self.skip_all(&path_of(&mut path), fact_error(e));
                return None;
            }
        };
        match rfs::fstat(&child) {
            Ok(cst) if identity(&cst) == identity(&st) => {}
            _ => {
                let e = FactError::Io("replaced during the walk".into());
                self.skip_all(&path_of(&mut path), e);
                return None;
            }
        }
        self.descend(ctx, child, path_of(&mut path), frame.depth + 1)
    }

    /// Sets `self.hits` to which queries match the entry `name` (`lstat`ed as `st`, or
    /// `fstat`ed as `st` through `path_fd`). The metadata decides for all but content queries;
    /// the file is opened and read at most once for all of those, and only as far as the longest
    /// `max_bytes` among the queries it is not too large for.
    #[allow(clippy::too_many_arguments)] // the entry, described every way it is known
    fn hits(
        &mut self,
        ctx: &Ctx<'_>,
        dir: BorrowedFd<'_>,
        name: &CStr,
        st: &Stat,
        path_fd: Option<OwnedFd>,
        meta: &FileMeta,
        path: &mut dyn FnMut() -> TargetPath,
    ) {
        self.hits.clear();
        self.readers.clear();
        let mut want = 0u64;
        for (i, q) in ctx.queries.iter().enumerate() {
            let hit = match verdict(q.query, name.to_bytes(), meta) {
                Verdict::Match => true,
                Verdict::NoMatch => false,
                Verdict::ReadContent => {
                    let (_, max_bytes, max_file_size) = q
                        .content
                        .as_ref()
                        .expect("only content queries read content");
                    if meta.size > *max_file_size {
                        let limit = *max_file_size;
                        self.skipped[i].push((path(), FactError::TooLarge { limit }));
                    } else {
                        self.readers.push(i);
                        want = want.max(*max_bytes);
                    }
                    false
                }
            };
            self.hits.push(hit);
        }
        if self.readers.is_empty() {
            return;
        }
        match read_start(ctx.reopen, dir, name, st, path_fd, want, &mut self.content) {
            Ok(()) => {
                for &i in &self.readers {
                    let (finder, max_bytes, _) = ctx.queries[i]
                        .content
                        .as_ref()
                        .expect("only content queries read content");
                    // Each query sees exactly the first `max_bytes` it asked for.
                    let seen = usize::try_from(*max_bytes)
                        .map_or(self.content.len(), |n| n.min(self.content.len()));
                    self.hits[i] = finder.find(&self.content[..seen]).is_some();
                }
            }
            Err(e) => {
                let p = path();
                for &i in &self.readers {
                    self.skipped[i].push((p.clone(), e.clone()));
                }
            }
        }
    }

    /// Takes directories from `pool` and walks them until none is left (or the walk is
    /// stopped); calls `spawn` once, after examining `spawn_after` entries.
    fn work(&mut self, ctx: &Ctx<'_>, pool: &Pool, spawn_after: u64, spawn: &mut dyn FnMut()) {
        // A thread that panics stops the others, which would otherwise wait for it forever.
        let _guard = StopOnPanic(pool);
        let mut spawned = false;
        while let Some(dir) = pool.take() {
            let mut stack: Vec<Frame> = Vec::new();
            if let Some(frame) = self.list_counted(ctx, pool, dir) {
                stack.push(frame);
            }
            while let Some(frame) = stack.last_mut() {
                let Some(i) = frame.names.advance() else {
                    stack.pop();
                    continue;
                };
                if pool.stopped() {
                    break;
                }
                if ctx.out_of_time() {
                    pool.stop();
                    break;
                }
                self.examined += 1;
                if !spawned && self.examined >= spawn_after {
                    spawned = true;
                    spawn();
                }
                let frame = &*frame;
                let Some(child) = self.examine(ctx, frame, i) else {
                    continue;
                };
                // Queued for any thread; when the queue is full, this thread goes down itself
                // (so a wide tree cannot make the queue hold ever more open directories).
                if let Err(child) = pool.offer(child)
                    && let Some(frame) = self.list_counted(ctx, pool, child)
                {
                    stack.push(frame);
                }
            }
            pool.done();
        }
    }

    /// Lists `dir` for a parallel walk, counting its entries against `max_entries`: once the
    /// count is over, the walk is stopped (the sequential walk answers instead).
    fn list_counted(&mut self, ctx: &Ctx<'_>, pool: &Pool, dir: Dir) -> Option<Frame> {
        let max = ctx.limits.max_entries;
        // No single directory may hold more than `max_entries` entries of a walk that stays
        // within it, the start being one.
        match read_names(dir.fd.as_fd(), max, &mut self.dirents) {
            Ok((names, more)) => {
                if more || pool.count(names.len(), max) {
                    pool.stop();
                    return None;
                }
                Some(Frame {
                    fd: dir.fd,
                    path: dir.path,
                    depth: dir.depth,
                    names,
                })
            }
            Err(e) => {
                // The sequential walk lists with a budget: it may stop before the entry that
                // failed, and then reports the entries bound instead of this error. It can do so
                // only if the entries read before the error bring the walk over the bound, so
                // they are counted too: a walk that stays within it answers as the sequential one.
                if pool.count(e.read, max) {
                    pool.stop();
                    return None;
                }
                self.skip_all(&dir.path, e.error);
                None
            }
        }
    }
}

/// Reads the first `want` bytes of the regular file `name` in `dir` (`lstat`ed as `st`) into
/// `content`; through `opened`, if the entry was examined through that `O_PATH` descriptor
/// (then `st` is its `fstat`).
fn read_start(
    reopen: &Reopener,
    dir: BorrowedFd<'_>,
    name: &CStr,
    st: &Stat,
    opened: Option<OwnedFd>,
    want: u64,
    content: &mut Vec<u8>,
) -> Result<(), FactError> {
    let (path_fd, checked) = match opened {
        Some(fd) => (fd, *st),
        None => {
            let fd = rfs::openat(
                dir,
                name,
                OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(fact_error)?;
            let checked = rfs::fstat(&fd).map_err(fact_error)?;
            if identity(&checked) != identity(st) {
                return Err(FactError::Io("replaced during the walk".into()));
            }
            (fd, checked)
        }
    };
    require_regular(&checked)?;
    let file = reopen.open_read(&path_fd, &checked, || {
        rfs::openat(dir, name, READ_FLAGS | OFlags::NOFOLLOW, Mode::empty())
    })?;
    // Only the bytes the queries look at: whether the file goes on is nobody's question.
    // Reading stops at the size `lstat` gave (saving the read that would only return EOF); a
    // file growing meanwhile is a race any answer is right for. A zero size is not trusted
    // (kernel files report it and have content): those are read to the end.
    #[allow(clippy::unnecessary_cast)] // `st_size` is not i64 on every architecture
    let size = st.st_size as u64;
    let limit = if size > 0 { want.min(size) } else { want };
    content.clear();
    file.take(limit)
        .read_to_end(content)
        .map_err(|e| io_fact_error(&e))?;
    Ok(())
}

/// The directories of a parallel walk waiting to be listed, and the walk's common state.
struct Pool {
    queue: Mutex<Queue>,
    /// Signalled when a directory is queued, when the last busy thread is done, and on stop.
    wake: Condvar,
    /// A bound was reached: every thread stops, and the attempt is void.
    stop: AtomicBool,
    /// Entries the walk will examine (the start included): those of every directory listed.
    entries: AtomicU64,
    queue_max: usize,
}

struct Queue {
    dirs: Vec<Dir>,
    /// Threads walking a directory taken from the queue (they may queue more).
    busy: usize,
}

impl Pool {
    fn new(queue_max: usize) -> Self {
        Self {
            queue: Mutex::new(Queue {
                dirs: Vec::new(),
                busy: 0,
            }),
            wake: Condvar::new(),
            stop: AtomicBool::new(false),
            entries: AtomicU64::new(1),
            queue_max: queue_max.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // The queue is consistent between any two statements: a panic elsewhere (which is
        // propagated anyway) does not make it unusable.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn stopped(&self) -> bool {
        self.stop.load(atomic::Ordering::Relaxed)
    }

    fn stop(&self) {
        self.stop.store(true, atomic::Ordering::Relaxed);
        // Under the lock, so that no thread is between its check and its wait.
        let _queue = self.lock();
        self.wake.notify_all();
    }

    /// Adds `n` listed entries; true when the walk now has more than `max`.
    fn count(&self, n: usize, max: u64) -> bool {
        let n = n as u64;
        self.entries
            .fetch_add(n, atomic::Ordering::Relaxed)
            .saturating_add(n)
            > max
    }

    /// The next directory to walk (the last queued: depth first, which keeps the queue short),
    /// or `None` when there is none and none can come (or the walk is stopped).
    fn take(&self) -> Option<Dir> {
        let mut queue = self.lock();
        loop {
            if self.stopped() {
                return None;
            }
            if let Some(dir) = queue.dirs.pop() {
                queue.busy += 1;
                return Some(dir);
            }
            if queue.busy == 0 {
                return None;
            }
            queue = self
                .wake
                .wait(queue)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Queues `dir` for any thread, unless the queue is full.
    fn offer(&self, dir: Dir) -> Result<(), Dir> {
        let mut queue = self.lock();
        if queue.dirs.len() >= self.queue_max {
            return Err(dir);
        }
        queue.dirs.push(dir);
        self.wake.notify_one();
        Ok(())
    }

    /// A directory taken with [`Pool::take`] is walked.
    fn done(&self) {
        let mut queue = self.lock();
        queue.busy -= 1;
        if queue.busy == 0 && queue.dirs.is_empty() {
            self.wake.notify_all();
        }
    }
}

/// Stops the walk when dropped by a panic.
struct StopOnPanic<'a>(&'a Pool);

impl Drop for StopOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.stop();
        }
    }
}

/// The parallel walk below the start (opened as `start_fd`): every thread's partial answer and
/// whether the depth bound was reached; `None` when a bound (entries, time) was reached or the
/// walk could not begin, and the sequential walk must answer.
fn parallel(
    ctx: &Ctx<'_>,
    start_fd: BorrowedFd<'_>,
    start: &TargetPath,
    par: Parallel,
) -> Option<(Vec<Part>, bool)> {
    if ctx.limits.max_depth == 0 {
        return None;
    }
    // A descriptor of its own (its own reading position): `start_fd` is kept for the sequential
    // walk. "." cannot be replaced; it is the directory checked above.
    let fd = rfs::openat(
        start_fd,
        c".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let pool = Pool::new(par.queue_max);
    pool.offer(Dir {
        fd,
        path: start.clone(),
        depth: 0,
    })
    .ok()?;
    let parts = std::thread::scope(|s| {
        let pool = &pool;
        let mut helpers = Vec::new();
        let mut first = Part::new(ctx);
        {
            let mut spawn = || {
                // A helper that cannot be started (a thread limit, a sandbox) only means less
                // parallelism.
                helpers.extend((1..par.threads).filter_map(|_| {
                    std::thread::Builder::new()
                        .spawn_scoped(s, move || {
                            let mut part = Part::new(ctx);
                            part.work(ctx, pool, u64::MAX, &mut || {});
                            part
                        })
                        .ok()
                }));
            };
            first.work(ctx, pool, par.spawn_after, &mut spawn);
        }
        let mut parts = vec![first];
        for h in helpers {
            match h.join() {
                Ok(part) => parts.push(part),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        parts
    });
    if pool.stopped() {
        return None;
    }
    let deeper = parts.iter().any(|p| p.deeper);
    Some((parts, deeper))
}

#[cfg(test)]
mod tests;
