//! The `shadow` resource: the entries of `/etc/shadow` (password states and ageing; hashes are
//! only ever named by scheme).

use super::{ACCOUNT_DB_MAX, Ctx, FieldSpec, Kind, NamedWalks, Rec, Record, RecordSet};
use super::{bytes, f, opt_int, read, text};
use crate::facts::{FactPlan, FactRequest};
use crate::matcher::FieldType::{Int, Text};
use crate::matcher::{Issue, Value, show_bytes};
use crate::target::{self, ShadowEntry};

/// The password database.
const SHADOW: &str = "/etc/shadow";

/// `/etc/shadow` entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Shadow;

/// The fields of `shadow` records.
const FIELDS: &[FieldSpec] = &[
    f("user", Text),
    f("password", Text),
    f("hash", Text),
    f("last_change", Int),
    f("min_days", Int),
    f("max_days", Int),
    f("warn_days", Int),
    f("inactive_days", Int),
    f("expire", Int),
];

/// The read of the password database.
fn request() -> FactRequest {
    read(SHADOW, ACCOUNT_DB_MAX)
}

impl Kind for Shadow {
    const FIELDS: &'static [FieldSpec] = FIELDS;

    fn describe(&self) -> String {
        "shadow entries".into()
    }

    fn requests(&self, _: &[&str], _: &NamedWalks, plan: &mut FactPlan) {
        plan.add(request());
    }

    fn records<'c>(&'c self, ctx: &'c Ctx<'_>, set: &mut RecordSet<'c>) -> Result<(), Issue> {
        let entries = ctx.account_db(&ctx.shadow, &request(), target::shadow)?;
        set.records = entries.iter().map(Rec::Shadow).collect();
        Ok(())
    }
}

impl Record for ShadowEntry {
    fn label(&self) -> String {
        show_bytes(&self.user)
    }

    fn value<'a>(&'a self, field: &str, _: &'a Ctx<'_>) -> Option<Value<'a>> {
        Some(match field {
            "user" => bytes(&self.user),
            "password" => text(self.password.as_str()),
            "hash" => text(self.scheme),
            "last_change" => opt_int(self.days[0]),
            "min_days" => opt_int(self.days[1]),
            "max_days" => opt_int(self.days[2]),
            "warn_days" => opt_int(self.days[3]),
            "inactive_days" => opt_int(self.days[4]),
            "expire" => opt_int(self.days[5]),
            _ => return None,
        })
    }
}
