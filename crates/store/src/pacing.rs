//! Pacing state: slot reservations, the rolling daily count and in-flight sessions per mailbox.
//!
//! Every function that decides something runs inside the caller's transaction after
//! [`lock`], which takes the mailbox row's lock: reservations for one mailbox are serialised
//! across all worker processes, and different mailboxes never wait for each other.

use std::time::Duration;

use chrono::{DateTime, NaiveTime, Utc};
use mailroom_domain::{
    MailboxId, SendId, WorkspaceId,
    pacing::{Pacing, SendWindow},
};
use sqlx::PgConnection;

use crate::Result;

/// A mailbox's pacing settings and state.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PacingRow {
    /// Most sends per rolling 24 h.
    pub daily_cap: Option<i32>,
    /// Least gap between sends, in milliseconds.
    pub min_gap_ms: i32,
    /// Random extra gap, up to this many milliseconds.
    pub jitter_ms: i32,
    /// Send window start (local time).
    pub window_start: Option<NaiveTime>,
    /// Send window end (local time).
    pub window_end: Option<NaiveTime>,
    /// IANA time zone of the window.
    pub time_zone: String,
    /// Most attempts in flight at once.
    pub max_sessions: i32,
    /// The earliest start of the next send.
    pub next_slot_at: Option<DateTime<Utc>>,
    /// The mailbox is paused until then.
    pub paused_until: Option<DateTime<Utc>>,
}

impl PacingRow {
    /// The settings as domain values.
    pub fn to_domain(&self) -> Result<Pacing> {
        let corrupt = |_| crate::StoreError::Corrupt { column: "mailboxes pacing" };
        let window = match (self.window_start, self.window_end) {
            (Some(s), Some(e)) => Some(
                SendWindow::parse(&s.format("%H:%M").to_string(), &e.format("%H:%M").to_string(), &self.time_zone)
                    .map_err(corrupt)?,
            ),
            _ => None,
        };
        Ok(Pacing {
            daily_cap: self.daily_cap.map(|c| c.max(1) as u32),
            min_gap: Duration::from_millis(self.min_gap_ms.max(0) as u64),
            jitter: Duration::from_millis(self.jitter_ms.max(0) as u64),
            window,
            max_sessions: self.max_sessions.max(1) as u32,
        })
    }

    /// Settings to store (state fields empty).
    pub fn from_domain(p: &Pacing) -> Self {
        let (window_start, window_end, time_zone) = match &p.window {
            Some(w) => {
                let (s, e, z) = w.parts();
                (NaiveTime::parse_from_str(&s, "%H:%M").ok(), NaiveTime::parse_from_str(&e, "%H:%M").ok(), z)
            }
            None => (None, None, "UTC".to_owned()),
        };
        let ms = |d: Duration| i32::try_from(d.as_millis()).unwrap_or(i32::MAX);
        Self {
            daily_cap: p.daily_cap.map(|c| i32::try_from(c).unwrap_or(i32::MAX)),
            min_gap_ms: ms(p.min_gap),
            jitter_ms: ms(p.jitter),
            window_start,
            window_end,
            time_zone,
            max_sessions: i32::try_from(p.max_sessions).unwrap_or(i32::MAX),
            next_slot_at: None,
            paused_until: None,
        }
    }
}

const COLUMNS: &str =
    "daily_cap, min_gap_ms, jitter_ms, window_start, window_end, time_zone, max_sessions, next_slot_at, paused_until";

/// Locks the mailbox row and reads its pacing.
pub async fn lock(conn: &mut PgConnection, ws: WorkspaceId, mbx: MailboxId) -> Result<Option<PacingRow>> {
    let sql = format!("SELECT {COLUMNS} FROM mailboxes WHERE workspace_id = $1 AND id = $2 FOR UPDATE");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(ws.as_uuid()).bind(mbx.as_uuid()).fetch_optional(conn).await?)
}

/// Replaces a mailbox's pacing settings. Returns whether the mailbox exists.
pub async fn set(conn: &mut PgConnection, ws: WorkspaceId, mbx: MailboxId, p: &PacingRow) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE mailboxes SET daily_cap = $3, min_gap_ms = $4, jitter_ms = $5, window_start = $6, window_end = $7,
            time_zone = $8, max_sessions = $9, updated_at = now()
         WHERE workspace_id = $1 AND id = $2",
    )
    .bind(ws.as_uuid())
    .bind(mbx.as_uuid())
    .bind(p.daily_cap)
    .bind(p.min_gap_ms)
    .bind(p.jitter_ms)
    .bind(p.window_start)
    .bind(p.window_end)
    .bind(&p.time_zone)
    .bind(p.max_sessions)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Slots of the mailbox's other live sends in the 24 hours ending at `at`, oldest first.
pub async fn slots_in_day(
    conn: &mut PgConnection,
    mbx: MailboxId,
    at: DateTime<Utc>,
    except: SendId,
) -> Result<Vec<DateTime<Utc>>> {
    Ok(sqlx::query_scalar(
        "SELECT slot_at FROM sends
         WHERE mailbox_id = $1 AND slot_at > $2 - interval '24 hours' AND slot_at <= $2
           AND state NOT IN ('failed', 'cancelled') AND id <> $3
         ORDER BY slot_at",
    )
    .bind(mbx.as_uuid())
    .bind(at)
    .bind(except.as_uuid())
    .fetch_all(conn)
    .await?)
}

/// Gives a waiting send its slot (and makes it due then), and moves the mailbox's next free
/// slot to `next`. Returns whether the send was still waiting.
pub async fn reserve(
    conn: &mut PgConnection,
    ws: WorkspaceId,
    send: SendId,
    mbx: MailboxId,
    at: DateTime<Utc>,
    next: DateTime<Utc>,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE sends SET slot_at = $3, next_attempt_at = $3, updated_at = now()
         WHERE workspace_id = $1 AND id = $2 AND state IN ('queued', 'retry_wait')",
    )
    .bind(ws.as_uuid())
    .bind(send.as_uuid())
    .bind(at)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    sqlx::query("UPDATE mailboxes SET next_slot_at = GREATEST(COALESCE(next_slot_at, $3), $3) WHERE workspace_id = $1 AND id = $2")
        .bind(ws.as_uuid())
        .bind(mbx.as_uuid())
        .bind(next)
        .execute(conn)
        .await?;
    Ok(true)
}

/// Takes one of the mailbox's session places for `send` until `lease_until`, unless all
/// `max` are in use by live attempts. Call after [`lock`].
pub async fn open_session(
    conn: &mut PgConnection,
    mbx: MailboxId,
    send: SendId,
    max: i32,
    lease_until: DateTime<Utc>,
) -> Result<bool> {
    let busy: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM mailbox_sessions WHERE mailbox_id = $1 AND lease_until > now() AND send_id <> $2",
    )
    .bind(mbx.as_uuid())
    .bind(send.as_uuid())
    .fetch_one(&mut *conn)
    .await?;
    if busy >= i64::from(max) {
        return Ok(false);
    }
    sqlx::query(
        "INSERT INTO mailbox_sessions (send_id, mailbox_id, lease_until) VALUES ($1, $2, $3)
         ON CONFLICT (send_id) DO UPDATE SET lease_until = EXCLUDED.lease_until",
    )
    .bind(send.as_uuid())
    .bind(mbx.as_uuid())
    .bind(lease_until)
    .execute(conn)
    .await?;
    Ok(true)
}

/// Frees a send's session place (its attempt is over).
pub async fn close_session(conn: &mut PgConnection, send: SendId) -> Result<()> {
    sqlx::query("DELETE FROM mailbox_sessions WHERE send_id = $1").bind(send.as_uuid()).execute(conn).await?;
    Ok(())
}
