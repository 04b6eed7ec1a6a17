//! The sealing format (v1) and its associated data.
//!
//! `0x01 | u32 key_version (BE) | salt[32] | nonce[12] | ciphertext | tag[16]`, with
//! AAD = header ‖ len-prefixed workspace id ‖ len-prefixed mailbox id ‖ len-prefixed field.
//! The per-record key is HKDF-SHA256(workspace key, salt, "mailroom/v1/seal"), so no single
//! AES key ever sees enough random nonces to risk a collision.

use aes_gcm::{
    Aes256Gcm, KeyInit, Nonce,
    aead::{Aead, Payload},
};
use hkdf::Hkdf;
use mailroom_domain::{MailboxId, WorkspaceId};
use rand::RngCore;
use secrecy::ExposeSecret;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::DataKey;

const FORMAT_V1: u8 = 0x01;
const SALT_LEN: usize = 32;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 1 + 4 + SALT_LEN + NONCE_LEN;
const HKDF_INFO: &[u8] = b"mailroom/v1/seal";

/// Which credential a sealed value holds. Part of the associated data, so a password cannot be
/// passed off as a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// The SMTP password.
    SmtpPassword,
    /// The IMAP password.
    ImapPassword,
    /// An OAuth refresh token.
    RefreshToken,
    /// An OAuth access token.
    AccessToken,
    /// A webhook's signing secret (its owner id, in the mailbox slot, is the webhook's id).
    WebhookSecret,
    /// The key of a workspace's erased-address hashes (the mailbox slot holds the workspace id).
    ErasureKey,
}

impl Field {
    /// The field's name in the associated data and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SmtpPassword => "smtp_password",
            Self::ImapPassword => "imap_password",
            Self::RefreshToken => "refresh_token",
            Self::AccessToken => "access_token",
            Self::WebhookSecret => "webhook_secret",
            Self::ErasureKey => "erasure_key",
        }
    }

    /// The field named `name` in the database.
    pub fn parse(name: &str) -> Option<Self> {
        [
            Self::SmtpPassword,
            Self::ImapPassword,
            Self::RefreshToken,
            Self::AccessToken,
            Self::WebhookSecret,
            Self::ErasureKey,
        ]
        .into_iter()
        .find(|f| f.as_str() == name)
    }
}

/// The owner a sealed value is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealContext {
    /// The workspace.
    pub workspace: WorkspaceId,
    /// The mailbox.
    pub mailbox: MailboxId,
    /// The field.
    pub field: Field,
}

/// Why a sealed value could not be opened.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// Too short, or an unknown format byte.
    #[error("the sealed value is malformed")]
    Malformed,
    /// The tag did not verify: tampered, or moved to another owner or field.
    #[error("the sealed value does not open for {0}")]
    Rejected(String),
}

/// The workspace-key version a sealed value names in its header.
pub fn key_version(sealed: &[u8]) -> Result<u32, SealError> {
    if sealed.len() < HEADER_LEN + TAG_LEN || sealed[0] != FORMAT_V1 {
        return Err(SealError::Malformed);
    }
    Ok(u32::from_be_bytes([sealed[1], sealed[2], sealed[3], sealed[4]]))
}

fn aad(header: &[u8], ctx: &SealContext) -> Vec<u8> {
    let mut aad = header.to_vec();
    for part in [ctx.workspace.to_string(), ctx.mailbox.to_string(), ctx.field.as_str().to_owned()] {
        aad.extend_from_slice(&(part.len() as u32).to_be_bytes());
        aad.extend_from_slice(part.as_bytes());
    }
    aad
}

fn record_cipher(key: &DataKey, salt: &[u8]) -> Aes256Gcm {
    let hk = Hkdf::<Sha256>::new(Some(salt), key.expose_secret());
    let mut okm = Zeroizing::new([0u8; 32]);
    // 32 bytes is far below HKDF-SHA256's 8160-byte limit, so expand cannot fail.
    hk.expand(HKDF_INFO, okm.as_mut()).expect("32 bytes is a valid HKDF-SHA256 output length");
    Aes256Gcm::new(okm.as_ref().into())
}

/// Seals `plaintext` for `ctx` under version `version` of the workspace key.
pub(crate) fn seal(key: &DataKey, version: u32, ctx: &SealContext, plaintext: &[u8]) -> Vec<u8> {
    let mut header = [0u8; HEADER_LEN];
    header[0] = FORMAT_V1;
    header[1..5].copy_from_slice(&version.to_be_bytes());
    rand::rng().fill_bytes(&mut header[5..]);
    let (salt, nonce) = header[5..].split_at(SALT_LEN);
    let aad = aad(&header, ctx);
    let ciphertext = record_cipher(key, salt)
        .encrypt(Nonce::from_slice(nonce), Payload { msg: plaintext, aad: &aad })
        .expect("AES-GCM encryption of an in-memory buffer cannot fail");
    let mut out = Vec::with_capacity(HEADER_LEN + ciphertext.len());
    out.extend_from_slice(&header);
    out.extend_from_slice(&ciphertext);
    out
}

/// Opens a value sealed by [`seal`] for the same `ctx`.
pub(crate) fn open(key: &DataKey, ctx: &SealContext, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
    key_version(sealed)?;
    let (header, body) = sealed.split_at(HEADER_LEN);
    let (salt, nonce) = header[5..].split_at(SALT_LEN);
    let aad = aad(header, ctx);
    record_cipher(key, salt)
        .decrypt(Nonce::from_slice(nonce), Payload { msg: body, aad: &aad })
        .map(Zeroizing::new)
        .map_err(|_| SealError::Rejected(format!("{}/{}/{}", ctx.workspace, ctx.mailbox, ctx.field.as_str())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> DataKey {
        DataKey::new(Box::new([byte; 32]))
    }

    fn ctx() -> SealContext {
        SealContext { workspace: WorkspaceId::new(), mailbox: MailboxId::new(), field: Field::SmtpPassword }
    }

    #[test]
    fn a_sealed_value_opens_for_its_owner_and_names_its_key_version() {
        let (k, c) = (key(7), ctx());
        let sealed = seal(&k, 3, &c, b"hunter2");
        assert_eq!(key_version(&sealed), Ok(3));
        assert_eq!(open(&k, &c, &sealed).unwrap().as_slice(), b"hunter2");
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
    }

    #[test]
    fn flipping_any_byte_makes_it_fail_to_open() {
        let (k, c) = (key(7), ctx());
        let sealed = seal(&k, 1, &c, b"hunter2");
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert!(open(&k, &c, &bad).is_err(), "byte {i} flipped still opened");
        }
    }

    #[test]
    fn a_value_moved_to_another_mailbox_field_or_workspace_fails_to_open() {
        let (k, c) = (key(7), ctx());
        let sealed = seal(&k, 1, &c, b"hunter2");
        let moved = [
            SealContext { mailbox: MailboxId::new(), ..c },
            SealContext { field: Field::ImapPassword, ..c },
            SealContext { workspace: WorkspaceId::new(), ..c },
        ];
        for other in moved {
            assert!(matches!(open(&k, &other, &sealed), Err(SealError::Rejected(_))));
        }
        assert!(open(&key(8), &c, &sealed).is_err());
    }

    #[test]
    fn truncated_or_unknown_formats_are_malformed() {
        assert_eq!(key_version(&[1, 0, 0]), Err(SealError::Malformed));
        let mut sealed = seal(&key(1), 1, &ctx(), b"x");
        sealed[0] = 0x02;
        assert_eq!(key_version(&sealed), Err(SealError::Malformed));
    }
}
