//! The `process` resource: the target process's identity, capabilities and confinement, from
//! `/proc/<pid>/status` (and its command line when a check tests it).

use std::borrow::Cow;
use std::collections::BTreeMap;

use super::{Ctx, FieldSpec, Kind, NamedWalks, PROC_MAX, PROC_STATUS_MAX, Rec, RecordSet};
use super::{Record, f, proc, secret, text};
use crate::facts::{FactPlan, ProcFile};
use crate::matcher::FieldType::{Bool, Int, List, Text};
use crate::matcher::{Issue, Value, show_bytes};
use crate::target;

/// The target process (`/proc/<pid>/status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Process;

/// The fields of the process record.
const FIELDS: &[FieldSpec] = &[
    f("name", Text),
    f("uid", Int),
    f("euid", Int),
    f("gid", Int),
    f("egid", Int),
    f("cap_eff", List),
    f("cap_prm", List),
    f("cap_bnd", List),
    f("cap_inh", List),
    f("cap_amb", List),
    f("no_new_privs", Bool),
    f("seccomp", Text),
    secret("cmdline", Text),
];

impl Kind for Process {
    const FIELDS: &'static [FieldSpec] = FIELDS;
    const SINGULAR: bool = true;

    fn describe(&self) -> String {
        "target process".into()
    }

    fn requests(&self, used: &[&str], _: &NamedWalks, plan: &mut FactPlan) {
        plan.add(proc(ProcFile::Status, PROC_STATUS_MAX));
        if used.contains(&"cmdline") {
            plan.add(proc(ProcFile::Cmdline, PROC_MAX));
        }
    }

    fn records<'c>(&'c self, ctx: &'c Ctx<'_>, set: &mut RecordSet<'c>) -> Result<(), Issue> {
        set.records.push(Rec::Process(Status(ctx.status()?)));
        Ok(())
    }
}

impl Ctx<'_> {
    /// `/proc/<pid>/status`, parsed once per scan.
    fn status(&self) -> Result<&BTreeMap<String, String>, Issue> {
        self.status
            .get_or_init(|| {
                self.proc_whole(ProcFile::Status, PROC_STATUS_MAX)
                    .map(target::proc_status)
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

/// The process record: the variables of its status file.
#[derive(Debug, Clone)]
pub(crate) struct Status<'c>(&'c BTreeMap<String, String>);

impl Record for Status<'_> {
    fn label(&self) -> String {
        format!(
            "process {}",
            show_bytes(self.0.get("Name").map_or("?", String::as_str).as_bytes())
        )
    }

    fn value<'a>(&'a self, field: &str, ctx: &'a Ctx<'_>) -> Option<Value<'a>> {
        let s = self.0;
        let ids = |k: &str, i: usize| {
            s.get(k)
                .and_then(|v| v.split_whitespace().nth(i))
                .and_then(|v| v.parse().ok())
                .map_or(Value::Missing, Value::Int)
        };
        let caps = |k: &str| {
            s.get(k)
                .and_then(|v| target::capabilities(v))
                .map_or(Value::Missing, Value::List)
        };
        Some(match field {
            "name" => s.get("Name").map_or(Value::Missing, |v| text(v)),
            "uid" => ids("Uid", 0),
            "euid" => ids("Uid", 1),
            "gid" => ids("Gid", 0),
            "egid" => ids("Gid", 1),
            "cap_eff" => caps("CapEff"),
            "cap_prm" => caps("CapPrm"),
            "cap_bnd" => caps("CapBnd"),
            "cap_inh" => caps("CapInh"),
            "cap_amb" => caps("CapAmb"),
            "no_new_privs" => match s.get("NoNewPrivs").map(String::as_str) {
                Some("1") => Value::Bool(true),
                Some("0") => Value::Bool(false),
                _ => Value::Missing,
            },
            "seccomp" => match s.get("Seccomp").map(String::as_str) {
                Some("0") => text("disabled"),
                Some("1") => text("strict"),
                Some("2") => text("filter"),
                _ => Value::Missing,
            },
            "cmdline" => match ctx.proc_whole(ProcFile::Cmdline, PROC_MAX) {
                Ok(b) => {
                    let joined: Vec<u8> = b
                        .strip_suffix(b"\0")
                        .unwrap_or(b)
                        .iter()
                        .map(|c| if *c == 0 { b' ' } else { *c })
                        .collect();
                    Value::Text(Cow::Owned(joined), true)
                }
                Err(i) => Value::Unknown(i),
            },
            _ => return None,
        })
    }
}
