//! A mailbox's state as its owner sets it (paused by hand, resumed), and the workspace's list
//! of mailboxes.
//!
//! A paused mailbox sends nothing: the send worker parks each of its sends as it comes due
//! (waiting with no due time, no attempt spent), exactly as for a mailbox that needs
//! re-authentication, and resuming queues the parked sends again in the order they were
//! accepted. Replies keep being read while it is paused, so a lead's answer still stops its
//! sequence.

use mailroom_domain::{MailboxId, WorkspaceId};
use sqlx::PgConnection;

use crate::{Result, events, mailboxes, mailboxes::MailboxRow, unusable};

/// What a pause or a resume did.
#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    /// The mailbox changed state (with the sends a resume queued again).
    Done {
        /// Parked sends queued again (0 for a pause).
        resumed: u64,
    },
    /// It already was in the asked state: nothing changed.
    Already,
    /// Its status forbids it (`needs_reauth`, `unusable`, `disconnected`): named.
    Refused(String),
}

/// Pauses an active mailbox by hand, with its `mailbox.paused` event. `None` when the workspace
/// has no such mailbox.
pub async fn pause(conn: &mut PgConnection, ws: WorkspaceId, id: MailboxId, reason: &str) -> Result<Option<Change>> {
    let Some(m) = mailboxes::lock(conn, ws, id).await? else { return Ok(None) };
    match m.status.as_str() {
        "paused" => return Ok(Some(Change::Already)),
        "active" => {}
        other => return Ok(Some(Change::Refused(other.to_owned()))),
    }
    set(conn, ws, id, "paused", Some(reason)).await?;
    let data = serde_json::json!({ "reason": reason });
    let e = events::NewEvent { workspace: ws, kind: "mailbox.paused", send: None, mailbox: Some(id), data };
    events::insert(conn, &e).await?;
    Ok(Some(Change::Done { resumed: 0 }))
}

/// Resumes a mailbox paused by hand: active again, its parked sends queued in their original
/// order, with a `mailbox.resumed` event. `None` when the workspace has no such mailbox.
pub async fn resume(conn: &mut PgConnection, ws: WorkspaceId, id: MailboxId) -> Result<Option<Change>> {
    let Some(m) = mailboxes::lock(conn, ws, id).await? else { return Ok(None) };
    match m.status.as_str() {
        "active" => return Ok(Some(Change::Already)),
        "paused" => {}
        other => return Ok(Some(Change::Refused(other.to_owned()))),
    }
    set(conn, ws, id, "active", None).await?;
    let resumed = unusable::resume_parked(conn, ws, id).await?;
    let data = serde_json::json!({ "resumed_sends": resumed });
    let e = events::NewEvent { workspace: ws, kind: "mailbox.resumed", send: None, mailbox: Some(id), data };
    events::insert(conn, &e).await?;
    Ok(Some(Change::Done { resumed }))
}

async fn set(
    conn: &mut PgConnection,
    ws: WorkspaceId,
    id: MailboxId,
    status: &str,
    reason: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "UPDATE mailboxes SET status = $3, status_reason = $4, updated_at = now() WHERE workspace_id = $1 AND id = $2",
    )
    .bind(ws.as_uuid())
    .bind(id.as_uuid())
    .bind(status)
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(())
}

/// The `mailbox.connected` event of a new mailbox, written with it: the scheduler learns of
/// every mailbox it can send from, however it was connected.
pub async fn connected(conn: &mut PgConnection, m: &MailboxRow) -> Result<()> {
    let (ws, id) = (WorkspaceId::from_uuid(m.workspace_id), MailboxId::from_uuid(m.id));
    let provider = m.oauth_provider.as_deref().unwrap_or("password");
    let data = serde_json::json!({ "from_address": m.from_address, "provider": provider, "transport": m.transport });
    let e = events::NewEvent { workspace: ws, kind: "mailbox.connected", send: None, mailbox: Some(id), data };
    events::insert(conn, &e).await?;
    Ok(())
}

/// Which mailboxes a listing asks for.
#[derive(Debug, Default)]
pub struct ListFilter<'a> {
    /// Only this status.
    pub status: Option<&'a str>,
    /// Only this provider: `google`, `microsoft`, or `password` for SMTP/IMAP logins.
    pub provider: Option<&'a str>,
    /// After this mailbox (the previous page's last).
    pub after: Option<MailboxId>,
}

/// A page of the workspace's mailboxes, oldest first (ids are time-ordered), through the
/// `(workspace_id, id)` index.
pub async fn list(conn: &mut PgConnection, ws: WorkspaceId, f: &ListFilter<'_>, limit: i64) -> Result<Vec<MailboxRow>> {
    Ok(sqlx::query_as(
        "SELECT * FROM mailboxes
         WHERE workspace_id = $1 AND ($2::text IS NULL OR status = $2)
           AND ($3::text IS NULL OR COALESCE(oauth_provider, 'password') = $3)
           AND ($4::uuid IS NULL OR id > $4)
         ORDER BY id LIMIT $5",
    )
    .bind(ws.as_uuid())
    .bind(f.status)
    .bind(f.provider)
    .bind(f.after.map(|a| a.as_uuid()))
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// Replaces a mailbox's sealed credentials with newly verified ones (the fields given; the
/// others stay), under the mailbox row's lock so a concurrent disconnect either comes first
/// (and this refuses) or after (and destroys these). A mailbox that needed re-authentication
/// or was unusable is active again, its parked sends queued in the order they were accepted; a
/// paused one stays paused. With a `mailbox.reconnected` event. `None` when the workspace has
/// no such mailbox.
pub async fn reconnect(
    conn: &mut PgConnection,
    ws: WorkspaceId,
    id: MailboxId,
    secrets: &[mailboxes::SealedSecret<'_>],
) -> Result<Option<Change>> {
    let Some(m) = mailboxes::lock(conn, ws, id).await? else { return Ok(None) };
    if m.status == "disconnected" {
        return Ok(Some(Change::Refused(m.status)));
    }
    let fields: Vec<&str> = secrets.iter().map(|s| s.field).collect();
    sqlx::query("DELETE FROM mailbox_secrets WHERE workspace_id = $1 AND mailbox_id = $2 AND field = ANY($3)")
        .bind(ws.as_uuid())
        .bind(id.as_uuid())
        .bind(&fields)
        .execute(&mut *conn)
        .await?;
    for s in secrets {
        sqlx::query(
            "INSERT INTO mailbox_secrets (workspace_id, mailbox_id, field, sealed, key_version) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(ws.as_uuid())
        .bind(id.as_uuid())
        .bind(s.field)
        .bind(s.sealed)
        .bind(s.key_version)
        .execute(&mut *conn)
        .await?;
    }
    let revived = matches!(m.status.as_str(), "needs_reauth" | "unusable");
    let resumed = if revived {
        set(conn, ws, id, "active", None).await?;
        unusable::resume_parked(conn, ws, id).await?
    } else {
        0
    };
    let data = serde_json::json!({ "fields": fields, "previous_status": m.status, "resumed_sends": resumed });
    let e = events::NewEvent { workspace: ws, kind: "mailbox.reconnected", send: None, mailbox: Some(id), data };
    events::insert(conn, &e).await?;
    Ok(Some(Change::Done { resumed }))
}
