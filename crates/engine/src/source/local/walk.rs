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

use std::collections::BTreeMap;
use std::io::Read;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use rustix::fs::{self as rfs, Access, AtFlags, Dir, Mode, OFlags, Stat};

use super::{
    READ_FLAGS, Reopener, fact_error, identity, io_fact_error, meta_of, open_in_root, read_entries,
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
/// in the same order.
pub(super) fn walk_group(
    root: BorrowedFd<'_>,
    reopen: &Reopener,
    start: &TargetPath,
    limits: WalkLimits,
    requests: &[&FactRequest],
) -> Vec<Result<WalkOutcome, FactError>> {
    let queries: Vec<&WalkQuery> = requests.iter().map(|r| query_of(r)).collect();
    match Walker::run(root, reopen, start, &queries, limits) {
        Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
        // The start could not be walked: the same answer for every query.
        Err(e) => queries.iter().map(|_| Err(e.clone())).collect(),
    }
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

/// Whether `pattern` occurs in `hay` (an empty pattern is everywhere).
fn occurs(hay: &[u8], pattern: &[u8]) -> bool {
    let Some((&first, rest)) = pattern.split_first() else {
        return true;
    };
    // Candidates are found by their first byte, which rules out almost every position at once.
    let last_start = match hay.len().checked_sub(pattern.len()) {
        Some(n) => n,
        None => return false,
    };
    hay[..=last_start]
        .iter()
        .enumerate()
        .filter(|&(_, &b)| b == first)
        .any(|(i, _)| &hay[i + 1..i + pattern.len()] == rest)
}

/// One directory being walked: its descriptor and its remaining entries (sorted descending, so
/// that `pop` visits them in ascending order).
struct Frame {
    dir: Dir,
    path: TargetPath,
    depth: u32,
    names: Vec<Vec<u8>>,
}

/// What one query of the traversal has found so far.
struct Answer<'a> {
    query: &'a WalkQuery,
    matches: Vec<(TargetPath, FileMeta)>,
    skipped: Vec<(TargetPath, FactError)>,
}

/// A bounded traversal in progress, answering several queries.
struct Walker<'a> {
    reopen: &'a Reopener,
    answers: Vec<Answer<'a>>,
    limits: WalkLimits,
    started: Instant,
    root_dev: u64,
    examined: u64,
    /// Entries or time: the walk stopped there.
    stopped: Option<Bound>,
    /// A directory at `max_depth` had entries that were not examined.
    deeper: bool,
    /// The beginning of the file being searched, reused from file to file.
    content: Vec<u8>,
}

impl<'a> Walker<'a> {
    fn run(
        root: BorrowedFd<'_>,
        reopen: &'a Reopener,
        start: &TargetPath,
        queries: &[&'a WalkQuery],
        limits: WalkLimits,
    ) -> Result<Vec<WalkOutcome>, FactError> {
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
        let mut walk = Walker {
            reopen,
            answers: queries
                .iter()
                .map(|&query| Answer {
                    query,
                    matches: Vec::new(),
                    skipped: Vec::new(),
                })
                .collect(),
            limits,
            started: Instant::now(),
            root_dev: identity(&st).0,
            examined: 1,
            stopped: None,
            deeper: false,
            content: Vec::new(),
        };
        // The start is examined like any entry (as `find` does). It is a directory, so no
        // content is ever read for it.
        if limits.max_entries == 0 {
            walk.examined = 0;
            walk.stopped = Some(Bound::Entries);
            return Ok(walk.outcomes());
        }
        let meta = meta_of(&st)?;
        for a in &mut walk.answers {
            if matches!(verdict(a.query, start_name(start), &meta), Verdict::Match) {
                a.matches.push((start.clone(), meta.clone()));
            }
        }
        let mut stack = Vec::new();
        if let Some(frame) = walk.enter(fd, start.clone(), 0) {
            stack.push(frame);
        }
        let max_time = Duration::from_millis(limits.max_millis);
        while let Some(frame) = stack.last_mut() {
            let Some(name) = frame.names.pop() else {
                stack.pop();
                continue;
            };
            // The time bound is the group's: every query has examined exactly the same entries
            // when it is reached, so each reports it.
            if walk.started.elapsed() > max_time {
                walk.stopped = Some(Bound::Time);
                break;
            }
            if walk.examined >= limits.max_entries {
                walk.stopped = Some(Bound::Entries);
                break;
            }
            walk.examined += 1;
            let frame = stack.last().expect("the frame just popped from");
            if let Some(child) = walk.examine(frame, &name) {
                stack.push(child);
            }
        }
        Ok(walk.outcomes())
    }

    fn outcomes(self) -> Vec<WalkOutcome> {
        let truncated = self.stopped.or(self.deeper.then_some(Bound::Depth));
        let examined = self.examined;
        self.answers
            .into_iter()
            .map(|a| WalkOutcome {
                truncated,
                matches: a.matches,
                examined,
                skipped: a.skipped,
            })
            .collect()
    }

    /// Records that `path` could not be examined, for every query (none of them saw it).
    fn skip_all(&mut self, path: TargetPath, e: FactError) {
        for a in &mut self.answers {
            a.skipped.push((path.clone(), e.clone()));
        }
    }

    /// After a directory at `depth` was opened: its entries to visit, or (at `max_depth`) a look
    /// whether it has any, which is the depth bound being reached.
    fn enter(&mut self, dir: OwnedFd, path: TargetPath, depth: u32) -> Option<Frame> {
        let mut stream = Dir::new(dir).ok()?;
        if depth >= self.limits.max_depth {
            if matches!(read_entries(&mut stream, 0), Ok((_, true))) {
                self.deeper = true;
            }
            return None;
        }
        // One more than the entries still allowed: enough to see the entries bound reached.
        let budget = self
            .limits
            .max_entries
            .saturating_sub(self.examined)
            .saturating_add(1);
        match read_entries(&mut stream, budget) {
            Ok((entries, _)) => {
                let mut names: Vec<Vec<u8>> = entries.into_iter().map(|(n, _)| n).collect();
                names.sort_unstable_by(|a, b| b.cmp(a));
                Some(Frame {
                    dir: stream,
                    path,
                    depth,
                    names,
                })
            }
            Err(e) => {
                self.skip_all(path, e);
                None
            }
        }
    }

    /// Examines `name` in `frame` for every query; returns the frame to descend into, if it is a
    /// directory to walk.
    fn examine(&mut self, frame: &Frame, name: &[u8]) -> Option<Frame> {
        let path = frame.path.join(name)?;
        let dir = frame.dir.fd().ok()?;
        let st = match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(e) => {
                self.skip_all(path, fact_error(e));
                return None;
            }
        };
        let mut meta = match meta_of(&st) {
            Ok(meta) => meta,
            Err(e) => {
                self.skip_all(path, e);
                return None;
            }
        };
        let hits = self.hits(dir, name, &path, &st, &meta);
        if hits.iter().any(|&h| h) {
            if meta.kind == FileKind::Symlink {
                meta.link_target = rfs::readlinkat(dir, name, Vec::new())
                    .ok()
                    .map(|t| t.into_bytes());
            }
            for (a, _) in self.answers.iter_mut().zip(&hits).filter(|(_, h)| **h) {
                a.matches.push((path.clone(), meta.clone()));
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
            self.skip_all(path, fact_error(e));
            return None;
        }
        if self.limits.same_filesystem && identity(&st).0 != self.root_dev {
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
                self.skip_all(path, fact_error(e));
                return None;
            }
        };
        match rfs::fstat(&child) {
            Ok(cst) if identity(&cst) == identity(&st) => {}
            _ => {
                self.skip_all(path, FactError::Io("replaced during the walk".into()));
                return None;
            }
        }
        self.enter(child, path, frame.depth + 1)
    }

    /// Which queries match the entry `name` (`lstat`ed as `st`). The metadata decides for all
    /// but content queries; the file is opened and read at most once for all of those, and only
    /// as far as the longest `max_bytes` among the queries it is not too large for.
    fn hits(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &[u8],
        path: &TargetPath,
        st: &Stat,
        meta: &FileMeta,
    ) -> Vec<bool> {
        let size = meta.size;
        let mut hits = Vec::with_capacity(self.answers.len());
        // The content queries this file is small enough for, and how much of it they need.
        let mut readers = Vec::new();
        let mut want = 0u64;
        for (i, a) in self.answers.iter_mut().enumerate() {
            hits.push(match verdict(a.query, name, meta) {
                Verdict::Match => true,
                Verdict::NoMatch => false,
                Verdict::ReadContent => {
                    let WalkQuery::Contains {
                        max_bytes,
                        max_file_size,
                        ..
                    } = a.query
                    else {
                        unreachable!("only content queries read content")
                    };
                    if size > *max_file_size {
                        let limit = *max_file_size;
                        a.skipped
                            .push((path.clone(), FactError::TooLarge { limit }));
                    } else {
                        readers.push(i);
                        want = want.max(*max_bytes);
                    }
                    false
                }
            });
        }
        if readers.is_empty() {
            return hits;
        }
        match self.read_start(dir, name, st, want) {
            Ok(()) => {
                for i in readers {
                    let a = &self.answers[i];
                    let WalkQuery::Contains {
                        pattern, max_bytes, ..
                    } = a.query
                    else {
                        unreachable!("only content queries read content")
                    };
                    // Each query sees exactly the first `max_bytes` it asked for.
                    let seen = usize::try_from(*max_bytes)
                        .map_or(self.content.len(), |n| n.min(self.content.len()));
                    hits[i] = occurs(&self.content[..seen], pattern);
                }
            }
            Err(e) => {
                for i in readers {
                    self.answers[i].skipped.push((path.clone(), e.clone()));
                }
            }
        }
        hits
    }

    /// Reads the first `want` bytes of the regular file `name` in `dir` into `self.content`.
    fn read_start(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &[u8],
        st: &Stat,
        want: u64,
    ) -> Result<(), FactError> {
        let path_fd = rfs::openat(
            dir,
            name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(fact_error)?;
        let checked = rfs::fstat(&path_fd).map_err(fact_error)?;
        if identity(&checked) != identity(st) {
            return Err(FactError::Io("replaced during the walk".into()));
        }
        require_regular(&checked)?;
        let file = self.reopen.open_read(&path_fd, &checked, || {
            rfs::openat(dir, name, READ_FLAGS | OFlags::NOFOLLOW, Mode::empty())
        })?;
        // Only the bytes the queries look at: whether the file goes on is nobody's question.
        // Reading stops at the size `lstat` gave (saving the read that would only return EOF);
        // a file growing meanwhile is a race any answer is right for. A zero size is not
        // trusted (kernel files report it and have content): those are read to the end.
        let size = st.st_size as u64;
        let limit = if size > 0 { want.min(size) } else { want };
        self.content.clear();
        file.take(limit)
            .read_to_end(&mut self.content)
            .map_err(|e| io_fact_error(&e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
