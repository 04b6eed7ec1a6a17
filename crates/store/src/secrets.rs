//! Sealed mailbox credentials (`mailbox_secrets`): re-sealing under a new key version, and
//! destroying them. The bytes are ciphertext; this module never sees a plaintext.

use mailroom_domain::{MailboxId, WorkspaceId};
use sqlx::PgConnection;

use crate::Result;

/// A sealed value as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SealedRow {
    /// Its workspace.
    pub workspace_id: uuid::Uuid,
    /// Its mailbox.
    pub mailbox_id: uuid::Uuid,
    /// The field (`smtp_password`, ...).
    pub field: String,
    /// The sealed bytes (format v1, docs/design.md section 2).
    pub sealed: Vec<u8>,
    /// The key version its header names.
    pub key_version: i32,
}

/// Sealed values under another version than their workspace's active key, a page at a time.
pub async fn stale(conn: &mut PgConnection, limit: i64) -> Result<Vec<SealedRow>> {
    Ok(sqlx::query_as(
        "SELECT s.workspace_id, s.mailbox_id, s.field, s.sealed, s.key_version
         FROM mailbox_secrets s
         JOIN workspace_keys k ON k.workspace_id = s.workspace_id AND k.state = 'active'
         WHERE s.key_version <> k.version
         ORDER BY s.workspace_id, s.mailbox_id, s.field
         LIMIT $1",
    )
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// Replaces a sealed value if it is still `old` (compare-and-swap: a mailbox reconnected in
/// the meantime keeps its new value). Returns whether it did.
pub async fn reseal(conn: &mut PgConnection, old: &SealedRow, sealed: &[u8], version: i32) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE mailbox_secrets SET sealed = $4, key_version = $5, updated_at = now()
         WHERE workspace_id = $1 AND mailbox_id = $2 AND field = $3 AND sealed = $6",
    )
    .bind(old.workspace_id)
    .bind(old.mailbox_id)
    .bind(&old.field)
    .bind(sealed)
    .bind(version)
    .bind(&old.sealed)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes a mailbox's sealed values; returns the fields destroyed.
pub async fn destroy_mailbox(conn: &mut PgConnection, ws: WorkspaceId, mbx: MailboxId) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar("DELETE FROM mailbox_secrets WHERE workspace_id = $1 AND mailbox_id = $2 RETURNING field")
        .bind(ws.as_uuid())
        .bind(mbx.as_uuid())
        .fetch_all(conn)
        .await?)
}

/// Every sealed value of a workspace (the shredding test reads them before the delete).
pub async fn of_workspace(conn: &mut PgConnection, ws: WorkspaceId) -> Result<Vec<SealedRow>> {
    Ok(sqlx::query_as(
        "SELECT workspace_id, mailbox_id, field, sealed, key_version FROM mailbox_secrets WHERE workspace_id = $1",
    )
    .bind(ws.as_uuid())
    .fetch_all(conn)
    .await?)
}

/// Deletes every sealed value of a workspace; returns how many.
pub async fn destroy_workspace(conn: &mut PgConnection, ws: WorkspaceId) -> Result<u64> {
    let done =
        sqlx::query("DELETE FROM mailbox_secrets WHERE workspace_id = $1").bind(ws.as_uuid()).execute(conn).await?;
    Ok(done.rows_affected())
}

/// Stores a mailbox's sealed value, replacing the one there (a refreshed token).
pub async fn put(
    conn: &mut PgConnection,
    ws: WorkspaceId,
    mbx: MailboxId,
    field: &str,
    sealed: &[u8],
    version: i32,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO mailbox_secrets (workspace_id, mailbox_id, field, sealed, key_version) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (mailbox_id, field) DO UPDATE SET sealed = $4, key_version = $5, updated_at = now()",
    )
    .bind(ws.as_uuid())
    .bind(mbx.as_uuid())
    .bind(field)
    .bind(sealed)
    .bind(version)
    .execute(conn)
    .await?;
    Ok(())
}
