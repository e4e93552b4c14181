//! The RPM package database, read natively and safely: the packages and files of Red Hat-family
//! images (UBI, RHEL, Rocky, Alma, Fedora, Amazon Linux 2023, SUSE) without an `rpm` binary.
//!
//! # What is read
//! `rpmdb.sqlite` (rpm 4.16 and later: RHEL/UBI 9, Fedora, Amazon Linux 2023; found at
//! `/var/lib/rpm/` or `/usr/lib/sysimage/rpm/`, see [`DB_DIRS`]). Each row of its `Packages`
//! table is an RPM header blob, parsed by this crate's own bounded parser ([`Header`]) into a
//! [`Package`] with its [`PackageFile`]s. The Berkeley DB `Packages` of RHEL 7/8 and UBI 8 is
//! read too, without Berkeley DB (its hash pages and overflow chains, each page checked and
//! visited at most once). The `ndb` `Packages.db` of SUSE is recognised and refused with
//! [`Error::Unsupported`], never read as an empty list.
//!
//! # Why the API takes bytes or a descriptor, never a path
//! The database belongs to the scanned target, which may be hostile. A path would have to be
//! resolved, and every resolution outside the caller's safe filesystem layer (`openat2` with
//! `RESOLVE_IN_ROOT`) could be led out of the target's root by a symlink. So the caller opens
//! the file through that layer and hands over the descriptor ([`read_database_fd`]: it must be a
//! regular file, checked with `fstat` before anything is read, so a FIFO cannot block the scan),
//! or hands over bytes that its fact source read ([`read_database`]: the same code for a local
//! root, the shell script of standard mode and the agent).
//!
//! # Why SQLite gets memory, not a file
//! SQLite opens databases by name. Handing it `/proc/self/fd/N` with `?immutable=1&mode=ro`
//! would work, but still lets SQLite build and probe names of its own (`…-wal`, `…-journal`)
//! and depends on procfs. Instead the bytes — at most [`Limits::max_db_bytes`] of them — are
//! copied into SQLite's in-memory VFS (`sqlite3_deserialize`, read-only). SQLite then touches
//! no file at all, cannot write, and cannot be redirected. A write-ahead log beside the
//! database is not applied, as with `immutable=1`: rpm checkpoints it when a transaction ends,
//! and a database handed over in the middle of one is read as its last checkpoint — unless the
//! caller also hands over the log ([`read_database_with_wal`]), whose committed frames are then
//! applied to a copy of the image first, as SQLite would.
//!
//! SQLite is robust against corrupt files by design; on top of that the connection runs in
//! defensive mode with an untrusted schema, checks cell sizes, caps blob length, stops after a
//! budget of work proportional to the file, and reads only a `Packages` that is a plain table.
//!
//! # Integrity
//! [`verify`] computes what `rpm -V` reports for a file from what the caller observed of it,
//! without IO: the same findings, flag by flag, with config files told apart.
//!
//! # Bounds
//! A header is checked against itself before anything is allocated for it (see [`Header`]);
//! packages keep directory names once instead of a full path per file, so the parsed form of a
//! header is at most a small constant multiple of its size; [`Limits`] caps the database,
//! each header, and the number of packages and files.

mod bdb;
mod header;
mod package;
mod sqlite;
mod vercmp;
pub mod verify;
mod wal;
use std::os::fd::AsFd;

pub use header::{Header, MAX_DATA, MAX_ENTRIES, TagType, tag};
pub use package::{DigestAlgo, FileFlags, FileState, Package, PackageFile, VerifyFlags};
pub use vercmp::{compare_evr, vercmp};

/// The directories where rpm keeps its database, in the order to look: the historical path
/// first (on Fedora and SUSE it is a symlink to the second, which the caller's safe layer
/// follows inside the root).
pub const DB_DIRS: [&str; 2] = ["/var/lib/rpm", "/usr/lib/sysimage/rpm"];
/// The database files to look for, in order: the first that exists is the database. (rpm
/// reads only the backend it is configured for; an image converted to SQLite may keep a stale
/// `Packages` beside `rpmdb.sqlite`, so SQLite comes first.)
pub const DB_PATHS: [&str; 6] = [
    "/var/lib/rpm/rpmdb.sqlite",
    "/usr/lib/sysimage/rpm/rpmdb.sqlite",
    "/var/lib/rpm/Packages",
    "/usr/lib/sysimage/rpm/Packages",
    "/var/lib/rpm/Packages.db",
    "/usr/lib/sysimage/rpm/Packages.db",
];
/// The SQLite database's file name (rpm 4.16 and later), the first to look for.
pub const SQLITE_FILE: &str = "rpmdb.sqlite";
/// The Berkeley DB database's file name (RHEL 7 and 8), read when there is no SQLite one.
pub const BDB_FILE: &str = "Packages";
/// The `ndb` database's file name (SUSE).
pub const NDB_FILE: &str = "Packages.db";

/// The errors of reading an RPM database. Each says what was wrong with the file; none is a
/// silent empty result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A package database format this crate does not read.
    #[error(
        "unsupported package database: {0} (rpmdb.sqlite and Berkeley DB Packages are read); \
         the image's packages cannot be listed or verified"
    )]
    Unsupported(DbFormat),
    /// An SQLite write-ahead log was given instead of the database.
    #[error(
        "this is an SQLite write-ahead log (rpmdb.sqlite-wal), not the package database; read \
         rpmdb.sqlite itself"
    )]
    WalOnly,
    /// Not a package database at all.
    #[error("not an RPM package database: {0}")]
    NotADatabase(String),
    /// The descriptor is not a regular file (a FIFO, a device, a directory, …).
    #[error("the package database is not a regular file but a {0}; it was not read")]
    NotRegularFile(String),
    /// The database is larger than [`Limits::max_db_bytes`].
    #[error(
        "the package database is {size} bytes, more than the {max} read; raise the limit if it is genuine"
    )]
    TooLarge {
        /// Its size (or the bytes read before stopping).
        size: u64,
        /// The limit.
        max: u64,
    },
    /// More packages or files than [`Limits`] allows.
    #[error(
        "the package database lists more than the packages ({packages}) or files ({files}) allowed"
    )]
    TooMany {
        /// Packages read so far.
        packages: usize,
        /// Files read so far.
        files: usize,
    },
    /// The Berkeley DB file is corrupt, hostile, or not rpm's `Packages`.
    #[error("the Berkeley DB package database cannot be read: {0}")]
    BerkeleyDb(String),
    /// The SQLite file is corrupt, hostile, or exceeded a bound.
    #[error("the package database cannot be read by SQLite: {0}")]
    Sqlite(String),
    /// The SQLite file is not laid out as rpm writes it.
    #[error("the package database is not laid out as rpm writes it: {0}")]
    Schema(String),
    /// A header blob is malformed.
    #[error("{}malformed RPM header: {reason}", hnum.map(|n| format!("package #{n}: ")).unwrap_or_default())]
    Header {
        /// The package's database key, when known.
        hnum: Option<u32>,
        /// What is wrong.
        reason: String,
    },
    /// Reading the descriptor failed.
    #[error("reading the package database failed: {0}")]
    Io(String),
}

impl Error {
    /// The error, naming the package `hnum` if it is a header error.
    fn in_header(self, n: u32) -> Self {
        match self {
            Error::Header { reason, .. } => Error::Header {
                hnum: Some(n),
                reason,
            },
            e => e,
        }
    }
}

/// Bounds on what reading a database may cost. The defaults are well above the largest real
/// databases (a full Fedora workstation: about 200 MiB, 3,000 packages, 400,000 files; a UBI 9
/// image: a few MiB). Reading holds the database once in memory (SQLite's copy when it comes
/// from a descriptor; the caller's bytes and SQLite's copy when it comes as bytes) plus the
/// parsed packages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest database read.
    pub max_db_bytes: u64,
    /// Largest header blob parsed.
    pub max_header_bytes: u64,
    /// Most packages.
    pub max_packages: usize,
    /// Most files, all packages together.
    pub max_files: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_db_bytes: 512 << 20,
            max_header_bytes: 64 << 20,
            max_packages: 100_000,
            max_files: 4_000_000,
        }
    }
}

/// The format of a package database file, told by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DbFormat {
    /// SQLite (`rpmdb.sqlite`).
    Sqlite,
    /// An SQLite write-ahead log (`rpmdb.sqlite-wal`).
    SqliteWal,
    /// Berkeley DB (`Packages` of RHEL 7 and 8).
    BerkeleyDb,
    /// rpm's own `ndb` (`Packages.db` of SUSE).
    Ndb,
    /// None of these.
    Unknown,
}

impl std::fmt::Display for DbFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DbFormat::Sqlite => "SQLite (rpmdb.sqlite)",
            DbFormat::SqliteWal => "an SQLite write-ahead log",
            DbFormat::BerkeleyDb => "Berkeley DB (Packages, RHEL 7 and 8)",
            DbFormat::Ndb => "ndb (Packages.db, SUSE)",
            DbFormat::Unknown => "an unknown format",
        })
    }
}

/// Tells the format of a database from its first bytes (at least 16 are needed).
pub fn identify(head: &[u8]) -> DbFormat {
    let u32_at = |at: usize, big: bool| {
        head.get(at..at + 4).map(|b| {
            let b = [b[0], b[1], b[2], b[3]];
            if big {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            }
        })
    };
    if head.starts_with(b"SQLite format 3\0") {
        return DbFormat::Sqlite;
    }
    if matches!(u32_at(0, true), Some(0x377f_0682 | 0x377f_0683)) {
        return DbFormat::SqliteWal;
    }
    if head.starts_with(b"RpmP") {
        return DbFormat::Ndb;
    }
    // Berkeley DB's metadata page has its magic at offset 12, in the writer's byte order:
    // hash, btree or queue.
    let bdb = [0x0006_1561, 0x0005_3162, 0x0004_2253];
    if [true, false]
        .iter()
        .any(|&big| u32_at(12, big).is_some_and(|m| bdb.contains(&m)))
    {
        return DbFormat::BerkeleyDb;
    }
    DbFormat::Unknown
}

/// Reads the packages of a package database's bytes (the content of `rpmdb.sqlite` or of a
/// Berkeley DB `Packages`, read by the caller's safe layer), in package number order. `ndb`
/// gives [`Error::Unsupported`], a write-ahead log [`Error::WalOnly`], anything else
/// [`Error::NotADatabase`].
pub fn read_database(bytes: &[u8], limits: &Limits) -> Result<Vec<Package>, Error> {
    if bytes.len() as u64 > limits.max_db_bytes {
        return Err(Error::TooLarge {
            size: bytes.len() as u64,
            max: limits.max_db_bytes,
        });
    }
    match identify(bytes) {
        DbFormat::Sqlite => sqlite::read(bytes, limits),
        DbFormat::BerkeleyDb => bdb::read(bytes, limits),
        DbFormat::SqliteWal => Err(Error::WalOnly),
        format @ DbFormat::Ndb => Err(Error::Unsupported(format)),
        DbFormat::Unknown => Err(Error::NotADatabase(
            "it is neither SQLite, Berkeley DB nor ndb".into(),
        )),
    }
}

/// Reads the packages of `rpmdb.sqlite`'s bytes together with its write-ahead log's
/// (`rpmdb.sqlite-wal`, when it exists and is not empty): the transactions committed to the log
/// but not yet checkpointed into the database are applied first, as SQLite itself would, so a
/// package that only the log records is not missed. Frames SQLite would not trust (wrong salts,
/// broken checksums, after the last commit) are ignored.
pub fn read_database_with_wal(
    bytes: &[u8],
    wal: &[u8],
    limits: &Limits,
) -> Result<Vec<Package>, Error> {
    for len in [bytes.len(), wal.len()] {
        if len as u64 > limits.max_db_bytes {
            return Err(Error::TooLarge {
                size: len as u64,
                max: limits.max_db_bytes,
            });
        }
    }
    let image = wal::apply(bytes, wal, limits.max_db_bytes)?;
    match identify(&image) {
        DbFormat::Sqlite => sqlite::read(&image, limits),
        _ => Err(Error::NotADatabase(
            "a write-ahead log goes with an SQLite database, and this is none".into(),
        )),
    }
}

/// [`read_database_with_wal`] from descriptors the caller obtained through its safe layer (both
/// regular files, checked before reading).
pub fn read_database_fd_with_wal(
    fd: impl AsFd,
    wal: impl AsFd,
    limits: &Limits,
) -> Result<Vec<Package>, Error> {
    let bytes = sqlite::read_bounded(fd.as_fd(), limits.max_db_bytes)?;
    let wal = sqlite::read_bounded(wal.as_fd(), limits.max_db_bytes)?;
    read_database_with_wal(&bytes, &wal, limits)
}

/// Reads the packages of the package database open as `fd` — a descriptor the caller obtained
/// through its safe filesystem layer. It must be a regular file (checked with `fstat` before
/// any read) of at most [`Limits::max_db_bytes`]; it is read with `pread`, whatever its offset.
pub fn read_database_fd(fd: impl AsFd, limits: &Limits) -> Result<Vec<Package>, Error> {
    sqlite::read_fd(fd, limits)
}

/// The README's example, compiled by `cargo test --doc` so it never goes stale.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;
