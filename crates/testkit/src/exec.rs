//! `pods/exec` over a real WebSocket (the `v5.channel.k8s.io` / `v4.channel.k8s.io`
//! subprotocols kube speaks).
//!
//! For a pod on a real node ([`crate::node::Node`]) the session is streamed both ways: stdin
//! frames go to the process as they arrive, its stdout and stderr come back as they are written,
//! then its exit Status. Otherwise it is scripted: the server side reads stdin until the client
//! closes it, hands the command to the test's handler, and sends back stdout, stderr and the
//! exit Status.

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
    let drop_after = inner.faults.take_exec_drop();
    if let Some(kubelet) = inner.kubelet_for(&start.request.namespace, &start.request.pod) {
        let request = stream_session(kubelet.as_ref(), &start, drop_after, &mut tx, &mut rx).await;
        inner.lock().execs.push(request);
        return;
    }
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
    if let Some(n) = drop_after {
        // The injected mid-stream loss: part of stdout, then the session ends without a Status.
        let part = &response.stdout[..n.min(response.stdout.len())];
        if start.want_stdout && !part.is_empty() {
            let _ = tx.send(frame(STDOUT, part)).await;
        }
        end_without_status(&mut tx, &mut rx).await;
        return;
    }
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
    let status = exit_status(&request.command, response.exit_code);
    let _ = tx.send(frame(STATUS, status.to_string().as_bytes())).await;
    let _ = tx.send(Message::Close(None)).await;
    // Drain until the client acknowledges the close, so it reads everything sent.
    while let Some(Ok(_)) = rx.next().await {}
}

/// The Status frame the kubelet sends when the command ends.
fn exit_status(command: &[String], exit_code: i32) -> serde_json::Value {
    if exit_code == 0 {
        json!({"metadata": {}, "status": "Success"})
    } else {
        json!({
            "metadata": {},
            "status": "Failure",
            "message": format!(
                "command terminated with non-zero exit code: error executing command [{}], exit code {exit_code}",
                command.join(" "),
            ),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": exit_code.to_string()}]},
        })
    }
}

type WsTx<I> = futures::stream::SplitSink<WebSocketStream<TokioIo<I>>, Message>;
type WsRx<I> = futures::stream::SplitStream<WebSocketStream<TokioIo<I>>>;

/// Runs the command on a real node and streams it; returns the request as recorded (with the
/// stdin that reached the process).
async fn stream_session<I>(
    kubelet: &dyn crate::cluster::Kubelet,
    start: &ExecStart,
    mut drop_after: Option<usize>,
    tx: &mut WsTx<I>,
    rx: &mut WsRx<I>,
) -> ExecRequest
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    use tokio::io::AsyncWriteExt as _;

    let mut request = start.request.clone();
    let mut child = match kubelet.exec(&request) {
        Ok(child) => child,
        Err(message) => {
            // What the kubelet answers when the runtime cannot start the process.
            let status = json!({"metadata": {}, "status": "Failure", "message": message,
                "reason": "InternalError"});
            let _ = tx.send(frame(STATUS, status.to_string().as_bytes())).await;
            let _ = tx.send(Message::Close(None)).await;
            while let Some(Ok(_)) = rx.next().await {}
            return request;
        }
    };
    // stdin is written by its own task, so a process blocked writing output never waits on a
    // stdin write of ours (and the other way round). Dropping the sender closes its stdin.
    let mut stdin = child
        .stdin
        .take()
        .filter(|_| start.want_stdin)
        .map(|mut w| {
            let (send, mut recv) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
            tokio::spawn(async move {
                while let Some(chunk) = recv.recv().await {
                    if w.write_all(&chunk).await.is_err() {
                        break;
                    }
                }
            });
            send
        });
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let (mut out_buf, mut err_buf) = (vec![0u8; 32 * 1024], vec![0u8; 32 * 1024]);
    let mut client_open = true;
    let mut client_gone = false;
    // The start of stderr: where runc says it could not start the command at all.
    let mut err_head = Vec::new();
    while stdout.is_some() || stderr.is_some() {
        tokio::select! {
            msg = rx.next(), if client_open => match msg {
                Some(Ok(Message::Binary(b))) if b.first() == Some(&STDIN) => {
                    request.stdin.extend_from_slice(&b[1..]);
                    if let Some(w) = &stdin
                        && w.send(b[1..].to_vec()).is_err()
                    {
                        stdin = None;
                    }
                }
                Some(Ok(Message::Binary(b))) if b.first() == Some(&CLOSE) && b.get(1) == Some(&STDIN) => {
                    stdin = None;
                }
                Some(Ok(Message::Close(_))) => {
                    // v4 closes the socket to end stdin; output may still be read by nobody.
                    stdin = None;
                    client_open = false;
                }
                None | Some(Err(_)) => {
                    stdin = None;
                    client_open = false;
                    client_gone = true;
                }
                Some(Ok(_)) => {}
            },
            n = read_some(stdout.as_mut(), &mut out_buf) => match n {
                Some(n) if n > 0 => {
                    let mut n = n;
                    if let Some(budget) = drop_after.as_mut() {
                        n = n.min(*budget);
                        *budget -= n;
                    }
                    if start.want_stdout && n > 0 && tx.send(frame(STDOUT, &out_buf[..n])).await.is_err() {
                        client_gone = true;
                    }
                    if drop_after == Some(0) {
                        client_gone = true;
                    }
                }
                _ => stdout = None,
            },
            n = read_some(stderr.as_mut(), &mut err_buf) => match n {
                Some(n) if n > 0 => {
                    if err_head.len() < 4096 {
                        err_head.extend_from_slice(&err_buf[..n]);
                    }
                    if start.want_stderr && tx.send(frame(STDERR, &err_buf[..n])).await.is_err() {
                        client_gone = true;
                    }
                }
                _ => stderr = None,
            },
        }
        if client_gone {
            if drop_after == Some(0) {
                end_without_status(tx, rx).await;
            }
            // Only the runtime's exec client is killed: as with a real kubelet, the process in
            // the container lives on when the connection drops.
            let _ = child.start_kill();
            break;
        }
    }
    drop(stdin);
    let code = match child.wait().await {
        Ok(s) => s.code().unwrap_or_else(|| {
            128 + std::os::unix::process::ExitStatusExt::signal(&s).unwrap_or(0)
        }),
        Err(_) => 255,
    };
    if !client_gone {
        let status = final_status(&request.command, code, &err_head);
        let _ = tx.send(frame(STATUS, status.to_string().as_bytes())).await;
        let _ = tx.send(Message::Close(None)).await;
        if client_open {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), async {
                while let Some(Ok(_)) = rx.next().await {}
            })
            .await;
        }
    }
    request
}

/// The Status that ends a session on a real node: the exit code's, or what the API server
/// answers when the runtime could not start the command at all (no such executable: a
/// container without `sh`), which runc reports on stderr (`err_head`, its start).
pub(crate) fn final_status(command: &[String], code: i32, err_head: &[u8]) -> serde_json::Value {
    let err_head = String::from_utf8_lossy(err_head);
    match err_head.find("exec failed:") {
        Some(at) if code == 255 => json!({
            "metadata": {}, "status": "Failure", "reason": "InternalError", "code": 500,
            "message": format!(
                "Internal error occurred: error executing command in container: OCI runtime exec failed: {}",
                err_head[at..].trim()
            ),
        }),
        _ => exit_status(command, code),
    }
}

/// The injected mid-stream loss: the session ends here, without an exit Status. It closes
/// with a Close frame and waits (briefly) for the client's, because merely dropping an
/// upgraded in-memory connection leaves kube's reader waiting for an end that never comes.
async fn end_without_status<I>(tx: &mut WsTx<I>, rx: &mut WsRx<I>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let _ = tx.send(Message::Close(None)).await;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while let Some(Ok(_)) = rx.next().await {}
    })
    .await;
}

/// Reads from an optional pipe; pends forever for `None` (a closed stream in a select).
async fn read_some<R: tokio::io::AsyncRead + Unpin>(
    r: Option<&mut R>,
    buf: &mut [u8],
) -> Option<usize> {
    use tokio::io::AsyncReadExt as _;
    match r {
        Some(r) => r.read(buf).await.ok(),
        None => std::future::pending().await,
    }
}

/// The `Sec-WebSocket-Accept` value for a client key.
pub(crate) fn accept_key(key: &[u8]) -> String {
    tokio_tungstenite::tungstenite::handshake::derive_accept_key(key)
}

/// Serves one exec on a node's kubelet endpoint (`crate::node::RealNode`): the API server
/// passed the client's WebSocket through; the session is the one a node runs in-process.
pub(crate) async fn serve_node_exec<I>(
    kubelet: &dyn crate::cluster::Kubelet,
    io: I,
    start: ExecStart,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let ws = WebSocketStream::from_raw_socket(TokioIo::new(io), Role::Server, None).await;
    let (mut tx, mut rx) = ws.split();
    stream_session(kubelet, &start, None, &mut tx, &mut rx).await;
}
