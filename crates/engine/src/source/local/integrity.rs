//! [`FactRequest::PackageIntegrity`] on a [`LocalRoot`]: the dpkg info listing and the
//! `*.md5sums` lists through the ordinary requests, then the digests on several threads, each
//! inode hashed once (`/usr/bin/perl` and `/usr/bin/perl5.36.0` are one file, and hashing is
//! most of the cost of this request).

use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::{Condvar, Mutex, PoisonError};

use super::{LocalRoot, Reopener, digest, identity, in_parallel, open_regular_stat};
use crate::{
    FactError, FactRequest, FactValue, IntegrityReport, IntegritySpec, ManagedSpec, TargetPath,
};

/// Answers `spec` from `src` (see [`crate::integrity::verify`]).
pub(super) fn answer(
    src: &LocalRoot,
    reopen: &Reopener,
    spec: &IntegritySpec,
) -> Result<IntegrityReport, FactError> {
    let mut ask = |rs: &[FactRequest]| -> Vec<Result<FactValue, FactError>> {
        match &src.root {
            Ok(root) if rs.iter().all(|r| matches!(r, FactRequest::Md5 { .. })) => {
                digests(root.as_fd(), reopen, rs)
            }
            _ => rs.iter().map(|r| src.answer(reopen, r)).collect(),
        }
    };
    crate::integrity::verify(spec, &mut ask)
}

/// Answers `spec` from `src` (see [`crate::managed::verify`]): the database and the `lstat`s
/// through the ordinary requests, the digests on several threads.
pub(super) fn answer_managed(
    src: &LocalRoot,
    reopen: &Reopener,
    spec: &ManagedSpec,
) -> Result<IntegrityReport, FactError> {
    let mut ask = |rs: &[FactRequest]| -> Vec<Result<FactValue, FactError>> {
        if rs.iter().all(|r| matches!(r, FactRequest::Hash { .. })) {
            in_parallel(rs.len(), |i| src.answer(reopen, &rs[i]))
        } else {
            rs.iter().map(|r| src.answer(reopen, r)).collect()
        }
    };
    crate::managed::verify(spec, &mut ask)
}

/// A digest already computed (or being computed) for one inode.
type Seen = HashMap<(u64, u64), Option<Result<[u8; 16], FactError>>>;

/// The MD5 answers of `requests` (all `Md5`), in order, hashed on several threads.
fn digests(
    root: BorrowedFd<'_>,
    reopen: &Reopener,
    requests: &[FactRequest],
) -> Vec<Result<FactValue, FactError>> {
    let seen = (Mutex::new(Seen::new()), Condvar::new());
    in_parallel(requests.len(), |i| match &requests[i] {
        FactRequest::Md5 { path, max_bytes } => {
            md5_once(root, reopen, path, *max_bytes, &seen).map(FactValue::Md5)
        }
        _ => Err(FactError::Io("not an MD5 request".into())),
    })
}

/// The MD5 of the regular file at `path`; a file whose inode another thread hashes (or has
/// hashed) waits for that digest instead of reading it again. The identity is the opened
/// file's own, so a path swapped meanwhile cannot borrow another file's digest.
fn md5_once(
    root: BorrowedFd<'_>,
    reopen: &Reopener,
    path: &TargetPath,
    max_bytes: u64,
    (seen, done): &(Mutex<Seen>, Condvar),
) -> Result<[u8; 16], FactError> {
    let (file, st) = open_regular_stat(root, reopen, path)?;
    let id = identity(&st);
    {
        let mut map = seen.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            match map.get(&id) {
                Some(Some(d)) => return d.clone(),
                Some(None) => map = done.wait(map).unwrap_or_else(PoisonError::into_inner),
                None => {
                    map.insert(id, None);
                    break;
                }
            }
        }
    }
    #[allow(clippy::unnecessary_cast)] // `st_size` is not u64 on every architecture
    let d = digest::<md5::Md5>(file, st.st_size as u64, max_bytes).map(Into::into);
    seen.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(id, Some(d.clone()));
    done.notify_all();
    d
}
