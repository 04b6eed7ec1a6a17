//! Creating workspaces and API keys: shared by the `admin` CLI and the API's control plane.

use chrono::{DateTime, Utc};
use mailroom_domain::{ApiKeyId, Grant, Role, WorkspaceId};
use mailroom_store::{PgPool, api_keys::NewApiKey, keys::WorkspaceKeyRow, workspaces};
use mailroom_vault::Vault;
use rand::RngCore;
use secrecy::SecretString;

use crate::{
    ApiError,
    auth::{hash_secret, token},
};

pub use mailroom_store::workspaces::Actor;

/// Creates a top-level workspace with its first data key (version 1, active).
pub async fn create_workspace(pool: &PgPool, vault: &Vault, name: &str, actor: &str) -> Result<WorkspaceId, ApiError> {
    create_workspace_in(pool, vault, name, None, Actor::local(actor)).await
}

/// Creates a workspace, a client sub-workspace of `parent` when given, with its first data
/// key. Audited in the parent's trail for a sub-workspace, in its own otherwise.
pub async fn create_workspace_in(
    pool: &PgPool,
    vault: &Vault,
    name: &str,
    parent: Option<WorkspaceId>,
    actor: Actor<'_>,
) -> Result<WorkspaceId, ApiError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 || name.contains('\0') {
        return Err(ApiError::unprocessable("invalid_name", "a workspace name has 1 to 200 characters"));
    }
    let id = WorkspaceId::new();
    let wrapped = vault.create_workspace_key(id, 1).await?;
    let mut tx = pool.begin().await?;
    workspaces::insert(&mut tx, id, name, parent).await?;
    let row = WorkspaceKeyRow {
        workspace_id: id.as_uuid(),
        version: 1,
        wrapped_key: Some(wrapped.blob),
        provider: wrapped.provider,
        kms_key_id: wrapped.kms_key_id,
        state: "active".into(),
    };
    mailroom_store::keys::insert(&mut tx, &row).await?;
    let trail = parent.unwrap_or(id);
    workspaces::audit(&mut tx, Some(trail), &actor, "workspace.create", Some(&id.to_string())).await?;
    tx.commit().await?;
    Ok(id)
}

/// Issues an Owner key for a workspace (the operator's first key of a workspace). The returned
/// token is shown once and never stored.
pub async fn create_api_key(
    pool: &PgPool,
    ws: WorkspaceId,
    name: &str,
    actor: &str,
) -> Result<(ApiKeyId, SecretString), ApiError> {
    create_api_key_with(pool, ws, name, &Grant::Role(Role::Owner), actor).await
}

/// Issues an API key with a role or explicit scopes. The token is shown once, never stored.
pub async fn create_api_key_with(
    pool: &PgPool,
    ws: WorkspaceId,
    name: &str,
    grant: &Grant,
    actor: &str,
) -> Result<(ApiKeyId, SecretString), ApiError> {
    issue_key(pool, ws, name, grant, None, Actor::local(actor)).await
}

/// Issues an API key (the caller has checked that `grant` is no wider than its own).
pub async fn issue_key(
    pool: &PgPool,
    ws: WorkspaceId,
    name: &str,
    grant: &Grant,
    expires_at: Option<DateTime<Utc>>,
    actor: Actor<'_>,
) -> Result<(ApiKeyId, SecretString), ApiError> {
    let mut tx = pool.begin().await?;
    if !workspaces::exists(&mut tx, ws).await? {
        return Err(ApiError::NotFound("workspace"));
    }
    let id = ApiKeyId::new();
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    let secret = hex::encode(secret);
    let hash = hash_secret(&secret);
    let key = NewApiKey { id, workspace: ws, name, secret_hash: &hash, grant, expires_at, created_by: actor.name };
    mailroom_store::api_keys::insert(&mut tx, &key).await?;
    workspaces::audit(&mut tx, Some(ws), &actor, "api_key.create", Some(&id.to_string())).await?;
    tx.commit().await?;
    Ok((id, SecretString::from(token(id, &secret))))
}
