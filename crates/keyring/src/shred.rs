//! Crypto-shredding (docs/design.md section 2). Disconnecting a mailbox deletes its sealed values
//! and cancels its waiting sends. Deleting a workspace destroys its wrapped keys: every value
//! ever sealed under them, in this database or in any copy of it made afterwards, can no
//! longer be opened by the engine.

use mailroom_domain::{MailboxId, WorkspaceId};
use mailroom_store::{PgPool, audit::Actor, events, keys, mailboxes, secrets, sends, workspaces};
use mailroom_vault::Vault;
use serde::Serialize;

use crate::KeyringError;

/// What disconnecting a mailbox destroyed.
#[derive(Debug, Clone, Serialize)]
pub struct Disconnected {
    /// The sealed fields deleted.
    pub destroyed: Vec<String>,
    /// Waiting sends cancelled (each with a `send.cancelled` event).
    pub cancelled_sends: u64,
    /// What happened at the provider: SMTP/IMAP passwords have no grant to revoke there.
    pub provider_grant: &'static str,
}

/// Disconnects a mailbox. `None` if the workspace has no such mailbox. Repeating it is
/// harmless and destroys nothing more.
pub async fn disconnect_mailbox(
    pool: &PgPool,
    ws: WorkspaceId,
    mbx: MailboxId,
    actor: &Actor<'_>,
) -> Result<Option<Disconnected>, KeyringError> {
    let mut tx = mailroom_store::scope::begin(pool, ws).await?;
    // The row lock first: a reconnect sealing a new password waits, then finds it disconnected.
    if mailboxes::lock(&mut tx, ws, mbx).await?.is_none() {
        return Ok(None);
    }
    let destroyed = secrets::destroy_mailbox(&mut tx, ws, mbx).await?;
    mailboxes::mark_disconnected(&mut tx, ws, Some(mbx), &format!("disconnected by {}", actor.name)).await?;
    let reason = "the mailbox was disconnected and its credentials destroyed";
    let cancelled_sends = sends::cancel_waiting(&mut tx, ws, Some(mbx), reason).await?;
    let data = serde_json::json!({ "destroyed": destroyed, "cancelled_sends": cancelled_sends });
    let event = events::NewEvent { workspace: ws, kind: "mailbox.disconnected", send: None, mailbox: Some(mbx), data };
    events::insert(&mut tx, &event).await?;
    mailroom_store::audit::record(&mut tx, Some(ws), actor, "mailbox.disconnect", Some(&mbx.to_string())).await?;
    tx.commit().await?;
    tracing::info!(workspace.id = %ws, mailbox.id = %mbx, fields = destroyed.len(), cancelled_sends, "mailbox disconnected");
    Ok(Some(Disconnected {
        destroyed,
        cancelled_sends,
        provider_grant: "none: a password has no grant at the provider; only Mailroom's sealed copy was destroyed",
    }))
}

/// What deleting a workspace destroyed.
#[derive(Debug, Clone, Serialize)]
pub struct WorkspaceDeleted {
    /// Wrapped key versions destroyed.
    pub keys_destroyed: u64,
    /// Sealed values deleted.
    pub values_destroyed: u64,
    /// Mailboxes disconnected.
    pub mailboxes_disconnected: u64,
    /// Waiting sends cancelled.
    pub cancelled_sends: u64,
}

/// Deletes a workspace: destroys its keys and sealed values, disconnects its mailboxes,
/// cancels its waiting sends and revokes its API keys. Ledger and audit rows stay (they hold
/// no secret, and the idempotency keys and the history must outlive the credentials).
pub async fn delete_workspace(
    pool: &PgPool,
    vault: &Vault,
    ws: WorkspaceId,
    actor: &Actor<'_>,
) -> Result<WorkspaceDeleted, KeyringError> {
    let mut tx = mailroom_store::scope::begin(pool, ws).await?;
    if !workspaces::mark_deleted(&mut tx, ws).await? {
        return Err(KeyringError::NoWorkspace(ws));
    }
    mailboxes::lock_all(&mut tx, ws).await?;
    let keys_destroyed = keys::destroy_all(&mut tx, ws).await?;
    let values_destroyed = secrets::destroy_workspace(&mut tx, ws).await?;
    let mailboxes_disconnected = mailboxes::mark_disconnected(&mut tx, ws, None, "the workspace was deleted").await?;
    let cancelled_sends = sends::cancel_waiting(&mut tx, ws, None, "the workspace was deleted").await?;
    mailroom_store::audit::record(&mut tx, Some(ws), actor, "workspace.delete", Some(&ws.to_string())).await?;
    tx.commit().await?;
    // This process's cache; others drop theirs within one TTL, and their keys can no longer
    // be loaded from the database.
    vault.forget_workspace(ws);
    tracing::warn!(workspace.id = %ws, keys_destroyed, values_destroyed, "workspace deleted and its keys destroyed");
    Ok(WorkspaceDeleted { keys_destroyed, values_destroyed, mailboxes_disconnected, cancelled_sends })
}
