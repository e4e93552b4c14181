//! Fault injection and the call recorder.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use jiff::Timestamp;

use crate::authz::Identity;

/// What an injected fault does to a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this HTTP status and a matching `Status` body (500 InternalError, 403
    /// Forbidden, 409 Conflict, ...) without touching any state.
    Status(u16),
    /// Never answer: the response future pends until the client gives up (its timeout) or the
    /// fake is dropped.
    Hang,
    /// Drop the connection before doing anything: over HTTPS the socket is closed without a
    /// response; in-process the `Service` returns an error.
    DropConnection,
    /// Perform the call (state changes happen) but drop the connection instead of answering:
    /// the client cannot know whether its create/delete took effect.
    DropAfterApply,
    /// Wait this long, then handle the call as usual: one slow call (an exec the kubelet is
    /// slow to start, say), where [`Faults::set_latency`] slows every call. A tokio sleep, so
    /// paused test time skips it.
    Delay(Duration),
}

/// A rule that injects a fault into every call it matches.
#[derive(Debug, Clone)]
pub struct FaultRule {
    method: Option<String>,
    path: Option<String>,
    fault: Fault,
    remaining: Option<usize>,
}

impl FaultRule {
    /// A rule matching every call; narrow it with [`FaultRule::method`] and [`FaultRule::path`].
    pub fn new(fault: Fault) -> Self {
        Self {
            method: None,
            path: None,
            fault,
            remaining: None,
        }
    }

    /// Only calls with this HTTP method (case-insensitive, e.g. `"DELETE"`).
    pub fn method(mut self, method: &str) -> Self {
        self.method = Some(method.to_ascii_uppercase());
        self
    }

    /// Only calls whose path (no query) matches this glob; `*` matches any run of characters,
    /// including `/` (e.g. `"/api/v1/namespaces/*/serviceaccounts/*/token"`).
    pub fn path(mut self, glob: &str) -> Self {
        self.path = Some(glob.to_owned());
        self
    }

    /// Fire at most `n` times, then stop matching.
    pub fn times(mut self, n: usize) -> Self {
        self.remaining = Some(n);
        self
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        self.remaining != Some(0)
            && self.method.as_deref().is_none_or(|m| m == method)
            && self.path.as_deref().is_none_or(|g| glob_matches(g, path))
    }
}

/// `*`-only glob match.
fn glob_matches(glob: &str, text: &str) -> bool {
    let parts: Vec<&str> = glob.split('*').collect();
    if parts.len() == 1 {
        return glob == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

#[derive(Debug, Default)]
struct FaultState {
    by_index: Vec<(usize, Fault)>,
    rules: Vec<FaultRule>,
    latency: Duration,
    /// Stdout bytes after which the next exec sessions' connections drop (one per entry).
    exec_drops: Vec<usize>,
}

/// The fault and latency controls of a fake cluster (cloning shares them).
#[derive(Debug, Clone, Default)]
pub struct Faults {
    inner: Arc<Mutex<FaultState>>,
}

impl Faults {
    fn lock(&self) -> std::sync::MutexGuard<'_, FaultState> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Fail the call with this 0-based index (the index it gets in [`crate::FakeCluster::calls`],
    /// counting every call the fake receives).
    pub fn fail_call(&self, index: usize, fault: Fault) {
        self.lock().by_index.push((index, fault));
    }

    /// Fail every call the rule matches (in addition to index faults; the first match wins).
    pub fn fail_matching(&self, rule: FaultRule) {
        self.lock().rules.push(rule);
    }

    /// Delay every call by `latency` before it is handled (a tokio sleep, so paused test time
    /// skips it).
    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// Cuts the next exec session (scripted or on a real node) once it has sent `bytes` bytes
    /// of stdout: no more output and no exit Status, the WebSocket just closes, as when the
    /// connection is lost mid-stream (on a real node the `runc exec` client is killed too).
    /// Each call arms one session.
    pub fn drop_exec_after(&self, bytes: usize) {
        self.lock().exec_drops.push(bytes);
    }

    /// The stdout budget of the exec session starting now, if one was armed.
    pub(crate) fn take_exec_drop(&self) -> Option<usize> {
        let mut st = self.lock();
        (!st.exec_drops.is_empty()).then(|| st.exec_drops.remove(0))
    }

    /// Removes every fault and the latency.
    pub fn clear(&self) {
        *self.lock() = FaultState::default();
    }

    pub(crate) fn latency(&self) -> Duration {
        self.lock().latency
    }

    /// The fault for call `index`, consuming one firing of a counted rule.
    pub(crate) fn take(&self, index: usize, method: &str, path: &str) -> Option<Fault> {
        let mut st = self.lock();
        if let Some((_, f)) = st.by_index.iter().find(|(i, _)| *i == index) {
            return Some(*f);
        }
        let rule = st.rules.iter_mut().find(|r| r.matches(method, path))?;
        if let Some(n) = rule.remaining.as_mut() {
            *n -= 1;
        }
        Some(rule.fault)
    }
}

/// One call the fake received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedCall {
    /// 0-based position among all calls (what [`Faults::fail_call`] takes).
    pub index: usize,
    /// HTTP method.
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// The raw query string ("" when none).
    pub query: String,
    /// Who the authenticator decided made the call.
    pub identity: Identity,
    /// The Kubernetes verb (`get`, `list`, `create`, ...; "" for non-resource paths).
    pub verb: String,
    /// The HTTP status answered; `None` for a hang or a dropped connection.
    pub status: Option<u16>,
    /// The injected fault, if any.
    pub fault: Option<Fault>,
    /// The fake clock's time when the call arrived.
    pub at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_and_counted_rules() {
        assert!(glob_matches("/api/*/pods/*", "/api/v1/namespaces/x/pods/p"));
        assert!(glob_matches("*token", "/a/token"));
        assert!(!glob_matches("/api/*/pods", "/api/v1/pods/x"));
        assert!(glob_matches("exact", "exact"));
        let f = Faults::default();
        f.fail_matching(FaultRule::new(Fault::Status(500)).method("delete").times(1));
        assert_eq!(f.take(0, "GET", "/x"), None);
        assert_eq!(f.take(1, "DELETE", "/x"), Some(Fault::Status(500)));
        assert_eq!(
            f.take(2, "DELETE", "/x"),
            None,
            "the counted rule is used up"
        );
        f.fail_call(3, Fault::Hang);
        assert_eq!(f.take(3, "GET", "/x"), Some(Fault::Hang));
    }
}
