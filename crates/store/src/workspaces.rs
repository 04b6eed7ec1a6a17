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

/// Whether a workspace exists.
pub async fn exists(conn: &mut PgConnection, id: WorkspaceId) -> Result<bool> {
    Ok(sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM workspaces WHERE id = $1 AND deleted_at IS NULL)")
        .bind(id.as_uuid())
        .fetch_one(conn)
        .await?)
}

/// Records a sensitive action in the append-only audit log.
pub async fn audit(
    conn: &mut PgConnection,
    workspace: Option<WorkspaceId>,
    actor: &str,
    action: &str,
    target: Option<&str>,
    source: Option<&str>,
) -> Result<()> {
    sqlx::query("INSERT INTO audit_log (workspace_id, actor, action, target, source) VALUES ($1, $2, $3, $4, $5)")
        .bind(workspace.map(|w| w.as_uuid()))
        .bind(actor)
        .bind(action)
        .bind(target)
        .bind(source)
        .execute(conn)
        .await?;
    Ok(())
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
