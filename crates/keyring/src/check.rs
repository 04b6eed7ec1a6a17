//! Start-up checks: before a process serves, proof that its master key opens what the
//! database holds. A process started with another master-key file or KMS key refuses to
//! start instead of finding out one send at a time, and no tenant's mailbox pays for it.

use mailroom_store::{PgPool, StoreError, keys};
use mailroom_vault::{ProviderError, Vault};

use crate::wrapped_key;

/// One master key the database uses, checked by a real unwrap of one of its keys.
#[derive(Debug, Clone)]
pub struct MasterKeyUse {
    /// `provider:key id` as stored with the wrapped keys.
    pub master: String,
    /// Live workspace keys it wraps.
    pub keys: i64,
}

/// Why the vault is not fit to serve. Names master keys and counts, never key material.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The provider refused the configured master key itself.
    #[error("the configured master key cannot be used")]
    Provider(#[source] ProviderError),
    /// The database holds keys wrapped by a master key this process does not have.
    #[error(
        "{keys} workspace key(s) in the database were wrapped by master key `{found}`, but this process holds `{held}`"
    )]
    Foreign {
        /// The master key named by the stored keys.
        found: String,
        /// The master key this process holds.
        held: String,
        /// How many live keys it wraps.
        keys: i64,
    },
    /// A sample key named this process's master key but did not open under it.
    #[error("a workspace key wrapped by `{found}` does not open with this process's key provider")]
    Unwrap {
        /// The master key named by the stored key.
        found: String,
        /// The provider's answer.
        #[source]
        source: ProviderError,
    },
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Stored keys tried per master key before the check gives up on it.
const SAMPLES: i64 = 3;

/// Whether the database holds any live workspace key yet (a local master-key file may be
/// created only when it does not: on the very first start).
pub async fn database_has_keys(pool: &PgPool) -> Result<bool, StoreError> {
    let mut conn = pool.acquire().await.map_err(StoreError::Database)?;
    Ok(!keys::master_key_samples(&mut conn, 1).await?.is_empty())
}

/// Checks the configured master key with its provider, then unwraps one stored key per
/// master key the database uses. One provider call per master key, whatever the number of
/// workspaces.
pub async fn master_keys(pool: &PgPool, vault: &Vault) -> Result<Vec<MasterKeyUse>, CheckError> {
    vault.verify_master_key().await.map_err(CheckError::Provider)?;
    let mut conn = pool.acquire().await.map_err(StoreError::Database)?;
    let samples = keys::master_key_samples(&mut conn, SAMPLES).await?;
    drop(conn);
    let held = format!("{}:{}", vault.provider_name(), vault.master_key_id());
    // Rows come grouped by master key; each group is proved by the first sample that opens.
    let mut groups: Vec<(String, i64, Vec<keys::WorkspaceKeyRow>)> = Vec::new();
    for (row, count) in samples {
        let master = format!("{}:{}", row.provider, row.kms_key_id);
        match groups.last_mut() {
            Some((m, _, rows)) if *m == master => rows.push(row),
            _ => groups.push((master, count, vec![row])),
        }
    }
    let mut uses = Vec::with_capacity(groups.len());
    for (master, count, rows) in groups {
        prove(vault, &master, &held, count, rows).await?;
        uses.push(MasterKeyUse { master, keys: count });
    }
    Ok(uses)
}

/// Unwraps the samples of one master key until one opens. One damaged workspace key is that
/// workspace's problem (its mailboxes become unusable when used); only when no sample opens
/// is it the process's.
async fn prove(
    vault: &Vault,
    master: &str,
    held: &str,
    count: i64,
    rows: Vec<keys::WorkspaceKeyRow>,
) -> Result<(), CheckError> {
    let mut last = None;
    for row in rows {
        let ws = mailroom_domain::WorkspaceId::from_uuid(row.workspace_id);
        let Some(wrapped) = wrapped_key(ws, row) else { continue };
        match vault.try_unwrap(&wrapped).await {
            Ok(()) => return Ok(()),
            Err(ProviderError::WrongMasterKey { .. }) => {
                return Err(CheckError::Foreign { found: master.to_owned(), held: held.to_owned(), keys: count });
            }
            Err(ProviderError::Rejected(ctx)) => {
                tracing::warn!(workspace.id = %ws, master_key = %master, "a stored workspace key does not open; trying another");
                last = Some(ProviderError::Rejected(ctx));
            }
            Err(source) => return Err(CheckError::Unwrap { found: master.to_owned(), source }),
        }
    }
    match last {
        Some(source) => Err(CheckError::Unwrap { found: master.to_owned(), source }),
        None => Ok(()),
    }
}
