//! Workspace-key rotation without downtime (DESIGN.md section 2): add version n+1 as
//! `pending`; after one cache TTL make it active (n is retired); re-seal every value still
//! under an older version with compare-and-swap; destroy a retired version once nothing uses
//! it. Reads keep working at every step, because a sealed value names its own version and
//! that version stays openable until no value names it.
//!
//! [`begin`] is called by the API and the CLI; [`advance`] by every send worker's
//! housekeeping (concurrent runs are harmless: each step is a conditional update).

use std::{
    collections::{HashMap, hash_map::Entry},
    time::Duration,
};

use chrono::{DateTime, Utc};
use mailroom_domain::{MailboxId, WorkspaceId};
use mailroom_store::{PgConnection, PgPool, audit::Actor, keys, secrets, workspaces};
use mailroom_vault::{Field, KeyContext, ProviderError, SealContext, Vault, VaultError, WrappedKey};
use serde::Serialize;

use crate::{KeyringError, active_key, wrapped_key};

/// A rotation just begun.
#[derive(Debug, Clone, Serialize)]
pub struct Started {
    /// The new version.
    pub version: u32,
    /// When it becomes the active key.
    pub activate_after: DateTime<Utc>,
}

/// Starts a rotation: version n+1, pending for `wait` (one cache TTL, so every process has
/// dropped any notion of the old active key before anything is sealed under the new one).
pub async fn begin(
    pool: &PgPool,
    vault: &Vault,
    ws: WorkspaceId,
    wait: Duration,
    actor: &Actor<'_>,
) -> Result<Started, KeyringError> {
    let mut conn = mailroom_store::scope::begin(pool, ws).await?;
    if !workspaces::exists(&mut conn, ws).await? {
        return Err(KeyringError::NoWorkspace(ws));
    }
    let next = keys::latest_version(&mut conn, ws).await?.unwrap_or(0) + 1;
    drop(conn);
    // The KMS call happens outside any transaction.
    let wrapped = vault.create_workspace_key(ws, u32::try_from(next).unwrap_or(u32::MAX)).await?;
    let row = keys::WorkspaceKeyRow {
        workspace_id: ws.as_uuid(),
        version: next,
        wrapped_key: Some(wrapped.blob),
        provider: wrapped.provider,
        kms_key_id: wrapped.kms_key_id,
        state: "pending".into(),
    };
    let activate_after = Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
    let mut tx = mailroom_store::scope::begin(pool, ws).await?;
    if keys::add_pending(&mut tx, ws, next, &row, activate_after).await?.is_none() {
        return Err(KeyringError::RotationInProgress(ws));
    }
    let what = format!("key version {next}");
    mailroom_store::audit::record(&mut tx, Some(ws), actor, "key.rotate", Some(&what)).await?;
    tx.commit().await?;
    tracing::info!(workspace.id = %ws, version = next, %activate_after, "key rotation begun");
    Ok(Started { version: next as u32, activate_after })
}

/// What one pass of [`advance`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Progress {
    /// Pending keys made active.
    pub activated: usize,
    /// Sealed values moved to their workspace's active key.
    pub resealed: usize,
    /// Values changed by someone else in the meantime (left for them), or that do not open.
    pub skipped: usize,
    /// Retired keys destroyed.
    pub destroyed: usize,
}

/// One pass of the rotation job: activate due keys, re-seal up to `page` values, destroy
/// retired keys unused for `grace`. Stops early, with an error, when the key provider is
/// unavailable (the next pass resumes where this one stopped).
pub async fn advance(pool: &PgPool, vault: &Vault, grace: Duration, page: i64) -> Result<Progress, KeyringError> {
    let mut progress = Progress { activated: activate(pool).await?, ..Progress::default() };
    reseal_page(pool, vault, page, &mut progress).await?;
    reseal_webhooks(pool, vault, page, &mut progress).await?;
    progress.destroyed = destroy(pool, vault, grace).await?;
    if progress != Progress::default() {
        tracing::info!(?progress, "key rotation advanced");
    }
    Ok(progress)
}

async fn activate(pool: &PgPool) -> Result<usize, KeyringError> {
    let mut tx = pool.begin().await?;
    let activated = keys::activate_due(&mut tx).await?;
    for (ws, version) in &activated {
        let what = format!("key version {version}");
        let ws = WorkspaceId::from_uuid(*ws);
        mailroom_store::audit::record(&mut tx, Some(ws), &Actor::local("rotation"), "key.activate", Some(&what))
            .await?;
    }
    tx.commit().await?;
    Ok(activated.len())
}

async fn destroy(pool: &PgPool, vault: &Vault, grace: Duration) -> Result<usize, KeyringError> {
    let mut tx = pool.begin().await?;
    let destroyed = keys::destroy_unused_retired(&mut tx, grace.as_secs_f64()).await?;
    for (ws, version) in &destroyed {
        let ws = WorkspaceId::from_uuid(*ws);
        let what = format!("key version {version}");
        mailroom_store::audit::record(&mut tx, Some(ws), &Actor::local("rotation"), "key.destroy", Some(&what)).await?;
    }
    tx.commit().await?;
    for (ws, version) in &destroyed {
        let context =
            KeyContext { workspace: WorkspaceId::from_uuid(*ws), version: u32::try_from(*version).unwrap_or(0) };
        vault.forget_key(context);
    }
    Ok(destroyed.len())
}

/// The keys a page of re-sealing needs, loaded once each.
#[derive(Default)]
struct Keys {
    active: HashMap<WorkspaceId, WrappedKey>,
    old: HashMap<(WorkspaceId, i32), Option<WrappedKey>>,
}

impl Keys {
    async fn load(&mut self, conn: &mut PgConnection, ws: WorkspaceId, version: i32) -> Result<(), KeyringError> {
        if let Entry::Vacant(e) = self.active.entry(ws) {
            e.insert(active_key(conn, ws).await?);
        }
        if let Entry::Vacant(e) = self.old.entry((ws, version)) {
            e.insert(keys::version(conn, ws, version).await?.and_then(|r| wrapped_key(ws, r)));
        }
        Ok(())
    }
}

async fn reseal_page(pool: &PgPool, vault: &Vault, page: i64, progress: &mut Progress) -> Result<(), KeyringError> {
    let mut conn = pool.acquire().await?;
    let mut keys = Keys::default();
    for row in secrets::stale(&mut conn, page).await? {
        let ws = WorkspaceId::from_uuid(row.workspace_id);
        keys.load(&mut conn, ws, row.key_version).await?;
        let (Some(field), Some(Some(from))) = (Field::parse(&row.field), keys.old.get(&(ws, row.key_version))) else {
            progress.skipped += 1;
            continue;
        };
        let ctx = SealContext { workspace: ws, mailbox: MailboxId::from_uuid(row.mailbox_id), field };
        let to = &keys.active[&ws];
        let sealed = match reseal_one(vault, from, to, &ctx, &row.sealed).await {
            Ok(sealed) => sealed,
            Err(e @ VaultError::Provider(ProviderError::Unavailable(_))) => return Err(e.into()),
            Err(e) => {
                tracing::error!(workspace.id = %ws, mailbox.id = %ctx.mailbox, field = field.as_str(), error = %e,
                    "a sealed value does not open; it stays under its old key");
                progress.skipped += 1;
                continue;
            }
        };
        let version = i32::try_from(to.context.version).unwrap_or(i32::MAX);
        if secrets::reseal(&mut conn, &row, &sealed, version).await? {
            progress.resealed += 1;
        } else {
            progress.skipped += 1;
        }
    }
    Ok(())
}

/// Re-seals webhook signing secrets still under an older key version.
async fn reseal_webhooks(pool: &PgPool, vault: &Vault, page: i64, progress: &mut Progress) -> Result<(), KeyringError> {
    let mut conn = pool.acquire().await?;
    let mut keys = Keys::default();
    for hook in mailroom_store::webhooks::stale_secrets(&mut conn, page).await? {
        let ws = WorkspaceId::from_uuid(hook.workspace_id);
        keys.load(&mut conn, ws, hook.key_version).await?;
        let Some(Some(from)) = keys.old.get(&(ws, hook.key_version)) else {
            progress.skipped += 1;
            continue;
        };
        let ctx = SealContext { workspace: ws, mailbox: MailboxId::from_uuid(hook.id), field: Field::WebhookSecret };
        let to = &keys.active[&ws];
        match reseal_one(vault, from, to, &ctx, &hook.secret_sealed).await {
            Ok(sealed) => {
                let version = i32::try_from(to.context.version).unwrap_or(i32::MAX);
                if mailroom_store::webhooks::reseal(&mut conn, &hook, &sealed, version).await? {
                    progress.resealed += 1;
                }
            }
            Err(e @ VaultError::Provider(ProviderError::Unavailable(_))) => return Err(e.into()),
            Err(e) => {
                tracing::error!(workspace.id = %ws, webhook = %hook.id, error = %e, "a webhook secret does not open");
                progress.skipped += 1;
            }
        }
    }
    Ok(())
}

/// Opens a value under its old key and seals it under the new one; the plaintext lives only
/// inside this function.
async fn reseal_one(
    vault: &Vault,
    from: &WrappedKey,
    to: &WrappedKey,
    ctx: &SealContext,
    sealed: &[u8],
) -> Result<Vec<u8>, VaultError> {
    let plain = vault.open(from, ctx, sealed).await?;
    vault.seal(to, ctx, &plain).await
}
