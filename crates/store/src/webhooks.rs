//! Webhook endpoints and their deliveries. Deliveries are created from the published event
//! feed (one per endpoint and event of a subscribed type) and claimed by dispatchers with a
//! short lock, so concurrent dispatchers never post one delivery twice at once.

use chrono::{DateTime, Utc};
use mailroom_domain::WorkspaceId;
use sqlx::PgConnection;

use crate::Result;

/// A registered endpoint.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WebhookRow {
    /// Its id.
    pub id: uuid::Uuid,
    /// Its workspace.
    pub workspace_id: uuid::Uuid,
    /// Where events are posted.
    pub url: String,
    /// Types delivered (empty: all).
    pub event_types: Vec<String>,
    /// The sealed signing secret.
    pub secret_sealed: Vec<u8>,
    /// The key version it is sealed under.
    pub key_version: i32,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
}

/// Registers an endpoint; it receives events published from now on.
pub async fn insert(conn: &mut PgConnection, w: &WebhookRow) -> Result<()> {
    sqlx::query(
        "INSERT INTO webhooks (id, workspace_id, url, event_types, secret_sealed, key_version, last_pos)
         VALUES ($1, $2, $3, $4, $5, $6, COALESCE((SELECT max(pos) FROM events), 0))",
    )
    .bind(w.id)
    .bind(w.workspace_id)
    .bind(&w.url)
    .bind(&w.event_types)
    .bind(&w.secret_sealed)
    .bind(w.key_version)
    .execute(conn)
    .await?;
    Ok(())
}

/// The workspace's live endpoints.
pub async fn list(conn: &mut PgConnection, ws: WorkspaceId) -> Result<Vec<WebhookRow>> {
    Ok(sqlx::query_as("SELECT * FROM webhooks WHERE workspace_id = $1 AND deleted_at IS NULL ORDER BY created_at")
        .bind(ws.as_uuid())
        .fetch_all(conn)
        .await?)
}

/// Removes an endpoint (its pending deliveries are dropped). Returns whether it existed.
pub async fn delete(conn: &mut PgConnection, ws: WorkspaceId, id: uuid::Uuid) -> Result<bool> {
    let done = sqlx::query(
        "WITH gone AS (DELETE FROM webhook_deliveries WHERE workspace_id = $1 AND webhook_id = $2 AND state = 'pending')
         UPDATE webhooks SET deleted_at = now() WHERE workspace_id = $1 AND id = $2 AND deleted_at IS NULL",
    )
    .bind(ws.as_uuid())
    .bind(id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Creates the deliveries of newly published events for every live endpoint, and moves each
/// endpoint's position. Idempotent. Returns how many deliveries were created.
pub async fn fan_out(conn: &mut PgConnection) -> Result<u64> {
    let done = sqlx::query(
        "WITH hooks AS (
             SELECT id, workspace_id, event_types, last_pos FROM webhooks WHERE deleted_at IS NULL FOR UPDATE SKIP LOCKED),
         top AS (SELECT COALESCE(max(pos), 0) AS pos FROM events),
         made AS (
             INSERT INTO webhook_deliveries (webhook_id, event_pos, workspace_id)
             SELECT h.id, e.pos, h.workspace_id FROM hooks h
             JOIN events e ON e.workspace_id = h.workspace_id AND e.pos > h.last_pos AND e.pos <= (SELECT pos FROM top)
             WHERE cardinality(h.event_types) = 0 OR e.kind = ANY(h.event_types)
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
    /// The event's workspace.
    pub workspace_id: uuid::Uuid,
    /// When the event was created (deliveries give up a day after).
    pub event_created_at: DateTime<Utc>,
}

/// Claims up to `limit` due deliveries for `lock_secs`.
pub async fn claim_due(conn: &mut PgConnection, lock_secs: f64, limit: i64) -> Result<Vec<DueDelivery>> {
    Ok(sqlx::query_as(
        "WITH due AS (
             SELECT webhook_id, event_pos FROM webhook_deliveries
             WHERE state = 'pending' AND next_attempt_at <= now() AND (locked_until IS NULL OR locked_until < now())
             ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED)
         UPDATE webhook_deliveries d SET locked_until = now() + make_interval(secs => $1)
         FROM due, webhooks w, events e
         WHERE d.webhook_id = due.webhook_id AND d.event_pos = due.event_pos AND w.id = d.webhook_id AND e.pos = d.event_pos
         RETURNING d.webhook_id, d.event_pos, d.attempts, w.url, w.secret_sealed, d.workspace_id, e.created_at AS event_created_at",
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
}

/// An endpoint's deliveries in one state, newest first.
pub async fn deliveries(
    conn: &mut PgConnection,
    ws: WorkspaceId,
    webhook: uuid::Uuid,
    state: &str,
    limit: i64,
) -> Result<Vec<DeliveryRow>> {
    Ok(sqlx::query_as(
        "SELECT e.id AS event_id, e.kind, d.state, d.attempts, d.last_status, d.next_attempt_at
         FROM webhook_deliveries d JOIN events e ON e.pos = d.event_pos
         WHERE d.workspace_id = $1 AND d.webhook_id = $2 AND d.state = $3
         ORDER BY d.event_pos DESC LIMIT $4",
    )
    .bind(ws.as_uuid())
    .bind(webhook)
    .bind(state)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// Signing secrets sealed under another version than their workspace's active key.
pub async fn stale_secrets(conn: &mut PgConnection, limit: i64) -> Result<Vec<WebhookRow>> {
    Ok(sqlx::query_as(
        "SELECT w.* FROM webhooks w
         JOIN workspace_keys k ON k.workspace_id = w.workspace_id AND k.state = 'active'
         WHERE w.key_version <> k.version AND w.deleted_at IS NULL LIMIT $1",
    )
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// Replaces a signing secret's sealing if it is still `old` (compare-and-swap).
pub async fn reseal(conn: &mut PgConnection, old: &WebhookRow, sealed: &[u8], version: i32) -> Result<bool> {
    let done =
        sqlx::query("UPDATE webhooks SET secret_sealed = $3, key_version = $4 WHERE id = $1 AND secret_sealed = $2")
            .bind(old.id)
            .bind(&old.secret_sealed)
            .bind(sealed)
            .bind(version)
            .execute(conn)
            .await?;
    Ok(done.rows_affected() == 1)
}
