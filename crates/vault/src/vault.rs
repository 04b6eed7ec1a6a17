//! The vault: seals and opens credentials with cached workspace keys.

use std::sync::Arc;

use mailroom_domain::WorkspaceId;
use secrecy::{ExposeSecret, SecretString};

use crate::{
    CacheLimits, CacheStats, KeyContext, KeyProvider, ProviderError, SealContext, SealError, WrappedKey,
    cache::KeyCache, seal,
};

/// Why sealing or opening failed. Never carries key material or plaintext.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The master-key provider failed.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// The sealed value did not open.
    #[error(transparent)]
    Seal(#[from] SealError),
    /// The sealed value names another key version than the key supplied.
    #[error("the sealed value names key version {sealed}, but version {supplied} was supplied")]
    VersionMismatch {
        /// The version in the sealed header.
        sealed: u32,
        /// The version of the key passed in.
        supplied: u32,
    },
    /// The wrapped key belongs to another workspace than the sealed value.
    #[error("the key supplied belongs to another workspace")]
    WorkspaceMismatch,
    /// The opened value is not UTF-8 text.
    #[error("the opened value is not text")]
    NotText,
}

/// Seals and opens credentials. Cheap to clone; one per process.
#[derive(Clone)]
pub struct Vault {
    provider: Arc<dyn KeyProvider>,
    cache: Arc<KeyCache>,
}

impl Vault {
    /// A vault over `provider`, caching unwrapped keys within `limits`.
    pub fn new(provider: Arc<dyn KeyProvider>, limits: CacheLimits) -> Self {
        Self { provider, cache: Arc::new(KeyCache::new(limits)) }
    }

    /// Creates a new wrapped data key for a workspace version (to be stored by the caller).
    pub async fn create_workspace_key(&self, workspace: WorkspaceId, version: u32) -> Result<WrappedKey, VaultError> {
        let context = KeyContext { workspace, version };
        let (key, wrapped) = self.provider.generate(context).await?;
        drop(key);
        Ok(wrapped)
    }

    /// Wraps a workspace key again under the provider's current master key (a master-key
    /// change). The key itself, and so every value sealed under it, is unchanged.
    pub async fn rewrap(&self, key: &WrappedKey) -> Result<WrappedKey, VaultError> {
        Ok(self.provider.rewrap(key).await?)
    }

    /// Checks the configured master key with its provider (start-up checks).
    pub async fn verify_master_key(&self) -> Result<(), ProviderError> {
        self.provider.verify().await
    }

    /// Unwraps `key` with the provider, past the cache, and forgets the plaintext at once:
    /// proof that this process can open what the database holds (start-up checks).
    pub async fn try_unwrap(&self, key: &WrappedKey) -> Result<(), ProviderError> {
        let plain = self.provider.unwrap(key).await?;
        drop(plain);
        Ok(())
    }

    /// The provider's current master key id.
    pub fn master_key_id(&self) -> &str {
        self.provider.key_id()
    }

    /// Seals a secret under `key` (the workspace's active key) for `ctx`.
    pub async fn seal(
        &self,
        key: &WrappedKey,
        ctx: &SealContext,
        secret: &SecretString,
    ) -> Result<Vec<u8>, VaultError> {
        if key.context.workspace != ctx.workspace {
            return Err(VaultError::WorkspaceMismatch);
        }
        let data_key = self.data_key(key).await?;
        Ok(seal::seal(&data_key, key.context.version, ctx, secret.expose_secret().as_bytes()))
    }

    /// Opens a sealed secret. `key` must be the version named in the sealed header
    /// (see [`crate::key_version`]): the vault never tries other keys.
    pub async fn open(&self, key: &WrappedKey, ctx: &SealContext, sealed: &[u8]) -> Result<SecretString, VaultError> {
        if key.context.workspace != ctx.workspace {
            return Err(VaultError::WorkspaceMismatch);
        }
        let version = seal::key_version(sealed)?;
        if version != key.context.version {
            return Err(VaultError::VersionMismatch { sealed: version, supplied: key.context.version });
        }
        let data_key = self.data_key(key).await?;
        let plain = seal::open(&data_key, ctx, sealed)?;
        let text = std::str::from_utf8(&plain).map_err(|_| VaultError::NotText)?;
        Ok(SecretString::from(text))
    }

    async fn data_key(&self, key: &WrappedKey) -> Result<Arc<crate::DataKey>, ProviderError> {
        let provider = self.provider.clone();
        self.cache.get_or_load(key.context, || async move { provider.unwrap(key).await }).await
    }

    /// Forgets one cached key version (it was destroyed).
    pub fn forget_key(&self, context: KeyContext) {
        self.cache.forget(|ctx| *ctx == context);
    }

    /// Forgets every cached key of a workspace.
    pub fn forget_workspace(&self, workspace: WorkspaceId) {
        self.cache.forget(|ctx| ctx.workspace == workspace);
    }

    /// Cache and provider counters.
    pub fn stats(&self) -> CacheStats {
        self.cache.stats()
    }

    /// The provider's name (`local`, `aws-kms`).
    pub fn provider_name(&self) -> &'static str {
        self.provider.name()
    }
}

#[cfg(test)]
mod tests {
    use mailroom_domain::MailboxId;

    use super::*;
    use crate::{Field, LocalProvider};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_hundred_concurrent_opens_of_a_cold_key_make_one_provider_call() {
        let vault = Vault::new(Arc::new(LocalProvider::from_bytes([1; 32])), CacheLimits::default());
        let ws = WorkspaceId::new();
        let key = vault.create_workspace_key(ws, 1).await.unwrap();
        let ctx = SealContext { workspace: ws, mailbox: MailboxId::new(), field: Field::SmtpPassword };
        let sealed = vault.seal(&key, &ctx, &SecretString::from("pw")).await.unwrap();
        let vault2 = Vault::new(Arc::new(LocalProvider::from_bytes([1; 32])), CacheLimits::default());
        let tasks: Vec<_> = (0..100)
            .map(|_| {
                let (v, k, s) = (vault2.clone(), key.clone(), sealed.clone());
                tokio::spawn(async move { v.open(&k, &ctx, &s).await.map(|p| p.expose_secret().to_owned()) })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap(), "pw");
        }
        assert_eq!(vault2.stats().provider_calls, 1);
    }

    #[tokio::test]
    async fn a_value_sealed_under_one_version_is_not_opened_with_another() {
        let vault = Vault::new(Arc::new(LocalProvider::from_bytes([1; 32])), CacheLimits::default());
        let ws = WorkspaceId::new();
        let (k1, k2) =
            (vault.create_workspace_key(ws, 1).await.unwrap(), vault.create_workspace_key(ws, 2).await.unwrap());
        let ctx = SealContext { workspace: ws, mailbox: MailboxId::new(), field: Field::SmtpPassword };
        let sealed = vault.seal(&k1, &ctx, &SecretString::from("pw")).await.unwrap();
        assert!(matches!(
            vault.open(&k2, &ctx, &sealed).await,
            Err(VaultError::VersionMismatch { sealed: 1, supplied: 2 })
        ));
    }
}
