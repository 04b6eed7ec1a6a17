//! Wrapped workspace data keys (`workspace_keys`).

use mailroom_domain::WorkspaceId;
use sqlx::PgConnection;

use crate::Result;

/// A wrapped workspace key as stored.
#[derive(Clone, sqlx::FromRow)]
pub struct WorkspaceKeyRow {
    /// The workspace.
    pub workspace_id: uuid::Uuid,
    /// The key version.
    pub version: i32,
    /// The key wrapped by the master key.
    pub wrapped_key: Vec<u8>,
    /// The provider that wrapped it.
    pub provider: String,
    /// The master key's id at that provider.
    pub kms_key_id: String,
    /// `active`, `retired` or `destroyed`.
    pub state: String,
}

/// Stores a new wrapped key.
pub async fn insert(conn: &mut PgConnection, row: &WorkspaceKeyRow) -> Result<()> {
    sqlx::query(
        "INSERT INTO workspace_keys (workspace_id, version, wrapped_key, provider, kms_key_id, state)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(row.workspace_id)
    .bind(row.version)
    .bind(&row.wrapped_key)
    .bind(&row.provider)
    .bind(&row.kms_key_id)
    .bind(&row.state)
    .execute(conn)
    .await?;
    Ok(())
}

/// The workspace's active key, used for sealing.
pub async fn active(conn: &mut PgConnection, workspace: WorkspaceId) -> Result<Option<WorkspaceKeyRow>> {
    Ok(sqlx::query_as("SELECT * FROM workspace_keys WHERE workspace_id = $1 AND state = 'active'")
        .bind(workspace.as_uuid())
        .fetch_optional(conn)
        .await?)
}

/// A specific key version (named by a sealed value's header), unless destroyed.
pub async fn version(conn: &mut PgConnection, workspace: WorkspaceId, version: i32) -> Result<Option<WorkspaceKeyRow>> {
    Ok(sqlx::query_as("SELECT * FROM workspace_keys WHERE workspace_id = $1 AND version = $2 AND state <> 'destroyed'")
        .bind(workspace.as_uuid())
        .bind(version)
        .fetch_optional(conn)
        .await?)
}
