//! Mailroom's HTTP API, version 1.
//!
//! JSON in and out, an API key in `Authorization: Bearer`, every query scoped to the key's
//! workspace. Errors are `{"error": {"code", "message"}}`: a 4xx says what is wrong, a 5xx says
//! nothing and is logged once with its cause chain.
#![deny(missing_docs)]

pub mod admin_token;
mod api_keys;
mod audit;
mod auth;
mod cancel;
mod codes;
mod contacts;
pub mod edge;
mod error;
mod events;
pub mod export;
mod grants;
mod json;
mod keys;
pub mod limits;
mod mailbox_patch;
mod mailbox_servers;
mod mailbox_state;
mod mailboxes;
mod oauth;
mod oauth_mailbox;
mod oauth_reauth;
pub mod openapi;
mod openapi_table;
mod operator;
pub mod ops;
mod pacing;
mod page;
pub mod provision;
mod recheck;
mod reconnect;
pub mod routes;
mod sends;
mod suppressions;
mod thread;
mod usage;
mod validate;
mod views;
mod webhook_deliveries;
mod webhooks;
mod workspaces;

use std::{future::Future, sync::Arc};

use axum::{Router, extract::DefaultBodyLimit};
use mailroom_domain::WorkspaceId;
use mailroom_store::PgPool;
use mailroom_transport::SmtpSettings;
use mailroom_vault::Vault;
use tokio::net::TcpListener;

pub use auth::FailedAuthLimiter;
pub use codes::Code;
pub use error::ApiError;

/// Limits on what a request may carry.
#[derive(Debug, Clone)]
pub struct ApiLimits {
    /// Largest request body, in bytes (a batch of 1,000 sends must fit).
    pub max_request_bytes: usize,
    /// Largest text + HTML body of one send, in bytes.
    pub max_message_bytes: usize,
    /// Most recipients (to + cc + bcc) of one send.
    pub max_recipients: usize,
    /// Most items in one batch.
    pub max_batch: usize,
    /// Timeouts and the connection cap.
    pub edge: edge::EdgeLimits,
    /// Rate limits per key, workspace and source address (none: unlimited).
    pub rate: Option<limits::RateLimits>,
    /// How long a webhook's rotated secret keeps signing beside the new one.
    pub webhook_secret_overlap: std::time::Duration,
}

impl Default for ApiLimits {
    fn default() -> Self {
        Self {
            max_request_bytes: 64 << 20,
            max_message_bytes: 1 << 20,
            max_recipients: 50,
            max_batch: 1_000,
            edge: edge::EdgeLimits::default(),
            rate: Some(limits::RateLimits::default()),
            webhook_secret_overlap: std::time::Duration::from_secs(24 * 3_600),
        }
    }
}

/// What every handler needs.
pub struct AppState {
    /// The database.
    pub pool: PgPool,
    /// Seals credentials as mailboxes are connected.
    pub vault: Vault,
    /// Used to verify SMTP credentials at connect time.
    pub smtp: SmtpSettings,
    /// Request limits.
    pub limits: ApiLimits,
    /// How long a new key version waits before it becomes active (one key-cache TTL).
    pub rotation_wait: std::time::Duration,
    /// OAuth providers for connecting Gmail and Microsoft 365 mailboxes.
    pub oauth: mailroom_keyring::oauth_config::OAuthSettings,
    /// The operator's admin token.
    pub admin: Arc<admin_token::AdminToken>,
    /// A header set by a trusted reverse proxy that holds the client's address (the audit log
    /// records it instead of the proxy's); none trusts no header.
    pub trusted_proxy_header: Option<String>,
    /// Keeps failed authentications from flooding the audit log.
    pub failed_auth: FailedAuthLimiter,
    /// This process's own rate-limit buckets (the first gate for failed authentications).
    pub local_limits: limits::LocalBuckets,
    /// Exports streaming from this process (each holds a database connection until its
    /// client has read it all).
    pub exports: export::Slots,
}

impl AppState {
    /// A transaction working in `ws`: row-level security admits only that workspace's rows,
    /// whatever a statement names. A write commits it; a read may drop it (its connection rolls
    /// it back on the way back to the pool, off the request's path).
    pub(crate) async fn begin(&self, ws: WorkspaceId) -> Result<mailroom_store::scope::Scoped, ApiError> {
        Ok(mailroom_store::scope::begin(&self.pool, ws).await?)
    }

    /// A transaction in `ws` that records sends (it orders them against erasures: see
    /// `mailroom_store::scope::begin_enqueue`).
    pub(crate) async fn begin_enqueue(&self, ws: WorkspaceId) -> Result<mailroom_store::scope::Scoped, ApiError> {
        Ok(mailroom_store::scope::begin_enqueue(&self.pool, ws).await?)
    }
}

/// The API's routes (see [`routes`]: every route with the scope it needs), behind the edge's
/// request layer (id, span, timeout, access log).
pub fn router(state: AppState) -> Router {
    let max = state.limits.max_request_bytes;
    let timeout = state.limits.edge.request_timeout;
    let state = Arc::new(state);
    routes::build(&state)
        .fallback(|| async { ApiError::NotFound("route") })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(max))
        .layer(axum::middleware::from_fn(move |req, next| edge::observe(timeout, req, next)))
        .with_state(state)
}

pub(crate) async fn health(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
) -> Result<&'static str, ApiError> {
    let mut conn = state.pool.acquire().await?;
    mailroom_store::workspaces::ping(&mut conn).await?;
    Ok("ok")
}

/// `GET /metrics`: the process's counters in Prometheus text format. The vault's say how many
/// key-provider (KMS) calls the key cache saves.
pub(crate) async fn metrics(axum::extract::State(state): axum::extract::State<Arc<AppState>>) -> String {
    let v = state.vault.stats();
    let provider = state.vault.provider_name();
    let mut out = String::new();
    for (name, help, value) in [
        ("mailroom_vault_provider_calls_total", "Workspace keys unwrapped by the key provider.", v.provider_calls),
        ("mailroom_vault_cache_hits_total", "Workspace-key lookups served from the cache.", v.hits),
        ("mailroom_vault_cache_misses_total", "Workspace-key lookups that needed the provider.", v.misses),
    ] {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} counter\n{name}{{provider=\"{provider}\"}} {value}\n"
        ));
    }
    out
}

/// Serves the API on `listener` until `shutdown` completes, then finishes requests in flight
/// (see [`edge::serve`]).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = state.limits.edge;
    let pruning = state.limits.rate.is_some().then(|| tokio::spawn(limits::prune_buckets(state.pool.clone())));
    let served = edge::serve(listener, router(state), limits, shutdown).await;
    if let Some(p) = pruning {
        p.abort();
    }
    served
}
