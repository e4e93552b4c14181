//! `keyhole plan --profile/--input`: the distroless debug container carries the fact plan of
//! the user's profile with the user's inputs, not the built-in profile's.

use serde_json::Value;

use crate::{FIXED, SCANNER, check, keyhole};

fn profile() -> String {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/profiles/app-config.yaml")
        .to_str()
        .unwrap()
        .to_string()
}

fn distroless(extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [
        "web-0",
        "-n",
        "shop",
        "--mode",
        "distroless",
        "-c",
        "web",
        "--target-uid",
        "10001",
        "--image",
        SCANNER,
    ]
    .map(String::from)
    .to_vec();
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

/// The fact requests in the debug container's KEYHOLE_FACT_PLAN of a `-o json` plan, with
/// their paths as text.
fn fact_plan(args: &[String]) -> Vec<String> {
    let mut all = vec!["plan".to_string()];
    all.extend(args.iter().cloned());
    all.extend(["-o".into(), "json".into()]);
    all.extend(FIXED.iter().map(|s| s.to_string()));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    let r = keyhole(&all, None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let plan: Value = serde_json::from_str(&r.stdout).unwrap();
    let patch = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["method"] == "PATCH")
        .expect("a distroless plan patches the pod");
    let env = &patch["body"]["spec"]["ephemeralContainers"][0]["env"];
    let text = env
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "KEYHOLE_FACT_PLAN")
        .and_then(|e| e["value"].as_str())
        .expect("the fact plan is in the environment");
    let facts: Value = serde_json::from_str(text).unwrap();
    // Paths are encoded as byte arrays; other requests (walks, process files) as they are.
    let path = |v: &Value| -> Option<String> {
        let bytes: Option<Vec<u8>> = v
            .as_array()?
            .iter()
            .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
            .collect();
        String::from_utf8(bytes?).ok()
    };
    facts["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| match r.as_object().and_then(|o| o.iter().next()) {
            Some((kind, v)) => match path(v).or_else(|| path(&v["path"])) {
                Some(p) => format!("{kind} {p}"),
                None => format!("{kind} {v}"),
            },
            None => format!("{r}"),
        })
        .collect()
}

#[test]
fn plan_distroless_custom_profile() {
    let args = distroless(&[
        "--profile",
        &profile(),
        "--input",
        "config_file=/srv/app/conf.yaml",
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    check("plan_distroless_custom_profile", &args);
}

#[test]
fn the_fact_plan_follows_the_profile_and_its_inputs() {
    let profile = profile();
    // The profile's default input, then the override; written out by hand.
    assert_eq!(
        fact_plan(&distroless(&["--profile", &profile])),
        [
            "Stat /etc/app",
            "Stat /etc/app/app.conf",
            "Read /etc/os-release",
            "Read /etc/passwd",
            "Read /usr/lib/os-release",
        ]
    );
    assert_eq!(
        fact_plan(&distroless(&[
            "--profile",
            &profile,
            "--input",
            "config_file=/srv/app/conf.yaml"
        ])),
        [
            "Stat /etc/app",
            "Stat /srv/app/conf.yaml",
            "Read /etc/os-release",
            "Read /etc/passwd",
            "Read /usr/lib/os-release",
        ]
    );
    // Without --profile: the built-in profile's much larger plan (it reads /etc/shadow).
    let builtin = fact_plan(&distroless(&[]));
    assert!(builtin.len() > 20, "{builtin:?}");
    assert!(
        builtin.iter().any(|r| r.ends_with(" /etc/shadow")),
        "{builtin:?}"
    );
}

#[test]
fn a_bad_profile_or_input_is_bad_input_in_every_mode() {
    let r = keyhole(
        &[
            "plan",
            "web-0",
            "--mode",
            "standard",
            "--profile",
            "/nonexistent.yaml",
        ],
        None,
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stdout.is_empty());
    let profile = profile();
    let r = keyhole(
        &[
            "plan",
            "web-0",
            "--mode",
            "standard",
            "--profile",
            &profile,
            "--input",
            "nope=1",
        ],
        None,
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("nope"), "{}", r.stderr);
}
