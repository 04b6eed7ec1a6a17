//! The audit trail (`audit_log`): append-only (the table refuses UPDATE, DELETE and TRUNCATE),
//! written in the transaction of the change it records, read per workspace by cursor.

use mailroom_domain::{ApiKeyId, WorkspaceId};
use sqlx::PgConnection;

use crate::Result;

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
pub async fn record(
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
pub async fn page(conn: &mut PgConnection, ws: WorkspaceId, after: i64, limit: i64) -> Result<Vec<AuditRow>> {
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
pub async fn failed_auth(
    conn: &mut PgConnection,
    key: Option<ApiKeyId>,
    actor: &Actor<'_>,
    what: &str,
) -> Result<bool> {
    // Across workspaces (the key's, or none), through `mailroom_failed_auth`.
    Ok(sqlx::query_scalar("SELECT mailroom_failed_auth($1, $2, $3, $4, $5, $6)")
        .bind(key.map(|k| k.as_uuid()))
        .bind(actor.name)
        .bind(actor.role)
        .bind(what)
        .bind(actor.source)
        .bind(actor.request_id)
        .fetch_one(conn)
        .await?)
}
