//! Workspace-key rotation without downtime (docs/design.md section 2): add version n+1 as
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

/// A sealed value under an older key version, with the row its compare-and-swap needs.
struct Stale<T> {
    ctx: SealContext,
    version: i32,
    sealed: Vec<u8>,
    row: T,
}

/// Moves each value to its workspace's active key, storing it with `swap` (a compare-and-swap
/// on the old sealed value). A value that does not open is logged and left; an unavailable key
/// provider stops the pass.
async fn reseal_all<T>(
    conn: &mut PgConnection,
    vault: &Vault,
    stale: Vec<Stale<T>>,
    progress: &mut Progress,
    swap: impl AsyncFn(&mut PgConnection, &T, &[u8], i32) -> Result<bool, mailroom_store::StoreError>,
) -> Result<(), KeyringError> {
    let mut keys = Keys::default();
    for s in stale {
        let ws = s.ctx.workspace;
        keys.load(conn, ws, s.version).await?;
        let Some(Some(from)) = keys.old.get(&(ws, s.version)) else {
            progress.skipped += 1;
            continue;
        };
        let to = &keys.active[&ws];
        match reseal_one(vault, from, to, &s.ctx, &s.sealed).await {
            Ok(sealed) => {
                let version = i32::try_from(to.context.version).unwrap_or(i32::MAX);
                if swap(conn, &s.row, &sealed, version).await? {
                    progress.resealed += 1;
                } else {
                    progress.skipped += 1;
                }
            }
            Err(e @ VaultError::Provider(ProviderError::Unavailable(_))) => return Err(e.into()),
            Err(e) => {
                tracing::error!(workspace.id = %ws, owner = %s.ctx.mailbox, field = s.ctx.field.as_str(), error = %e,
                    "a sealed value does not open; it stays under its old key");
                progress.skipped += 1;
            }
        }
    }
    Ok(())
}

/// Re-seals a page of each kind of sealed value: mailbox credentials, webhook signing secrets,
/// workspace secrets (the erasure-hash key).
async fn reseal_page(pool: &PgPool, vault: &Vault, page: i64, progress: &mut Progress) -> Result<(), KeyringError> {
    let mut conn = pool.acquire().await?;
    let ctx = |ws: uuid::Uuid, owner: uuid::Uuid, field| SealContext {
        workspace: WorkspaceId::from_uuid(ws),
        mailbox: MailboxId::from_uuid(owner),
        field,
    };
    let mut credentials = vec![];
    for row in secrets::stale(&mut conn, page).await? {
        match Field::parse(&row.field) {
            Some(field) => credentials.push(Stale {
                ctx: ctx(row.workspace_id, row.mailbox_id, field),
                version: row.key_version,
                sealed: row.sealed.clone(),
                row,
            }),
            None => progress.skipped += 1,
        }
    }
    reseal_all(&mut conn, vault, credentials, progress, async |c, r, s, v| secrets::reseal(c, r, s, v).await).await?;
    let hooks = mailroom_store::webhooks::stale_secrets(&mut conn, page).await?.into_iter().map(|h| Stale {
        ctx: ctx(h.workspace_id, h.id, Field::WebhookSecret),
        version: h.key_version,
        sealed: h.secret_sealed.clone(),
        row: h,
    });
    let swap = async |c: &mut PgConnection, h: &_, s: &[u8], v| mailroom_store::webhooks::reseal(c, h, s, v).await;
    reseal_all(&mut conn, vault, hooks.collect(), progress, swap).await?;
    let own = mailroom_store::erasure::stale_keys(&mut conn, page).await?.into_iter().map(|r| Stale {
        ctx: ctx(r.workspace_id, r.workspace_id, Field::ErasureKey),
        version: r.key_version,
        sealed: r.sealed.clone(),
        row: r,
    });
    let swap = async |c: &mut PgConnection, r: &_, s: &[u8], v| mailroom_store::erasure::reseal_key(c, r, s, v).await;
    reseal_all(&mut conn, vault, own.collect(), progress, swap).await
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
