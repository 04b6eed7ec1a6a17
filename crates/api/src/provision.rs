//! Creating workspaces and API keys: shared by the `admin` CLI and the API's control plane.

use chrono::{DateTime, Utc};
use mailroom_domain::{ApiKeyId, Grant, GrantId, Role, WorkspaceId};
use mailroom_store::{PgPool, api_keys::NewApiKey, keys::WorkspaceKeyRow, workspaces};
use mailroom_vault::Vault;
use rand::RngCore;
use secrecy::SecretString;

use crate::{
    ApiError, Code,
    auth::{hash_secret, token},
};

pub use mailroom_store::audit::Actor;

/// A new key's token, shown once.
pub type NewToken = (ApiKeyId, SecretString);

/// Creates a top-level workspace with its first data key (version 1, active), and no key.
pub async fn create_workspace(pool: &PgPool, vault: &Vault, name: &str, actor: &str) -> Result<WorkspaceId, ApiError> {
    Ok(create_workspace_in(pool, vault, name, None, false, Actor::local(actor)).await?.0)
}

/// Creates a workspace (a client sub-workspace of `parent` when given) with its first data
/// key and, when asked, its first Owner key, in one transaction. Audited in the parent's
/// trail for a sub-workspace, in its own otherwise.
pub async fn create_workspace_in(
    pool: &PgPool,
    vault: &Vault,
    name: &str,
    parent: Option<WorkspaceId>,
    with_owner_key: bool,
    actor: Actor<'_>,
) -> Result<(WorkspaceId, Option<NewToken>), ApiError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 || name.contains('\0') {
        return Err(ApiError::new(Code::InvalidName, "a workspace name has 1 to 200 characters"));
    }
    let id = WorkspaceId::new();
    let wrapped = vault.create_workspace_key(id, 1).await?;
    let mut tx = mailroom_store::scope::begin(pool, id).await?;
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
    // A client's creation is recorded in its agency's trail, in the agency's scope.
    let trail = parent.unwrap_or(id);
    mailroom_store::scope::enter_if(&mut tx, trail != id, trail).await?;
    mailroom_store::audit::record(&mut tx, Some(trail), &actor, "workspace.create", Some(&id.to_string())).await?;
    mailroom_store::scope::enter_if(&mut tx, trail != id, id).await?;
    let owner = Grant::Role(Role::Owner);
    let key = match with_owner_key {
        true => Some(
            insert_key(
                &mut tx,
                id,
                &KeySpec { name: "owner", grant: &owner, expires_at: None, via_grant: None },
                &actor,
            )
            .await?,
        ),
        false => None,
    };
    tx.commit().await?;
    Ok((id, key))
}

/// Issues an Owner key for a workspace (the operator's first key of a workspace). The returned
/// token is shown once and never stored.
pub async fn create_api_key(pool: &PgPool, ws: WorkspaceId, name: &str, actor: &str) -> Result<NewToken, ApiError> {
    create_api_key_with(pool, ws, name, &Grant::Role(Role::Owner), actor).await
}

/// Issues an API key with a role or explicit scopes. The token is shown once, never stored.
pub async fn create_api_key_with(
    pool: &PgPool,
    ws: WorkspaceId,
    name: &str,
    grant: &Grant,
    actor: &str,
) -> Result<NewToken, ApiError> {
    let spec = KeySpec { name, grant, expires_at: None, via_grant: None };
    issue_key(pool, ws, &spec, Actor::local(actor)).await
}

/// What a new key is.
pub struct KeySpec<'a> {
    /// A label.
    pub name: &'a str,
    /// Its role or scopes (the caller has checked it is no wider than its own).
    pub grant: &'a Grant,
    /// When it stops working.
    pub expires_at: Option<DateTime<Utc>>,
    /// The grant it is made through, when an agency makes it in a client: it dies with it.
    pub via_grant: Option<GrantId>,
}

/// Issues an API key in its own transaction.
pub async fn issue_key(
    pool: &PgPool,
    ws: WorkspaceId,
    spec: &KeySpec<'_>,
    actor: Actor<'_>,
) -> Result<NewToken, ApiError> {
    let mut tx = mailroom_store::scope::begin(pool, ws).await?;
    if !workspaces::exists(&mut tx, ws).await? {
        return Err(ApiError::NotFound("workspace"));
    }
    let key = insert_key(&mut tx, ws, spec, &actor).await?;
    tx.commit().await?;
    Ok(key)
}

/// Stores a new key (its secret only as a hash) with its audit row, in the caller's
/// transaction.
async fn insert_key(
    tx: &mut mailroom_store::PgConnection,
    ws: WorkspaceId,
    spec: &KeySpec<'_>,
    actor: &Actor<'_>,
) -> Result<NewToken, ApiError> {
    let id = ApiKeyId::new();
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    let secret = hex::encode(secret);
    let hash = hash_secret(&secret);
    let key = NewApiKey {
        id,
        workspace: ws,
        name: spec.name,
        secret_hash: &hash,
        grant: spec.grant,
        expires_at: spec.expires_at,
        created_by: actor.name,
        via_grant: spec.via_grant,
    };
    mailroom_store::api_keys::insert(tx, &key).await?;
    mailroom_store::audit::record(tx, Some(ws), actor, "api_key.create", Some(&id.to_string())).await?;
    Ok((id, SecretString::from(token(id, &secret))))
}
