//! Webhook delivery: every published event of a subscribed type is posted to each of the
//! workspace's enabled endpoints, signed as the Standard Webhooks specification says
//! (`webhook-id`: the event's id; `webhook-timestamp`; `webhook-signature: v1,<base64
//! HMAC-SHA256 of "{id}.{timestamp}.{raw body}">`, under the key a `whsec_<base64>` secret
//! decodes to, one signature per live secret during a rotation), and retried with exponential
//! backoff until a 2xx, for a day after the event; then the delivery is marked failed (visible
//! through the API). An endpoint whose every attempt has failed for `webhook_disable_after` is
//! switched off, with a `webhook.disabled` event. Delivery is at least once: receivers dedupe on
//! `webhook-id` (also the body's `id`). Endpoints registered before the standard scheme also
//! get the old `Mailroom-Signature: t=<unix seconds>,v1=<hex HMAC of "{t}.{body}" keyed by the
//! whole secret string>` and `Mailroom-Event-Id` headers.

use std::sync::Arc;

use base64::{Engine as _, engine::general_purpose::STANDARD};
use chrono::Utc;
use hmac::{Hmac, Mac};
use mailroom_domain::{EventId, MailboxId, WebhookId, WorkspaceId};
use mailroom_store::{
    events,
    webhooks::{self, DueDelivery},
};
use mailroom_transport::Refused;
use mailroom_vault::{Field, SealContext};
use secrecy::ExposeSecret;
use sha2::Sha256;
use tokio::task::JoinSet;
use zeroize::Zeroizing;

use crate::Ctx;

/// The old `Mailroom-Signature` value for `body` sent at `t`: `t=<t>,v1=<hex>` with one `v1`
/// per live secret (the current one first), each an HMAC keyed by the secret's text.
pub fn legacy_signature(secrets: &[&str], t: i64, body: &[u8]) -> String {
    let mut out = format!("t={t}");
    for secret in secrets {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
        mac.update(format!("{t}.").as_bytes());
        mac.update(body);
        out.push_str(&format!(",v1={}", hex::encode(mac.finalize().into_bytes())));
    }
    out
}

/// The key a `whsec_<base64>` secret stands for, read as the Standard Webhooks libraries read
/// it (a secret from before the standard scheme, `whsec_<hex>`, is valid base64 too, so the
/// libraries verify it unchanged).
fn key_of(secret: &str) -> Zeroizing<Vec<u8>> {
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    // Every secret Mailroom makes decodes; anything else is keyed as its text, which no
    // receiver's library would accept, so a broken secret shows as failed deliveries.
    Zeroizing::new(STANDARD.decode(encoded).unwrap_or_else(|_| encoded.as_bytes().to_vec()))
}

/// The `webhook-signature` value: `v1,<base64>` under each secret, space-separated.
pub fn standard_signature(secrets: &[&str], id: &str, t: i64, body: &[u8]) -> String {
    let one = |secret: &&str| {
        let mut mac = Hmac::<Sha256>::new_from_slice(&key_of(secret)).expect("HMAC takes keys of any length");
        mac.update(format!("{id}.{t}.").as_bytes());
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    };
    secrets.iter().map(one).collect::<Vec<_>>().join(" ")
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
            let body = serde_json::to_vec(&event.wire())?;
            let request = signed(ctx, d, owner, &EventId::from_uuid(event.id).to_string(), body).await?;
            match request.send_with(&http, &d.url).await {
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
    let mut tx = ctx.pool.begin().await?;
    webhooks::record_attempt(&mut tx, d, ok, &status, next).await?;
    if !ok && next.is_none() {
        tracing::warn!(webhook = %d.webhook_id, attempts = d.attempts + 1, "webhook delivery failed for good");
    }
    let disable_after = ctx.config.webhook_disable_after.as_secs_f64();
    // A failure more than two of the longest retry waits after the last one starts a new count.
    let gap = ctx.config.webhook_backoff.cap.as_secs_f64() * 2.0;
    if let Some(off) = webhooks::note_outcome(&mut tx, d.webhook_id, ok, disable_after, gap).await? {
        let id = WebhookId::from_uuid(d.webhook_id);
        tracing::warn!(webhook = %id, failing_since = %off.failing_since, "a webhook endpoint kept failing; switched off");
        let data = serde_json::json!({ "webhook_id": id, "failing_since": off.failing_since,
            "reason": off.disabled_reason });
        let ws = WorkspaceId::from_uuid(off.workspace_id);
        events::insert(
            &mut tx,
            &events::NewEvent { workspace: ws, kind: "webhook.disabled", send: None, mailbox: None, data },
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// A delivery's body with its headers, signed under every live secret of the endpoint.
struct Signed {
    body: Vec<u8>,
    headers: Vec<(&'static str, String)>,
}

impl Signed {
    async fn send_with(self, http: &reqwest::Client, url: &str) -> reqwest::Result<reqwest::Response> {
        let mut req = http.post(url).header("content-type", "application/json");
        for (name, value) in self.headers {
            req = req.header(name, value);
        }
        req.body(self.body).send().await
    }
}

/// Opens the endpoint's secrets (the current one, and the one before a rotation while it still
/// signs), signs `body` and drops them.
async fn signed(ctx: &Ctx, d: &DueDelivery, owner: SealContext, id: &str, body: Vec<u8>) -> anyhow::Result<Signed> {
    let current = mailroom_keyring::open_sealed(&ctx.pool, &ctx.vault, owner, &d.secret_sealed).await?;
    // The previous secret is in its last hours; one that no longer opens (its key version gone
    // with the overlap) must not stop the delivery.
    let previous = match &d.previous_sealed {
        Some(sealed) => match mailroom_keyring::open_sealed(&ctx.pool, &ctx.vault, owner, sealed).await {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::warn!(webhook = %d.webhook_id, error = %e, "the previous webhook secret did not open; signing with the current one");
                None
            }
        },
        None => None,
    };
    let t = Utc::now().timestamp();
    let mut secrets = vec![current.expose_secret()];
    secrets.extend(previous.as_ref().map(|p| p.expose_secret()));
    let mut headers = vec![
        ("webhook-id", id.to_owned()),
        ("webhook-timestamp", t.to_string()),
        ("webhook-signature", standard_signature(&secrets, id, t, &body)),
    ];
    if d.legacy_signature {
        headers.push(("mailroom-signature", legacy_signature(&secrets, t, &body)));
        headers.push(("mailroom-event-id", id.to_owned()));
    }
    Ok(Signed { body, headers })
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
