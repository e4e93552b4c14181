//! Property tests of containment: generated trees of symlinks (absolute, relative, `..` chains,
//! loops, links to the host's files) inside a temporary root, with canary files *outside* it at
//! every place an escape could land. Resolution never returns a canary, and always gives what an
//! in-memory model of `RESOLVE_IN_ROOT` says; the shell script agrees with `LocalRoot`.

use std::collections::BTreeMap;
use std::os::unix::fs::symlink;
use std::path::Path;

use keyhole_engine::{
    Content, FactError, FactPlan, FactRequest, FactSource, FactValue, Facts, FileKind, LocalRoot,
    ShellScript, TargetPath,
};
use proptest::prelude::*;

use crate::source_fixtures::{CANARY, answer, assert_same_facts, shells, tp};

/// A node of the model tree.
#[derive(Debug, Clone)]
enum Node {
    Dir,
    File(Vec<u8>),
    Link(String),
}

/// The directories of every generated tree (`""` is the root).
const DIRS: [&str; 4] = ["", "a", "b", "a/c"];
/// Components link targets are made of.
const COMPONENTS: [&str; 12] = [
    "..", ".", "a", "b", "c", "f", "l0", "l1", "l2", "canary", "missing", "",
];

/// A generated link: in which directory, its name, and its target text (`{HOST}` stands for the
/// temporary directory's absolute path, i.e. a host path outside the root).
#[derive(Debug, Clone)]
struct Link {
    dir: usize,
    name: usize,
    target: String,
}

fn target() -> impl Strategy<Value = String> {
    let components = (
        any::<bool>(),
        prop::collection::vec(0..COMPONENTS.len(), 0..6),
    )
        .prop_map(|(absolute, comps)| {
            let text = comps
                .iter()
                .map(|&c| COMPONENTS[c])
                .collect::<Vec<_>>()
                .join("/");
            match (absolute, text.is_empty()) {
                (true, _) => format!("/{text}"),
                (false, true) => ".".to_string(),
                (false, false) => text,
            }
        });
    prop_oneof![
        4 => components,
        1 => (0..6usize).prop_map(|ups| format!("{}canary", "../".repeat(ups))),
        1 => Just("{HOST}/canary".to_string()),
        1 => Just("{HOST}/a/f".to_string()),
        1 => Just("/../../../a/f".to_string()),
    ]
}

fn links() -> impl Strategy<Value = Vec<Link>> {
    prop::collection::vec(
        (0..DIRS.len(), 0..3usize, target()).prop_map(|(dir, name, target)| Link {
            dir,
            name,
            target,
        }),
        1..8,
    )
}

/// The model: every node by its path components.
fn model(links: &[Link], host: &str) -> BTreeMap<Vec<String>, Node> {
    let mut m = BTreeMap::new();
    m.insert(vec![], Node::Dir);
    for d in DIRS.iter().filter(|d| !d.is_empty()) {
        let comps: Vec<String> = d.split('/').map(String::from).collect();
        m.insert(comps.clone(), Node::Dir);
        let mut f = comps.clone();
        f.push("f".into());
        m.insert(f, Node::File(format!("inside:{d}/f").into_bytes()));
    }
    m.insert(vec!["f".into()], Node::File(b"inside:/f".to_vec()));
    m.insert(vec!["canary".into()], Node::File(b"inside canary".to_vec()));
    for l in links {
        let mut p: Vec<String> = DIRS[l.dir]
            .split('/')
            .filter(|c| !c.is_empty())
            .map(String::from)
            .collect();
        p.push(format!("l{}", l.name));
        m.insert(p, Node::Link(l.target.replace("{HOST}", host)));
    }
    m
}

/// `RESOLVE_IN_ROOT` on the model: the final node's path, or the error the kernel gives.
fn resolve(
    m: &BTreeMap<Vec<String>, Node>,
    path: &str,
    follow_last: bool,
) -> Result<Vec<String>, FactError> {
    let mut pending: Vec<(String, bool)> = Vec::new();
    let push = |pending: &mut Vec<(String, bool)>, path: &str, tail: bool| {
        // A trailing slash: the last name must be a directory, and a link there is followed.
        let mut comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
        if path.ends_with('/') && !comps.is_empty() {
            comps.push(".");
        }
        for (i, c) in comps.iter().rev().enumerate() {
            pending.push((c.to_string(), tail && i == 0));
        }
    };
    push(&mut pending, path, true);
    let mut cur: Vec<String> = Vec::new();
    let mut links = 0;
    while let Some((name, last)) = pending.pop() {
        match name.as_str() {
            "." => continue,
            ".." => {
                cur.pop();
                continue;
            }
            _ => {}
        }
        let mut child = cur.clone();
        child.push(name);
        match m.get(&child) {
            None => return Err(FactError::NotFound),
            Some(Node::Link(t)) if !last || follow_last => {
                links += 1;
                if links > 40 {
                    return Err(FactError::Loop);
                }
                if t.starts_with('/') {
                    cur.clear();
                }
                push(&mut pending, t, last);
            }
            Some(Node::Dir) => cur = child,
            Some(_) if last => cur = child,
            Some(_) => {
                return Err(FactError::WrongKind {
                    expected: "directory".into(),
                });
            }
        }
    }
    Ok(cur)
}

/// What the model says a Read and a Stat give.
fn expected(
    m: &BTreeMap<Vec<String>, Node>,
    path: &str,
) -> (Result<Vec<u8>, FactError>, Result<FileKind, FactError>) {
    let read = resolve(m, path, true).and_then(|p| match &m[&p] {
        Node::File(c) => Ok(c.clone()),
        _ => Err(FactError::WrongKind {
            expected: "regular file".into(),
        }),
    });
    let stat = resolve(m, path, false).map(|p| match &m[&p] {
        Node::Dir => FileKind::Directory,
        Node::File(_) => FileKind::File,
        Node::Link(_) => FileKind::Symlink,
    });
    (read, stat)
}

/// Builds the model on disk under `dir/root`, with canaries at `dir` (where escapes land).
fn build(dir: &Path, m: &BTreeMap<Vec<String>, Node>) {
    let root = dir.join("root");
    std::fs::create_dir(&root).unwrap();
    // Outside the root: the same names, all canaries.
    std::fs::write(dir.join("canary"), CANARY).unwrap();
    std::fs::write(dir.join("f"), CANARY).unwrap();
    for d in ["a", "b", "a/c"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
        std::fs::write(dir.join(d).join("f"), CANARY).unwrap();
    }
    for (path, node) in m {
        let p = root.join(path.join("/"));
        match node {
            Node::Dir => std::fs::create_dir_all(&p).unwrap(),
            Node::File(c) => std::fs::write(&p, c).unwrap(),
            Node::Link(t) => symlink(t, &p).unwrap(),
        }
    }
}

/// The paths asked about: every link, and ways through it.
fn queries(m: &BTreeMap<Vec<String>, Node>) -> Vec<String> {
    let mut q = vec![
        "/f".to_string(),
        "/../f".to_string(),
        "/a/../../canary".to_string(),
    ];
    for (path, node) in m {
        if let Node::Link(_) = node {
            let p = format!("/{}", path.join("/"));
            for suffix in ["", "/", "/f", "/../f", "/c/f", "/canary", "/l0/f"] {
                q.push(format!("{p}{suffix}"));
            }
        }
    }
    q
}

fn plan_for(queries: &[String]) -> FactPlan {
    let mut plan = FactPlan::new();
    for q in queries {
        plan.add(FactRequest::Read {
            path: tp(q),
            max_bytes: 1024,
        });
        plan.add(FactRequest::Stat(tp(q)));
    }
    plan
}

fn check_against_model(
    facts: &Facts,
    m: &BTreeMap<Vec<String>, Node>,
    queries: &[String],
) -> Result<(), TestCaseError> {
    for q in queries {
        let (read, stat) = expected(m, q);
        let got = answer(
            facts,
            &FactRequest::Read {
                path: TargetPath::new(q.as_bytes()).unwrap(),
                max_bytes: 1024,
            },
        );
        if let Ok(FactValue::Content(c)) = got {
            prop_assert!(c.bytes != CANARY, "{q} read the canary outside the root");
        }
        let want = read.map(|bytes| {
            FactValue::Content(Content {
                bytes,
                truncated: false,
            })
        });
        prop_assert_eq!(got, &want, "Read {}", q);
        let got = answer(facts, &FactRequest::Stat(tp(q)));
        let got_kind = got.as_ref().map(|v| match v {
            FactValue::Meta(meta) => meta.kind,
            other => panic!("{other:?}"),
        });
        prop_assert_eq!(got_kind.map_err(Clone::clone), stat, "Stat {}", q);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn local_root_resolves_like_the_model_and_never_escapes(links in links()) {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().to_str().unwrap().to_string();
        let m = model(&links, &host);
        build(dir.path(), &m);
        let queries = queries(&m);
        let facts = LocalRoot::directory(dir.path().join("root")).unwrap().gather(&plan_for(&queries));
        check_against_model(&facts, &m, &queries)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn the_script_resolves_like_local_root(links in links()) {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().to_str().unwrap().to_string();
        let m = model(&links, &host);
        build(dir.path(), &m);
        let queries = queries(&m);
        let plan = plan_for(&queries);
        let root = dir.path().join("root");
        let local = LocalRoot::directory(&root).unwrap().gather(&plan);
        for (name, shell) in shells() {
            let script = ShellScript::in_container().with_root_prefix(&root).unwrap();
            let facts = script.run_local(&plan, shell).unwrap();
            assert_same_facts(name, &facts, &local);
        }
    }
}
