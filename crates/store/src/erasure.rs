//! Erasing a contact from a workspace's data, and the sealed key of its erased-address hashes.
//!
//! An erasure runs in steps, each its own short transaction, so a large workspace never holds
//! a long lock and a step that loses a deadlock is simply repeated:
//! 1. [`protect`]: the address's keyed hash goes on the suppression list (in place of its
//!    entry, if any) under the workspace's erasure lock. Enqueue holds that lock shared while
//!    it screens and records (`scope::begin_enqueue`), so a send to the address is either
//!    recorded before this step (and found by the next) or refused after it.
//! 2. [`naming_sends`] finds, by a read without locks, every send that names the address;
//!    [`erase_sends`] cancels the waiting ones and replaces their payloads, a chunk at a time.
//! 3. [`naming_events`] then finds the events of those sends and every event that names the
//!    address; [`scrub_events`] rewrites them. It runs after step 2 has committed, so an event a
//!    worker wrote about a send before that send was erased is found here, and one written
//!    after is written without the contact's data (the workers lock the send and look).
//! 4. [`finish`]: the scheduler's sequence ids in `sequence_stops`.
//!
//! "Names the address" means the address appears as a whole: not preceded by a character of a
//! local part nor followed by one of a domain (erasing `jo@acme.test` leaves `bojo@acme.test`
//! alone), in any case (letters are matched by explicit classes, so the database's locale does
//! not matter), with `@` also as `%40` (an address inside a URL). The ledger row stays (id,
//! idempotency key, payload hash, Message-ID, state, timestamps): no request can make the send
//! go out again.

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

impl Target<'_> {
    /// The regular expression of the address as a whole (see the module's documentation).
    pub fn pattern(&self) -> String {
        pattern(self.address)
    }
}

/// The advisory lock that orders an erasure's first step against enqueues, by workspace.
pub(crate) fn lock_key_sql(ws: WorkspaceId) -> String {
    format!("hashtextextended('erasure/{}', 0)", ws.as_uuid())
}

/// Step 1: puts the address's keyed hash on the suppression list in place of its entry, under
/// the workspace's erasure lock (waiting for the enqueues in flight to commit).
pub async fn protect(conn: &mut PgConnection, ws: WorkspaceId, t: &Target<'_>) -> Result<()> {
    let lock = format!("SELECT pg_advisory_xact_lock({})", lock_key_sql(ws));
    sqlx::query(sqlx::AssertSqlSafe(lock)).execute(&mut *conn).await?;
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
    .execute(conn)
    .await?;
    Ok(())
}

/// Step 2a: the sends of the workspace that name the address, in id order (read without locks).
pub async fn naming_sends(conn: &mut PgConnection, ws: WorkspaceId, pattern: &str) -> Result<Vec<uuid::Uuid>> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM sends WHERE workspace_id = $1
           AND (payload::text ~ $2 OR coalesce(metadata::text, '') ~ $2 OR idempotency_key ~ $2
                OR coalesce(sequence, '') ~ $2 OR coalesce(last_response, '') ~ $2
                OR coalesce(failure_reason, '') ~ $2)
         ORDER BY id",
    )
    .bind(ws.as_uuid())
    .bind(pattern)
    .fetch_all(conn)
    .await?)
}

/// What one chunk of step 2 changed.
#[derive(Debug, Clone, Copy, Default)]
pub struct SendsErased {
    /// Sends erased.
    pub sends: u64,
    /// Of those, the waiting ones now cancelled.
    pub cancelled: u64,
}

/// Step 2b: locks `ids` (in id order), cancels the waiting ones (each with `send.cancelled`,
/// reason `erased`), replaces their payloads, keeps the metadata keys that do not name the
/// address and replaces it by its hash in the provider's answers, the failure reasons and the
/// identifiers. A rewritten idempotency key also takes the send's id, so two keys that named
/// the address in two ways (`JO@`, `jo%40`) stay two keys.
pub async fn erase_sends(
    conn: &mut PgConnection,
    ws: WorkspaceId,
    ids: &[uuid::Uuid],
    t: &Target<'_>,
) -> Result<SendsErased> {
    let locked: Vec<uuid::Uuid> =
        sqlx::query_scalar("SELECT id FROM sends WHERE workspace_id = $1 AND id = ANY($2) ORDER BY id FOR UPDATE")
            .bind(ws.as_uuid())
            .bind(ids)
            .fetch_all(&mut *conn)
            .await?;
    let cancelled = cancel_waiting(conn, ws, &locked).await?;
    sqlx::query(
        "UPDATE sends SET payload = '{\"erased\": true}', erased_at = coalesce(erased_at, now()), updated_at = now(),
             metadata = CASE WHEN metadata IS NULL THEN NULL ELSE
                 (SELECT coalesce(jsonb_object_agg(k, v), '{}') FROM jsonb_each(metadata) m(k, v)
                  WHERE (k || ' ' || v::text) !~ $3) END,
             last_response = regexp_replace(last_response, $3, $4, 'g'),
             failure_reason = regexp_replace(failure_reason, $3, $4, 'g'),
             idempotency_key = CASE WHEN idempotency_key ~ $3
                 THEN regexp_replace(idempotency_key, $3, $4, 'g') || '#' || id ELSE idempotency_key END,
             sequence = regexp_replace(sequence, $3, $4, 'g')
         WHERE workspace_id = $1 AND id = ANY($2)",
    )
    .bind(ws.as_uuid())
    .bind(&locked)
    .bind(t.pattern())
    .bind(t.hashed)
    .execute(conn)
    .await?;
    Ok(SendsErased { sends: locked.len() as u64, cancelled })
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
                jsonb_build_object('reason', 'erased', 'message_id', message_id, 'erased', true)
         FROM c",
    )
    .bind(ws.as_uuid())
    .bind(ids)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Step 3a: the events to rewrite: those of `sends` not rewritten yet, and every event that
/// names the address, in id order (read without locks).
pub async fn naming_events(
    conn: &mut PgConnection,
    ws: WorkspaceId,
    sends: &[uuid::Uuid],
    pattern: &str,
) -> Result<Vec<uuid::Uuid>> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM events WHERE workspace_id = $1
           AND ((send_id = ANY($2) AND data->'erased' IS NULL) OR data::text ~ $3)
         ORDER BY id",
    )
    .bind(ws.as_uuid())
    .bind(sends)
    .bind(pattern)
    .fetch_all(conn)
    .await?)
}

/// Step 3b: the events `ids` of the erased `sends` lose what came from a message (its sender,
/// subject, excerpt, a bounce's recipient and diagnostic, a provider's answer); every one of
/// them loses the fields that name the address. Each is marked `"erased": true`.
pub async fn scrub_events(
    conn: &mut PgConnection,
    ws: WorkspaceId,
    ids: &[uuid::Uuid],
    sends: &[uuid::Uuid],
    pattern: &str,
) -> Result<u64> {
    let done = sqlx::query(
        "UPDATE events SET data = (
             SELECT coalesce(jsonb_object_agg(k, v), '{}') FROM jsonb_each(
                 CASE WHEN send_id = ANY($3)
                      THEN data - ARRAY['from', 'subject', 'excerpt', 'recipient', 'diagnostic',
                                        'inbound_message_id', 'response']
                      ELSE data END) d(k, v)
             WHERE (k || ' ' || v::text) !~ $4) || '{\"erased\": true}'
         WHERE workspace_id = $1 AND id = ANY($2)",
    )
    .bind(ws.as_uuid())
    .bind(ids)
    .bind(sends)
    .bind(pattern)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Step 4: the address leaves the scheduler's sequence ids of stopped sequences (a stop
/// recorded meanwhile under the rewritten id is kept), and the suppression list once more: a
/// worker that held one of the sends while step 1 ran may have listed it in plain text
/// (a hard bounce); steps 2 and 3 waited for every such worker to commit.
pub async fn finish(conn: &mut PgConnection, ws: WorkspaceId, t: &Target<'_>) -> Result<()> {
    sqlx::query(
        "WITH old AS (
             DELETE FROM sequence_stops WHERE workspace_id = $1 AND sequence ~ $2
             RETURNING sequence, trigger, created_at)
         INSERT INTO sequence_stops (workspace_id, sequence, trigger, created_at)
         SELECT $1, regexp_replace(sequence, $2, $3, 'g'), trigger, min(created_at) FROM old
         GROUP BY 2, 3
         ON CONFLICT DO NOTHING",
    )
    .bind(ws.as_uuid())
    .bind(t.pattern())
    .bind(t.hashed)
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM suppressions WHERE workspace_id = $1 AND address = $2")
        .bind(ws.as_uuid())
        .bind(t.address)
        .execute(conn)
        .await?;
    Ok(())
}

/// A PostgreSQL regular expression matching `address` as a whole, in any case: each letter as
/// the class of its cases, `@` also as `%40`, every other sign escaped; not preceded by a
/// character of a local part, not followed by one of a domain (a dot followed by a letter or
/// digit continues the domain; a dot ending a sentence does not).
///
/// The texts searched are JSON as PostgreSQL prints it and may be URL-encoded, so an escape
/// just before the address (`\n`, `\u00a0`, `%3C`) also bounds it. The local-part characters
/// that commonly delimit an address in text (quotes, `*`, backquote, braces, `|`, `/`, `=`, `?`,
/// `&`) bound it too: erasing `brien@x.test` also takes `o'brien@x.test`, which errs on the
/// side of the erasure. Letters whose other case is more than one character (`ß`) match only
/// as written; addresses are normalised to lower case before they get here.
fn pattern(address: &str) -> String {
    let mut p =
        String::from(r"(?:(?<![[:alnum:]._%+~#!$^-])|(?<=\\[nrtbf])|(?<=\\u[0-9a-fA-F]{4})|(?<=%[0-9a-fA-F]{2}))");
    for c in address.chars() {
        let cases: String = c.to_lowercase().chain(c.to_uppercase()).filter(|x| *x != c).collect();
        match c {
            '@' => p.push_str("(?:@|%40)"),
            c if c.is_alphanumeric() && cases.chars().count() == 1 => {
                p.push('[');
                p.push(c);
                p.push_str(&cases);
                p.push(']');
            }
            c if c.is_alphanumeric() => p.push(c),
            c => {
                p.push('\\');
                p.push(c);
            }
        }
    }
    p.push_str(r"(?![[:alnum:]_-]|\.[[:alnum:]])");
    p
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_pattern_escapes_signs_folds_case_and_bounds_the_address() {
        assert_eq!(
            super::pattern("a.b+1@x-ö.t"),
            r"(?:(?<![[:alnum:]._%+~#!$^-])|(?<=\\[nrtbf])|(?<=\\u[0-9a-fA-F]{4})|(?<=%[0-9a-fA-F]{2}))[aA]\.[bB]\+1(?:@|%40)[xX]\-[öÖ]\.[tT](?![[:alnum:]_-]|\.[[:alnum:]])"
        );
    }
}
