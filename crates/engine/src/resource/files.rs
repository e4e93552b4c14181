//! The `files` resource: entries found by a bounded walk (setuid, setgid, world-writable,
//! named, or containing a pattern). `named` walks of one profile over the same root and limits
//! are merged into one walk.

use std::collections::BTreeSet;

use super::args::{arg, args, name_list, positive_or, target_path};
use super::ctx::wrong_answer;
use super::file::{Entry, owner_requests};
use super::{Ctx, FieldSpec, Kind, NamedWalks, Rec, RecordSet, f, path};
use crate::EngineError;
use crate::facts::{
    FactError, FactPlan, FactRequest, FactValue, TargetPath, WalkLimits, WalkQuery,
};
use crate::matcher::FieldType::{Int, Mode, Text};
use crate::matcher::{self, Issue, show_bytes};
use crate::scope::Scope;
use crate::yaml::Node;

/// Most bytes of a `containing` pattern's match context searched per file, by default.
const CONTAINS_MAX_BYTES: u64 = 64 << 10;
/// Largest file a `containing` walk searches, by default.
const CONTAINS_MAX_FILE: u64 = 1 << 20;

/// The fields of found entries.
const FIELDS: &[FieldSpec] = &[
    f("path", Text),
    f("name", Text),
    f("type", Text),
    f("mode", Mode),
    f("uid", Int),
    f("gid", Int),
    f("owner", Text),
    f("group", Text),
    f("size", Int),
    f("link_target", Text),
];

/// What a `files` walk looks for, with the check's own name set for `named` walks (which the
/// plan merges into one walk per root and limits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Find {
    /// A query used as written.
    Query(WalkQuery),
    /// Entries with one of these names.
    Named(BTreeSet<Vec<u8>>),
}

/// Entries found by a bounded walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Files {
    pub(crate) root: TargetPath,
    pub(crate) find: Find,
    pub(crate) limits: WalkLimits,
}

impl Files {
    /// `files: {find: …, root: …, <limits>}`.
    pub(super) fn parse(scope: &Scope<'_>, at: &str, node: &Node) -> Result<Self, EngineError> {
        const KEYS: &[&str] = &[
            "find",
            "root",
            "names",
            "pattern",
            "max_bytes",
            "max_file_size",
            "max_depth",
            "max_entries",
            "max_millis",
            "same_filesystem",
        ];
        let a = args(scope, at, node, KEYS)?;
        let sub = |k: &str| format!("{at}.{k}");
        let find_entry = arg(a, "find").ok_or_else(|| {
            scope.error(
                node.line,
                at,
                "`find` is required: setuid, setgid, world_writable, named or containing".into(),
            )
        })?;
        let find_node = scope.resolve(&find_entry.value, &sub("find"))?;
        let kind = matcher::text(scope, &sub("find"), &find_node)?;
        let only = |k: &str, allowed_for: &str| -> Result<(), EngineError> {
            match arg(a, k) {
                Some(e) if kind != allowed_for => Err(scope.error(
                    e.line,
                    &sub(k),
                    format!("`{k}` only applies to `find: {allowed_for}`"),
                )),
                _ => Ok(()),
            }
        };
        only("names", "named")?;
        for k in ["pattern", "max_bytes", "max_file_size"] {
            only(k, "containing")?;
        }
        let find = match kind.as_str() {
            "setuid" => Find::Query(WalkQuery::Setuid),
            "setgid" => Find::Query(WalkQuery::Setgid),
            "world_writable" => Find::Query(WalkQuery::WorldWritable),
            "named" => {
                let e = arg(a, "names").ok_or_else(|| {
                    scope.error(node.line, at, "`find: named` needs `names`".into())
                })?;
                Find::Named(
                    name_list(scope, &sub("names"), &e.value)?
                        .into_iter()
                        .map(String::into_bytes)
                        .collect(),
                )
            }
            "containing" => {
                let e = arg(a, "pattern").ok_or_else(|| {
                    scope.error(node.line, at, "`find: containing` needs `pattern`".into())
                })?;
                let p = matcher::text(
                    scope,
                    &sub("pattern"),
                    &*scope.resolve(&e.value, &sub("pattern"))?,
                )?;
                if p.is_empty() {
                    return Err(scope.error(e.line, &sub("pattern"), "an empty pattern".into()));
                }
                Find::Query(WalkQuery::Contains {
                    pattern: p.into_bytes(),
                    max_bytes: positive_or(scope, at, a, "max_bytes", CONTAINS_MAX_BYTES)?,
                    max_file_size: positive_or(scope, at, a, "max_file_size", CONTAINS_MAX_FILE)?,
                })
            }
            other => {
                return Err(scope.error(
                    find_node.line,
                    &sub("find"),
                    format!(
                        "unknown walk `{other}`; use setuid, setgid, world_writable, named or \
                         containing"
                    ),
                ));
            }
        };
        let d = WalkLimits::default();
        let limits = WalkLimits {
            max_depth: u32::try_from(positive_or(
                scope,
                at,
                a,
                "max_depth",
                u64::from(d.max_depth),
            )?)
            .unwrap_or(u32::MAX),
            max_entries: positive_or(scope, at, a, "max_entries", d.max_entries)?,
            max_millis: positive_or(scope, at, a, "max_millis", d.max_millis)?,
            same_filesystem: match arg(a, "same_filesystem") {
                Some(e) => matcher::boolean(
                    scope,
                    &sub("same_filesystem"),
                    &*scope.resolve(&e.value, &sub("same_filesystem"))?,
                )?,
                None => d.same_filesystem,
            },
        };
        let root = match arg(a, "root") {
            Some(e) => target_path(scope, &sub("root"), &e.value)?,
            None => path("/"),
        };
        Ok(Self { root, find, limits })
    }

    /// The walk this resource reads, with the names of every `named` walk of the profile over
    /// the same root and limits merged (`named` maps root and limits to those names).
    pub(crate) fn walk_request(&self, named: &NamedWalks) -> FactRequest {
        let query = match &self.find {
            Find::Query(q) => q.clone(),
            Find::Named(own) => WalkQuery::Named(
                named
                    .get(&(self.root.clone(), self.limits))
                    .cloned()
                    .unwrap_or_else(|| own.clone()),
            ),
        };
        FactRequest::Walk {
            root: self.root.clone(),
            query,
            limits: self.limits,
        }
    }
}

impl Kind for Files {
    const FIELDS: &'static [FieldSpec] = FIELDS;

    fn describe(&self) -> String {
        let what = match &self.find {
            Find::Query(WalkQuery::Setuid) => "setuid files".to_owned(),
            Find::Query(WalkQuery::Setgid) => "setgid files".to_owned(),
            Find::Query(WalkQuery::WorldWritable) => "world-writable entries".to_owned(),
            Find::Query(WalkQuery::Contains { pattern, .. }) => {
                format!("files containing {}", show_bytes(pattern))
            }
            Find::Named(names) | Find::Query(WalkQuery::Named(names)) => {
                let names: Vec<String> = names
                    .iter()
                    .map(|n| String::from_utf8_lossy(n).into_owned())
                    .collect();
                format!("entries named {}", names.join(", "))
            }
        };
        format!("{what} under {}", self.root)
    }

    fn requests(&self, used: &[&str], named: &NamedWalks, plan: &mut FactPlan) {
        owner_requests(used, plan);
        plan.add(self.walk_request(named));
    }

    fn records<'c>(&'c self, ctx: &'c Ctx<'_>, set: &mut RecordSet<'c>) -> Result<(), Issue> {
        let r = self.walk_request(ctx.named);
        let FactValue::Walk(outcome) = ctx.answer(&r)? else {
            return Err(wrong_answer(&r));
        };
        for (p, meta) in &outcome.matches {
            // A merged `named` walk found the names of every check; keep this one's.
            if let Find::Named(own) = &self.find {
                let name = p
                    .as_bytes()
                    .rsplit(|b| *b == b'/')
                    .next()
                    .unwrap_or_default();
                if !own.contains(name) {
                    continue;
                }
            }
            set.records.push(Rec::Entry(Entry {
                path: p,
                meta,
                max_bytes: None,
            }));
        }
        if let Some(bound) = outcome.truncated {
            set.incomplete = Some(format!(
                "the walk stopped at its {bound:?} bound after {} entries; raise the walk's \
                 limits to cover the whole tree",
                outcome.examined
            ));
        }
        set.notes
            .push(format!("the walk examined {} entries", outcome.examined));
        // Files over a content search's size limit are skipped by design; say how many, apart
        // from paths that could not be examined at all.
        let (large, other): (Vec<_>, Vec<_>) = outcome
            .skipped
            .iter()
            .partition(|(_, e)| matches!(e, FactError::TooLarge { .. }));
        if !large.is_empty() {
            set.notes.push(format!(
                "{} file(s) over the size limit were not searched",
                large.len()
            ));
        }
        if let Some((p, e)) = other.first() {
            set.notes.push(format!(
                "{} path(s) could not be examined (first: {}: {e})",
                other.len(),
                show_bytes(p.as_bytes())
            ));
        }
        Ok(())
    }
}
