//! The two fact sources: [`LocalRoot`] reads a root filesystem (a directory, or a process's
//! `/proc/PID/root`) with kernel-enforced containment (`openat2` + `RESOLVE_IN_ROOT`), and
//! [`ShellScript`] renders a whole [`FactPlan`](crate::FactPlan) as one POSIX `sh` script for an
//! exec session and parses its framed output back into [`Facts`](crate::Facts).
//!
//! Both answer every request with the same meaning, so a control evaluates the same way whichever
//! source gathered its facts; the integration tests hold them to that. Where `sh` cannot be as
//! strict as the kernel (races between a check and a read), the difference is documented on
//! [`ShellScript`].

mod frame;
mod local;
mod log_frame;
mod manifest;
mod script;

use std::path::PathBuf;

use crate::{FileKind, FileMeta, TargetPath};

pub use local::{LocalRoot, OwnRoot};
pub use log_frame::{
    FACTS_BEGIN, FACTS_END, FramedFacts, LogFrames, encode_facts_frame, read_facts_frames,
};
pub use script::ShellScript;

/// Why a fact source could not be set up (or, for [`ShellScript::run_local`], started). Problems
/// of the *target* are never this: they are [`FactError`](crate::FactError)s inside the facts.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The root directory or the process could not be opened at all.
    #[error("cannot open {}: {source}; check that it exists and that the scanner may read it", path.display())]
    Open {
        /// What was opened (`/proc/PID` for a process).
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The target's root is the scanner's own root filesystem (same device and inode as `/`):
    /// scanning it would report the scanner's files as the target's.
    #[error(
        "the target root {} is the scanner's own root filesystem; refusing to scan it \
         (pass OwnRoot::Allow to scan the local host on purpose)",
        path.display()
    )]
    OwnRoot {
        /// The target root.
        path: PathBuf,
    },
    /// A rendered script could not be run locally.
    #[error("cannot run the fact script with `{shell}`: {source}")]
    Spawn {
        /// The shell command.
        shell: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// The file type encoded in the `S_IFMT` bits of a raw `st_mode`; `None` for an unknown type.
fn kind_from_mode(mode: u32) -> Option<FileKind> {
    Some(match mode & 0o170_000 {
        0o100_000 => FileKind::File,
        0o040_000 => FileKind::Directory,
        0o120_000 => FileKind::Symlink,
        0o010_000 => FileKind::Fifo,
        0o140_000 => FileKind::Socket,
        0o020_000 => FileKind::CharDevice,
        0o060_000 => FileKind::BlockDevice,
        _ => return None,
    })
}

/// Metadata from the raw `lstat` fields both sources see (the script through `stat -c %f`).
fn meta_from_raw(mode: u32, uid: u32, gid: u32, size: u64) -> Option<FileMeta> {
    Some(FileMeta {
        kind: kind_from_mode(mode)?,
        mode: mode & 0o7777,
        uid,
        gid,
        size,
        link_target: None,
    })
}

/// `base` followed by the components of `rel` (`/a/b`, or empty for `base` itself), built with
/// [`TargetPath::join`] so that both sources name walk results byte-for-byte alike.
fn join_rel(base: &TargetPath, rel: &[u8]) -> Option<TargetPath> {
    let mut path = base.clone();
    for name in rel.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
        path = path.join(name)?;
    }
    Some(path)
}

/// The order walk results are reported in: a depth-first walk visiting each directory's entries
/// sorted by name, i.e. the paths ordered component by component. The local walk produces it
/// directly; the script's (whose `find` runs in directory order) is sorted into it.
fn walk_order(a: &TargetPath, b: &TargetPath) -> std::cmp::Ordering {
    let split = |p: &TargetPath| -> Vec<Vec<u8>> {
        p.as_bytes()
            .split(|&c| c == b'/')
            .filter(|c| !c.is_empty())
            .map(<[u8]>::to_vec)
            .collect()
    };
    split(a).cmp(&split(b))
}

/// What a `WrongKind` error says was expected.
const REGULAR_FILE: &str = "regular file";
/// What a `WrongKind` error says was expected.
const DIRECTORY: &str = "directory";
