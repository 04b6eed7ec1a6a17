//! The vault: envelope encryption for mailbox credentials (docs/design.md section 2).
//!
//! A master key (held by a [`KeyProvider`]) wraps one data key per workspace and version; each
//! sealed value gets its own key derived from the workspace key, and its associated data binds
//! it to its workspace, mailbox and field. This crate does no database I/O: callers load the
//! wrapped key row and pass it in, so the vault stays a pure crypto layer beside the store.
#![deny(missing_docs)]

mod aws;
mod cache;
mod local;
mod provider;
mod seal;
mod vault;

pub use aws::{AwsKmsProvider, AwsKmsSettings};
pub use cache::{CacheLimits, CacheStats};
pub use local::{LocalKeyError, LocalProvider};
pub use provider::{DataKey, KeyContext, KeyProvider, ProviderError, WrappedKey};
pub use seal::{Field, SealContext, SealError, key_version};
pub use vault::{Vault, VaultError};
