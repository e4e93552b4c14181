//! The `passwd` resource: the entries of `/etc/passwd`, which also name the owners of files.

use super::{ACCOUNT_DB_MAX, Ctx, FieldSpec, Kind, NamedWalks, Rec, Record, RecordSet};
use super::{bytes, f, opt_int, read, text};
use crate::facts::{FactPlan, FactRequest};
use crate::matcher::FieldType::{Int, Text};
use crate::matcher::{Issue, Value, show_bytes};
use crate::target::{self, PasswdEntry};

/// The user database.
const PASSWD: &str = "/etc/passwd";

/// `/etc/passwd` entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Passwd;

/// The fields of `passwd` records.
const FIELDS: &[FieldSpec] = &[
    f("user", Text),
    f("password", Text),
    f("uid", Int),
    f("gid", Int),
    f("gecos", Text),
    f("home", Text),
    f("shell", Text),
];

/// The read of the user database.
pub(super) fn request() -> FactRequest {
    read(PASSWD, ACCOUNT_DB_MAX)
}

impl Kind for Passwd {
    const FIELDS: &'static [FieldSpec] = FIELDS;

    fn describe(&self) -> String {
        "passwd entries".into()
    }

    fn requests(&self, _: &[&str], _: &NamedWalks, plan: &mut FactPlan) {
        plan.add(request());
    }

    fn records<'c>(&'c self, ctx: &'c Ctx<'_>, set: &mut RecordSet<'c>) -> Result<(), Issue> {
        set.records = ctx.passwd()?.iter().map(Rec::Passwd).collect();
        Ok(())
    }
}

impl Ctx<'_> {
    /// `/etc/passwd`, parsed once per scan.
    fn passwd(&self) -> Result<&[PasswdEntry], Issue> {
        self.account_db(&self.passwd, &request(), target::passwd)
    }

    /// The name of the user `uid` (missing when `/etc/passwd` has no such user).
    pub(super) fn user_name(&self, uid: u32) -> Value<'_> {
        match self.passwd() {
            Ok(entries) => entries
                .iter()
                .find(|e| e.uid == Some(i64::from(uid)))
                .map_or(Value::Missing, |e| bytes(&e.user)),
            Err(i) => Value::Unknown(i),
        }
    }
}

impl Record for PasswdEntry {
    fn label(&self) -> String {
        show_bytes(&self.user)
    }

    fn value<'a>(&'a self, field: &str, _: &'a Ctx<'_>) -> Option<Value<'a>> {
        Some(match field {
            "user" => bytes(&self.user),
            "password" => text(self.password.as_str()),
            "uid" => opt_int(self.uid),
            "gid" => opt_int(self.gid),
            "gecos" => bytes(&self.gecos),
            "home" => bytes(&self.home),
            "shell" => bytes(&self.shell),
            _ => return None,
        })
    }
}
