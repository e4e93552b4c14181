//! `rpmdb.sqlite`, loaded into SQLite's in-memory VFS and read with a hostile file in mind.
//!
//! SQLite is never given a path: the bytes (read by the caller through its safe filesystem
//! layer, or by [`read_fd`] from the caller's descriptor) are copied into a buffer that SQLite
//! treats as a read-only in-memory database (`sqlite3_deserialize` with
//! `SQLITE_DESERIALIZE_READONLY`). So no name in the target is resolved, no `-wal`, `-shm` or
//! `-journal` beside it is opened or created, and nothing is ever written.
//!
//! On top of SQLite's own robustness against corrupt files: defensive mode and an untrusted
//! schema (no functions with side effects reachable from the schema), `cell_size_check`, a
//! bound on blob length, a budget of virtual machine steps, and the check that `Packages` is a
//! plain table of rpm's two columns (not a view, a virtual table or a generated column whose
//! evaluation the file would control).

use std::io::Read;
use std::os::fd::AsFd;

use rusqlite::limits::Limit;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

use crate::{Error, Limits, Package};

/// The 16 bytes every SQLite database starts with.
const MAGIC: &[u8; 16] = b"SQLite format 3\0";
/// Zero bytes after the database in SQLite's buffer: SQLite documents that a maliciously
/// malformed database may make it read a few bytes past the end of the image, so the buffer is
/// longer than the image. Fewer than the smallest page, so the page count is unchanged.
const PADDING: usize = 256;
/// Virtual machine steps between two calls of the progress handler.
const STEPS_PER_TICK: i32 = 1000;

/// Reads the packages of an `rpmdb.sqlite` image.
pub(crate) fn read(bytes: &[u8], limits: &Limits) -> Result<Vec<Package>, Error> {
    let len = bytes.len() as u64;
    let page = check_image(bytes, len, limits)?;
    let conn = open(
        bytes,
        bytes.get(100..).unwrap_or_default(),
        len,
        page,
        limits,
    )?;
    check_schema(&conn)?;
    packages(&conn, limits)
}

/// Reads the packages of the package database open as `fd`, which must be a regular file of
/// at most `limits.max_db_bytes` (checked with `fstat` before any read, so a FIFO or a device
/// is never read). An SQLite database is streamed into SQLite's buffer, never held twice.
pub(crate) fn read_fd(fd: impl AsFd, limits: &Limits) -> Result<Vec<Package>, Error> {
    let fd = fd.as_fd();
    let size = regular_size(fd, limits.max_db_bytes)?;
    let mut head = Vec::with_capacity(100);
    PositionalReader { fd, at: 0 }
        .take(100)
        .read_to_end(&mut head)
        .map_err(|e| Error::Io(e.to_string()))?;
    if crate::identify(&head) != crate::DbFormat::Sqlite {
        let bytes = read_bounded(fd, limits.max_db_bytes)?;
        return crate::read_database(&bytes, limits);
    }
    let page = check_image(&head, size, limits)?;
    let rest = PositionalReader { fd, at: 100 }.take(size.saturating_sub(100));
    let conn = open(&head, rest, size, page, limits)?;
    check_schema(&conn)?;
    packages(&conn, limits)
}

/// The size of the regular file `fd`, checked to be at most `max`.
fn regular_size(fd: std::os::fd::BorrowedFd<'_>, max: u64) -> Result<u64, Error> {
    let st = rustix::fs::fstat(fd).map_err(|e| Error::Io(e.to_string()))?;
    let kind = rustix::fs::FileType::from_raw_mode(st.st_mode);
    if kind != rustix::fs::FileType::RegularFile {
        return Err(Error::NotRegularFile(format!("{kind:?}")));
    }
    let size = st.st_size as u64;
    if size > max {
        return Err(Error::TooLarge { size, max });
    }
    Ok(size)
}

/// The content of the regular file `fd`, of at most `max` bytes.
pub(crate) fn read_bounded(fd: std::os::fd::BorrowedFd<'_>, max: u64) -> Result<Vec<u8>, Error> {
    let size = regular_size(fd, max)?;
    // pread from offset 0, whatever the descriptor's position; one byte more than the limit
    // tells a file that grew after fstat from one that did not.
    let mut out = Vec::with_capacity(size as usize);
    PositionalReader { fd, at: 0 }
        .take(max + 1)
        .read_to_end(&mut out)
        .map_err(|e| Error::Io(e.to_string()))?;
    if out.len() as u64 > max {
        return Err(Error::TooLarge {
            size: out.len() as u64,
            max,
        });
    }
    Ok(out)
}

/// Reads a descriptor with `pread`, from its own offset.
struct PositionalReader<'a> {
    fd: std::os::fd::BorrowedFd<'a>,
    at: u64,
}

impl Read for PositionalReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = rustix::io::pread(self.fd, buf, self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

/// Checks the image's first bytes (`head`, at least its first 100 when it has them) and its
/// length; returns its page size.
fn check_image(head: &[u8], len: u64, limits: &Limits) -> Result<usize, Error> {
    if len > limits.max_db_bytes {
        return Err(Error::TooLarge {
            size: len,
            max: limits.max_db_bytes,
        });
    }
    let bytes = head;
    if len < 100 || bytes.len() < 100 || &bytes[..16] != MAGIC {
        return Err(Error::NotADatabase(
            "it does not start with an SQLite header".into(),
        ));
    }
    let page = match u16::from_be_bytes([bytes[16], bytes[17]]) {
        1 => 65536,
        n => usize::from(n),
    };
    if !(512..=65536).contains(&page) || !page.is_power_of_two() {
        return Err(Error::NotADatabase(format!("page size {page}")));
    }
    if !len.is_multiple_of(page as u64) {
        return Err(Error::NotADatabase(format!(
            "{len} bytes is not a whole number of {page}-byte pages: the file is truncated or \
             padded"
        )));
    }
    Ok(page)
}

/// Opens the image of `len` bytes — its first 100 bytes in `head`, the others read from
/// `rest` — as a read-only in-memory database with every guard set.
fn open(
    head: &[u8],
    rest: impl Read,
    len: u64,
    page: usize,
    limits: &Limits,
) -> Result<Connection, Error> {
    let mut conn = Connection::open_in_memory_with_flags(
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sql)?;
    // Set before the image is attached, so that they hold from its first page on.
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)
        .map_err(sql)?;
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA,
        false,
    )
    .map_err(sql)?;
    let blob_max = i32::try_from(limits.max_header_bytes).unwrap_or(i32::MAX);
    conn.set_limit(Limit::SQLITE_LIMIT_LENGTH, blob_max)
        .map_err(sql)?;
    conn.set_limit(Limit::SQLITE_LIMIT_ATTACHED, 0)
        .map_err(sql)?;
    // The budget of virtual machine steps: proportional to the image, generous for a real
    // database (a scan costs a few steps per row), fatal to a file that makes SQLite loop.
    let budget = (len / 8).max(1 << 20) / STEPS_PER_TICK as u64 + 1;
    let mut ticks = 0u64;
    conn.progress_handler(
        STEPS_PER_TICK,
        Some(move || {
            ticks += 1;
            ticks > budget
        }),
    )
    .map_err(sql)?;
    // rpm keeps its database in WAL mode (file format bytes 18 and 19 are 2), which the
    // in-memory VFS cannot open; SQLite documents setting them to 1 (rollback journal). A WAL
    // file is never read: its content is rpm's to checkpoint, as with `?immutable=1`.
    let mut first = [0u8; 100];
    first.copy_from_slice(&head[..100]);
    for b in &mut first[18..20] {
        if *b == 2 {
            *b = 1;
        }
    }
    let image = first
        .as_slice()
        .chain(rest)
        .chain(std::io::repeat(0).take(PADDING as u64));
    debug_assert!(PADDING < page);
    let size = usize::try_from(len)
        .ok()
        .and_then(|n| n.checked_add(PADDING))
        .ok_or(Error::TooLarge {
            size: len,
            max: limits.max_db_bytes,
        })?;
    // A file that shrank since its size was taken runs short here: an error, not a read of
    // the padding as data.
    conn.deserialize_read_exact(rusqlite::MAIN_DB, image, size, true)
        .map_err(sql)?;
    conn.pragma_update(None, "cell_size_check", true)
        .map_err(sql)?;
    conn.pragma_update(None, "query_only", true).map_err(sql)?;
    Ok(conn)
}

/// Checks that `Packages` is rpm's plain table: `hnum` and `blob`, nothing computed.
fn check_schema(conn: &Connection) -> Result<(), Error> {
    let rows: Vec<(String, String)> = conn
        .prepare("SELECT type, coalesce(sql, '') FROM sqlite_schema WHERE name = 'Packages' COLLATE NOCASE")
        .and_then(|mut s| {
            s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()
        })
        .map_err(sql)?;
    let [(kind, create)] = rows.as_slice() else {
        return Err(Error::Schema(if rows.is_empty() {
            "there is no Packages table".into()
        } else {
            "more than one object is named Packages".into()
        }));
    };
    let create = create.trim_start().to_ascii_uppercase();
    if kind != "table" || !create.starts_with("CREATE TABLE") {
        return Err(Error::Schema(format!(
            "Packages is a {kind} ({}), not a plain table",
            create.chars().take(60).collect::<String>()
        )));
    }
    let columns: Vec<(String, i64)> = conn
        .prepare("SELECT name, hidden FROM pragma_table_xinfo('Packages')")
        .and_then(|mut s| {
            s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()
        })
        .map_err(sql)?;
    if let Some((name, _)) = columns.iter().find(|(_, hidden)| *hidden != 0) {
        return Err(Error::Schema(format!(
            "Packages column {name} is computed or hidden"
        )));
    }
    for want in ["hnum", "blob"] {
        if !columns.iter().any(|(n, _)| n.eq_ignore_ascii_case(want)) {
            return Err(Error::Schema(format!("Packages has no {want} column")));
        }
    }
    Ok(())
}

/// Parses every row of `Packages`, in `hnum` order.
fn packages(conn: &Connection, limits: &Limits) -> Result<Vec<Package>, Error> {
    let mut stmt = conn
        .prepare("SELECT hnum, blob FROM Packages ORDER BY hnum")
        .map_err(sql)?;
    let mut rows = stmt.query([]).map_err(sql)?;
    let mut out = Vec::new();
    let mut files = 0usize;
    while let Some(row) = rows.next().map_err(sql)? {
        let hnum = match row.get_ref(0).map_err(sql)? {
            ValueRef::Integer(n) => u32::try_from(n).ok(),
            _ => None,
        };
        let Some(hnum) = hnum else {
            return Err(Error::Schema("a Packages row has no valid hnum".into()));
        };
        let blob = match row.get_ref(1).map_err(sql)? {
            ValueRef::Blob(b) => b,
            other => {
                return Err(Error::Header {
                    hnum: Some(hnum),
                    reason: format!("the blob is {:?}, not a blob", other.data_type()),
                });
            }
        };
        if blob.len() as u64 > limits.max_header_bytes {
            return Err(Error::Header {
                hnum: Some(hnum),
                reason: format!(
                    "{} bytes (at most {} are read)",
                    blob.len(),
                    limits.max_header_bytes
                ),
            });
        }
        let mut package = Package::from_header(blob).map_err(|e| e.in_header(hnum))?;
        package.hnum = Some(hnum);
        files = files.saturating_add(package.files.len());
        if out.len() >= limits.max_packages || files > limits.max_files {
            return Err(Error::TooMany {
                packages: out.len() + 1,
                files,
            });
        }
        out.push(package);
    }
    Ok(out)
}

/// An SQLite error as ours: the file is corrupt, hostile or exceeded a bound.
fn sql(e: rusqlite::Error) -> Error {
    if e.sqlite_error_code() == Some(rusqlite::ErrorCode::OperationInterrupted) {
        return Error::Sqlite(
            "reading the database took more work than its size can explain (a hostile or \
             corrupt file), so it was stopped"
                .into(),
        );
    }
    Error::Sqlite(e.to_string())
}
