//! Scripted `pods/exec` over a real WebSocket (the `v5.channel.k8s.io` / `v4.channel.k8s.io`
//! subprotocols kube speaks): the server side reads stdin until the client closes it, hands the
//! command to the test's handler, and streams back stdout, stderr and the exit Status.

use std::sync::Arc;

use futures::{SinkExt as _, StreamExt as _};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

use crate::authz::Identity;
use crate::cluster::Inner;

/// One exec the fake received, as the handler sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecRequest {
    /// Pod namespace.
    pub namespace: String,
    /// Pod name.
    pub pod: String,
    /// The container (regular, init or ephemeral) the command runs in.
    pub container: String,
    /// argv.
    pub command: Vec<String>,
    /// Everything the client wrote to stdin before closing it (empty without `stdin=true`).
    pub stdin: Vec<u8>,
    /// Whether a TTY was requested.
    pub tty: bool,
    /// Who ran it.
    pub identity: Identity,
}

/// What the scripted "process" produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecResponse {
    /// Bytes for the stdout channel.
    pub stdout: Vec<u8>,
    /// Bytes for the stderr channel.
    pub stderr: Vec<u8>,
    /// Exit status; non-zero is reported as a `NonZeroExitCode` Status as the kubelet does.
    pub exit_code: i32,
}

impl ExecResponse {
    /// Exit 0 with this stdout.
    pub fn stdout(out: impl Into<Vec<u8>>) -> Self {
        Self {
            stdout: out.into(),
            ..Self::default()
        }
    }

    /// This exit code with this stderr.
    pub fn failure(exit_code: i32, stderr: impl Into<Vec<u8>>) -> Self {
        Self {
            stderr: stderr.into(),
            exit_code,
            ..Self::default()
        }
    }
}

/// The registered exec script.
pub(crate) type ExecHandler = Arc<dyn Fn(&ExecRequest) -> ExecResponse + Send + Sync>;

/// An authorized, validated exec waiting for its WebSocket.
#[derive(Debug, Clone)]
pub(crate) struct ExecStart {
    pub(crate) request: ExecRequest,
    pub(crate) want_stdin: bool,
    pub(crate) want_stdout: bool,
    pub(crate) want_stderr: bool,
    pub(crate) protocol: &'static str,
    pub(crate) accept_key: String,
}

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const STATUS: u8 = 3;
const CLOSE: u8 = 255;

fn frame(channel: u8, data: &[u8]) -> Message {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(channel);
    v.extend_from_slice(data);
    Message::binary(v)
}

/// Runs the server side of one exec session on an upgraded connection.
pub(crate) async fn run_session<I>(inner: Arc<Inner>, io: I, start: ExecStart)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let ws = WebSocketStream::from_raw_socket(TokioIo::new(io), Role::Server, None).await;
    let (mut tx, mut rx) = ws.split();
    let mut request = start.request;
    if start.want_stdin {
        // v5 ends stdin with a CLOSE(stdin) frame; v4 can only close the whole socket.
        while let Some(Ok(msg)) = rx.next().await {
            match msg {
                Message::Binary(b) if b.first() == Some(&STDIN) => {
                    request.stdin.extend_from_slice(&b[1..]);
                }
                Message::Binary(b) if b.first() == Some(&CLOSE) && b.get(1) == Some(&STDIN) => {
                    break;
                }
                Message::Close(_) => break,
                _ => {}
            }
        }
    }
    let handler = inner
        .exec_handler
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    inner.lock().execs.push(request.clone());
    let response = match handler {
        Some(h) => h(&request),
        None => ExecResponse::failure(
            126,
            "keyhole-testkit: no exec handler registered (call FakeCluster::set_exec_handler)\n",
        ),
    };
    // Errors below mean the client went away; there is nobody left to tell.
    if start.want_stdout && !response.stdout.is_empty() {
        for chunk in response.stdout.chunks(32 * 1024) {
            let _ = tx.send(frame(STDOUT, chunk)).await;
        }
    }
    if start.want_stderr && !response.stderr.is_empty() {
        for chunk in response.stderr.chunks(32 * 1024) {
            let _ = tx.send(frame(STDERR, chunk)).await;
        }
    }
    let status = if response.exit_code == 0 {
        json!({"metadata": {}, "status": "Success"})
    } else {
        json!({
            "metadata": {},
            "status": "Failure",
            "message": format!(
                "command terminated with non-zero exit code: error executing command [{}], exit code {}",
                request.command.join(" "),
                response.exit_code
            ),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": response.exit_code.to_string()}]},
        })
    };
    let _ = tx.send(frame(STATUS, status.to_string().as_bytes())).await;
    let _ = tx.send(Message::Close(None)).await;
    // Drain until the client acknowledges the close, so it reads everything sent.
    while let Some(Ok(_)) = rx.next().await {}
}

/// The `Sec-WebSocket-Accept` value for a client key.
pub(crate) fn accept_key(key: &[u8]) -> String {
    tokio_tungstenite::tungstenite::handshake::derive_accept_key(key)
}
