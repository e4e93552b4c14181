//! Checks: one resource, an optional `where` filter, and conditions on the records
//! (`exists`, `count`, `unique`, field matchers). A check compiles to fact requests and is
//! judged on the gathered facts into one HDF result.

use std::collections::BTreeMap;

use keyhole_hdf::ResultStatus;

use crate::EngineError;
use crate::facts::FactPlan;
use crate::matcher::{self, FieldType, Issue, Matcher, Verdict};
use crate::resource::{Ctx, FieldSpec, Find, NamedWalks, RESOURCE_NAMES, Rec, Resource};
use crate::scope::Scope;
use crate::yaml::Node;

/// Keys of a check besides its resource and the resource's fields.
const CHECK_KEYS: &[&str] = &[
    "where", "count", "exists", "optional", "unique", "desc", "reason",
];

/// At most this many offending records are named in a message.
const SHOW_RECORDS: usize = 10;

/// A compiled check.
#[derive(Debug, Clone)]
pub(crate) struct Check {
    pub(crate) resource: Resource,
    filter: Vec<(FieldSpec, Matcher)>,
    count: Option<Matcher>,
    exists: Option<bool>,
    unique: Vec<FieldSpec>,
    fields: Vec<(FieldSpec, Matcher)>,
    desc: Option<String>,
    /// For `only_if` guards: the skip reason when the guard does not hold.
    pub(crate) reason: Option<String>,
    /// A singular resource that may be absent: its conditions apply only when it exists.
    optional: bool,
}

/// The judgement of one check.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Outcome {
    pub(crate) status: ResultStatus,
    pub(crate) code_desc: String,
    pub(crate) message: Option<String>,
}

fn field_spec(
    scope: &Scope<'_>,
    at: &str,
    line: usize,
    resource: &Resource,
    name: &str,
) -> Result<FieldSpec, EngineError> {
    resource
        .fields()
        .iter()
        .find(|f| f.name == name)
        .copied()
        .ok_or_else(|| {
            let fields: Vec<&str> = resource.fields().iter().map(|f| f.name).collect();
            scope.error(
                line,
                at,
                format!(
                    "`{name}` is not a field of `{}` (fields: {}) nor a check key ({})",
                    resource.name(),
                    fields.join(", "),
                    CHECK_KEYS.join(", ")
                ),
            )
        })
}

impl Check {
    /// Reads a check: a mapping with exactly one resource key.
    pub(crate) fn parse(scope: &Scope<'_>, at: &str, node: &Node) -> Result<Self, EngineError> {
        let entries = node.as_map().ok_or_else(|| {
            scope.error(
                node.line,
                at,
                format!(
                    "a check is a mapping with one resource ({}) and its conditions; found {}",
                    RESOURCE_NAMES.join(", "),
                    node.shape()
                ),
            )
        })?;
        // The first key names the resource; later keys are its conditions (so a field may share
        // a resource's name, as `group` does for files).
        let res_entry = match entries.first() {
            Some(e) if RESOURCE_NAMES.contains(&e.key.as_str()) => e,
            first => {
                return Err(scope.error(
                    first.map_or(node.line, |e| e.line),
                    at,
                    format!(
                        "a check starts with its resource, one of: {}{}",
                        RESOURCE_NAMES.join(", "),
                        first.map_or(String::new(), |e| format!(" (found `{}`)", e.key))
                    ),
                ));
            }
        };
        let resource = Resource::parse(scope, at, &res_entry.key, &res_entry.value)?
            .ok_or_else(|| scope.error(res_entry.line, at, "unknown resource".into()))?;
        let mut check = Self {
            resource,
            filter: Vec::new(),
            count: None,
            exists: None,
            unique: Vec::new(),
            fields: Vec::new(),
            desc: None,
            reason: None,
            optional: false,
        };
        for e in &entries[1..] {
            let here = format!("{at}.{}", e.key);
            match e.key.as_str() {
                "where" => {
                    if check.resource.singular() {
                        return Err(scope.error(
                            e.line,
                            &here,
                            format!(
                                "`where` filters collections; `{}` is one object",
                                check.resource.name()
                            ),
                        ));
                    }
                    let value = scope.resolve(&e.value, &here)?;
                    let filters = value.as_map().ok_or_else(|| {
                        scope.error(
                            e.line,
                            &here,
                            "expected a mapping of field to condition".into(),
                        )
                    })?;
                    for fe in filters {
                        let fat = format!("{here}.{}", fe.key);
                        let spec = field_spec(scope, &fat, fe.line, &check.resource, &fe.key)?;
                        check
                            .filter
                            .push((spec, Matcher::parse(scope, &fat, &fe.value, spec.ty)?));
                    }
                }
                "count" => {
                    check.count = Some(Matcher::parse(scope, &here, &e.value, FieldType::Int)?);
                }
                "exists" => {
                    check.exists = Some(matcher::boolean(
                        scope,
                        &here,
                        &*scope.resolve(&e.value, &here)?,
                    )?);
                }
                "unique" => {
                    let value = scope.resolve(&e.value, &here)?;
                    let names: Vec<Node> = match value.as_seq() {
                        Some(items) => items.to_vec(),
                        None => vec![value.into_owned()],
                    };
                    for n in &names {
                        let name = matcher::text(scope, &here, n)?;
                        check.unique.push(field_spec(
                            scope,
                            &here,
                            n.line,
                            &check.resource,
                            &name,
                        )?);
                    }
                }
                "desc" => check.desc = Some(matcher::text(scope, &here, &e.value)?),
                "reason" => check.reason = Some(matcher::text(scope, &here, &e.value)?),
                "optional" => {
                    check.optional =
                        matcher::boolean(scope, &here, &*scope.resolve(&e.value, &here)?)?;
                    if check.optional && !check.resource.singular() {
                        return Err(scope.error(
                            e.line,
                            &here,
                            format!(
                                "`optional` applies to single objects; `{}` is a collection \
                                 (an empty collection already satisfies field conditions)",
                                check.resource.name()
                            ),
                        ));
                    }
                }
                name => {
                    let spec = field_spec(scope, &here, e.line, &check.resource, name)?;
                    check
                        .fields
                        .push((spec, Matcher::parse(scope, &here, &e.value, spec.ty)?));
                }
            }
        }
        if check.count.is_none()
            && check.exists.is_none()
            && check.unique.is_empty()
            && check.fields.is_empty()
        {
            return Err(scope.error(
                node.line,
                at,
                "the check has no condition; add `exists`, `count`, `unique` or a field \
                 condition"
                    .into(),
            ));
        }
        if check.optional && check.exists.is_some() {
            return Err(scope.error(
                node.line,
                at,
                "`optional` and `exists` contradict each other; keep one".into(),
            ));
        }
        if let Resource::File(file) = &check.resource
            && file.directory
            && check.exists != Some(false)
        {
            let spec = field_spec(scope, at, node.line, &check.resource, "type")?;
            check
                .fields
                .insert(0, (spec, Matcher::text_eq("directory")));
        }
        Ok(check)
    }

    fn used_fields(&self) -> Vec<&'static str> {
        self.filter
            .iter()
            .chain(&self.fields)
            .map(|(f, _)| f.name)
            .chain(self.unique.iter().map(|f| f.name))
            .collect()
    }

    /// Records this check's `named` walk names under its root and limits.
    pub(crate) fn merge_named(&self, named: &mut NamedWalks) {
        if let Resource::Files(files) = &self.resource
            && let Find::Named(names) = &files.find
        {
            named
                .entry((files.root.clone(), files.limits))
                .or_default()
                .extend(names.iter().cloned());
        }
    }

    /// Adds the requests of this check.
    pub(crate) fn requests(&self, named: &NamedWalks, plan: &mut FactPlan) {
        self.resource.requests(&self.used_fields(), named, plan);
    }

    /// The HDF `code_desc`: the `desc` given, or one generated from the check.
    pub(crate) fn code_desc(&self) -> String {
        if let Some(d) = &self.desc {
            return d.clone();
        }
        let mut s = self.resource.describe();
        if !self.filter.is_empty() {
            s.push_str(" where ");
            s.push_str(&conditions(&self.filter).join(", "));
        }
        let mut conds = Vec::new();
        match self.exists {
            Some(true) => conds.push("exist".to_owned()),
            Some(false) => conds.push("do not exist".to_owned()),
            None => {}
        }
        if let Some(c) = &self.count {
            conds.push(format!("count {}", c.describe()));
        }
        if !self.unique.is_empty() {
            let names: Vec<&str> = self.unique.iter().map(|f| f.name).collect();
            conds.push(format!("{} unique", names.join("+")));
        }
        conds.extend(conditions(&self.fields));
        s.push_str(": ");
        s.push_str(&conds.join(", "));
        s
    }

    /// HDF `resource` / `resource_id` of the result.
    pub(crate) fn resource_ids(&self) -> (String, String) {
        (self.resource.name().to_owned(), self.resource.describe())
    }

    /// Judges the check on the facts of `ctx`.
    pub(crate) fn evaluate(&self, ctx: &Ctx<'_>) -> Outcome {
        let code_desc = self.code_desc();
        let done = |status, message: Option<String>| Outcome {
            status,
            code_desc: code_desc.clone(),
            message,
        };
        let set = match self.resource.records(ctx) {
            Ok(set) => set,
            Err(issue) => return issue_outcome(issue, code_desc),
        };
        let total = set.records.len();
        let mut kept: Vec<&Rec<'_>> = Vec::new();
        'records: for r in &set.records {
            for (spec, m) in &self.filter {
                match m.test(&r.value(spec.name, ctx), spec.sensitive) {
                    Verdict::Pass => {}
                    Verdict::Fail(_) => continue 'records,
                    Verdict::Unknown(issue) => return issue_outcome(issue, code_desc),
                }
            }
            kept.push(r);
        }
        let labels = |rs: &[&Rec<'_>]| -> String {
            let mut names: Vec<String> = rs.iter().take(SHOW_RECORDS).map(|r| r.label()).collect();
            if rs.len() > SHOW_RECORDS {
                names.push(format!("… {} more", rs.len() - SHOW_RECORDS));
            }
            names.join(", ")
        };
        let singular = self.resource.singular();
        if singular && self.optional && kept.is_empty() {
            return done(
                ResultStatus::Passed,
                Some(format!(
                    "{} is absent; nothing to check",
                    self.resource.describe()
                )),
            );
        }
        let mut failures: Vec<String> = Vec::new();
        let mut unknown: Option<Issue> = None;
        match self.exists {
            Some(true) if kept.is_empty() => failures.push(if singular {
                format!("{} does not exist", self.resource.describe())
            } else {
                "none found".to_owned()
            }),
            Some(false) if !kept.is_empty() => {
                failures.push(format!("found: {}", labels(&kept)));
            }
            _ => {}
        }
        if let Some(c) = &self.count
            && let Verdict::Fail(n) = c.test_count(kept.len())
        {
            failures.push(if kept.is_empty() {
                format!("count is {n}")
            } else {
                format!("count is {n}: {}", labels(&kept))
            });
        }
        // Conditions on the fields of one object need the object (an `exists: true` failure
        // already says so; with `exists: false` an absent object is the point).
        if singular && kept.is_empty() && !self.fields.is_empty() && self.exists.is_none() {
            failures.push(format!("{} does not exist", self.resource.describe()));
        }
        for spec in &self.unique {
            let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for r in &kept {
                let v = r.value(spec.name, ctx);
                match v {
                    matcher::Value::Unknown(issue) => {
                        unknown.get_or_insert(issue);
                    }
                    matcher::Value::Missing => {}
                    v => seen
                        .entry(matcher::show(&v, spec.sensitive))
                        .or_default()
                        .push(r.label()),
                }
            }
            let dups: Vec<String> = seen
                .into_iter()
                .filter(|(_, rs)| rs.len() > 1)
                .map(|(v, rs)| format!("{} {v} is shared by {}", spec.name, rs.join(", ")))
                .collect();
            failures.extend(dups);
        }
        // Only the first few violations are spelled out; a hostile target may have millions.
        let mut violations = Vec::new();
        let mut n = 0usize;
        for r in &kept {
            for (spec, m) in &self.fields {
                match m.test(&r.value(spec.name, ctx), spec.sensitive) {
                    Verdict::Pass => {}
                    Verdict::Fail(_) if n >= SHOW_RECORDS => n += 1,
                    Verdict::Fail(actual) => {
                        n += 1;
                        let label = r.label();
                        violations.push(if spec.sensitive {
                            format!("{label}: {} fails (value not shown)", spec.name)
                        } else if spec.name == "path" && actual == label {
                            // A found file's label is its path already.
                            label
                        } else {
                            format!("{label}: {} is {actual}", spec.name)
                        });
                    }
                    Verdict::Unknown(issue) => {
                        unknown.get_or_insert(issue);
                    }
                }
            }
        }
        if n > 0 {
            if n > SHOW_RECORDS {
                violations.push(format!("… {} more", n - SHOW_RECORDS));
            }
            failures.push(if singular {
                violations.join("; ")
            } else {
                format!(
                    "{n} violation(s) among {} record(s): {}",
                    kept.len(),
                    violations.join("; ")
                )
            });
        }
        let mut notes = set.notes.clone();
        if !failures.is_empty() {
            if let Some(i) = &set.incomplete {
                notes.push(format!("possibly more: {i}"));
            }
            let mut message = failures.join("; ");
            for n in notes {
                message.push_str(&format!(" ({n})"));
            }
            return done(ResultStatus::Failed, Some(message));
        }
        if let Some(issue) = unknown {
            return issue_outcome(issue, code_desc);
        }
        if let Some(i) = set.incomplete {
            return done(
                ResultStatus::Error,
                Some(format!(
                    "not all records could be examined, so a pass cannot be claimed: {i}"
                )),
            );
        }
        let summary = if singular {
            None
        } else {
            Some(format!("{} of {total} record(s) selected", kept.len()))
        };
        let message: Vec<String> = summary.into_iter().chain(notes).collect();
        done(
            ResultStatus::Passed,
            (!message.is_empty()).then(|| message.join("; ")),
        )
    }
}

fn conditions(list: &[(FieldSpec, Matcher)]) -> Vec<String> {
    list.iter()
        .map(|(f, m)| format!("{} {}", f.name, m.describe()))
        .collect()
}

/// The result of a check that could not be judged.
pub(crate) fn issue_outcome(issue: Issue, code_desc: String) -> Outcome {
    match issue {
        Issue::Skip(m) => Outcome {
            status: ResultStatus::Skipped,
            code_desc,
            message: Some(m),
        },
        Issue::Error(m) => Outcome {
            status: ResultStatus::Error,
            code_desc,
            message: Some(m),
        },
    }
}
