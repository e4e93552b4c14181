//! Integrity of RPM and apk packages, IO-free: how a [`FactRequest::ManagedIntegrity`] is
//! answered from batches of primitive requests, as [`crate::integrity`] does for dpkg.
//!
//! 1. The package database (RPM: the first of [`keyhole_rpmdb::DB_PATHS`] that exists, with its
//!    write-ahead log; apk: `/lib/apk/db/installed`) and, for RPM, `/etc/passwd` and
//!    `/etc/group` (rpm matches owners by name or by id).
//! 2. `Stat` (`lstat`) of every recorded file under the prefixes.
//! 3. For what `lstat` found: the digest of a regular file in the algorithm its package names
//!    ([`FactRequest::Hash`]), and the `Stat` of `path/` where RPM expects a directory and
//!    finds a symlink (rpm follows those).
//!
//! RPM's semantics are `keyhole_rpmdb::verify`'s, i.e. `rpm -V --noghost --nomtime --nordev`:
//! digest, size, mode, owner, group and symlink target; `%ghost` files skipped; `%config`
//! files marked ([`CheckedFile::config`]) so that a profile reports them apart. apk records a
//! SHA-1 (`Z:Q1…`, base64) of each file's content (of a symlink's target text for a symlink)
//! and, when it differs from the default, its owner and mode (`a:uid:gid:mode`).
//!
//! Every source answers through [`verify`]; the shell script answers steps 2 and 3 from one walk
//! of the prefixes (see [`crate::ShellScript`]), so a file it did not see is "not gathered",
//! never a pass.

use keyhole_rpmdb::verify::{
    Accounts, FileClass, Ghosts, Mismatch, Observation, Observed, expects_directory, is_verified,
    needs_digest, verify_file,
};
use keyhole_rpmdb::{DigestAlgo, Package as RpmPackage, VerifyFlags};
use sha1::Digest as _;

use crate::facts::{
    Attribute, CheckedFile, FactError, FactRequest, FactValue, FileKind, FileMeta, FileStatus,
    HashAlgo, IntegrityReport, ManagedSpec, PackageManager, TargetPath,
};
use crate::integrity::{Ask, HASH_MAX};
use crate::matcher::show_bytes;

/// apk's database of installed packages.
pub(crate) const APK_INSTALLED: &str = "/lib/apk/db/installed";
/// Largest apk database read whole.
pub(crate) const APK_DB_MAX: u64 = 64 << 20;
/// Largest RPM database read (a UBI 9 image's is a few MiB, a full Fedora workstation's about
/// 200 MiB); a larger one is an error ("larger than the bytes read"), never a partial list.
pub(crate) const RPM_DB_MAX: u64 = 256 << 20;
/// The account files rpm matches owners with.
pub(crate) const PASSWD: &str = "/etc/passwd";
/// See [`PASSWD`].
pub(crate) const GROUP: &str = "/etc/group";
/// Largest account file read.
pub(crate) const ACCOUNTS_MAX: u64 = 4 << 20;
/// The name of the pseudo-packages that hold rpm's imported signing keys (they own no file).
pub(crate) const GPG_PUBKEY: &str = "gpg-pubkey";

/// The bounds of the shell script's walk of each prefix (it examines every entry, and hashes
/// every regular file in each algorithm: longer than a plain walk).
pub(crate) const SCRIPT_WALK: crate::facts::WalkLimits = crate::facts::WalkLimits {
    max_depth: 32,
    max_entries: 500_000,
    max_millis: 600_000,
    same_filesystem: true,
};

fn read(p: &str, max_bytes: u64) -> FactRequest {
    FactRequest::Read {
        path: TargetPath::new(p).expect("an absolute constant path"),
        max_bytes,
    }
}

/// The reads of every place rpm may keep its database ([`keyhole_rpmdb::DB_PATHS`]), each
/// followed by its SQLite write-ahead log when it is an `rpmdb.sqlite`.
pub(crate) fn rpm_db_requests() -> Vec<FactRequest> {
    let mut all = Vec::new();
    for p in keyhole_rpmdb::DB_PATHS {
        all.push(read(p, RPM_DB_MAX));
        if p.ends_with(keyhole_rpmdb::SQLITE_FILE) {
            all.push(read(&format!("{p}-wal"), RPM_DB_MAX));
        }
    }
    all
}

/// The read of apk's database.
pub(crate) fn apk_db_request() -> FactRequest {
    read(APK_INSTALLED, APK_DB_MAX)
}

/// The reads of `/etc/passwd` and `/etc/group`.
pub(crate) fn account_requests() -> [FactRequest; 2] {
    [read(PASSWD, ACCOUNTS_MAX), read(GROUP, ACCOUNTS_MAX)]
}

/// The reads of the first batch of `spec` (the database, and the accounts for RPM): every
/// source must be able to answer them; the shell script answers them from the plan's own
/// top-level reads, which the `package_integrity` resource adds.
pub(crate) fn first_batch(manager: PackageManager) -> Vec<FactRequest> {
    match manager {
        PackageManager::Rpm => {
            let mut all = rpm_db_requests();
            all.extend(account_requests());
            all
        }
        PackageManager::Apk => vec![apk_db_request()],
    }
}

/// The request for the digest of `path` in `algo`.
pub(crate) fn hash_request(path: TargetPath, algo: HashAlgo) -> FactRequest {
    FactRequest::Hash {
        path,
        algo,
        max_bytes: HASH_MAX,
    }
}

impl ManagedSpec {
    /// Answers this [`FactRequest::ManagedIntegrity`] from primitive answers, as every fact
    /// source does: `ask` answers each batch of requests in order (see the module
    /// documentation). No database is the answer's error (`NotFound`: not an RPM- or apk-based
    /// target); a database that cannot be read whole or parsed is an error too, never a pass
    /// over no files.
    ///
    /// # Errors
    /// The database's error.
    pub fn verify<F>(&self, mut ask: F) -> Result<IntegrityReport, FactError>
    where
        F: FnMut(&[FactRequest]) -> Vec<Result<FactValue, FactError>>,
    {
        verify(self, &mut ask)
    }
}

/// Answers `spec` by asking `ask` (see [`ManagedSpec::verify`]).
pub(crate) fn verify(spec: &ManagedSpec, ask: &mut Ask<'_>) -> Result<IntegrityReport, FactError> {
    match spec.manager {
        PackageManager::Rpm => rpm(spec, ask),
        PackageManager::Apk => apk(spec, ask),
    }
}

/// Whether `path` is under one of the prefixes.
fn wanted(spec: &ManagedSpec, path: &TargetPath) -> bool {
    spec.prefixes
        .iter()
        .any(|pre| path.as_bytes().starts_with(pre.as_bytes()))
}

/// The bytes of a whole file answered to `r`; `Ok(None)` when it does not exist.
fn whole(
    r: &FactRequest,
    answer: Option<Result<FactValue, FactError>>,
) -> Result<Option<Vec<u8>>, FactError> {
    match answer {
        Some(Ok(FactValue::Content(c))) if c.truncated => Err(FactError::Io(format!(
            "{} is larger than the {} bytes read",
            what(r),
            c.bytes.len()
        ))),
        Some(Ok(FactValue::Content(c))) => Ok(Some(c.bytes)),
        Some(Err(FactError::NotFound)) => Ok(None),
        Some(Err(e)) => Err(FactError::Io(format!("{}: {e}", what(r)))),
        Some(Ok(_)) => Err(wrong_answer()),
        None => Err(FactError::Io(format!("{} was not gathered", what(r)))),
    }
}

fn what(r: &FactRequest) -> String {
    match r {
        FactRequest::Read { path, .. } => show_bytes(path.as_bytes()),
        other => format!("{other:?}"),
    }
}

fn wrong_answer() -> FactError {
    FactError::Io("a fact source answered with the wrong kind of fact".into())
}

/// The packages of the first RPM database of `answers` (to [`rpm_db_requests`]).
fn rpm_packages(
    requests: &[FactRequest],
    answers: Vec<Result<FactValue, FactError>>,
) -> Result<Vec<RpmPackage>, FactError> {
    let mut answers = answers.into_iter();
    let mut rest = requests.iter().peekable();
    while let Some(r) = rest.next() {
        let db = whole(r, answers.next())?;
        let wal = match rest.peek() {
            Some(FactRequest::Read { path, .. }) if path.as_bytes().ends_with(b"-wal") => {
                let w = rest.next().expect("peeked");
                whole(w, answers.next())?
            }
            _ => None,
        };
        let Some(db) = db else { continue };
        let limits = keyhole_rpmdb::Limits {
            max_db_bytes: RPM_DB_MAX,
            ..keyhole_rpmdb::Limits::default()
        };
        let read = match wal {
            Some(w) => keyhole_rpmdb::read_database_with_wal(&db, &w, &limits),
            None => keyhole_rpmdb::read_database(&db, &limits),
        };
        return read.map_err(|e| FactError::Io(format!("{}: {e}", what(r))));
    }
    Err(FactError::NotFound)
}

/// The `st_mode` type bits of a kind.
fn type_bits(kind: FileKind) -> u32 {
    match kind {
        FileKind::File => 0o100_000,
        FileKind::Directory => 0o040_000,
        FileKind::Symlink => 0o120_000,
        FileKind::Fifo => 0o010_000,
        FileKind::Socket => 0o140_000,
        FileKind::CharDevice => 0o020_000,
        FileKind::BlockDevice => 0o060_000,
    }
}

/// The algorithm of RPM's digests, when the facts can compute it.
fn rpm_algo(algo: DigestAlgo) -> Option<HashAlgo> {
    Some(match algo {
        DigestAlgo::Md5 => HashAlgo::Md5,
        DigestAlgo::Sha1 => HashAlgo::Sha1,
        DigestAlgo::Sha224 => HashAlgo::Sha224,
        DigestAlgo::Sha256 => HashAlgo::Sha256,
        DigestAlgo::Sha384 => HashAlgo::Sha384,
        DigestAlgo::Sha512 => HashAlgo::Sha512,
        DigestAlgo::Other(_) => return None,
    })
}

/// Why a digest in `algo` is not asked for, if it is not.
fn not_computed(spec: &ManagedSpec, algo: Option<HashAlgo>, raw: &str) -> Option<FactError> {
    match algo {
        Some(a) if spec.algorithms.contains(&a) => None,
        Some(a) => Some(FactError::Io(format!(
            "{} digests are not computed (add `{}` to `digests`)",
            a.name(),
            a.name()
        ))),
        None => Some(FactError::Io(format!(
            "the digest algorithm {raw} is not supported"
        ))),
    }
}

/// Answers to `requests`, looked up by request after a batch.
struct Answers {
    requests: Vec<FactRequest>,
    answers: Vec<Result<FactValue, FactError>>,
}

impl Answers {
    /// Asks `requests` (sorted and deduplicated first) in one batch.
    fn ask(ask: &mut Ask<'_>, mut requests: Vec<FactRequest>) -> Self {
        requests.sort_unstable();
        requests.dedup();
        let answers = if requests.is_empty() {
            Vec::new()
        } else {
            ask(&requests)
        };
        Self { requests, answers }
    }

    fn get(&self, r: &FactRequest) -> Result<&FactValue, FactError> {
        match self
            .requests
            .binary_search(r)
            .ok()
            .and_then(|i| self.answers.get(i))
        {
            Some(Ok(v)) => Ok(v),
            Some(Err(e)) => Err(e.clone()),
            None => Err(FactError::Io("not gathered".into())),
        }
    }

    fn meta(&self, r: &FactRequest) -> Result<&FileMeta, FactError> {
        match self.get(r)? {
            FactValue::Meta(m) => Ok(m),
            _ => Err(wrong_answer()),
        }
    }

    fn hash(&self, r: &FactRequest) -> Result<&[u8], FactError> {
        match self.get(r)? {
            FactValue::Hash(h) => Ok(h),
            _ => Err(wrong_answer()),
        }
    }
}

/// One RPM file to verify.
struct RpmListed {
    /// Index of its package.
    package: usize,
    /// Index of the file in the package.
    file: usize,
    path: TargetPath,
}

fn rpm(spec: &ManagedSpec, ask: &mut Ask<'_>) -> Result<IntegrityReport, FactError> {
    let db = rpm_db_requests();
    let mut first = db.clone();
    first.extend(account_requests());
    let mut answers = ask(&first);
    let accounts: Vec<_> = answers.split_off(db.len());
    let packages = rpm_packages(&db, answers)?;
    let mut report = IntegrityReport::default();
    let account_bytes = |i: usize, r: &FactRequest| match accounts.get(i) {
        Some(Ok(FactValue::Content(c))) => {
            if c.truncated {
                report_note(format!("{} is larger than {ACCOUNTS_MAX} bytes", what(r)))
            } else {
                (c.bytes.clone(), None)
            }
        }
        Some(Err(FactError::NotFound)) => (Vec::new(), None),
        Some(Err(e)) => report_note(format!("{}: {e}", what(r))),
        _ => report_note(format!("{} was not gathered", what(r))),
    };
    let [passwd_r, group_r] = account_requests();
    let (passwd, n1) = account_bytes(0, &passwd_r);
    let (group, n2) = account_bytes(1, &group_r);
    report.incomplete.extend(n1.into_iter().chain(n2));
    let accounts = Accounts::parse(&passwd, &group);

    // The files to verify, in database order.
    let cap = usize::try_from(spec.max_files).unwrap_or(usize::MAX);
    let mut listed = Vec::new();
    'packages: for (pi, p) in packages.iter().enumerate() {
        if p.name == GPG_PUBKEY {
            continue;
        }
        for (fi, (raw, f)) in p.files_with_paths().enumerate() {
            if !is_verified(f, Ghosts::Skip) {
                continue;
            }
            let Some(path) = TargetPath::new(raw) else {
                continue;
            };
            // rpm never records `..` components; a hostile database is not followed outside.
            if path.as_bytes().split(|b| *b == b'/').any(|c| c == b"..") || !wanted(spec, &path) {
                continue;
            }
            if listed.len() == cap {
                report.incomplete.push(format!(
                    "more than {} files to verify; raise `max_files`",
                    spec.max_files
                ));
                break 'packages;
            }
            listed.push(RpmListed {
                package: pi,
                file: fi,
                path,
            });
        }
    }

    let stats = Answers::ask(
        ask,
        listed
            .iter()
            .map(|l| FactRequest::Stat(l.path.clone()))
            .collect(),
    );
    // What lstat found decides the third batch: a symlink where a directory is expected is
    // followed; a regular file is hashed if rpm would hash it.
    let mut third = Vec::new();
    for l in &listed {
        let p = &packages[l.package];
        let f = &p.files[l.file];
        let Ok(m) = stats.meta(&FactRequest::Stat(l.path.clone())) else {
            continue;
        };
        let mode = type_bits(m.kind) | m.mode;
        if m.kind == FileKind::Symlink && expects_directory(f) {
            if let Some(dir) = followed(&l.path) {
                third.push(FactRequest::Stat(dir));
            }
        } else if m.kind == FileKind::File && needs_digest(&relaxed(f), mode) {
            let algo = rpm_algo(p.digest_algo);
            if not_computed(spec, algo, "").is_none() {
                third.push(hash_request(l.path.clone(), algo.expect("computed")));
            }
        }
    }
    let third = Answers::ask(ask, third);

    for l in listed {
        let p = &packages[l.package];
        let f = relaxed(&p.files[l.file]);
        let config = FileClass::of(&f) == FileClass::Config;
        let status = match rpm_observe(spec, p, &f, &l.path, &stats, &third) {
            Err(e) => (FileStatus::Unverified(e), Vec::new()),
            Ok(observation) => match verify_file(p, &f, &observation, &accounts, Ghosts::Skip) {
                None => (FileStatus::Unchanged, Vec::new()),
                Some(finding) if finding.missing => (FileStatus::Missing, Vec::new()),
                Some(finding) => (FileStatus::Changed, differs(finding.mismatch)),
            },
        };
        report.files.push(CheckedFile {
            package: p.name.clone(),
            path: l.path,
            status: status.0,
            config,
            differs: status.1,
        });
    }
    Ok(report)
}

/// `(empty bytes, a note)`: an account file that could not be used.
fn report_note(note: String) -> (Vec<u8>, Option<String>) {
    (Vec::new(), Some(note))
}

/// `path/`: the path with its last component followed.
fn followed(path: &TargetPath) -> Option<TargetPath> {
    TargetPath::new([path.as_bytes(), b"/"].concat())
}

/// The file with what the facts do not gather left unchecked: the modification time (image
/// layers reset it), device numbers and capabilities (`rpm -V --nomtime --nordev --nocaps`).
fn relaxed(f: &keyhole_rpmdb::PackageFile) -> keyhole_rpmdb::PackageFile {
    let mut f = f.clone();
    f.verify =
        VerifyFlags(f.verify.0 & !(VerifyFlags::MTIME | VerifyFlags::RDEV | VerifyFlags::CAPS));
    f
}

/// What the answers say about `f` at `path`, as `keyhole_rpmdb::verify` takes it; an error
/// when it cannot be known (the file is then unverified).
fn rpm_observe(
    spec: &ManagedSpec,
    p: &RpmPackage,
    f: &keyhole_rpmdb::PackageFile,
    path: &TargetPath,
    stats: &Answers,
    third: &Answers,
) -> Result<Observation, FactError> {
    let mut m = match stats.meta(&FactRequest::Stat(path.clone())) {
        Ok(m) => m.clone(),
        Err(FactError::NotFound) => return Ok(Observation::Missing),
        Err(e) => return Err(e),
    };
    if m.kind == FileKind::Symlink && expects_directory(f) {
        // rpm follows a symlink where it expects a directory (and judges the link itself when
        // it does not lead to one).
        if let Some(dir) = followed(path) {
            match third.meta(&FactRequest::Stat(dir)) {
                Ok(d) if d.kind == FileKind::Directory => m = d.clone(),
                Ok(_) | Err(FactError::NotFound | FactError::WrongKind { .. }) => {}
                Err(FactError::Loop | FactError::Escape) => {}
                Err(e) => return Err(e),
            }
        }
    }
    let mode = type_bits(m.kind) | m.mode;
    let digest = if m.kind == FileKind::File && needs_digest(f, mode) {
        let algo = rpm_algo(p.digest_algo);
        if let Some(e) = not_computed(spec, algo, &format!("#{}", p.digest_algo.pgp())) {
            return Err(e);
        }
        let h = third.hash(&hash_request(path.clone(), algo.expect("computed")))?;
        Some((h.to_vec(), m.size))
    } else {
        None
    };
    Ok(Observation::Found(Observed {
        mode,
        uid: m.uid,
        gid: m.gid,
        size: m.size,
        // Not gathered, and not checked (see `relaxed`).
        mtime: i64::from(f.mtime),
        rdev: 0,
        link_target: m.link_target.clone(),
        digest,
    }))
}

/// The attributes of rpm's mismatch bits.
fn differs(m: Mismatch) -> Vec<Attribute> {
    [
        (VerifyFlags::DIGEST, Attribute::Digest),
        (VerifyFlags::SIZE, Attribute::Size),
        (VerifyFlags::MODE, Attribute::Mode),
        (VerifyFlags::USER, Attribute::Owner),
        (VerifyFlags::GROUP, Attribute::Group),
        (VerifyFlags::LINKTO, Attribute::LinkTarget),
    ]
    .into_iter()
    .filter(|(bit, _)| m.0 & bit != 0)
    .map(|(_, a)| a)
    .collect()
}

/// One file of apk's database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApkFile {
    /// Its package (`P:`).
    pub(crate) package: String,
    /// Its path (`/` + `F:` + `/` + `R:`).
    pub(crate) path: Vec<u8>,
    /// `Z:`: the algorithm and the digest, or why it could not be decoded.
    pub(crate) digest: Option<Result<(HashAlgo, Vec<u8>), String>>,
    /// `a:`: uid, gid and permission bits, when recorded.
    pub(crate) acl: Option<(u32, u32, u32)>,
}

/// The files of apk's installed database, in order. Lines are `<letter>:<value>`; a stanza
/// (package) ends with an empty line; `F:` sets the directory of the `R:` files that follow,
/// `Z:` and `a:` describe the last `R:`. Malformed lines are skipped; a `Z:` that cannot be
/// decoded is kept as the file's error (never a pass).
pub(crate) fn apk_files(db: &[u8]) -> Vec<ApkFile> {
    let mut out: Vec<ApkFile> = Vec::new();
    let mut package = String::new();
    let mut dir: Option<Vec<u8>> = None;
    // Whether the last entry of `out` is the current stanza's last `R:`.
    let mut current = false;
    for line in db.split(|&b| b == b'\n') {
        if line.is_empty() {
            package.clear();
            dir = None;
            current = false;
            continue;
        }
        let (key, value) = match line {
            [k, b':', v @ ..] => (*k, v),
            _ => continue,
        };
        match key {
            b'P' => {
                package = String::from_utf8_lossy(value).into_owned();
                current = false;
            }
            b'F' => {
                dir = Some(value.to_vec());
                current = false;
            }
            b'R' => {
                let mut path = b"/".to_vec();
                if let Some(d) = dir.as_deref().filter(|d| !d.is_empty()) {
                    path.extend_from_slice(d);
                    path.push(b'/');
                }
                path.extend_from_slice(value);
                out.push(ApkFile {
                    package: package.clone(),
                    path,
                    digest: None,
                    acl: None,
                });
                current = true;
            }
            b'Z' if current => {
                let last = out.last_mut().expect("current");
                last.digest = Some(apk_checksum(value));
            }
            b'a' if current => {
                let last = out.last_mut().expect("current");
                last.acl = apk_acl(value);
            }
            _ => {}
        }
    }
    out
}

/// `Q1<base64 SHA-1>` or `Q2<base64 SHA-256>`.
fn apk_checksum(v: &[u8]) -> Result<(HashAlgo, Vec<u8>), String> {
    let (algo, b64) = match v {
        [b'Q', b'1', rest @ ..] => (HashAlgo::Sha1, rest),
        [b'Q', b'2', rest @ ..] => (HashAlgo::Sha256, rest),
        _ => {
            return Err(format!(
                "unknown checksum format {:?} in the apk database",
                String::from_utf8_lossy(&v[..v.len().min(8)])
            ));
        }
    };
    match base64(b64) {
        Some(d) if d.len() == algo.digest_len() => Ok((algo, d)),
        _ => Err("malformed checksum in the apk database".into()),
    }
}

/// `uid:gid:mode` (mode in octal).
fn apk_acl(v: &[u8]) -> Option<(u32, u32, u32)> {
    let s = std::str::from_utf8(v).ok()?;
    let mut it = s.split(':');
    let uid = it.next()?.parse().ok()?;
    let gid = it.next()?.parse().ok()?;
    let mode = u32::from_str_radix(it.next()?, 8).ok()?;
    (it.next().is_none() && mode <= 0o7777).then_some((uid, gid, mode))
}

/// Standard base64 with padding; `None` for anything else.
fn base64(s: &[u8]) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(4) {
        return None;
    }
    let val = |c: u8| -> Option<u32> {
        Some(u32::from(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        }))
    };
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let chunks = s.len() / 4;
    for (i, q) in s.chunks_exact(4).enumerate() {
        let pad = if i + 1 == chunks {
            q.iter().rev().take_while(|&&c| c == b'=').count()
        } else {
            0
        };
        if pad > 2 {
            return None;
        }
        let mut n = 0u32;
        for &c in &q[..4 - pad] {
            n = n << 6 | val(c)?;
        }
        n <<= 6 * pad as u32;
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..4 - pad]);
    }
    Some(out)
}

fn apk(spec: &ManagedSpec, ask: &mut Ask<'_>) -> Result<IntegrityReport, FactError> {
    let r = apk_db_request();
    let answer = ask(std::slice::from_ref(&r)).pop();
    let db = whole(&r, answer)?.ok_or(FactError::NotFound)?;
    let mut report = IntegrityReport::default();
    let cap = usize::try_from(spec.max_files).unwrap_or(usize::MAX);
    let mut listed = Vec::new();
    for f in apk_files(&db) {
        let Some(path) = TargetPath::new(f.path.clone()) else {
            continue;
        };
        // apk never records `..` components; a hostile database is not followed outside.
        if path.as_bytes().split(|b| *b == b'/').any(|c| c == b"..") || !wanted(spec, &path) {
            continue;
        }
        if listed.len() == cap {
            report.incomplete.push(format!(
                "more than {} files to verify; raise `max_files`",
                spec.max_files
            ));
            break;
        }
        listed.push((path, f));
    }
    let stats = Answers::ask(
        ask,
        listed
            .iter()
            .map(|(p, _)| FactRequest::Stat(p.clone()))
            .collect(),
    );
    let mut hashes = Vec::new();
    for (path, f) in &listed {
        if let (Ok(m), Some(Ok((algo, _)))) =
            (stats.meta(&FactRequest::Stat(path.clone())), &f.digest)
            && m.kind == FileKind::File
            && spec.algorithms.contains(algo)
        {
            hashes.push(hash_request(path.clone(), *algo));
        }
    }
    let hashes = Answers::ask(ask, hashes);
    for (path, f) in listed {
        let (status, differs) = match apk_check(spec, &f, &path, &stats, &hashes) {
            Ok(d) if d.is_empty() => (FileStatus::Unchanged, d),
            Ok(d) => (FileStatus::Changed, d),
            Err(FactError::NotFound) => (FileStatus::Missing, Vec::new()),
            Err(e) => (FileStatus::Unverified(e), Vec::new()),
        };
        report.files.push(CheckedFile {
            package: f.package,
            path,
            status,
            config: false,
            differs,
        });
    }
    Ok(report)
}

/// What differs for apk file `f` (empty: it verifies); `NotFound` when it is missing, another
/// error when it cannot be verified.
fn apk_check(
    spec: &ManagedSpec,
    f: &ApkFile,
    path: &TargetPath,
    stats: &Answers,
    hashes: &Answers,
) -> Result<Vec<Attribute>, FactError> {
    let m = stats.meta(&FactRequest::Stat(path.clone()))?;
    let mut out = Vec::new();
    match m.kind {
        FileKind::File | FileKind::Symlink => {}
        // apk records regular files and symlinks only.
        _ => return Ok(vec![Attribute::Mode]),
    }
    if let Some((uid, gid, mode)) = f.acl {
        // A symlink's own mode means nothing.
        if m.kind == FileKind::File && m.mode != mode {
            out.push(Attribute::Mode);
        }
        if m.uid != uid {
            out.push(Attribute::Owner);
        }
        if m.gid != gid {
            out.push(Attribute::Group);
        }
    }
    match &f.digest {
        None => {}
        Some(Err(e)) => return Err(FactError::Io(e.clone())),
        Some(Ok((algo, want))) => {
            let got = match m.kind {
                // apk's checksum of a symlink is that of its target's text.
                FileKind::Symlink => {
                    let text = m.link_target.as_deref().unwrap_or_default();
                    match algo {
                        HashAlgo::Sha1 => sha1::Sha1::digest(text).to_vec(),
                        _ => sha2::Sha256::digest(text).to_vec(),
                    }
                }
                _ => {
                    if let Some(e) = not_computed(spec, Some(*algo), "") {
                        return Err(e);
                    }
                    hashes.hash(&hash_request(path.clone(), *algo))?.to_vec()
                }
            };
            if got != *want {
                let at = out
                    .iter()
                    .position(|a| *a > Attribute::Digest)
                    .unwrap_or(out.len());
                out.insert(at, Attribute::Digest);
            }
        }
    }
    out.sort_unstable();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes_standard_padding_only() {
        assert_eq!(base64(b"").unwrap(), b"");
        assert_eq!(base64(b"Zg==").unwrap(), b"f");
        assert_eq!(base64(b"Zm8=").unwrap(), b"fo");
        assert_eq!(base64(b"Zm9v").unwrap(), b"foo");
        assert_eq!(base64(b"Zm9vYmFy").unwrap(), b"foobar");
        assert_eq!(base64(b"Zm9"), None);
        assert_eq!(base64(b"Z==="), None);
        assert_eq!(base64(b"Zg==Zm9v"), None);
        assert_eq!(base64(b"Zm9*"), None);
    }

    #[test]
    fn apk_stanzas_give_files_with_their_checksums_and_owners() {
        let db = b"C:Q1abc=\nP:busybox\nV:1.36\nF:bin\nR:busybox\na:0:0:755\n\
Z:Q1AAAAAAAAAAAAAAAAAAAAAAAAAAA=\nR:sh\nZ:Q1bad\nF:etc\nM:0:0:755\nR:motd\n\n\
P:other\nR:top\nZ:X1zzz\n";
        let files = apk_files(db);
        type Row<'a> = (&'a str, &'a [u8], bool, Option<(u32, u32, u32)>);
        let got: Vec<Row<'_>> = files
            .iter()
            .map(|f| {
                (
                    f.package.as_str(),
                    f.path.as_slice(),
                    matches!(f.digest, Some(Ok(_))),
                    f.acl,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("busybox", &b"/bin/busybox"[..], true, Some((0, 0, 0o755))),
                ("busybox", b"/bin/sh", false, None),
                ("busybox", b"/etc/motd", false, None),
                ("other", b"/top", false, None),
            ]
        );
        assert_eq!(files[0].digest, Some(Ok((HashAlgo::Sha1, vec![0; 20]))));
        assert!(matches!(&files[1].digest, Some(Err(e)) if e.contains("malformed")));
        assert_eq!(files[2].digest, None);
        assert!(matches!(&files[3].digest, Some(Err(e)) if e.contains("unknown")));
    }
}
