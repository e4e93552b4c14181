//! The `os_release` resource: the target's `os-release` (which also names the HDF platform),
//! with the release's end of support from the [`eol`](super::eol) table.

use std::borrow::Cow;
use std::collections::BTreeMap;

use super::{Ctx, FieldSpec, Kind, NamedWalks, Rec, Record, RecordSet, eol, f, read, text};
use crate::facts::FactPlan;
use crate::matcher::FieldType::{Int, Text};
use crate::matcher::{Issue, Value, show_bytes};
use crate::target;

/// Where `os-release` is looked for, in order.
const OS_RELEASE: [&str; 2] = ["/etc/os-release", "/usr/lib/os-release"];
/// Largest `os-release` read.
const OS_RELEASE_MAX: u64 = 64 << 10;

/// `os-release`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OsRelease;

/// The fields of the `os_release` record.
const FIELDS: &[FieldSpec] = &[
    f("id", Text),
    f("id_like", Text),
    f("name", Text),
    f("pretty_name", Text),
    f("version_id", Text),
    f("version_codename", Text),
    f("eol", Text),
    f("days_to_eol", Int),
];

/// The facts every evaluation reads: `os-release`, for the HDF platform.
pub(crate) fn platform_requests(plan: &mut FactPlan) {
    for p in OS_RELEASE {
        plan.add(read(p, OS_RELEASE_MAX));
    }
}

impl Kind for OsRelease {
    const FIELDS: &'static [FieldSpec] = FIELDS;
    const SINGULAR: bool = true;

    fn describe(&self) -> String {
        "os-release".into()
    }

    fn requests(&self, _: &[&str], _: &NamedWalks, plan: &mut FactPlan) {
        platform_requests(plan);
    }

    fn records<'c>(&'c self, ctx: &'c Ctx<'_>, set: &mut RecordSet<'c>) -> Result<(), Issue> {
        set.records
            .extend(ctx.os_release()?.map(|o| Rec::Os(Os(o))));
        Ok(())
    }
}

impl Ctx<'_> {
    /// `os-release` from `/etc`, else `/usr/lib`; `None` when neither exists.
    pub(crate) fn os_release(&self) -> Result<Option<&BTreeMap<String, String>>, Issue> {
        self.os
            .get_or_init(|| {
                for p in OS_RELEASE {
                    if let Some(bytes) = self.whole(&read(p, OS_RELEASE_MAX))? {
                        return Ok(Some(target::os_release(bytes)));
                    }
                }
                Ok(None)
            })
            .as_ref()
            .map(Option::as_ref)
            .map_err(Clone::clone)
    }
}

/// The `os-release` record: its variables.
#[derive(Debug, Clone)]
pub(crate) struct Os<'c>(&'c BTreeMap<String, String>);

impl Record for Os<'_> {
    fn label(&self) -> String {
        // Target data, so escaped like every other label.
        self.0
            .get("PRETTY_NAME")
            .or_else(|| self.0.get("ID"))
            .map_or_else(|| "os-release".into(), |n| show_bytes(n.as_bytes()))
    }

    fn value<'a>(&'a self, field: &str, ctx: &'a Ctx<'_>) -> Option<Value<'a>> {
        let get = |k: &str| self.0.get(k).map_or(Value::Missing, |v| text(v));
        // A stale table judges nothing: the release may have gained or lost support since.
        let eol = || {
            let id = self.0.get("ID").map_or("", String::as_str);
            let version = self.0.get("VERSION_ID").map_or("", String::as_str);
            match eol::lookup(id, version) {
                None => Ok(None),
                Some(known) => match eol::stale(id, known.checked, ctx.today) {
                    Some(why) => Err(Value::Unknown(Issue::Error(why))),
                    None => Ok(known.eol),
                },
            }
        };
        Some(match field {
            "id" => get("ID"),
            "id_like" => get("ID_LIKE"),
            "name" => get("NAME"),
            "pretty_name" => get("PRETTY_NAME"),
            "version_id" => get("VERSION_ID"),
            "version_codename" => get("VERSION_CODENAME"),
            "eol" => match eol() {
                Ok(Some(d)) => Value::Text(Cow::Owned(d.to_string().into_bytes()), true),
                Ok(None) => Value::Missing,
                Err(stale) => stale,
            },
            "days_to_eol" => match eol() {
                Ok(d) => d
                    .and_then(|d| ctx.today.until(d).ok())
                    .map_or(Value::Missing, |span| {
                        Value::Int(i64::from(span.get_days()))
                    }),
                Err(stale) => stale,
            },
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use keyhole_hdf::ControlStatus;

    use crate::{FactSource, Inputs, LocalRoot, Profile, Waivers, evaluate, gather};

    /// The statuses and messages of the controls of a profile judging Debian 12's support, on a
    /// scan at `now`.
    fn scan(now: &str) -> Vec<(ControlStatus, String)> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/os-release"),
            "ID=debian\nVERSION_ID=12\n",
        )
        .unwrap();
        let profile = Profile::from_yaml_str(
            "name: t\nversion: 0.1.0\ncontrols:\n\
             - id: SUPPORTED\n  impact: 0.5\n  checks:\n  - os_release: ~\n    days_to_eol: {min: 0}\n\
             - id: GUARDED\n  impact: 0.5\n  only_if:\n  - os_release: ~\n    eol: {matches: '.'}\n  \
             checks:\n  - os_release: ~\n    id: debian\n",
            "t.yaml",
        )
        .unwrap();
        let inputs = Inputs::defaults(&profile);
        let source = LocalRoot::directory(dir.path()).unwrap();
        let facts = gather(&profile, &inputs, &source as &dyn FactSource);
        let exec = evaluate(
            &profile,
            &inputs,
            &facts,
            &Waivers::none(),
            now.parse().unwrap(),
        );
        exec.profiles[0]
            .controls
            .iter()
            .map(|c| {
                let r = &c.results[0];
                let message = r.message.clone().or(r.skip_message.clone());
                (c.status(), message.unwrap_or_default())
            })
            .collect()
    }

    #[test]
    fn a_fresh_table_judges_and_a_stale_one_says_so_instead() {
        for (status, message) in scan("2027-06-01T12:00:00Z") {
            assert_eq!(status, ControlStatus::Passed, "{message}");
        }
        // Debian's rows were checked on 2026-12-03; + 181 days is past the trusted window.
        for (status, message) in scan("2027-06-02T00:00:00Z") {
            assert_eq!(status, ControlStatus::ProfileError, "{message}");
            assert!(
                message.contains("end-of-life table for `debian` was last checked on 2026-12-03")
                    && message.contains("may be stale"),
                "{message}"
            );
        }
    }
}
