//! Package file integrity, IO-free: how a [`FactRequest::PackageIntegrity`] is answered from
//! three batches of primitive requests (the listing of `/var/lib/dpkg/info`, the `*.md5sums`
//! lists in it, the MD5 of every listed file under the prefixes).
//!
//! Every fact source answers the composite request through [`verify`], so the selection of
//! lists and files, the caps and the notes are the same whichever source gathered them:
//! [`LocalRoot`](crate::LocalRoot) asks its primitives directly (hashing in parallel, with the
//! walk still running), and the [`ShellScript`](crate::ShellScript) output carries the
//! primitive answers its `sh` loop produced. One request instead of three rounds is what lets
//! standard mode answer integrity within its single exec session.

use crate::facts::{
    CheckedFile, DirEntry, FactError, FactRequest, FactValue, FileKind, FileStatus,
    IntegrityReport, IntegritySpec, TargetPath,
};
use crate::matcher::show_bytes;

/// The dpkg info directory, which holds one `<package>.md5sums` per package.
pub(crate) const DPKG_INFO: &str = "/var/lib/dpkg/info";
/// Where distroless images keep them instead (beside one control file per package).
pub(crate) const DPKG_STATUS_D: &str = "/var/lib/dpkg/status.d";
/// Most entries of the lists directory listed.
pub(crate) const LIST_MAX: u64 = 100_000;
/// Largest `*.md5sums` list read (a larger one is used up to its last complete line).
pub(crate) const MD5SUMS_MAX: u64 = 1 << 20;
/// Largest file hashed.
pub(crate) const HASH_MAX: u64 = 1 << 30;

/// Answers a batch of primitive requests, in order (one answer per request).
pub(crate) type Ask<'a> = dyn FnMut(&[FactRequest]) -> Vec<Result<FactValue, FactError>> + 'a;

/// The listing request of the first batch: the lists directory of `spec`.
pub(crate) fn listing(spec: &IntegritySpec) -> FactRequest {
    FactRequest::List {
        path: spec.lists.clone(),
        max_entries: LIST_MAX,
    }
}

/// The reads of the second batch: the first `max` `*.md5sums` lists of `entries` (the listing
/// of the directory `lists`) by name (a list is a regular file: a symlink named like one is not
/// followed).
pub(crate) fn list_reads(lists: &TargetPath, entries: &[DirEntry], max: u64) -> Vec<FactRequest> {
    let mut names: Vec<&[u8]> = entries
        .iter()
        .filter(|e| e.kind == FileKind::File && e.name.ends_with(b".md5sums"))
        .map(|e| e.name.as_slice())
        .collect();
    names.sort_unstable();
    names
        .into_iter()
        .take(usize::try_from(max).unwrap_or(usize::MAX))
        .filter_map(|n| lists.join(n))
        .map(|path| FactRequest::Read {
            path,
            max_bytes: MD5SUMS_MAX,
        })
        .collect()
}

/// The MD5 request of the third batch for `path`.
pub(crate) fn digest_request(path: TargetPath) -> FactRequest {
    FactRequest::Md5 {
        path,
        max_bytes: HASH_MAX,
    }
}

impl IntegritySpec {
    /// Answers this [`FactRequest::PackageIntegrity`] from primitive answers, as every fact
    /// source does: `ask` answers each batch of requests in order (the listing of
    /// [`lists`](Self::lists), then the `*.md5sums` lists read, then the MD5 of each listed
    /// file under the prefixes). A [`FactSource`](crate::FactSource) of your own calls this
    /// with its own primitive answers. An unreadable lists directory is the answer's error
    /// (`NotFound`: not a dpkg-based target).
    ///
    /// # Errors
    /// The listing's error, or [`FactError::Io`] when `ask` answers with the wrong kind of
    /// value.
    pub fn verify<F>(&self, mut ask: F) -> Result<IntegrityReport, FactError>
    where
        F: FnMut(&[FactRequest]) -> Vec<Result<FactValue, FactError>>,
    {
        verify(self, &mut ask)
    }
}

/// A file to verify: its package, path and recorded digest.
struct Listed {
    package: String,
    path: TargetPath,
    want: [u8; 16],
}

/// Answers `spec` by asking `ask` for the listing, then the lists, then the digests. An
/// unreadable lists directory is the answer's error (`NotFound`: not a dpkg-based target).
pub(crate) fn verify(
    spec: &IntegritySpec,
    ask: &mut Ask<'_>,
) -> Result<IntegrityReport, FactError> {
    let entries = match one(ask, &listing(spec))? {
        FactValue::Entries(entries, bound) => (entries, bound),
        _ => return Err(wrong_answer()),
    };
    let mut report = IntegrityReport::default();
    let reads = list_reads(&spec.lists, &entries.0, spec.max_packages);
    let lists = entries
        .0
        .iter()
        .filter(|e| e.kind == FileKind::File && e.name.ends_with(b".md5sums"))
        .count();
    if entries.1.is_some() || lists > reads.len() {
        report.incomplete.push(format!(
            "more packages than the {} verified; raise `max_packages`",
            spec.max_packages
        ));
    }
    let answers = ask(&reads);
    let listed = select(spec, &reads, answers, &mut report.incomplete);
    // Each distinct path is hashed once, even when two lists name it.
    let mut digests: Vec<FactRequest> = listed
        .iter()
        .map(|l| digest_request(l.path.clone()))
        .collect();
    digests.sort_unstable();
    digests.dedup();
    let answers = ask(&digests);
    for l in listed {
        let r = digest_request(l.path.clone());
        let answer = digests.binary_search(&r).ok().and_then(|i| answers.get(i));
        let status = match answer {
            Some(Ok(FactValue::Md5(got))) if *got == l.want => FileStatus::Unchanged,
            Some(Ok(FactValue::Md5(_))) => FileStatus::Changed,
            Some(Err(FactError::NotFound)) => FileStatus::Missing,
            Some(Err(e)) => FileStatus::Unverified(e.clone()),
            Some(Ok(_)) => FileStatus::Unverified(wrong_answer()),
            None => FileStatus::Unverified(FactError::Io("not gathered".into())),
        };
        report.files.push(CheckedFile {
            package: l.package,
            path: l.path,
            status,
            config: false,
            differs: Vec::new(),
        });
    }
    Ok(report)
}

/// The files of the lists (in list order) under the prefixes, at most `max_files`; problems
/// with the lists go to `notes`.
fn select(
    spec: &IntegritySpec,
    reads: &[FactRequest],
    answers: Vec<Result<FactValue, FactError>>,
    notes: &mut Vec<String>,
) -> Vec<Listed> {
    let cap = usize::try_from(spec.max_files).unwrap_or(usize::MAX);
    let mut out = Vec::new();
    let mut answers = answers.into_iter();
    for r in reads {
        let FactRequest::Read { path: list, .. } = r else {
            continue;
        };
        let package = String::from_utf8_lossy(
            list.as_bytes()
                .rsplit(|b| *b == b'/')
                .next()
                .unwrap_or_default(),
        )
        .trim_end_matches(".md5sums")
        .to_owned();
        let content = match answers.next() {
            Some(Ok(FactValue::Content(c))) => c,
            Some(Err(e)) => {
                notes.push(format!("{}: {e}", show_bytes(list.as_bytes())));
                continue;
            }
            // Unanswered (or answered with the wrong kind): its files are not verified, and
            // the check must not pass as if they were.
            _ => {
                notes.push(format!("{} was not gathered", show_bytes(list.as_bytes())));
                continue;
            }
        };
        let mut bytes = content.bytes.as_slice();
        if content.truncated {
            notes.push(format!(
                "{} is larger than {MD5SUMS_MAX} bytes",
                show_bytes(list.as_bytes())
            ));
            // A line cut by the cap would name a file that does not exist.
            let end = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            bytes = &bytes[..end];
        }
        for (want, rel) in crate::target::md5sums(bytes) {
            // dpkg never records `..` components; a hostile list is not followed outside.
            if rel.split(|b| *b == b'/').any(|c| c == b"..") {
                continue;
            }
            let Some(path) = TargetPath::new([b"/".as_slice(), &rel].concat()) else {
                continue;
            };
            if !spec
                .prefixes
                .iter()
                .any(|pre| path.as_bytes().starts_with(pre.as_bytes()))
            {
                continue;
            }
            if out.len() == cap {
                notes.push(format!(
                    "more than {} files to verify; raise `max_files`",
                    spec.max_files
                ));
                return out;
            }
            out.push(Listed {
                package: package.clone(),
                path,
                want,
            });
        }
    }
    out
}

/// The answer to a single request.
fn one(ask: &mut Ask<'_>, r: &FactRequest) -> Result<FactValue, FactError> {
    ask(std::slice::from_ref(r))
        .pop()
        .unwrap_or_else(|| Err(FactError::Io("not gathered".into())))
}

fn wrong_answer() -> FactError {
    FactError::Io("a fact source answered with the wrong kind of fact".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::Content;

    fn spec(prefixes: &[&str], max_packages: u64, max_files: u64) -> IntegritySpec {
        IntegritySpec {
            lists: TargetPath::new(DPKG_INFO).unwrap(),
            prefixes: prefixes
                .iter()
                .map(|p| TargetPath::new(*p).unwrap())
                .collect(),
            max_packages,
            max_files,
        }
    }

    fn entry(name: &str, kind: FileKind) -> DirEntry {
        DirEntry {
            name: name.as_bytes().to_vec(),
            kind,
        }
    }

    /// A source whose lists are `lists` and whose files hash to the given digests.
    fn run(
        spec: &IntegritySpec,
        entries: Vec<DirEntry>,
        lists: &[(&str, &str, bool)],
        files: &[(&str, Result<[u8; 16], FactError>)],
        asked: &mut Vec<Vec<FactRequest>>,
    ) -> Result<IntegrityReport, FactError> {
        let mut ask = |rs: &[FactRequest]| {
            asked.push(rs.to_vec());
            rs.iter()
                .map(|r| match r {
                    FactRequest::List { .. } => Ok(FactValue::Entries(entries.clone(), None)),
                    FactRequest::Read { path, .. } => lists
                        .iter()
                        .find(|(n, ..)| path.as_bytes() == format!("{DPKG_INFO}/{n}").as_bytes())
                        .map(|(_, text, truncated)| {
                            FactValue::Content(Content {
                                bytes: text.as_bytes().to_vec(),
                                truncated: *truncated,
                            })
                        })
                        .ok_or(FactError::NotFound),
                    FactRequest::Md5 { path, .. } => files
                        .iter()
                        .find(|(p, _)| path.as_bytes() == p.as_bytes())
                        .map_or(Err(FactError::NotFound), |(_, d)| {
                            d.clone().map(FactValue::Md5)
                        }),
                    other => panic!("unexpected {other:?}"),
                })
                .collect()
        };
        verify(spec, &mut ask)
    }

    const A: [u8; 16] = [0xaa; 16];
    const B: [u8; 16] = [0xbb; 16];

    fn line(d: [u8; 16], path: &str) -> String {
        format!("{}  {path}\n", hex::encode(d))
    }

    #[test]
    fn verdicts_follow_the_digests() {
        let text = [
            line(A, "usr/bin/same"),
            line(A, "usr/bin/changed"),
            line(A, "usr/bin/gone"),
            line(A, "usr/bin/fifo"),
            line(A, "usr/share/doc/skipped"),
            line(A, "usr/bin/../../etc/shadow"),
        ]
        .concat();
        let mut asked = Vec::new();
        let report = run(
            &spec(&["/usr/bin/"], 10, 10),
            vec![
                entry("app.md5sums", FileKind::File),
                entry("app.list", FileKind::File),
            ],
            &[("app.md5sums", &text, false)],
            &[
                ("/usr/bin/same", Ok(A)),
                ("/usr/bin/changed", Ok(B)),
                ("/usr/bin/fifo", Err(FactError::Special(FileKind::Fifo))),
            ],
            &mut asked,
        )
        .unwrap();
        let got: Vec<(&str, &FileStatus)> = report
            .files
            .iter()
            .map(|f| (std::str::from_utf8(f.path.as_bytes()).unwrap(), &f.status))
            .collect();
        assert_eq!(
            got,
            [
                ("/usr/bin/same", &FileStatus::Unchanged),
                ("/usr/bin/changed", &FileStatus::Changed),
                ("/usr/bin/gone", &FileStatus::Missing),
                (
                    "/usr/bin/fifo",
                    &FileStatus::Unverified(FactError::Special(FileKind::Fifo))
                ),
            ]
        );
        assert!(report.files.iter().all(|f| f.package == "app"));
        assert!(report.incomplete.is_empty(), "{:?}", report.incomplete);
        // Three batches: the listing, the one list, the four digests.
        assert_eq!(asked.iter().map(Vec::len).collect::<Vec<_>>(), [1, 1, 4]);
    }

    #[test]
    fn caps_and_unreadable_lists_make_it_incomplete() {
        let text = [line(A, "bin/a"), line(A, "bin/b"), line(A, "bin/c")].concat();
        let mut asked = Vec::new();
        let report = run(
            &spec(&["/bin/"], 2, 2),
            vec![
                entry("a.md5sums", FileKind::File),
                entry("b.md5sums", FileKind::File),
                entry("c.md5sums", FileKind::File),
                entry("link.md5sums", FileKind::Symlink),
            ],
            &[("b.md5sums", &text, false)],
            &[],
            &mut asked,
        )
        .unwrap();
        assert_eq!(report.files.len(), 2);
        let notes = report.incomplete.join("\n");
        assert!(notes.contains("more packages than the 2"), "{notes}");
        assert!(notes.contains("a.md5sums`: not found"), "{notes}");
        assert!(notes.contains("more than 2 files"), "{notes}");
        // The symlink is never read, and the third list is beyond the cap.
        assert_eq!(asked[1].len(), 2);
    }

    #[test]
    fn a_truncated_list_drops_its_cut_line() {
        let text = format!("{}{}", line(A, "bin/whole"), &line(A, "bin/cut-here")[..40]);
        let mut asked = Vec::new();
        let report = run(
            &spec(&["/"], 10, 10),
            vec![entry("p.md5sums", FileKind::File)],
            &[("p.md5sums", &text, true)],
            &[("/bin/whole", Ok(A))],
            &mut asked,
        )
        .unwrap();
        assert_eq!(report.files.len(), 1);
        assert_eq!(report.files[0].status, FileStatus::Unchanged);
        assert!(
            report.incomplete[0].contains("larger than"),
            "{:?}",
            report.incomplete
        );
    }

    #[test]
    fn a_path_named_twice_is_hashed_once() {
        let mut asked = Vec::new();
        let report = run(
            &spec(&["/"], 10, 10),
            vec![
                entry("a.md5sums", FileKind::File),
                entry("b.md5sums", FileKind::File),
            ],
            &[
                ("a.md5sums", &line(A, "bin/x"), false),
                ("b.md5sums", &line(B, "bin/x"), false),
            ],
            &[("/bin/x", Ok(A))],
            &mut asked,
        )
        .unwrap();
        assert_eq!(asked[2].len(), 1);
        let st: Vec<_> = report
            .files
            .iter()
            .map(|f| (&f.package[..], &f.status))
            .collect();
        assert_eq!(
            st,
            [("a", &FileStatus::Unchanged), ("b", &FileStatus::Changed)]
        );
    }

    #[test]
    fn no_dpkg_database_is_the_answer_error() {
        let mut ask = |rs: &[FactRequest]| rs.iter().map(|_| Err(FactError::NotFound)).collect();
        assert_eq!(
            verify(&spec(&["/"], 1, 1), &mut ask),
            Err(FactError::NotFound)
        );
    }
}
