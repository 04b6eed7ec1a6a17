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
    /// Sends that named the address, now erased.
    pub sends: u64,
    /// Of those, the waiting ones, now cancelled with reason `erased`.
    pub cancelled: u64,
    /// Events rewritten.
    pub events: u64,
}

/// Sends or events changed per transaction: each step holds its row locks briefly.
const CHUNK: usize = 500;
/// Runs of one step after it lost a deadlock to a worker, before the erasure fails.
const TRIES: u32 = 5;

/// Runs one step (`$run`, given the transaction as `$c`) in its own transaction in `$ws`, again
/// when it loses a deadlock to a worker. (A macro: a generic async closure would make the
/// future lose `Send` to a higher-ranked lifetime.)
macro_rules! step {
    ($pool:expr, $ws:expr, |$c:ident| $run:expr) => {{
        let mut tried = 0;
        loop {
            tried += 1;
            let mut tx = mailroom_store::scope::begin($pool, $ws).await?;
            let $c: &mut PgConnection = &mut tx;
            match $run {
                Ok(v) => {
                    tx.commit().await?;
                    break v;
                }
                Err(e) if e.is_retryable() && tried < TRIES => {
                    tracing::info!(workspace.id = %$ws, tried, "an erasure step lost a deadlock; running it again");
                    drop(tx);
                    tokio::time::sleep(std::time::Duration::from_millis(50 * u64::from(tried))).await;
                }
                Err(e) => return Err(KeyringError::from(e)),
            }
        }
    }};
}

/// The last step: the sequence ids, `contact.erased` and the audit row.
async fn finish(
    c: &mut PgConnection,
    ws: WorkspaceId,
    t: &erasure::Target<'_>,
    ids: &[SendId],
    done: &Erasure,
    actor: &Actor<'_>,
    what: &str,
) -> mailroom_store::Result<()> {
    erasure::finish(c, ws, t).await?;
    let data = serde_json::json!({ "sends": ids, "cancelled": done.cancelled });
    let event = events::NewEvent { workspace: ws, kind: "contact.erased", send: None, mailbox: None, data };
    events::insert(c, &event).await?;
    mailroom_store::audit::record(c, Some(ws), actor, "contacts.erase", Some(what)).await
}

/// Erases `address` from the workspace in the steps of `mailroom_store::erasure`: from the
/// first, the address is never mailed again; the rest find and rewrite what names it, a chunk
/// at a time. Publishes `contact.erased` naming the sends concerned (never the address), so
/// receivers erase their own copies, and audits the counts. Safe to repeat, also after a
/// failure part-way (a repeat finds what is left).
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
    let t = erasure::Target { address: &address, hashed: &hashed };
    let pattern = t.pattern();
    step!(pool, ws, |c| erasure::protect(c, ws, &t).await);
    let sends = step!(pool, ws, |c| erasure::naming_sends(c, ws, &pattern).await);
    let mut done = Erasure { sends: 0, cancelled: 0, events: 0 };
    for chunk in sends.chunks(CHUNK) {
        let erased = step!(pool, ws, |c| erasure::erase_sends(c, ws, chunk, &t).await);
        done.sends += erased.sends;
        done.cancelled += erased.cancelled;
    }
    let events = step!(pool, ws, |c| erasure::naming_events(c, ws, &sends, &pattern).await);
    for chunk in events.chunks(CHUNK) {
        done.events += step!(pool, ws, |c| erasure::scrub_events(c, ws, chunk, &sends, &pattern).await);
    }
    let ids: Vec<SendId> = sends.iter().map(|s| SendId::from_uuid(*s)).collect();
    let what = format!("{} sends, {} cancelled, {} events", done.sends, done.cancelled, done.events);
    step!(pool, ws, |c| finish(c, ws, &t, &ids, &done, actor, &what).await);
    tracing::info!(workspace.id = %ws, sends = done.sends, cancelled = done.cancelled, events = done.events,
        "contact erased");
    Ok(done)
}
