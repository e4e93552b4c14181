//! The `packages` and `package` resources: the packages installed according to the target's
//! package databases (`package: name` is the one package of that name).
//!
//! Each database is one row of [`DATABASES`]: the request that reads it and the reader that
//! turns the answer into packages. A database that is absent adds no packages; one that cannot
//! be read whole is an issue, so a partial list is never judged. Supporting another package
//! manager means one more row (and its reader) here.

use std::borrow::Cow;

use super::ctx::{what, wrong_answer};
use super::{ACCOUNT_DB_MAX, Ctx, FieldSpec, Kind, NamedWalks, Rec, Record, RecordSet};
use super::{f, path, read, text};
use crate::EngineError;
use crate::facts::{FactPlan, FactRequest, FactValue};
use crate::integrity::DPKG_STATUS_D;
use crate::matcher::FieldType::{Text, Version};
use crate::matcher::{self, Issue, Value, show_bytes};
use crate::scope::Scope;
use crate::target::{self, Package};
use crate::yaml::Node;

/// dpkg's database of installed packages.
const DPKG_STATUS: &str = "/var/lib/dpkg/status";
/// Largest package database read whole.
const PACKAGE_DB_MAX: u64 = 64 << 20;
/// The `manager` of RPM packages (whose versions rpm's ordering compares).
const RPM: &str = "rpm";
/// Most files of [`DPKG_STATUS_D`] read.
const STATUS_D_MAX_FILES: u64 = 10_000;

/// Installed packages (`name: None`), or the one package of that name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Packages {
    /// Written `package: <name>`.
    pub(super) name: Option<String>,
}

/// The fields of package records.
const FIELDS: &[FieldSpec] = &[
    f("name", Text),
    f("version", Version),
    f("architecture", Text),
    f("manager", Text),
];

/// One package database.
struct Database {
    /// The requests that read it (one file, or the files where it may be).
    requests: fn() -> Vec<FactRequest>,
    /// Its packages, from the answers to `requests` (none when it is absent).
    packages: fn(&Ctx<'_>, &[FactRequest]) -> Result<Vec<Package>, Issue>,
}

/// Every package database read, in the order their packages are listed.
const DATABASES: &[Database] = &[
    Database {
        requests: || vec![read(DPKG_STATUS, PACKAGE_DB_MAX)],
        packages: |ctx, r| {
            Ok(ctx
                .whole(&r[0])?
                .map(target::dpkg_status)
                .unwrap_or_default())
        },
    },
    Database {
        requests: || vec![apk_request()],
        packages: |ctx, r| {
            Ok(ctx
                .whole(&r[0])?
                .map(target::apk_installed)
                .unwrap_or_default())
        },
    },
    Database {
        requests: || vec![status_d()],
        packages: |ctx, r| ctx.status_d(&r[0]),
    },
    Database {
        requests: rpm_requests,
        packages: |ctx, r| ctx.rpm(r),
    },
];

/// Largest RPM database read (see [`crate::managed::RPM_DB_MAX`]).
const RPM_DB_MAX: u64 = crate::managed::RPM_DB_MAX;
/// The name of the pseudo-packages that hold rpm's imported signing keys (not software).
const GPG_PUBKEY: &str = crate::managed::GPG_PUBKEY;

/// The read of apk's database of installed packages.
pub(super) fn apk_request() -> FactRequest {
    crate::managed::apk_db_request()
}

/// The reads of every place rpm may keep its database ([`keyhole_rpmdb::DB_PATHS`]), each
/// followed by its SQLite write-ahead log when it is an `rpmdb.sqlite`.
pub(super) fn rpm_requests() -> Vec<FactRequest> {
    crate::managed::rpm_db_requests()
}

/// The read of distroless images' per-package dpkg status directory.
fn status_d() -> FactRequest {
    FactRequest::ReadDir {
        path: path(DPKG_STATUS_D),
        max_files: STATUS_D_MAX_FILES,
        max_bytes: ACCOUNT_DB_MAX,
    }
}

impl Packages {
    /// `package: <name>`.
    pub(super) fn parse_one(scope: &Scope<'_>, at: &str, node: &Node) -> Result<Self, EngineError> {
        Ok(Self {
            name: Some(matcher::text(scope, at, node)?),
        })
    }
}

impl Kind for Packages {
    const FIELDS: &'static [FieldSpec] = FIELDS;

    fn describe(&self) -> String {
        match &self.name {
            Some(n) => format!("package {n}"),
            None => "installed packages".into(),
        }
    }

    fn requests(&self, _: &[&str], _: &NamedWalks, plan: &mut FactPlan) {
        for db in DATABASES {
            for r in (db.requests)() {
                plan.add(r);
            }
        }
    }

    fn records<'c>(&'c self, ctx: &'c Ctx<'_>, set: &mut RecordSet<'c>) -> Result<(), Issue> {
        let all = ctx.packages()?.iter();
        set.records = match &self.name {
            Some(name) => all.filter(|p| &p.name == name).map(Rec::Package).collect(),
            None => all.map(Rec::Package).collect(),
        };
        Ok(())
    }
}

impl Ctx<'_> {
    /// The packages of every database, read once per scan.
    fn packages(&self) -> Result<&[Package], Issue> {
        self.packages
            .get_or_init(|| {
                let mut all = Vec::new();
                for db in DATABASES {
                    all.extend((db.packages)(self, &(db.requests)())?);
                }
                Ok(all)
            })
            .as_deref()
            .map_err(Clone::clone)
    }

    /// The packages of the RPM database: the first of [`keyhole_rpmdb::DB_PATHS`] that exists
    /// (with its write-ahead log, if any), read by `keyhole_rpmdb`. A database present but
    /// unreadable (too large, corrupt, `ndb`) is an issue, never an empty list; rpm's
    /// `gpg-pubkey` pseudo-packages are not listed.
    fn rpm(&self, requests: &[FactRequest]) -> Result<Vec<Package>, Issue> {
        let mut rest = requests.iter().peekable();
        while let Some(r) = rest.next() {
            let wal = match rest.peek() {
                Some(FactRequest::Read { path, .. }) if path.as_bytes().ends_with(b"-wal") => {
                    rest.next()
                }
                _ => None,
            };
            let Some(db) = self.whole(r)? else {
                continue;
            };
            let wal = match wal {
                Some(w) => self.whole(w)?,
                None => None,
            };
            let limits = keyhole_rpmdb::Limits {
                max_db_bytes: RPM_DB_MAX,
                ..keyhole_rpmdb::Limits::default()
            };
            let read = match wal {
                Some(w) => keyhole_rpmdb::read_database_with_wal(db, w, &limits),
                None => keyhole_rpmdb::read_database(db, &limits),
            };
            let packages = read.map_err(|e| Issue::Error(format!("{}: {e}", what(r))))?;
            return Ok(packages
                .into_iter()
                .filter(|p| p.name != GPG_PUBKEY)
                .map(|p| Package {
                    version: p.evr(),
                    architecture: p.arch.clone().unwrap_or_default(),
                    name: p.name,
                    manager: RPM,
                })
                .collect());
        }
        Ok(Vec::new())
    }

    /// The packages of distroless images' `/var/lib/dpkg/status.d/` (one dpkg status stanza per
    /// file; the `*.md5sums` beside them are not package records). A file that cannot be read
    /// whole, or more files than are read, is an issue: a partial list is never judged.
    fn status_d(&self, r: &FactRequest) -> Result<Vec<Package>, Issue> {
        if self.not_found(r) {
            return Ok(Vec::new());
        }
        let FactValue::Files(files, bound) = self.answer(r)? else {
            return Err(wrong_answer(r));
        };
        if bound.is_some() {
            return Err(Issue::Error(format!(
                "{} holds more than the {STATUS_D_MAX_FILES} files read",
                what(r)
            )));
        }
        let mut all = Vec::new();
        for f in files.iter().filter(|f| !f.name.ends_with(b".md5sums")) {
            let name = show_bytes(&f.name);
            match &f.content {
                Ok(c) if c.truncated => {
                    return Err(Issue::Error(format!(
                        "{name} in {} is larger than the {} bytes read",
                        what(r),
                        c.bytes.len()
                    )));
                }
                Ok(c) => all.extend(target::dpkg_status_d(&c.bytes)),
                Err(e) => {
                    return Err(Issue::Error(format!(
                        "{name} in {} could not be read: {e}",
                        what(r)
                    )));
                }
            }
        }
        Ok(all)
    }
}

impl Record for Package {
    fn label(&self) -> String {
        show_bytes(format!("{} {}", self.name, self.version).as_bytes())
    }

    fn value<'a>(&'a self, field: &str, _: &'a Ctx<'_>) -> Option<Value<'a>> {
        Some(match field {
            "name" => text(&self.name),
            "version" if self.manager == RPM => Value::RpmVersion(Cow::Borrowed(&self.version)),
            "version" => Value::Version(Cow::Borrowed(&self.version)),
            "architecture" => text(&self.architecture),
            "manager" => text(self.manager),
            _ => return None,
        })
    }
}
