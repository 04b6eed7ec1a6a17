//! The HTTP edge: how connections are accepted and requests observed before any route runs.
//!
//! - A client must finish its request headers within `header_timeout` (hyper's own timer),
//!   so a slow client is cut instead of holding a connection open.
//! - At most `max_connections` are open. When full, a new connection evicts the oldest one
//!   that has not yet sent a request: a flood of half-open connections cannot keep a real
//!   client out, and a connection already serving a request is never cut for a newcomer.
//! - Every request has an id (`Mailroom-Request-Id`, never taken from the client) carried by
//!   a tracing span, so every log line of the request names it; it must be answered within
//!   `request_timeout`; and it leaves one access-log line (method, route, status, duration,
//!   key id; never bodies or secrets).

mod gate;
mod slots;

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    Router,
    extract::{ConnectInfo, MatchedPath, Request},
    middleware::Next,
    response::{IntoResponse, Response},
};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tower::Service as _;
use tracing::Instrument as _;

use crate::{ApiError, Code};

pub use gate::{MAX_TOKEN_AGE_DAYS, NetworkGate, network_gate};
use slots::{Finished, Slots};

/// The id of one request: made here (never taken from the client), answered in
/// `Mailroom-Request-Id`, and written with every log line and audit row the request causes.
#[derive(Debug, Clone)]
pub(crate) struct RequestId(pub String);

/// Which key (or `admin`) made a request: put on the response by the access layer, read by
/// the access log.
#[derive(Debug, Clone)]
pub(crate) struct AccessKey(pub String);

/// Gives a request its id and span, bounds it by `request_timeout`, and logs it once.
pub(crate) async fn observe(limit: Duration, mut req: Request, next: Next) -> Response {
    let id = format!("req_{}", uuid::Uuid::now_v7().simple());
    req.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!("request", id = %id);
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().map_or("-", |p| p.as_str()).to_owned();
    let started = Instant::now();
    let mut resp = match tokio::time::timeout(limit, next.run(req).instrument(span.clone())).await {
        Ok(resp) => resp,
        Err(_) => ApiError::Timeout(limit).into_response(),
    };
    if resp.status().is_client_error() && !is_json(&resp) {
        resp = in_our_shape(resp).await;
    }
    if let Ok(v) = axum::http::HeaderValue::from_str(&id) {
        resp.headers_mut().insert("mailroom-request-id", v);
    }
    let key = resp.extensions().get::<AccessKey>().map_or("-", |c| c.0.as_str());
    span.in_scope(|| {
        tracing::info!(
            target: "mailroom::access",
            %method, %route, status = resp.status().as_u16(),
            duration_ms = started.elapsed().as_secs_f64() * 1e3, %key, "request"
        );
    });
    resp
}

/// How the edge treats connections.
#[derive(Debug, Clone, Copy)]
pub struct EdgeLimits {
    /// How long a client has to send a request's headers (and an idle connection to send its
    /// next request) before it is closed.
    pub header_timeout: Duration,
    /// How long a whole request may take, body included, before it is answered 408.
    pub request_timeout: Duration,
    /// How many connections may be open at once.
    pub max_connections: usize,
}

impl Default for EdgeLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            max_connections: 1_024,
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then finishes requests in flight.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: EdgeLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = Arc::new(Slots::new(limits.max_connections));
    let mut last_refusal_log: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, most likely: wait for some to close.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(slot) = slots.admit() else {
            refuse_busy(stream, &mut last_refusal_log);
            continue;
        };
        let slot = Arc::new(slot);
        let app = app.clone();
        let service = hyper::service::service_fn({
            let slot = slot.clone();
            move |mut req: hyper::Request<hyper::body::Incoming>| {
                slot.busy();
                req.extensions_mut().insert(ConnectInfo(peer));
                let (answer, slot) = (app.clone().call(req), slot.clone());
                async move { answer.await.map(|resp| resp.map(|body| Finished::wrap(body, slot))) }
            }
        });
        let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            tokio::select! {
                r = conn => if let Err(e) = r { tracing::debug!(error = %e, "connection ended") },
                () = slot.evicted.cancelled() => tracing::debug!("evicted a connection that was not serving a request"),
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.request_timeout) => tracing::warn!("requests still running at shutdown were cut"),
    }
    Ok(())
}

/// Every slot is serving a request: a short 503 (written in the background, bounded), and a
/// warning at most every ten seconds.
fn refuse_busy(mut stream: tokio::net::TcpStream, last_log: &mut Option<Instant>) {
    const BUSY: &[u8] =
        b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
    if last_log.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
        tracing::warn!("connection refused with 503: every connection slot is serving a request (api.max_connections)");
        *last_log = Some(Instant::now());
    }
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(BUSY)).await;
    });
}

fn is_json(resp: &Response) -> bool {
    resp.headers().get(axum::http::header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/json"))
}

/// A 4xx the framework wrote itself (a path segment that is not UTF-8, say) answered in our
/// error shape like every other: its status, a code for it, and its text as the message.
async fn in_our_shape(resp: Response) -> Response {
    let status = resp.status();
    let text = axum::body::to_bytes(resp.into_body(), 4096).await.unwrap_or_default();
    let code = match status.as_u16() {
        404 => Code::NotFound,
        405 => Code::MethodNotAllowed,
        413 => Code::TooLarge,
        415 => Code::InvalidContentType,
        _ => Code::InvalidRequest,
    };
    let message = String::from_utf8_lossy(&text).trim().to_owned();
    let message =
        if message.is_empty() { status.canonical_reason().unwrap_or("bad request").to_owned() } else { message };
    crate::ApiError::new(code, message).into_response()
}
