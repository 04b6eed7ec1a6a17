//! Building the engine's parts from [`Settings`].

use std::time::Duration;

use anyhow::Context as _;
use mailroom_api::{
    ApiLimits, AppState,
    admin_token::AdminToken,
    limits::{ClassLimits, Rate, RateLimits},
};
use mailroom_domain::backoff::Backoff;
use mailroom_send_worker::SendWorkerConfig;
use mailroom_store::{PgPool, roles::ServiceRole};
use mailroom_transport::{EgressPolicy, Reach, SmtpSettings};
use mailroom_vault::Vault;

use crate::settings::Settings;

/// Opens the database pool.
pub async fn pool(s: &Settings) -> anyhow::Result<PgPool> {
    let url = s.database_url()?;
    mailroom_store::connect(url, s.database.max_connections)
        .await
        .context("cannot connect to PostgreSQL (check database.url)")
}

/// Opens `role`'s pool: its own login URL when configured, else the owner's; every connection
/// acts as the role (a startup parameter), so the service holds that role's privileges only.
pub async fn service_pool(s: &Settings, role: ServiceRole) -> anyhow::Result<PgPool> {
    use secrecy::ExposeSecret;
    let own = match role {
        ServiceRole::Api => &s.database.api_url,
        ServiceRole::SendWorker => &s.database.send_worker_url,
        ServiceRole::ReplyWorker => &s.database.reply_worker_url,
    };
    let url = match own {
        Some(url) => url.expose_secret(),
        None => s.database_url()?,
    };
    mailroom_store::roles::connect_as(url, s.database.max_connections, role).await.with_context(|| {
        format!(
            "cannot connect to PostgreSQL as `{}` (check database.url, or this service's own URL, and that \
             `mailroom migrate` has run)",
            role.name()
        )
    })
}

/// Opens the vault with the configured provider, checked against the database before the
/// process serves (see [`crate::vault_setup`]).
pub async fn vault(s: &Settings, pool: &PgPool) -> anyhow::Result<Vault> {
    crate::vault_setup::checked(s, pool).await
}

/// SMTP client settings.
pub fn smtp(s: &Settings) -> anyhow::Result<SmtpSettings> {
    let extra_roots = match &s.smtp.extra_ca_file {
        Some(path) => {
            vec![std::fs::read(path).with_context(|| format!("cannot read smtp.extra_ca_file {}", path.display()))?]
        }
        None => vec![],
    };
    Ok(SmtpSettings {
        hello_name: s.smtp.hello_name.clone(),
        command_timeout: Duration::from_secs(s.smtp.command_timeout_secs),
        data_timeout: Duration::from_secs(s.smtp.data_timeout_secs),
        idle_timeout: Duration::from_secs(s.smtp.idle_timeout_secs),
        reach: Reach { egress: EgressPolicy::parse(&s.egress.allow)?, extra_roots },
    })
}

/// The operator's admin token, created on first use.
pub fn admin_token(s: &Settings) -> anyhow::Result<std::sync::Arc<AdminToken>> {
    Ok(std::sync::Arc::new(AdminToken::load_or_create(&s.api.admin_token_file)?))
}

/// The API's state.
pub fn api_state(
    s: &Settings,
    pool: PgPool,
    vault: Vault,
    admin: std::sync::Arc<AdminToken>,
) -> anyhow::Result<AppState> {
    let limits = ApiLimits {
        max_request_bytes: s.api.max_request_bytes,
        max_message_bytes: s.api.max_message_bytes,
        max_recipients: s.api.max_recipients,
        max_batch: s.api.max_batch,
        edge: mailroom_api::edge::EdgeLimits {
            header_timeout: Duration::from_secs(s.api.header_timeout_secs),
            request_timeout: Duration::from_secs(s.api.request_timeout_secs),
            max_connections: s.api.max_connections,
        },
        rate: rate_limits(s),
        webhook_secret_overlap: Duration::from_secs(s.api.webhook_secret_overlap_hours * 3_600),
    };
    let rotation_wait = Duration::from_secs(s.vault.cache_ttl_secs);
    let trusted_proxy_header = s.api.trusted_proxy_header.as_ref().map(|h| h.to_ascii_lowercase());
    Ok(AppState {
        pool,
        vault,
        smtp: smtp(s)?,
        limits,
        rotation_wait,
        oauth: s.oauth.build()?,
        admin,
        trusted_proxy_header,
        failed_auth: Default::default(),
        local_limits: Default::default(),
        exports: Default::default(),
    })
}

/// The API's rate limits, when on.
fn rate_limits(s: &Settings) -> Option<RateLimits> {
    let r = &s.rate_limits;
    let rate = |per_minute| Rate::per_minute(per_minute, r.burst_secs);
    let class = |key, workspace| ClassLimits { key: rate(key), workspace: rate(workspace) };
    r.enabled.then(|| RateLimits {
        sends: class(r.sends_per_key, r.sends_per_workspace),
        reads: class(r.reads_per_key, r.reads_per_workspace),
        writes: class(r.writes_per_key, r.writes_per_workspace),
        failed_auth: rate(r.failed_auth_per_source),
    })
}

/// A worker name unique to this process: host, pid and a random suffix, so a restarted
/// process never shares a name with its dead predecessor.
pub fn worker_name(kind: &str) -> String {
    let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_owned()).unwrap_or_else(|_| "host".into());
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{kind}-{host}-{}-{}", std::process::id(), &suffix[..8])
}

/// The send worker's configuration.
pub fn worker_config(s: &Settings) -> anyhow::Result<SendWorkerConfig> {
    let w = &s.worker;
    let secs = Duration::from_secs;
    Ok(SendWorkerConfig {
        name: worker_name("send"),
        concurrency: w.concurrency,
        lease: secs(w.lease_secs),
        max_attempts: w.max_attempts,
        max_age: secs(w.max_age_hours * 3_600),
        retry_backoff: Backoff { base: secs(w.retry_base_secs), cap: secs(w.retry_cap_secs) },
        throttle_backoff: Backoff { base: secs(w.throttle_base_secs), cap: secs(w.throttle_cap_secs) },
        quota_pause: secs(w.quota_pause_secs),
        reconcile_delay: secs(w.reconcile_delay_secs),
        prune_after: secs(w.prune_after_secs),
        sweep_after: secs(w.sweep_after_secs),
        housekeeping_every: secs(w.housekeeping_every_secs),
        key_grace: secs(s.vault.cache_ttl_secs),
        poll_interval: Duration::from_millis(w.poll_interval_ms),
        heartbeat: secs(w.heartbeat_secs),
        smtp: smtp(s)?,
        oauth: s.oauth.build()?,
    })
}

/// The reply worker's configuration.
pub fn reply_config(s: &Settings) -> anyhow::Result<mailroom_reply_worker::ReplyWorkerConfig> {
    let r = &s.reply;
    Ok(mailroom_reply_worker::ReplyWorkerConfig {
        name: worker_name("reply"),
        concurrency: r.concurrency,
        every: Duration::from_secs(r.every_secs),
        lease: Duration::from_secs(r.lease_secs),
        batch: r.batch,
        imap_timeout: Duration::from_secs(r.imap_timeout_secs),
        poll: Duration::from_secs(5).min(Duration::from_secs(r.every_secs)),
        reach: smtp(s)?.reach,
        webhook_backoff: Backoff {
            base: Duration::from_secs(r.webhook_retry_base_secs),
            cap: Duration::from_secs(r.webhook_retry_cap_secs),
        },
        webhook_max_age: Duration::from_secs(r.webhook_max_age_hours * 3_600),
        webhook_disable_after: Duration::from_secs(r.webhook_disable_after_hours * 3_600),
        webhook_timeout: Duration::from_secs(r.webhook_timeout_secs),
        oauth: s.oauth.build()?,
        idle_watchers: r.idle_watchers,
    })
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! { () = ctrl_c => {}, () = term => {} }
    tracing::info!("shutdown requested; finishing work in flight");
}
