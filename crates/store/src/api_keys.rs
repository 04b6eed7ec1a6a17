//! API keys: only a SHA-256 hash of each secret is stored.

use chrono::{DateTime, Utc};
use mailroom_domain::{ApiKeyId, WorkspaceId};
use sqlx::PgConnection;

use crate::Result;

/// An API key as stored.
#[derive(sqlx::FromRow)]
pub struct ApiKeyRow {
    /// The key id (public half).
    pub id: uuid::Uuid,
    /// The workspace the key acts for.
    pub workspace_id: uuid::Uuid,
    /// A label.
    pub name: String,
    /// SHA-256 of the secret half.
    pub secret_hash: Vec<u8>,
    /// What the key may do.
    pub scopes: Vec<String>,
    /// When it stops working.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Stores a new key.
pub async fn insert(
    conn: &mut PgConnection,
    id: ApiKeyId,
    workspace: WorkspaceId,
    name: &str,
    secret_hash: &[u8],
    scopes: &[String],
) -> Result<()> {
    sqlx::query("INSERT INTO api_keys (id, workspace_id, name, secret_hash, scopes) VALUES ($1, $2, $3, $4, $5)")
        .bind(id.as_uuid())
        .bind(workspace.as_uuid())
        .bind(name)
        .bind(secret_hash)
        .bind(scopes)
        .execute(conn)
        .await?;
    Ok(())
}

/// Looks a key up by its id; the caller checks the secret, expiry and revocation.
pub async fn find(conn: &mut PgConnection, id: ApiKeyId) -> Result<Option<ApiKeyRow>> {
    Ok(sqlx::query_as(
        "SELECT id, workspace_id, name, secret_hash, scopes, expires_at, revoked_at FROM api_keys WHERE id = $1",
    )
    .bind(id.as_uuid())
    .fetch_optional(conn)
    .await?)
}
