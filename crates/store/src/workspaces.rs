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
    Ok(sqlx::query_as(
        "SELECT id, name, parent_id, created_at FROM workspaces
         WHERE deleted_at IS NULL AND ($1::uuid IS NULL OR id = $1 OR parent_id = $1)
         ORDER BY parent_id NULLS FIRST, created_at, id",
    )
    .bind(family_of.map(|w| w.as_uuid()))
    .fetch_all(conn)
    .await?)
}

/// Whether a workspace exists.
pub async fn exists(conn: &mut PgConnection, id: WorkspaceId) -> Result<bool> {
    Ok(sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM workspaces WHERE id = $1 AND deleted_at IS NULL)")
        .bind(id.as_uuid())
        .fetch_one(conn)
        .await?)
}

/// Who did something, for the audit log.
#[derive(Debug, Clone, Copy, Default)]
pub struct Actor<'a> {
    /// `admin`, `cli:<user>`, `api_key:<id>` (with `of ws_...` when acting through a grant).
    pub name: &'a str,
    /// The acting key's role (`owner`, ..., or `scopes` for an explicit list).
    pub role: Option<&'a str>,
    /// The peer address (or the trusted proxy's header), for requests over the network.
    pub source: Option<&'a str>,
    /// The request's id (`Mailroom-Request-Id`).
    pub request_id: Option<&'a str>,
}

impl<'a> Actor<'a> {
    /// An actor on this machine (the CLI, housekeeping, tests): no source, no request.
    pub fn local(name: &'a str) -> Self {
        Self { name, ..Self::default() }
    }
}

/// Records a sensitive action in the append-only audit log, in the caller's transaction.
pub async fn audit(
    conn: &mut PgConnection,
    workspace: Option<WorkspaceId>,
    actor: &Actor<'_>,
    action: &str,
    target: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_log (workspace_id, actor, role, action, target, source, request_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(workspace.map(|w| w.as_uuid()))
    .bind(actor.name)
    .bind(actor.role)
    .bind(action)
    .bind(target)
    .bind(actor.source)
    .bind(actor.request_id)
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

/// One row of the audit trail.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditRow {
    /// Its position (increasing).
    pub id: i64,
    /// Who acted (`admin`, `cli:<user>`, `api_key:<id>`).
    pub actor: String,
    /// The acting key's role.
    pub role: Option<String>,
    /// The request that did it.
    pub request_id: Option<String>,
    /// What was done (`api_key.create`, ...).
    pub action: String,
    /// On what.
    pub target: Option<String>,
    /// From where (the peer address).
    pub source: Option<String>,
    /// When.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// A page of a workspace's audit trail after position `after`, oldest first.
pub async fn audit_page(conn: &mut PgConnection, ws: WorkspaceId, after: i64, limit: i64) -> Result<Vec<AuditRow>> {
    Ok(sqlx::query_as(
        "SELECT id, actor, role, request_id, action, target, source, created_at FROM audit_log
         WHERE workspace_id = $1 AND id > $2 ORDER BY id LIMIT $3",
    )
    .bind(ws.as_uuid())
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// Records a failed authentication, at most once a minute per source address, so a flood of
/// bad tokens costs the table one row a minute per address. Names the key's workspace when the
/// token named a real key (a wrong secret, a revoked or expired key), so its owners see it.
/// Whether a row was written.
pub async fn audit_failed_auth(
    conn: &mut PgConnection,
    key: Option<mailroom_domain::ApiKeyId>,
    actor: &Actor<'_>,
    what: &str,
) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO audit_log (workspace_id, actor, role, action, target, source, request_id)
         SELECT (SELECT workspace_id FROM api_keys WHERE id = $1), $2, $3, 'auth.failed', $4, $5, $6
         WHERE NOT EXISTS (SELECT 1 FROM audit_log WHERE action = 'auth.failed' AND source = $5
                             AND created_at > now() - interval '1 minute')",
    )
    .bind(key.map(|k| k.as_uuid()))
    .bind(actor.name)
    .bind(actor.role)
    .bind(what)
    .bind(actor.source)
    .bind(actor.request_id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A workspace's usage on one day (UTC).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UsageDay {
    /// The day.
    pub day: chrono::NaiveDate,
    /// Sends accepted.
    pub accepted: i64,
    /// Sends delivered.
    pub sent: i64,
    /// Sends failed.
    pub failed: i64,
}

/// Usage per day from `from` to `to` (inclusive), days without any left out. Reads one row per
/// day and shard (the counters the ledger's triggers keep), never the ledger itself.
pub async fn usage(
    conn: &mut PgConnection,
    ws: WorkspaceId,
    from: chrono::NaiveDate,
    to: chrono::NaiveDate,
) -> Result<Vec<UsageDay>> {
    Ok(sqlx::query_as(
        "SELECT day, sum(accepted)::bigint AS accepted, sum(sent)::bigint AS sent, sum(failed)::bigint AS failed
         FROM usage_daily WHERE workspace_id = $1 AND day BETWEEN $2 AND $3 GROUP BY day ORDER BY day",
    )
    .bind(ws.as_uuid())
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await?)
}
