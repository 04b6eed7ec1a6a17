//! Grants: a client sub-workspace lets its parent agency act in it within a set of scopes.
//! Nothing of a child is reachable from its parent without a live grant; revoking one is
//! instant, because every request that names the child looks its grant up.

use chrono::{DateTime, Utc};
use mailroom_domain::{GrantId, Scope, WorkspaceId};
use sqlx::PgConnection;

use crate::{Result, StoreError};

/// A grant as stored, its scopes parsed.
#[derive(Debug, Clone)]
pub struct GrantRow {
    /// Its id.
    pub id: GrantId,
    /// The child workspace it opens.
    pub workspace: WorkspaceId,
    /// The parent that may act in it.
    pub grantee: WorkspaceId,
    /// What the parent may do there.
    pub scopes: Vec<Scope>,
    /// Who made it (`api_key:...`, recorded as the child's or the agency's).
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct Raw {
    id: uuid::Uuid,
    workspace_id: uuid::Uuid,
    grantee_id: uuid::Uuid,
    scopes: Vec<String>,
    created_by: String,
    created_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
}

fn parse_scopes(names: &[String]) -> Result<Vec<Scope>> {
    Scope::parse_list(names).map_err(|_| StoreError::Corrupt { column: "workspace_grants.scopes" })
}

impl TryFrom<Raw> for GrantRow {
    type Error = StoreError;

    fn try_from(r: Raw) -> Result<Self> {
        Ok(Self {
            id: GrantId::from_uuid(r.id),
            workspace: WorkspaceId::from_uuid(r.workspace_id),
            grantee: WorkspaceId::from_uuid(r.grantee_id),
            scopes: parse_scopes(&r.scopes)?,
            created_by: r.created_by,
            created_at: r.created_at,
            revoked_at: r.revoked_at,
        })
    }
}

/// Grants `grantee` (the child's parent) `scopes` in `child`, replacing a live grant of the
/// same pair (revoked in the same transaction).
pub async fn replace(
    conn: &mut PgConnection,
    child: WorkspaceId,
    grantee: WorkspaceId,
    scopes: &[Scope],
    created_by: &str,
) -> Result<GrantRow> {
    // Concurrent replacements of one child's grant queue here instead of colliding on the
    // one-live-grant index.
    sqlx::query("SELECT 1 FROM workspaces WHERE id = $1 FOR UPDATE").bind(child.as_uuid()).execute(&mut *conn).await?;
    sqlx::query("UPDATE workspace_grants SET revoked_at = now() WHERE workspace_id = $1 AND grantee_id = $2 AND revoked_at IS NULL")
        .bind(child.as_uuid())
        .bind(grantee.as_uuid())
        .execute(&mut *conn)
        .await?;
    let names: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
    let raw: Raw = sqlx::query_as(
        "INSERT INTO workspace_grants (id, workspace_id, grantee_id, scopes, created_by) VALUES ($1, $2, $3, $4, $5)
         RETURNING id, workspace_id, grantee_id, scopes, created_by, created_at, revoked_at",
    )
    .bind(GrantId::new().as_uuid())
    .bind(child.as_uuid())
    .bind(grantee.as_uuid())
    .bind(names)
    .bind(created_by)
    .fetch_one(conn)
    .await?;
    raw.try_into()
}

/// The grants of a child workspace, newest first (revoked ones included, for the record).
pub async fn list(conn: &mut PgConnection, child: WorkspaceId) -> Result<Vec<GrantRow>> {
    let rows: Vec<Raw> = sqlx::query_as(
        "SELECT id, workspace_id, grantee_id, scopes, created_by, created_at, revoked_at
         FROM workspace_grants WHERE workspace_id = $1 ORDER BY created_at DESC, id",
    )
    .bind(child.as_uuid())
    .fetch_all(conn)
    .await?;
    rows.into_iter().map(GrantRow::try_from).collect()
}

/// Revokes a grant of a child. `None` when the child has no such grant; otherwise whether this
/// call revoked it (false: it already was).
pub async fn revoke(conn: &mut PgConnection, child: WorkspaceId, id: GrantId) -> Result<Option<bool>> {
    Ok(sqlx::query_scalar(
        "WITH target AS (SELECT id, revoked_at IS NULL AS live FROM workspace_grants
                         WHERE workspace_id = $1 AND id = $2 FOR UPDATE),
              done AS (UPDATE workspace_grants g SET revoked_at = now() FROM target
                       WHERE g.id = target.id AND target.live RETURNING g.id)
         SELECT EXISTS (SELECT 1 FROM done) FROM target",
    )
    .bind(child.as_uuid())
    .bind(id.as_uuid())
    .fetch_optional(conn)
    .await?)
}

/// The grant through which `parent` reaches `child`, and its scopes: only a live grant, only
/// when `child` is a live sub-workspace `parent` created. `None` otherwise (out of reach).
pub async fn reach(
    conn: &mut PgConnection,
    parent: WorkspaceId,
    child: WorkspaceId,
) -> Result<Option<(GrantId, Vec<Scope>)>> {
    let row: Option<(uuid::Uuid, Vec<String>)> = sqlx::query_as(
        "SELECT g.id, g.scopes FROM workspace_grants g JOIN workspaces w ON w.id = g.workspace_id
         WHERE g.workspace_id = $1 AND g.grantee_id = $2 AND g.revoked_at IS NULL
           AND w.parent_id = $2 AND w.deleted_at IS NULL",
    )
    .bind(child.as_uuid())
    .bind(parent.as_uuid())
    .fetch_optional(conn)
    .await?;
    row.map(|(id, n)| Ok((GrantId::from_uuid(id), parse_scopes(&n)?))).transpose()
}

/// Whether a grant is still live (a key made through it works only while it is).
pub async fn is_live(conn: &mut PgConnection, id: GrantId) -> Result<bool> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM workspace_grants g JOIN workspaces w ON w.id = g.workspace_id
                        WHERE g.id = $1 AND g.revoked_at IS NULL AND w.deleted_at IS NULL)",
    )
    .bind(id.as_uuid())
    .fetch_one(conn)
    .await?)
}
