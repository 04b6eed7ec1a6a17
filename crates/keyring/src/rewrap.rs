//! Master-key change: every live workspace key is re-wrapped under the vault's current master
//! key (KMS `ReEncrypt`; the local provider opens with the previous key file and wraps with the
//! new). The workspace keys themselves, and so every sealed value, are unchanged: nothing else
//! is rewritten, and sends keep working throughout.

use mailroom_domain::WorkspaceId;
use mailroom_store::{PgPool, audit::Actor, keys};
use mailroom_vault::Vault;
use serde::Serialize;

use crate::{KeyringError, wrapped_key};

/// What a re-wrap did.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Rewrapped {
    /// Keys re-wrapped.
    pub rewrapped: usize,
    /// Keys already under the current master key.
    pub already: usize,
    /// Keys changed by someone else during the re-wrap (left as they are).
    pub raced: usize,
}

fn under(master: &str, stored: &str) -> bool {
    stored == master || stored.ends_with(&format!("/{master}"))
}

/// Re-wraps every live workspace key not already under the current master key. Safe to run
/// again after an interruption: it picks up what is left.
pub async fn rewrap_all(pool: &PgPool, vault: &Vault, actor: &Actor<'_>) -> Result<Rewrapped, KeyringError> {
    let master = vault.master_key_id().to_owned();
    let mut done = Rewrapped::default();
    let mut after = None;
    loop {
        let mut conn = pool.acquire().await?;
        let page = keys::live_page(&mut conn, after, 200).await?;
        drop(conn);
        let Some(last) = page.last() else { break };
        after = Some((last.workspace_id, last.version));
        for row in page {
            if under(&master, &row.kms_key_id) && row.provider == vault.provider_name() {
                done.already += 1;
                continue;
            }
            let ws = WorkspaceId::from_uuid(row.workspace_id);
            let Some(old) = wrapped_key(ws, row.clone()) else { continue };
            let new = vault.rewrap(&old).await?;
            let new_row = keys::WorkspaceKeyRow {
                wrapped_key: Some(new.blob),
                provider: new.provider,
                kms_key_id: new.kms_key_id,
                ..row.clone()
            };
            let mut tx = pool.begin().await?;
            if keys::replace_wrapping(&mut tx, &row, &new_row).await? {
                let what = format!("key version {} to {}", row.version, new_row.kms_key_id);
                mailroom_store::audit::record(&mut tx, Some(ws), actor, "key.rewrap", Some(&what)).await?;
                done.rewrapped += 1;
            } else {
                done.raced += 1;
            }
            tx.commit().await?;
        }
    }
    tracing::info!(?done, master = %master, "workspace keys re-wrapped");
    Ok(done)
}
