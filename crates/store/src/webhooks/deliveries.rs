//! Deliveries: created from the published event feed (one per enabled endpoint and event of a
//! subscribed type; a `webhook.test` event only for the endpoint it tests) and claimed by
//! dispatchers with a short lock, so concurrent dispatchers never post one delivery twice at
//! once. An endpoint whose every attempt fails for long enough is switched off.

use chrono::{DateTime, Utc};
use mailroom_domain::WorkspaceId;
use sqlx::PgConnection;

use crate::Result;

/// Creates the deliveries of newly published events for every enabled endpoint, and moves every
/// live endpoint's position (a disabled one skips what it passes). Idempotent. Returns how many
/// deliveries were created.
pub async fn fan_out(conn: &mut PgConnection) -> Result<u64> {
    let done = sqlx::query(
        "WITH hooks AS (
             SELECT id, workspace_id, event_types, last_pos, enabled FROM webhooks WHERE deleted_at IS NULL
             FOR UPDATE SKIP LOCKED),
         top AS (SELECT COALESCE(max(pos), 0) AS pos FROM events),
         made AS (
             INSERT INTO webhook_deliveries (webhook_id, event_pos, workspace_id)
             SELECT h.id, e.pos, h.workspace_id FROM hooks h
             JOIN events e ON e.workspace_id = h.workspace_id AND e.pos > h.last_pos AND e.pos <= (SELECT pos FROM top)
             WHERE h.enabled AND CASE WHEN e.kind = 'webhook.test'
                                      THEN e.data->>'webhook_id' = 'whk_' || replace(h.id::text, '-', '')
                                      ELSE cardinality(h.event_types) = 0 OR e.kind = ANY(h.event_types) END
             ON CONFLICT DO NOTHING
             RETURNING 1),
         moved AS (UPDATE webhooks w SET last_pos = (SELECT pos FROM top) FROM hooks h WHERE w.id = h.id)
         SELECT count(*) FROM made",
    )
    .fetch_one(conn)
    .await;
    let n: i64 = sqlx::Row::try_get(&done?, 0)?;
    Ok(n as u64)
}

/// A delivery claimed for one attempt, with what it needs.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DueDelivery {
    /// The endpoint.
    pub webhook_id: uuid::Uuid,
    /// The event's feed position.
    pub event_pos: i64,
    /// Attempts so far.
    pub attempts: i32,
    /// Where to post.
    pub url: String,
    /// The sealed signing secret.
    pub secret_sealed: Vec<u8>,
    /// The secret before the last rotation, while it still signs.
    pub previous_sealed: Option<Vec<u8>>,
    /// Whether the old `Mailroom-Signature` header is sent too.
    pub legacy_signature: bool,
    /// The event's workspace.
    pub workspace_id: uuid::Uuid,
    /// When the event was created (deliveries give up a day after).
    pub event_created_at: DateTime<Utc>,
}

/// Claims up to `limit` due deliveries for `lock_secs`.
pub async fn claim_due(conn: &mut PgConnection, lock_secs: f64, limit: i64) -> Result<Vec<DueDelivery>> {
    Ok(sqlx::query_as(
        "WITH due AS (
             SELECT d.webhook_id, d.event_pos FROM webhook_deliveries d
             JOIN webhooks w ON w.id = d.webhook_id AND w.enabled AND w.deleted_at IS NULL
             WHERE d.state = 'pending' AND d.next_attempt_at <= now()
               AND (d.locked_until IS NULL OR d.locked_until < now())
             ORDER BY d.next_attempt_at LIMIT $2 FOR UPDATE OF d SKIP LOCKED)
         UPDATE webhook_deliveries d SET locked_until = now() + make_interval(secs => $1)
         FROM due, webhooks w, events e
         WHERE d.webhook_id = due.webhook_id AND d.event_pos = due.event_pos AND w.id = d.webhook_id AND e.pos = d.event_pos
           AND w.enabled AND w.deleted_at IS NULL
         RETURNING d.webhook_id, d.event_pos, d.attempts, w.url, w.secret_sealed,
                   CASE WHEN w.previous_until > now() THEN w.previous_sealed END AS previous_sealed,
                   w.legacy_signature, d.workspace_id, e.created_at AS event_created_at",
    )
    .bind(lock_secs)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// Records an attempt: `next = None` settles it (`delivered` when `ok`, else `failed`).
pub async fn record_attempt(
    conn: &mut PgConnection,
    d: &DueDelivery,
    ok: bool,
    status: &str,
    next: Option<DateTime<Utc>>,
) -> Result<()> {
    sqlx::query(
        "UPDATE webhook_deliveries SET attempts = attempts + 1, last_status = $3, locked_until = NULL,
            state = CASE WHEN $4 THEN 'delivered' WHEN $5::timestamptz IS NULL THEN 'failed' ELSE 'pending' END,
            next_attempt_at = COALESCE($5, next_attempt_at),
            finished_at = CASE WHEN $4 OR $5::timestamptz IS NULL THEN now() END
         WHERE webhook_id = $1 AND event_pos = $2",
    )
    .bind(d.webhook_id)
    .bind(d.event_pos)
    .bind(status)
    .bind(ok)
    .bind(next)
    .execute(conn)
    .await?;
    Ok(())
}

/// An endpoint switched off by the engine.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Disabled {
    /// Its workspace.
    pub workspace_id: uuid::Uuid,
    /// Since when it had been failing.
    pub failing_since: DateTime<Utc>,
    /// Why it was switched off.
    pub disabled_reason: String,
}

/// Notes an attempt's outcome on its endpoint: a success clears its failure record; a failure
/// starts one (or starts it again when the last failure is more than `gap_secs` old: a quiet
/// spell is not a failing one), and switches the endpoint off when it has failed without a
/// success for `disable_after_secs`, settling its pending deliveries as failed. Returns what
/// was switched off (the caller publishes the event).
pub async fn note_outcome(
    conn: &mut PgConnection,
    webhook: uuid::Uuid,
    ok: bool,
    disable_after_secs: f64,
    gap_secs: f64,
) -> Result<Option<Disabled>> {
    if ok {
        sqlx::query(
            "UPDATE webhooks SET failing_since = NULL, last_failure_at = NULL WHERE id = $1 AND failing_since IS NOT NULL",
        )
        .bind(webhook)
        .execute(conn)
        .await?;
        return Ok(None);
    }
    // One row is changed twice (noted, then perhaps switched off): two statements, as one
    // statement may not update a row twice.
    let due: Option<bool> = sqlx::query_scalar(
        "UPDATE webhooks SET last_failure_at = now(),
             failing_since = CASE WHEN failing_since IS NULL OR last_failure_at < now() - make_interval(secs => $3)
                                  THEN now() ELSE failing_since END
         WHERE id = $1 AND enabled
         RETURNING failing_since < now() - make_interval(secs => $2)",
    )
    .bind(webhook)
    .bind(disable_after_secs)
    .bind(gap_secs)
    .fetch_optional(&mut *conn)
    .await?;
    if due != Some(true) {
        return Ok(None);
    }
    let off: Option<Disabled> = sqlx::query_as(
        "UPDATE webhooks SET enabled = false,
             disabled_reason = 'every delivery failed since '
                 || to_char(failing_since AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
         WHERE id = $1 AND enabled
         RETURNING workspace_id, failing_since, disabled_reason",
    )
    .bind(webhook)
    .fetch_optional(&mut *conn)
    .await?;
    if off.is_some() {
        settle_pending(conn, webhook, "endpoint switched off").await?;
    }
    Ok(off)
}

/// Settles an endpoint's pending deliveries as failed: switched off, it must not be flooded with
/// old events when it is switched on again.
pub async fn settle_pending(conn: &mut PgConnection, webhook: uuid::Uuid, why: &str) -> Result<u64> {
    let done = sqlx::query(
        "UPDATE webhook_deliveries SET state = 'failed', last_status = $2, locked_until = NULL, finished_at = now()
         WHERE webhook_id = $1 AND state = 'pending'",
    )
    .bind(webhook)
    .bind(why)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// A delivery as the API shows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeliveryRow {
    /// The event's id.
    pub event_id: uuid::Uuid,
    /// Its type.
    pub kind: String,
    /// `pending`, `delivered` or `failed`.
    pub state: String,
    /// Attempts made.
    pub attempts: i32,
    /// The last answer (HTTP status or error).
    pub last_status: Option<String>,
    /// When the next attempt is due.
    pub next_attempt_at: DateTime<Utc>,
    /// The event's feed position (the listing's cursor).
    pub event_pos: i64,
}

/// Which deliveries of an endpoint to list.
#[derive(Debug)]
pub struct DeliveryFilter<'a> {
    /// `pending`, `delivered` or `failed`.
    pub state: &'a str,
    /// Only events of this type.
    pub kind: Option<&'a str>,
    /// Only those before this feed position (the previous page's last), newest first.
    pub before: Option<i64>,
    /// At most this many.
    pub limit: i64,
}

/// An endpoint's deliveries matching `f`, newest first, with their feed positions (the
/// cursor).
pub async fn deliveries(
    conn: &mut PgConnection,
    ws: WorkspaceId,
    webhook: uuid::Uuid,
    f: &DeliveryFilter<'_>,
) -> Result<Vec<DeliveryRow>> {
    Ok(sqlx::query_as(
        "SELECT e.id AS event_id, e.kind, d.state, d.attempts, d.last_status, d.next_attempt_at, d.event_pos
         FROM webhook_deliveries d JOIN events e ON e.pos = d.event_pos
         WHERE d.workspace_id = $1 AND d.webhook_id = $2 AND d.state = $3
           AND ($4::text IS NULL OR e.kind = $4) AND ($5::bigint IS NULL OR d.event_pos < $5)
         ORDER BY d.event_pos DESC LIMIT $6",
    )
    .bind(ws.as_uuid())
    .bind(webhook)
    .bind(f.state)
    .bind(f.kind)
    .bind(f.before)
    .bind(f.limit)
    .fetch_all(conn)
    .await?)
}

/// How a replay ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// Due again now.
    Queued,
    /// It is still pending: nothing to replay.
    Pending,
    /// No delivery of that event to that endpoint.
    Missing,
}

/// Makes a finished delivery (of the event `event` to `webhook`, a live endpoint) due again now.
/// The caller refuses a switched-off endpoint first.
pub async fn replay(
    conn: &mut PgConnection,
    ws: WorkspaceId,
    webhook: uuid::Uuid,
    event: uuid::Uuid,
) -> Result<Replay> {
    let finished: Option<bool> = sqlx::query_scalar(
        "SELECT d.state <> 'pending' FROM webhook_deliveries d JOIN events e ON e.pos = d.event_pos
         JOIN webhooks w ON w.id = d.webhook_id AND w.deleted_at IS NULL
         WHERE d.workspace_id = $1 AND d.webhook_id = $2 AND e.id = $3 AND e.workspace_id = $1
         FOR UPDATE OF d",
    )
    .bind(ws.as_uuid())
    .bind(webhook)
    .bind(event)
    .fetch_optional(&mut *conn)
    .await?;
    match finished {
        None => return Ok(Replay::Missing),
        Some(false) => return Ok(Replay::Pending),
        Some(true) => {}
    }
    sqlx::query(
        "UPDATE webhook_deliveries d SET state = 'pending', next_attempt_at = now(), finished_at = NULL,
             locked_until = NULL
         FROM events e
         WHERE d.workspace_id = $1 AND d.webhook_id = $2 AND e.pos = d.event_pos AND e.id = $3",
    )
    .bind(ws.as_uuid())
    .bind(webhook)
    .bind(event)
    .execute(conn)
    .await?;
    Ok(Replay::Queued)
}
