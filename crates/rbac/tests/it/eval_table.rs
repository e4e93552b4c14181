//! Table tests of the evaluator, after the upstream authorizer's semantics (`RuleAllows` and
//! `evaluation_helpers.go`); cases written for Keyhole, not copied.

use k8s_openapi::api::rbac::v1::{PolicyRule, Role};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use keyhole_rbac::eval::{Request, ResourceRequest, allows, role_allows};

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// A resource rule; an empty `names` leaves `resourceNames` unset.
fn rule(verbs: &[&str], groups: &[&str], resources: &[&str], names: &[&str]) -> PolicyRule {
    PolicyRule {
        verbs: strings(verbs),
        api_groups: Some(strings(groups)),
        resources: Some(strings(resources)),
        resource_names: (!names.is_empty()).then(|| strings(names)),
        non_resource_urls: None,
    }
}

fn url_rule(verbs: &[&str], urls: &[&str]) -> PolicyRule {
    PolicyRule {
        verbs: strings(verbs),
        non_resource_urls: Some(strings(urls)),
        ..PolicyRule::default()
    }
}

/// `verb` on `resource[/subresource]` in `group`, without name or namespace.
fn req(verb: &str, group: &str, resource: &str) -> ResourceRequest {
    match resource.split_once('/') {
        Some((r, sub)) => ResourceRequest::new(verb, r).group(group).subresource(sub),
        None => ResourceRequest::new(verb, resource).group(group),
    }
}

fn url(verb: &str, path: &str) -> Request {
    Request::non_resource(verb, path)
}

/// Asserts `allows([rule], request) == expected` for every row.
fn table(name: &str, rule: PolicyRule, rows: Vec<(Request, bool)>) {
    let rules = [rule];
    for (request, expected) in rows {
        assert_eq!(
            allows(&rules, &request),
            expected,
            "{name}: {request} should be {}",
            if expected { "allowed" } else { "denied" }
        );
    }
}

#[test]
fn wildcard_verb_matches_any_verb_only() {
    table(
        "verbs [*]",
        rule(&["*"], &["apps"], &["deployments"], &[]),
        vec![
            (req("get", "apps", "deployments").into(), true),
            (req("delete", "apps", "deployments").into(), true),
            (req("escalate", "apps", "deployments").into(), true),
            (req("get", "", "deployments").into(), false),
            (req("get", "apps", "statefulsets").into(), false),
        ],
    );
}

#[test]
fn wildcard_group_matches_any_group_only() {
    table(
        "apiGroups [*]",
        rule(&["list"], &["*"], &["widgets"], &[]),
        vec![
            (req("list", "", "widgets").into(), true),
            (req("list", "example.com", "widgets").into(), true),
            (req("get", "example.com", "widgets").into(), false),
            (req("list", "example.com", "gadgets").into(), false),
        ],
    );
}

#[test]
fn wildcard_resource_matches_resources_and_subresources() {
    table(
        "resources [*]",
        rule(&["get"], &[""], &["*"], &[]),
        vec![
            (req("get", "", "pods").into(), true),
            (req("get", "", "secrets").into(), true),
            (req("get", "", "pods/log").into(), true),
            (req("get", "apps", "pods").into(), false),
            (req("list", "", "pods").into(), false),
        ],
    );
}

#[test]
fn several_verbs_groups_and_resources_combine_as_a_product() {
    let r = rule(&["get", "list"], &["a", "b"], &["x", "y"], &[]);
    let mut rows = Vec::new();
    for verb in ["get", "list"] {
        for group in ["a", "b"] {
            for resource in ["x", "y"] {
                rows.push((req(verb, group, resource).into(), true));
            }
        }
    }
    rows.push((req("watch", "a", "x").into(), false));
    rows.push((req("get", "c", "x").into(), false));
    rows.push((req("get", "a", "z").into(), false));
    table("product", r, rows);
}

#[test]
fn star_slash_subresource_matches_that_subresource_of_any_resource() {
    table(
        "resources [*/scale]",
        rule(&["update"], &["*"], &["*/scale"], &[]),
        vec![
            (req("update", "apps", "deployments/scale").into(), true),
            (req("update", "apps", "statefulsets/scale").into(), true),
            (req("update", "apps", "deployments").into(), false),
            (req("update", "apps", "deployments/status").into(), false),
            (req("update", "apps", "deployments/scales").into(), false),
            // "scale" as a resource without a subresource is not "*/scale".
            (req("update", "apps", "scale").into(), false),
        ],
    );
}

#[test]
fn resource_slash_star_is_a_literal_not_a_wildcard() {
    table(
        "resources [pods/*]",
        rule(&["*"], &[""], &["pods/*"], &[]),
        vec![
            (req("create", "", "pods/exec").into(), false),
            (req("get", "", "pods/log").into(), false),
            (req("get", "", "pods").into(), false),
            // Only a subresource literally named "*" matches.
            (req("get", "", "pods/*").into(), true),
        ],
    );
}

#[test]
fn subresources_match_only_as_written() {
    table(
        "resources [pods/exec]",
        rule(&["create"], &[""], &["pods/exec"], &[]),
        vec![
            (req("create", "", "pods/exec").into(), true),
            (req("create", "", "pods").into(), false),
            (req("create", "", "pods/attach").into(), false),
            (req("create", "", "nodes/exec").into(), false),
        ],
    );
    table(
        "resources [pods]",
        rule(&["get"], &[""], &["pods"], &[]),
        vec![
            (req("get", "", "pods").into(), true),
            (req("get", "", "pods/status").into(), false),
            (req("get", "", "pods/log").into(), false),
        ],
    );
}

#[test]
fn empty_resource_names_allow_every_name_and_collections() {
    table(
        "no resourceNames",
        rule(&["get", "list", "create"], &[""], &["configmaps"], &[]),
        vec![
            (req("get", "", "configmaps").name("a").into(), true),
            (req("get", "", "configmaps").name("zzz").into(), true),
            (req("list", "", "configmaps").into(), true),
            (req("create", "", "configmaps").into(), true),
        ],
    );
}

#[test]
fn resource_names_need_a_listed_name() {
    table(
        "resourceNames [web-0, web-1]",
        rule(
            &["get", "list", "watch", "create", "deletecollection"],
            &[""],
            &["pods"],
            &["web-0", "web-1"],
        ),
        vec![
            (req("get", "", "pods").name("web-0").into(), true),
            (req("get", "", "pods").name("web-1").into(), true),
            (req("get", "", "pods").name("web-2").into(), false),
            (req("get", "", "pods").name("WEB-0").into(), false),
            // A request without a name asks for every object: the names cannot cover it.
            (req("get", "", "pods").into(), false),
            (req("list", "", "pods").into(), false),
            (req("watch", "", "pods").into(), false),
            (req("create", "", "pods").into(), false),
            (req("deletecollection", "", "pods").into(), false),
        ],
    );
}

#[test]
fn a_nameless_request_compares_as_the_empty_name() {
    // Upstream compares the request's name, "" when absent, with the listed names.
    table(
        "resourceNames [\"\"]",
        rule(&["list"], &[""], &["pods"], &[""]),
        vec![
            (req("list", "", "pods").into(), true),
            (req("list", "", "pods").name("web-0").into(), false),
        ],
    );
}

#[test]
fn verbs_and_groups_are_case_sensitive() {
    table(
        "case",
        rule(&["get"], &["apps"], &["deployments"], &[]),
        vec![
            (req("GET", "apps", "deployments").into(), false),
            (req("get", "Apps", "deployments").into(), false),
            (req("get", "apps", "Deployments").into(), false),
        ],
    );
}

#[test]
fn missing_lists_match_nothing() {
    let no_groups = PolicyRule {
        verbs: strings(&["*"]),
        resources: Some(strings(&["*"])),
        ..PolicyRule::default()
    };
    table(
        "no apiGroups",
        no_groups,
        vec![(req("get", "", "pods").into(), false)],
    );
    table(
        "no verbs",
        rule(&[], &["*"], &["*"], &[]),
        vec![(req("get", "", "pods").into(), false)],
    );
}

#[test]
fn non_resource_urls_exact_star_and_prefix() {
    table(
        "nonResourceURLs [*]",
        url_rule(&["get"], &["*"]),
        vec![
            (url("get", "/healthz"), true),
            (url("get", "/metrics/cadvisor"), true),
            (url("post", "/healthz"), false),
        ],
    );
    table(
        "nonResourceURLs [/healthz/*]",
        url_rule(&["get"], &["/healthz/*"]),
        vec![
            (url("get", "/healthz/ready"), true),
            (url("get", "/healthz/etcd/deep"), true),
            (url("get", "/healthz/"), true),
            (url("get", "/healthz"), false),
            (url("get", "/healthzz"), false),
            (url("get", "/livez/ping"), false),
        ],
    );
    table(
        "nonResourceURLs [/version, /api]",
        url_rule(&["*"], &["/version", "/api"]),
        vec![
            (url("get", "/version"), true),
            (url("head", "/api"), true),
            (url("get", "/version/"), false),
            (url("get", "/api/v1"), false),
        ],
    );
    // A trailing '*' is a plain prefix, with or without a slash before it.
    table(
        "nonResourceURLs [/logs*]",
        url_rule(&["get"], &["/logs*"]),
        vec![
            (url("get", "/logs"), true),
            (url("get", "/logsx"), true),
            (url("get", "/log"), false),
        ],
    );
}

#[test]
fn resource_and_non_resource_rules_never_cross() {
    let everything = rule(&["*"], &["*"], &["*"], &[]);
    table(
        "resource rule vs URL",
        everything,
        vec![
            (url("get", "/healthz"), false),
            (url("get", "*"), false),
            (req("get", "", "pods").into(), true),
        ],
    );
    table(
        "URL rule vs resource",
        url_rule(&["*"], &["*"]),
        vec![
            (req("get", "", "pods").into(), false),
            (url("get", "/api/v1/pods"), true),
        ],
    );
}

#[test]
fn any_rule_of_several_suffices() {
    let rules = [
        rule(&["get"], &[""], &["pods"], &["a"]),
        rule(&["list"], &[""], &["services"], &[]),
    ];
    assert!(allows(&rules, &req("get", "", "pods").name("a").into()));
    assert!(allows(&rules, &req("list", "", "services").into()));
    assert!(!allows(&rules, &req("list", "", "pods").into()));
    assert!(!allows(&[], &req("get", "", "pods").name("a").into()));
}

fn role_in(namespace: Option<&str>, rules: Vec<PolicyRule>) -> Role {
    Role {
        metadata: ObjectMeta {
            name: Some("r".into()),
            namespace: namespace.map(str::to_string),
            ..ObjectMeta::default()
        },
        rules: Some(rules),
    }
}

#[test]
fn a_role_grants_only_in_its_namespace() {
    let role = role_in(
        Some("prod"),
        vec![rule(&["*"], &["*"], &["*"], &[]), url_rule(&["*"], &["*"])],
    );
    let get = || ResourceRequest::new("get", "pods").name("web-0");
    assert!(role_allows(&role, &get().namespace("prod").into()));
    assert!(!role_allows(&role, &get().namespace("dev").into()));
    assert!(!role_allows(&role, &get().namespace("").into()));
    // No namespace: a cluster-wide request, which no RoleBinding is consulted for.
    assert!(!role_allows(&role, &get().into()));
    assert!(!role_allows(
        &role,
        &ResourceRequest::new("list", "nodes").into()
    ));
    // Non-resource URLs are never granted through a Role, even by a matching rule.
    assert!(!role_allows(&role, &url("get", "/healthz")));
    assert!(allows(
        role.rules.as_deref().unwrap(),
        &url("get", "/healthz")
    ));
}

#[test]
fn a_role_without_namespace_grants_nothing() {
    let everything = vec![rule(&["*"], &["*"], &["*"], &[])];
    let get = ResourceRequest::new("get", "pods").namespace("prod");
    assert!(!role_allows(
        &role_in(None, everything.clone()),
        &get.clone().into()
    ));
    assert!(!role_allows(
        &role_in(Some(""), everything.clone()),
        &get.clone().into()
    ));
    assert!(role_allows(&role_in(Some("prod"), everything), &get.into()));
}

#[test]
fn a_role_still_needs_a_matching_rule() {
    let role = role_in(
        Some("prod"),
        vec![rule(&["get"], &[""], &["pods"], &["web-0"])],
    );
    let get = |name: &str| {
        ResourceRequest::new("get", "pods")
            .name(name)
            .namespace("prod")
    };
    assert!(role_allows(&role, &get("web-0").into()));
    assert!(!role_allows(&role, &get("web-1").into()));
}

#[test]
fn requests_display_for_reports() {
    let r = ResourceRequest::new("create", "pods")
        .subresource("exec")
        .name("web-0")
        .namespace("prod");
    assert_eq!(
        r.to_string(),
        r#"create pods/exec "web-0" in namespace "prod""#
    );
    let r = ResourceRequest::new("bind", "roles").group("rbac.authorization.k8s.io");
    assert_eq!(
        r.to_string(),
        "bind roles.rbac.authorization.k8s.io (any name) cluster-wide"
    );
    assert_eq!(url("get", "/healthz").to_string(), r#"get "/healthz""#);
}
