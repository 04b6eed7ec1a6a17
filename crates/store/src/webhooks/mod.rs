//! Webhook endpoints: registration, changes, secret rotation, and re-sealing. Their
//! deliveries are in [`deliveries`].

pub mod deliveries;
pub use deliveries::*;

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
    /// Whether it gets deliveries.
    pub enabled: bool,
    /// Why it was switched off.
    pub disabled_reason: Option<String>,
    /// Since when every attempt has failed.
    pub failing_since: Option<DateTime<Utc>>,
    /// Until when the secret before the last rotation still signs.
    pub previous_until: Option<DateTime<Utc>>,
    /// Whether the old `Mailroom-Signature` header is sent too.
    pub legacy_signature: bool,
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

/// One live endpoint of the workspace.
pub async fn get(conn: &mut PgConnection, ws: WorkspaceId, id: uuid::Uuid) -> Result<Option<WebhookRow>> {
    Ok(sqlx::query_as("SELECT * FROM webhooks WHERE workspace_id = $1 AND id = $2 AND deleted_at IS NULL")
        .bind(ws.as_uuid())
        .bind(id)
        .fetch_optional(conn)
        .await?)
}

/// What a `PATCH` changes (`None`: unchanged).
#[derive(Debug, Default)]
pub struct Change {
    /// A new URL (checked by the caller).
    pub url: Option<String>,
    /// New event types.
    pub event_types: Option<Vec<String>>,
    /// On or off. Switched on, the endpoint takes events published from now on and its
    /// failure record starts afresh.
    pub enabled: Option<bool>,
    /// Whether the old header is sent too.
    pub legacy_signature: Option<bool>,
}

/// Applies `c` to a live endpoint; returns it as it is now. Switched off, its pending
/// deliveries are settled as failed (switched on again, it takes new events only).
pub async fn change(
    conn: &mut PgConnection,
    ws: WorkspaceId,
    id: uuid::Uuid,
    c: &Change,
) -> Result<Option<WebhookRow>> {
    let row: Option<WebhookRow> = sqlx::query_as(
        "UPDATE webhooks SET url = coalesce($3, url), event_types = coalesce($4, event_types),
             legacy_signature = coalesce($6, legacy_signature),
             last_pos = CASE WHEN $5 AND NOT enabled
                             THEN COALESCE((SELECT max(pos) FROM events WHERE workspace_id = $1), 0) ELSE last_pos END,
             failing_since = CASE WHEN $5 AND NOT enabled THEN NULL ELSE failing_since END,
             last_failure_at = CASE WHEN $5 AND NOT enabled THEN NULL ELSE last_failure_at END,
             disabled_reason = CASE WHEN $5 THEN NULL WHEN $5 = false AND enabled THEN 'switched off over the API'
                                    ELSE disabled_reason END,
             enabled = coalesce($5, enabled)
         WHERE workspace_id = $1 AND id = $2 AND deleted_at IS NULL
         RETURNING *",
    )
    .bind(ws.as_uuid())
    .bind(id)
    .bind(&c.url)
    .bind(&c.event_types)
    .bind(c.enabled)
    .bind(c.legacy_signature)
    .fetch_optional(&mut *conn)
    .await?;
    if row.is_some() && c.enabled == Some(false) {
        deliveries::settle_pending(conn, id, "endpoint switched off").await?;
    }
    Ok(row)
}

/// Replaces the signing secret by `sealed`; the current one keeps signing until `until`.
/// Returns the endpoint as it is now.
pub async fn rotate_secret(
    conn: &mut PgConnection,
    ws: WorkspaceId,
    id: uuid::Uuid,
    sealed: &[u8],
    version: i32,
    until: DateTime<Utc>,
) -> Result<Option<WebhookRow>> {
    Ok(sqlx::query_as(
        "UPDATE webhooks SET previous_sealed = secret_sealed, previous_key_version = key_version, previous_until = $5,
             secret_sealed = $3, key_version = $4
         WHERE workspace_id = $1 AND id = $2 AND deleted_at IS NULL
         RETURNING *",
    )
    .bind(ws.as_uuid())
    .bind(id)
    .bind(sealed)
    .bind(version)
    .bind(until)
    .fetch_optional(conn)
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
