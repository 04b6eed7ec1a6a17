//! Erasure of a contact (a data subject's right): the address leaves the workspace's sends,
//! events and suppression list, and only its keyed hash stays, so it is never mailed again.
//!
//! The hash is HMAC-SHA256 under a per-workspace key created at the first erasure and sealed
//! under the workspace key like a credential: a dump of the database alone cannot test guessed
//! addresses against the list. The API and the CLI share [`erase`]; enqueue checks recipients
//! with [`Hasher`].

use hmac::{Hmac, Mac};
use mailroom_domain::{MailboxId, SendId, WorkspaceId, suppression::normalise};
use mailroom_store::{PgConnection, PgPool, audit::Actor, erasure, events};
use mailroom_vault::{Field, SealContext, Vault};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::{KeyringError, OpenError, active_key};

/// What prefixes an erased address's hash in the suppression list.
pub const PREFIX: &str = "erased:";

/// Computes a workspace's erased-address hashes. Holds the opened key; dropped after the
/// request in hand.
pub struct Hasher {
    key: Zeroizing<Vec<u8>>,
}

impl Hasher {
    /// `erased:<hex>` of the address in normal form.
    pub fn hash(&self, address: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes a key of any length");
        mac.update(normalise(address).as_bytes());
        format!("{PREFIX}{}", hex::encode(mac.finalize().into_bytes()))
    }
}

fn owner(ws: WorkspaceId) -> SealContext {
    SealContext { workspace: ws, mailbox: MailboxId::from_uuid(ws.as_uuid()), field: Field::ErasureKey }
}

/// Opens the workspace's sealed hash key, reading the sealing key's row through `conn` (the
/// caller's transaction: no second connection is taken).
pub async fn hasher(
    conn: &mut PgConnection,
    vault: &Vault,
    ws: WorkspaceId,
    sealed: &[u8],
) -> Result<Hasher, OpenError> {
    let opened = crate::open::open_in(conn, vault, owner(ws), sealed).await?;
    let key = hex::decode(opened.expose_secret()).map_err(|_| OpenError::Unusable {
        workspace: ws,
        mailbox: owner(ws).mailbox,
        field: "erasure_key",
        why: "not hex".into(),
    })?;
    Ok(Hasher { key: Zeroizing::new(key) })
}

/// The workspace's hasher, its key created and sealed first when it has none. The key
/// provider is called outside any transaction.
async fn ensure(pool: &PgPool, vault: &Vault, ws: WorkspaceId) -> Result<Hasher, KeyringError> {
    let mut tx = mailroom_store::scope::begin(pool, ws).await?;
    if let Some(sealed) = erasure::key(&mut tx, ws).await? {
        return Ok(hasher(&mut tx, vault, ws, &sealed).await?);
    }
    let active = active_key(&mut tx, ws).await?;
    drop(tx);
    let mut raw = Zeroizing::new([0u8; 32]);
    rand::rng().fill_bytes(raw.as_mut());
    let secret = SecretString::from(hex::encode(raw.as_ref()));
    let sealed = vault.seal(&active, &owner(ws), &secret).await?;
    let mut tx = mailroom_store::scope::begin(pool, ws).await?;
    let version = i32::try_from(active.context.version).unwrap_or(i32::MAX);
    let stored = erasure::store_key(&mut tx, ws, &sealed, version).await?;
    let opened = hasher(&mut tx, vault, ws, &stored).await?;
    tx.commit().await?;
    Ok(opened)
}

/// What an erasure did.
#[derive(Debug, Clone, Serialize)]
pub struct Erasure {
    /// Sends whose payload named the address, now erased.
    pub sends: usize,
    /// Of those, the waiting ones, now cancelled with reason `erased`.
    pub cancelled: u64,
    /// Events rewritten.
    pub events: u64,
}

/// Erases `address` from the workspace, in one transaction: see `mailroom_store::erasure`.
/// Publishes `contact.erased` naming the sends concerned (never the address), so receivers
/// erase their own copies, and audits the counts. Safe to repeat.
pub async fn erase(
    pool: &PgPool,
    vault: &Vault,
    ws: WorkspaceId,
    address: &str,
    actor: &Actor<'_>,
) -> Result<Erasure, KeyringError> {
    let hasher = ensure(pool, vault, ws).await?;
    let address = normalise(address);
    let hashed = hasher.hash(&address);
    drop(hasher);
    let mut tx = mailroom_store::scope::begin(pool, ws).await?;
    let done = erasure::erase(&mut tx, ws, &erasure::Target { address: &address, hashed: &hashed }).await?;
    let data = serde_json::json!({
        "sends": done.sends.iter().map(|s| SendId::from_uuid(*s)).collect::<Vec<_>>(),
        "cancelled": done.cancelled,
    });
    let event = events::NewEvent { workspace: ws, kind: "contact.erased", send: None, mailbox: None, data };
    events::insert(&mut tx, &event).await?;
    let what = format!("{} sends, {} cancelled, {} events", done.sends.len(), done.cancelled, done.events);
    mailroom_store::audit::record(&mut tx, Some(ws), actor, "contacts.erase", Some(&what)).await?;
    tx.commit().await?;
    tracing::info!(workspace.id = %ws, sends = done.sends.len(), cancelled = done.cancelled, events = done.events,
        "contact erased");
    Ok(Erasure { sends: done.sends.len(), cancelled: done.cancelled, events: done.events })
}
