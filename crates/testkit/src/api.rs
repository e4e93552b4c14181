//! The request pipeline both transports share: record → latency → fault → authenticate →
//! authorize → route → handler, producing a reply, an exec upgrade, a hang or a drop.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Method};
use jiff::Timestamp;
use serde_json::{Map, Value, json};

use crate::authz::{self, Attributes, Identity};
use crate::cluster::{Inner, Kubelet, State};
use crate::exec::{ExecRequest, ExecStart, accept_key};
use crate::faults::{Fault, RecordedCall};
use crate::objects::{self, DeleteOpts, Deleted, Part};
use crate::patch;
use crate::resources::{RESOURCES, RequestInfo, ResourceDef, by_plural, parse_query, request_info};
use crate::selector::{FieldSelector, Selector};
use crate::status::ApiError;
use crate::store::labels_of;
use crate::tokens::{self, TokenRecord};

/// A request, transport-independent (body fully read).
#[derive(Debug)]
pub(crate) struct Incoming {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) query: String,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

/// A complete HTTP answer.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) content_type: &'static str,
    pub(crate) body: Bytes,
}

/// What the transport must do.
#[derive(Debug)]
pub(crate) enum Outcome {
    Reply(Reply),
    /// Never answer.
    Hang,
    /// Close the connection / fail the in-process call.
    Drop,
    /// Answer 101 and run the exec session on the upgraded connection.
    Exec(Box<ExecStart>),
}

fn json_reply(status: u16, body: &Value) -> Reply {
    Reply {
        status,
        content_type: "application/json",
        body: Bytes::from(body.to_string()),
    }
}

fn text_reply(status: u16, text: String) -> Reply {
    Reply {
        status,
        content_type: "text/plain; charset=utf-8",
        body: Bytes::from(text),
    }
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

fn set_call(inner: &Inner, index: usize, status: Option<u16>, fault: Option<Fault>) {
    let mut st = inner.lock();
    if let Some(c) = st.calls.iter_mut().rev().find(|c| c.index == index) {
        c.status = status;
        c.fault = fault;
    }
}

/// Handles one request end to end.
pub(crate) async fn handle(inner: &Arc<Inner>, req: Incoming) -> Outcome {
    let now = inner.clock.now();
    let query = parse_query(Some(&req.query));
    let info = request_info(&req.method, &req.path, &query);
    let token = bearer(&req.headers);
    let (index, identity, record) = {
        let mut st = inner.lock();
        let (identity, record) = tokens::authenticate(&st, now, token.as_deref());
        let index = st.next_call;
        st.next_call += 1;
        st.calls.push(RecordedCall {
            index,
            method: req.method.as_str().to_owned(),
            path: req.path.clone(),
            query: req.query.clone(),
            identity: identity.clone(),
            verb: if info.is_resource_request {
                info.verb.clone()
            } else {
                String::new()
            },
            status: None,
            fault: None,
            at: now,
        });
        (index, identity, record)
    };
    let latency = inner.faults.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let fault = inner.faults.take(index, req.method.as_str(), &req.path);
    match fault {
        Some(Fault::Status(code)) => {
            set_call(inner, index, Some(code), fault);
            let e = ApiError::injected(code);
            return Outcome::Reply(json_reply(code, &e.body));
        }
        Some(Fault::Hang) => {
            set_call(inner, index, None, fault);
            return Outcome::Hang;
        }
        Some(Fault::DropConnection) => {
            set_call(inner, index, None, fault);
            return Outcome::Drop;
        }
        Some(Fault::Delay(d)) => tokio::time::sleep(d).await,
        Some(Fault::DropAfterApply) | None => {}
    }
    let result = if identity == Identity::Unauthenticated {
        Err(ApiError::unauthorized())
    } else {
        let mut st = inner.lock();
        let minor = st.server_minor;
        let ctx = Ctx {
            now,
            identity: &identity,
            record: record.as_ref(),
            req: &req,
            query: &query,
            info: &info,
            minor,
            kubelets: &inner.kubelets,
        };
        ctx.process(&mut st)
    };
    let outcome = match result {
        Ok(o) => o,
        Err(e) => Outcome::Reply(json_reply(e.code, &e.body)),
    };
    if fault == Some(Fault::DropAfterApply) {
        set_call(inner, index, None, fault);
        return Outcome::Drop;
    }
    let status = match &outcome {
        Outcome::Reply(r) => Some(r.status),
        Outcome::Exec(_) => Some(101),
        Outcome::Hang | Outcome::Drop => None,
    };
    // A delayed call was answered: the record still says it was delayed.
    let delayed = fault.filter(|f| matches!(f, Fault::Delay(_)));
    set_call(inner, index, status, delayed);
    outcome
}

struct Ctx<'a> {
    now: Timestamp,
    identity: &'a Identity,
    record: Option<&'a TokenRecord>,
    req: &'a Incoming,
    query: &'a [(String, String)],
    info: &'a RequestInfo,
    minor: u32,
    /// Real kubelets by node name (locked after `state`, never before).
    kubelets: &'a std::sync::Mutex<std::collections::BTreeMap<String, Arc<dyn Kubelet>>>,
}

fn strip_type_meta(mut v: Value) -> Value {
    if let Some(m) = v.as_object_mut() {
        m.remove("kind");
        m.remove("apiVersion");
    }
    v
}

impl Ctx<'_> {
    fn param(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn flag(&self, key: &str) -> bool {
        matches!(self.param(key), Some("true" | "1"))
    }

    fn dry_run(&self) -> bool {
        self.param("dryRun") == Some("All")
    }

    fn body_json(&self) -> Result<Value, ApiError> {
        if self.req.body.is_empty() {
            return Ok(Value::Object(Map::new()));
        }
        serde_json::from_slice(&self.req.body).map_err(|e| {
            ApiError::bad_request(format!(
                "the body of the request could not be decoded as JSON: {e}"
            ))
        })
    }

    fn process(&self, st: &mut State) -> Result<Outcome, ApiError> {
        let info = self.info;
        if !info.is_resource_request {
            return self.non_resource(st);
        }
        let def = by_plural(&info.api_group, &info.resource)
            .filter(|d| d.version == info.api_version)
            .ok_or_else(ApiError::no_route)?;
        let scoped_ok = if def.plural == "namespaces" {
            true
        } else if def.namespaced {
            !info.namespace.is_empty() || info.verb == "list" || info.verb == "watch"
        } else {
            info.namespace.is_empty()
        };
        if !scoped_ok {
            return Err(ApiError::no_route());
        }
        // WebSocket exec is a GET (verb get); from 1.35 the server also requires `create`.
        let mut verbs = vec![info.verb.as_str()];
        if def.plural == "pods"
            && info.subresource == "exec"
            && self.req.method == Method::GET
            && self.minor >= 35
        {
            verbs.push("create");
        }
        for verb in verbs {
            let attrs = Attributes {
                verb: verb.to_owned(),
                resource_request: true,
                group: info.api_group.clone(),
                resource: info.resource.clone(),
                subresource: info.subresource.clone(),
                namespace: info.namespace.clone(),
                name: info.name.clone(),
                path: info.path.clone(),
            };
            if !authz::authorize(&st.store, self.identity, &attrs).allowed {
                return Err(ApiError::forbidden_rbac(
                    &self.identity.username(),
                    verb,
                    &info.api_group,
                    &info.resource,
                    &info.subresource,
                    &info.namespace,
                    &info.name,
                ));
            }
        }
        let ns = if def.namespaced {
            info.namespace.as_str()
        } else {
            ""
        };
        if def.review {
            if info.verb != "create" || !info.subresource.is_empty() {
                return Err(ApiError::method_not_allowed(self.req.method.as_str()));
            }
            return self
                .review(st, def)
                .map(|v| Outcome::Reply(json_reply(201, &v)));
        }
        let reply = match (info.subresource.as_str(), info.verb.as_str()) {
            (_, "watch") => {
                return Err(ApiError::method_not_allowed(
                    "watch (keyhole-testkit does not stream watches; list instead)",
                ));
            }
            ("", "list") => json_reply(200, &self.list(st, def, (!ns.is_empty()).then_some(ns))?),
            ("", "get") => json_reply(200, &self.get(st, def, ns)?.clone()),
            ("", "create") => {
                let obj =
                    objects::create(st, self.now, def, ns, self.body_json()?, self.dry_run())?;
                json_reply(201, &obj)
            }
            ("" | "status" | "ephemeralcontainers", "update" | "patch") => {
                let part = self.part(def)?;
                let (code, obj) = self.write(st, def, ns, part)?;
                json_reply(code, &obj)
            }
            ("status" | "ephemeralcontainers", "get") => {
                self.part(def)?;
                json_reply(200, &self.get(st, def, ns)?.clone())
            }
            ("", "delete") => {
                let opts = self.delete_opts()?;
                match objects::delete(st, self.now, def, ns, &info.name, &opts)? {
                    Deleted::Gone(obj) => json_reply(200, &deleted_status(def, &obj)),
                    Deleted::Pending(obj) => json_reply(200, &obj),
                }
            }
            ("", "deletecollection") => json_reply(200, &self.delete_collection(st, def, ns)?),
            ("exec", "get" | "create") if def.plural == "pods" => {
                return self.exec(st, def, ns).map(|s| Outcome::Exec(Box::new(s)));
            }
            ("log", "get") if def.plural == "pods" => self.log(st, def, ns)?,
            ("token", "create") if def.plural == "serviceaccounts" => {
                let out = tokens::token_request(st, self.now, ns, &info.name, &self.body_json()?)?;
                json_reply(201, &out)
            }
            ("", _) => return Err(ApiError::method_not_allowed(self.req.method.as_str())),
            _ => return Err(ApiError::no_route()),
        };
        Ok(Outcome::Reply(reply))
    }

    fn part(&self, def: &ResourceDef) -> Result<Part, ApiError> {
        match (def.plural, self.info.subresource.as_str()) {
            (_, "") => Ok(Part::Main),
            ("pods" | "namespaces", "status") => Ok(Part::Status),
            ("pods", "ephemeralcontainers") => Ok(Part::EphemeralContainers),
            _ => Err(ApiError::no_route()),
        }
    }

    fn get<'s>(&self, st: &'s State, def: &ResourceDef, ns: &str) -> Result<&'s Value, ApiError> {
        st.store
            .get(def, ns, &self.info.name)
            .ok_or_else(|| ApiError::not_found(def.group, def.plural, &self.info.name))
    }

    fn selected<'s>(
        &self,
        st: &'s State,
        def: &ResourceDef,
        ns: Option<&'s str>,
    ) -> Result<Vec<&'s Value>, ApiError> {
        let labels = Selector::parse(self.param("labelSelector").unwrap_or(""))
            .map_err(ApiError::bad_request)?;
        let fields = FieldSelector::parse(self.param("fieldSelector").unwrap_or(""), def.kind)
            .map_err(ApiError::bad_request)?;
        Ok(st
            .store
            .list(def, ns)
            .filter(|o| labels.matches(&labels_of(o)) && fields.matches(o))
            .collect())
    }

    fn list(&self, st: &State, def: &ResourceDef, ns: Option<&str>) -> Result<Value, ApiError> {
        let items: Vec<Value> = self
            .selected(st, def, ns)?
            .into_iter()
            .map(|o| strip_type_meta(o.clone()))
            .collect();
        Ok(json!({
            "kind": format!("{}List", def.kind),
            "apiVersion": def.api_version(),
            "metadata": {"resourceVersion": st.store.current_rv()},
            "items": items,
        }))
    }

    /// PUT or PATCH of the main resource or a subresource.
    fn write(
        &self,
        st: &mut State,
        def: &'static ResourceDef,
        ns: &str,
        part: Part,
    ) -> Result<(u16, Value), ApiError> {
        let name = &self.info.name;
        let body = self.body_json()?;
        if self.info.verb == "update" {
            return objects::update(st, self.now, def, ns, name, body, part, self.dry_run())
                .map(|o| (200, o));
        }
        let content_type = self
            .req
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_owned();
        let existing = st.store.get(def, ns, name).cloned();
        if content_type == "application/apply-patch+yaml" {
            if self.param("fieldManager").is_none_or(str::is_empty) {
                return Err(ApiError::invalid(
                    "meta.k8s.io",
                    "PatchOptions",
                    "",
                    &[crate::status::FieldError::new(
                        "fieldManager",
                        crate::status::FieldErrorKind::Required,
                        "is required for apply patch",
                    )],
                ));
            }
            let Some(mut current) = existing else {
                if part != Part::Main {
                    return Err(ApiError::not_found(def.group, def.plural, name));
                }
                let mut obj = body;
                obj["metadata"]["name"] = json!(name);
                return objects::create(st, self.now, def, ns, obj, self.dry_run())
                    .map(|o| (201, o));
            };
            // Server-side apply approximated as a strategic merge of the applied configuration
            // (no field ownership: fields dropped from the configuration are not removed).
            patch::strategic_merge(&mut current, &body).map_err(unprocessable)?;
            return objects::update(st, self.now, def, ns, name, current, part, self.dry_run())
                .map(|o| (200, o));
        }
        let Some(mut current) = existing else {
            return Err(ApiError::not_found(def.group, def.plural, name));
        };
        // The patched document's resourceVersion is only a precondition if the patch sets it.
        let rv_before = current["metadata"]["resourceVersion"].clone();
        if let Some(m) = current["metadata"].as_object_mut() {
            m.remove("resourceVersion");
        }
        match content_type.as_str() {
            "application/merge-patch+json" => patch::merge_patch(&mut current, &body),
            "application/strategic-merge-patch+json" => {
                patch::strategic_merge(&mut current, &body).map_err(unprocessable)?;
            }
            "application/json-patch+json" => {
                patch::json_patch(&mut current, &body).map_err(|e| {
                    if e.starts_with("testing value") {
                        ApiError::conflict(def.group, def.plural, name, &e)
                    } else {
                        unprocessable(e)
                    }
                })?;
            }
            other => return Err(ApiError::unsupported_media_type(other)),
        }
        if current["metadata"].get("resourceVersion").is_none() {
            current["metadata"]["resourceVersion"] = rv_before;
        }
        objects::update(st, self.now, def, ns, name, current, part, self.dry_run())
            .map(|o| (200, o))
    }

    fn delete_opts(&self) -> Result<DeleteOpts, ApiError> {
        let body = self.body_json()?;
        let s = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_owned);
        let mut opts = DeleteOpts {
            propagation: s(&body["propagationPolicy"])
                .or_else(|| self.param("propagationPolicy").map(str::to_owned)),
            precondition_uid: s(&body["preconditions"]["uid"]),
            precondition_rv: s(&body["preconditions"]["resourceVersion"]),
            dry_run: self.dry_run()
                || body["dryRun"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x == "All")),
        };
        if opts.propagation.is_none() && body["orphanDependents"] == json!(true) {
            opts.propagation = Some("Orphan".into());
        }
        Ok(opts)
    }

    fn delete_collection(
        &self,
        st: &mut State,
        def: &'static ResourceDef,
        ns: &str,
    ) -> Result<Value, ApiError> {
        let names: Vec<(String, String)> = self
            .selected(st, def, (!ns.is_empty()).then_some(ns))?
            .into_iter()
            .map(|o| {
                (
                    o["metadata"]["namespace"].as_str().unwrap_or("").to_owned(),
                    o["metadata"]["name"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect();
        let opts = self.delete_opts()?;
        let mut items = Vec::new();
        for (ons, name) in names {
            // An earlier deletion in this loop may have collected this one already.
            match objects::delete(st, self.now, def, &ons, &name, &opts) {
                Ok(Deleted::Gone(o) | Deleted::Pending(o)) => items.push(strip_type_meta(o)),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(json!({
            "kind": format!("{}List", def.kind),
            "apiVersion": def.api_version(),
            "metadata": {"resourceVersion": st.store.current_rv()},
            "items": items,
        }))
    }

    fn container_for(&self, pod: &Value, allow_ephemeral: bool) -> Result<String, ApiError> {
        let name = &self.info.name;
        let mut names: Vec<&str> = Vec::new();
        let mut fields = vec!["containers", "initContainers"];
        if allow_ephemeral {
            fields.push("ephemeralContainers");
        }
        for f in &fields {
            for c in pod["spec"][*f].as_array().into_iter().flatten() {
                names.push(c["name"].as_str().unwrap_or(""));
            }
        }
        match self.param("container").filter(|c| !c.is_empty()) {
            Some(c) if names.contains(&c) => Ok(c.to_owned()),
            Some(c) => Err(ApiError::bad_request(format!(
                "container {c} is not valid for pod {name}"
            ))),
            None => {
                let regular: Vec<&str> = pod["spec"]["containers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c["name"].as_str())
                    .collect();
                if regular.len() == 1 {
                    Ok(regular[0].to_owned())
                } else {
                    Err(ApiError::bad_request(format!(
                        "a container name must be specified for pod {name}, choose one of: [{}]",
                        regular.join(" ")
                    )))
                }
            }
        }
    }

    fn exec(&self, st: &State, def: &ResourceDef, ns: &str) -> Result<ExecStart, ApiError> {
        let pod = self.get(st, def, ns)?;
        let headers = &self.req.headers;
        let header = |h: http::header::HeaderName| {
            headers
                .get(h)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_ascii_lowercase()
        };
        let key = headers
            .get(http::header::SEC_WEBSOCKET_KEY)
            .map(|k| k.as_bytes().to_vec());
        let upgrade = header(http::header::UPGRADE) == "websocket"
            && header(http::header::CONNECTION).contains("upgrade");
        let (true, Some(key)) = (upgrade, key) else {
            return Err(ApiError::bad_request("Upgrade request required"));
        };
        let offered = header(http::header::SEC_WEBSOCKET_PROTOCOL);
        let offered: Vec<&str> = offered.split(',').map(str::trim).collect();
        let protocol = if offered.contains(&"v5.channel.k8s.io") {
            "v5.channel.k8s.io"
        } else if offered.contains(&"v4.channel.k8s.io") {
            "v4.channel.k8s.io"
        } else {
            return Err(ApiError::bad_request(
                "unable to upgrade connection: keyhole-testkit speaks only v5.channel.k8s.io and v4.channel.k8s.io",
            ));
        };
        let command: Vec<String> = self
            .query
            .iter()
            .filter(|(k, _)| k == "command")
            .map(|(_, v)| v.clone())
            .collect();
        if command.is_empty() {
            return Err(ApiError::bad_request("you must specify at least 1 command"));
        }
        let container = self.container_for(pod, true)?;
        let phase = pod["status"]["phase"].as_str().unwrap_or("");
        if phase == "Succeeded" || phase == "Failed" {
            return Err(ApiError::bad_request(format!(
                "cannot exec into a container in a completed pod; current phase is {phase}"
            )));
        }
        let running = [
            "containerStatuses",
            "initContainerStatuses",
            "ephemeralContainerStatuses",
        ]
        .iter()
        .flat_map(|f| pod["status"][*f].as_array().into_iter().flatten())
        .any(|s| s["name"] == container.as_str() && s["state"]["running"].is_object());
        if !running {
            return Err(ApiError::bad_request(format!(
                "unable to upgrade connection: container not found (\"{container}\")"
            )));
        }
        Ok(ExecStart {
            request: ExecRequest {
                namespace: ns.to_owned(),
                pod: self.info.name.clone(),
                container,
                command,
                stdin: Vec::new(),
                tty: self.flag("tty"),
                identity: self.identity.clone(),
            },
            want_stdin: self.flag("stdin"),
            want_stdout: self.flag("stdout"),
            want_stderr: self.flag("stderr"),
            protocol,
            accept_key: accept_key(&key),
        })
    }

    fn log(&self, st: &State, def: &ResourceDef, ns: &str) -> Result<Reply, ApiError> {
        let pod = self.get(st, def, ns)?;
        let container = self.container_for(pod, true)?;
        let kubelet = pod["spec"]["nodeName"].as_str().and_then(|node| {
            self.kubelets
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(node)
                .cloned()
        });
        let mut text = match kubelet {
            // A real node serves its containers' logs (the kubelet's /containerLogs).
            Some(k) => k
                .log(ns, &self.info.name, &container)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "container \"{container}\" in pod \"{}\" is waiting to start: ContainerCreating",
                        self.info.name
                    ))
                })?,
            None => st
                .logs
                .get(&(ns.to_owned(), self.info.name.clone(), container))
                .cloned()
                .unwrap_or_default(),
        };
        if let Some(n) = self
            .param("tailLines")
            .and_then(|n| n.parse::<usize>().ok())
        {
            let lines: Vec<&str> = text.split_inclusive('\n').collect();
            text = lines[lines.len().saturating_sub(n)..].concat();
        }
        if let Some(n) = self
            .param("limitBytes")
            .and_then(|n| n.parse::<usize>().ok())
        {
            let mut cut = n.min(text.len());
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
        }
        Ok(text_reply(200, text))
    }

    fn review(&self, st: &State, def: &ResourceDef) -> Result<Value, ApiError> {
        let body = self.body_json()?;
        let spec = body.get("spec").cloned().unwrap_or_else(|| json!({}));
        let status = match def.plural {
            "selfsubjectaccessreviews" => {
                let ra = &spec["resourceAttributes"];
                let nra = &spec["nonResourceAttributes"];
                let s = |v: &Value| v.as_str().unwrap_or("").to_owned();
                let attrs = if ra.is_object() {
                    Attributes {
                        verb: s(&ra["verb"]),
                        resource_request: true,
                        group: s(&ra["group"]),
                        resource: s(&ra["resource"]),
                        subresource: s(&ra["subresource"]),
                        namespace: s(&ra["namespace"]),
                        name: s(&ra["name"]),
                        path: String::new(),
                    }
                } else if nra.is_object() {
                    Attributes {
                        verb: s(&nra["verb"]),
                        path: s(&nra["path"]),
                        ..Attributes::default()
                    }
                } else {
                    return Err(ApiError::invalid(
                        "authorization.k8s.io",
                        def.kind,
                        "",
                        &[crate::status::FieldError::new(
                            "spec.resourceAttributes",
                            crate::status::FieldErrorKind::Required,
                            "exactly one of nonResourceAttributes or resourceAttributes must be specified",
                        )],
                    ));
                };
                let d = authz::authorize(&st.store, self.identity, &attrs);
                let mut status = json!({"allowed": d.allowed});
                if !d.reason.is_empty() {
                    status["reason"] = json!(d.reason);
                }
                status
            }
            "selfsubjectrulesreviews" => {
                let ns = spec["namespace"].as_str().unwrap_or("");
                let (resource_rules, non_resource_rules) = if *self.identity == Identity::Admin {
                    (
                        vec![json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]})],
                        vec![json!({"verbs": ["*"], "nonResourceURLs": ["*"]})],
                    )
                } else {
                    let rules = authz::rules_for(&st.store, self.identity, ns);
                    let mut res = Vec::new();
                    let mut non = Vec::new();
                    for r in rules {
                        let mut rule = r.rule;
                        if let Some(m) = rule.as_object_mut() {
                            m.retain(|_, v| v.as_array().is_some_and(|a| !a.is_empty()));
                        }
                        if rule.get("nonResourceURLs").is_some() {
                            non.push(rule);
                        } else {
                            res.push(rule);
                        }
                    }
                    (res, non)
                };
                json!({"resourceRules": resource_rules, "nonResourceRules": non_resource_rules, "incomplete": false})
            }
            _ => {
                let mut user = json!({
                    "username": self.identity.username(),
                    "groups": self.identity.groups(),
                });
                if let Some(rec) = self.record {
                    user["uid"] = json!(rec.sa_uid);
                    user["extra"] = json!({"authentication.kubernetes.io/credential-id": [format!("JTI={}", rec.jti)]});
                }
                json!({"userInfo": user})
            }
        };
        let mut out = json!({
            "kind": def.kind,
            "apiVersion": def.api_version(),
            "metadata": {"creationTimestamp": Value::Null},
            "status": status,
        });
        if def.plural != "selfsubjectreviews" {
            out["spec"] = spec;
        }
        Ok(out)
    }

    fn non_resource(&self, st: &State) -> Result<Outcome, ApiError> {
        let path = self.info.path.trim_end_matches('/');
        let path = if path.is_empty() { "/" } else { path };
        let attrs = Attributes {
            verb: self.req.method.as_str().to_ascii_lowercase(),
            path: path.to_owned(),
            ..Attributes::default()
        };
        if !authz::authorize(&st.store, self.identity, &attrs).allowed {
            return Err(ApiError::new_forbidden_path(
                &self.identity.username(),
                &attrs.verb,
                path,
            ));
        }
        let groups: Vec<&str> = {
            let mut g: Vec<&str> = RESOURCES
                .iter()
                .map(|r| r.group)
                .filter(|g| !g.is_empty())
                .collect();
            g.dedup();
            g
        };
        let body = match path {
            "/version" => json!({
                "major": "1", "minor": self.minor.to_string(),
                "gitVersion": format!("v1.{}.0", self.minor),
                "gitCommit": "keyhole-testkit", "gitTreeState": "clean",
                "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.24", "compiler": "gc",
                "platform": "linux/amd64",
            }),
            "/healthz" | "/livez" | "/readyz" => {
                return Ok(Outcome::Reply(text_reply(200, "ok".into())));
            }
            "/api" => json!({"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}]}),
            "/apis" => {
                json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups.iter().map(|g| json!({
                "name": g,
                "versions": [{"groupVersion": format!("{g}/v1"), "version": "v1"}],
                "preferredVersion": {"groupVersion": format!("{g}/v1"), "version": "v1"},
            })).collect::<Vec<_>>()})
            }
            p => {
                let gv = p
                    .strip_prefix("/api/")
                    .map(|v| (String::new(), v.to_owned()))
                    .or_else(|| {
                        p.strip_prefix("/apis/")
                            .and_then(|r| r.split_once('/'))
                            .map(|(g, v)| (g.to_owned(), v.to_owned()))
                    });
                let Some((group, version)) = gv.filter(|(_, v)| v == "v1") else {
                    return Err(ApiError::no_route());
                };
                let resources: Vec<Value> = RESOURCES
                    .iter()
                    .filter(|r| r.group == group)
                    .map(|r| {
                        let verbs = if r.review { json!(["create"]) } else {
                            json!(["create", "delete", "deletecollection", "get", "list", "patch", "update"])
                        };
                        json!({"name": r.plural, "singularName": r.kind.to_lowercase(), "namespaced": r.namespaced, "kind": r.kind, "verbs": verbs})
                    })
                    .collect();
                if resources.is_empty() {
                    return Err(ApiError::no_route());
                }
                let gv = if group.is_empty() {
                    version
                } else {
                    format!("{group}/{version}")
                };
                json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources})
            }
        };
        Ok(Outcome::Reply(json_reply(200, &body)))
    }
}

fn unprocessable(message: String) -> ApiError {
    ApiError::unprocessable(message)
}

/// The Status a completed delete answers with.
fn deleted_status(def: &ResourceDef, obj: &Value) -> Value {
    let mut details = json!({
        "name": obj["metadata"]["name"],
        "kind": def.plural,
        "uid": obj["metadata"]["uid"],
    });
    if !def.group.is_empty() {
        details["group"] = json!(def.group);
    }
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details})
}
