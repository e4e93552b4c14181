//! The kubelet's exec endpoint over **SPDY/3.1**, as a real kube-apiserver calls it: since
//! Kubernetes 1.30 the API server accepts a client's WebSocket exec (`v5.channel.k8s.io`) and
//! translates it into a SPDY/3.1 session toward the kubelet (its `StreamTranslator`, feature gate
//! `TranslateStreamCloseWebsocketRequests`, on by default).
//!
//! What is implemented is the server half of the remotecommand protocol v4/v5 over SPDY, as
//! `k8s.io/kubelet/pkg/cri/streaming/remotecommand` serves it and
//! `k8s.io/apimachinery/pkg/util/httpstream/spdy` (on `moby/spdystream`) speaks it:
//!
//! - the upgrade: `Upgrade: SPDY/3.1`, `X-Stream-Protocol-Version` negotiated (v5 or v4);
//! - the client opens one stream per channel (`SYN_STREAM` with a `streamType` header: `error`,
//!   `stdin`, `stdout`, `stderr`, `resize`); the node answers each with `SYN_REPLY` and starts
//!   the process once the streams the request asked for exist;
//! - stdin `DATA` goes to the process, its end (`FLAG_FIN`, or `RST_STREAM`) closes the
//!   process's stdin; stdout and stderr go back as `DATA` on their streams as they are written;
//! - at the end: `FLAG_FIN` on every stream, and the v4 Status (JSON) on the error stream;
//! - `PING` is echoed; `SETTINGS`, `WINDOW_UPDATE`, `HEADERS` are ignored (spdystream does no
//!   flow control); `GOAWAY` or the connection closing ends the session (the process's exec
//!   client is killed, the process in the container lives on, as with a kubelet).
//!
//! Header blocks are zlib streams with the SPDY/3 preset dictionary, one per direction per
//! connection. Incoming ones are inflated with it (flate2 on zlib-rs); outgoing ones are written
//! as *stored* deflate blocks, which any inflater reads without the dictionary (the node sends
//! only empty header blocks). Every length read from the wire is bounded.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::mpsc;

use crate::cluster::Kubelet;
use crate::exec::{ExecRequest, final_status};

/// The protocols the node speaks, preferred first (v5 adds only the client's stdin close,
/// which SPDY expresses as `FLAG_FIN` on the stdin stream anyway).
pub(crate) const PROTOCOLS: [&str; 2] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];

/// How long the client has to open the streams it asked for (the kubelet's default).
const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest control frame accepted (a SYN_STREAM's compressed headers are a few hundred
/// bytes).
const MAX_CONTROL: usize = 64 * 1024;
/// The largest inflated header block accepted.
const MAX_HEADERS: usize = 64 * 1024;
/// The most header pairs in one block.
const MAX_PAIRS: usize = 256;
/// The largest DATA payload the node sends in one frame.
const CHUNK: usize = 32 * 1024;

const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const FLAG_FIN: u8 = 0x01;

/// The SPDY/3 header compression dictionary (draft-mbelshe-httpbis-spdy-00, 2.6.10.1), as
/// spdystream and every SPDY/3 implementation use it (1423 bytes, Adler-32 0xe3c6a7c2).
const DICTIONARY: &[u8] =
    b"\x00\x00\x00\x07options\x00\x00\x00\x04head\x00\x00\x00\x04post\x00\x00\x00\x03put\x00\x00\
    \x00\x06delete\x00\x00\x00\x05trace\x00\x00\x00\x06accept\x00\x00\x00\x0eaccept-charset\x00\
    \x00\x00\x0faccept-encoding\x00\x00\x00\x0faccept-language\x00\x00\x00\x0daccept-ranges\x00\
    \x00\x00\x03age\x00\x00\x00\x05allow\x00\x00\x00\x0dauthorization\x00\x00\x00\x0dcache-c\
    ontrol\x00\x00\x00\x0aconnection\x00\x00\x00\x0ccontent-base\x00\x00\x00\x10content-enco\
    ding\x00\x00\x00\x10content-language\x00\x00\x00\x0econtent-length\x00\x00\x00\x10conten\
    t-location\x00\x00\x00\x0bcontent-md5\x00\x00\x00\x0dcontent-range\x00\x00\x00\x0cconten\
    t-type\x00\x00\x00\x04date\x00\x00\x00\x04etag\x00\x00\x00\x06expect\x00\x00\x00\x07expi\
    res\x00\x00\x00\x04from\x00\x00\x00\x04host\x00\x00\x00\x08if-match\x00\x00\x00\x11if-mo\
    dified-since\x00\x00\x00\x0dif-none-match\x00\x00\x00\x08if-range\x00\x00\x00\x13if-unmo\
    dified-since\x00\x00\x00\x0dlast-modified\x00\x00\x00\x08location\x00\x00\x00\x0cmax-for\
    wards\x00\x00\x00\x06pragma\x00\x00\x00\x12proxy-authenticate\x00\x00\x00\x13proxy-autho\
    rization\x00\x00\x00\x05range\x00\x00\x00\x07referer\x00\x00\x00\x0bretry-after\x00\x00\x00\
    \x06server\x00\x00\x00\x02te\x00\x00\x00\x07trailer\x00\x00\x00\x11transfer-encoding\x00\
    \x00\x00\x07upgrade\x00\x00\x00\x0auser-agent\x00\x00\x00\x04vary\x00\x00\x00\x03via\x00\
    \x00\x00\x07warning\x00\x00\x00\x10www-authenticate\x00\x00\x00\x06method\x00\x00\x00\x03\
    get\x00\x00\x00\x06status\x00\x00\x00\x06200 OK\x00\x00\x00\x07version\x00\x00\x00\x08HT\
    TP/1.1\x00\x00\x00\x03url\x00\x00\x00\x06public\x00\x00\x00\x0aset-cookie\x00\x00\x00\x0a\
    keep-alive\x00\x00\x00\x06origin10010120120220520630030230330430530630740240540640740840\
    9410411412413414415416417502504505203 Non-Authoritative Information204 No Content301 Mov\
    ed Permanently400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Serv\
    er Error501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept O\
    ct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,im\
    age/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,text/javascript,publi\
    cprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.";

/// What the API server asked for (the query of `/exec/...`).
#[derive(Debug, Clone)]
pub(crate) struct SpdyExec {
    pub(crate) request: ExecRequest,
    pub(crate) want_stdin: bool,
    pub(crate) want_stdout: bool,
    pub(crate) want_stderr: bool,
}

/// The protocol to answer for the client's `X-Stream-Protocol-Version` values (several
/// headers, or comma-separated), or `None` when none is spoken here.
pub(crate) fn negotiate<'a>(offered: impl Iterator<Item = &'a str>) -> Option<&'static str> {
    let offered: Vec<String> = offered
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_ascii_lowercase())
        .collect();
    PROTOCOLS
        .into_iter()
        .find(|p| offered.iter().any(|o| o == p))
}

fn control(kind: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(8 + payload.len());
    f.extend_from_slice(&[0x80, 0x03]);
    f.extend_from_slice(&kind.to_be_bytes());
    f.push(flags);
    f.extend_from_slice(&len24(payload.len()));
    f.extend_from_slice(payload);
    f
}

fn data(stream: u32, fin: bool, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(8 + payload.len());
    f.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    f.push(if fin { FLAG_FIN } else { 0 });
    f.extend_from_slice(&len24(payload.len()));
    f.extend_from_slice(payload);
    f
}

/// A 24-bit length; callers never pass more than [`CHUNK`] or [`MAX_CONTROL`].
fn len24(n: usize) -> [u8; 3] {
    let n = u32::try_from(n.min(0x00ff_ffff)).unwrap_or(0x00ff_ffff);
    let b = n.to_be_bytes();
    [b[1], b[2], b[3]]
}

/// Outgoing header blocks: one zlib stream of stored blocks (see the module documentation).
#[derive(Default)]
struct HeaderEncoder {
    started: bool,
}

impl HeaderEncoder {
    /// An empty header block (no name/value pairs), as the next piece of the stream.
    fn empty_block(&mut self) -> Vec<u8> {
        let raw = 0u32.to_be_bytes();
        let mut out = Vec::new();
        if !self.started {
            // CMF 0x78 (deflate, 32K window), FLG 0x01: no preset dictionary, check bits valid.
            out.extend_from_slice(&[0x78, 0x01]);
            self.started = true;
        }
        // A non-final stored block: BFINAL 0, BTYPE 00, padded to the byte; LEN, NLEN.
        let len = u16::try_from(raw.len()).unwrap_or(0);
        out.push(0x00);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(&raw);
        // Then an empty stored block, as a sync flush ends: Go's inflater hands a stored
        // block's bytes to its reader only at the next block, so without it the block's
        // headers would wait for the next frame (and a SYN_REPLY would never be seen).
        out.extend_from_slice(&[0x00, 0x00, 0x00, 0xff, 0xff]);
        out
    }
}

/// Incoming header blocks: one zlib stream with the SPDY/3 dictionary.
struct HeaderDecoder {
    z: flate2::Decompress,
}

impl HeaderDecoder {
    fn new() -> Self {
        Self {
            z: flate2::Decompress::new(true),
        }
    }

    /// Inflates one header block and parses its name/value pairs.
    fn decode(&mut self, block: &[u8]) -> Result<Vec<(String, Vec<u8>)>, String> {
        let mut out: Vec<u8> = Vec::with_capacity(4096);
        let mut at = 0usize;
        loop {
            let before = self.z.total_in();
            let r = self
                .z
                .decompress_vec(&block[at..], &mut out, flate2::FlushDecompress::Sync);
            at += usize::try_from(self.z.total_in() - before).unwrap_or(block.len());
            match r {
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.z
                        .set_dictionary(DICTIONARY)
                        .map_err(|e| format!("SPDY header dictionary: {e}"))?;
                    continue;
                }
                Err(e) => return Err(format!("SPDY header block: {e}")),
            }
            if at >= block.len() && out.len() < out.capacity() {
                break;
            }
            if out.len() >= MAX_HEADERS {
                return Err(format!("SPDY header block over {MAX_HEADERS} bytes"));
            }
            out.reserve(4096);
        }
        parse_pairs(&out)
    }
}

fn take<'a>(b: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
    if b.len() < n {
        return Err("truncated SPDY header block".to_owned());
    }
    let (head, rest) = b.split_at(n);
    *b = rest;
    Ok(head)
}

fn u32_at(b: &mut &[u8]) -> Result<usize, String> {
    let v = take(b, 4)?;
    Ok(u32::from_be_bytes([v[0], v[1], v[2], v[3]]) as usize)
}

fn parse_pairs(mut b: &[u8]) -> Result<Vec<(String, Vec<u8>)>, String> {
    let n = u32_at(&mut b)?;
    if n > MAX_PAIRS {
        return Err(format!("{n} SPDY header pairs (at most {MAX_PAIRS})"));
    }
    let mut pairs = Vec::with_capacity(n);
    for _ in 0..n {
        let len = u32_at(&mut b)?;
        let name = String::from_utf8_lossy(take(&mut b, len)?).to_ascii_lowercase();
        let len = u32_at(&mut b)?;
        pairs.push((name, take(&mut b, len)?.to_vec()));
    }
    Ok(pairs)
}

/// What the reading side tells the session.
enum Event {
    /// The client opened a stream of this `streamType`.
    Opened(u32, String),
    /// The connection ended (closed, GOAWAY, or a protocol error).
    Gone,
}

/// Where the client's stdin goes: the process's, once it runs.
enum StdinSink {
    /// The process is not started yet: its stdin comes through here (`None`: it has none).
    Waiting(tokio::sync::oneshot::Receiver<Option<tokio::process::ChildStdin>>),
    Open(tokio::process::ChildStdin),
    Closed,
}

impl StdinSink {
    /// Writes `chunk` to the process (waiting for it to start); a process that stopped
    /// reading closes the sink. Awaiting the write is the backpressure: no stdin is buffered
    /// beyond one read.
    async fn write(&mut self, chunk: &[u8]) {
        if let Self::Waiting(rx) = self {
            *self = match rx.await {
                Ok(Some(w)) => Self::Open(w),
                _ => Self::Closed,
            };
        }
        if let Self::Open(w) = self
            && w.write_all(chunk).await.is_err()
        {
            *self = Self::Closed;
        }
    }

    /// Ends the process's stdin (dropping a not yet delivered one ends it on arrival).
    fn close(&mut self) {
        *self = Self::Closed;
    }
}

/// The most streams one session may open (a remotecommand session uses at most five).
const MAX_STREAMS: usize = 8;

/// Reads frames until the connection ends: answers SYN_STREAM and PING itself, writes stdin
/// to the process.
async fn read_frames<R: tokio::io::AsyncRead + Unpin>(
    mut r: R,
    out: mpsc::Sender<Vec<u8>>,
    events: mpsc::UnboundedSender<Event>,
    mut stdin: StdinSink,
) {
    let mut decoder = HeaderDecoder::new();
    let mut encoder = HeaderEncoder::default();
    let mut stdin_id = None;
    let mut opened = 0usize;
    loop {
        let mut h = [0u8; 8];
        if r.read_exact(&mut h).await.is_err() {
            break;
        }
        let len = (usize::from(h[5]) << 16) | (usize::from(h[6]) << 8) | usize::from(h[7]);
        let flags = h[4];
        if h[0] & 0x80 != 0 {
            if len > MAX_CONTROL {
                break;
            }
            let mut payload = vec![0u8; len];
            if r.read_exact(&mut payload).await.is_err() {
                break;
            }
            let kind = u16::from_be_bytes([h[2], h[3]]);
            let id = |p: &[u8]| {
                p.get(..4)
                    .map(|b| u32::from_be_bytes([b[0] & 0x7f, b[1], b[2], b[3]]))
            };
            match kind {
                SYN_STREAM => {
                    opened += 1;
                    if opened > MAX_STREAMS {
                        break;
                    }
                    // Stream id, associated id, priority and slot, then the header block.
                    let (Some(sid), Some(block)) = (id(&payload), payload.get(10..)) else {
                        break;
                    };
                    let Ok(headers) = decoder.decode(block) else {
                        break;
                    };
                    let kind = headers
                        .iter()
                        .find(|(n, _)| n == "streamtype")
                        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
                        .unwrap_or_default();
                    let mut reply = sid.to_be_bytes().to_vec();
                    reply.extend_from_slice(&encoder.empty_block());
                    if out.send(control(SYN_REPLY, 0, &reply)).await.is_err() {
                        break;
                    }
                    if kind == "stdin" {
                        stdin_id = Some(sid);
                    }
                    let _ = events.send(Event::Opened(sid, kind));
                }
                RST_STREAM if id(&payload).is_some() && id(&payload) == stdin_id => {
                    stdin.close();
                }
                PING => {
                    let echoed = out.send(control(PING, 0, &payload)).await;
                    if echoed.is_err() {
                        break;
                    }
                }
                GOAWAY => break,
                // SETTINGS, WINDOW_UPDATE, HEADERS, NOOP: nothing to do here.
                _ => {}
            }
        } else {
            let sid = u32::from_be_bytes([h[0] & 0x7f, h[1], h[2], h[3]]);
            // A DATA frame is at most 16 MiB by its 24-bit length: read it in pieces.
            let mut left = len;
            let mut buf = vec![0u8; CHUNK];
            while left > 0 {
                let n = left.min(CHUNK);
                if r.read_exact(&mut buf[..n]).await.is_err() {
                    let _ = events.send(Event::Gone);
                    return;
                }
                left -= n;
                if Some(sid) == stdin_id {
                    stdin.write(&buf[..n]).await;
                }
            }
            if flags & FLAG_FIN != 0 && Some(sid) == stdin_id {
                stdin.close();
            }
        }
    }
    let _ = events.send(Event::Gone);
}

/// Writes the queued frames in order until every sender is gone, then closes the connection.
async fn write_frames<W: tokio::io::AsyncWrite + Unpin>(
    mut w: W,
    mut frames: mpsc::Receiver<Vec<u8>>,
) {
    while let Some(f) = frames.recv().await {
        if w.write_all(&f).await.is_err() {
            return;
        }
    }
    let _ = w.shutdown().await;
}

async fn read_some<R: tokio::io::AsyncRead + Unpin>(
    r: Option<&mut R>,
    buf: &mut [u8],
) -> Option<usize> {
    match r {
        Some(r) => r.read(buf).await.ok(),
        None => std::future::pending().await,
    }
}

/// Queues `bytes` as DATA on `sid` (when the client opened that stream), then `FLAG_FIN` when
/// `fin`; false once the connection's writer is gone. The queue is bounded: a client that
/// stops reading stops the process's output here, not in memory.
async fn send(out: &mpsc::Sender<Vec<u8>>, sid: Option<u32>, fin: bool, bytes: &[u8]) -> bool {
    let Some(sid) = sid else {
        return true;
    };
    for chunk in bytes.chunks(CHUNK) {
        if out.send(data(sid, false, chunk)).await.is_err() {
            return false;
        }
    }
    !fin || out.send(data(sid, true, &[])).await.is_ok()
}

/// Serves one exec session on an upgraded connection (after the 101 answer).
pub(crate) async fn serve<I>(kubelet: &dyn Kubelet, io: I, exec: SpdyExec)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (r, w) = tokio::io::split(io);
    let (out, frames) = mpsc::channel(64);
    let (ev_tx, mut events) = mpsc::unbounded_channel();
    let (stdin_tx, stdin_rx) = tokio::sync::oneshot::channel();
    let sink = if exec.want_stdin {
        StdinSink::Waiting(stdin_rx)
    } else {
        StdinSink::Closed
    };
    let writer = tokio::spawn(write_frames(w, frames));
    let reader = tokio::spawn(read_frames(r, out.clone(), ev_tx, sink));

    // The streams the request asked for, by streamType.
    let mut streams: BTreeMap<String, u32> = BTreeMap::new();
    let wanted = |s: &BTreeMap<String, u32>| {
        s.contains_key("error")
            && (!exec.want_stdin || s.contains_key("stdin"))
            && (!exec.want_stdout || s.contains_key("stdout"))
            && (!exec.want_stderr || s.contains_key("stderr"))
    };
    let deadline = tokio::time::Instant::now() + STREAM_CREATION_TIMEOUT;
    while !wanted(&streams) {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(Event::Opened(id, kind))) => {
                streams.insert(kind, id);
            }
            // Gone, or the client never opened them: nothing to run.
            _ => {
                reader.abort();
                drop(out);
                let _ = writer.await;
                return;
            }
        }
    }
    let id = |k: &str| streams.get(k).copied();
    let request = &exec.request;
    let mut gone = false;
    let status = match kubelet.exec(request) {
        Err(message) => {
            let _ = stdin_tx.send(None);
            serde_json::json!({"metadata": {}, "status": "Failure",
                "message": message, "reason": "InternalError"})
        }
        Ok(mut child) => {
            let _ = stdin_tx.send(child.stdin.take().filter(|_| exec.want_stdin));
            let mut stdout = child.stdout.take();
            let mut stderr = child.stderr.take();
            let (mut obuf, mut ebuf) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
            let mut err_head = Vec::new();
            while !gone && (stdout.is_some() || stderr.is_some()) {
                tokio::select! {
                    e = events.recv() => {
                        gone = matches!(e, None | Some(Event::Gone));
                    }
                    n = read_some(stdout.as_mut(), &mut obuf) => match n {
                        Some(n) if n > 0 => {
                            if exec.want_stdout {
                                gone = !send(&out, id("stdout"), false, &obuf[..n]).await;
                            }
                        }
                        _ => stdout = None,
                    },
                    n = read_some(stderr.as_mut(), &mut ebuf) => match n {
                        Some(n) if n > 0 => {
                            if err_head.len() < 4096 {
                                err_head.extend_from_slice(&ebuf[..n]);
                            }
                            if exec.want_stderr {
                                gone = !send(&out, id("stderr"), false, &ebuf[..n]).await;
                            }
                        }
                        _ => stderr = None,
                    },
                }
            }
            if gone {
                // Only the runtime's exec client dies with the connection, as with a kubelet.
                let _ = child.start_kill();
            }
            let code = match child.wait().await {
                Ok(s) => s.code().unwrap_or_else(|| {
                    128 + std::os::unix::process::ExitStatusExt::signal(&s).unwrap_or(0)
                }),
                Err(_) => 255,
            };
            final_status(&request.command, code, &err_head)
        }
    };
    if !gone {
        for kind in ["stdout", "stderr", "stdin", "resize"] {
            send(&out, id(kind), true, &[]).await;
        }
        send(&out, id("error"), true, status.to_string().as_bytes()).await;
        // The client closes once it read everything; do not cut it short.
        let _ = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(e) = events.recv().await {
                if matches!(e, Event::Gone) {
                    break;
                }
            }
        })
        .await;
    }
    reader.abort();
    drop(out);
    let _ = writer.await;
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    #[test]
    fn the_dictionary_is_spdy3s() {
        // The SPDY/3 dictionary's length and Adler-32 (what a SYN_STREAM's zlib header names).
        assert_eq!(DICTIONARY.len(), 1423);
        let (mut a, mut b) = (1u32, 0u32);
        for &x in DICTIONARY {
            a = (a + u32::from(x)) % 65521;
            b = (b + a) % 65521;
        }
        assert_eq!((b << 16) | a, 0xe3c6_a7c2);
    }

    /// Header blocks as Go's spdy framer writes them: zlib with the dictionary, sync-flushed,
    /// one stream across blocks. The second block depends on the first's history.
    #[test]
    fn decodes_consecutive_dictionary_compressed_header_blocks() {
        let mut z = flate2::Compress::new(flate2::Compression::best(), true);
        z.set_dictionary(DICTIONARY).unwrap();
        let block = |z: &mut flate2::Compress, pairs: &[(&str, &str)]| {
            let mut raw = (pairs.len() as u32).to_be_bytes().to_vec();
            for (n, v) in pairs {
                raw.extend_from_slice(&(n.len() as u32).to_be_bytes());
                raw.extend_from_slice(n.as_bytes());
                raw.extend_from_slice(&(v.len() as u32).to_be_bytes());
                raw.extend_from_slice(v.as_bytes());
            }
            let mut out = Vec::with_capacity(raw.len() + 64);
            z.compress_vec(&raw, &mut out, flate2::FlushCompress::Sync)
                .unwrap();
            out
        };
        let first = block(&mut z, &[("streamtype", "error"), ("requestid", "0")]);
        let second = block(&mut z, &[("streamtype", "stdout"), ("requestid", "0")]);
        let mut d = HeaderDecoder::new();
        let got = d.decode(&first).unwrap();
        assert_eq!(got[0], ("streamtype".to_owned(), b"error".to_vec()));
        let got = d.decode(&second).unwrap();
        assert_eq!(got[0], ("streamtype".to_owned(), b"stdout".to_vec()));
        assert_eq!(got[1], ("requestid".to_owned(), b"0".to_vec()));
    }

    /// What the node sends inflates, without the dictionary, to empty header blocks.
    #[test]
    fn outgoing_header_blocks_inflate_to_no_pairs() {
        let mut e = HeaderEncoder::default();
        let mut stream = e.empty_block();
        stream.extend(e.empty_block());
        let mut z = flate2::Decompress::new(true);
        let mut out = Vec::with_capacity(64);
        z.decompress_vec(&stream, &mut out, flate2::FlushDecompress::Sync)
            .unwrap();
        assert_eq!(out, [0u8; 8]);
    }

    #[test]
    fn bounds_are_enforced() {
        let mut many = 100_000u32.to_be_bytes().to_vec();
        many.extend([0u8; 16]);
        assert!(parse_pairs(&many).unwrap_err().contains("at most"));
        // A name length past the block's end.
        let mut long = 1u32.to_be_bytes().to_vec();
        long.extend(u32::MAX.to_be_bytes());
        assert!(parse_pairs(&long).unwrap_err().contains("truncated"));
    }

    #[test]
    fn negotiates_v5_then_v4_only() {
        assert_eq!(
            negotiate(["v4.channel.k8s.io, v5.channel.k8s.io"].into_iter()),
            Some("v5.channel.k8s.io")
        );
        assert_eq!(
            negotiate(["v4.channel.k8s.io", "v3.channel.k8s.io"].into_iter()),
            Some("v4.channel.k8s.io")
        );
        assert_eq!(negotiate(["channel.k8s.io"].into_iter()), None);
    }

    /// Runs the command on this machine: the session's protocol is what is under test here.
    struct HostKubelet;

    impl Kubelet for HostKubelet {
        fn exec(&self, r: &ExecRequest) -> Result<tokio::process::Child, String> {
            tokio::process::Command::new(&r.command[0])
                .args(&r.command[1..])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .map_err(|e| e.to_string())
        }

        fn log(&self, _: &str, _: &str, _: &str) -> Option<Vec<u8>> {
            None
        }
    }

    static HOST: HostKubelet = HostKubelet;

    /// One frame as the client reads it: (control type or `None` for DATA, stream id, flags,
    /// payload without the stream id of a control frame's first word).
    async fn frame<R: tokio::io::AsyncRead + Unpin>(r: &mut R) -> (Option<u16>, u32, u8, Vec<u8>) {
        let mut h = [0u8; 8];
        r.read_exact(&mut h).await.unwrap();
        let len = (usize::from(h[5]) << 16) | (usize::from(h[6]) << 8) | usize::from(h[7]);
        let mut p = vec![0u8; len];
        r.read_exact(&mut p).await.unwrap();
        if h[0] & 0x80 != 0 {
            let kind = u16::from_be_bytes([h[2], h[3]]);
            let id = u32::from_be_bytes([p[0] & 0x7f, p[1], p[2], p[3]]);
            (Some(kind), id, h[4], p[4..].to_vec())
        } else {
            let id = u32::from_be_bytes([h[0] & 0x7f, h[1], h[2], h[3]]);
            (None, id, h[4], p)
        }
    }

    /// A remotecommand v4 client session over SPDY, as the API server's executor runs it:
    /// four streams, stdin in several frames then FIN, a PING in between; stdout, stderr and
    /// the exit Status come back, each stream finished.
    #[tokio::test]
    async fn a_spdy_session_streams_stdio_and_ends_with_the_exit_status() {
        let (mut client, server) = tokio::io::duplex(4 << 20);
        let exec = SpdyExec {
            request: ExecRequest {
                namespace: "prod".into(),
                pod: "web-0".into(),
                container: "app".into(),
                command: ["sh", "-c", "tr a-z A-Z; echo to-stderr >&2; exit 3"]
                    .map(String::from)
                    .to_vec(),
                stdin: Vec::new(),
                tty: false,
                identity: crate::Identity::Anonymous,
            },
            want_stdin: true,
            want_stdout: true,
            want_stderr: true,
        };
        let session = tokio::spawn(serve(&HOST, server, exec));
        let mut z = flate2::Compress::new(flate2::Compression::best(), true);
        z.set_dictionary(DICTIONARY).unwrap();
        for (id, kind) in [(1u32, "error"), (3, "stdin"), (5, "stdout"), (7, "stderr")] {
            let mut raw = 1u32.to_be_bytes().to_vec();
            for v in ["streamtype", kind] {
                raw.extend_from_slice(&(v.len() as u32).to_be_bytes());
                raw.extend_from_slice(v.as_bytes());
            }
            let mut block = Vec::with_capacity(256);
            z.compress_vec(&raw, &mut block, flate2::FlushCompress::Sync)
                .unwrap();
            let mut p = id.to_be_bytes().to_vec();
            p.extend_from_slice(&[0; 6]);
            p.extend_from_slice(&block);
            client.write_all(&control(SYN_STREAM, 0, &p)).await.unwrap();
        }
        // Each stream is answered, in order, with an empty header block.
        let mut inflate = flate2::Decompress::new(true);
        for want in [1u32, 3, 5, 7] {
            let (kind, id, _, block) = frame(&mut client).await;
            assert_eq!((kind, id), (Some(SYN_REPLY), want));
            let mut out = Vec::with_capacity(64);
            inflate
                .decompress_vec(&block, &mut out, flate2::FlushDecompress::Sync)
                .unwrap();
            assert_eq!(out, 0u32.to_be_bytes());
        }
        client
            .write_all(&control(PING, 0, &9u32.to_be_bytes()))
            .await
            .unwrap();
        let input = "abcdefgh\n".repeat(10_000);
        for chunk in input.as_bytes().chunks(40_000) {
            client.write_all(&data(3, false, chunk)).await.unwrap();
        }
        client.write_all(&data(3, true, &[])).await.unwrap();

        let (mut stdout, mut stderr, mut status) = (Vec::new(), Vec::new(), Vec::new());
        let (mut finished, mut pinged) = (Vec::new(), false);
        while !finished.contains(&1) {
            match frame(&mut client).await {
                (Some(PING), 9, _, _) => pinged = true,
                (None, id, flags, p) => {
                    match id {
                        5 => stdout.extend(p),
                        7 => stderr.extend(p),
                        1 => status.extend(p),
                        _ => assert!(p.is_empty(), "data on stream {id}"),
                    }
                    if flags & FLAG_FIN != 0 {
                        finished.push(id);
                    }
                }
                other => panic!("unexpected frame {other:?}"),
            }
        }
        assert!(pinged, "the PING is echoed");
        assert_eq!(String::from_utf8(stdout).unwrap(), input.to_uppercase());
        assert_eq!(stderr, b"to-stderr\n");
        finished.sort_unstable();
        assert_eq!(finished, [1, 3, 5, 7], "every stream is finished");
        let status: serde_json::Value = serde_json::from_slice(&status).unwrap();
        assert_eq!(status["reason"], "NonZeroExitCode", "{status}");
        assert_eq!(status["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(status["details"]["causes"][0]["message"], "3");
        drop(client);
        tokio::time::timeout(Duration::from_secs(10), session)
            .await
            .expect("the session ends when the client goes")
            .unwrap();
    }

    /// A client that never opens the streams it asked for gets no process.
    #[tokio::test(start_paused = true)]
    async fn no_process_runs_without_the_requested_streams() {
        let (client, server) = tokio::io::duplex(1 << 16);
        let marker = std::env::temp_dir().join(format!("keyhole-spdy-{}", std::process::id()));
        let exec = SpdyExec {
            request: ExecRequest {
                namespace: "prod".into(),
                pod: "web-0".into(),
                container: "app".into(),
                command: vec!["touch".into(), marker.display().to_string()],
                stdin: Vec::new(),
                tty: false,
                identity: crate::Identity::Anonymous,
            },
            want_stdin: false,
            want_stdout: true,
            want_stderr: false,
        };
        let session = tokio::spawn(serve(&HOST, server, exec));
        tokio::time::advance(STREAM_CREATION_TIMEOUT + Duration::from_secs(1)).await;
        session.await.unwrap();
        assert!(!marker.exists(), "the command ran");
        drop(client);
    }
}
