//! The `listening` resource: sockets accepting traffic in the target's network namespace, from
//! its `/proc/<pid>/net` tables.

use super::{Ctx, FieldSpec, Kind, NamedWalks, PROC_MAX, Rec, Record, RecordSet};
use super::{f, opt_int, proc, text};
use crate::facts::{FactPlan, ProcFile};
use crate::matcher::FieldType::{Bool, Int, Text};
use crate::matcher::{Issue, Value};
use crate::target::{self, Socket};

/// The socket tables read, with the protocol each lists.
const NET_FILES: [(ProcFile, &str); 4] = [
    (ProcFile::NetTcp, "tcp"),
    (ProcFile::NetTcp6, "tcp6"),
    (ProcFile::NetUdp, "udp"),
    (ProcFile::NetUdp6, "udp6"),
];

/// Sockets accepting traffic in the target's network namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Listening;

/// The fields of socket records.
const FIELDS: &[FieldSpec] = &[
    f("protocol", Text),
    f("address", Text),
    f("port", Int),
    f("all_interfaces", Bool),
    f("loopback", Bool),
    f("uid", Int),
];

impl Kind for Listening {
    const FIELDS: &'static [FieldSpec] = FIELDS;

    fn describe(&self) -> String {
        "listening sockets".into()
    }

    fn requests(&self, _: &[&str], _: &NamedWalks, plan: &mut FactPlan) {
        NET_FILES
            .iter()
            .for_each(|(f, _)| plan.add(proc(*f, PROC_MAX)));
    }

    fn records<'c>(&'c self, ctx: &'c Ctx<'_>, set: &mut RecordSet<'c>) -> Result<(), Issue> {
        set.records = ctx.sockets()?.iter().map(Rec::Socket).collect();
        Ok(())
    }
}

impl Ctx<'_> {
    /// The sockets of every table, parsed once per scan.
    fn sockets(&self) -> Result<&[Socket], Issue> {
        self.sockets
            .get_or_init(|| {
                let mut all = Vec::new();
                for (file, protocol) in NET_FILES {
                    // A kernel without IPv6 has no tcp6/udp6: no sockets there, not an error.
                    if self.not_found(&proc(file, PROC_MAX)) {
                        continue;
                    }
                    all.extend(target::sockets(protocol, self.proc_whole(file, PROC_MAX)?));
                }
                Ok(all)
            })
            .as_deref()
            .map_err(Clone::clone)
    }
}

impl Record for Socket {
    fn label(&self) -> String {
        format!("{} {}:{}", self.protocol, self.address, self.port)
    }

    fn value<'a>(&'a self, field: &str, _: &'a Ctx<'_>) -> Option<Value<'a>> {
        Some(match field {
            "protocol" => text(self.protocol),
            "address" => text(&self.address),
            "port" => Value::Int(self.port),
            "all_interfaces" => Value::Bool(self.all_interfaces),
            "loopback" => Value::Bool(self.loopback),
            "uid" => opt_int(self.uid),
            _ => return None,
        })
    }
}
