//! Opening a mailbox's sealed credential, and finding the key to seal under.

use mailroom_domain::{MailboxId, WorkspaceId};
use mailroom_store::{PgConnection, PgPool, StoreError, keys, mailboxes};
use mailroom_vault::{Field, KeyContext, ProviderError, SealContext, Vault, VaultError, WrappedKey};
use secrecy::SecretString;

use crate::KeyringError;

/// Why a credential could not be opened, sorted by what the caller should do about it.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The key provider could not be reached or throttled: wait and try again; nothing is
    /// wrong with the credential.
    #[error("the key provider is unavailable")]
    Unavailable(#[source] VaultError),
    /// This process does not hold the master key the workspace key was wrapped by (a
    /// configuration mistake: another master-key file or KMS key). Nothing is wrong with the
    /// credential: the send waits for a process that has the key, and the mailbox stays
    /// active.
    #[error("this process does not hold the master key that wrapped the workspace key")]
    ForeignMasterKey(#[source] VaultError),
    /// The credential will never open as stored (wrong encryption context, tampered ciphertext
    /// or wrapped key, a destroyed key, a missing value): the mailbox is unusable until an
    /// operator reconnects it. Retrying would only hammer the provider.
    #[error("the {field} of mailbox {mailbox} in workspace {workspace} cannot be opened: {why}")]
    Unusable {
        /// The workspace.
        workspace: WorkspaceId,
        /// The mailbox.
        mailbox: MailboxId,
        /// The field.
        field: &'static str,
        /// Why, naming versions but never key material.
        why: String,
    },
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A stored key row as the vault wants it; `None` once destroyed.
pub fn wrapped_key(ws: WorkspaceId, row: keys::WorkspaceKeyRow) -> Option<WrappedKey> {
    Some(WrappedKey {
        context: KeyContext { workspace: ws, version: u32::try_from(row.version).ok()? },
        provider: row.provider,
        kms_key_id: row.kms_key_id,
        blob: row.wrapped_key?,
    })
}

/// The workspace's active key, for sealing.
pub async fn active_key(conn: &mut PgConnection, ws: WorkspaceId) -> Result<WrappedKey, KeyringError> {
    let row = keys::active(conn, ws).await?.ok_or(KeyringError::NoActiveKey(ws))?;
    wrapped_key(ws, row).ok_or(KeyringError::NoActiveKey(ws))
}

/// Opens one sealed field of a mailbox. The sealed header names the key version; the vault
/// never tries other keys. The caller drops the secret as soon as it has used it.
pub async fn open_secret(
    pool: &PgPool,
    vault: &Vault,
    ws: WorkspaceId,
    mbx: MailboxId,
    field: Field,
) -> Result<SecretString, OpenError> {
    let ctx = SealContext { workspace: ws, mailbox: mbx, field };
    // One transaction in the workspace for both reads; none is held while the vault works.
    let mut tx = mailroom_store::scope::begin(pool, ws).await?;
    let Some((sealed, _)) = mailboxes::secret(&mut tx, ws, mbx, field.as_str()).await? else {
        let why = "no sealed value is stored (destroyed, or never connected)".into();
        return Err(OpenError::Unusable { workspace: ws, mailbox: mbx, field: field.as_str(), why });
    };
    let wrapped = sealing_key(&mut tx, &ctx, &sealed).await?;
    drop(tx);
    open_with(vault, &wrapped, &ctx, &sealed).await
}

/// Opens a sealed value stored elsewhere than `mailbox_secrets` (a webhook's signing secret),
/// bound to `ctx`.
pub async fn open_sealed(
    pool: &PgPool,
    vault: &Vault,
    ctx: SealContext,
    sealed: &[u8],
) -> Result<SecretString, OpenError> {
    let mut tx = mailroom_store::scope::begin(pool, ctx.workspace).await?;
    let wrapped = sealing_key(&mut tx, &ctx, sealed).await?;
    drop(tx);
    open_with(vault, &wrapped, &ctx, sealed).await
}

/// Opens a sealed value bound to `ctx`, reading its key's row through the caller's
/// transaction.
pub(crate) async fn open_in(
    conn: &mut PgConnection,
    vault: &Vault,
    ctx: SealContext,
    sealed: &[u8],
) -> Result<SecretString, OpenError> {
    let wrapped = sealing_key(conn, &ctx, sealed).await?;
    open_with(vault, &wrapped, &ctx, sealed).await
}

fn unusable(ctx: &SealContext, why: String) -> OpenError {
    OpenError::Unusable { workspace: ctx.workspace, mailbox: ctx.mailbox, field: ctx.field.as_str(), why }
}

/// The wrapped key the sealed header names.
async fn sealing_key(conn: &mut PgConnection, ctx: &SealContext, sealed: &[u8]) -> Result<WrappedKey, OpenError> {
    let ws = ctx.workspace;
    let version = mailroom_vault::key_version(sealed).map_err(|e| unusable(ctx, e.to_string()))?;
    let row = keys::version(conn, ws, i32::try_from(version).unwrap_or(i32::MAX)).await?;
    row.and_then(|r| wrapped_key(ws, r))
        .ok_or_else(|| unusable(ctx, format!("key version {version} is missing or destroyed")))
}

async fn open_with(
    vault: &Vault,
    wrapped: &WrappedKey,
    ctx: &SealContext,
    sealed: &[u8],
) -> Result<SecretString, OpenError> {
    vault.open(wrapped, ctx, sealed).await.map_err(|e| match e {
        VaultError::Provider(ProviderError::Unavailable(_)) => OpenError::Unavailable(e),
        VaultError::Provider(ProviderError::WrongMasterKey { .. } | ProviderError::Refused { .. }) => {
            OpenError::ForeignMasterKey(e)
        }
        other => unusable(ctx, other.to_string()),
    })
}
