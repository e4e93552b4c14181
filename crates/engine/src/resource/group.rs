//! The `group` resource: the entries of `/etc/group`, which also name the groups of files.

use super::{ACCOUNT_DB_MAX, Ctx, FieldSpec, Kind, NamedWalks, Rec, Record, RecordSet};
use super::{bytes, f, opt_int, read, text};
use crate::facts::{FactPlan, FactRequest};
use crate::matcher::FieldType::{Int, List, Text};
use crate::matcher::{Issue, Value, show_bytes};
use crate::target::{self, GroupEntry};

/// The group database.
const GROUP: &str = "/etc/group";

/// `/etc/group` entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Group;

/// The fields of `group` records.
const FIELDS: &[FieldSpec] = &[
    f("name", Text),
    f("password", Text),
    f("gid", Int),
    f("members", List),
];

/// The read of the group database.
pub(super) fn request() -> FactRequest {
    read(GROUP, ACCOUNT_DB_MAX)
}

impl Kind for Group {
    const FIELDS: &'static [FieldSpec] = FIELDS;

    fn describe(&self) -> String {
        "group entries".into()
    }

    fn requests(&self, _: &[&str], _: &NamedWalks, plan: &mut FactPlan) {
        plan.add(request());
    }

    fn records<'c>(&'c self, ctx: &'c Ctx<'_>, set: &mut RecordSet<'c>) -> Result<(), Issue> {
        set.records = ctx.group()?.iter().map(Rec::Group).collect();
        Ok(())
    }
}

impl Ctx<'_> {
    /// `/etc/group`, parsed once per scan.
    fn group(&self) -> Result<&[GroupEntry], Issue> {
        self.account_db(&self.group, &request(), target::group)
    }

    /// The name of the group `gid` (missing when `/etc/group` has no such group).
    pub(super) fn group_name(&self, gid: u32) -> Value<'_> {
        match self.group() {
            Ok(entries) => entries
                .iter()
                .find(|e| e.gid == Some(i64::from(gid)))
                .map_or(Value::Missing, |e| bytes(&e.name)),
            Err(i) => Value::Unknown(i),
        }
    }
}

impl Record for GroupEntry {
    fn label(&self) -> String {
        show_bytes(&self.name)
    }

    fn value<'a>(&'a self, field: &str, _: &'a Ctx<'_>) -> Option<Value<'a>> {
        Some(match field {
            "name" => bytes(&self.name),
            "password" => text(self.password.as_str()),
            "gid" => opt_int(self.gid),
            "members" => Value::List(self.members.clone()),
            _ => return None,
        })
    }
}
