//! Erasing a contact from a workspace's data, and the sealed key of its erased-address hashes.
//!
//! What names the address is found by text: a send names it when its payload (recipients,
//! headers, subject, bodies) or its metadata contains it, an event when its data does. The
//! ledger row stays (id, idempotency key, payload hash, Message-ID, state, timestamps), so no
//! request can make the send go out again. Each statement reads the workspace's sends or
//! events once (the workspace's index, then a filter): erasure is rare and must be complete.

use mailroom_domain::WorkspaceId;
use sqlx::PgConnection;

use crate::Result;

/// The workspace's erasure-hash key, sealed, if it has one.
pub async fn key(conn: &mut PgConnection, ws: WorkspaceId) -> Result<Option<Vec<u8>>> {
    Ok(sqlx::query_scalar("SELECT sealed FROM workspace_secrets WHERE workspace_id = $1 AND name = 'erasure'")
        .bind(ws.as_uuid())
        .fetch_optional(conn)
        .await?)
}

/// Stores `sealed` as the workspace's key unless it has one already; returns the stored key
/// (the first writer's, when two erasures race to create it).
pub async fn store_key(conn: &mut PgConnection, ws: WorkspaceId, sealed: &[u8], version: i32) -> Result<Vec<u8>> {
    sqlx::query(
        "INSERT INTO workspace_secrets (workspace_id, name, sealed, key_version) VALUES ($1, 'erasure', $2, $3)
         ON CONFLICT DO NOTHING",
    )
    .bind(ws.as_uuid())
    .bind(sealed)
    .bind(version)
    .execute(&mut *conn)
    .await?;
    Ok(key(conn, ws).await?.unwrap_or_else(|| sealed.to_vec()))
}

/// A workspace secret, for re-sealing.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SecretRow {
    /// Its workspace.
    pub workspace_id: uuid::Uuid,
    /// Its name (`erasure`).
    pub name: String,
    /// The sealed value.
    pub sealed: Vec<u8>,
    /// The key version it is sealed under.
    pub key_version: i32,
}

/// Workspace secrets sealed under another version than their workspace's active key.
pub async fn stale_keys(conn: &mut PgConnection, limit: i64) -> Result<Vec<SecretRow>> {
    Ok(sqlx::query_as(
        "SELECT s.workspace_id, s.name, s.sealed, s.key_version FROM workspace_secrets s
         JOIN workspace_keys k ON k.workspace_id = s.workspace_id AND k.state = 'active'
         WHERE s.key_version <> k.version LIMIT $1",
    )
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// Replaces a secret's sealing if it is still `old` (compare-and-swap).
pub async fn reseal_key(conn: &mut PgConnection, old: &SecretRow, sealed: &[u8], version: i32) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE workspace_secrets SET sealed = $4, key_version = $5
         WHERE workspace_id = $1 AND name = $2 AND sealed = $3",
    )
    .bind(old.workspace_id)
    .bind(&old.name)
    .bind(&old.sealed)
    .bind(sealed)
    .bind(version)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// An address to erase, in the forms the statements need.
pub struct Target<'a> {
    /// The address, normalised (lower case).
    pub address: &'a str,
    /// Its keyed hash (`erased:<hex>`): what the suppression list keeps, and what replaces the
    /// address inside the scheduler's own identifiers (idempotency keys, sequence ids).
    pub hashed: &'a str,
}

/// What an erasure changed.
#[derive(Debug, Clone, Default)]
pub struct Erased {
    /// The sends whose payload named the address (erased now).
    pub sends: Vec<uuid::Uuid>,
    /// Of those, the ones that were waiting and are now cancelled (reason `erased`).
    pub cancelled: u64,
    /// Events whose data was rewritten.
    pub events: u64,
}

/// Erases `t` from the workspace in the caller's transaction: cancels its waiting sends
/// (each with `send.cancelled`, reason `erased`), replaces the payload of every send that
/// names it, takes it out of those sends' metadata, responses and identifiers, rewrites the
/// events that name it, and replaces its suppression entry (if any) by its keyed hash.
pub async fn erase(conn: &mut PgConnection, ws: WorkspaceId, t: &Target<'_>) -> Result<Erased> {
    let sends: Vec<uuid::Uuid> = sqlx::query_scalar(
        "SELECT id FROM sends WHERE workspace_id = $1
           AND (strpos(lower(payload::text), $2) > 0 OR strpos(lower(coalesce(metadata::text, '')), $2) > 0
                OR strpos(lower(idempotency_key || ' ' || coalesce(sequence, '')), $2) > 0)
         ORDER BY id FOR UPDATE",
    )
    .bind(ws.as_uuid())
    .bind(t.address)
    .fetch_all(&mut *conn)
    .await?;
    let cancelled = cancel_waiting(conn, ws, &sends).await?;
    scrub_sends(conn, ws, &sends, t).await?;
    let events = scrub_events(conn, ws, &sends, t.address).await?;
    sqlx::query("DELETE FROM suppressions WHERE workspace_id = $1 AND address = $2")
        .bind(ws.as_uuid())
        .bind(t.address)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO suppressions (workspace_id, address, kind, reason) VALUES ($1, $2, 'erased', 'erased on request')
         ON CONFLICT DO NOTHING",
    )
    .bind(ws.as_uuid())
    .bind(t.hashed)
    .execute(&mut *conn)
    .await?;
    Ok(Erased { sends, cancelled, events })
}

/// Cancels the waiting sends among `ids`, each with its event. A send a worker holds is left
/// to finish; its payload is erased with the rest, so it never goes out again after that.
async fn cancel_waiting(conn: &mut PgConnection, ws: WorkspaceId, ids: &[uuid::Uuid]) -> Result<u64> {
    let done = sqlx::query(
        "WITH c AS (
             UPDATE sends SET state = 'cancelled', failure_reason = 'erased', next_attempt_at = NULL,
                 finished_at = now(), updated_at = now()
             WHERE workspace_id = $1 AND id = ANY($2) AND state IN ('queued', 'retry_wait') AND reconcile_reason IS NULL
             RETURNING id, workspace_id, mailbox_id, message_id)
         INSERT INTO events (id, workspace_id, kind, send_id, mailbox_id, data)
         SELECT gen_random_uuid(), workspace_id, 'send.cancelled', id, mailbox_id,
                jsonb_build_object('reason', 'erased', 'message_id', message_id)
         FROM c",
    )
    .bind(ws.as_uuid())
    .bind(ids)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Replaces the payloads; keeps the metadata keys that do not name the address; replaces the
/// address by its hash in the provider's answers, the failure reasons and the identifiers.
async fn scrub_sends(conn: &mut PgConnection, ws: WorkspaceId, ids: &[uuid::Uuid], t: &Target<'_>) -> Result<()> {
    sqlx::query(
        "UPDATE sends SET payload = '{\"erased\": true}', erased_at = now(), updated_at = now(),
             metadata = CASE WHEN metadata IS NULL THEN NULL ELSE
                 (SELECT coalesce(jsonb_object_agg(k, v), '{}') FROM jsonb_each(metadata) m(k, v)
                  WHERE strpos(lower(k || v::text), $3) = 0) END,
             last_response = regexp_replace(last_response, $4, $5, 'gi'),
             failure_reason = regexp_replace(failure_reason, $4, $5, 'gi'),
             idempotency_key = regexp_replace(idempotency_key, $4, $5, 'gi'),
             sequence = regexp_replace(sequence, $4, $5, 'gi')
         WHERE workspace_id = $1 AND id = ANY($2)",
    )
    .bind(ws.as_uuid())
    .bind(ids)
    .bind(t.address)
    .bind(pattern(t.address))
    .bind(t.hashed)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE sequence_stops SET sequence = regexp_replace(sequence, $2, $3, 'gi')
                 WHERE workspace_id = $1 AND strpos(lower(sequence), $4) > 0",
    )
    .bind(ws.as_uuid())
    .bind(pattern(t.address))
    .bind(t.hashed)
    .bind(t.address)
    .execute(conn)
    .await?;
    Ok(())
}

/// The events of the erased sends lose what came from a message (its sender, subject,
/// excerpt, a bounce's recipient and diagnostic); every event that names the address loses
/// the fields that do. Each is marked `"erased": true`.
async fn scrub_events(conn: &mut PgConnection, ws: WorkspaceId, ids: &[uuid::Uuid], address: &str) -> Result<u64> {
    let done = sqlx::query(
        "UPDATE events SET data = (
             SELECT coalesce(jsonb_object_agg(k, v), '{}') FROM jsonb_each(
                 CASE WHEN send_id = ANY($2)
                      THEN data - ARRAY['from', 'subject', 'excerpt', 'recipient', 'diagnostic', 'inbound_message_id']
                      ELSE data END) d(k, v)
             WHERE strpos(lower(k || v::text), $3) = 0) || '{\"erased\": true}'
         WHERE workspace_id = $1 AND (send_id = ANY($2) OR strpos(lower(data::text), $3) > 0)",
    )
    .bind(ws.as_uuid())
    .bind(ids)
    .bind(address)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// A PostgreSQL regular expression matching `address` literally (every character that is not
/// a letter or a digit escaped).
fn pattern(address: &str) -> String {
    let mut p = String::with_capacity(address.len() * 2);
    for c in address.chars() {
        if !c.is_alphanumeric() {
            p.push('\\');
        }
        p.push(c);
    }
    p
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_pattern_escapes_every_sign() {
        assert_eq!(super::pattern("a.b+c@x-y.test"), r"a\.b\+c\@x\-y\.test");
    }
}
