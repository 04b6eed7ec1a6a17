//! The vault's life cycle over the store (docs/design.md section 2): opening a mailbox's sealed
//! credential for the job in hand, rotating a workspace's key without downtime, re-wrapping
//! every workspace key under a new master key, and crypto-shredding.
//!
//! The vault crate does the cryptography and no I/O; the store does the SQL and no
//! cryptography; this crate joins them, so the API, the workers and the CLI share one
//! implementation of each procedure.
#![deny(missing_docs)]

pub mod check;
pub mod erasure;
pub mod oauth_config;
mod open;
pub mod recheck;
pub mod rewrap;
pub mod rotate;
pub mod shred;
pub mod tokens;

use mailroom_domain::WorkspaceId;
use mailroom_store::StoreError;
use mailroom_vault::VaultError;

pub use open::{OpenError, active_key, open_sealed, open_secret, wrapped_key};

/// Why a key procedure failed. Never carries key material or a plaintext.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The vault or its key provider failed.
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// The workspace has no active key (deleted, or never provisioned).
    #[error("workspace {0} has no active key")]
    NoActiveKey(WorkspaceId),
    /// A rotation of this workspace is already under way.
    #[error("a key rotation of workspace {0} is already under way")]
    RotationInProgress(WorkspaceId),
    /// No such workspace (or it was deleted).
    #[error("no workspace {0}")]
    NoWorkspace(WorkspaceId),
    /// A sealed value did not open.
    #[error(transparent)]
    Open(#[from] OpenError),
}

impl From<mailroom_store::SqlxError> for KeyringError {
    fn from(e: mailroom_store::SqlxError) -> Self {
        Self::Store(StoreError::Database(e))
    }
}
