//! The transports: the in-process tower `Service` for `kube::Client::new`, and the hyper
//! HTTP/1.1 connection server that HTTPS (and in-process WebSocket upgrades) run on.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Empty, Full};
use hyper::body::Incoming as HyperIncoming;
use hyper_util::rt::TokioIo;

use crate::api::{self, Incoming, Outcome, Reply};
use crate::cluster::Inner;
use crate::error::TestkitError;
use crate::exec;

/// The error type of the fake's transports (what `kube::Client::new` accepts).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The response body type of [`FakeService`].
pub type ResponseBody = BoxBody<Bytes, BoxError>;

fn full(body: Bytes) -> ResponseBody {
    Full::new(body).map_err(|e: Infallible| match e {}).boxed()
}

fn empty() -> ResponseBody {
    Empty::<Bytes>::new()
        .map_err(|e: Infallible| match e {})
        .boxed()
}

fn reply_to_response(r: Reply) -> Response<ResponseBody> {
    let mut res = Response::new(full(r.body));
    *res.status_mut() =
        http::StatusCode::from_u16(r.status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static(r.content_type),
    );
    res
}

fn is_upgrade(headers: &http::HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
}

/// The fake API server as a tower `Service`, for `kube::Client::new(service, namespace)`.
///
/// A dropped-connection fault makes `call` return an error; a hang makes the response future
/// pend forever. WebSocket upgrades (exec) are served over an in-memory HTTP/1.1 connection so
/// that kube's `hyper::upgrade::on` works exactly as against a real server.
#[derive(Clone)]
pub struct FakeService {
    inner: Arc<Inner>,
    token: Option<String>,
}

impl std::fmt::Debug for FakeService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a credential: never print it.
        f.debug_struct("FakeService")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl FakeService {
    pub(crate) fn new(inner: Arc<Inner>, token: Option<String>) -> Self {
        Self { inner, token }
    }
}

impl<B> tower::Service<Request<B>> for FakeService
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let inner = self.inner.clone();
        let token = self.token.clone();
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            if let Some(t) = token
                && !parts.headers.contains_key(header::AUTHORIZATION)
            {
                parts.headers.insert(
                    header::AUTHORIZATION,
                    http::HeaderValue::from_str(&format!("Bearer {t}"))?,
                );
            }
            let body = body.collect().await.map_err(Into::into)?.to_bytes();
            if is_upgrade(&parts.headers) {
                return upgrade_in_memory(inner, Request::from_parts(parts, body)).await;
            }
            let incoming = Incoming {
                method: parts.method,
                path: parts.uri.path().to_owned(),
                query: parts.uri.query().unwrap_or("").to_owned(),
                headers: parts.headers,
                body,
            };
            match api::handle(&inner, incoming).await {
                Outcome::Reply(r) => Ok(reply_to_response(r)),
                Outcome::Drop => Err(Box::new(TestkitError::ConnectionDropped) as BoxError),
                Outcome::Hang => std::future::pending().await,
                // Only reachable without upgrade headers, which `api` already refuses; answer
                // the same way in case that ever changes.
                Outcome::Exec(_) => Ok(reply_to_response(Reply {
                    status: 400,
                    content_type: "text/plain",
                    body: Bytes::from_static(b"Upgrade request required"),
                })),
            }
        })
    }
}

/// Sends one upgrade request over a fresh in-memory HTTP/1.1 connection to the fake's hyper
/// server; the response carries hyper's upgrade handle.
async fn upgrade_in_memory(
    inner: Arc<Inner>,
    req: Request<Bytes>,
) -> Result<Response<ResponseBody>, BoxError> {
    let (client_io, server_io) = tokio::io::duplex(256 * 1024);
    tokio::spawn(serve_connection(inner, server_io, None));
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(client_io)).await?;
    tokio::spawn(async move {
        // Ends when the exec session ends; its errors surface on the client side.
        let _ = conn.with_upgrades().await;
    });
    let res = sender.send_request(req.map(Full::new)).await?;
    Ok(res.map(|b| b.map_err(Into::into).boxed()))
}

/// Serves HTTP/1.1 (with upgrades) on one connection until it closes or `shutdown` fires.
pub(crate) async fn serve_connection<I>(
    inner: Arc<Inner>,
    io: I,
    shutdown: Option<tokio::sync::watch::Receiver<bool>>,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc_inner = inner.clone();
    let svc = hyper::service::service_fn(move |req: Request<HyperIncoming>| {
        let inner = svc_inner.clone();
        async move { serve_request(inner, req).await }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), svc)
        .with_upgrades();
    match shutdown {
        Some(mut rx) => {
            tokio::select! {
                _ = conn => {}
                _ = rx.wait_for(|stop| *stop) => {}
            }
        }
        None => {
            let _ = conn.await;
        }
    }
}

async fn serve_request(
    inner: Arc<Inner>,
    req: Request<HyperIncoming>,
) -> Result<Response<ResponseBody>, TestkitError> {
    let (mut parts, body) = req.into_parts();
    let on_upgrade = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
    let body = body
        .collect()
        .await
        .map_err(|e| TestkitError::Transport(e.to_string()))?
        .to_bytes();
    let incoming = Incoming {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or("").to_owned(),
        headers: parts.headers,
        body,
    };
    match api::handle(&inner, incoming).await {
        Outcome::Reply(r) => Ok(reply_to_response(r)),
        // An error from the service makes hyper close the connection without answering.
        Outcome::Drop => Err(TestkitError::ConnectionDropped),
        Outcome::Hang => std::future::pending().await,
        Outcome::Exec(start) => {
            let Some(on_upgrade) = on_upgrade else {
                return Ok(reply_to_response(Reply {
                    status: 400,
                    content_type: "text/plain",
                    body: Bytes::from_static(b"Upgrade request required"),
                }));
            };
            let mut res = Response::new(empty());
            *res.status_mut() = http::StatusCode::SWITCHING_PROTOCOLS;
            let h = res.headers_mut();
            h.insert(header::UPGRADE, http::HeaderValue::from_static("websocket"));
            h.insert(
                header::CONNECTION,
                http::HeaderValue::from_static("Upgrade"),
            );
            h.insert(
                header::SEC_WEBSOCKET_ACCEPT,
                http::HeaderValue::from_str(&start.accept_key)
                    .map_err(|e| TestkitError::Transport(e.to_string()))?,
            );
            h.insert(
                header::SEC_WEBSOCKET_PROTOCOL,
                http::HeaderValue::from_static(start.protocol),
            );
            tokio::spawn(async move {
                if let Ok(upgraded) = on_upgrade.await {
                    exec::run_session(inner, upgraded, *start).await;
                }
            });
            Ok(res)
        }
    }
}
