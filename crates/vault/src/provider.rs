//! The master-key provider trait: generates and unwraps workspace data keys.

use std::fmt;

use mailroom_domain::WorkspaceId;
use secrecy::SecretBox;

/// A plaintext 256-bit workspace data key. Zeroized when dropped; `Debug` prints nothing.
pub type DataKey = SecretBox<[u8; 32]>;

/// What a wrapped key is bound to: the KMS encryption context. Never secret (it appears in
/// KMS audit trails).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyContext {
    /// The workspace that owns the key.
    pub workspace: WorkspaceId,
    /// The key's version within the workspace.
    pub version: u32,
}

impl KeyContext {
    /// The encryption context as KMS key/value pairs.
    pub fn pairs(&self) -> [(&'static str, String); 2] {
        [("mailroom:workspace", self.workspace.to_string()), ("mailroom:key_version", self.version.to_string())]
    }
}

/// A workspace data key as stored: wrapped by the master key, useless without it.
#[derive(Clone, PartialEq, Eq)]
pub struct WrappedKey {
    /// Whose key, and which version.
    pub context: KeyContext,
    /// The provider that wrapped it (`local`, `aws-kms`).
    pub provider: String,
    /// The master key's identifier at that provider.
    pub kms_key_id: String,
    /// The wrapped key bytes.
    pub blob: Vec<u8>,
}

impl fmt::Debug for WrappedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WrappedKey")
            .field("context", &self.context)
            .field("provider", &self.provider)
            .field("kms_key_id", &self.kms_key_id)
            .finish_non_exhaustive()
    }
}

/// Why the provider could not generate or unwrap a key. Messages name the workspace and
/// version, never key material.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The provider could not be reached or answered with a passing error: retry later.
    #[error("the key provider is unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The wrapped key does not open under this master key and context: tampered, moved to
    /// another workspace or version, or wrapped by another master key.
    #[error("the wrapped key for {0:?} does not open under this master key and context")]
    Rejected(KeyContext),
    /// The wrapped key was made by another provider or master key.
    #[error("the key for {context:?} was wrapped by `{found}`, this vault uses `{expected}`")]
    WrongMasterKey {
        /// Whose key.
        context: KeyContext,
        /// The master key this vault holds.
        expected: String,
        /// The master key named by the wrapped key.
        found: String,
    },
    /// The provider refused this process's master key itself (it does not exist, is in
    /// another region, or this process may not use it): a configuration problem.
    #[error("the key provider refused master key `{key_id}`: {reason}")]
    Refused {
        /// The configured master key.
        key_id: String,
        /// The provider's own words (an error code and message, never key material).
        reason: String,
    },
}

/// Holds the master key and wraps workspace keys with it.
#[async_trait::async_trait]
pub trait KeyProvider: Send + Sync + 'static {
    /// The provider's name as stored with each key (`local`, `aws-kms`).
    fn name(&self) -> &'static str;

    /// The master key's identifier.
    fn key_id(&self) -> &str;

    /// Creates a fresh data key for `context`, returning it in plaintext and wrapped.
    async fn generate(&self, context: KeyContext) -> Result<(DataKey, WrappedKey), ProviderError>;

    /// Unwraps a stored key. Must fail when the context does not match the one it was
    /// wrapped under.
    async fn unwrap(&self, wrapped: &WrappedKey) -> Result<DataKey, ProviderError>;

    /// Wraps a stored key again under this provider's current master key, same context (a
    /// master-key change: the workspace key, and so every sealed value, is unchanged).
    async fn rewrap(&self, wrapped: &WrappedKey) -> Result<WrappedKey, ProviderError>;

    /// Checks, before a process serves, that the configured master key exists and may be
    /// used. A local key file was checked when it was read, so the default does nothing.
    async fn verify(&self) -> Result<(), ProviderError> {
        Ok(())
    }
}
