//! How Keyhole words a `kube` client error for people (feature `kube`).
//!
//! kube's own `Display` of an API refusal appends a `Debug` dump of the whole `Status`
//! (`ApiError: ... (Status { status: Some(Failure), code: 403, metadata: ... })`), which every
//! error message of Keyhole would then carry. This says what the API server said, once.

/// The API server's message with its HTTP code and reason (`cannot exec into a container in
/// a completed pod (HTTP 400 BadRequest)`), or the client's own error for anything else.
pub fn kube_error(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => {
            let message = s.message.trim();
            let message = if message.is_empty() {
                "the API server gave no message"
            } else {
                message
            };
            match (s.code, s.reason.trim()) {
                (0, "") => message.to_owned(),
                (0, reason) => format!("{message} ({reason})"),
                (code, "") => format!("{message} (HTTP {code})"),
                (code, reason) => format!("{message} (HTTP {code} {reason})"),
            }
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16, reason: &str, message: &str) -> kube::Error {
        let s: kube::core::Status = serde_json::from_value(serde_json::json!({
            "status": "Failure", "code": code, "reason": reason, "message": message,
            "metadata": {},
        }))
        .unwrap();
        kube::Error::Api(Box::new(s))
    }

    #[test]
    fn an_api_refusal_reads_as_its_message_code_and_reason_without_a_debug_dump() {
        let e = api(403, "Forbidden", "pods \"web-0\" is forbidden: no");
        assert!(e.to_string().contains("Status {"), "kube's own text: {e}");
        assert_eq!(
            kube_error(&e),
            "pods \"web-0\" is forbidden: no (HTTP 403 Forbidden)"
        );
        assert_eq!(kube_error(&api(500, "", "boom")), "boom (HTTP 500)");
        assert_eq!(
            kube_error(&api(0, "", "")),
            "the API server gave no message"
        );
    }

    #[test]
    fn other_errors_keep_the_clients_words() {
        let e = kube::Error::LinesCodecMaxLineLengthExceeded;
        assert_eq!(kube_error(&e), e.to_string());
    }
}
