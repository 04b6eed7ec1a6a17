//! Workspaces: the tenancy boundary.

use mailroom_domain::WorkspaceId;
use sqlx::PgConnection;

use crate::Result;

/// Creates a workspace.
pub async fn insert(conn: &mut PgConnection, id: WorkspaceId, name: &str, parent: Option<WorkspaceId>) -> Result<()> {
    sqlx::query("INSERT INTO workspaces (id, name, parent_id) VALUES ($1, $2, $3)")
        .bind(id.as_uuid())
        .bind(name)
        .bind(parent.map(|p| p.as_uuid()))
        .execute(conn)
        .await?;
    Ok(())
}

/// A live workspace as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WorkspaceRow {
    /// Its id.
    pub id: uuid::Uuid,
    /// A name for people.
    pub name: String,
    /// The agency that created it, for a client sub-workspace.
    pub parent_id: Option<uuid::Uuid>,
    /// When it was created.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl WorkspaceRow {
    /// Its id, typed.
    pub fn workspace(&self) -> WorkspaceId {
        WorkspaceId::from_uuid(self.id)
    }

    /// Its parent, typed.
    pub fn parent(&self) -> Option<WorkspaceId> {
        self.parent_id.map(WorkspaceId::from_uuid)
    }
}

/// A live workspace.
pub async fn get(conn: &mut PgConnection, id: WorkspaceId) -> Result<Option<WorkspaceRow>> {
    Ok(sqlx::query_as("SELECT id, name, parent_id, created_at FROM workspaces WHERE id = $1 AND deleted_at IS NULL")
        .bind(id.as_uuid())
        .fetch_optional(conn)
        .await?)
}

/// Live workspaces: every one (`None`, the operator), or one workspace and the
/// sub-workspaces it created.
pub async fn list(conn: &mut PgConnection, family_of: Option<WorkspaceId>) -> Result<Vec<WorkspaceRow>> {
    let rows = match family_of {
        Some(ws) => sqlx::query_as(
            "SELECT id, name, parent_id, created_at FROM workspaces
             WHERE deleted_at IS NULL AND (id = $1 OR parent_id = $1)
             ORDER BY parent_id NULLS FIRST, created_at, id",
        )
        .bind(ws.as_uuid()),
        // The operator's list, across workspaces through `mailroom_workspaces`.
        None => sqlx::query_as(
            "SELECT id, name, parent_id, created_at FROM mailroom_workspaces()
             ORDER BY parent_id NULLS FIRST, created_at, id",
        ),
    };
    Ok(rows.fetch_all(conn).await?)
}

/// Whether a workspace exists.
pub async fn exists(conn: &mut PgConnection, id: WorkspaceId) -> Result<bool> {
    Ok(sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM workspaces WHERE id = $1 AND deleted_at IS NULL)")
        .bind(id.as_uuid())
        .fetch_one(conn)
        .await?)
}

/// Checks the database answers (health checks).
pub async fn ping(conn: &mut PgConnection) -> Result<()> {
    sqlx::query("SELECT 1").execute(conn).await?;
    Ok(())
}

/// Marks a workspace deleted and revokes its API keys. Returns false if it was already
/// deleted or does not exist.
pub async fn mark_deleted(conn: &mut PgConnection, id: WorkspaceId) -> Result<bool> {
    let done = sqlx::query("UPDATE workspaces SET deleted_at = now() WHERE id = $1 AND deleted_at IS NULL")
        .bind(id.as_uuid())
        .execute(&mut *conn)
        .await?;
    sqlx::query("UPDATE api_keys SET revoked_at = now() WHERE workspace_id = $1 AND revoked_at IS NULL")
        .bind(id.as_uuid())
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Every live workspace (rotation and re-wrap sweeps).
pub async fn all_live(conn: &mut PgConnection) -> Result<Vec<uuid::Uuid>> {
    Ok(sqlx::query_scalar("SELECT id FROM workspaces WHERE deleted_at IS NULL ORDER BY id").fetch_all(conn).await?)
}
