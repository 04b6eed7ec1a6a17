//! The event outbox: written in the transaction of the change that causes each event.

use mailroom_domain::{EventId, MailboxId, SendId, WorkspaceId};
use sqlx::PgConnection;

use crate::Result;

/// An event to record.
pub struct NewEvent<'a> {
    /// The workspace it belongs to.
    pub workspace: WorkspaceId,
    /// `send.sent`, `send.failed`, `send.ambiguous`, `mailbox.needs_reauth`, ...
    pub kind: &'a str,
    /// The send concerned, if any.
    pub send: Option<SendId>,
    /// The mailbox concerned, if any.
    pub mailbox: Option<MailboxId>,
    /// Details for the scheduler.
    pub data: serde_json::Value,
}

/// Appends an event to the outbox.
pub async fn insert(conn: &mut PgConnection, e: &NewEvent<'_>) -> Result<EventId> {
    let id = EventId::new();
    sqlx::query(
        "INSERT INTO events (id, workspace_id, kind, send_id, mailbox_id, data) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id.as_uuid())
    .bind(e.workspace.as_uuid())
    .bind(e.kind)
    .bind(e.send.map(|s| s.as_uuid()))
    .bind(e.mailbox.map(|m| m.as_uuid()))
    .bind(&e.data)
    .execute(conn)
    .await?;
    Ok(id)
}

/// Counts a workspace's events of one kind (tests and operators).
pub async fn count(conn: &mut PgConnection, ws: WorkspaceId, kind: &str) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM events WHERE workspace_id = $1 AND kind = $2")
        .bind(ws.as_uuid())
        .bind(kind)
        .fetch_one(conn)
        .await?)
}

/// Gives feed positions to committed events that have none, under a lock that makes
/// publishers take turns: positions then follow commit order as readers see it, so a reader
/// paging by position never skips an event whose transaction committed after a later one's.
/// Returns how many were published.
pub async fn publish(pool: &sqlx::PgPool) -> Result<u64> {
    // Across workspaces, through `mailroom_publish_events` (one statement, so the lock it takes
    // lasts until its positions are committed).
    let n: i64 = sqlx::query_scalar("SELECT mailroom_publish_events()").fetch_one(pool).await?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// An event as the feed shows it, with its send's scheduler metadata.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FeedEvent {
    /// Its position in the feed (the cursor).
    pub pos: i64,
    /// Its unique id (receivers dedupe on it).
    pub id: uuid::Uuid,
    /// What happened.
    pub kind: String,
    /// The send concerned.
    pub send_id: Option<uuid::Uuid>,
    /// The mailbox concerned.
    pub mailbox_id: Option<uuid::Uuid>,
    /// Details.
    pub data: serde_json::Value,
    /// When.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// The metadata the scheduler passed with the send.
    pub metadata: Option<serde_json::Value>,
}

impl FeedEvent {
    /// The event as the feed and webhooks show it: one wire shape for both.
    pub fn wire(&self) -> mailroom_domain::event::WireEvent {
        mailroom_domain::event::WireEvent {
            id: EventId::from_uuid(self.id),
            kind: self.kind.clone(),
            send_id: self.send_id.map(SendId::from_uuid),
            mailbox_id: self.mailbox_id.map(MailboxId::from_uuid),
            metadata: self.metadata.clone(),
            data: self.data.clone(),
            created_at: self.created_at,
        }
    }
}

/// The feed's columns: an event with its send's scheduler metadata (one shape for the pull API
/// and webhooks).
macro_rules! feed_select {
    () => {
        "SELECT e.pos, e.id, e.kind, e.send_id, e.mailbox_id, e.data, e.created_at, s.metadata
         FROM events e LEFT JOIN sends s ON s.id = e.send_id AND s.workspace_id = e.workspace_id "
    };
}

/// The published event at feed position `pos` (a webhook delivery's).
pub async fn at(conn: &mut PgConnection, pos: i64) -> Result<Option<FeedEvent>> {
    Ok(sqlx::query_as(concat!(feed_select!(), "WHERE e.pos = $1")).bind(pos).fetch_optional(conn).await?)
}

/// Which of the feed's events to read (`None`: any).
#[derive(Debug, Default)]
pub struct FeedFilter<'a> {
    /// Of this type only.
    pub kind: Option<&'a str>,
    /// About this mailbox only.
    pub mailbox: Option<MailboxId>,
}

/// A page of a workspace's published events after position `after`, in feed order, each
/// filter read off an index that leads with the workspace and ends with the position.
pub async fn page(
    conn: &mut PgConnection,
    ws: WorkspaceId,
    after: i64,
    limit: i64,
    f: &FeedFilter<'_>,
) -> Result<Vec<FeedEvent>> {
    // One statement per combination, so each is planned for the index it reads.
    let sql = match (f.kind.is_some(), f.mailbox.is_some()) {
        (false, false) => concat!(feed_select!(), "WHERE e.workspace_id = $1 AND e.pos > $2 ORDER BY e.pos LIMIT $3"),
        (true, false) => {
            concat!(feed_select!(), "WHERE e.workspace_id = $1 AND e.pos > $2 AND e.kind = $4 ORDER BY e.pos LIMIT $3")
        }
        (false, true) => concat!(
            feed_select!(),
            "WHERE e.workspace_id = $1 AND e.pos > $2 AND e.mailbox_id = $4 ORDER BY e.pos LIMIT $3"
        ),
        (true, true) => concat!(
            feed_select!(),
            "WHERE e.workspace_id = $1 AND e.pos > $2 AND e.kind = $4 AND e.mailbox_id = $5 ORDER BY e.pos LIMIT $3"
        ),
    };
    let mut q = sqlx::query_as(sql).bind(ws.as_uuid()).bind(after).bind(limit);
    if let Some(kind) = f.kind {
        q = q.bind(kind);
    }
    if let Some(m) = f.mailbox {
        q = q.bind(m.as_uuid());
    }
    Ok(q.fetch_all(conn).await?)
}

/// Every published event of a workspace, in feed order, as a stream (the export).
pub fn all(conn: &mut PgConnection, ws: WorkspaceId) -> crate::export::Rows<'_, FeedEvent> {
    use futures::{StreamExt, TryStreamExt};
    sqlx::query_as(concat!(feed_select!(), "WHERE e.workspace_id = $1 AND e.pos IS NOT NULL ORDER BY e.pos"))
        .bind(ws.as_uuid())
        .fetch(conn)
        .map_err(crate::StoreError::from)
        .boxed()
}
