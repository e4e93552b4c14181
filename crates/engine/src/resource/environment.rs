//! The `environment` resource: the target process's environment variables (values are secret:
//! never shown in messages).

use super::{Ctx, FieldSpec, Kind, NamedWalks, PROC_MAX, Rec, Record, RecordSet};
use super::{bytes, f, proc, secret};
use crate::facts::{FactPlan, ProcFile};
use crate::matcher::FieldType::Text;
use crate::matcher::{Issue, Value, show_bytes};
use crate::target::{self, EnvVar};

/// The target process's environment variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Environment;

/// The fields of environment variables.
const FIELDS: &[FieldSpec] = &[f("name", Text), secret("value", Text)];

impl Kind for Environment {
    const FIELDS: &'static [FieldSpec] = FIELDS;

    fn describe(&self) -> String {
        "environment variables of the target process".into()
    }

    fn requests(&self, _: &[&str], _: &NamedWalks, plan: &mut FactPlan) {
        plan.add(proc(ProcFile::Environ, PROC_MAX));
    }

    fn records<'c>(&'c self, ctx: &'c Ctx<'_>, set: &mut RecordSet<'c>) -> Result<(), Issue> {
        set.records = ctx
            .environ()?
            .iter()
            .map(|(n, v)| Rec::Env(Var(n, v)))
            .collect();
        Ok(())
    }
}

impl Ctx<'_> {
    /// `/proc/<pid>/environ`, parsed once per scan.
    fn environ(&self) -> Result<&[EnvVar], Issue> {
        self.environ
            .get_or_init(|| {
                self.proc_whole(ProcFile::Environ, PROC_MAX)
                    .map(target::environ)
            })
            .as_deref()
            .map_err(Clone::clone)
    }
}

/// One environment variable: name and value.
#[derive(Debug, Clone)]
pub(crate) struct Var<'c>(&'c [u8], &'c [u8]);

impl Record for Var<'_> {
    fn label(&self) -> String {
        show_bytes(self.0)
    }

    fn value<'a>(&'a self, field: &str, _: &'a Ctx<'_>) -> Option<Value<'a>> {
        Some(match field {
            "name" => bytes(self.0),
            "value" => bytes(self.1),
            _ => return None,
        })
    }
}
