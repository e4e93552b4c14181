//! The reader against the real `rpm`: packages built by `rpmbuild` and installed by `rpm` into a
//! test root; the package list and every file's metadata must equal what `rpm -qa` reports.

#[path = "common/rpmroot.rs"]
mod rpmroot;

use std::collections::BTreeSet;

use keyhole_rpmdb::{DbFormat, DigestAlgo, Limits, Package, identify, read_database_fd};

// Each test builds its own root (about a second): a root kept in a static would never be
// dropped, and its temporary directory never removed.

fn ours(root: &rpmroot::RpmRoot) -> Vec<Package> {
    let file = std::fs::File::open(root.db()).unwrap();
    read_database_fd(&file, &Limits::default()).unwrap()
}

fn lines(out: &[u8]) -> BTreeSet<Vec<u8>> {
    out.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

fn none<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "(none)".into(), |v| v.to_string())
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn debian_rpm_writes_an_sqlite_database() {
    let root = rpmroot::build();
    let head = std::fs::read(root.db()).unwrap();
    assert_eq!(identify(&head), DbFormat::Sqlite);
}

#[test]
fn the_package_list_equals_rpm_qa() {
    let root = rpmroot::build();
    let theirs = lines(&root.rpm(&[
        "-qa",
        "--qf",
        "%{NAME}\t%{EPOCH}\t%{VERSION}\t%{RELEASE}\t%{ARCH}\t%{VENDOR}\t%{INSTALLTIME}\t\
         %{FILEDIGESTALGO}\n",
    ]));
    let packages = ours(&root);
    let mine: BTreeSet<Vec<u8>> = packages
        .iter()
        .map(|p| {
            // rpmbuild writes the tag only for algorithms other than MD5, its default.
            let algo = (p.digest_algo != DigestAlgo::Md5).then(|| p.digest_algo.pgp());
            format!(
                "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                p.name,
                none(p.epoch),
                p.version,
                p.release,
                none(p.arch.as_ref()),
                none(p.vendor.as_ref()),
                none(p.install_time),
                none(algo),
            )
            .into_bytes()
        })
        .collect();
    assert_eq!(packages.len(), rpmroot::PACKAGES + 1);
    assert_eq!(mine, theirs);
    // The generator's variety reached the database.
    assert!(packages.iter().any(|p| p.epoch.is_some()));
    assert!(packages.iter().any(|p| p.vendor.is_some()));
    assert!(packages.iter().any(|p| p.digest_algo == DigestAlgo::Md5));
    assert!(packages.iter().any(|p| p.digest_algo == DigestAlgo::Sha256));
}

#[test]
fn file_metadata_equals_rpm_queryformat() {
    let root = rpmroot::build();
    let theirs = lines(&root.rpm(&[
        "-qa",
        "--qf",
        "[%{=NAME}\t%{FILENAMES}\t%{FILEMODES:octal}\t%{FILEUSERNAME}\t%{FILEGROUPNAME}\t\
         %{FILESIZES}\t%{FILEDIGESTS}\t%{FILEFLAGS}\t%{FILELINKTOS}\t%{FILESTATES}\t\
         %{FILEMTIMES}\t%{FILEVERIFYFLAGS}\t%{FILERDEVS}\n]",
    ]));
    let packages = ours(&root);
    let mut mine = BTreeSet::new();
    for p in &packages {
        for (path, f) in p.files_with_paths() {
            let mut line = format!("{}\t", p.name).into_bytes();
            line.extend_from_slice(&path);
            line.extend_from_slice(format!("\t{:o}\t", f.mode).as_bytes());
            line.extend_from_slice(&f.user);
            line.push(b'\t');
            line.extend_from_slice(&f.group);
            let digest = f.digest.as_deref().map(hex).unwrap_or_default();
            line.extend_from_slice(format!("\t{}\t{digest}\t{}\t", f.size, f.flags.0).as_bytes());
            line.extend_from_slice(&f.link_target);
            let state = match f.state {
                keyhole_rpmdb::FileState::Normal => 0,
                keyhole_rpmdb::FileState::NotInstalled => 2,
                other => panic!("the test root has no {other:?} files"),
            };
            let verify = f.verify.0;
            line.extend_from_slice(
                format!("\t{state}\t{}\t{verify}\t{}", f.mtime, f.rdev).as_bytes(),
            );
            mine.insert(line);
        }
    }
    let files: usize = packages.iter().map(|p| p.files.len()).sum();
    assert!(files >= 400, "only {files} files generated");
    assert_eq!(mine.len(), files, "a file was listed twice");
    assert_eq!(mine, theirs);
    // Config, doc and ghost files, symlinks and names that are not UTF-8 all took part.
    let all: Vec<_> = packages.iter().flat_map(|p| p.files_with_paths()).collect();
    assert!(
        all.iter()
            .any(|(_, f)| f.flags.is_config() && !f.flags.is_ghost())
    );
    assert!(all.iter().any(|(_, f)| f.flags.is_ghost()));
    assert!(all.iter().any(|(_, f)| f.flags.is_doc()));
    assert!(all.iter().any(|(_, f)| !f.link_target.is_empty()));
    assert!(all.iter().any(|(p, _)| std::str::from_utf8(p).is_err()));
    assert!(
        all.iter()
            .any(|(_, f)| f.user == b"daemon" && f.group == b"adm")
    );
}

#[test]
fn file_metadata_equals_rpm_dump() {
    let root = rpmroot::build();
    let theirs = lines(&root.rpm(&["-qa", "--dump"]));
    let mut mine = BTreeSet::new();
    for p in ours(&root) {
        for (path, f) in p.files_with_paths() {
            // rpm prints zeros for a file without a digest, as long as the algorithm's digest.
            let digest = match &f.digest {
                Some(d) => hex(d),
                None => "0".repeat(p.digest_algo.digest_len().unwrap() * 2),
            };
            let link = if f.link_target.is_empty() {
                b"X".to_vec()
            } else {
                f.link_target.clone()
            };
            let mut line = path;
            line.extend_from_slice(
                format!(" {} {} {digest} 0{:o} ", f.size, f.mtime, f.mode).as_bytes(),
            );
            line.extend_from_slice(&f.user);
            line.push(b' ');
            line.extend_from_slice(&f.group);
            line.extend_from_slice(
                format!(
                    " {} {} {} ",
                    u8::from(f.flags.is_config()),
                    u8::from(f.flags.is_doc()),
                    f.rdev
                )
                .as_bytes(),
            );
            line.extend_from_slice(&link);
            mine.insert(line);
        }
    }
    assert_eq!(mine, theirs);
}
