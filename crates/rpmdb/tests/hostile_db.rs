//! Hostile and broken databases: each is a bounded, clear error, never a panic, a hang or an
//! empty list. Real databases come from the `rpm` test root; crafted ones are written with
//! SQLite directly.

#[path = "common/rpmroot.rs"]
mod rpmroot;
#[path = "common/writer.rs"]
mod writer;

use std::os::unix::fs::OpenOptionsExt;
use std::sync::OnceLock;

use keyhole_rpmdb::{
    DbFormat, Error, Limits, Package, read_database, read_database_fd, read_database_with_wal, tag,
};
use proptest::prelude::*;

/// The bytes of a real `rpmdb.sqlite` written by rpm.
fn real_db() -> &'static [u8] {
    static DB: OnceLock<Vec<u8>> = OnceLock::new();
    DB.get_or_init(|| std::fs::read(rpmroot::build().db()).unwrap())
}

fn limits() -> Limits {
    Limits::default()
}

/// An `rpmdb.sqlite`-shaped database holding `blobs`, as bytes.
fn crafted(blobs: &[Vec<u8>]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rpmdb.sqlite");
    writer::write_sqlite(&path, blobs);
    std::fs::read(&path).unwrap()
}

/// A database made by running `sql` on an empty one.
fn with_sql(sql: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rpmdb.sqlite");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(sql).unwrap();
    drop(conn);
    std::fs::read(&path).unwrap()
}

fn sample_blob(name: &str) -> Vec<u8> {
    use writer::Value;
    writer::write_header(
        &[
            (tag::NAME, Value::Str(name.as_bytes().to_vec())),
            (tag::VERSION, Value::Str(b"1".to_vec())),
            (tag::RELEASE, Value::Str(b"1".to_vec())),
        ],
        3,
    )
}

#[test]
fn a_real_database_reads_from_bytes_as_from_its_descriptor() {
    let from_bytes = read_database(real_db(), &limits()).unwrap();
    assert_eq!(from_bytes.len(), rpmroot::PACKAGES + 1);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rpmdb.sqlite");
    std::fs::write(&path, real_db()).unwrap();
    let file = std::fs::File::open(&path).unwrap();
    assert_eq!(read_database_fd(&file, &limits()).unwrap(), from_bytes);
}

#[test]
fn crafted_databases_read_in_hnum_order() {
    let db = crafted(&[sample_blob("one"), sample_blob("two")]);
    let got = read_database(&db, &limits()).unwrap();
    let names: Vec<_> = got.iter().map(|p| (p.hnum, p.name.as_str())).collect();
    assert_eq!(names, [(Some(1), "one"), (Some(2), "two")]);
}

#[test]
fn a_truncated_database_is_an_error() {
    let db = real_db();
    // Mid-page: refused before SQLite sees it.
    let err = read_database(&db[..db.len() / 2 + 100], &limits()).unwrap_err();
    assert!(
        matches!(&err, Error::NotADatabase(m) if m.contains("truncated")),
        "{err}"
    );
    // At a page boundary: SQLite finds pages missing.
    let page = 4096;
    let err = read_database(&db[..page * 2], &limits()).unwrap_err();
    assert!(matches!(err, Error::Sqlite(_)), "{err}");
    // Only the header's first bytes.
    let err = read_database(&db[..50], &limits()).unwrap_err();
    assert!(matches!(err, Error::NotADatabase(_)), "{err}");
    // The same through a descriptor, which streams the file into SQLite.
    let dir = tempfile::tempdir().unwrap();
    for (cut, sqlite_error) in [(db.len() / 2 + 100, false), (page * 2, true), (50, false)] {
        let path = dir.path().join("rpmdb.sqlite");
        std::fs::write(&path, &db[..cut]).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let err = read_database_fd(&file, &limits()).unwrap_err();
        assert_eq!(
            matches!(err, Error::Sqlite(_)),
            sqlite_error,
            "{cut}: {err}"
        );
        assert!(
            matches!(err, Error::Sqlite(_) | Error::NotADatabase(_)),
            "{err}"
        );
    }
}

#[test]
fn an_oversized_database_is_refused_before_it_is_read() {
    let small = Limits {
        max_db_bytes: 8192,
        ..limits()
    };
    let err = read_database(real_db(), &small).unwrap_err();
    assert!(matches!(err, Error::TooLarge { max: 8192, .. }), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rpmdb.sqlite");
    std::fs::write(&path, real_db()).unwrap();
    let file = std::fs::File::open(&path).unwrap();
    let err = read_database_fd(&file, &small).unwrap_err();
    assert!(
        matches!(err, Error::TooLarge { size, max: 8192 } if size == real_db().len() as u64),
        "{err}"
    );
}

#[test]
fn too_many_packages_or_files_are_refused() {
    let few = Limits {
        max_packages: 3,
        ..limits()
    };
    let err = read_database(real_db(), &few).unwrap_err();
    assert!(matches!(err, Error::TooMany { .. }), "{err}");
    let few = Limits {
        max_files: 10,
        ..limits()
    };
    let err = read_database(real_db(), &few).unwrap_err();
    assert!(matches!(err, Error::TooMany { .. }), "{err}");
}

#[test]
fn a_header_larger_than_allowed_is_refused() {
    let blob = sample_blob("big");
    let small = Limits {
        max_header_bytes: blob.len() as u64 - 1,
        ..limits()
    };
    let err = read_database(&crafted(&[blob]), &small).unwrap_err();
    // SQLite refuses the blob (its length limit) or the reader does: either way, an error.
    assert!(
        matches!(err, Error::Sqlite(_) | Error::Header { hnum: Some(1), .. }),
        "{err}"
    );
}

#[test]
fn corrupt_header_blobs_name_their_package() {
    let good = sample_blob("good");
    let mut truncated = sample_blob("cut");
    truncated.truncate(truncated.len() - 3);
    let mut oversized = sample_blob("big");
    oversized[0..4].copy_from_slice(&u32::MAX.to_be_bytes());
    let mut self_ref = sample_blob("loop");
    // The region trailer (at the end of the data) claims zero entries: it describes itself.
    let at = self_ref.len() - 16 + 8;
    self_ref[at..at + 4].copy_from_slice(&0u32.to_be_bytes());
    for (bad, what) in [
        (truncated, "its sizes say"),
        (oversized, "index entries"),
        (self_ref, "region trailer"),
        (b"garbage".to_vec(), "shorter than"),
    ] {
        let db = crafted(&[good.clone(), bad]);
        let err = read_database(&db, &limits()).unwrap_err();
        match &err {
            Error::Header {
                hnum: Some(2),
                reason,
            } => assert!(reason.contains(what), "{reason}"),
            other => panic!("{what}: {other}"),
        }
        assert!(
            err.to_string()
                .starts_with("package #2: malformed RPM header")
        );
    }
}

#[test]
fn a_blob_column_that_is_not_a_blob_is_refused() {
    let db = with_sql(
        "CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL);
         INSERT INTO Packages (blob) VALUES ('text, not a header');",
    );
    let err = read_database(&db, &limits()).unwrap_err();
    assert!(matches!(err, Error::Header { hnum: Some(1), .. }), "{err}");
}

#[test]
fn packages_that_are_not_a_plain_table_are_refused() {
    for (sql, want) in [
        ("CREATE TABLE other (x);", "there is no Packages table"),
        (
            "CREATE TABLE t (hnum INTEGER PRIMARY KEY, blob BLOB);
             CREATE VIEW Packages AS SELECT hnum, blob FROM t;",
            "not a plain table",
        ),
        (
            "CREATE VIRTUAL TABLE Packages USING fts5(hnum, blob);",
            "not a plain table",
        ),
        (
            "CREATE TABLE Packages (hnum INTEGER PRIMARY KEY, x BLOB,
               blob BLOB GENERATED ALWAYS AS (zeroblob(100000000)) VIRTUAL);",
            "computed or hidden",
        ),
        (
            "CREATE TABLE Packages (hnum INTEGER PRIMARY KEY, data BLOB);",
            "no blob column",
        ),
    ] {
        let err = read_database(&with_sql(sql), &limits()).unwrap_err();
        assert!(
            matches!(&err, Error::Schema(m) if m.contains(want)),
            "{sql}: {err}"
        );
    }
}

#[test]
fn a_wal_file_alone_is_not_the_database() {
    // A real write-ahead log: rpm's database in WAL mode, copied while a write is pending.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rpmdb.sqlite");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;
         CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL);",
    )
    .unwrap();
    conn.execute(
        "INSERT INTO Packages (blob) VALUES (?1)",
        [sample_blob("x")],
    )
    .unwrap();
    let wal = std::fs::read(dir.path().join("rpmdb.sqlite-wal")).unwrap();
    assert!(!wal.is_empty());
    assert_eq!(keyhole_rpmdb::identify(&wal), DbFormat::SqliteWal);
    assert_eq!(read_database(&wal, &limits()).unwrap_err(), Error::WalOnly);
    // The database beside it, never checkpointed, is read as its last checkpoint (empty), the
    // same as rpm's own reader with `immutable=1` would: nothing is read from the log.
    let main = std::fs::read(&path).unwrap();
    let err = read_database(&main, &limits());
    assert!(
        matches!(&err, Ok(p) if p.is_empty()) || matches!(&err, Err(Error::Schema(_))),
        "{err:?}"
    );
    drop(conn);
}

#[test]
fn other_formats_are_errors_not_empty_lists() {
    // Berkeley DB is read: a metadata page with nothing behind it is an error, not a list.
    let mut bdb = vec![0u8; 4096];
    bdb[12..16].copy_from_slice(&0x0006_1561u32.to_le_bytes());
    assert_eq!(keyhole_rpmdb::identify(&bdb), DbFormat::BerkeleyDb);
    let err = read_database(&bdb, &limits()).unwrap_err();
    assert!(
        matches!(&err, Error::BerkeleyDb(m) if m.contains("hash version 0")),
        "{err}"
    );
    let mut ndb = b"RpmP".to_vec();
    ndb.resize(4096, 0);
    assert_eq!(
        read_database(&ndb, &limits()).unwrap_err(),
        Error::Unsupported(DbFormat::Ndb)
    );
    assert!(matches!(
        read_database(b"", &limits()),
        Err(Error::NotADatabase(_))
    ));
}

#[test]
fn a_fifo_or_a_directory_is_never_read() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("rpmdb.sqlite");
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
    )
    .unwrap();
    // Opened non-blocking as the engine's safe layer does; a read would still find no writer.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(&fifo)
        .unwrap();
    let err = read_database_fd(&file, &limits()).unwrap_err();
    assert!(
        matches!(&err, Error::NotRegularFile(k) if k == "Fifo"),
        "{err}"
    );
    let d = std::fs::File::open(dir.path()).unwrap();
    let err = read_database_fd(&d, &limits()).unwrap_err();
    assert!(
        matches!(&err, Error::NotRegularFile(k) if k == "Directory"),
        "{err}"
    );
}

#[test]
fn the_descriptor_is_read_from_its_start_whatever_its_offset() {
    use std::io::{Seek, SeekFrom};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rpmdb.sqlite");
    std::fs::write(&path, real_db()).unwrap();
    let mut file = std::fs::File::open(&path).unwrap();
    file.seek(SeekFrom::Start(1000)).unwrap();
    assert_eq!(
        read_database_fd(&file, &limits()).unwrap().len(),
        rpmroot::PACKAGES + 1
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A real database with bytes overwritten anywhere: packages or an error, never a panic,
    /// and every package read is a well-formed one.
    #[test]
    fn corrupted_databases_never_panic(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..40),
    ) {
        let mut db = real_db().to_vec();
        for (at, b) in edits {
            let i = at.index(db.len());
            db[i] = b;
        }
        if let Ok(packages) = read_database(&db, &limits()) {
            for p in packages {
                prop_assert!(p.files.len() <= db.len());
                prop_assert!(p.files.iter().all(|f| (f.dir as usize) < p.dirnames.len()));
                let _ = Package::nevra(&p);
            }
        }
    }

    /// A log with bytes overwritten anywhere (and resealed or not): packages or an error, never
    /// a panic.
    #[test]
    fn corrupted_logs_never_panic(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16),
        resealed in any::<bool>(),
    ) {
        let (db, mut wal) = with_pending_log(&["old"], &["new1", "new2"]);
        for (at, b) in edits {
            let i = at.index(wal.len());
            wal[i] = b;
        }
        if resealed && wal.len() > 12 {
            let page = u32::from_be_bytes(wal[8..12].try_into().unwrap()) as usize;
            if (512..=65536).contains(&page) {
                reseal(&mut wal, page);
            }
        }
        let _ = read_database_with_wal(&db, &wal, &limits());
    }

    /// Whole pages of a real database replaced with random bytes.
    #[test]
    fn garbled_pages_never_panic(
        page in any::<prop::sample::Index>(),
        fill in prop::collection::vec(any::<u8>(), 4096),
    ) {
        let mut db = real_db().to_vec();
        let pages = db.len() / 4096;
        let p = page.index(pages);
        db[p * 4096..(p + 1) * 4096].copy_from_slice(&fill);
        let _ = read_database(&db, &limits());
    }
}

/// A database in WAL mode with `committed` packages checkpointed into the main file and
/// `pending` ones only in the log; returns (database bytes, log bytes).
fn with_pending_log(committed: &[&str], pending: &[&str]) -> (Vec<u8>, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rpmdb.sqlite");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;
         CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL);",
    )
    .unwrap();
    let insert = |name: &str| {
        conn.execute(
            "INSERT INTO Packages (blob) VALUES (?1)",
            [sample_blob(name)],
        )
        .unwrap();
    };
    committed.iter().for_each(|n| insert(n));
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
    pending.iter().for_each(|n| insert(n));
    let db = std::fs::read(&path).unwrap();
    let wal = std::fs::read(dir.path().join("rpmdb.sqlite-wal")).unwrap();
    drop(conn);
    (db, wal)
}

fn names(packages: &[Package]) -> Vec<&str> {
    packages.iter().map(|p| p.name.as_str()).collect()
}

#[test]
fn committed_log_frames_are_applied_as_sqlite_would() {
    let (db, wal) = with_pending_log(&["old"], &["new1", "new2"]);
    assert!(!wal.is_empty());
    // Without the log: the last checkpoint only.
    assert_eq!(names(&read_database(&db, &limits()).unwrap()), ["old"]);
    // With it: what rpm (SQLite) sees.
    let got = read_database_with_wal(&db, &wal, &limits()).unwrap();
    assert_eq!(names(&got), ["old", "new1", "new2"]);
    // An empty log changes nothing.
    assert_eq!(
        names(&read_database_with_wal(&db, &[], &limits()).unwrap()),
        ["old"]
    );
    // Through descriptors.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("db"), &db).unwrap();
    std::fs::write(dir.path().join("wal"), &wal).unwrap();
    let got = keyhole_rpmdb::read_database_fd_with_wal(
        std::fs::File::open(dir.path().join("db")).unwrap(),
        std::fs::File::open(dir.path().join("wal")).unwrap(),
        &limits(),
    )
    .unwrap();
    assert_eq!(names(&got), ["old", "new1", "new2"]);
}

#[test]
fn untrusted_log_frames_are_ignored() {
    let (db, wal) = with_pending_log(&["old"], &["new"]);
    // A broken checksum in the first frame: nothing after it is trusted.
    let mut broken = wal.clone();
    broken[32 + 24 + 100] ^= 0xff;
    assert_eq!(
        names(&read_database_with_wal(&db, &broken, &limits()).unwrap()),
        ["old"]
    );
    // Frames of another log generation (salts that do not match the header).
    let mut stale = wal.clone();
    stale[32 + 8] ^= 0xff;
    assert_eq!(
        names(&read_database_with_wal(&db, &stale, &limits()).unwrap()),
        ["old"]
    );
    // The last frame cut short: its transaction did not commit.
    let cut = &wal[..wal.len() - 1];
    let got = read_database_with_wal(&db, cut, &limits()).unwrap();
    assert_eq!(names(&got), ["old"]);
    // A log that claims a database of 2^24 pages at its commit (checksums resealed, so that
    // SQLite would trust it): refused by size before anything is allocated.
    let mut huge = wal.clone();
    let page = u32::from_be_bytes(wal[8..12].try_into().unwrap()) as usize;
    let frames = (wal.len() - 32) / (24 + page);
    let last = 32 + (frames - 1) * (24 + page);
    huge[last + 4..last + 8].copy_from_slice(&0x0100_0000u32.to_be_bytes());
    reseal(&mut huge, page);
    let err = read_database_with_wal(&db, &huge, &limits()).unwrap_err();
    assert!(matches!(err, Error::TooLarge { .. }), "{err}");
    // A database whose content is all in the log (its main file still empty).
    let (empty, all) = with_pending_log(&[], &["a", "b"]);
    let got = read_database_with_wal(&empty, &all, &limits()).unwrap();
    assert_eq!(names(&got), ["a", "b"]);
    // Garbage instead of a log.
    let err =
        read_database_with_wal(&db, b"not a log at all, not at all, no", &limits()).unwrap_err();
    assert!(
        matches!(&err, Error::NotADatabase(m) if m.contains("magic")),
        "{err}"
    );
}

/// Recomputes the running checksums of every frame of a log (SQLite's algorithm, in the byte
/// order the magic number names), as a writer of a hostile log would.
fn reseal(wal: &mut [u8], page: usize) {
    let big = wal[3] == 0x83;
    let word = |c: &[u8]| {
        let b = [c[0], c[1], c[2], c[3]];
        if big {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    };
    let sum = |data: &[u8], (mut s0, mut s1): (u32, u32)| {
        for p in data.chunks_exact(8) {
            s0 = s0.wrapping_add(word(&p[..4])).wrapping_add(s1);
            s1 = s1.wrapping_add(word(&p[4..])).wrapping_add(s0);
        }
        (s0, s1)
    };
    let mut s = sum(&wal[..24], (0, 0));
    let mut at = 32;
    while at + 24 + page <= wal.len() {
        s = sum(&wal[at..at + 8], s);
        s = sum(&wal[at + 24..at + 24 + page], s);
        wal[at + 16..at + 20].copy_from_slice(&s.0.to_be_bytes());
        wal[at + 20..at + 24].copy_from_slice(&s.1.to_be_bytes());
        at += 24 + page;
    }
}
