//! API keys: only a SHA-256 hash of each secret is stored. A key holds a role or an explicit
//! list of scopes, parsed into a [`Grant`] as the row is read.

use chrono::{DateTime, Utc};
use mailroom_domain::{ApiKeyId, Grant, GrantId, WorkspaceId};
use sqlx::PgConnection;

use crate::{Result, StoreError};

/// An API key as stored, its grant parsed.
pub struct ApiKeyRow {
    /// The key id (public half).
    pub id: ApiKeyId,
    /// The workspace the key acts for.
    pub workspace: WorkspaceId,
    /// A label.
    pub name: String,
    /// SHA-256 of the secret half.
    pub secret_hash: Vec<u8>,
    /// What the key may do.
    pub grant: Grant,
    /// When it stops working.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// Who made it (`admin`, `cli:<user>`, `api_key:<id>`).
    pub created_by: Option<String>,
    /// When it last authenticated a request (to the minute).
    pub last_used_at: Option<DateTime<Utc>>,
    /// The grant it was made through, by an agency acting in a client: the key works only
    /// while that grant is live.
    pub via_grant: Option<GrantId>,
}

#[derive(sqlx::FromRow)]
struct Raw {
    id: uuid::Uuid,
    workspace_id: uuid::Uuid,
    name: String,
    secret_hash: Vec<u8>,
    role: Option<String>,
    scopes: Vec<String>,
    expires_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    created_by: Option<String>,
    last_used_at: Option<DateTime<Utc>>,
    via_grant: Option<uuid::Uuid>,
}

impl TryFrom<Raw> for ApiKeyRow {
    type Error = StoreError;

    fn try_from(r: Raw) -> Result<Self> {
        let grant = Grant::from_stored(r.role.as_deref(), &r.scopes)
            .map_err(|_| StoreError::Corrupt { column: "api_keys.role" })?;
        Ok(Self {
            id: ApiKeyId::from_uuid(r.id),
            workspace: WorkspaceId::from_uuid(r.workspace_id),
            name: r.name,
            secret_hash: r.secret_hash,
            grant,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
            created_at: r.created_at,
            created_by: r.created_by,
            last_used_at: r.last_used_at,
            via_grant: r.via_grant.map(GrantId::from_uuid),
        })
    }
}

/// A key to store: its secret only as a hash.
pub struct NewApiKey<'a> {
    /// Its id.
    pub id: ApiKeyId,
    /// Its workspace.
    pub workspace: WorkspaceId,
    /// A label.
    pub name: &'a str,
    /// SHA-256 of the secret half.
    pub secret_hash: &'a [u8],
    /// Its role or scopes.
    pub grant: &'a Grant,
    /// When it stops working.
    pub expires_at: Option<DateTime<Utc>>,
    /// Who makes it.
    pub created_by: &'a str,
    /// The grant it is made through, when an agency makes it in a client.
    pub via_grant: Option<GrantId>,
}

/// Stores a new key with its role or scopes.
pub async fn insert(conn: &mut PgConnection, k: &NewApiKey<'_>) -> Result<()> {
    let grant = k.grant;
    let (role, scopes): (Option<&str>, Vec<&str>) = match grant {
        Grant::Role(r) => (Some(r.as_str()), vec![]),
        Grant::Scopes(s) => (None, s.iter().map(|s| s.as_str()).collect()),
    };
    sqlx::query(
        "INSERT INTO api_keys (id, workspace_id, name, secret_hash, role, scopes, expires_at, created_by, via_grant)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(k.id.as_uuid())
    .bind(k.workspace.as_uuid())
    .bind(k.name)
    .bind(k.secret_hash)
    .bind(role)
    .bind(scopes)
    .bind(k.expires_at)
    .bind(k.created_by)
    .bind(k.via_grant.map(|g| g.as_uuid()))
    .execute(conn)
    .await?;
    Ok(())
}

/// A workspace's keys, oldest first (revoked ones included, for the record).
pub async fn list(conn: &mut PgConnection, ws: WorkspaceId) -> Result<Vec<ApiKeyRow>> {
    let raw: Vec<Raw> = sqlx::query_as(
        "SELECT id, workspace_id, name, secret_hash, role, scopes, expires_at, revoked_at, created_at, created_by, last_used_at,
                via_grant
         FROM api_keys WHERE workspace_id = $1 ORDER BY created_at, id",
    )
    .bind(ws.as_uuid())
    .fetch_all(conn)
    .await?;
    raw.into_iter().map(ApiKeyRow::try_from).collect()
}

/// Revokes a key of a workspace for good. `None` when the workspace has no such key;
/// otherwise whether this call revoked it (false: it already was).
pub async fn revoke(conn: &mut PgConnection, ws: WorkspaceId, id: ApiKeyId) -> Result<Option<bool>> {
    let revoked: Option<bool> = sqlx::query_scalar(
        "WITH target AS (SELECT id, revoked_at IS NULL AS live FROM api_keys WHERE workspace_id = $1 AND id = $2 FOR UPDATE),
              done AS (UPDATE api_keys SET revoked_at = now() FROM target
                       WHERE api_keys.id = target.id AND target.live RETURNING api_keys.id)
         SELECT EXISTS (SELECT 1 FROM done) FROM target",
    )
    .bind(ws.as_uuid())
    .bind(id.as_uuid())
    .fetch_optional(conn)
    .await?;
    Ok(revoked)
}

/// Records that a key was used, at most once a minute per key (one small write, not one per
/// request).
pub async fn touch(conn: &mut PgConnection, id: ApiKeyId) -> Result<()> {
    sqlx::query(
        "UPDATE api_keys SET last_used_at = now()
         WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
    )
    .bind(id.as_uuid())
    .execute(conn)
    .await?;
    Ok(())
}

/// Looks a key up by its id, in whichever workspace it is (authentication learns the
/// workspace from it: the one read across workspaces, through `mailroom_api_key`); the caller
/// checks the secret, expiry and revocation.
pub async fn find(conn: &mut PgConnection, id: ApiKeyId) -> Result<Option<ApiKeyRow>> {
    let raw: Option<Raw> = sqlx::query_as(
        "SELECT id, workspace_id, name, secret_hash, role, scopes, expires_at, revoked_at, created_at, created_by, last_used_at,
                via_grant
         FROM mailroom_api_key($1)",
    )
    .bind(id.as_uuid())
    .fetch_optional(conn)
    .await?;
    raw.map(ApiKeyRow::try_from).transpose()
}
