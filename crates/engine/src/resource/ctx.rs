//! The facts of one scan as the resources see them: answers looked up by request, failures
//! turned into issues, and the databases parsed once per scan (each parser lives in its
//! resource's module, as an `impl Ctx` there; this module only holds the caches).

use std::cell::OnceCell;
use std::collections::BTreeMap;

use super::{NamedWalks, proc};
use crate::facts::{Content, FactError, FactRequest, FactValue, Facts, ProcFile, TargetPath};
use crate::matcher::{Issue, show_bytes};
use crate::target::{EnvVar, GroupEntry, Package, PasswdEntry, ShadowEntry, Socket};

/// The facts of one scan and what was parsed from them, shared by all checks.
pub(crate) struct Ctx<'f> {
    pub(super) facts: &'f Facts,
    /// The scan's date (UTC), for dates such as end of life.
    pub(super) today: jiff::civil::Date,
    pub(super) named: &'f NamedWalks,
    pub(super) passwd: OnceCell<Result<Vec<PasswdEntry>, Issue>>,
    pub(super) shadow: OnceCell<Result<Vec<ShadowEntry>, Issue>>,
    pub(super) group: OnceCell<Result<Vec<GroupEntry>, Issue>>,
    pub(super) os: OnceCell<Result<Option<BTreeMap<String, String>>, Issue>>,
    pub(super) packages: OnceCell<Result<Vec<Package>, Issue>>,
    pub(super) status: OnceCell<Result<BTreeMap<String, String>, Issue>>,
    pub(super) environ: OnceCell<Result<Vec<EnvVar>, Issue>>,
    pub(super) sockets: OnceCell<Result<Vec<Socket>, Issue>>,
}

impl<'f> Ctx<'f> {
    /// A context over `facts`, judging dates against `today`.
    pub(crate) fn new(facts: &'f Facts, today: jiff::civil::Date, named: &'f NamedWalks) -> Self {
        Self {
            facts,
            today,
            named,
            passwd: OnceCell::new(),
            shadow: OnceCell::new(),
            group: OnceCell::new(),
            os: OnceCell::new(),
            packages: OnceCell::new(),
            status: OnceCell::new(),
            environ: OnceCell::new(),
            sockets: OnceCell::new(),
        }
    }

    /// True when `r` was answered "no such file".
    pub(super) fn not_found(&self, r: &FactRequest) -> bool {
        matches!(self.facts.get(r), Some(Err(FactError::NotFound)))
    }

    /// The answer to `r`, or the issue that it failed or is missing.
    pub(super) fn answer(&self, r: &FactRequest) -> Result<&'f FactValue, Issue> {
        match self.facts.get(r) {
            Some(Ok(v)) => Ok(v),
            Some(Err(e)) => Err(fact_issue(r, e)),
            None => Err(Issue::Error(format!(
                "{} was not gathered: the fact source did not answer a request of the plan \
                 (a keyhole bug; please report it)",
                what(r)
            ))),
        }
    }

    /// The content answering `r`, `None` when the file does not exist.
    pub(super) fn content(&self, r: &FactRequest) -> Result<Option<&'f Content>, Issue> {
        match self.answer(r) {
            Ok(FactValue::Content(c)) => Ok(Some(c)),
            Ok(_) => Err(wrong_answer(r)),
            Err(_) if self.not_found(r) => Ok(None),
            Err(i) => Err(i),
        }
    }

    /// A database file that must be read whole; `None` when absent.
    pub(super) fn whole(&self, r: &FactRequest) -> Result<Option<&'f [u8]>, Issue> {
        match self.content(r)? {
            Some(c) if c.truncated => Err(Issue::Error(format!(
                "{} is larger than the {} bytes read, so it cannot be judged whole",
                what(r),
                c.bytes.len()
            ))),
            Some(c) => Ok(Some(&c.bytes)),
            None => Ok(None),
        }
    }

    /// One account database (read by `r`, whole) parsed once per scan into `cell`; a missing
    /// file is an empty database, a file too large to judge whole is an issue.
    pub(super) fn account_db<'a, T>(
        &'a self,
        cell: &'a OnceCell<Result<Vec<T>, Issue>>,
        r: &FactRequest,
        parse: fn(&[u8]) -> Vec<T>,
    ) -> Result<&'a [T], Issue> {
        cell.get_or_init(|| Ok(self.whole(r)?.map(parse).unwrap_or_default()))
            .as_deref()
            .map_err(Clone::clone)
    }

    /// A file of the target process, read whole.
    pub(super) fn proc_whole(&self, file: ProcFile, max: u64) -> Result<&'_ [u8], Issue> {
        let r = proc(file, max);
        match self.answer(&r)? {
            FactValue::Content(c) if c.truncated => Err(Issue::Error(format!(
                "{} is larger than the {} bytes read",
                what(&r),
                c.bytes.len()
            ))),
            FactValue::Content(c) => Ok(&c.bytes),
            _ => Err(wrong_answer(&r)),
        }
    }
}

/// How a request is named in messages.
pub(super) fn what(r: &FactRequest) -> String {
    // Escaped: some of these paths come from the target (dpkg lists, directory names).
    let q = |p: &TargetPath| show_bytes(p.as_bytes());
    match r {
        FactRequest::Stat(p) | FactRequest::Read { path: p, .. } => q(p),
        FactRequest::Sha256 { path, .. } => format!("the SHA-256 of {}", q(path)),
        FactRequest::Md5 { path, .. } => format!("the MD5 of {}", q(path)),
        FactRequest::List { path, .. } => format!("the listing of {}", q(path)),
        FactRequest::Walk { root, .. } => format!("the walk of {}", q(root)),
        FactRequest::Hash { path, algo, .. } => format!("the {} of {}", algo.name(), q(path)),
        FactRequest::PackageIntegrity(_) => "the dpkg checksum lists".into(),
        FactRequest::ManagedIntegrity(spec) => match spec.manager {
            crate::PackageManager::Rpm => "the RPM package database".into(),
            crate::PackageManager::Apk => "the apk package database".into(),
        },
        FactRequest::ReadDir { path, .. } => format!("the files of {}", q(path)),
        FactRequest::Proc { file, .. } => format!("`/proc/<pid>/{}`", file.relative_path()),
    }
}

/// The issue a failed fact raises.
pub(super) fn fact_issue(r: &FactRequest, e: &FactError) -> Issue {
    match e {
        FactError::NoProcess => Issue::Skip(format!(
            "{} is not available: {e}; process checks apply when scanning a running container",
            what(r)
        )),
        FactError::PermissionDenied => Issue::Error(format!(
            "{} could not be read: permission denied; scan as a user that may read it (the \
             file's owner or the target's UID)",
            what(r)
        )),
        _ => Issue::Error(format!("{} could not be read: {e}", what(r))),
    }
}

/// The issue of an answer of the wrong kind.
pub(super) fn wrong_answer(r: &FactRequest) -> Issue {
    Issue::Error(format!(
        "{} was answered with the wrong kind of value (a fact source bug; please report it)",
        what(r)
    ))
}
