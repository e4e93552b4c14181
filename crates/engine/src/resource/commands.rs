//! The `commands` resource: which of the named commands are present in the standard `PATH`
//! directories (a debug shell, a downloader, a compiler).

use super::args::name_list;
use super::ctx::wrong_answer;
use super::{Ctx, FieldSpec, Kind, NamedWalks, Rec, Record, RecordSet, bytes, f, path, text};
use crate::EngineError;
use crate::facts::{FactPlan, FactRequest, FactValue, FileKind, TargetPath};
use crate::matcher::FieldType::Text;
use crate::matcher::{Issue, Value, show_bytes};
use crate::scope::Scope;
use crate::yaml::Node;

/// Where `commands` looks, in `PATH` order.
const PATH_DIRS: [&str; 6] = [
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];
/// Most entries of one `PATH` directory listed.
const LIST_MAX: u64 = 100_000;

/// Commands present in the standard `PATH` directories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Commands(Vec<String>);

/// The fields of found commands.
const FIELDS: &[FieldSpec] = &[f("name", Text), f("path", Text)];

/// The listing of `PATH` directory `d`.
fn list(d: &str) -> FactRequest {
    FactRequest::List {
        path: path(d),
        max_entries: LIST_MAX,
    }
}

impl Commands {
    /// `commands: name` or `commands: [names]`.
    pub(super) fn parse(scope: &Scope<'_>, at: &str, node: &Node) -> Result<Self, EngineError> {
        name_list(scope, at, node).map(Self)
    }
}

impl Kind for Commands {
    const FIELDS: &'static [FieldSpec] = FIELDS;

    fn describe(&self) -> String {
        format!("commands {}", self.0.join(", "))
    }

    fn requests(&self, _: &[&str], _: &NamedWalks, plan: &mut FactPlan) {
        PATH_DIRS.iter().for_each(|d| plan.add(list(d)));
    }

    fn records<'c>(&'c self, ctx: &'c Ctx<'_>, set: &mut RecordSet<'c>) -> Result<(), Issue> {
        let mut listings = Vec::new();
        for d in PATH_DIRS {
            let r = list(d);
            if ctx.not_found(&r) {
                continue;
            }
            match ctx.answer(&r)? {
                FactValue::Entries(entries, bound) => {
                    if bound.is_some() {
                        set.incomplete = Some(format!(
                            "{d} has more than {LIST_MAX} entries; not all were seen"
                        ));
                    }
                    listings.push((d, entries));
                }
                _ => return Err(wrong_answer(&r)),
            }
        }
        for name in &self.0 {
            let found = listings.iter().find_map(|(d, entries)| {
                entries
                    .iter()
                    .any(|e| e.name == name.as_bytes() && e.kind != FileKind::Directory)
                    .then(|| path(d).join(name.as_bytes()))
                    .flatten()
            });
            if let Some(p) = found {
                set.records.push(Rec::Command(Found { name, path: p }));
            }
        }
        Ok(())
    }
}

/// A command found in a `PATH` directory.
#[derive(Debug, Clone)]
pub(crate) struct Found<'c> {
    name: &'c str,
    path: TargetPath,
}

impl Record for Found<'_> {
    fn label(&self) -> String {
        show_bytes(self.path.as_bytes())
    }

    fn value<'a>(&'a self, field: &str, _: &'a Ctx<'_>) -> Option<Value<'a>> {
        Some(match field {
            "name" => text(self.name),
            "path" => bytes(self.path.as_bytes()),
            _ => return None,
        })
    }
}
