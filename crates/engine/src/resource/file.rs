//! The `file` and `directory` resources: one path's metadata, and its content or SHA-256 when a
//! check tests them. Their records ([`Entry`]) are also what a `files` walk finds.

use std::borrow::Cow;

use super::args::{arg, args, positive, target_path};
use super::ctx::wrong_answer;
use super::{Ctx, FieldSpec, Kind, NamedWalks, Rec, Record, RecordSet, bytes, f, group, passwd};
use super::{secret, text};
use crate::EngineError;
use crate::facts::{FactPlan, FactRequest, FactValue, FileKind, FileMeta, TargetPath};
use crate::matcher::FieldType::{Content, Int, Mode, Text};
use crate::matcher::{Issue, Value, show_bytes};
use crate::scope::Scope;
use crate::yaml::Node;

/// Largest content read for a `content` matcher unless the check sets `max_bytes`.
const CONTENT_MAX: u64 = 1 << 20;

/// A path's metadata (and content or digest when matched); `directory` also requires that it
/// be a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct File {
    pub(super) path: TargetPath,
    pub(super) max_bytes: u64,
    /// Written `directory:` (the check then also requires `type: directory`).
    pub(crate) directory: bool,
}

/// The fields of `file` and `directory` records.
const FIELDS: &[FieldSpec] = &[
    f("path", Text),
    f("type", Text),
    f("mode", Mode),
    f("uid", Int),
    f("gid", Int),
    f("owner", Text),
    f("group", Text),
    f("size", Int),
    f("link_target", Text),
    // File content may be secret (it is what secret searches look at): never shown.
    secret("content", Content),
    f("sha256", Text),
];

impl File {
    /// `file: /path`, or `file: {path: /path, max_bytes: n}`.
    pub(super) fn parse(
        scope: &Scope<'_>,
        at: &str,
        node: &Node,
        directory: bool,
    ) -> Result<Self, EngineError> {
        let (path, max_bytes) = if node.as_map().is_some() {
            let a = args(scope, at, node, &["path", "max_bytes"])?;
            let p = arg(a, "path")
                .ok_or_else(|| scope.error(node.line, at, "`path` is required".into()))?;
            let max = match arg(a, "max_bytes") {
                Some(e) => positive(scope, &format!("{at}.max_bytes"), &e.value)?,
                None => CONTENT_MAX,
            };
            (target_path(scope, &format!("{at}.path"), &p.value)?, max)
        } else {
            (target_path(scope, at, node)?, CONTENT_MAX)
        };
        Ok(Self {
            path,
            max_bytes,
            directory,
        })
    }
}

impl Kind for File {
    const FIELDS: &'static [FieldSpec] = FIELDS;
    const SINGULAR: bool = true;

    fn describe(&self) -> String {
        let name = if self.directory { "directory" } else { "file" };
        format!("{name} {}", self.path)
    }

    fn requests(&self, used: &[&str], _: &NamedWalks, plan: &mut FactPlan) {
        owner_requests(used, plan);
        plan.add(FactRequest::Stat(self.path.clone()));
        if used.contains(&"content") {
            plan.add(FactRequest::Read {
                path: self.path.clone(),
                max_bytes: self.max_bytes,
            });
        }
        if used.contains(&"sha256") {
            plan.add(sha256_request(&self.path));
        }
    }

    fn records<'c>(&'c self, ctx: &'c Ctx<'_>, set: &mut RecordSet<'c>) -> Result<(), Issue> {
        let r = FactRequest::Stat(self.path.clone());
        if ctx.not_found(&r) {
            return Ok(());
        }
        match ctx.answer(&r)? {
            FactValue::Meta(meta) => set.records.push(Rec::Entry(Entry {
                path: &self.path,
                meta,
                max_bytes: Some(self.max_bytes),
            })),
            _ => return Err(wrong_answer(&r)),
        }
        Ok(())
    }
}

/// The reads that the `owner` and `group` fields of entries need (shared with `files`).
pub(super) fn owner_requests(used: &[&str], plan: &mut FactPlan) {
    if used.contains(&"owner") {
        plan.add(passwd::request());
    }
    if used.contains(&"group") {
        plan.add(group::request());
    }
}

/// The SHA-256 request of `path` (as large as a packaged file verified by MD5 may be).
fn sha256_request(path: &TargetPath) -> FactRequest {
    FactRequest::Sha256 {
        path: path.clone(),
        max_bytes: crate::integrity::HASH_MAX,
    }
}

/// A filesystem entry (the `file` resource, or a walk's find).
#[derive(Debug, Clone)]
pub(crate) struct Entry<'c> {
    pub(super) path: &'c TargetPath,
    pub(super) meta: &'c FileMeta,
    /// The `file` resource's content cap (walk finds have no content).
    pub(super) max_bytes: Option<u64>,
}

impl Record for Entry<'_> {
    fn label(&self) -> String {
        show_bytes(self.path.as_bytes())
    }

    fn value<'a>(&'a self, field: &str, ctx: &'a Ctx<'_>) -> Option<Value<'a>> {
        let meta = self.meta;
        Some(match field {
            "path" => bytes(self.path.as_bytes()),
            "name" => bytes(
                self.path
                    .as_bytes()
                    .rsplit(|b| *b == b'/')
                    .next()
                    .unwrap_or_default(),
            ),
            "type" => text(kind_name(meta.kind)),
            "mode" => Value::Mode(meta.mode),
            "uid" => Value::Int(i64::from(meta.uid)),
            "gid" => Value::Int(i64::from(meta.gid)),
            "owner" => ctx.user_name(meta.uid),
            "group" => ctx.group_name(meta.gid),
            "size" => Value::Int(i64::try_from(meta.size).unwrap_or(i64::MAX)),
            "link_target" => meta.link_target.as_deref().map_or(Value::Missing, bytes),
            "content" => {
                let r = FactRequest::Read {
                    path: self.path.clone(),
                    max_bytes: self.max_bytes.unwrap_or(CONTENT_MAX),
                };
                match ctx.answer(&r) {
                    Ok(FactValue::Content(c)) => Value::Text(Cow::Borrowed(&c.bytes), !c.truncated),
                    Ok(_) => Value::Unknown(wrong_answer(&r)),
                    Err(i) => Value::Unknown(i),
                }
            }
            "sha256" => {
                let r = sha256_request(self.path);
                match ctx.answer(&r) {
                    Ok(FactValue::Digest(d)) => {
                        Value::Text(Cow::Owned(hex::encode(d).into_bytes()), true)
                    }
                    Ok(_) => Value::Unknown(wrong_answer(&r)),
                    Err(i) => Value::Unknown(i),
                }
            }
            _ => return None,
        })
    }
}

/// How a file type is written in profiles.
fn kind_name(k: FileKind) -> &'static str {
    match k {
        FileKind::File => "file",
        FileKind::Directory => "directory",
        FileKind::Symlink => "symlink",
        FileKind::Fifo => "fifo",
        FileKind::Socket => "socket",
        FileKind::CharDevice => "char_device",
        FileKind::BlockDevice => "block_device",
    }
}
