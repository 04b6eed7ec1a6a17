//! Webhook delivery: every published event of a subscribed type is posted to each of the
//! workspace's endpoints, signed with HMAC-SHA256 over `"{timestamp}.{raw body}"` under the
//! endpoint's secret (`Mailroom-Signature: t=<unix seconds>,v1=<hex>`), and retried with
//! exponential backoff until a 2xx, for a day after the event; then the delivery is marked
//! failed (visible through the API). Delivery is at least once: receivers dedupe on the
//! event id (`Mailroom-Event-Id`, also in the body).

use std::sync::Arc;

use chrono::Utc;
use hmac::{Hmac, Mac};
use mailroom_domain::{EventId, MailboxId, WorkspaceId};
use mailroom_store::{
    events,
    webhooks::{self, DueDelivery},
};
use mailroom_transport::Refused;
use mailroom_vault::{Field, SealContext};
use secrecy::ExposeSecret;
use sha2::Sha256;
use tokio::task::JoinSet;

use crate::Ctx;

/// The signature header's value for `body` sent at `t` (receivers recompute it).
pub fn signature(secret: &str, t: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// One round: publish events, create deliveries, post what is due. Returns how many were
/// attempted.
pub(crate) async fn round(ctx: &Arc<Ctx>) -> anyhow::Result<usize> {
    events::publish(&ctx.pool).await?;
    let mut conn = ctx.pool.acquire().await?;
    webhooks::fan_out(&mut conn).await?;
    let lock = ctx.config.webhook_timeout.as_secs_f64() * 2.0;
    let due = webhooks::claim_due(&mut conn, lock, 32).await?;
    drop(conn);
    let n = due.len();
    let mut posts = JoinSet::new();
    for d in due {
        let ctx = ctx.clone();
        posts.spawn(async move {
            if let Err(e) = deliver(&ctx, &d).await {
                tracing::warn!(webhook = %d.webhook_id, error = %format!("{e:#}"), "webhook delivery could not be recorded");
            }
        });
    }
    while posts.join_next().await.is_some() {}
    Ok(n)
}

async fn deliver(ctx: &Ctx, d: &DueDelivery) -> anyhow::Result<()> {
    let mut conn = ctx.pool.acquire().await?;
    let Some(event) = events::at(&mut conn, d.event_pos).await? else { return Ok(()) };
    drop(conn);
    let ws = WorkspaceId::from_uuid(d.workspace_id);
    let owner = SealContext { workspace: ws, mailbox: MailboxId::from_uuid(d.webhook_id), field: Field::WebhookSecret };
    let (ok, status) = match client(ctx, &d.url).await {
        Err(refused) => {
            tracing::info!(webhook = %d.webhook_id, reason = %refused, "webhook address refused by the egress policy");
            (false, format!("refused: {refused}"))
        }
        Ok(http) => {
            let secret = mailroom_keyring::open_sealed(&ctx.pool, &ctx.vault, owner, &d.secret_sealed).await?;
            let body = serde_json::to_vec(&event.wire())?;
            let t = Utc::now().timestamp();
            let sig = signature(secret.expose_secret(), t, &body);
            drop(secret);
            let sent = http
                .post(&d.url)
                .header("content-type", "application/json")
                .header("mailroom-signature", sig)
                .header("mailroom-event-id", EventId::from_uuid(event.id).to_string())
                .body(body)
                .send()
                .await;
            match sent {
                Ok(r) => (r.status().is_success(), r.status().as_u16().to_string()),
                Err(e) => (false, format!("no answer: {}", e.without_url())),
            }
        }
    };
    let expired = Utc::now() - event.created_at > chrono::Duration::from_std(ctx.config.webhook_max_age)?;
    let next = (!ok && !expired).then(|| {
        let wait = ctx.config.webhook_backoff.delay(u32::try_from(d.attempts + 1).unwrap_or(u32::MAX), rand::random());
        Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default()
    });
    let mut conn = ctx.pool.acquire().await?;
    webhooks::record_attempt(&mut conn, d, ok, &status, next).await?;
    if !ok && next.is_none() {
        tracing::warn!(webhook = %d.webhook_id, attempts = d.attempts + 1, "webhook delivery failed for good");
    }
    Ok(())
}

/// The HTTP client for one delivery, pinned to the addresses the egress policy checked for
/// the URL's host (no DNS between the check and the connect), with no proxy, no redirects (a
/// redirect could point a signed body anywhere) and a bounded wait.
async fn client(ctx: &Ctx, url: &str) -> Result<reqwest::Client, Refused> {
    let url = reqwest::Url::parse(url).map_err(|_| Refused::BadUrl("the URL cannot be parsed"))?;
    // The lookup is bounded like the request: a tenant's slow DNS must not hold up the round.
    let target = tokio::time::timeout(ctx.config.webhook_timeout, ctx.config.reach.egress.vet_url(&url))
        .await
        .map_err(|_| Refused::BadUrl("the URL's host did not resolve in time"))??;
    reqwest::Client::builder()
        .resolve_to_addrs(&target.host, &target.addrs)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(ctx.config.webhook_timeout)
        .user_agent("mailroom-webhooks/1")
        .build()
        .map_err(|_| Refused::BadUrl("no HTTP client could be built for the URL"))
}
