//! The `package_integrity` resource: packaged files whose content differs from the digest their
//! package recorded (dpkg's `*.md5sums`), or that are missing. The verification itself is
//! [`crate::integrity`], shared by every fact source; this module reads its answer.

use super::args::{arg, args, positive_or, target_path};
use super::ctx::{what, wrong_answer};
use super::packages::{apk_request, rpm_requests};
use super::{Ctx, FieldSpec, Kind, NamedWalks, Rec, Record, RecordSet, bytes, f, path, text};
use crate::EngineError;
use crate::facts::{FactPlan, FactRequest, FactValue, FileStatus, IntegritySpec, TargetPath};
use crate::integrity::DPKG_INFO;
use crate::matcher::FieldType::Text;
use crate::matcher::{Issue, Value, show_bytes};
use crate::scope::Scope;
use crate::yaml::Node;

/// Most packaged files verified, by default.
const MAX_FILES: u64 = 20_000;
/// Most packages whose lists are read, by default.
const MAX_PACKAGES: u64 = 2_000;

/// Files of dpkg packages whose content differs from the recorded MD5.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PackageIntegrity {
    spec: IntegritySpec,
}

/// The fields of integrity records.
const FIELDS: &[FieldSpec] = &[f("package", Text), f("path", Text), f("problem", Text)];

impl PackageIntegrity {
    /// `package_integrity: {lists, paths, max_files, max_packages}` (all optional).
    pub(super) fn parse(scope: &Scope<'_>, at: &str, node: &Node) -> Result<Self, EngineError> {
        let a = args(
            scope,
            at,
            node,
            &["lists", "paths", "max_files", "max_packages"],
        )?;
        let lists = match arg(a, "lists") {
            Some(e) => {
                let v = scope.resolve(&e.value, &format!("{at}.lists"))?;
                target_path(scope, &format!("{at}.lists"), &v)?
            }
            None => path(DPKG_INFO),
        };
        let prefixes = match arg(a, "paths") {
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
        Ok(Self {
            spec: IntegritySpec {
                lists,
                prefixes,
                max_files: positive_or(scope, at, a, "max_files", MAX_FILES)?,
                max_packages: positive_or(scope, at, a, "max_packages", MAX_PACKAGES)?,
            },
        })
    }

    /// The one request this resource is answered by.
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
            "changed files of dpkg packages under {}{}",
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
        // Whether the target is RPM- or apk-based, so that its packages are never reported
        // verified.
        for r in unverified_dbs() {
            plan.add(r);
        }
    }

    fn records<'c>(&'c self, ctx: &'c Ctx<'_>, set: &mut RecordSet<'c>) -> Result<(), Issue> {
        let r = self.request();
        // No dpkg lists: not a dpkg-based image. An RPM or apk database means packages this
        // resource cannot verify yet: an error, never a pass over no files.
        if ctx.not_found(&r) {
            if let Some(db) = unverified_dbs().iter().find(|q| !ctx.not_found(q)) {
                let (manager, tool) = if *db == apk_request() {
                    ("apk", "apk audit")
                } else {
                    ("RPM", "rpm -Va")
                };
                return Err(Issue::Error(format!(
                    "package_integrity does not yet verify {manager} packages ({} is present), \
                     so this image's packaged files were not checked; verify them with \
                     `{tool}` or waive this control",
                    what(db)
                )));
            }
            return Ok(());
        }
        let FactValue::Integrity(report) = ctx.answer(&r)? else {
            return Err(wrong_answer(&r));
        };
        let mut notes = report.incomplete.clone();
        let mut unreadable = Vec::new();
        set.notes
            .push(format!("{} packaged file(s) checked", report.files.len()));
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
            }));
        }
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

/// The package databases whose packages this resource cannot verify yet.
fn unverified_dbs() -> Vec<FactRequest> {
    let mut all = rpm_requests();
    all.push(apk_request());
    all
}

/// A packaged file that is changed or missing.
#[derive(Debug, Clone)]
pub(crate) struct Problem {
    package: String,
    path: TargetPath,
    problem: &'static str,
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
            _ => return None,
        })
    }
}
