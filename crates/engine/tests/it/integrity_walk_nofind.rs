//! The package-integrity walk of the `ShellScript` without `find` and `xargs` (UBI-minimal has
//! no findutils): `sh` walks the prefixes itself, and its records must be exactly those the
//! `find -xdev -maxdepth` walk writes, on a tree built to be hostile: hidden names (`.x`, `..x`,
//! `...`), names with newlines, spaces, glob metacharacters and non-UTF-8 bytes, symlinks (to a
//! directory, dangling), an empty directory, a FIFO, a mount point (`-xdev`) and entries deeper
//! than the walk goes.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use keyhole_engine::{
    FactPlan, FactRequest, HashAlgo, ManagedSpec, PackageManager, ShellScript, TargetPath,
};

use crate::source_fixtures::{hostile_names, require, shells_without_find, within};

/// The walk's depth bound (`managed::SCRIPT_WALK.max_depth`), written out here.
const MAX_DEPTH: usize = 32;

/// Unmounts the tmpfs on drop, whatever the test did.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn put(root: &Path, rel: &[u8], bytes: &[u8]) {
    let p = root.join(std::ffi::OsStr::from_bytes(rel));
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
}

/// The hostile tree; the returned guard holds the mount at `/usr/mnt`.
fn build(root: &Path) -> Mount {
    // apk's database only has to exist for the walk to run.
    put(root, b"lib/apk/db/installed", b"");
    put(root, b"usr/bin/tool", b"a tool");
    put(root, b"usr/.hidden", b"h");
    put(root, b"usr/..dots", b"d");
    put(root, b"usr/...", b"three");
    for (i, name) in hostile_names().iter().enumerate() {
        let mut rel = b"usr/hostile/".to_vec();
        rel.extend_from_slice(name);
        put(root, &rel, format!("file {i}").as_bytes());
        // The same name as a directory holding a file.
        let mut dir = format!("usr/dirs/{i}-").into_bytes();
        dir.extend_from_slice(name);
        dir.extend_from_slice(b"/inside");
        put(root, &dir, b"inside");
    }
    std::fs::create_dir_all(root.join("usr/empty")).unwrap();
    symlink("bin", root.join("usr/link-to-dir")).unwrap();
    symlink("/nowhere", root.join("usr/dangling")).unwrap();
    let fifo = root.join("usr/fifo");
    let ok = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(ok.success(), "mkfifo");
    // Entries down to MAX_DEPTH + 2 below /usr: the last levels are deeper than the walk.
    let mut deep = String::from("usr");
    for _ in 0..MAX_DEPTH + 1 {
        deep.push_str("/d");
    }
    put(root, format!("{deep}/leaf").as_bytes(), b"deep");
    // Another filesystem: the walk records the mount point, never what is inside.
    let mnt = root.join("usr/mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(ok.success(), "mount tmpfs on {}", mnt.display());
    let guard = Mount(mnt.clone());
    std::fs::write(mnt.join("on-tmpfs"), b"other fs").unwrap();
    guard
}

/// An entry's metadata (`mode:uid:gid:size:dev`) and link text.
type Seen = (Vec<u8>, Option<Vec<u8>>);

/// What one walk wrote, without its order: entries with their link text, digests per file,
/// skips, and the markers (`D`, `T`).
#[derive(Debug, Default, PartialEq, Eq)]
struct Walk {
    entries: BTreeMap<Vec<u8>, Seen>,
    digests: BTreeMap<Vec<u8>, Vec<Vec<u8>>>,
    skips: BTreeSet<Vec<u8>>,
    marks: BTreeSet<u8>,
    examined: usize,
}

/// The `@S W` payloads of a script's stdout, decoded.
fn walks(stdout: &[u8]) -> Vec<Walk> {
    let text = String::from_utf8(stdout.to_vec()).expect("the script writes ASCII");
    let mut out = Vec::new();
    let mut cur: Option<Vec<u8>> = None;
    for line in text.lines() {
        if line == "@S W" {
            cur = Some(Vec::new());
        } else if let Some(status) = line.strip_prefix("@F ") {
            if let Some(bytes) = cur.take() {
                assert_eq!(status, "ok", "the walk failed");
                out.push(parse(&bytes));
            }
        } else if let Some(bytes) = cur.as_mut() {
            for h in line.split_whitespace() {
                bytes.push(u8::from_str_radix(h, 16).expect("hex"));
            }
        }
    }
    out
}

fn parse(payload: &[u8]) -> Walk {
    let mut w = Walk::default();
    let mut last: Option<Vec<u8>> = None;
    for record in payload.split(|&b| b == b'\n') {
        let record: Vec<u8> = record
            .iter()
            .map(|&b| if b == 0 { b'\n' } else { b })
            .collect();
        let Some((&tag, rest)) = record.split_first() else {
            continue;
        };
        match tag {
            b'M' => {
                w.examined += 1;
                let mut parts = rest.splitn(6, |&b| b == b':');
                let meta: Vec<&[u8]> = parts.by_ref().take(5).collect();
                let rel = parts.next().expect("rel").to_vec();
                let prev = w.entries.insert(rel.clone(), (meta.join(&b':'), None));
                assert!(prev.is_none(), "{:?} twice", String::from_utf8_lossy(&rel));
                last = Some(rel);
            }
            b'L' => {
                let e = w.entries.get_mut(last.as_ref().unwrap()).unwrap();
                e.1 = Some(rest.to_vec());
            }
            b'F' => {
                w.digests.entry(rest.to_vec()).or_default();
                last = Some(rest.to_vec());
            }
            b'H' | b'X' => w
                .digests
                .get_mut(last.as_ref().unwrap())
                .expect("digest after F")
                .push(record.clone()),
            b'S' => {
                w.skips.insert(rest.to_vec());
            }
            b'D' | b'T' => {
                w.marks.insert(tag);
            }
            b'.' => {}
            other => panic!("tag {other}"),
        }
    }
    for d in w.digests.values_mut() {
        d.sort();
    }
    w
}

fn run(script: &str, mut shell: Command) -> Vec<u8> {
    let out = shell
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .unwrap();
    out.stdout
}

/// The plan's script over `root`, and what dash with the host's GNU tools (find and xargs
/// among them) writes running it: the reference the runs without findutils must equal.
fn by_find(root: &Path, plan: &FactPlan) -> (String, Vec<u8>) {
    let script = ShellScript::in_container()
        .with_root_prefix(root)
        .unwrap()
        .with_pid(None)
        .render(plan);
    let mut dash = Command::new(require("dash", "dash"));
    dash.env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    require("find", "findutils");
    let s = script.clone();
    let out = within(120, "dash with find", move || run(&s, dash));
    (script, out)
}

#[test]
fn without_find_sh_walks_exactly_what_find_walks() {
    crate::source_runc::require_root();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let _mount = build(&root);
    let mut plan = FactPlan::new();
    plan.add(FactRequest::ManagedIntegrity(ManagedSpec {
        manager: PackageManager::Apk,
        prefixes: vec![TargetPath::new("/usr/").unwrap()],
        max_files: 1000,
        algorithms: vec![HashAlgo::Sha256, HashAlgo::Md5],
    }));
    let (script, out) = by_find(&root, &plan);
    let by_find = walks(&out);
    assert_eq!(by_find.len(), 1);
    let want = &by_find[0];
    // The tree is what it was built to be, as find sees it (so the comparison means something).
    let has = |rel: &[u8]| want.entries.contains_key(rel);
    assert!(has(b""), "the start");
    for rel in [
        &b"/bin/tool"[..],
        b"/.hidden",
        b"/..dots",
        b"/...",
        b"/hostile/new\nline",
        b"/hostile/*",
        b"/empty",
        b"/fifo",
        b"/mnt",
        b"/link-to-dir",
        b"/dangling",
    ] {
        assert!(has(rel), "{:?} not walked", String::from_utf8_lossy(rel));
    }
    assert!(!has(b"/mnt/on-tmpfs"), "-xdev");
    assert!(!has(b"/link-to-dir/tool"), "a symlink followed");
    assert_eq!(want.marks, BTreeSet::from([b'D']), "deeper entries");
    assert_eq!(
        want.digests[&b"/bin/tool"[..]].len(),
        2,
        "{:?}",
        want.digests
    );
    let hostile = hostile_names().len();
    assert!(
        want.examined > 2 * hostile + 40,
        "{} entries",
        want.examined
    );

    // Without findutils, dash and bash walk in sh: the very same records.
    for (name, shell) in shells_without_find() {
        let s = script.clone();
        let got = within(120, name, move || walks(&run(&s, shell)));
        assert_eq!(got.len(), 1, "{name}");
        if got[0] != *want {
            let only = |a: &Walk, b: &Walk| -> Vec<String> {
                a.entries
                    .keys()
                    .filter(|k| !b.entries.contains_key(*k))
                    .map(|k| String::from_utf8_lossy(k).into_owned())
                    .collect()
            };
            panic!(
                "{name} without find walked differently: only find: {:?}, only sh: {:?}\nfind: {want:?}\nsh: {:?}",
                only(want, &got[0]),
                only(&got[0], want),
                got[0]
            );
        }
    }
}

/// The facts of the `files:` walks (`FactRequest::Walk`, every query, with and without `-xdev`,
/// bounded by depth and by entries) on the hostile tree, without findutils, are the facts the
/// `find` walk gives (the same normalisation as every script-against-source comparison).
#[test]
fn without_find_the_files_walks_give_the_facts_find_gives() {
    use std::os::unix::fs::PermissionsExt;

    use keyhole_engine::{Bound, FactValue, WalkLimits, WalkQuery};

    crate::source_runc::require_root();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let _mount = build(&root);
    let mode = |rel: &str, m: u32| {
        std::fs::set_permissions(root.join(rel), std::fs::Permissions::from_mode(m)).unwrap();
    };
    put(&root, b"usr/bin/su", b"setuid");
    mode("usr/bin/su", 0o4755);
    put(&root, b"usr/bin/wall", b"setgid");
    mode("usr/bin/wall", 0o2755);
    put(&root, b"usr/share/open", b"writable");
    mode("usr/share/open", 0o666);
    std::fs::create_dir_all(root.join("usr/share/tmp")).unwrap();
    mode("usr/share/tmp", 0o1777);
    put(&root, b"usr/etc/app.env", b"A=1\nSECRET=hunter2\n");
    std::fs::write(root.join("usr/mnt/SECRET.env"), b"SECRET=on another fs").unwrap();

    let usr = TargetPath::new("/usr").unwrap();
    let walk = |query: WalkQuery, limits: WalkLimits| FactRequest::Walk {
        root: usr.clone(),
        query,
        limits,
    };
    let every_fs = WalkLimits {
        same_filesystem: false,
        ..WalkLimits::default()
    };
    let shallow = WalkLimits {
        max_depth: 1,
        ..WalkLimits::default()
    };
    let few = WalkLimits {
        max_entries: 5,
        ..WalkLimits::default()
    };
    let contains = WalkQuery::Contains {
        pattern: b"SECRET=".to_vec(),
        max_bytes: 4096,
        max_file_size: 1 << 20,
    };
    let named = WalkQuery::Named(BTreeSet::from([b"SECRET.env".to_vec(), b"leaf".to_vec()]));
    let requests = [
        walk(WalkQuery::Setuid, WalkLimits::default()),
        walk(WalkQuery::Setgid, WalkLimits::default()),
        walk(WalkQuery::WorldWritable, WalkLimits::default()),
        walk(contains.clone(), WalkLimits::default()),
        walk(contains, every_fs),
        walk(named.clone(), WalkLimits::default()),
        walk(named, every_fs),
        walk(WalkQuery::Setuid, shallow),
        walk(WalkQuery::WorldWritable, few),
    ];
    let mut plan = FactPlan::new();
    for r in &requests {
        plan.add(r.clone());
    }
    let (script, out) = by_find(&root, &plan);
    let want = ShellScript::parse(&plan, &out);

    // What find gives is what the tree was built to hold (so the comparison means something).
    let found = |i: usize| -> (Vec<String>, Option<Bound>) {
        let answer = want.get(&requests[i]).expect("answered");
        let Ok(FactValue::Walk(w)) = answer else {
            panic!("walk {i}: {answer:?}");
        };
        let mut names: Vec<String> = w
            .matches
            .iter()
            .map(|(p, _)| String::from_utf8_lossy(p.as_bytes()).into_owned())
            .collect();
        names.sort();
        (names, w.truncated)
    };
    assert_eq!(found(0), (vec!["/usr/bin/su".into()], Some(Bound::Depth)));
    assert_eq!(found(1).0, ["/usr/bin/wall"]);
    assert!(
        found(2).0.contains(&"/usr/share/open".to_owned()),
        "{:?}",
        found(2)
    );
    assert!(!found(2).0.contains(&"/usr/share/tmp".to_owned()), "sticky");
    assert_eq!(found(3).0, ["/usr/etc/app.env"], "-xdev");
    assert_eq!(found(4).0, ["/usr/etc/app.env", "/usr/mnt/SECRET.env"]);
    assert_eq!(
        found(5).0,
        Vec::<String>::new(),
        "-xdev, and the leaf is too deep"
    );
    assert_eq!(found(6).0, ["/usr/mnt/SECRET.env"]);
    assert_eq!(found(7), (vec![], Some(Bound::Depth)));
    assert_eq!(found(8).1, Some(Bound::Entries));

    for (name, shell) in shells_without_find() {
        let s = script.clone();
        let out = within(120, name, move || run(&s, shell));
        let got = ShellScript::parse(&plan, &out);
        crate::source_fixtures::assert_same_facts(&format!("{name} without find"), &want, &got);
    }
}
