//! Resources: what a check looks at. Each resource reads its argument from the profile, declares
//! the [`FactRequest`]s it needs (nothing else is ever read), and turns the gathered facts into
//! *records* whose fields the matchers test.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::collections::{BTreeMap, BTreeSet};

use crate::EngineError;
use crate::facts::{
    Content, FactError, FactPlan, FactRequest, FactValue, Facts, FileKind, FileMeta, FileStatus,
    IntegritySpec, ProcFile, TargetPath, WalkLimits, WalkQuery,
};
use crate::matcher::{self, FieldType, Issue, Value, show_bytes};
use crate::scope::Scope;
use crate::target::{self, GroupEntry, Package, PasswdEntry, ShadowEntry, Socket};
use crate::yaml::{Entry, Node};

/// Caps of the reads resources ask for. They bound what a hostile target can make the scanner
/// hold; a capped answer that is needed whole is reported as an error, never read as complete.
const ACCOUNT_DB_MAX: u64 = 4 << 20;
const OS_RELEASE_MAX: u64 = 64 << 10;
const PACKAGE_DB_MAX: u64 = 64 << 20;
const CONTENT_MAX: u64 = 1 << 20;
const HASH_MAX: u64 = 1 << 30;
const LIST_MAX: u64 = 100_000;
const PROC_STATUS_MAX: u64 = 64 << 10;
const PROC_MAX: u64 = 4 << 20;
const CONTAINS_MAX_BYTES: u64 = 64 << 10;
const CONTAINS_MAX_FILE: u64 = 1 << 20;

const PASSWD: &str = "/etc/passwd";
const SHADOW: &str = "/etc/shadow";
const GROUP: &str = "/etc/group";
const OS_RELEASE: [&str; 2] = ["/etc/os-release", "/usr/lib/os-release"];
const DPKG_STATUS: &str = "/var/lib/dpkg/status";
const APK_INSTALLED: &str = "/lib/apk/db/installed";
/// Where `commands` looks, in `PATH` order.
const PATH_DIRS: [&str; 6] = [
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];
const NET_FILES: [(ProcFile, &str); 4] = [
    (ProcFile::NetTcp, "tcp"),
    (ProcFile::NetTcp6, "tcp6"),
    (ProcFile::NetUdp, "udp"),
    (ProcFile::NetUdp6, "udp6"),
];

fn path(p: &str) -> TargetPath {
    // Only called with the absolute, NUL-free constants above.
    TargetPath::new(p).unwrap_or_else(|| unreachable!("constant path {p}"))
}

fn read(p: &str, max_bytes: u64) -> FactRequest {
    FactRequest::Read {
        path: path(p),
        max_bytes,
    }
}

fn proc(file: ProcFile, max_bytes: u64) -> FactRequest {
    FactRequest::Proc { file, max_bytes }
}

fn list(p: &str, max_entries: u64) -> FactRequest {
    FactRequest::List {
        path: path(p),
        max_entries,
    }
}

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

const fn f(name: &'static str, ty: FieldType) -> FieldSpec {
    FieldSpec {
        name,
        ty,
        sensitive: false,
    }
}

const fn secret(name: &'static str, ty: FieldType) -> FieldSpec {
    FieldSpec {
        name,
        ty,
        sensitive: true,
    }
}

use FieldType::{Bool, Content as ContentT, Int, List, Mode, Text, Version};

const FILE_FIELDS: &[FieldSpec] = &[
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
    secret("content", ContentT),
    f("sha256", Text),
];
const FOUND_FIELDS: &[FieldSpec] = &[
    f("path", Text),
    f("name", Text),
    f("type", Text),
    f("mode", Mode),
    f("uid", Int),
    f("gid", Int),
    f("owner", Text),
    f("group", Text),
    f("size", Int),
    f("link_target", Text),
];
const PASSWD_FIELDS: &[FieldSpec] = &[
    f("user", Text),
    f("password", Text),
    f("uid", Int),
    f("gid", Int),
    f("gecos", Text),
    f("home", Text),
    f("shell", Text),
];
const SHADOW_FIELDS: &[FieldSpec] = &[
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
const GROUP_FIELDS: &[FieldSpec] = &[
    f("name", Text),
    f("password", Text),
    f("gid", Int),
    f("members", List),
];
const OS_FIELDS: &[FieldSpec] = &[
    f("id", Text),
    f("id_like", Text),
    f("name", Text),
    f("pretty_name", Text),
    f("version_id", Text),
    f("version_codename", Text),
    f("eol", Text),
    f("days_to_eol", Int),
];
const PACKAGE_FIELDS: &[FieldSpec] = &[
    f("name", Text),
    f("version", Version),
    f("architecture", Text),
    f("manager", Text),
];
const INTEGRITY_FIELDS: &[FieldSpec] = &[f("package", Text), f("path", Text), f("problem", Text)];
const COMMAND_FIELDS: &[FieldSpec] = &[f("name", Text), f("path", Text)];
const PROCESS_FIELDS: &[FieldSpec] = &[
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
const ENV_FIELDS: &[FieldSpec] = &[f("name", Text), secret("value", Text)];
const SOCKET_FIELDS: &[FieldSpec] = &[
    f("protocol", Text),
    f("address", Text),
    f("port", Int),
    f("all_interfaces", Bool),
    f("loopback", Bool),
    f("uid", Int),
];

/// What a `files` walk looks for, with the check's own name set for `named` walks (which the
/// plan merges into one walk per root and limits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Find {
    /// A query used as written.
    Query(WalkQuery),
    /// Entries with one of these names.
    Named(BTreeSet<Vec<u8>>),
}

/// One resource of a check, with its argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Resource {
    /// A path's metadata (and content or digest when matched); `directory` also requires that
    /// it be a directory.
    File {
        path: TargetPath,
        max_bytes: u64,
        directory: bool,
    },
    /// `/etc/passwd` entries.
    Passwd,
    /// `/etc/shadow` entries.
    Shadow,
    /// `/etc/group` entries.
    Group,
    /// `os-release`.
    OsRelease,
    /// Installed packages (dpkg and apk databases).
    Packages,
    /// One installed package by name.
    Package(String),
    /// Files of dpkg packages whose content differs from the recorded MD5.
    Integrity {
        lists: TargetPath,
        prefixes: Vec<TargetPath>,
        max_files: u64,
        max_packages: u64,
    },
    /// Entries found by a bounded walk.
    Files {
        root: TargetPath,
        find: Find,
        limits: WalkLimits,
    },
    /// Commands present in the standard `PATH` directories.
    Commands(Vec<String>),
    /// The target process (`/proc/<pid>/status`).
    Process,
    /// The target process's environment variables.
    Environment,
    /// Sockets accepting traffic in the target's network namespace.
    Listening,
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

/// The mapping entries of an argument, refusing keys not in `allowed`. Null is an empty mapping.
fn args<'n>(
    scope: &Scope<'_>,
    at: &str,
    node: &'n Node,
    allowed: &[&str],
) -> Result<&'n [Entry], EngineError> {
    if node.is_null() {
        return Ok(&[]);
    }
    let entries = node.as_map().ok_or_else(|| {
        scope.error(
            node.line,
            at,
            format!(
                "expected a mapping with keys {}, found {}",
                allowed.join(", "),
                node.shape()
            ),
        )
    })?;
    for e in entries {
        if !allowed.contains(&e.key.as_str()) {
            return Err(scope.error(
                e.line,
                &format!("{at}.{}", e.key),
                format!("unknown key; this resource takes: {}", allowed.join(", ")),
            ));
        }
    }
    Ok(entries)
}

fn arg<'n>(entries: &'n [Entry], key: &str) -> Option<&'n Entry> {
    entries.iter().find(|e| e.key == key)
}

fn target_path(scope: &Scope<'_>, at: &str, node: &Node) -> Result<TargetPath, EngineError> {
    let node = scope.resolve(node, at)?;
    let t = matcher::text(scope, at, &node)?;
    TargetPath::new(t.clone()).ok_or_else(|| {
        scope.error(
            node.line,
            at,
            format!("`{t}` is not an absolute path (it must start with `/`)"),
        )
    })
}

fn positive(scope: &Scope<'_>, at: &str, node: &Node) -> Result<u64, EngineError> {
    let node = scope.resolve(node, at)?;
    let v = matcher::int(scope, at, &node)?;
    u64::try_from(v)
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| scope.error(node.line, at, format!("{v} is not a positive number")))
}

fn no_args(scope: &Scope<'_>, at: &str, node: &Node) -> Result<(), EngineError> {
    args(scope, at, node, &[]).map(|_| ())
}

fn name_list(scope: &Scope<'_>, at: &str, node: &Node) -> Result<Vec<String>, EngineError> {
    let node = scope.resolve(node, at)?;
    let line = node.line;
    let items: Vec<Node> = match node.as_seq() {
        Some(items) => items.to_vec(),
        None => vec![node.into_owned()],
    };
    let mut out = Vec::new();
    for item in &items {
        let item = scope.resolve(item, at)?;
        let t = matcher::text(scope, at, &item)?;
        if t.is_empty() || t.contains(['/', '\0']) {
            return Err(scope.error(
                item.line,
                at,
                format!("`{t}` is not a file name (no `/`, not empty)"),
            ));
        }
        out.push(t);
    }
    if out.is_empty() {
        return Err(scope.error(line, at, "an empty list of names".into()));
    }
    Ok(out)
}

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
        Ok(Some(match key {
            "file" | "directory" => {
                let (p, max_bytes) = if node.as_map().is_some() {
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
                Self::File {
                    path: p,
                    max_bytes,
                    directory: key == "directory",
                }
            }
            "passwd" => no_args(scope, at, node).map(|()| Self::Passwd)?,
            "shadow" => no_args(scope, at, node).map(|()| Self::Shadow)?,
            "group" => no_args(scope, at, node).map(|()| Self::Group)?,
            "os_release" => no_args(scope, at, node).map(|()| Self::OsRelease)?,
            "packages" => no_args(scope, at, node).map(|()| Self::Packages)?,
            "process" => no_args(scope, at, node).map(|()| Self::Process)?,
            "environment" => no_args(scope, at, node).map(|()| Self::Environment)?,
            "listening" => no_args(scope, at, node).map(|()| Self::Listening)?,
            "package" => Self::Package(matcher::text(scope, at, node)?),
            "commands" => Self::Commands(name_list(scope, at, node)?),
            "package_integrity" => {
                let a = args(
                    scope,
                    at,
                    node,
                    &["lists", "paths", "max_files", "max_packages"],
                )?;
                let lists = match arg(a, "lists") {
                    Some(e) => {
                        let v = scope.resolve(&e.value, &format!("{at}.lists"))?;
                        target_path(scope, &format!("{at}.lists"), &v)?
                    }
                    None => path(crate::integrity::DPKG_INFO),
                };
                let prefixes = match arg(a, "paths") {
                    Some(e) => {
                        let v = scope.resolve(&e.value, &format!("{at}.paths"))?;
                        let items = v.as_seq().ok_or_else(|| {
                            scope.error(e.line, &format!("{at}.paths"), "expected a list".into())
                        })?;
                        items
                            .iter()
                            .map(|n| target_path(scope, &format!("{at}.paths"), n))
                            .collect::<Result<_, _>>()?
                    }
                    None => vec![path("/")],
                };
                Self::Integrity {
                    lists,
                    prefixes,
                    max_files: match arg(a, "max_files") {
                        Some(e) => positive(scope, &format!("{at}.max_files"), &e.value)?,
                        None => 20_000,
                    },
                    max_packages: match arg(a, "max_packages") {
                        Some(e) => positive(scope, &format!("{at}.max_packages"), &e.value)?,
                        None => 2_000,
                    },
                }
            }
            "files" => Self::parse_files(scope, at, node)?,
            _ => return Ok(None),
        }))
    }

    fn parse_files(scope: &Scope<'_>, at: &str, node: &Node) -> Result<Self, EngineError> {
        const KEYS: &[&str] = &[
            "find",
            "root",
            "names",
            "pattern",
            "max_bytes",
            "max_file_size",
            "max_depth",
            "max_entries",
            "max_millis",
            "same_filesystem",
        ];
        let a = args(scope, at, node, KEYS)?;
        let sub = |k: &str| format!("{at}.{k}");
        let find_entry = arg(a, "find").ok_or_else(|| {
            scope.error(
                node.line,
                at,
                "`find` is required: setuid, setgid, world_writable, named or containing".into(),
            )
        })?;
        let find_node = scope.resolve(&find_entry.value, &sub("find"))?;
        let kind = matcher::text(scope, &sub("find"), &find_node)?;
        let only = |k: &str, allowed_for: &str| -> Result<(), EngineError> {
            match arg(a, k) {
                Some(e) if kind != allowed_for => Err(scope.error(
                    e.line,
                    &sub(k),
                    format!("`{k}` only applies to `find: {allowed_for}`"),
                )),
                _ => Ok(()),
            }
        };
        only("names", "named")?;
        for k in ["pattern", "max_bytes", "max_file_size"] {
            only(k, "containing")?;
        }
        let find = match kind.as_str() {
            "setuid" => Find::Query(WalkQuery::Setuid),
            "setgid" => Find::Query(WalkQuery::Setgid),
            "world_writable" => Find::Query(WalkQuery::WorldWritable),
            "named" => {
                let e = arg(a, "names").ok_or_else(|| {
                    scope.error(node.line, at, "`find: named` needs `names`".into())
                })?;
                Find::Named(
                    name_list(scope, &sub("names"), &e.value)?
                        .into_iter()
                        .map(String::into_bytes)
                        .collect(),
                )
            }
            "containing" => {
                let e = arg(a, "pattern").ok_or_else(|| {
                    scope.error(node.line, at, "`find: containing` needs `pattern`".into())
                })?;
                let p = matcher::text(
                    scope,
                    &sub("pattern"),
                    &*scope.resolve(&e.value, &sub("pattern"))?,
                )?;
                if p.is_empty() {
                    return Err(scope.error(e.line, &sub("pattern"), "an empty pattern".into()));
                }
                let num = |k: &str, d: u64| -> Result<u64, EngineError> {
                    arg(a, k).map_or(Ok(d), |e| positive(scope, &sub(k), &e.value))
                };
                Find::Query(WalkQuery::Contains {
                    pattern: p.into_bytes(),
                    max_bytes: num("max_bytes", CONTAINS_MAX_BYTES)?,
                    max_file_size: num("max_file_size", CONTAINS_MAX_FILE)?,
                })
            }
            other => {
                return Err(scope.error(
                    find_node.line,
                    &sub("find"),
                    format!(
                        "unknown walk `{other}`; use setuid, setgid, world_writable, named or \
                         containing"
                    ),
                ));
            }
        };
        let d = WalkLimits::default();
        let num = |k: &str, d: u64| -> Result<u64, EngineError> {
            arg(a, k).map_or(Ok(d), |e| positive(scope, &sub(k), &e.value))
        };
        let limits = WalkLimits {
            max_depth: u32::try_from(num("max_depth", u64::from(d.max_depth))?).unwrap_or(u32::MAX),
            max_entries: num("max_entries", d.max_entries)?,
            max_millis: num("max_millis", d.max_millis)?,
            same_filesystem: match arg(a, "same_filesystem") {
                Some(e) => matcher::boolean(
                    scope,
                    &sub("same_filesystem"),
                    &*scope.resolve(&e.value, &sub("same_filesystem"))?,
                )?,
                None => d.same_filesystem,
            },
        };
        let root = match arg(a, "root") {
            Some(e) => target_path(scope, &sub("root"), &e.value)?,
            None => path("/"),
        };
        Ok(Self::Files { root, find, limits })
    }

    /// The name written in profiles.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::File {
                directory: false, ..
            } => "file",
            Self::File {
                directory: true, ..
            } => "directory",
            Self::Passwd => "passwd",
            Self::Shadow => "shadow",
            Self::Group => "group",
            Self::OsRelease => "os_release",
            Self::Packages => "packages",
            Self::Package(_) => "package",
            Self::Integrity { .. } => "package_integrity",
            Self::Files { .. } => "files",
            Self::Commands(_) => "commands",
            Self::Process => "process",
            Self::Environment => "environment",
            Self::Listening => "listening",
        }
    }

    /// A short identification for HDF `resource_id` and `code_desc`.
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::File { path, .. } => format!("{} {path}", self.name()),
            Self::Passwd => "passwd entries".into(),
            Self::Shadow => "shadow entries".into(),
            Self::Group => "group entries".into(),
            Self::OsRelease => "os-release".into(),
            Self::Packages => "installed packages".into(),
            Self::Package(n) => format!("package {n}"),
            Self::Integrity {
                lists, prefixes, ..
            } => format!(
                "changed files of dpkg packages under {}{}",
                prefixes
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                if lists.as_bytes() == crate::integrity::DPKG_INFO.as_bytes() {
                    String::new()
                } else {
                    format!(" (lists in {lists})")
                }
            ),
            Self::Files { root, find, .. } => {
                let what = match find {
                    Find::Query(WalkQuery::Setuid) => "setuid files".to_owned(),
                    Find::Query(WalkQuery::Setgid) => "setgid files".to_owned(),
                    Find::Query(WalkQuery::WorldWritable) => "world-writable entries".to_owned(),
                    Find::Query(WalkQuery::Contains { pattern, .. }) => {
                        format!("files containing {}", show_bytes(pattern))
                    }
                    Find::Named(names) | Find::Query(WalkQuery::Named(names)) => {
                        let names: Vec<String> = names
                            .iter()
                            .map(|n| String::from_utf8_lossy(n).into_owned())
                            .collect();
                        format!("entries named {}", names.join(", "))
                    }
                };
                format!("{what} under {root}")
            }
            Self::Commands(names) => format!("commands {}", names.join(", ")),
            Self::Process => "target process".into(),
            Self::Environment => "environment variables of the target process".into(),
            Self::Listening => "listening sockets".into(),
        }
    }

    /// True for resources about one object (its field matchers fail when it is absent); false
    /// for collections (field matchers apply to every record, vacuously to none).
    pub(crate) fn singular(&self) -> bool {
        matches!(
            self,
            Self::File { .. } | Self::OsRelease | Self::Package(_) | Self::Process
        )
    }

    /// The fields of this resource's records.
    pub(crate) fn fields(&self) -> &'static [FieldSpec] {
        match self {
            Self::File { .. } => FILE_FIELDS,
            Self::Files { .. } => FOUND_FIELDS,
            Self::Passwd => PASSWD_FIELDS,
            Self::Shadow => SHADOW_FIELDS,
            Self::Group => GROUP_FIELDS,
            Self::OsRelease => OS_FIELDS,
            Self::Packages | Self::Package(_) => PACKAGE_FIELDS,
            Self::Integrity { .. } => INTEGRITY_FIELDS,
            Self::Commands(_) => COMMAND_FIELDS,
            Self::Process => PROCESS_FIELDS,
            Self::Environment => ENV_FIELDS,
            Self::Listening => SOCKET_FIELDS,
        }
    }

    /// The walk this resource reads, with the names of every `named` walk of the profile over
    /// the same root and limits merged (`named` maps root and limits to those names).
    pub(crate) fn walk_request(&self, named: &NamedWalks) -> Option<FactRequest> {
        let Self::Files { root, find, limits } = self else {
            return None;
        };
        let query = match find {
            Find::Query(q) => q.clone(),
            Find::Named(own) => WalkQuery::Named(
                named
                    .get(&(root.clone(), *limits))
                    .cloned()
                    .unwrap_or_else(|| own.clone()),
            ),
        };
        Some(FactRequest::Walk {
            root: root.clone(),
            query,
            limits: *limits,
        })
    }

    /// Adds the facts this resource needs when `used` fields are tested.
    pub(crate) fn requests(&self, used: &[&str], named: &NamedWalks, plan: &mut FactPlan) {
        let uses = |f: &str| used.contains(&f);
        if uses("owner") {
            plan.add(read(PASSWD, ACCOUNT_DB_MAX));
        }
        if uses("group") {
            plan.add(read(GROUP, ACCOUNT_DB_MAX));
        }
        match self {
            Self::File {
                path, max_bytes, ..
            } => {
                plan.add(FactRequest::Stat(path.clone()));
                if uses("content") {
                    plan.add(FactRequest::Read {
                        path: path.clone(),
                        max_bytes: *max_bytes,
                    });
                }
                if uses("sha256") {
                    plan.add(FactRequest::Sha256 {
                        path: path.clone(),
                        max_bytes: HASH_MAX,
                    });
                }
            }
            Self::Passwd => plan.add(read(PASSWD, ACCOUNT_DB_MAX)),
            Self::Shadow => plan.add(read(SHADOW, ACCOUNT_DB_MAX)),
            Self::Group => plan.add(read(GROUP, ACCOUNT_DB_MAX)),
            Self::OsRelease => OS_RELEASE
                .iter()
                .for_each(|p| plan.add(read(p, OS_RELEASE_MAX))),
            Self::Packages | Self::Package(_) => {
                plan.add(read(DPKG_STATUS, PACKAGE_DB_MAX));
                plan.add(read(APK_INSTALLED, PACKAGE_DB_MAX));
                plan.add(status_d());
            }
            Self::Integrity { .. } => plan.add(self.integrity_request()),
            Self::Files { .. } => plan.add(
                self.walk_request(named)
                    .unwrap_or_else(|| unreachable!("a files resource always has a walk")),
            ),
            Self::Commands(_) => PATH_DIRS.iter().for_each(|d| plan.add(list(d, LIST_MAX))),
            Self::Process => {
                plan.add(proc(ProcFile::Status, PROC_STATUS_MAX));
                if uses("cmdline") {
                    plan.add(proc(ProcFile::Cmdline, PROC_MAX));
                }
            }
            Self::Environment => plan.add(proc(ProcFile::Environ, PROC_MAX)),
            Self::Listening => NET_FILES
                .iter()
                .for_each(|(f, _)| plan.add(proc(*f, PROC_MAX))),
        }
    }

    /// The one request a `package_integrity` resource is answered by.
    fn integrity_request(&self) -> FactRequest {
        let Self::Integrity {
            lists,
            prefixes,
            max_files,
            max_packages,
        } = self
        else {
            unreachable!("only package_integrity asks for integrity")
        };
        FactRequest::PackageIntegrity(IntegritySpec {
            lists: lists.clone(),
            prefixes: prefixes.clone(),
            max_packages: *max_packages,
            max_files: *max_files,
        })
    }
}

/// Distroless images' per-package dpkg status directory.
const STATUS_D: &str = "/var/lib/dpkg/status.d";
/// Most files of [`STATUS_D`] read.
const STATUS_D_MAX_FILES: u64 = 10_000;

/// The read of [`STATUS_D`].
fn status_d() -> FactRequest {
    FactRequest::ReadDir {
        path: path(STATUS_D),
        max_files: STATUS_D_MAX_FILES,
        max_bytes: ACCOUNT_DB_MAX,
    }
}

/// The facts every evaluation reads: `os-release`, for the HDF platform.
pub(crate) fn platform_requests(plan: &mut FactPlan) {
    for p in OS_RELEASE {
        plan.add(read(p, OS_RELEASE_MAX));
    }
}

/// Names of `named` walks merged per root and limits.
pub(crate) type NamedWalks = BTreeMap<(TargetPath, WalkLimits), BTreeSet<Vec<u8>>>;

/// One record of a resource.
#[derive(Debug, Clone)]
pub(crate) enum Rec<'c> {
    /// A filesystem entry (the `file` resource, or a walk's find).
    Entry {
        path: &'c TargetPath,
        meta: &'c FileMeta,
        /// The `file` resource's content cap (walk finds have no content).
        max_bytes: Option<u64>,
    },
    Passwd(&'c PasswdEntry),
    Shadow(&'c ShadowEntry),
    Group(&'c GroupEntry),
    Os(&'c BTreeMap<String, String>),
    Package(&'c Package),
    Integrity {
        package: String,
        path: TargetPath,
        problem: &'static str,
    },
    Command {
        name: &'c str,
        path: TargetPath,
    },
    Process(&'c BTreeMap<String, String>),
    Env(&'c [u8], &'c [u8]),
    Socket(&'c Socket),
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

/// The facts of one scan and what was parsed from them, shared by all checks.
pub(crate) struct Ctx<'f> {
    facts: &'f Facts,
    today: jiff::civil::Date,
    named: &'f NamedWalks,
    passwd: OnceCell<Result<Vec<PasswdEntry>, Issue>>,
    shadow: OnceCell<Result<Vec<ShadowEntry>, Issue>>,
    group: OnceCell<Result<Vec<GroupEntry>, Issue>>,
    os: OnceCell<Result<Option<BTreeMap<String, String>>, Issue>>,
    packages: OnceCell<Result<Vec<Package>, Issue>>,
    status: OnceCell<Result<BTreeMap<String, String>, Issue>>,
    environ: OnceCell<Result<Vec<target::EnvVar>, Issue>>,
    sockets: OnceCell<Result<Vec<Socket>, Issue>>,
}

/// How a request is named in messages.
fn what(r: &FactRequest) -> String {
    // Escaped: some of these paths come from the target (dpkg lists, directory names).
    let q = |p: &TargetPath| show_bytes(p.as_bytes());
    match r {
        FactRequest::Stat(p) | FactRequest::Read { path: p, .. } => q(p),
        FactRequest::Sha256 { path, .. } => format!("the SHA-256 of {}", q(path)),
        FactRequest::Md5 { path, .. } => format!("the MD5 of {}", q(path)),
        FactRequest::List { path, .. } => format!("the listing of {}", q(path)),
        FactRequest::Walk { root, .. } => format!("the walk of {}", q(root)),
        FactRequest::PackageIntegrity(_) => "the dpkg checksum lists".into(),
        FactRequest::ReadDir { path, .. } => format!("the files of {}", q(path)),
        FactRequest::Proc { file, .. } => format!("`/proc/<pid>/{}`", file.relative_path()),
    }
}

/// The issue a failed fact raises.
pub(crate) fn fact_issue(r: &FactRequest, e: &FactError) -> Issue {
    match e {
        FactError::NoProcess => Issue::Skip(format!(
            "{} is not available: {e}; process checks apply when scanning a running container",
            what(r)
        )),
        FactError::PermissionDenied => Issue::Error(format!(
            "{} could not be read: permission denied; scan as a user that may read it (the \
             file's owner or the target's UID)",
            what(r)
        )),
        _ => Issue::Error(format!("{} could not be read: {e}", what(r))),
    }
}

impl<'f> Ctx<'f> {
    /// A context over `facts`, judging dates against `today`.
    pub(crate) fn new(facts: &'f Facts, today: jiff::civil::Date, named: &'f NamedWalks) -> Self {
        Self {
            facts,
            today,
            named,
            passwd: OnceCell::new(),
            shadow: OnceCell::new(),
            group: OnceCell::new(),
            os: OnceCell::new(),
            packages: OnceCell::new(),
            status: OnceCell::new(),
            environ: OnceCell::new(),
            sockets: OnceCell::new(),
        }
    }

    /// The answer to `r`, or the issue that it failed or is missing.
    fn answer(&self, r: &FactRequest) -> Result<&'f FactValue, Issue> {
        match self.facts.get(r) {
            Some(Ok(v)) => Ok(v),
            Some(Err(e)) => Err(fact_issue(r, e)),
            None => Err(Issue::Error(format!(
                "{} was not gathered: the fact source did not answer a request of the plan \
                 (a keyhole bug; please report it)",
                what(r)
            ))),
        }
    }

    /// The content answering `r`, `None` when the file does not exist.
    fn content(&self, r: &FactRequest) -> Result<Option<&'f Content>, Issue> {
        match self.answer(r) {
            Ok(FactValue::Content(c)) => Ok(Some(c)),
            Ok(_) => Err(wrong_answer(r)),
            Err(_) if matches!(self.facts.get(r), Some(Err(FactError::NotFound))) => Ok(None),
            Err(i) => Err(i),
        }
    }

    /// A database file that must be read whole; `None` when absent.
    fn whole(&self, r: &FactRequest) -> Result<Option<&'f [u8]>, Issue> {
        match self.content(r)? {
            Some(c) if c.truncated => Err(Issue::Error(format!(
                "{} is larger than the {} bytes read, so it cannot be judged whole",
                what(r),
                c.bytes.len()
            ))),
            Some(c) => Ok(Some(&c.bytes)),
            None => Ok(None),
        }
    }
}

/// Parsed account databases, cached per scan.
impl Ctx<'_> {
    /// One account database (`path`, read whole) parsed once per scan; a missing file is an
    /// empty database, a file too large to judge whole is an issue.
    fn account_db<'a, T>(
        &'a self,
        cell: &'a OnceCell<Result<Vec<T>, Issue>>,
        path: &str,
        parse: fn(&[u8]) -> Vec<T>,
    ) -> Result<&'a [T], Issue> {
        cell.get_or_init(|| {
            Ok(self
                .whole(&read(path, ACCOUNT_DB_MAX))?
                .map(parse)
                .unwrap_or_default())
        })
        .as_deref()
        .map_err(Clone::clone)
    }

    fn passwd(&self) -> Result<&[PasswdEntry], Issue> {
        self.account_db(&self.passwd, PASSWD, target::passwd)
    }

    fn shadow(&self) -> Result<&[ShadowEntry], Issue> {
        self.account_db(&self.shadow, SHADOW, target::shadow)
    }

    fn group(&self) -> Result<&[GroupEntry], Issue> {
        self.account_db(&self.group, GROUP, target::group)
    }

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

    fn packages(&self) -> Result<&[Package], Issue> {
        self.packages
            .get_or_init(|| {
                let mut all = self
                    .whole(&read(DPKG_STATUS, PACKAGE_DB_MAX))?
                    .map(target::dpkg_status)
                    .unwrap_or_default();
                all.extend(
                    self.whole(&read(APK_INSTALLED, PACKAGE_DB_MAX))?
                        .map(target::apk_installed)
                        .unwrap_or_default(),
                );
                all.extend(self.status_d()?);
                Ok(all)
            })
            .as_deref()
            .map_err(Clone::clone)
    }

    /// The packages of distroless images' `/var/lib/dpkg/status.d/` (one dpkg status stanza per
    /// file; the `*.md5sums` beside them are not package records). A file that cannot be read
    /// whole, or more files than are read, is an issue: a partial list is never judged.
    fn status_d(&self) -> Result<Vec<Package>, Issue> {
        let r = status_d();
        let (files, bound) = match self.facts.get(&r) {
            Some(Err(FactError::NotFound)) => return Ok(Vec::new()),
            _ => match self.answer(&r)? {
                FactValue::Files(files, bound) => (files, bound),
                _ => return Err(wrong_answer(&r)),
            },
        };
        if bound.is_some() {
            return Err(Issue::Error(format!(
                "{} holds more than the {STATUS_D_MAX_FILES} files read",
                what(&r)
            )));
        }
        let mut all = Vec::new();
        for f in files.iter().filter(|f| !f.name.ends_with(b".md5sums")) {
            let name = show_bytes(&f.name);
            match &f.content {
                Ok(c) if c.truncated => {
                    return Err(Issue::Error(format!(
                        "{name} in {} is larger than the {} bytes read",
                        what(&r),
                        c.bytes.len()
                    )));
                }
                Ok(c) => all.extend(target::dpkg_status_d(&c.bytes)),
                Err(e) => {
                    return Err(Issue::Error(format!(
                        "{name} in {} could not be read: {e}",
                        what(&r)
                    )));
                }
            }
        }
        Ok(all)
    }

    fn proc_whole(&self, file: ProcFile, max: u64) -> Result<&'_ [u8], Issue> {
        let r = proc(file, max);
        match self.answer(&r)? {
            FactValue::Content(c) if c.truncated => Err(Issue::Error(format!(
                "{} is larger than the {} bytes read",
                what(&r),
                c.bytes.len()
            ))),
            FactValue::Content(c) => Ok(&c.bytes),
            _ => Err(wrong_answer(&r)),
        }
    }

    fn status(&self) -> Result<&BTreeMap<String, String>, Issue> {
        self.status
            .get_or_init(|| {
                self.proc_whole(ProcFile::Status, PROC_STATUS_MAX)
                    .map(target::proc_status)
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    fn environ(&self) -> Result<&[target::EnvVar], Issue> {
        self.environ
            .get_or_init(|| {
                self.proc_whole(ProcFile::Environ, PROC_MAX)
                    .map(target::environ)
            })
            .as_deref()
            .map_err(Clone::clone)
    }

    fn sockets(&self) -> Result<&[Socket], Issue> {
        self.sockets
            .get_or_init(|| {
                let mut all = Vec::new();
                for (file, protocol) in NET_FILES {
                    let r = proc(file, PROC_MAX);
                    // A kernel without IPv6 has no tcp6/udp6: no sockets there, not an error.
                    if matches!(self.facts.get(&r), Some(Err(FactError::NotFound))) {
                        continue;
                    }
                    all.extend(target::sockets(protocol, self.proc_whole(file, PROC_MAX)?));
                }
                Ok(all)
            })
            .as_deref()
            .map_err(Clone::clone)
    }

    fn user_name(&self, uid: u32) -> Value<'_> {
        match self.passwd() {
            Ok(entries) => entries
                .iter()
                .find(|e| e.uid == Some(i64::from(uid)))
                .map_or(Value::Missing, |e| {
                    Value::Text(Cow::Borrowed(&e.user), true)
                }),
            Err(i) => Value::Unknown(i),
        }
    }

    fn group_name(&self, gid: u32) -> Value<'_> {
        match self.group() {
            Ok(entries) => entries
                .iter()
                .find(|e| e.gid == Some(i64::from(gid)))
                .map_or(Value::Missing, |e| {
                    Value::Text(Cow::Borrowed(&e.name), true)
                }),
            Err(i) => Value::Unknown(i),
        }
    }
}

fn wrong_answer(r: &FactRequest) -> Issue {
    Issue::Error(format!(
        "{} was answered with the wrong kind of value (a fact source bug; please report it)",
        what(r)
    ))
}

/// End of (standard or LTS) support of well-known releases: `(ID, VERSION_ID prefix, date)`.
/// A prefix matches the whole version or up to a dot (`3.19` matches `3.19.1`).
const END_OF_LIFE: &[(&str, &str, &str)] = &[
    ("debian", "7", "2018-05-31"),
    ("debian", "8", "2020-06-30"),
    ("debian", "9", "2022-06-30"),
    ("debian", "10", "2024-06-30"),
    ("debian", "11", "2026-08-31"),
    ("debian", "12", "2028-06-30"),
    ("debian", "13", "2030-06-30"),
    ("ubuntu", "14.04", "2019-04-30"),
    ("ubuntu", "16.04", "2021-04-30"),
    ("ubuntu", "18.04", "2023-05-31"),
    ("ubuntu", "20.04", "2025-05-31"),
    ("ubuntu", "22.04", "2027-06-01"),
    ("ubuntu", "23.10", "2024-07-11"),
    ("ubuntu", "24.04", "2029-05-31"),
    ("ubuntu", "24.10", "2025-07-10"),
    ("ubuntu", "25.04", "2026-01-15"),
    ("alpine", "3.12", "2022-05-01"),
    ("alpine", "3.13", "2022-11-01"),
    ("alpine", "3.14", "2023-05-01"),
    ("alpine", "3.15", "2023-11-01"),
    ("alpine", "3.16", "2024-05-23"),
    ("alpine", "3.17", "2024-11-22"),
    ("alpine", "3.18", "2025-05-09"),
    ("alpine", "3.19", "2025-11-01"),
    ("alpine", "3.20", "2026-04-01"),
    ("alpine", "3.21", "2026-11-01"),
    ("alpine", "3.22", "2027-05-01"),
    ("centos", "7", "2024-06-30"),
    ("centos", "8", "2021-12-31"),
    ("rhel", "7", "2024-06-30"),
    ("rhel", "8", "2029-05-31"),
    ("rhel", "9", "2032-05-31"),
    ("rocky", "8", "2029-05-31"),
    ("rocky", "9", "2032-05-31"),
    ("almalinux", "8", "2029-05-31"),
    ("almalinux", "9", "2032-05-31"),
    ("ol", "7", "2024-12-31"),
    ("ol", "8", "2029-07-31"),
    ("ol", "9", "2032-06-30"),
    ("amzn", "2", "2026-06-30"),
    ("amzn", "2023", "2029-06-30"),
];

/// The end-of-life date of a release, when known.
pub(crate) fn end_of_life(id: &str, version_id: &str) -> Option<&'static str> {
    END_OF_LIFE
        .iter()
        .find(|(i, prefix, _)| {
            *i == id
                && (version_id == *prefix
                    || version_id
                        .strip_prefix(prefix)
                        .is_some_and(|rest| rest.starts_with('.')))
        })
        .map(|(_, _, date)| *date)
}

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

fn text(s: &str) -> Value<'_> {
    Value::Text(Cow::Borrowed(s.as_bytes()), true)
}

fn bytes(b: &[u8]) -> Value<'_> {
    Value::Text(Cow::Borrowed(b), true)
}

fn opt_int(v: Option<i64>) -> Value<'static> {
    v.map_or(Value::Missing, Value::Int)
}

impl Resource {
    /// The records of this resource in `ctx`, or why there are none to judge.
    pub(crate) fn records<'c>(&'c self, ctx: &'c Ctx<'_>) -> Result<RecordSet<'c>, Issue> {
        let mut set = RecordSet::default();
        match self {
            Self::File {
                path, max_bytes, ..
            } => {
                let r = FactRequest::Stat(path.clone());
                match ctx.facts.get(&r) {
                    Some(Err(FactError::NotFound)) => {}
                    _ => match ctx.answer(&r)? {
                        FactValue::Meta(meta) => set.records.push(Rec::Entry {
                            path,
                            meta,
                            max_bytes: Some(*max_bytes),
                        }),
                        _ => return Err(wrong_answer(&r)),
                    },
                }
            }
            Self::Passwd => set.records = ctx.passwd()?.iter().map(Rec::Passwd).collect(),
            Self::Shadow => set.records = ctx.shadow()?.iter().map(Rec::Shadow).collect(),
            Self::Group => set.records = ctx.group()?.iter().map(Rec::Group).collect(),
            Self::OsRelease => set.records.extend(ctx.os_release()?.map(Rec::Os)),
            Self::Packages => set.records = ctx.packages()?.iter().map(Rec::Package).collect(),
            Self::Package(name) => set.records.extend(
                ctx.packages()?
                    .iter()
                    .filter(|p| &p.name == name)
                    .map(Rec::Package),
            ),
            Self::Integrity { .. } => self.integrity_records(ctx, &mut set)?,
            Self::Files { find, .. } => {
                let r = self
                    .walk_request(ctx.named)
                    .unwrap_or_else(|| unreachable!("a files resource always has a walk"));
                let FactValue::Walk(outcome) = ctx.answer(&r)? else {
                    return Err(wrong_answer(&r));
                };
                for (p, meta) in &outcome.matches {
                    // A merged `named` walk found the names of every check; keep this one's.
                    if let Find::Named(own) = find {
                        let name = p
                            .as_bytes()
                            .rsplit(|b| *b == b'/')
                            .next()
                            .unwrap_or_default();
                        if !own.contains(name) {
                            continue;
                        }
                    }
                    set.records.push(Rec::Entry {
                        path: p,
                        meta,
                        max_bytes: None,
                    });
                }
                if let Some(bound) = outcome.truncated {
                    set.incomplete = Some(format!(
                        "the walk stopped at its {bound:?} bound after {} entries; raise the \
                         walk's limits to cover the whole tree",
                        outcome.examined
                    ));
                }
                set.notes
                    .push(format!("the walk examined {} entries", outcome.examined));
                // Files over a content search's size limit are skipped by design; say how many,
                // apart from paths that could not be examined at all.
                let (large, other): (Vec<_>, Vec<_>) = outcome
                    .skipped
                    .iter()
                    .partition(|(_, e)| matches!(e, FactError::TooLarge { .. }));
                if !large.is_empty() {
                    set.notes.push(format!(
                        "{} file(s) over the size limit were not searched",
                        large.len()
                    ));
                }
                if let Some((p, e)) = other.first() {
                    set.notes.push(format!(
                        "{} path(s) could not be examined (first: {}: {e})",
                        other.len(),
                        show_bytes(p.as_bytes())
                    ));
                }
            }
            Self::Commands(names) => {
                let mut listings = Vec::new();
                for d in PATH_DIRS {
                    let r = list(d, LIST_MAX);
                    match ctx.facts.get(&r) {
                        Some(Err(FactError::NotFound)) => continue,
                        _ => match ctx.answer(&r)? {
                            FactValue::Entries(entries, bound) => {
                                if bound.is_some() {
                                    set.incomplete = Some(format!(
                                        "{d} has more than {LIST_MAX} entries; not all were seen"
                                    ));
                                }
                                listings.push((d, entries));
                            }
                            _ => return Err(wrong_answer(&r)),
                        },
                    }
                }
                for name in names {
                    let found = listings.iter().find_map(|(d, entries)| {
                        entries
                            .iter()
                            .any(|e| e.name == name.as_bytes() && e.kind != FileKind::Directory)
                            .then(|| path(d).join(name.as_bytes()))
                            .flatten()
                    });
                    if let Some(p) = found {
                        set.records.push(Rec::Command { name, path: p });
                    }
                }
            }
            Self::Process => set.records.push(Rec::Process(ctx.status()?)),
            Self::Environment => {
                set.records = ctx.environ()?.iter().map(|(n, v)| Rec::Env(n, v)).collect();
            }
            Self::Listening => set.records = ctx.sockets()?.iter().map(Rec::Socket).collect(),
        }
        Ok(set)
    }

    fn integrity_records<'c>(
        &self,
        ctx: &'c Ctx<'_>,
        set: &mut RecordSet<'c>,
    ) -> Result<(), Issue> {
        let r = self.integrity_request();
        // No dpkg info directory: not a dpkg-based image, nothing to verify.
        if matches!(ctx.facts.get(&r), Some(Err(FactError::NotFound))) {
            return Ok(());
        }
        let FactValue::Integrity(report) = ctx.answer(&r)? else {
            return Err(wrong_answer(&r));
        };
        let mut notes = report.incomplete.clone();
        let mut unreadable = Vec::new();
        set.notes
            .push(format!("{} packaged file(s) checked", report.files.len()));
        for f in &report.files {
            let problem = match &f.status {
                FileStatus::Unchanged => continue,
                FileStatus::Changed => "changed",
                FileStatus::Missing => "missing",
                FileStatus::Unverified(e) => {
                    unreadable.push(format!("{}: {e}", show_bytes(f.path.as_bytes())));
                    continue;
                }
            };
            set.records.push(Rec::Integrity {
                package: f.package.clone(),
                path: f.path.clone(),
                problem,
            });
        }
        if let Some(first) = unreadable.first() {
            notes.push(format!(
                "{} file(s) could not be verified (first: {first})",
                unreadable.len()
            ));
        }
        if !notes.is_empty() {
            set.incomplete = Some(notes.join("; "));
        }
        Ok(())
    }
}

impl Rec<'_> {
    /// How the record is named in messages.
    pub(crate) fn label(&self) -> String {
        match self {
            Rec::Entry { path, .. } => show_bytes(path.as_bytes()),
            Rec::Passwd(e) => show_bytes(&e.user),
            Rec::Shadow(e) => show_bytes(&e.user),
            Rec::Group(e) => show_bytes(&e.name),
            // Target data, so escaped like every other label.
            Rec::Os(o) => o
                .get("PRETTY_NAME")
                .or_else(|| o.get("ID"))
                .map_or_else(|| "os-release".into(), |n| show_bytes(n.as_bytes())),
            Rec::Package(p) => show_bytes(format!("{} {}", p.name, p.version).as_bytes()),
            Rec::Integrity { path, .. } | Rec::Command { path, .. } => show_bytes(path.as_bytes()),
            Rec::Process(s) => format!(
                "process {}",
                show_bytes(s.get("Name").map_or("?", String::as_str).as_bytes())
            ),
            Rec::Env(n, _) => show_bytes(n),
            Rec::Socket(s) => format!("{} {}:{}", s.protocol, s.address, s.port),
        }
    }

    /// The value of `field` (one of the resource's field names).
    pub(crate) fn value<'a>(&'a self, field: &str, ctx: &'a Ctx<'_>) -> Value<'a> {
        let unknown = || {
            Value::Unknown(Issue::Error(format!(
                "field `{field}` has no value here (engine bug)"
            )))
        };
        match self {
            Rec::Entry {
                path,
                meta,
                max_bytes,
            } => match field {
                "path" => bytes(path.as_bytes()),
                "name" => bytes(
                    path.as_bytes()
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
                        path: (*path).clone(),
                        max_bytes: max_bytes.unwrap_or(CONTENT_MAX),
                    };
                    match ctx.answer(&r) {
                        Ok(FactValue::Content(c)) => {
                            Value::Text(Cow::Borrowed(&c.bytes), !c.truncated)
                        }
                        Ok(_) => Value::Unknown(wrong_answer(&r)),
                        Err(i) => Value::Unknown(i),
                    }
                }
                "sha256" => {
                    let r = FactRequest::Sha256 {
                        path: (*path).clone(),
                        max_bytes: HASH_MAX,
                    };
                    match ctx.answer(&r) {
                        Ok(FactValue::Digest(d)) => {
                            Value::Text(Cow::Owned(hex(d).into_bytes()), true)
                        }
                        Ok(_) => Value::Unknown(wrong_answer(&r)),
                        Err(i) => Value::Unknown(i),
                    }
                }
                _ => unknown(),
            },
            Rec::Passwd(e) => match field {
                "user" => bytes(&e.user),
                "password" => text(e.password.as_str()),
                "uid" => opt_int(e.uid),
                "gid" => opt_int(e.gid),
                "gecos" => bytes(&e.gecos),
                "home" => bytes(&e.home),
                "shell" => bytes(&e.shell),
                _ => unknown(),
            },
            Rec::Shadow(e) => match field {
                "user" => bytes(&e.user),
                "password" => text(e.password.as_str()),
                "hash" => text(e.scheme),
                "last_change" => opt_int(e.days[0]),
                "min_days" => opt_int(e.days[1]),
                "max_days" => opt_int(e.days[2]),
                "warn_days" => opt_int(e.days[3]),
                "inactive_days" => opt_int(e.days[4]),
                "expire" => opt_int(e.days[5]),
                _ => unknown(),
            },
            Rec::Group(e) => match field {
                "name" => bytes(&e.name),
                "password" => text(e.password.as_str()),
                "gid" => opt_int(e.gid),
                "members" => Value::List(e.members.clone()),
                _ => unknown(),
            },
            Rec::Os(o) => {
                let get = |k: &str| o.get(k).map_or(Value::Missing, |v| text(v));
                let eol = || {
                    end_of_life(
                        o.get("ID").map_or("", String::as_str),
                        o.get("VERSION_ID").map_or("", String::as_str),
                    )
                };
                match field {
                    "id" => get("ID"),
                    "id_like" => get("ID_LIKE"),
                    "name" => get("NAME"),
                    "pretty_name" => get("PRETTY_NAME"),
                    "version_id" => get("VERSION_ID"),
                    "version_codename" => get("VERSION_CODENAME"),
                    "eol" => eol().map_or(Value::Missing, text),
                    "days_to_eol" => eol()
                        .and_then(|d| d.parse::<jiff::civil::Date>().ok())
                        .and_then(|d| ctx.today.until(d).ok())
                        .map_or(Value::Missing, |span| {
                            Value::Int(i64::from(span.get_days()))
                        }),
                    _ => unknown(),
                }
            }
            Rec::Package(p) => match field {
                "name" => text(&p.name),
                "version" => Value::Version(Cow::Borrowed(&p.version)),
                "architecture" => text(&p.architecture),
                "manager" => text(p.manager),
                _ => unknown(),
            },
            Rec::Integrity {
                package,
                path,
                problem,
            } => match field {
                "package" => text(package),
                "path" => bytes(path.as_bytes()),
                "problem" => text(problem),
                _ => unknown(),
            },
            Rec::Command { name, path } => match field {
                "name" => text(name),
                "path" => bytes(path.as_bytes()),
                _ => unknown(),
            },
            Rec::Process(s) => {
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
                match field {
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
                    _ => unknown(),
                }
            }
            Rec::Env(n, v) => match field {
                "name" => bytes(n),
                "value" => bytes(v),
                _ => unknown(),
            },
            Rec::Socket(s) => match field {
                "protocol" => text(s.protocol),
                "address" => text(&s.address),
                "port" => Value::Int(s.port),
                "all_interfaces" => Value::Bool(s.all_interfaces),
                "loopback" => Value::Bool(s.loopback),
                "uid" => opt_int(s.uid),
                _ => unknown(),
            },
        }
    }
}

/// Lower-case hex of bytes.
pub(crate) fn hex(b: &[u8]) -> String {
    use std::fmt::Write as _;
    b.iter()
        .fold(String::with_capacity(b.len() * 2), |mut s, x| {
            let _ = write!(s, "{x:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_of_life_matches_whole_components() {
        assert_eq!(end_of_life("alpine", "3.19.1"), Some("2025-11-01"));
        assert_eq!(end_of_life("alpine", "3.1"), None);
        assert_eq!(end_of_life("debian", "12"), Some("2028-06-30"));
        assert_eq!(end_of_life("debian", "120"), None);
        assert_eq!(end_of_life("rhel", "9.4"), Some("2032-05-31"));
        assert_eq!(end_of_life("plan9", "4"), None);
    }

    #[test]
    fn hex_is_lower_case() {
        assert_eq!(hex(&[0, 0xab, 0x10]), "00ab10");
    }
}
