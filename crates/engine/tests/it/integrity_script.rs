//! `FactRequest::PackageIntegrity` from the `ShellScript`: on a dpkg database built to be
//! hostile (changed, missing, special and escaping files, names with spaces, newlines and
//! non-UTF-8 bytes, hidden and oddly sorting lists, a list cut by the size cap, prefixes with
//! glob metacharacters), dash and busybox `sh` give exactly the report `LocalRoot` gives; and
//! whatever the script leaves out or damages is reported as not verified, never as a pass.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::Path;

use keyhole_engine::{
    FactError, FactPlan, FactRequest, FactSource, FactValue, Facts, FileStatus, IntegrityReport,
    IntegritySpec, LocalRoot, ShellScript,
};

use crate::source_fixtures::{answer, shells, tp, within};

/// The engine's cap on one `*.md5sums` list read (a larger one is used up to its last line).
const MD5SUMS_MAX: u64 = 1 << 20;
/// The engine's cap on one file hashed.
const HASH_MAX: u64 = 1 << 30;

/// The script through a prefix, with no process.
fn prefixed(root: &Path) -> ShellScript {
    ShellScript::in_container()
        .with_root_prefix(root)
        .expect("absolute prefix")
        .with_pid(None)
}

fn md5_hex(bytes: &[u8]) -> String {
    use md5::Digest;
    md5::Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `bytes` at `rel` below `root`, with its parent directories.
fn put(root: &Path, rel: &[u8], bytes: &[u8]) {
    let path = root.join(std::ffi::OsStr::from_bytes(rel));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn mkfifo(path: &Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
}

/// One md5sums line: the digest of `bytes` (or `hex` itself), the separator, the path.
fn line(hex: &str, sep: &str, rel: &[u8]) -> Vec<u8> {
    [hex.as_bytes(), sep.as_bytes(), rel, b"\n"].concat()
}

/// The prefix with glob metacharacters, and the directory under it.
const GLOB_PREFIX: &[u8] = b"/opt/[x]*/";
/// A prefix with a backslash and `?`.
const ODD_PREFIX: &[u8] = b"/odd\\*?/";

/// A root filesystem with a hostile `/var/lib/dpkg/info` (and a NUL in a path if `with_nul`).
fn hostile_dpkg(root: &Path, with_nul: bool) {
    let info = b"var/lib/dpkg/info/".to_vec();
    let list = |name: &[u8], lines: &[Vec<u8>]| {
        put(root, &[&info[..], name].concat(), &lines.concat());
    };
    let ok = |rel: &[u8], bytes: &[u8]| {
        put(root, rel, bytes);
        line(&md5_hex(bytes), "  ", rel)
    };
    let ok_sep = |rel: &[u8], bytes: &[u8], sep: &str| {
        put(root, rel, bytes);
        line(&md5_hex(bytes), sep, rel)
    };
    let wrong = md5_hex(b"something else");
    put(root, b"etc/secret", b"inside the root");
    std::fs::create_dir_all(root.join("usr/bin/dir")).unwrap();
    mkfifo(&root.join("usr/bin/fifo"));
    symlink(
        "../../../../../../etc/secret",
        root.join("usr/bin/escape-rel"),
    )
    .unwrap();
    symlink("/etc/secret", root.join("usr/bin/escape-abs")).unwrap();
    symlink("/nowhere/at/all", root.join("usr/bin/dangling")).unwrap();
    symlink("fifo", root.join("usr/bin/to-fifo")).unwrap();
    // A sparse file larger than the hash bound: never read.
    let big = std::fs::File::create(root.join("usr/bin/huge")).unwrap();
    big.set_len(HASH_MAX + 1).unwrap();
    let secret = md5_hex(b"inside the root");

    list(
        b"app.md5sums",
        &[
            ok(b"usr/bin/same", b"same"),
            line(&wrong, "  ", b"usr/bin/changed"),
            {
                put(root, b"usr/bin/changed", b"changed");
                Vec::new()
            },
            line(&wrong, "  ", b"usr/bin/gone"),
            line(&wrong, "  ", b"usr/bin/fifo"),
            line(&wrong, "  ", b"usr/bin/to-fifo"),
            line(&wrong, "  ", b"usr/bin/dir"),
            line(&wrong, "  ", b"usr/bin/dangling"),
            line(&wrong, "  ", b"usr/bin/huge"),
            line(&secret, "  ", b"usr/bin/escape-rel"),
            line(&secret, "  ", b"usr/bin/escape-abs"),
            line(&secret, "  ", b"usr/bin/../../etc/secret"),
            line(&secret, "  ", b"usr/bin/.."),
            ok(b"usr/bin/with space", b"spaced"),
            ok(b"usr/bin/two  spaces ", b"two spaces"),
            // One space only, and three (the path then starts with a space).
            ok_sep(b"usr/bin/one-space", b"one", " "),
            ok_sep(b"usr/bin/three-spaces", b"three", "   "),
            ok(b"usr/bin/\xff\xfe latin1 \xe9", b"latin1"),
            ok(b"usr/bin/cr\r", b"carriage return"),
            ok(b"usr/bin/$(touch pwned)", b"dollar"),
            ok(b"usr/bin/`touch pwned`;'\"", b"quotes"),
            ok(b"usr/bin/-n", b"dash n"),
            ok(b"usr/bin/*", b"star"),
            ok(b"usr/share/doc/app/README", b"not under a prefix"),
            ok(b"usr/bin//double//slash", b"double"),
            ok(b"usr/bin/./dot", b"dot"),
            // Upper-case digits, and the `+` that u8::from_str_radix takes as a sign.
            ok(b"usr/bin/upper", b"upper").to_ascii_uppercase()[..32]
                .iter()
                .copied()
                .chain(b"  usr/bin/upper\n".iter().copied())
                .collect(),
            line(&"+f".repeat(16), "  ", b"usr/bin/plus"),
            {
                put(root, b"usr/bin/plus", b"plus");
                Vec::new()
            },
            // Malformed lines: skipped by both.
            line(&wrong[..31], "  ", b"usr/bin/short"),
            line(&wrong, "\t", b"usr/bin/tab"),
            line(&wrong, "", b"usr/bin/nospace"),
            line(&format!("{}zz", &wrong[..30]), "  ", b"usr/bin/notahex"),
            line(&wrong, "  ", b""),
            line(&wrong, " ", b" "),
            b"\n\n\r\n".to_vec(),
            // A NUL in a path: the Rust side skips it; `sh` drops the NUL (and hashes
            // /usr/bin/nul, an answer nobody asks for).
            if with_nul {
                line(&wrong, "  ", b"usr/bin/n\0ul")
            } else {
                Vec::new()
            },
            {
                put(root, b"usr/bin/nul", b"nul");
                Vec::new()
            },
            // Glob metacharacters in the prefix match literally.
            ok(b"opt/[x]*/literal", b"literal"),
            ok(b"opt/xyz/decoy", b"decoy"),
            ok(b"opt/x/decoy", b"decoy"),
            ok(b"odd\\*?/f", b"odd"),
            ok(b"odd\\xy/decoy", b"decoy"),
            ok(b"oddx*?/decoy", b"decoy"),
            // The last line without its newline.
            ok(b"usr/bin/last", b"last")
                .strip_suffix(b"\n")
                .unwrap()
                .to_vec(),
        ],
    );
    // A second list naming a file again (with another digest), with odd names.
    list(
        b"b-pkg.md5sums",
        &[ok(b"usr/bin/b", b"b"), line(&wrong, "  ", b"usr/bin/same")],
    );
    list(
        b"a list with spaces.md5sums",
        &[ok(b"usr/bin/spaced-list", b"sl")],
    );
    list(b"\xff\xfe.md5sums", &[ok(b"usr/bin/latin1-list", b"l1")]);
    list(b"new\nline.md5sums", &[ok(b"usr/bin/newline-list", b"nl")]);
    // Hidden lists sort between "+" and letters; "Z" before "a".
    list(b".hidden.md5sums", &[ok(b"usr/bin/hidden", b"h")]);
    list(b".md5sums", &[ok(b"usr/bin/nameless", b"n")]);
    list(b"..md5sums", &[ok(b"usr/bin/dotdot", b"dd")]);
    list(b"+plus.md5sums", &[ok(b"usr/bin/plus-list", b"pl")]);
    list(b"Zed.md5sums", &[ok(b"usr/bin/zed", b"z")]);
    list(b"-dash.md5sums", &[ok(b"usr/bin/dash-list", b"dl")]);
    list(b"empty.md5sums", &[]);
    // Not lists: a symlink to one, a FIFO, a directory, other files.
    symlink("app.md5sums", root.join("var/lib/dpkg/info/link.md5sums")).unwrap();
    mkfifo(&root.join("var/lib/dpkg/info/fifo.md5sums"));
    std::fs::create_dir_all(root.join("var/lib/dpkg/info/dir.md5sums")).unwrap();
    list(b"app.list", &[b"/usr/bin/same\n".to_vec()]);
    list(b"app.md5sums.bak", &[ok(b"usr/bin/bak", b"bak")]);
    // Larger than the read bound: the line cut by it must not be used.
    let filler = line(
        &wrong,
        "  ",
        b"usr/share/doc/filler/abcdefghijklmnopqrstuvwxyz",
    );
    let mut big = Vec::new();
    while big.len() + filler.len() <= MD5SUMS_MAX as usize - 10 {
        big.extend_from_slice(&filler);
    }
    big.extend_from_slice(&ok(b"usr/bin/cut-here-and-more", b"cut"));
    assert!(big.len() > MD5SUMS_MAX as usize);
    put(root, b"usr/bin/cut", b"cut");
    put(root, &[&info[..], b"big.md5sums"].concat(), &big);
}

fn spec(prefixes: &[&[u8]], max_packages: u64, max_files: u64) -> IntegritySpec {
    IntegritySpec {
        lists: tp("/var/lib/dpkg/info"),
        prefixes: prefixes.iter().map(tp).collect(),
        max_packages,
        max_files,
    }
}

fn report(facts: &Facts, spec: &IntegritySpec) -> Result<IntegrityReport, FactError> {
    match answer(facts, &FactRequest::PackageIntegrity(spec.clone())) {
        Ok(FactValue::Integrity(r)) => Ok(r.clone()),
        Ok(other) => panic!("{other:?}"),
        Err(e) => Err(e.clone()),
    }
}

/// Runs the plan with LocalRoot and with both shells, and asserts every integrity answer is
/// the same; returns LocalRoot's facts.
fn same_everywhere(root: &Path, specs: &[IntegritySpec]) -> Facts {
    let mut plan = FactPlan::new();
    for s in specs {
        plan.add(FactRequest::PackageIntegrity(s.clone()));
    }
    let local = LocalRoot::directory(root).unwrap().gather(&plan);
    for (name, shell) in shells() {
        let script = prefixed(root);
        let plan = plan.clone();
        let facts = within(300, name, move || script.run_local(&plan, shell).unwrap());
        for s in specs {
            assert_eq!(report(&facts, s), report(&local, s), "{name}: {s:?}");
        }
    }
    assert!(!root.join("pwned").exists(), "a name was executed");
    local
}

fn status_of<'a>(r: &'a IntegrityReport, path: &[u8]) -> Vec<&'a FileStatus> {
    r.files
        .iter()
        .filter(|f| f.path.as_bytes() == path)
        .map(|f| &f.status)
        .collect()
}

#[test]
fn the_script_verifies_packages_exactly_as_local_root_does() {
    let dir = tempfile::tempdir().unwrap();
    hostile_dpkg(dir.path(), true);
    let all = spec(&[b"/usr/bin/", GLOB_PREFIX, ODD_PREFIX], 1000, 1000);
    let everything = spec(&[b"/"], 1000, 1000);
    let local = same_everywhere(dir.path(), &[all.clone(), everything]);

    // What the comparison covered (so that an empty report cannot agree with an empty one).
    let r = report(&local, &all).unwrap();
    let st = |p: &[u8]| status_of(&r, p);
    assert_eq!(
        st(b"/usr/bin/same"),
        [&FileStatus::Unchanged, &FileStatus::Changed]
    );
    assert_eq!(st(b"/usr/bin/changed"), [&FileStatus::Changed]);
    assert_eq!(st(b"/usr/bin/gone"), [&FileStatus::Missing]);
    assert_eq!(st(b"/usr/bin/dangling"), [&FileStatus::Missing]);
    let fifo = FileStatus::Unverified(FactError::Special(keyhole_engine::FileKind::Fifo));
    assert_eq!(st(b"/usr/bin/fifo"), [&fifo]);
    assert_eq!(st(b"/usr/bin/to-fifo"), [&fifo]);
    assert!(matches!(
        st(b"/usr/bin/dir")[..],
        [FileStatus::Unverified(FactError::WrongKind { .. })]
    ));
    assert!(matches!(
        st(b"/usr/bin/huge")[..],
        [FileStatus::Unverified(FactError::TooLarge { .. })]
    ));
    assert_eq!(st(b"/usr/bin/escape-rel"), [&FileStatus::Unchanged]);
    assert_eq!(st(b"/usr/bin/escape-abs"), [&FileStatus::Unchanged]);
    assert_eq!(st(b"/usr/bin/../../etc/secret"), Vec::<&FileStatus>::new());
    for p in [
        &b"/usr/bin/with space"[..],
        b"/usr/bin/two  spaces ",
        b"/usr/bin/one-space",
        b"/ usr/bin/three-spaces",
        b"/usr/bin/\xff\xfe latin1 \xe9",
        b"/usr/bin/cr\r",
        b"/usr/bin/$(touch pwned)",
        b"/usr/bin/-n",
        b"/usr/bin/*",
        b"/usr/bin//double//slash",
        b"/usr/bin/./dot",
        b"/usr/bin/upper",
        b"/usr/bin/last",
        b"/opt/[x]*/literal",
        b"/odd\\*?/f",
        b"/usr/bin/spaced-list",
        b"/usr/bin/latin1-list",
        b"/usr/bin/newline-list",
        b"/usr/bin/hidden",
        b"/usr/bin/nameless",
        b"/usr/bin/dotdot",
        b"/usr/bin/plus-list",
    ] {
        let want: &[&FileStatus] = if p == b"/ usr/bin/three-spaces" {
            &[]
        } else {
            &[&FileStatus::Unchanged]
        };
        assert_eq!(st(p), want, "{}", String::from_utf8_lossy(p));
    }
    assert_eq!(st(b"/usr/bin/plus"), [&FileStatus::Changed]);
    for p in [
        &b"/opt/xyz/decoy"[..],
        b"/opt/x/decoy",
        b"/odd\\xy/decoy",
        b"/oddx*?/decoy",
        b"/usr/share/doc/app/README",
        b"/usr/bin/bak",
        b"/usr/bin/cut",
        b"/usr/bin/nul",
    ] {
        assert!(st(p).is_empty(), "{}", String::from_utf8_lossy(p));
    }
    // Lists by name in byte order: "+plus" < "-dash" < ".hidden" < "Zed" < "a list…" < "app".
    let order: Vec<&str> =
        r.files
            .iter()
            .map(|f| f.package.as_str())
            .fold(Vec::new(), |mut v, p| {
                if v.last() != Some(&p) {
                    v.push(p);
                }
                v
            });
    assert_eq!(
        order,
        [
            "+plus",
            "-dash",
            ".",
            ".hidden",
            "",
            "Zed",
            "a list with spaces",
            "app",
            "b-pkg",
            "new\nline",
            "\u{fffd}\u{fffd}"
        ]
    );
    let notes = r.incomplete.join("\n");
    assert!(notes.contains("big.md5sums` is larger than"), "{notes}");
    assert_eq!(r.incomplete.len(), 1, "{notes}");
}

/// The script's own selection of files must be the Rust one: with `max_files` exactly the
/// number of files LocalRoot verifies, one file too many selected by the script (a prefix
/// matched as a pattern, a `..` path, a malformed line, the line cut by the read bound, a list
/// out of order) makes it stop before the last one, which is then not gathered.
#[test]
fn caps_stop_the_script_where_they_stop_local_root() {
    let dir = tempfile::tempdir().unwrap();
    hostile_dpkg(dir.path(), false);
    let prefixes: &[&[u8]] = &[b"/usr/bin/", GLOB_PREFIX, ODD_PREFIX];
    let mut plan = FactPlan::new();
    let everything = spec(prefixes, 1000, 1000);
    plan.add(FactRequest::PackageIntegrity(everything.clone()));
    let local = LocalRoot::directory(dir.path()).unwrap().gather(&plan);
    let total = report(&local, &everything).unwrap().files.len() as u64;
    assert!(total > 30, "{total}");

    // Everything in the lists before big.md5sums.
    let root_nine = spec(&[b"/"], 9, 1000);
    let mut plan = FactPlan::new();
    plan.add(FactRequest::PackageIntegrity(root_nine.clone()));
    let local = LocalRoot::directory(dir.path()).unwrap().gather(&plan);
    let root_total = report(&local, &root_nine).unwrap().files.len() as u64;

    let mut specs = Vec::new();
    for files in [1, 2, 5, total - 1, total, total + 1] {
        specs.push(spec(prefixes, 1000, files));
    }
    for packages in 1..=14 {
        specs.push(spec(prefixes, packages, 1000));
    }
    specs.push(spec(prefixes, 4, 3));
    specs.push(spec(&[], 1000, 1000));
    specs.push(spec(&[b"/usr/bin/same"], 1000, 1));
    specs.push(spec(&[GLOB_PREFIX, ODD_PREFIX], 1000, 2));
    specs.push(spec(&[b"/"], 9, root_total));
    let local = same_everywhere(dir.path(), &specs);
    let r = report(&local, &specs[1]).unwrap();
    assert_eq!(r.files.len(), 2);
    assert!(
        r.incomplete.iter().any(|n| n.contains("more than 2 files")),
        "{:?}",
        r.incomplete
    );
    let r = report(&local, &specs[4]).unwrap();
    assert_eq!(
        (r.files.len() as u64, r.incomplete.len()),
        (total, 1),
        "{r:?}"
    );
    let r = report(&local, &specs[3]).unwrap();
    assert_eq!(r.incomplete.len(), 2, "{r:?}");
    let r = report(&local, &specs[6]).unwrap();
    assert!(
        r.incomplete
            .iter()
            .any(|n| n.contains("more packages than the 1"))
    );
    let r = report(&local, &specs[21]).unwrap();
    assert!(r.files.is_empty() && r.incomplete.len() == 1, "{r:?}");
}

/// A NUL byte in a listed path: the Rust side skips the line, `sh` cannot see the NUL and
/// hashes the path without it. When that extra file uses up `max_files`, the file the Rust side
/// wants last is reported not gathered: unverified, not a pass.
#[test]
fn a_nul_in_a_list_costs_a_file_not_a_pass() {
    let dir = tempfile::tempdir().unwrap();
    hostile_dpkg(dir.path(), true);
    let everything = spec(&[b"/usr/bin/"], 1000, 1000);
    let mut plan = FactPlan::new();
    plan.add(FactRequest::PackageIntegrity(everything.clone()));
    let local = LocalRoot::directory(dir.path()).unwrap().gather(&plan);
    let total = report(&local, &everything).unwrap().files.len() as u64;
    let exact = spec(&[b"/usr/bin/"], 1000, total);
    let mut plan = FactPlan::new();
    plan.add(FactRequest::PackageIntegrity(exact.clone()));
    let local = report(
        &LocalRoot::directory(dir.path()).unwrap().gather(&plan),
        &exact,
    )
    .unwrap();
    for (name, shell) in shells() {
        let script = prefixed(dir.path());
        let plan = plan.clone();
        let facts = within(300, name, move || script.run_local(&plan, shell).unwrap());
        let mut got = report(&facts, &exact).unwrap();
        let last = got.files.pop().unwrap();
        assert_eq!(
            last.status,
            FileStatus::Unverified(FactError::Io("not gathered".into())),
            "{name}"
        );
        assert_ne!(local.files.last().unwrap().status, last.status);
        assert_eq!(
            got.files[..],
            local.files[..local.files.len() - 1],
            "{name}"
        );
        assert_eq!(got.incomplete, local.incomplete, "{name}");
    }
}

#[test]
fn a_target_without_dpkg_answers_not_found_and_a_broken_one_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let s = spec(&[b"/"], 10, 10);
    let local = same_everywhere(dir.path(), std::slice::from_ref(&s));
    assert_eq!(report(&local, &s), Err(FactError::NotFound));
    // The info "directory" is a file.
    put(dir.path(), b"var/lib/dpkg/info", b"not a directory");
    let local = same_everywhere(dir.path(), std::slice::from_ref(&s));
    assert!(matches!(
        report(&local, &s),
        Err(FactError::WrongKind { .. })
    ));
    // Only names sorting before "." and hidden ones.
    std::fs::remove_file(dir.path().join("var/lib/dpkg/info")).unwrap();
    for (name, file) in [
        (&b"+a.md5sums"[..], &b"usr/bin/plus"[..]),
        (b".md5sums", b"usr/bin/none"),
        (b".b.md5sums", b"usr/bin/hidden"),
    ] {
        put(dir.path(), file, file);
        put(
            dir.path(),
            &[&b"var/lib/dpkg/info/"[..], name].concat(),
            &line(&md5_hex(file), "  ", file),
        );
    }
    for max_files in 1..=3 {
        let s = spec(&[b"/usr/"], 10, max_files);
        let local = same_everywhere(dir.path(), std::slice::from_ref(&s));
        assert_eq!(report(&local, &s).unwrap().files.len() as u64, max_files);
    }
    // An info directory reached through an absolute symlink, resolved inside the root.
    std::fs::remove_dir_all(dir.path().join("var/lib/dpkg/info")).unwrap();
    put(
        dir.path(),
        b"real/info/p.md5sums",
        &line(&md5_hex(b"x"), "  ", b"usr/bin/x"),
    );
    put(dir.path(), b"usr/bin/x", b"x");
    symlink("/real/info", dir.path().join("var/lib/dpkg/info")).unwrap();
    let local = same_everywhere(dir.path(), std::slice::from_ref(&s));
    assert_eq!(
        report(&local, &s).unwrap().files[0].status,
        FileStatus::Unchanged
    );
}

/// The output of a script for a plan of one integrity request with the given sub-frames.
fn parse_integrity(s: &IntegritySpec, subs: &str) -> Result<IntegrityReport, FactError> {
    let mut plan = FactPlan::new();
    plan.add(FactRequest::PackageIntegrity(s.clone()));
    let facts = ShellScript::parse(&plan, format!("@B 0\n{subs}@E 0 ok\n").as_bytes());
    report(&facts, s)
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!(" {b:02x}"))
        .collect::<String>()
        + "\n"
}

#[test]
fn what_the_script_does_not_answer_is_not_gathered_and_damage_is_an_error() {
    let s = spec(&[b"/bin/"], 10, 10);
    let d = md5_hex(b"a");
    let listing = format!("@S L\n{}@F ok\n", hex(b"f/p.md5sums/"));
    let names = format!("@S N\n{}@F ok\n", hex(b"p.md5sums/"));
    let list = format!(
        "{names}@S R\n{}@F ok\n",
        hex(format!("{d}  bin/a\n{d}  bin/b\n").as_bytes())
    );
    // Both files answered.
    let both = format!(
        "@S 5\n{}@F ok\n",
        hex(format!("{d} /bin/a\nNotFound /bin/b\n").as_bytes())
    );
    let r = parse_integrity(&s, &format!("{listing}{list}{both}")).unwrap();
    let got: Vec<_> = r.files.iter().map(|f| f.status.clone()).collect();
    assert_eq!(got, [FileStatus::Unchanged, FileStatus::Missing]);
    // One file, or the list, left out: not gathered, never a pass.
    let not_gathered = FileStatus::Unverified(FactError::Io("not gathered".into()));
    let one = format!(
        "@S 5\n{}@F ok\n",
        hex(format!("{d} /bin/a\n{d} /bin/other\n").as_bytes())
    );
    let r = parse_integrity(&s, &format!("{listing}{list}{one}")).unwrap();
    assert_eq!(r.files[1].status, not_gathered);
    let r = parse_integrity(&s, &format!("{listing}{names}{both}")).unwrap();
    assert!(r.files.is_empty());
    assert!(
        r.incomplete[0].ends_with("p.md5sums`: not gathered"),
        "{:?}",
        r.incomplete
    );
    // The answer an error of the listing.
    assert_eq!(
        parse_integrity(&s, "@S L\n@F NotFound\n"),
        Err(FactError::NotFound)
    );
    assert_eq!(
        parse_integrity(&s, ""),
        Err(FactError::Io("not gathered".into()))
    );
    // Damaged sub-frames: the whole answer is an error.
    for damaged in [
        format!("{listing}{names}@S R\n{}", hex(b"x")),
        format!("{listing}{names}@S R\n{}@S 5\n@F ok\n", hex(b"x")),
        format!("{listing}@S R\n{}@F ok\n", hex(b"x")),
        format!("{listing}{names}@S R\n@F ok\n@S R\n@F ok\n"),
        format!("{listing}{names}{names}"),
        format!("{listing}@S N\n{}@F ok\n", hex(b"p.md5sums")),
        format!("{listing}@S N\n{}@F ok\n", hex(b"a//b/")),
        format!("{listing}@S N\n@F NotFound\n"),
        format!("{listing}@S X\n@F ok\n"),
        format!("{listing}@F ok\n"),
        format!("{listing}@S 5\n{}@F ok\n", hex(b"no-newline /bin/a")),
        format!("{listing}@S 5\n{}@F ok\n", hex(b"nospace\n")),
        format!("{listing}@S 5\n{}@F ok\n", hex(b"x relative\n")),
        format!("{listing}@S 5\n{}@F NotFound\n", hex(b"x /bin/a\n")),
        format!("{listing}{names}@S R\n@H {d}\n@F ok\n"),
        format!("{}{listing}", hex(b"x")),
    ] {
        let got = parse_integrity(&s, &damaged);
        assert!(
            matches!(&got, Err(FactError::Io(m)) if m.contains("malformed")),
            "{damaged:?} gave {got:?}"
        );
    }
    // An odd code is an unverified file.
    let odd = format!(
        "@S 5\n{}@F ok\n",
        hex(format!("Fine /bin/a\n{d}x /bin/b\n").as_bytes())
    );
    let r = parse_integrity(&s, &format!("{listing}{list}{odd}")).unwrap();
    assert!(
        r.files
            .iter()
            .all(|f| matches!(f.status, FileStatus::Unverified(FactError::Io(_))))
    );
    // Keys are exact: a digest for another spelling of the path does not count.
    let other = format!(
        "@S 5\n{}@F ok\n",
        hex(format!("{d} /bin//a\n{d} /bin/a/\n").as_bytes())
    );
    let r = parse_integrity(&s, &format!("{listing}{list}{other}")).unwrap();
    assert_eq!(r.files[0].status, not_gathered);
}

/// `stat` and `md5sum` answering a batch out of step with it (as when a file vanishes between
/// the checks and the hashing): wrappers that drop a line of every batch's output, around the
/// GNU tools and the busybox applets (run by dash: busybox `sh` runs its applets without
/// looking at `PATH`). The script notices and asks each file on its own; the answers stay
/// exactly LocalRoot's.
#[test]
fn batch_output_out_of_step_falls_back_file_by_file() {
    let dir = tempfile::tempdir().unwrap();
    hostile_dpkg(dir.path(), false);
    let bin = tempfile::tempdir().unwrap();
    let marker = bin.path().join("used");
    let busybox = crate::source_fixtures::busybox_bin();
    let s = spec(&[b"/usr/bin/", GLOB_PREFIX, ODD_PREFIX], 1000, 1000);
    let mut plan = FactPlan::new();
    plan.add(FactRequest::PackageIntegrity(s.clone()));
    let local = LocalRoot::directory(dir.path()).unwrap().gather(&plan);
    for (name, real, path) in [
        (
            "dash",
            "/usr/bin/",
            "/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
        ),
        (
            "dash with busybox applets",
            "",
            busybox.display().to_string(),
        ),
    ] {
        let wrappers = bin.path().join(name.replace(' ', "-"));
        std::fs::create_dir_all(&wrappers).unwrap();
        // `stat -c %s -- FILE…` loses its first line, `md5sum -- FILE…` its second.
        for (program, fixed_args, drop) in [("stat", 3, "1d"), ("md5sum", 1, "2d")] {
            let real = if real.is_empty() {
                format!("{}/{program}", busybox.display())
            } else {
                format!("{real}{program}")
            };
            let script = format!(
                "#!/bin/sh\nif [ $# -gt {} ]; then : > '{}'; '{real}' \"$@\" | sed '{drop}'; \
                 else exec '{real}' \"$@\"; fi\n",
                fixed_args + 1,
                marker.display(),
            );
            let file = wrappers.join(program);
            std::fs::write(&file, script).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let mut shell = std::process::Command::new("dash");
        shell.env(
            "PATH",
            format!("{}:{path}:/usr/bin:/bin", wrappers.display()),
        );
        let _ = std::fs::remove_file(&marker);
        let script = prefixed(dir.path());
        let plan = plan.clone();
        let facts = within(300, name, move || script.run_local(&plan, shell).unwrap());
        assert!(marker.exists(), "{name}: the wrappers were not used");
        assert_eq!(report(&facts, &s), report(&local, &s), "{name}");
    }
}

#[test]
fn the_lists_directory_is_a_parameter_quoted_like_any_path() {
    // Distroless keeps its lists in status.d; an awkward directory name proves the quoting.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let odd: &[u8] = b"/var/lib/dpkg/status.d/$(touch pwned) \"x\"*";
    put(root, b"usr/bin/kept", b"kept");
    put(root, b"usr/bin/edited", b"edited");
    let lists = [
        line(&md5_hex(b"kept"), "  ", b"usr/bin/kept"),
        line(&md5_hex(b"original"), "  ", b"usr/bin/edited"),
    ]
    .concat();
    put(root, &[&odd[1..], b"/app.md5sums"].concat(), &lists);
    put(root, &[&odd[1..], b"/app"].concat(), b"Package: app\n");
    let mut s = spec(&[b"/usr/bin/"], 10, 10);
    s.lists = tp(odd);
    let local = same_everywhere(root, &[s.clone()]);
    let r = report(&local, &s).unwrap();
    assert_eq!(status_of(&r, b"/usr/bin/kept"), [&FileStatus::Unchanged]);
    assert_eq!(status_of(&r, b"/usr/bin/edited"), [&FileStatus::Changed]);
    assert!(r.files.iter().all(|f| f.package == "app"), "{r:?}");
}
