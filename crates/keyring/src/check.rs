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

/// Whether the database holds any live workspace key yet (a local master-key file may be
/// created only when it does not: on the very first start).
pub async fn database_has_keys(pool: &PgPool) -> Result<bool, StoreError> {
    let mut conn = pool.acquire().await.map_err(StoreError::Database)?;
    Ok(!keys::master_key_samples(&mut conn).await?.is_empty())
}

/// Checks the configured master key with its provider, then unwraps one stored key per
/// master key the database uses. One provider call per master key, whatever the number of
/// workspaces.
pub async fn master_keys(pool: &PgPool, vault: &Vault) -> Result<Vec<MasterKeyUse>, CheckError> {
    vault.verify_master_key().await.map_err(CheckError::Provider)?;
    let mut conn = pool.acquire().await.map_err(StoreError::Database)?;
    let samples = keys::master_key_samples(&mut conn).await?;
    drop(conn);
    let held = format!("{}:{}", vault.provider_name(), vault.master_key_id());
    let mut uses = Vec::with_capacity(samples.len());
    for (row, count) in samples {
        let ws = mailroom_domain::WorkspaceId::from_uuid(row.workspace_id);
        let master = format!("{}:{}", row.provider, row.kms_key_id);
        let Some(wrapped) = wrapped_key(ws, row) else { continue };
        match vault.try_unwrap(&wrapped).await {
            Ok(()) => uses.push(MasterKeyUse { master, keys: count }),
            Err(ProviderError::WrongMasterKey { .. }) => {
                return Err(CheckError::Foreign { found: master, held, keys: count });
            }
            Err(source) => return Err(CheckError::Unwrap { found: master, source }),
        }
    }
    Ok(uses)
}
