//! Resources: what a check looks at. Each resource reads its argument from the profile, declares
//! the [`FactRequest`]s it needs (nothing else is ever read), and turns the gathered facts into
//! *records* whose fields the matchers test.
//!
//! One module per resource holds all of that resource: its argument, its fields, its requests,
//! its records and their values. This module only dispatches between them (through the `each`
//! macros); adding a resource means a new module, one variant of [`Resource`] and of [`Rec`],
//! one arm in each macro, and its name in [`Resource::parse`], [`Resource::name`] and
//! [`RESOURCE_NAMES`].

mod args;
mod commands;
mod ctx;
mod environment;
mod eol;
mod file;
mod files;
mod group;
mod listening;
mod os_release;
mod package_integrity;
mod packages;
mod passwd;
mod process;
mod shadow;

use std::collections::{BTreeMap, BTreeSet};

use crate::EngineError;
use crate::facts::{FactPlan, FactRequest, ProcFile, TargetPath, WalkLimits};
use crate::matcher::{FieldType, Issue, Value};
use crate::scope::Scope;
use crate::yaml::Node;
use args::no_args;

pub(crate) use ctx::Ctx;
pub(crate) use files::Find;
pub(crate) use os_release::platform_requests;

/// A field a resource's records have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FieldSpec {
    /// Its name in profiles.
    pub(crate) name: &'static str,
    /// Its type.
    pub(crate) ty: FieldType,
    /// Never shown in messages (hash states are fine; environment values are not).
    pub(crate) sensitive: bool,
}

/// A field whose values may be shown in messages.
const fn f(name: &'static str, ty: FieldType) -> FieldSpec {
    FieldSpec {
        name,
        ty,
        sensitive: false,
    }
}

/// A field whose values are never shown.
const fn secret(name: &'static str, ty: FieldType) -> FieldSpec {
    FieldSpec {
        name,
        ty,
        sensitive: true,
    }
}

/// Names of `named` walks merged per root and limits.
pub(crate) type NamedWalks = BTreeMap<(TargetPath, WalkLimits), BTreeSet<Vec<u8>>>;

/// What every resource module provides; [`Resource`] dispatches to it.
trait Kind {
    /// The fields of its records.
    const FIELDS: &'static [FieldSpec];
    /// True for a resource about one object (its field matchers fail when it is absent); false
    /// for a collection (field matchers apply to every record, vacuously to none).
    const SINGULAR: bool = false;

    /// A short identification for HDF `resource_id` and `code_desc`.
    fn describe(&self) -> String;

    /// Adds the facts it needs when `used` fields are tested.
    fn requests(&self, used: &[&str], named: &NamedWalks, plan: &mut FactPlan);

    /// Adds its records in `ctx` to `set`, or says why there are none to judge.
    fn records<'c>(&'c self, ctx: &'c Ctx<'_>, set: &mut RecordSet<'c>) -> Result<(), Issue>;
}

/// What every record type provides; [`Rec`] dispatches to it.
trait Record {
    /// How the record is named in messages (target data, so escaped).
    fn label(&self) -> String;

    /// The value of `field`; `None` when the record has no such field (an engine bug: checks
    /// only name fields of their resource).
    fn value<'a>(&'a self, field: &str, ctx: &'a Ctx<'_>) -> Option<Value<'a>>;
}

/// One resource of a check, with its argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Resource {
    /// `file` and `directory`.
    File(file::File),
    /// `passwd`.
    Passwd(passwd::Passwd),
    /// `shadow`.
    Shadow(shadow::Shadow),
    /// `group`.
    Group(group::Group),
    /// `os_release`.
    OsRelease(os_release::OsRelease),
    /// `packages` and `package`.
    Packages(packages::Packages),
    /// `package_integrity`.
    Integrity(package_integrity::PackageIntegrity),
    /// `files`.
    Files(files::Files),
    /// `commands`.
    Commands(commands::Commands),
    /// `process`.
    Process(process::Process),
    /// `environment`.
    Environment(environment::Environment),
    /// `listening`.
    Listening(listening::Listening),
}

/// Runs `$e` with `$r` bound to the resource module's value, whichever resource `$self` is.
macro_rules! each {
    ($self:expr, $r:ident => $e:expr) => {
        match $self {
            Resource::File($r) => $e,
            Resource::Passwd($r) => $e,
            Resource::Shadow($r) => $e,
            Resource::Group($r) => $e,
            Resource::OsRelease($r) => $e,
            Resource::Packages($r) => $e,
            Resource::Integrity($r) => $e,
            Resource::Files($r) => $e,
            Resource::Commands($r) => $e,
            Resource::Process($r) => $e,
            Resource::Environment($r) => $e,
            Resource::Listening($r) => $e,
        }
    };
}

/// Runs `$k` with `$T` being the resource module's type, whichever resource `$self` is.
macro_rules! each_kind {
    ($self:expr, $T:ident => $k:expr) => {
        match $self {
            Resource::File(_) => {
                type $T = file::File;
                $k
            }
            Resource::Passwd(_) => {
                type $T = passwd::Passwd;
                $k
            }
            Resource::Shadow(_) => {
                type $T = shadow::Shadow;
                $k
            }
            Resource::Group(_) => {
                type $T = group::Group;
                $k
            }
            Resource::OsRelease(_) => {
                type $T = os_release::OsRelease;
                $k
            }
            Resource::Packages(_) => {
                type $T = packages::Packages;
                $k
            }
            Resource::Integrity(_) => {
                type $T = package_integrity::PackageIntegrity;
                $k
            }
            Resource::Files(_) => {
                type $T = files::Files;
                $k
            }
            Resource::Commands(_) => {
                type $T = commands::Commands;
                $k
            }
            Resource::Process(_) => {
                type $T = process::Process;
                $k
            }
            Resource::Environment(_) => {
                type $T = environment::Environment;
                $k
            }
            Resource::Listening(_) => {
                type $T = listening::Listening;
                $k
            }
        }
    };
}

/// Resource names, as written in profiles.
pub(crate) const RESOURCE_NAMES: &[&str] = &[
    "file",
    "directory",
    "passwd",
    "shadow",
    "group",
    "os_release",
    "packages",
    "package",
    "package_integrity",
    "files",
    "commands",
    "process",
    "environment",
    "listening",
];

impl Resource {
    /// Reads the resource `key` with argument `node`; `Ok(None)` when `key` is no resource.
    pub(crate) fn parse(
        scope: &Scope<'_>,
        at: &str,
        key: &str,
        node: &Node,
    ) -> Result<Option<Self>, EngineError> {
        let at = &format!("{at}.{key}");
        let node = &*scope.resolve(node, at)?;
        // A resource without an argument: null (or an empty mapping) only.
        let unit = |r: Self| no_args(scope, at, node).map(|()| r);
        Ok(Some(match key {
            "file" => Self::File(file::File::parse(scope, at, node, false)?),
            "directory" => Self::File(file::File::parse(scope, at, node, true)?),
            "passwd" => unit(Self::Passwd(passwd::Passwd))?,
            "shadow" => unit(Self::Shadow(shadow::Shadow))?,
            "group" => unit(Self::Group(group::Group))?,
            "os_release" => unit(Self::OsRelease(os_release::OsRelease))?,
            "packages" => unit(Self::Packages(packages::Packages { name: None }))?,
            "package" => Self::Packages(packages::Packages::parse_one(scope, at, node)?),
            "package_integrity" => {
                Self::Integrity(package_integrity::PackageIntegrity::parse(scope, at, node)?)
            }
            "files" => Self::Files(files::Files::parse(scope, at, node)?),
            "commands" => Self::Commands(commands::Commands::parse(scope, at, node)?),
            "process" => unit(Self::Process(process::Process))?,
            "environment" => unit(Self::Environment(environment::Environment))?,
            "listening" => unit(Self::Listening(listening::Listening))?,
            _ => return Ok(None),
        }))
    }

    /// The name written in profiles.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::File(f) if f.directory => "directory",
            Self::File(_) => "file",
            Self::Passwd(_) => "passwd",
            Self::Shadow(_) => "shadow",
            Self::Group(_) => "group",
            Self::OsRelease(_) => "os_release",
            Self::Packages(p) if p.name.is_some() => "package",
            Self::Packages(_) => "packages",
            Self::Integrity(_) => "package_integrity",
            Self::Files(_) => "files",
            Self::Commands(_) => "commands",
            Self::Process(_) => "process",
            Self::Environment(_) => "environment",
            Self::Listening(_) => "listening",
        }
    }

    /// A short identification for HDF `resource_id` and `code_desc`.
    pub(crate) fn describe(&self) -> String {
        each!(self, r => r.describe())
    }

    /// True for resources about one object (its field matchers fail when it is absent); false
    /// for collections (field matchers apply to every record, vacuously to none).
    pub(crate) fn singular(&self) -> bool {
        match self {
            // `package: name` is one object; `packages` is the collection.
            Self::Packages(p) => p.name.is_some(),
            _ => each_kind!(self, T => T::SINGULAR),
        }
    }

    /// The fields of this resource's records.
    pub(crate) fn fields(&self) -> &'static [FieldSpec] {
        each_kind!(self, T => T::FIELDS)
    }

    /// Adds the facts this resource needs when `used` fields are tested.
    pub(crate) fn requests(&self, used: &[&str], named: &NamedWalks, plan: &mut FactPlan) {
        each!(self, r => r.requests(used, named, plan));
    }

    /// The records of this resource in `ctx`, or why there are none to judge.
    pub(crate) fn records<'c>(&'c self, ctx: &'c Ctx<'_>) -> Result<RecordSet<'c>, Issue> {
        let mut set = RecordSet::default();
        each!(self, r => r.records(ctx, &mut set))?;
        Ok(set)
    }
}

/// One record of a resource.
#[derive(Debug, Clone)]
pub(crate) enum Rec<'c> {
    /// A filesystem entry (the `file` resource, or a walk's find).
    Entry(file::Entry<'c>),
    /// A `passwd` entry.
    Passwd(&'c crate::target::PasswdEntry),
    /// A `shadow` entry.
    Shadow(&'c crate::target::ShadowEntry),
    /// A `group` entry.
    Group(&'c crate::target::GroupEntry),
    /// The `os-release` fields.
    Os(os_release::Os<'c>),
    /// An installed package.
    Package(&'c crate::target::Package),
    /// A packaged file that differs from its recorded digest.
    Integrity(package_integrity::Problem),
    /// A command found in `PATH`.
    Command(commands::Found<'c>),
    /// The target process's status.
    Process(process::Status<'c>),
    /// One environment variable.
    Env(environment::Var<'c>),
    /// One listening socket.
    Socket(&'c crate::target::Socket),
}

/// Runs `$e` with `$r` bound to the record, whichever record type `$self` is.
macro_rules! each_record {
    ($self:expr, $r:ident => $e:expr) => {
        match $self {
            Rec::Entry($r) => $e,
            Rec::Passwd($r) => $e,
            Rec::Shadow($r) => $e,
            Rec::Group($r) => $e,
            Rec::Os($r) => $e,
            Rec::Package($r) => $e,
            Rec::Integrity($r) => $e,
            Rec::Command($r) => $e,
            Rec::Process($r) => $e,
            Rec::Env($r) => $e,
            Rec::Socket($r) => $e,
        }
    };
}

impl Rec<'_> {
    /// How the record is named in messages.
    pub(crate) fn label(&self) -> String {
        each_record!(self, r => r.label())
    }

    /// The value of `field` (one of the resource's field names).
    pub(crate) fn value<'a>(&'a self, field: &str, ctx: &'a Ctx<'_>) -> Value<'a> {
        each_record!(self, r => r.value(field, ctx)).unwrap_or_else(|| {
            Value::Unknown(Issue::Error(format!(
                "field `{field}` has no value here (engine bug)"
            )))
        })
    }
}

/// A resource's records, and whether they are all there is.
#[derive(Debug, Default)]
pub(crate) struct RecordSet<'c> {
    pub(crate) records: Vec<Rec<'c>>,
    /// Why the records may be incomplete (a bound was reached): a pass cannot be claimed.
    pub(crate) incomplete: Option<String>,
    /// Things worth telling even when the check passes.
    pub(crate) notes: Vec<String>,
}

/// A target path from one of the resource modules' constants.
fn path(p: &str) -> TargetPath {
    // Only called with absolute, NUL-free constants.
    TargetPath::new(p).unwrap_or_else(|| unreachable!("constant path {p}"))
}

/// The request for the first `max_bytes` of the file at constant path `p`.
fn read(p: &str, max_bytes: u64) -> FactRequest {
    FactRequest::Read {
        path: path(p),
        max_bytes,
    }
}

/// The request for the first `max_bytes` of a file of the target process.
fn proc(file: ProcFile, max_bytes: u64) -> FactRequest {
    FactRequest::Proc { file, max_bytes }
}

/// A text value borrowed from the facts.
fn text(s: &str) -> Value<'_> {
    Value::Text(std::borrow::Cow::Borrowed(s.as_bytes()), true)
}

/// A byte-string value borrowed from the facts.
fn bytes(b: &[u8]) -> Value<'_> {
    Value::Text(std::borrow::Cow::Borrowed(b), true)
}

/// A number, or missing (an empty column).
fn opt_int(v: Option<i64>) -> Value<'static> {
    v.map_or(Value::Missing, Value::Int)
}

/// Largest account database read whole (`/etc/passwd`, `/etc/shadow`, `/etc/group`; also each
/// distroless package status file).
const ACCOUNT_DB_MAX: u64 = 4 << 20;
/// Largest `/proc/<pid>/status` read.
const PROC_STATUS_MAX: u64 = 64 << 10;
/// Largest other `/proc/<pid>/` file read (command line, environment, socket tables).
const PROC_MAX: u64 = 4 << 20;
