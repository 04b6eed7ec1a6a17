//! API keys: only a SHA-256 hash of each secret is stored. A key holds a role or an explicit
//! list of scopes, parsed into a [`Grant`] as the row is read.

use chrono::{DateTime, Utc};
use mailroom_domain::{ApiKeyId, Grant, WorkspaceId};
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
        })
    }
}

/// Stores a new key with its role or scopes.
pub async fn insert(
    conn: &mut PgConnection,
    id: ApiKeyId,
    workspace: WorkspaceId,
    name: &str,
    secret_hash: &[u8],
    grant: &Grant,
) -> Result<()> {
    let (role, scopes): (Option<&str>, Vec<&str>) = match grant {
        Grant::Role(r) => (Some(r.as_str()), vec![]),
        Grant::Scopes(s) => (None, s.iter().map(|s| s.as_str()).collect()),
    };
    sqlx::query(
        "INSERT INTO api_keys (id, workspace_id, name, secret_hash, role, scopes) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id.as_uuid())
    .bind(workspace.as_uuid())
    .bind(name)
    .bind(secret_hash)
    .bind(role)
    .bind(scopes)
    .execute(conn)
    .await?;
    Ok(())
}

/// Looks a key up by its id; the caller checks the secret, expiry and revocation.
pub async fn find(conn: &mut PgConnection, id: ApiKeyId) -> Result<Option<ApiKeyRow>> {
    let raw: Option<Raw> = sqlx::query_as(
        "SELECT id, workspace_id, name, secret_hash, role, scopes, expires_at, revoked_at FROM api_keys WHERE id = $1",
    )
    .bind(id.as_uuid())
    .fetch_optional(conn)
    .await?;
    raw.map(ApiKeyRow::try_from).transpose()
}
