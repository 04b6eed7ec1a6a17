//! Reply detection's state: a cursor per mailbox (claimed by one worker at a time through a
//! lease), and the inbound messages already seen (so each yields at most one event).

use chrono::{DateTime, Utc};
use mailroom_domain::{MailboxId, WorkspaceId};
use sqlx::PgConnection;

use crate::Result;

/// A mailbox's IMAP cursor, claimed for one check.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CursorRow {
    /// The workspace.
    pub workspace_id: uuid::Uuid,
    /// The mailbox.
    pub mailbox_id: uuid::Uuid,
    /// `imap`, `gmail` or `graph`.
    pub source: String,
    /// Gmail: the `historyId` read up to.
    pub history_id: Option<String>,
    /// Graph: the delta (or next-page) link to read from.
    pub delta_link: Option<String>,
    /// `UIDVALIDITY` at the last look (none: never looked).
    pub uidvalidity: Option<i64>,
    /// The highest UID read.
    pub last_uid: i64,
    /// When the last look finished.
    pub checked_at: Option<DateTime<Utc>>,
}

/// Gives every active mailbox a cursor for the source it is read through (IMAP when it has
/// IMAP access, OAuth mailboxes sending over SMTP included; the Gmail API or Microsoft Graph for
/// mailboxes on the API transport), due now. Returns how many were added.
pub async fn ensure_cursors(conn: &mut PgConnection) -> Result<u64> {
    let done = sqlx::query(
        "INSERT INTO mailbox_cursors (workspace_id, mailbox_id, source)
         SELECT m.workspace_id, m.id,
                CASE WHEN m.imap_host IS NOT NULL THEN 'imap' WHEN m.oauth_provider = 'google' THEN 'gmail' ELSE 'graph' END
         FROM mailboxes m
         WHERE m.status IN ('active', 'paused')
           AND (m.imap_host IS NOT NULL OR (m.oauth_provider IN ('google', 'microsoft') AND m.transport = 'api'))
         ON CONFLICT DO NOTHING",
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Claims up to `limit` due cursors of active mailboxes for `worker` for `lease_secs`. Two
/// workers never hold one mailbox: a claim skips rows locked by another and leases unexpired.
pub async fn claim_due(conn: &mut PgConnection, worker: &str, lease_secs: f64, limit: i64) -> Result<Vec<CursorRow>> {
    Ok(sqlx::query_as(
        "UPDATE mailbox_cursors c SET locked_by = $1, lease_until = now() + make_interval(secs => $2)
         WHERE (c.mailbox_id, c.source) IN (
             SELECT d.mailbox_id, d.source FROM mailbox_cursors d
             JOIN mailboxes m ON m.workspace_id = d.workspace_id AND m.id = d.mailbox_id AND m.status IN ('active', 'paused')
             WHERE d.next_check_at <= now() AND (d.lease_until IS NULL OR d.lease_until < now())
             ORDER BY d.next_check_at LIMIT $3
             FOR UPDATE OF d SKIP LOCKED)
         RETURNING c.workspace_id, c.mailbox_id, c.source, c.history_id, c.delta_link, c.uidvalidity, c.last_uid, c.checked_at",
    )
    .bind(worker)
    .bind(lease_secs)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// What a finished check stores.
pub struct CheckDone<'a> {
    /// The new `UIDVALIDITY` and last UID (unchanged after a failure).
    pub uidvalidity: Option<i64>,
    /// The new last UID.
    pub last_uid: i64,
    /// Gmail: the new `historyId`.
    pub history_id: Option<&'a str>,
    /// Graph: the link to read from next.
    pub delta_link: Option<&'a str>,
    /// When to look next.
    pub next_check_at: DateTime<Utc>,
    /// Why the check failed, if it did.
    pub error: Option<&'a str>,
}

/// Stores a check's cursor and releases the claim, if `worker` still holds it.
pub async fn finish_check(
    conn: &mut PgConnection,
    ws: WorkspaceId,
    mbx: MailboxId,
    worker: &str,
    done: &CheckDone<'_>,
) -> Result<bool> {
    let updated = sqlx::query(
        "UPDATE mailbox_cursors SET uidvalidity = $4, last_uid = $5, next_check_at = $6, last_error = $7,
            history_id = $8, delta_link = $9, checked_at = CASE WHEN $7::text IS NULL THEN now() ELSE checked_at END,
            locked_by = NULL, lease_until = NULL
         WHERE workspace_id = $1 AND mailbox_id = $2 AND locked_by = $3",
    )
    .bind(ws.as_uuid())
    .bind(mbx.as_uuid())
    .bind(worker)
    .bind(done.uidvalidity)
    .bind(done.last_uid)
    .bind(done.next_check_at)
    .bind(done.error)
    .bind(done.history_id)
    .bind(done.delta_link)
    .execute(conn)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// Makes a mailbox's IMAP cursor due now (its IDLE session announced new mail). Returns
/// whether it was waiting.
pub async fn check_now(conn: &mut PgConnection, ws: WorkspaceId, mbx: MailboxId) -> Result<bool> {
    let updated = sqlx::query(
        "UPDATE mailbox_cursors SET next_check_at = now()
         WHERE workspace_id = $1 AND mailbox_id = $2 AND source = 'imap' AND next_check_at > now()",
    )
    .bind(ws.as_uuid())
    .bind(mbx.as_uuid())
    .execute(conn)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// Records an inbound message as seen. Returns true only the first time: the caller writes
/// its event in the same transaction, and only then.
pub async fn first_sighting(
    conn: &mut PgConnection,
    ws: WorkspaceId,
    mbx: MailboxId,
    dedupe_key: &str,
    send: Option<uuid::Uuid>,
    kind: &str,
) -> Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO inbound_messages (workspace_id, mailbox_id, dedupe_key, send_id, kind)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(ws.as_uuid())
    .bind(mbx.as_uuid())
    .bind(dedupe_key)
    .bind(send)
    .bind(kind)
    .execute(conn)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// A send of the workspace matched by one of `message_ids` (with angle brackets).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MatchedSend {
    /// The send.
    pub id: uuid::Uuid,
    /// Its mailbox.
    pub mailbox_id: uuid::Uuid,
    /// Its Message-ID.
    pub message_id: String,
    /// The scheduler's metadata.
    pub metadata: Option<serde_json::Value>,
    /// Its sequence, if it has one.
    pub sequence: Option<String>,
    /// Whether its recipient was erased.
    pub erased: bool,
}

/// The workspace's sends with any of these Message-IDs (never another workspace's), locked
/// against an erasure until the transaction ends (the `sends_answered` function).
pub async fn sends_by_message_id(conn: &mut PgConnection, ws: WorkspaceId, ids: &[String]) -> Result<Vec<MatchedSend>> {
    Ok(sqlx::query_as("SELECT id, mailbox_id, message_id, metadata, sequence, erased FROM sends_answered($1, $2)")
        .bind(ws.as_uuid())
        .bind(ids)
        .fetch_all(conn)
        .await?)
}
