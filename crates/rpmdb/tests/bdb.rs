//! The Berkeley DB `Packages` reader (RHEL 7/8), against rpm's own read-only Berkeley DB
//! backend on the same files: the real headers of the `rpm` test root, laid out as a hash
//! database in both byte orders and two page sizes. Then hostile files: loops, pages out of
//! range, truncation, arbitrary corruption.

#[path = "common/bdb_writer.rs"]
mod bdb_writer;
#[path = "common/rpmroot.rs"]
mod rpmroot;

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::OnceLock;

use keyhole_rpmdb::{DbFormat, Error, Limits, Package, identify, read_database};
use proptest::prelude::*;

/// The test root's `rpmdb.sqlite` (only its bytes are kept: a root in a static would never be
/// dropped, and its temporary directory never removed).
fn sqlite_db() -> &'static [u8] {
    static DB: OnceLock<Vec<u8>> = OnceLock::new();
    DB.get_or_init(|| std::fs::read(rpmroot::build().db()).unwrap())
}

/// The header blobs of the test root's `rpmdb.sqlite`, with their package numbers.
fn records() -> &'static [(u32, Vec<u8>)] {
    static RECORDS: OnceLock<Vec<(u32, Vec<u8>)>> = OnceLock::new();
    RECORDS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rpmdb.sqlite");
        std::fs::write(&path, sqlite_db()).unwrap();
        let conn = rusqlite::Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        let mut stmt = conn.prepare("SELECT hnum, blob FROM Packages").unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    })
}

/// What rpm's `bdb_ro` backend lists from a `Packages` file.
fn rpm_bdb_ro(db: &[u8], qf: &str) -> BTreeSet<Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Packages"), db).unwrap();
    let out = Command::new("rpm")
        .arg("--dbpath")
        .arg(dir.path())
        .args(["--define", "_db_backend bdb_ro", "-qa", "--qf", qf])
        .output()
        .expect("running rpm (install Debian's rpm package)");
    assert!(
        out.status.success(),
        "rpm bdb_ro: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

const QF: &str = "%{NAME}\t%{EPOCHNUM}\t%{VERSION}\t%{RELEASE}\t%{ARCH}\t%{INSTALLTIME}\t\
                  [%{FILENAMES}:%{FILEMODES}:%{FILEDIGESTS} ]\n";

fn ours_as_rpm(packages: &[Package]) -> BTreeSet<Vec<u8>> {
    packages
        .iter()
        .map(|p| {
            let mut line = format!(
                "{}\t{}\t{}\t{}\t{}\t{}\t",
                p.name,
                p.epoch.unwrap_or(0),
                p.version,
                p.release,
                p.arch.as_deref().unwrap_or("(none)"),
                p.install_time.unwrap()
            )
            .into_bytes();
            for (path, f) in p.files_with_paths() {
                line.extend_from_slice(&path);
                let digest: String = f
                    .digest
                    .iter()
                    .flatten()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                line.extend_from_slice(format!(":{}:{digest} ", f.mode).as_bytes());
            }
            line
        })
        .collect()
}

#[test]
fn berkeley_db_reads_as_rpm_bdb_ro_does() {
    let sqlite = read_database(sqlite_db(), &Limits::default()).unwrap();
    for (page_size, big, buckets) in [(4096, false, 1), (4096, true, 4), (512, false, 7)] {
        let db = bdb_writer::write_bdb(records(), page_size, big, buckets);
        assert_eq!(identify(&db), DbFormat::BerkeleyDb);
        let ours = read_database(&db, &Limits::default()).unwrap();
        // Through a descriptor, as the engine hands it over, the same.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Packages"), &db).unwrap();
        let file = std::fs::File::open(dir.path().join("Packages")).unwrap();
        assert_eq!(
            keyhole_rpmdb::read_database_fd(&file, &Limits::default()).unwrap(),
            ours
        );
        // The same packages as from SQLite, with the same numbers, in the same order.
        assert_eq!(ours, sqlite, "page size {page_size}, big-endian {big}");
        let theirs = rpm_bdb_ro(&db, QF);
        assert_eq!(theirs.len(), rpmroot::PACKAGES + 1);
        assert_eq!(
            ours_as_rpm(&ours),
            theirs,
            "page size {page_size}, big-endian {big}"
        );
    }
}

fn bdb_error(db: &[u8]) -> String {
    match read_database(db, &Limits::default()) {
        Err(Error::BerkeleyDb(m)) => m,
        other => panic!("expected a Berkeley DB error, got {other:?}"),
    }
}

/// Overwrites the little-endian u32 at `at`.
fn put(db: &mut [u8], at: usize, v: u32) {
    db[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn hostile_berkeley_databases_are_bounded_errors() {
    let ps = 512;
    let good = bdb_writer::write_bdb(&records()[..3], ps, false, 1);
    let pages = good.len() / ps;
    // Find an overflow page (type 7) that continues to another one.
    let chained = (1..pages)
        .find(|&n| good[n * ps + 25] == 7 && good[n * ps + 16..n * ps + 20] != [0; 4])
        .unwrap();
    // An overflow chain that loops back to itself.
    let mut db = good.clone();
    put(&mut db, chained * ps + 16, chained as u32);
    assert!(
        bdb_error(&db).contains("reached twice"),
        "{}",
        bdb_error(&db)
    );
    // A chain that leaves the file.
    let mut db = good.clone();
    put(&mut db, chained * ps + 16, 1_000_000);
    assert!(bdb_error(&db).contains("outside the database"));
    // A hash page chained to itself.
    let mut db = good.clone();
    put(&mut db, ps + 16, 1);
    assert!(bdb_error(&db).contains("reached twice"));
    // A page that claims another number.
    let mut db = good.clone();
    put(&mut db, chained * ps + 8, 3);
    assert!(bdb_error(&db).contains("says it is page"));
    // Truncated: the metadata promises pages that are not there.
    assert!(bdb_error(&good[..good.len() - ps]).contains("truncated"));
    assert!(bdb_error(&good[..100]).contains("shorter than"));
    // An entry count larger than the page.
    let mut db = good.clone();
    db[ps + 20..ps + 22].copy_from_slice(&60_000u16.to_le_bytes());
    assert!(bdb_error(&db).contains("claims 60000 entries"));
    // An item claiming more than the header limit, and a spare pointer past the file.
    let small = Limits {
        max_header_bytes: 100,
        ..Limits::default()
    };
    let err = read_database(&good, &small).unwrap_err();
    assert!(
        matches!(&err, Error::BerkeleyDb(m) if m.contains("at most 100")),
        "{err}"
    );
    let mut db = good.clone();
    put(&mut db, 96, 5_000_000);
    assert!(bdb_error(&db).contains("outside the database"));
    // A bucket count far beyond the pages: stops at the first page that is not there.
    let mut db = good.clone();
    put(&mut db, 72, u32::MAX);
    assert!(bdb_error(&db).contains("outside the database") || bdb_error(&db).contains("twice"));
    // A B-tree (an rpm index, not Packages).
    let mut db = good.clone();
    put(&mut db, 12, 0x0005_3162);
    assert!(bdb_error(&db).contains("not a hash database"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Any bytes overwritten anywhere: packages or an error, never a panic or a hang.
    #[test]
    fn corrupted_berkeley_databases_never_panic(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..24),
    ) {
        let mut db = bdb_writer::write_bdb(&records()[..4], 512, false, 3);
        for (at, b) in edits {
            let i = at.index(db.len());
            db[i] = b;
        }
        if let Ok(packages) = read_database(&db, &Limits::default()) {
            for p in packages {
                prop_assert!(p.files.iter().all(|f| (f.dir as usize) < p.dirnames.len()));
            }
        }
    }
}
