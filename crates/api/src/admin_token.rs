//! The operator's credential: one admin token for the platform that runs Mailroom. It opens
//! only the operator surface (top-level workspaces) and is never accepted where a workspace
//! key is expected, nor a workspace key here.
//!
//! The token is 32 random bytes, written as `mra_<generation>_<64 hex>` in a JSON file with
//! mode 0600 (its directory 0700 when created here). Only its SHA-256 stays in memory,
//! compared in constant time. `mailroom admin rotate-token` writes the next generation
//! atomically; a running API notices the file changed on the next operator request and the
//! old value stops working then, without a restart.

use std::{
    fs,
    io::Write,
    os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
    sync::RwLock,
    time::SystemTime,
};

use chrono::{DateTime, Utc};
use rand::RngCore;
use secrecy::zeroize::Zeroizing;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Why the admin token file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AdminTokenError {
    /// It could not be read or written.
    #[error("cannot use the admin token file {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// Readable by other users.
    #[error("the admin token file {0} is readable by other users (mode must be 0600)")]
    Permissions(PathBuf),
    /// Not a token file.
    #[error("the admin token file {0} is not one Mailroom wrote")]
    Malformed(PathBuf),
}

/// The file's content. The token is only ever read from it to be hashed.
#[derive(Serialize, Deserialize)]
struct Stored {
    generation: u32,
    created_at: DateTime<Utc>,
    token: String,
}

/// What the process holds: the hash of the current token, and which file state it came from.
struct Loaded {
    stamp: Option<Stamp>,
    generation: u32,
    created_at: DateTime<Utc>,
    /// `None` when the file changed and could not be read: no token is accepted then.
    hash: Option<[u8; 32]>,
}

/// What tells a changed token file: a rename (rotation), a write, or new permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    inode: u64,
    mode: u32,
    len: u64,
}

impl Stamp {
    fn of(meta: &fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        Self { modified: meta.modified().ok(), inode: meta.ino(), mode: meta.mode(), len: meta.len() }
    }
}

/// The admin token of this process.
pub struct AdminToken {
    path: PathBuf,
    loaded: RwLock<Loaded>,
}

impl AdminToken {
    /// Loads the token from `path`, creating generation 1 when the file does not exist.
    pub fn load_or_create(path: &Path) -> Result<Self, AdminTokenError> {
        if !path.exists() {
            write(path, 1)?;
            tracing::info!(path = %path.display(), "created the admin token (generation 1)");
        }
        Ok(Self { path: path.to_owned(), loaded: RwLock::new(read(path)?) })
    }

    /// Writes the next generation of the token; returns it. The old one stops working at the
    /// next operator request of every API process sharing the file.
    pub fn rotate(path: &Path) -> Result<u32, AdminTokenError> {
        let next = read(path)?.generation + 1;
        write(path, next)?;
        Ok(next)
    }

    /// The generation in force and when it was made.
    pub fn generation(&self) -> (u32, DateTime<Utc>) {
        let l = self.loaded.read().unwrap_or_else(|e| e.into_inner());
        (l.generation, l.created_at)
    }

    /// Whether `presented` is the current token (constant time). Re-reads the file first if it
    /// changed since it was loaded.
    pub fn verify(&self, presented: &str) -> bool {
        self.reload_if_changed();
        let hash: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let l = self.loaded.read().unwrap_or_else(|e| e.into_inner());
        l.hash.is_some_and(|h| h.ct_eq(&hash).into())
    }

    fn reload_if_changed(&self) {
        let stamp = fs::metadata(&self.path).ok().map(|m| Stamp::of(&m));
        let stale = self.loaded.read().map(|l| l.stamp != stamp).unwrap_or(true);
        if stale {
            let mut loaded = self.loaded.write().unwrap_or_else(|e| e.into_inner());
            match read(&self.path) {
                Ok(fresh) => *loaded = fresh,
                // Fail closed: a token that may have been rotated away must not keep working.
                Err(e) => {
                    tracing::error!(error = %e, "the admin token file changed and cannot be read; no admin token is accepted");
                    (loaded.stamp, loaded.hash) = (stamp, None);
                }
            }
        }
    }
}

/// Reads the token itself from its file, for an operator's tool on the same machine (the demo).
pub fn read_token(path: &Path) -> Result<secrecy::SecretString, AdminTokenError> {
    read(path)?;
    let text = Zeroizing::new(fs::read_to_string(path).map_err(io(path))?);
    let stored: Stored = serde_json::from_str(&text).map_err(|_| AdminTokenError::Malformed(path.to_owned()))?;
    Ok(secrecy::SecretString::from(stored.token))
}

/// Whether a bearer token has the admin token's shape (so it is never tried as a key).
pub fn looks_like_admin_token(token: &str) -> bool {
    token.starts_with("mra_")
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> AdminTokenError + '_ {
    move |source| AdminTokenError::Io { path: path.to_owned(), source }
}

fn read(path: &Path) -> Result<Loaded, AdminTokenError> {
    let meta = fs::metadata(path).map_err(io(path))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(AdminTokenError::Permissions(path.to_owned()));
    }
    let text = Zeroizing::new(fs::read_to_string(path).map_err(io(path))?);
    let stored: Stored = serde_json::from_str(&text).map_err(|_| AdminTokenError::Malformed(path.to_owned()))?;
    let token = Zeroizing::new(stored.token);
    Ok(Loaded {
        stamp: Some(Stamp::of(&meta)),
        generation: stored.generation,
        created_at: stored.created_at,
        hash: Some(Sha256::digest(token.as_bytes()).into()),
    })
}

/// Writes generation `generation` with a fresh secret: a private temporary file renamed over
/// the old one, so a reader never sees half a token.
fn write(path: &Path, generation: u32) -> Result<(), AdminTokenError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io(path))?;
    }
    let mut secret = Zeroizing::new([0u8; 32]);
    rand::rng().fill_bytes(secret.as_mut());
    let stored = Stored {
        generation,
        created_at: Utc::now(),
        token: format!("mra_{generation}_{}", hex::encode(secret.as_ref())),
    };
    let body = Zeroizing::new(serde_json::to_vec(&stored).map_err(|_| AdminTokenError::Malformed(path.to_owned()))?);
    drop(Zeroizing::new(stored.token));
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut file = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp).map_err(io(path))?;
    file.write_all(&body).and_then(|_| file.sync_all()).map_err(io(path))?;
    fs::rename(&tmp, path).map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token_in(path: &Path) -> String {
        let stored: Stored = serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap();
        stored.token
    }

    #[test]
    fn the_token_file_is_private_and_a_rotation_retires_the_old_value_at_once() {
        let dir = std::env::temp_dir().join(format!("mailroom-admin-{}", uuid::Uuid::new_v4().simple()));
        let path = dir.join("state/admin.token");
        let admin = AdminToken::load_or_create(&path).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::metadata(path.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
        let first = token_in(&path);
        assert!(first.starts_with("mra_1_") && looks_like_admin_token(&first));
        assert!(admin.verify(&first));
        assert!(!admin.verify("mra_1_00"));
        assert_eq!(AdminToken::rotate(&path).unwrap(), 2);
        let second = token_in(&path);
        assert!(admin.verify(&second), "the new token works without a restart");
        assert!(!admin.verify(&first), "the old one stops at once");
        assert_eq!(admin.generation().0, 2);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(AdminToken::load_or_create(&path), Err(AdminTokenError::Permissions(_))));
        assert!(!admin.verify(&second), "a file others can read is not trusted: fail closed");
        fs::remove_dir_all(dir).unwrap();
    }
}
