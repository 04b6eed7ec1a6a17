//! The reply-detection worker (`mailroom worker reply`): a pool of its own that checks each
//! connected mailbox's INBOX on a schedule, at most one worker per mailbox at a time across
//! all processes (a lease on the mailbox's cursor), and turns replies, automatic replies,
//! bounces and unsubscribe requests to the engine's sends into events for the scheduler. The
//! same processes deliver every event to the workspaces' webhooks.
#![deny(missing_docs)]

mod check;
mod classify;
mod gmail;
mod graph;
mod idle;
mod parse;
mod record;
mod token;
mod webhooks;

use std::{sync::Arc, time::Duration};

use mailroom_store::{PgPool, replies};
use mailroom_vault::Vault;
use tokio::{sync::Semaphore, task::JoinSet};

pub use check::Checked;
pub use classify::Kind;
pub use webhooks::{legacy_signature, standard_signature};

/// How the reply worker behaves.
#[derive(Debug, Clone)]
pub struct ReplyWorkerConfig {
    /// A name unique to this process (it holds mailbox leases under it).
    pub name: String,
    /// Mailboxes checked at once.
    pub concurrency: usize,
    /// How often each mailbox is checked (jittered by ±20%).
    pub every: Duration,
    /// How long a claim on a mailbox lasts; a dead worker's mailboxes are free after it.
    pub lease: Duration,
    /// Messages read per check at most (the rest on the next, at once).
    pub batch: usize,
    /// Limit on one IMAP session.
    pub imap_timeout: Duration,
    /// How often to look for due mailboxes.
    pub poll: Duration,
    /// Where IMAP servers and webhook receivers may be reached, and extra trusted CAs.
    pub reach: mailroom_transport::Reach,
    /// Retry backoff of webhook deliveries.
    pub webhook_backoff: mailroom_domain::backoff::Backoff,
    /// Webhook deliveries are given up this long after their event.
    pub webhook_max_age: Duration,
    /// Limit on one webhook request.
    pub webhook_timeout: Duration,
    /// An endpoint whose every delivery has failed for this long is switched off.
    pub webhook_disable_after: Duration,
    /// OAuth providers (Gmail API mailboxes are read with their access tokens).
    pub oauth: mailroom_keyring::oauth_config::OAuthSettings,
    /// IMAP mailboxes this process keeps an IDLE session open on between checks, so a reply
    /// is read within seconds rather than at the next check (0: none).
    pub idle_watchers: usize,
}

struct Ctx {
    pool: PgPool,
    vault: Vault,
    config: ReplyWorkerConfig,
    /// Free places for IDLE watchers.
    watchers: Arc<Semaphore>,
    /// Turns true when the worker stops (watchers leave at once).
    stop: tokio::sync::watch::Receiver<bool>,
    /// A watcher made a mailbox due: look for due mailboxes now rather than after `poll`.
    wake: tokio::sync::Notify,
}

/// Runs the reply worker until `shutdown` completes; checks in flight finish first.
pub async fn run(
    pool: PgPool,
    vault: Vault,
    config: ReplyWorkerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let watchers = Arc::new(Semaphore::new(config.idle_watchers));
    let wake = tokio::sync::Notify::new();
    let ctx = Arc::new(Ctx { pool, vault, config, watchers, stop: stop_rx.clone(), wake });
    let hooks = tokio::spawn(deliver_webhooks(ctx.clone(), stop_rx.clone()));
    let mut stop = stop_rx;
    let mut shutdown = std::pin::pin!(shutdown);
    tracing::info!(worker.name = %ctx.config.name, "reply worker started");
    loop {
        match round(&ctx).await {
            Ok(0) | Err(_) => {}
            Ok(_) => continue, // there may be more due right away
        }
        tokio::select! {
            () = &mut shutdown => break,
            _ = stop.changed() => break,
            () = ctx.wake.notified() => {}
            () = tokio::time::sleep(ctx.config.poll) => {}
        }
    }
    let _ = stop_tx.send(true);
    let _ = hooks.await;
    idle::wait_for_watchers(&ctx).await;
    tracing::info!(worker.name = %ctx.config.name, "reply worker stopped");
    Ok(())
}

async fn deliver_webhooks(ctx: Arc<Ctx>, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        match webhooks::round(&ctx).await {
            Ok(n) if n > 0 => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %format!("{e:#}"), "webhook round failed; will try again"),
        }
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(ctx.config.poll) => {}
        }
    }
}

/// Claims due mailboxes and checks them concurrently. Returns how many were checked.
async fn round(ctx: &Arc<Ctx>) -> anyhow::Result<usize> {
    let claimed = async {
        let mut conn = ctx.pool.acquire().await?;
        replies::ensure_cursors(&mut conn).await?;
        let lease = ctx.config.lease.as_secs_f64();
        anyhow::Ok(replies::claim_due(&mut conn, &ctx.config.name, lease, ctx.config.concurrency as i64).await?)
    }
    .await
    .inspect_err(|e| tracing::warn!(error = %e, "claiming mailboxes to check failed; will try again"))?;
    let n = claimed.len();
    let mut checks = JoinSet::new();
    for cursor in claimed {
        let ctx = ctx.clone();
        checks.spawn(async move {
            let mbx = cursor.mailbox_id;
            match check::run(&ctx, cursor).await {
                Ok(c) if c.read > 0 => {
                    tracing::info!(mailbox.id = %mbx, read = c.read, events = c.events, "mailbox checked")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(mailbox.id = %mbx, error = %format!("{e:#}"), "mailbox check failed"),
            }
        });
    }
    while checks.join_next().await.is_some() {}
    Ok(n)
}
