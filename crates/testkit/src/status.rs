//! `metav1.Status` failure bodies, worded as the real API server words them, so client code that
//! matches on `reason`/`code` (and humans reading messages) see what a cluster would send.

use serde_json::{Value, json};

/// A failed API call: HTTP code plus the Status body.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub(crate) code: u16,
    pub(crate) body: Value,
}

impl ApiError {
    fn new(code: u16, reason: &str, message: String, details: Option<Value>) -> Self {
        let mut body = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code,
        });
        if let Some(details) = details {
            body["details"] = details;
        }
        Self { code, body }
    }

    /// `pods "x" not found` (resource is `plural` or `plural.group`).
    pub(crate) fn not_found(group: &str, plural: &str, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", qualified(group, plural)),
            Some(details(group, plural, name)),
        )
    }

    /// `pods "x" already exists`.
    pub(crate) fn already_exists(group: &str, plural: &str, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", qualified(group, plural)),
            Some(details(group, plural, name)),
        )
    }

    /// An optimistic-concurrency failure (resourceVersion or uid precondition).
    pub(crate) fn conflict(group: &str, plural: &str, name: &str, why: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                qualified(group, plural)
            ),
            Some(details(group, plural, name)),
        )
    }

    /// 422 with one or more field causes: `Kind "name" is invalid: field: Reason: detail`.
    pub(crate) fn invalid(group: &str, kind: &str, name: &str, causes: &[FieldError]) -> Self {
        let group_kind = if group.is_empty() {
            kind.to_owned()
        } else {
            format!("{kind}.{group}")
        };
        let joined = causes
            .iter()
            .map(FieldError::render)
            .collect::<Vec<_>>()
            .join(", ");
        let message = if causes.len() > 1 {
            format!("{group_kind} \"{name}\" is invalid: [{joined}]")
        } else {
            format!("{group_kind} \"{name}\" is invalid: {joined}")
        };
        let mut d = json!({ "name": name, "kind": kind });
        if !group.is_empty() {
            d["group"] = json!(group);
        }
        d["causes"] = causes
            .iter()
            .map(|c| {
                json!({
                    "reason": c.kind.reason(),
                    "message": c.render_without_field(),
                    "field": c.field,
                })
            })
            .collect();
        Self::new(422, "Invalid", message, Some(d))
    }

    /// `pods "x" is forbidden: User "u" cannot get resource "pods" in API group "" in the
    /// namespace "ns"` (the exact RBAC denial wording).
    pub(crate) fn forbidden_rbac(
        user: &str,
        verb: &str,
        group: &str,
        resource: &str,
        subresource: &str,
        namespace: &str,
        name: &str,
    ) -> Self {
        let plural_q = qualified(group, resource);
        let subject = if name.is_empty() {
            plural_q
        } else {
            format!("{plural_q} \"{name}\"")
        };
        let combined = if subresource.is_empty() {
            resource.to_owned()
        } else {
            format!("{resource}/{subresource}")
        };
        let scope = if namespace.is_empty() {
            "at the cluster scope".to_owned()
        } else {
            format!("in the namespace \"{namespace}\"")
        };
        let message = format!(
            "{subject} is forbidden: User \"{user}\" cannot {verb} resource \"{combined}\" in API group \"{group}\" {scope}"
        );
        Self::new(
            403,
            "Forbidden",
            message,
            Some(details(group, resource, name)),
        )
    }

    /// A 403 that is not an RBAC denial (admission, injected fault).
    pub(crate) fn forbidden(group: &str, plural: &str, name: &str, why: &str) -> Self {
        let subject = if name.is_empty() {
            qualified(group, plural)
        } else {
            format!("{} \"{name}\"", qualified(group, plural))
        };
        Self::new(
            403,
            "Forbidden",
            format!("{subject} is forbidden: {why}"),
            Some(details(group, plural, name)),
        )
    }

    /// 422 for a patch that cannot be applied to the object.
    pub(crate) fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(422, "Invalid", message.into(), Some(json!({})))
    }

    /// 403 on a non-resource path.
    pub(crate) fn new_forbidden_path(user: &str, verb: &str, path: &str) -> Self {
        Self::new(
            403,
            "Forbidden",
            format!("forbidden: User \"{user}\" cannot {verb} path \"{path}\""),
            Some(json!({})),
        )
    }

    /// 401 for a missing, unknown, expired or revoked token.
    pub(crate) fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized".to_owned(), None)
    }

    /// 400 BadRequest.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message.into(), None)
    }

    /// 404 for a path the server does not serve.
    pub(crate) fn no_route() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource".to_owned(),
            Some(json!({})),
        )
    }

    /// 405 for a verb the resource does not support.
    pub(crate) fn method_not_allowed(method: &str) -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            format!("the server does not allow this method on the requested resource ({method})"),
            Some(json!({})),
        )
    }

    /// 415 for a patch type the server does not understand.
    pub(crate) fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {content_type:?})"
            ),
            Some(json!({})),
        )
    }

    /// An injected or internal 5xx.
    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::new(
            500,
            "InternalError",
            format!("Internal error occurred: {}", message.into()),
            Some(json!({ "causes": [{ "message": "injected by keyhole-testkit" }] })),
        )
    }

    /// The Status for an injected fault with an arbitrary code.
    pub(crate) fn injected(code: u16) -> Self {
        match code {
            403 => Self::forbidden("", "resource", "", "injected by keyhole-testkit"),
            409 => Self::conflict(
                "",
                "resource",
                "injected",
                "the object has been modified; please apply your changes to the latest version and try again",
            ),
            404 => Self::new(404, "NotFound", "injected by keyhole-testkit".into(), None),
            429 => Self::new(
                429,
                "TooManyRequests",
                "injected by keyhole-testkit".into(),
                None,
            ),
            503 => Self::new(
                503,
                "ServiceUnavailable",
                "injected by keyhole-testkit".into(),
                None,
            ),
            504 => Self::new(504, "Timeout", "injected by keyhole-testkit".into(), None),
            c if c >= 500 => {
                let mut e = Self::internal("injected by keyhole-testkit");
                e.code = c;
                e.body["code"] = json!(c);
                e
            }
            c => Self::new(c, "Unknown", "injected by keyhole-testkit".into(), None),
        }
    }
}

fn qualified(group: &str, plural: &str) -> String {
    if group.is_empty() {
        plural.to_owned()
    } else {
        format!("{plural}.{group}")
    }
}

fn details(group: &str, plural: &str, name: &str) -> Value {
    let mut d = json!({ "kind": plural });
    if !name.is_empty() {
        d["name"] = json!(name);
    }
    if !group.is_empty() {
        d["group"] = json!(group);
    }
    d
}

/// The kinds of field errors the fake reports, with the real `metav1.CauseType` reasons.
#[derive(Debug, Clone, Copy)]
pub(crate) enum FieldErrorKind {
    Required,
    Invalid,
    Forbidden,
    Duplicate,
    Unsupported,
    NotFound,
}

impl FieldErrorKind {
    fn reason(self) -> &'static str {
        match self {
            Self::Required => "FieldValueRequired",
            Self::Invalid => "FieldValueInvalid",
            Self::Forbidden => "FieldValueForbidden",
            Self::Duplicate => "FieldValueDuplicate",
            Self::Unsupported => "FieldValueNotSupported",
            Self::NotFound => "FieldValueNotFound",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Required => "Required value",
            Self::Invalid => "Invalid value",
            Self::Forbidden => "Forbidden",
            Self::Duplicate => "Duplicate value",
            Self::Unsupported => "Unsupported value",
            Self::NotFound => "Not found",
        }
    }
}

/// One field-level validation failure.
#[derive(Debug, Clone)]
pub(crate) struct FieldError {
    pub(crate) field: String,
    pub(crate) kind: FieldErrorKind,
    /// The offending value, rendered (for Invalid/Duplicate/Unsupported).
    pub(crate) value: Option<String>,
    pub(crate) detail: String,
}

impl FieldError {
    pub(crate) fn new(
        field: impl Into<String>,
        kind: FieldErrorKind,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            field: field.into(),
            kind,
            value: None,
            detail: detail.into(),
        }
    }

    pub(crate) fn with_value(mut self, value: impl Into<String>) -> Self {
        self.value = Some(value.into());
        self
    }

    fn render_without_field(&self) -> String {
        let mut s = self.kind.label().to_owned();
        if let Some(v) = &self.value {
            s.push_str(": ");
            s.push_str(v);
        }
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }

    fn render(&self) -> String {
        format!("{}: {}", self.field, self.render_without_field())
    }
}
