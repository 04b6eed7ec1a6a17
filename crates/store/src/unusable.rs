//! The way back from `unusable`: a mailbox whose credential could not be opened because of
//! the engine's own configuration is re-checked by an operator; when it opens again the
//! mailbox returns to `active` and its parked sends resume, each exactly once.

use chrono::Utc;
use mailroom_domain::{MailboxId, SendId, SendJob, WorkspaceId};
use sqlx::PgConnection;

use crate::Result;

/// A workspace's unusable mailboxes, oldest first.
pub async fn of_workspace(conn: &mut PgConnection, ws: WorkspaceId) -> Result<Vec<MailboxId>> {
    let ids: Vec<uuid::Uuid> = sqlx::query_scalar(
        "SELECT id FROM mailboxes WHERE workspace_id = $1 AND status = 'unusable' ORDER BY created_at",
    )
    .bind(ws.as_uuid())
    .fetch_all(conn)
    .await?;
    Ok(ids.into_iter().map(MailboxId::from_uuid).collect())
}

/// The fields a mailbox has sealed values for.
pub async fn sealed_fields(conn: &mut PgConnection, ws: WorkspaceId, mbx: MailboxId) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT field FROM mailbox_secrets WHERE workspace_id = $1 AND mailbox_id = $2 ORDER BY field",
    )
    .bind(ws.as_uuid())
    .bind(mbx.as_uuid())
    .fetch_all(conn)
    .await?)
}

/// Returns an unusable mailbox to `active` with its `mailbox.recovered` event. Whether it
/// changed: a concurrent re-check, or a mailbox that was never unusable, changes nothing.
pub async fn restore(conn: &mut PgConnection, ws: WorkspaceId, mbx: MailboxId, note: &str) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE mailboxes SET status = 'active', status_reason = NULL, updated_at = now()
         WHERE workspace_id = $1 AND id = $2 AND status = 'unusable'",
    )
    .bind(ws.as_uuid())
    .bind(mbx.as_uuid())
    .execute(&mut *conn)
    .await?;
    let changed = done.rows_affected() == 1;
    if changed {
        let data = serde_json::json!({ "reason": note });
        let e =
            crate::events::NewEvent { workspace: ws, kind: "mailbox.recovered", send: None, mailbox: Some(mbx), data };
        crate::events::insert(conn, &e).await?;
    }
    Ok(changed)
}

/// Records why an unusable mailbox still does not open (the newest reason replaces the old).
pub async fn still_unusable(conn: &mut PgConnection, ws: WorkspaceId, mbx: MailboxId, reason: &str) -> Result<()> {
    sqlx::query(
        "UPDATE mailboxes SET status_reason = $3, updated_at = now()
         WHERE workspace_id = $1 AND id = $2 AND status = 'unusable'",
    )
    .bind(ws.as_uuid())
    .bind(mbx.as_uuid())
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(())
}

/// Makes a mailbox's parked sends (waiting with no due time) due now and queues one job for
/// each, in the order they were accepted, at the priority each was enqueued with. The update
/// is guarded on "parked", so running it twice queues nothing twice. Returns how many resumed.
pub async fn resume_parked(conn: &mut PgConnection, ws: WorkspaceId, mbx: MailboxId) -> Result<u64> {
    // Ids are time-ordered (UUID v7), so ordering by them queues the oldest send first.
    let rows: Vec<(uuid::Uuid, i16)> = sqlx::query_as(
        "WITH resumed AS (
             UPDATE sends SET next_attempt_at = now(), last_response = 'resumed: the mailbox opens again',
                 updated_at = now()
             WHERE workspace_id = $1 AND mailbox_id = $2 AND state = 'retry_wait' AND next_attempt_at IS NULL
             RETURNING id, queue_priority)
         SELECT id, queue_priority FROM resumed ORDER BY id",
    )
    .bind(ws.as_uuid())
    .bind(mbx.as_uuid())
    .fetch_all(&mut *conn)
    .await?;
    let jobs: Vec<(SendJob, usize)> = rows
        .iter()
        .map(|(id, p)| {
            (SendJob { send_id: SendId::from_uuid(*id), workspace_id: ws }, usize::try_from(*p).unwrap_or(0))
        })
        .collect();
    crate::queue::requeue(conn, &jobs, Utc::now()).await?;
    Ok(rows.len() as u64)
}
