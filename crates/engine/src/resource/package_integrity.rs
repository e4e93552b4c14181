//! The `package_integrity` resource: packaged files that differ from what their package
//! database recorded, or that are missing: dpkg's `*.md5sums` (content), RPM's database (digest,
//! size, mode, owner, group, symlink target; `%config` files marked, `%ghost` files skipped) and
//! apk's installed database (content, owner, mode). The verification itself is
//! [`crate::integrity`] (dpkg) and [`crate::managed`] (RPM, apk), shared by every fact source;
//! this module reads their answers.

use super::args::{arg, args, positive_or, target_path};
use super::ctx::fact_issue;
use super::ctx::{what, wrong_answer};
use super::{Ctx, FieldSpec, Kind, NamedWalks, Rec, Record, RecordSet, bytes, f, path, text};
use crate::EngineError;
use crate::facts::{
    FactError, FactPlan, FactRequest, FactValue, FileStatus, HashAlgo, IntegritySpec, ManagedSpec,
    PackageManager, TargetPath,
};
use crate::integrity::DPKG_INFO;
use crate::matcher::FieldType::{Bool, Text};
use crate::matcher::{Issue, Value, show_bytes};
use crate::scope::Scope;
use crate::yaml::Node;

/// Most packaged files verified, by default.
const MAX_FILES: u64 = 20_000;
/// Most packages whose lists are read, by default.
const MAX_PACKAGES: u64 = 2_000;

/// Packaged files that differ from their package database's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PackageIntegrity {
    spec: IntegritySpec,
    /// RPM's and apk's verification (with the default dpkg lists only: a profile naming other
    /// lists asks about those).
    managed: Vec<ManagedSpec>,
}

/// The fields of integrity records.
const FIELDS: &[FieldSpec] = &[
    f("package", Text),
    f("path", Text),
    f("problem", Text),
    f("config", Bool),
    f("differs", Text),
    f("manager", Text),
];

impl PackageIntegrity {
    /// `package_integrity: {lists, paths, max_files, max_packages, digests}` (all optional).
    pub(super) fn parse(scope: &Scope<'_>, at: &str, node: &Node) -> Result<Self, EngineError> {
        let a = args(
            scope,
            at,
            node,
            &["lists", "paths", "max_files", "max_packages", "digests"],
        )?;
        let lists = match arg(a, "lists") {
            Some(e) => {
                let v = scope.resolve(&e.value, &format!("{at}.lists"))?;
                target_path(scope, &format!("{at}.lists"), &v)?
            }
            None => path(DPKG_INFO),
        };
        let prefixes: Vec<TargetPath> = match arg(a, "paths") {
            Some(e) => {
                let v = scope.resolve(&e.value, &format!("{at}.paths"))?;
                let items = v.as_seq().ok_or_else(|| {
                    scope.error(e.line, &format!("{at}.paths"), "expected a list".into())
                })?;
                items
                    .iter()
                    .map(|n| target_path(scope, &format!("{at}.paths"), n))
                    .collect::<Result<_, _>>()?
            }
            None => vec![path("/")],
        };
        let digests = match arg(a, "digests") {
            Some(e) => {
                let where_ = format!("{at}.digests");
                let v = scope.resolve(&e.value, &where_)?;
                let items = v
                    .as_seq()
                    .ok_or_else(|| scope.error(e.line, &where_, "expected a list".into()))?;
                let mut out = Vec::new();
                for n in items {
                    let name = crate::matcher::text(scope, &where_, n)?;
                    let algo = HashAlgo::from_name(&name).ok_or_else(|| {
                        scope.error(
                            e.line,
                            &where_,
                            format!(
                                "unknown digest `{name}` (one of {})",
                                HashAlgo::ALL.map(HashAlgo::name).join(", ")
                            ),
                        )
                    })?;
                    out.push(algo);
                }
                out.sort_unstable();
                out.dedup();
                out
            }
            None => vec![HashAlgo::Sha256],
        };
        let max_files = positive_or(scope, at, a, "max_files", MAX_FILES)?;
        let managed = if lists.as_bytes() == DPKG_INFO.as_bytes() {
            vec![
                ManagedSpec {
                    manager: PackageManager::Rpm,
                    prefixes: prefixes.clone(),
                    max_files,
                    algorithms: digests,
                },
                ManagedSpec {
                    manager: PackageManager::Apk,
                    prefixes: prefixes.clone(),
                    max_files,
                    // apk's `Z:Q1` checksums.
                    algorithms: vec![HashAlgo::Sha1],
                },
            ]
        } else {
            Vec::new()
        };
        Ok(Self {
            spec: IntegritySpec {
                lists,
                prefixes,
                max_files,
                max_packages: positive_or(scope, at, a, "max_packages", MAX_PACKAGES)?,
            },
            managed,
        })
    }

    /// The dpkg request.
    fn request(&self) -> FactRequest {
        FactRequest::PackageIntegrity(self.spec.clone())
    }
}

impl Kind for PackageIntegrity {
    const FIELDS: &'static [FieldSpec] = FIELDS;

    fn describe(&self) -> String {
        let IntegritySpec {
            lists, prefixes, ..
        } = &self.spec;
        format!(
            "changed files of {} packages under {}{}",
            if self.managed.is_empty() {
                "dpkg"
            } else {
                "dpkg, RPM and apk"
            },
            prefixes
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            if lists.as_bytes() == DPKG_INFO.as_bytes() {
                String::new()
            } else {
                format!(" (lists in {lists})")
            }
        )
    }

    fn requests(&self, _: &[&str], _: &NamedWalks, plan: &mut FactPlan) {
        plan.add(self.request());
        for m in &self.managed {
            plan.add(FactRequest::ManagedIntegrity(m.clone()));
            // The shell script answers the database reads of the verification from the plan's
            // own reads.
            for r in crate::managed::first_batch(m.manager) {
                plan.add(r);
            }
        }
    }

    fn records<'c>(&'c self, ctx: &'c Ctx<'_>, set: &mut RecordSet<'c>) -> Result<(), Issue> {
        let mut requests = vec![(self.request(), "dpkg")];
        for m in &self.managed {
            let name = match m.manager {
                PackageManager::Rpm => "rpm",
                PackageManager::Apk => "apk",
            };
            requests.push((FactRequest::ManagedIntegrity(m.clone()), name));
        }
        let mut notes = Vec::new();
        let mut unreadable = Vec::new();
        let mut checked = 0;
        for (r, manager) in requests {
            // No database of this manager: not an image it installed.
            let report = match ctx.facts.get(&r) {
                Some(Err(FactError::NotFound)) => continue,
                Some(Err(e)) => return Err(fact_issue(&r, e)),
                Some(Ok(FactValue::Integrity(report))) => report,
                Some(Ok(_)) => return Err(wrong_answer(&r)),
                None => return Err(Issue::Error(format!("{} was not gathered", what(&r)))),
            };
            notes.extend(report.incomplete.iter().cloned());
            checked += report.files.len();
            for f in &report.files {
                let problem = match &f.status {
                    FileStatus::Unchanged => continue,
                    FileStatus::Changed => "changed",
                    FileStatus::Missing => "missing",
                    FileStatus::Unverified(e) => {
                        unreadable.push(format!("{}: {e}", show_bytes(f.path.as_bytes())));
                        continue;
                    }
                };
                set.records.push(Rec::Integrity(Problem {
                    package: f.package.clone(),
                    path: f.path.clone(),
                    problem,
                    config: f.config,
                    differs: f
                        .differs
                        .iter()
                        .map(|a| a.name())
                        .collect::<Vec<_>>()
                        .join(","),
                    manager,
                }));
            }
        }
        set.notes
            .push(format!("{checked} packaged file(s) checked"));
        if let Some(first) = unreadable.first() {
            notes.push(format!(
                "{} file(s) could not be verified (first: {first})",
                unreadable.len()
            ));
        }
        if !notes.is_empty() {
            set.incomplete = Some(notes.join("; "));
        }
        Ok(())
    }
}

/// A packaged file that is changed or missing.
#[derive(Debug, Clone)]
pub(crate) struct Problem {
    package: String,
    path: TargetPath,
    problem: &'static str,
    /// A `%config` file (RPM).
    config: bool,
    /// What differs (`digest,size,…`; empty for dpkg, which records only an MD5).
    differs: String,
    /// `dpkg`, `rpm` or `apk`.
    manager: &'static str,
}

impl Record for Problem {
    fn label(&self) -> String {
        show_bytes(self.path.as_bytes())
    }

    fn value<'a>(&'a self, field: &str, _: &'a Ctx<'_>) -> Option<Value<'a>> {
        Some(match field {
            "package" => text(&self.package),
            "path" => bytes(self.path.as_bytes()),
            "problem" => text(self.problem),
            "config" => Value::Bool(self.config),
            "differs" => text(&self.differs),
            "manager" => text(self.manager),
            _ => return None,
        })
    }
}
