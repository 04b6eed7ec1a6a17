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

use std::{
    collections::BTreeMap,
    future::Future,
    sync::{Arc, Mutex},
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
use tokio_util::sync::CancellationToken;
use tower::Service as _;
use tracing::Instrument as _;

use crate::ApiError;

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
            tracing::warn!(max = limits.max_connections, "connection refused: every slot is serving a request");
            continue;
        };
        let slot = Arc::new(slot);
        let app = app.clone();
        let service = hyper::service::service_fn({
            let slot = slot.clone();
            move |mut req: hyper::Request<hyper::body::Incoming>| {
                slot.started();
                req.extensions_mut().insert(ConnectInfo(peer));
                app.clone().call(req)
            }
        });
        let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            tokio::select! {
                r = conn => if let Err(e) = r { tracing::debug!(error = %e, "connection ended") },
                () = slot.evicted.cancelled() => tracing::debug!("evicted a connection that sent no request"),
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

/// Why `serve` refuses an address beyond loopback.
#[derive(Debug, thiserror::Error)]
pub enum NetworkGate {
    /// Not opted in.
    #[error(
        "api.bind = {0} is reachable beyond this machine; set api.allow_network = true to serve there \
         (and rotate the admin token with `mailroom admin rotate-token`), or bind to 127.0.0.1"
    )]
    NotAllowed(std::net::SocketAddr),
    /// The admin token is the first, auto-created one.
    #[error(
        "api.bind = {0} serves the network, but the admin token is still the auto-created first one; \
         run `mailroom admin rotate-token` and keep the new token somewhere safe"
    )]
    FirstToken(std::net::SocketAddr),
    /// The admin token is older than 30 days.
    #[error(
        "api.bind = {0} serves the network, but the admin token was last rotated {1} days ago (at most \
         {MAX_TOKEN_AGE_DAYS}); run `mailroom admin rotate-token`"
    )]
    StaleToken(std::net::SocketAddr, i64),
}

/// How old the admin token may be when the API serves beyond loopback.
pub const MAX_TOKEN_AGE_DAYS: i64 = 30;

/// Private by default: an address beyond loopback needs `allow_network` and an admin token
/// rotated (not the auto-created first) within [`MAX_TOKEN_AGE_DAYS`].
pub fn network_gate(
    bind: std::net::SocketAddr,
    allow_network: bool,
    admin: &crate::admin_token::AdminToken,
) -> Result<(), NetworkGate> {
    if bind.ip().is_loopback() {
        return Ok(());
    }
    if !allow_network {
        return Err(NetworkGate::NotAllowed(bind));
    }
    let (generation, created_at) = admin.generation();
    if generation <= 1 {
        return Err(NetworkGate::FirstToken(bind));
    }
    let age = (chrono::Utc::now() - created_at).num_days();
    if age >= MAX_TOKEN_AGE_DAYS {
        return Err(NetworkGate::StaleToken(bind, age));
    }
    tracing::warn!(%bind, "serving beyond loopback (api.allow_network); keep the admin token safe");
    Ok(())
}

/// The open connections, and which of them have not yet sent a request (oldest first).
struct Slots {
    max: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    open: usize,
    next: u64,
    waiting: BTreeMap<u64, CancellationToken>,
}

/// One admitted connection; its slot is given back when dropped.
struct Slot {
    id: u64,
    slots: Arc<Slots>,
    evicted: CancellationToken,
}

impl Slots {
    fn new(max: usize) -> Self {
        Self { max: max.max(1), inner: Mutex::new(Inner::default()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A slot for a new connection, evicting the oldest connection that sent no request when
    /// all are taken; none when every open connection is serving requests.
    fn admit(self: &Arc<Self>) -> Option<Slot> {
        let mut inner = self.lock();
        if inner.open >= self.max {
            let (_, victim) = inner.waiting.pop_first()?;
            // The victim's slot is given back here; its own drop then gives back nothing.
            victim.cancel();
            inner.open -= 1;
        }
        inner.open += 1;
        inner.next += 1;
        let (id, evicted) = (inner.next, CancellationToken::new());
        inner.waiting.insert(id, evicted.clone());
        Some(Slot { id, slots: self.clone(), evicted })
    }
}

impl Slot {
    /// The connection sent a request: it is no longer evictable.
    fn started(&self) {
        self.slots.lock().waiting.remove(&self.id);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut inner = self.slots.lock();
        inner.waiting.remove(&self.id);
        if !self.evicted.is_cancelled() {
            inner.open -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_house_evicts_the_oldest_idle_connection_and_never_a_busy_one() {
        let slots = Arc::new(Slots::new(2));
        let (a, b) = (slots.admit().unwrap(), slots.admit().unwrap());
        let c = slots.admit().expect("evicts a");
        assert!(a.evicted.is_cancelled() && !b.evicted.is_cancelled());
        drop(a);
        assert_eq!(slots.lock().open, 2);
        b.started();
        c.started();
        assert!(slots.admit().is_none(), "both are serving requests");
        drop(b);
        assert!(slots.admit().is_some());
    }
}
