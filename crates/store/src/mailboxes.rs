//! Connected mailboxes, their sealed secrets and their readiness (pause, re-auth).

use chrono::{DateTime, Utc};
use mailroom_domain::{MailboxId, WorkspaceId};
use sqlx::PgConnection;

use crate::Result;

/// A mailbox as stored (no secrets: those live in `mailbox_secrets`).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MailboxRow {
    /// The mailbox.
    pub id: uuid::Uuid,
    /// Its workspace.
    pub workspace_id: uuid::Uuid,
    /// The address mail is sent from.
    pub from_address: String,
    /// The display name, if any.
    pub from_name: Option<String>,
    /// SMTP server host.
    pub smtp_host: String,
    /// SMTP server port.
    pub smtp_port: i32,
    /// `starttls` or `implicit`.
    pub smtp_tls: String,
    /// SMTP login.
    pub smtp_username: String,
    /// IMAP server host, if configured.
    pub imap_host: Option<String>,
    /// IMAP server port.
    pub imap_port: Option<i32>,
    /// `starttls`, `implicit` or `none`.
    pub imap_tls: Option<String>,
    /// IMAP login.
    pub imap_username: Option<String>,
    /// `active`, `needs_reauth`, `disabled`, `unusable` or `disconnected`.
    pub status: String,
    /// Why it is not `active`.
    pub status_reason: Option<String>,
    /// No sends before this instant.
    pub paused_until: Option<DateTime<Utc>>,
    /// Why it is paused.
    pub pause_reason: Option<String>,
    /// Consecutive throttle answers (drives the pause length when no hint is given).
    pub throttle_count: i32,
    /// Who files sent mail in Sent: `provider`, `append` (the engine) or `none`.
    pub sent_copy: String,
    /// The IMAP folder holding sent mail.
    pub sent_folder: String,
    /// Pacing: most sends per rolling 24 h.
    pub daily_cap: Option<i32>,
    /// Pacing: least gap between sends, in milliseconds.
    pub min_gap_ms: i32,
    /// Pacing: random extra gap, up to this many milliseconds.
    pub jitter_ms: i32,
    /// Pacing: send window start (local time).
    pub window_start: Option<chrono::NaiveTime>,
    /// Pacing: send window end (local time).
    pub window_end: Option<chrono::NaiveTime>,
    /// Pacing: the window's IANA time zone.
    pub time_zone: String,
    /// Pacing: most attempts in flight at once.
    pub max_sessions: i32,
    /// When it was connected.
    pub created_at: DateTime<Utc>,
    /// `password` (SMTP/IMAP) or `oauth`.
    pub auth_kind: String,
    /// `google` or `microsoft` for OAuth mailboxes.
    pub oauth_provider: Option<String>,
    /// `smtp` or `api` (the Gmail API or Microsoft Graph).
    pub transport: String,
    /// The scopes the provider granted.
    pub oauth_scopes: Option<Vec<String>>,
    /// When the sealed access token expires.
    pub token_expires_at: Option<DateTime<Utc>>,
}

/// A sealed secret to store with a mailbox.
pub struct SealedSecret<'a> {
    /// The field name (`smtp_password`, ...).
    pub field: &'a str,
    /// The sealed bytes.
    pub sealed: &'a [u8],
    /// The workspace-key version it is sealed under.
    pub key_version: i32,
}

/// The workspace's mailbox that sends as `address` (in any case) and is not disconnected, if
/// any. Takes a lock on the pair (workspace, address) until the transaction ends, so two
/// connects of one address cannot both find none and both insert.
pub async fn holder(conn: &mut PgConnection, ws: WorkspaceId, address: &str) -> Result<Option<uuid::Uuid>> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1::text || '/' || lower($2), 0))")
        .bind(ws.as_uuid())
        .bind(address)
        .execute(&mut *conn)
        .await?;
    Ok(sqlx::query_scalar(
        "SELECT id FROM mailboxes WHERE workspace_id = $1 AND lower(from_address) = lower($2) AND status <> 'disconnected'
         ORDER BY created_at LIMIT 1",
    )
    .bind(ws.as_uuid())
    .bind(address)
    .fetch_optional(conn)
    .await?)
}

/// Stores a mailbox and its sealed secrets.
pub async fn insert(conn: &mut PgConnection, m: &MailboxRow, secrets: &[SealedSecret<'_>]) -> Result<()> {
    sqlx::query(
        "INSERT INTO mailboxes (id, workspace_id, from_address, from_name, smtp_host, smtp_port, smtp_tls,
            smtp_username, imap_host, imap_port, imap_tls, imap_username, sent_copy, sent_folder,
            daily_cap, min_gap_ms, jitter_ms, window_start, window_end, time_zone, max_sessions,
            auth_kind, oauth_provider, transport, oauth_scopes, token_expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21,
            $22, $23, $24, $25, $26)",
    )
    .bind(m.id)
    .bind(m.workspace_id)
    .bind(&m.from_address)
    .bind(&m.from_name)
    .bind(&m.smtp_host)
    .bind(m.smtp_port)
    .bind(&m.smtp_tls)
    .bind(&m.smtp_username)
    .bind(&m.imap_host)
    .bind(m.imap_port)
    .bind(&m.imap_tls)
    .bind(&m.imap_username)
    .bind(&m.sent_copy)
    .bind(&m.sent_folder)
    .bind(m.daily_cap)
    .bind(m.min_gap_ms)
    .bind(m.jitter_ms)
    .bind(m.window_start)
    .bind(m.window_end)
    .bind(&m.time_zone)
    .bind(m.max_sessions)
    .bind(&m.auth_kind)
    .bind(&m.oauth_provider)
    .bind(&m.transport)
    .bind(&m.oauth_scopes)
    .bind(m.token_expires_at)
    .execute(&mut *conn)
    .await?;
    for s in secrets {
        sqlx::query(
            "INSERT INTO mailbox_secrets (workspace_id, mailbox_id, field, sealed, key_version) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(m.workspace_id)
        .bind(m.id)
        .bind(s.field)
        .bind(s.sealed)
        .bind(s.key_version)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// A mailbox of the given workspace (another workspace's id finds nothing).
pub async fn get(conn: &mut PgConnection, ws: WorkspaceId, id: MailboxId) -> Result<Option<MailboxRow>> {
    Ok(sqlx::query_as("SELECT * FROM mailboxes WHERE workspace_id = $1 AND id = $2")
        .bind(ws.as_uuid())
        .bind(id.as_uuid())
        .fetch_optional(conn)
        .await?)
}

/// A sealed secret and the key version it names.
pub async fn secret(
    conn: &mut PgConnection,
    ws: WorkspaceId,
    id: MailboxId,
    field: &str,
) -> Result<Option<(Vec<u8>, i32)>> {
    Ok(sqlx::query_as(
        "SELECT sealed, key_version FROM mailbox_secrets WHERE workspace_id = $1 AND mailbox_id = $2 AND field = $3",
    )
    .bind(ws.as_uuid())
    .bind(id.as_uuid())
    .bind(field)
    .fetch_optional(conn)
    .await?)
}

/// Pauses a mailbox until `until` (never shortening a longer pause already in force) and
/// counts the throttle. Returns the pause in force afterwards.
pub async fn pause(
    conn: &mut PgConnection,
    ws: WorkspaceId,
    id: MailboxId,
    until: DateTime<Utc>,
    reason: &str,
) -> Result<DateTime<Utc>> {
    Ok(sqlx::query_scalar(
        "UPDATE mailboxes SET paused_until = GREATEST(COALESCE(paused_until, $3), $3), pause_reason = $4,
            throttle_count = throttle_count + 1, updated_at = now()
         WHERE workspace_id = $1 AND id = $2 RETURNING paused_until",
    )
    .bind(ws.as_uuid())
    .bind(id.as_uuid())
    .bind(until)
    .bind(reason)
    .fetch_one(conn)
    .await?)
}

/// Clears the throttle counter after a successful send (writes only when it was set).
pub async fn clear_throttle(conn: &mut PgConnection, ws: WorkspaceId, id: MailboxId) -> Result<()> {
    sqlx::query("UPDATE mailboxes SET throttle_count = 0 WHERE workspace_id = $1 AND id = $2 AND throttle_count > 0")
        .bind(ws.as_uuid())
        .bind(id.as_uuid())
        .execute(conn)
        .await?;
    Ok(())
}

/// Marks a mailbox as needing re-authentication, with its `mailbox.needs_reauth` event in the
/// same transaction. Returns whether it changed (so the event is written once, not once per
/// waiting send or per worker that noticed).
pub async fn mark_needs_reauth(conn: &mut PgConnection, ws: WorkspaceId, id: MailboxId, reason: &str) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE mailboxes SET status = 'needs_reauth', updated_at = now()
         WHERE workspace_id = $1 AND id = $2 AND status = 'active'",
    )
    .bind(ws.as_uuid())
    .bind(id.as_uuid())
    .execute(&mut *conn)
    .await?;
    status_event(conn, done.rows_affected() == 1, ws, id, "mailbox.needs_reauth", reason).await
}

/// The event of a mailbox's status change, written with it (only when it changed).
async fn status_event(
    conn: &mut PgConnection,
    changed: bool,
    ws: WorkspaceId,
    id: MailboxId,
    kind: &'static str,
    reason: &str,
) -> Result<bool> {
    if changed {
        let data = serde_json::json!({ "reason": reason });
        let e = crate::events::NewEvent { workspace: ws, kind, send: None, mailbox: Some(id), data };
        crate::events::insert(conn, &e).await?;
    }
    Ok(changed)
}

impl MailboxRow {
    /// The mailbox's pacing settings and state.
    pub fn pacing(&self) -> crate::pacing::PacingRow {
        crate::pacing::PacingRow {
            daily_cap: self.daily_cap,
            min_gap_ms: self.min_gap_ms,
            jitter_ms: self.jitter_ms,
            window_start: self.window_start,
            window_end: self.window_end,
            time_zone: self.time_zone.clone(),
            max_sessions: self.max_sessions,
            next_slot_at: None,
            paused_until: self.paused_until,
        }
    }
}

/// Marks a mailbox unusable: its credential cannot be opened (a wrong encryption context, a
/// tampered or destroyed key), with its `mailbox.unusable` event. Returns whether it changed.
/// Its sends wait, parked, for an operator.
pub async fn mark_unusable(conn: &mut PgConnection, ws: WorkspaceId, id: MailboxId, reason: &str) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE mailboxes SET status = 'unusable', status_reason = $3, updated_at = now()
         WHERE workspace_id = $1 AND id = $2 AND status IN ('active', 'needs_reauth')",
    )
    .bind(ws.as_uuid())
    .bind(id.as_uuid())
    .bind(reason)
    .execute(&mut *conn)
    .await?;
    status_event(conn, done.rows_affected() == 1, ws, id, "mailbox.unusable", reason).await
}

/// Marks a workspace's mailboxes (or one of them) disconnected: their credentials are gone.
/// Returns how many changed.
pub async fn mark_disconnected(
    conn: &mut PgConnection,
    ws: WorkspaceId,
    id: Option<MailboxId>,
    reason: &str,
) -> Result<u64> {
    let done = sqlx::query(
        "UPDATE mailboxes SET status = 'disconnected', status_reason = $3, updated_at = now()
         WHERE workspace_id = $1 AND ($2::uuid IS NULL OR id = $2) AND status <> 'disconnected'",
    )
    .bind(ws.as_uuid())
    .bind(id.map(|m| m.as_uuid()))
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// The mailbox row, locked until the transaction ends: one OAuth token refresh per mailbox at
/// a time, across every process (the others wait here, then find a fresh token).
pub async fn lock(conn: &mut PgConnection, ws: WorkspaceId, id: MailboxId) -> Result<Option<MailboxRow>> {
    Ok(sqlx::query_as("SELECT * FROM mailboxes WHERE workspace_id = $1 AND id = $2 FOR UPDATE")
        .bind(ws.as_uuid())
        .bind(id.as_uuid())
        .fetch_optional(conn)
        .await?)
}

/// The mailbox's status, its row locked until the transaction ends (a claim decides under it
/// whether the mailbox may send, so a pause that commits first is never passed by).
pub async fn lock_status(conn: &mut PgConnection, ws: WorkspaceId, id: MailboxId) -> Result<Option<String>> {
    Ok(sqlx::query_scalar("SELECT status FROM mailboxes WHERE workspace_id = $1 AND id = $2 FOR UPDATE")
        .bind(ws.as_uuid())
        .bind(id.as_uuid())
        .fetch_optional(conn)
        .await?)
}

/// Every mailbox row of a workspace, locked in id order until the transaction ends (a
/// workspace's deletion, so no reconnect can seal a credential behind it).
pub async fn lock_all(conn: &mut PgConnection, ws: WorkspaceId) -> Result<()> {
    sqlx::query("SELECT id FROM mailboxes WHERE workspace_id = $1 ORDER BY id FOR UPDATE")
        .bind(ws.as_uuid())
        .execute(conn)
        .await?;
    Ok(())
}

/// Records when the sealed access token expires.
pub async fn set_token_expiry(
    conn: &mut PgConnection,
    ws: WorkspaceId,
    id: MailboxId,
    at: DateTime<Utc>,
) -> Result<()> {
    sqlx::query("UPDATE mailboxes SET token_expires_at = $3, updated_at = now() WHERE workspace_id = $1 AND id = $2")
        .bind(ws.as_uuid())
        .bind(id.as_uuid())
        .bind(at)
        .execute(conn)
        .await?;
    Ok(())
}

/// Sets a mailbox's display name and who files its sent mail.
pub async fn set_profile(
    conn: &mut PgConnection,
    ws: WorkspaceId,
    id: MailboxId,
    from_name: Option<&str>,
    sent_copy: &str,
) -> Result<()> {
    sqlx::query(
        "UPDATE mailboxes SET from_name = $3, sent_copy = $4, updated_at = now() WHERE workspace_id = $1 AND id = $2",
    )
    .bind(ws.as_uuid())
    .bind(id.as_uuid())
    .bind(from_name)
    .bind(sent_copy)
    .execute(conn)
    .await?;
    Ok(())
}

/// Where a mailbox connects: its SMTP and IMAP servers and logins, and its Sent folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Servers {
    /// SMTP host, port, TLS mode, login.
    pub smtp: (String, i32, String, String),
    /// IMAP host, port, TLS mode, login, when it has IMAP.
    pub imap: Option<(String, i32, String, String)>,
    /// The Sent folder's name.
    pub sent_folder: String,
}

impl Servers {
    /// A row's servers.
    pub fn of(m: &MailboxRow) -> Self {
        let imap = match (&m.imap_host, m.imap_port, &m.imap_tls, &m.imap_username) {
            (Some(h), Some(p), Some(t), Some(u)) => Some((h.clone(), p, t.clone(), u.clone())),
            _ => None,
        };
        Self {
            smtp: (m.smtp_host.clone(), m.smtp_port, m.smtp_tls.clone(), m.smtp_username.clone()),
            imap,
            sent_folder: m.sent_folder.clone(),
        }
    }
}

/// Points a mailbox at other servers (checked by the caller with a real login).
pub async fn set_servers(conn: &mut PgConnection, ws: WorkspaceId, id: MailboxId, s: &Servers) -> Result<()> {
    let (ih, ip, it, iu) =
        s.imap.clone().map_or((None, None, None, None), |(h, p, t, u)| (Some(h), Some(p), Some(t), Some(u)));
    sqlx::query(
        "UPDATE mailboxes SET smtp_host = $3, smtp_port = $4, smtp_tls = $5, smtp_username = $6, imap_host = $7,
             imap_port = $8, imap_tls = $9, imap_username = $10, sent_folder = $11, updated_at = now()
         WHERE workspace_id = $1 AND id = $2",
    )
    .bind(ws.as_uuid())
    .bind(id.as_uuid())
    .bind(&s.smtp.0)
    .bind(s.smtp.1)
    .bind(&s.smtp.2)
    .bind(&s.smtp.3)
    .bind(ih)
    .bind(ip)
    .bind(it)
    .bind(iu)
    .bind(&s.sent_folder)
    .execute(conn)
    .await?;
    Ok(())
}
