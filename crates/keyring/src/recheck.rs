//! Re-checking an unusable mailbox once the configuration that made it so is fixed: its
//! sealed values are opened again; if all open, it returns to `active` with a
//! `mailbox.recovered` event and its parked sends resume, in one transaction.

use mailroom_domain::{MailboxId, WorkspaceId};
pub use mailroom_store::audit::Actor;
use mailroom_store::{PgPool, mailboxes, unusable};
use mailroom_vault::{Field, SealContext, Vault};

use crate::{KeyringError, OpenError, open_sealed};

/// What a re-check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recheck {
    /// Every sealed value opened: the mailbox is active again and this many parked sends
    /// were queued.
    Recovered {
        /// Sends resumed.
        resumed: u64,
    },
    /// A value still does not open; the reason is the new one.
    StillUnusable {
        /// Why, naming versions but never key material.
        reason: String,
    },
    /// The mailbox is not unusable (its status is given): nothing to do.
    NotUnusable {
        /// Its status.
        status: String,
    },
}

/// Re-checks one mailbox. `None` when the workspace has no such mailbox.
pub async fn mailbox(
    pool: &PgPool,
    vault: &Vault,
    ws: WorkspaceId,
    mbx: MailboxId,
    actor: &Actor<'_>,
) -> Result<Option<Recheck>, KeyringError> {
    let mut conn = mailroom_store::scope::begin(pool, ws).await?;
    let Some(row) = mailboxes::get(&mut conn, ws, mbx).await? else { return Ok(None) };
    if row.status != "unusable" {
        return Ok(Some(Recheck::NotUnusable { status: row.status }));
    }
    let fields = unusable::sealed_fields(&mut conn, ws, mbx).await?;
    drop(conn);
    // A key unwrapped before the fix must not answer for the fixed configuration.
    vault.forget_workspace(ws);
    let failure = first_failure(pool, vault, ws, mbx, &fields).await?;
    let mut tx = mailroom_store::scope::begin(pool, ws).await?;
    let found = match failure {
        Some(reason) => {
            unusable::still_unusable(&mut tx, ws, mbx, &reason).await?;
            Recheck::StillUnusable { reason }
        }
        None if unusable::restore(&mut tx, ws, mbx, "re-checked: every sealed credential opens again").await? => {
            Recheck::Recovered { resumed: unusable::resume_parked(&mut tx, ws, mbx).await? }
        }
        None => Recheck::NotUnusable { status: "active".into() }, // a concurrent re-check won
    };
    let outcome = match &found {
        Recheck::Recovered { .. } => "mailbox.recheck.recovered",
        Recheck::StillUnusable { .. } => "mailbox.recheck.unusable",
        Recheck::NotUnusable { .. } => "mailbox.recheck.noop",
    };
    mailroom_store::audit::record(&mut tx, Some(ws), actor, outcome, Some(&mbx.to_string())).await?;
    tx.commit().await?;
    Ok(Some(found))
}

/// Re-checks every unusable mailbox of a workspace, oldest first.
pub async fn workspace(
    pool: &PgPool,
    vault: &Vault,
    ws: WorkspaceId,
    actor: &Actor<'_>,
) -> Result<Vec<(MailboxId, Recheck)>, KeyringError> {
    let mut conn = mailroom_store::scope::begin(pool, ws).await?;
    let ids = unusable::of_workspace(&mut conn, ws).await?;
    drop(conn);
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(found) = mailbox(pool, vault, ws, id, actor).await? {
            out.push((id, found));
        }
    }
    Ok(out)
}

/// Opens each sealed field; the first reason one does not open, if any. A key provider that
/// is unavailable is an error (try again later), not a verdict on the credential.
async fn first_failure(
    pool: &PgPool,
    vault: &Vault,
    ws: WorkspaceId,
    mbx: MailboxId,
    fields: &[String],
) -> Result<Option<String>, KeyringError> {
    if fields.is_empty() {
        return Ok(Some("no sealed credential is stored; reconnect the mailbox".into()));
    }
    for name in fields {
        let Some(field) = Field::parse(name) else {
            return Ok(Some(format!("an unknown sealed field `{name}` is stored")));
        };
        let sealed = {
            let mut conn = mailroom_store::scope::begin(pool, ws).await?;
            mailboxes::secret(&mut conn, ws, mbx, field.as_str()).await?
        };
        let Some((sealed, _)) = sealed else { continue };
        match open_sealed(pool, vault, SealContext { workspace: ws, mailbox: mbx, field }, &sealed).await {
            Ok(secret) => drop(secret),
            Err(OpenError::Unavailable(e)) => return Err(KeyringError::Vault(e)),
            Err(OpenError::Store(e)) => return Err(KeyringError::Store(e)),
            Err(e @ (OpenError::ForeignMasterKey(_) | OpenError::Unusable { .. })) => return Ok(Some(e.to_string())),
        }
    }
    Ok(None)
}
