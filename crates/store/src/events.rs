//! The event outbox: written in the transaction of the change that causes each event.

use mailroom_domain::{EventId, MailboxId, SendId, WorkspaceId};
use sqlx::PgConnection;

use crate::Result;

/// An event to record.
pub struct NewEvent<'a> {
    /// The workspace it belongs to.
    pub workspace: WorkspaceId,
    /// `send.sent`, `send.failed`, `send.ambiguous`, `mailbox.needs_reauth`, ...
    pub kind: &'a str,
    /// The send concerned, if any.
    pub send: Option<SendId>,
    /// The mailbox concerned, if any.
    pub mailbox: Option<MailboxId>,
    /// Details for the scheduler.
    pub data: serde_json::Value,
}

/// Appends an event to the outbox.
pub async fn insert(conn: &mut PgConnection, e: &NewEvent<'_>) -> Result<EventId> {
    let id = EventId::new();
    sqlx::query(
        "INSERT INTO events (id, workspace_id, kind, send_id, mailbox_id, data) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id.as_uuid())
    .bind(e.workspace.as_uuid())
    .bind(e.kind)
    .bind(e.send.map(|s| s.as_uuid()))
    .bind(e.mailbox.map(|m| m.as_uuid()))
    .bind(&e.data)
    .execute(conn)
    .await?;
    Ok(id)
}

/// Counts a workspace's events of one kind (tests and operators).
pub async fn count(conn: &mut PgConnection, ws: WorkspaceId, kind: &str) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM events WHERE workspace_id = $1 AND kind = $2")
        .bind(ws.as_uuid())
        .bind(kind)
        .fetch_one(conn)
        .await?)
}

/// Adds an address to the workspace's suppression list (idempotent).
pub async fn suppress(conn: &mut PgConnection, ws: WorkspaceId, address: &str, reason: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO suppressions (workspace_id, address, reason) VALUES ($1, lower($2), $3) ON CONFLICT DO NOTHING",
    )
    .bind(ws.as_uuid())
    .bind(address)
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(())
}

/// The addresses among `addresses` that the workspace has suppressed.
pub async fn suppressed(conn: &mut PgConnection, ws: WorkspaceId, addresses: &[String]) -> Result<Vec<String>> {
    let lowered: Vec<String> = addresses.iter().map(|a| a.to_lowercase()).collect();
    Ok(sqlx::query_scalar("SELECT address FROM suppressions WHERE workspace_id = $1 AND address = ANY($2)")
        .bind(ws.as_uuid())
        .bind(&lowered)
        .fetch_all(conn)
        .await?)
}
