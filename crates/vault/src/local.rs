//! The development master key: a 32-byte file, created with mode 0600 on first start.

use std::{
    fs::{self, OpenOptions},
    io::{self, Read, Write},
    os::unix::fs::DirBuilderExt,
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

use aes_gcm::{
    Aes256Gcm, KeyInit, Nonce,
    aead::{Aead, Payload},
};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretBox};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::{DataKey, KeyContext, KeyProvider, ProviderError, WrappedKey};

/// Why the master-key file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LocalKeyError {
    /// The file could not be read or created.
    #[error("cannot use the master-key file {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: io::Error,
    },
    /// The file is readable by group or others.
    #[error("the master-key file {0} is readable by other users (mode must be 0600)")]
    Permissions(PathBuf),
    /// The file does not hold exactly 32 bytes.
    #[error("the master-key file {0} must hold exactly 32 bytes")]
    Length(PathBuf),
}

/// A master key held in a local file. For development and tests: production uses a KMS.
///
/// Older master keys may be kept beside the current one while workspace keys are re-wrapped
/// after a master-key change; each wrapped key names its master by fingerprint, so the right
/// one is picked, never tried in turn.
pub struct LocalProvider {
    master: SecretBox<[u8; 32]>,
    key_id: String,
    previous: Vec<LocalProvider>,
}

impl LocalProvider {
    /// Loads the master key from `path`, creating it (mode 0600) if it does not exist. Only
    /// for a database that holds no workspace key yet: a new master key opens nothing stored.
    pub fn open_or_create(path: &Path) -> Result<Self, LocalKeyError> {
        match Self::create(path) {
            Ok(created) => Ok(created),
            Err(LocalKeyError::Io { source, .. }) if source.kind() == io::ErrorKind::AlreadyExists => Self::open(path),
            Err(e) => Err(e),
        }
    }

    /// Creates a new master-key file (mode 0600, its directory 0700 when created here);
    /// refuses to replace one that exists.
    pub fn create(path: &Path) -> Result<Self, LocalKeyError> {
        let io_err = |source| LocalKeyError::Io { path: path.to_owned(), source };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
            fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io_err)?;
        }
        let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(io_err)?;
        let mut key = Zeroizing::new([0u8; 32]);
        rand::rng().fill_bytes(key.as_mut());
        file.write_all(key.as_ref()).and_then(|_| file.sync_all()).map_err(io_err)?;
        tracing::info!(path = %path.display(), "created a new local master key");
        Ok(Self::from_bytes(*key))
    }

    /// Loads the master key from an existing file (mode 0600, exactly 32 bytes).
    pub fn open(path: &Path) -> Result<Self, LocalKeyError> {
        let io_err = |source| LocalKeyError::Io { path: path.to_owned(), source };
        let mut file = fs::File::open(path).map_err(io_err)?;
        let mode = file.metadata().map_err(io_err)?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(LocalKeyError::Permissions(path.to_owned()));
        }
        let mut bytes = Zeroizing::new(Vec::with_capacity(33));
        file.read_to_end(&mut bytes).map_err(io_err)?;
        let master: [u8; 32] = bytes.as_slice().try_into().map_err(|_| LocalKeyError::Length(path.to_owned()))?;
        Ok(Self::from_bytes(master))
    }

    /// A provider over an in-memory master key (tests).
    pub fn from_bytes(master: [u8; 32]) -> Self {
        // The id is a fingerprint, so keys wrapped by another master file are recognised as
        // such instead of failing as "tampered".
        let key_id = format!("local:{}", &hex::encode(Sha256::digest(master))[..16]);
        Self { master: SecretBox::new(Box::new(master)), key_id, previous: vec![] }
    }

    /// Keeps an earlier master key for opening (and re-wrapping) keys it wrapped.
    pub fn with_previous(mut self, previous: LocalProvider) -> Self {
        self.previous.push(previous);
        self
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(self.master.expose_secret().into())
    }

    fn wrap(&self, context: KeyContext, key: &[u8; 32]) -> WrappedKey {
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let aad = context_aad(&context);
        let sealed = self
            .cipher()
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: key.as_slice(), aad: &aad })
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let blob = [nonce.as_slice(), &sealed].concat();
        WrappedKey { context, provider: "local".to_owned(), kms_key_id: self.key_id.clone(), blob }
    }

    fn open_wrapped(&self, wrapped: &WrappedKey) -> Result<DataKey, ProviderError> {
        let rejected = || ProviderError::Rejected(wrapped.context);
        if wrapped.blob.len() < 12 {
            return Err(rejected());
        }
        let (nonce, sealed) = wrapped.blob.split_at(12);
        let aad = context_aad(&wrapped.context);
        let plain = Zeroizing::new(
            self.cipher()
                .decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad: &aad })
                .map_err(|_| rejected())?,
        );
        let key: [u8; 32] = plain.as_slice().try_into().map_err(|_| rejected())?;
        Ok(SecretBox::new(Box::new(key)))
    }

    /// The master key that wrapped `wrapped`, by the fingerprint it names.
    fn master_of(&self, wrapped: &WrappedKey) -> Result<&LocalProvider, ProviderError> {
        let named = |p: &&LocalProvider| wrapped.provider == "local" && wrapped.kms_key_id == p.key_id;
        std::iter::once(self).chain(self.previous.iter()).find(named).ok_or_else(|| ProviderError::WrongMasterKey {
            context: wrapped.context,
            expected: self.key_id.clone(),
            found: format!("{}:{}", wrapped.provider, wrapped.kms_key_id),
        })
    }
}

fn context_aad(ctx: &KeyContext) -> Vec<u8> {
    ctx.pairs().iter().map(|(k, v)| format!("{k}={v};")).collect::<String>().into_bytes()
}

#[async_trait::async_trait]
impl KeyProvider for LocalProvider {
    fn name(&self) -> &'static str {
        "local"
    }

    fn key_id(&self) -> &str {
        &self.key_id
    }

    async fn generate(&self, context: KeyContext) -> Result<(DataKey, WrappedKey), ProviderError> {
        let mut key = Box::new([0u8; 32]);
        rand::rng().fill_bytes(key.as_mut());
        let wrapped = self.wrap(context, &key);
        Ok((SecretBox::new(key), wrapped))
    }

    async fn unwrap(&self, wrapped: &WrappedKey) -> Result<DataKey, ProviderError> {
        self.master_of(wrapped)?.open_wrapped(wrapped)
    }

    async fn rewrap(&self, wrapped: &WrappedKey) -> Result<WrappedKey, ProviderError> {
        let key = self.master_of(wrapped)?.open_wrapped(wrapped)?;
        Ok(self.wrap(wrapped.context, key.expose_secret()))
    }
}

#[cfg(test)]
mod tests {
    use mailroom_domain::WorkspaceId;

    use super::*;

    #[tokio::test]
    async fn a_wrapped_key_opens_only_under_its_own_context() {
        let p = LocalProvider::from_bytes([9; 32]);
        let ctx = KeyContext { workspace: WorkspaceId::new(), version: 1 };
        let (key, wrapped) = p.generate(ctx).await.unwrap();
        let back = p.unwrap(&wrapped).await.unwrap();
        assert_eq!(back.expose_secret(), key.expose_secret());

        let mut moved = wrapped.clone();
        moved.context.version = 2;
        assert!(matches!(p.unwrap(&moved).await, Err(ProviderError::Rejected(_))));
        let other = LocalProvider::from_bytes([8; 32]);
        assert!(matches!(other.unwrap(&wrapped).await, Err(ProviderError::WrongMasterKey { .. })));

        // A new master key keeps the old one until every key is re-wrapped under it.
        let new = LocalProvider::from_bytes([8; 32]).with_previous(LocalProvider::from_bytes([9; 32]));
        let rewrapped = new.rewrap(&wrapped).await.unwrap();
        assert_eq!(rewrapped.kms_key_id, new.key_id());
        let only_new = LocalProvider::from_bytes([8; 32]);
        assert_eq!(only_new.unwrap(&rewrapped).await.unwrap().expose_secret(), key.expose_secret());
    }

    #[test]
    fn the_master_key_file_is_created_private_and_reloaded() {
        let dir = std::env::temp_dir().join(format!("mailroom-vault-{}", WorkspaceId::new()));
        let path = dir.join("master.key");
        let a = LocalProvider::open_or_create(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = LocalProvider::open_or_create(&path).unwrap();
        assert_eq!(a.key_id(), b.key_id());
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(LocalProvider::open_or_create(&path), Err(LocalKeyError::Permissions(_))));
        fs::remove_dir_all(dir).unwrap();
    }
}
