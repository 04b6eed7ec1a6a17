//! Reading and settling sends for operators and the API: counts, pages, resolutions of
//! ambiguous sends, cancellation, idempotency-key lookups.

use mailroom_domain::{IdempotencyKey, MailboxId, SendId, SendState, StopOn, WorkspaceId};
use sqlx::PgConnection;

use super::SendRow;
use crate::{Result, StoreError};

/// Counts a workspace's sends per state (tests, the demo's summary).
pub async fn count_by_state(conn: &mut PgConnection, ws: WorkspaceId) -> Result<Vec<(String, i64)>> {
    Ok(sqlx::query_as("SELECT state, count(*) FROM sends WHERE workspace_id = $1 GROUP BY state ORDER BY state")
        .bind(ws.as_uuid())
        .fetch_all(conn)
        .await?)
}

/// A page of a workspace's sends in one state, oldest first, after the cursor `after`.
pub async fn list(
    conn: &mut PgConnection,
    ws: WorkspaceId,
    state: SendState,
    after: Option<SendId>,
    limit: i64,
) -> Result<Vec<SendRow>> {
    let filter = super::SendFilter { state: Some(state), after, ..Default::default() };
    super::list_filtered(conn, ws, &filter, limit).await
}

/// What an operator decided about an ambiguous send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// It was delivered (seen in the recipient's or the sender's mailbox).
    MarkSent,
    /// It was not: send it again.
    Resend,
    /// Leave it undelivered.
    Cancel,
}

/// Applies an operator's resolution to an `ambiguous` send. `None` when the send is not
/// ambiguous (any more).
pub async fn resolve(
    conn: &mut PgConnection,
    ws: WorkspaceId,
    id: SendId,
    r: Resolution,
    note: &str,
) -> Result<Option<SendRow>> {
    let (state, next) = match r {
        Resolution::MarkSent => ("sent", None),
        Resolution::Resend => ("retry_wait", Some(chrono::Utc::now())),
        Resolution::Cancel => ("cancelled", None),
    };
    Ok(sqlx::query_as(
        "UPDATE sends SET state = $3, next_attempt_at = $4, last_response = $5, updated_at = now(),
            failure_reason = CASE WHEN $3 = 'retry_wait' THEN NULL ELSE failure_reason END,
            finished_at = CASE WHEN $3 = 'retry_wait' THEN NULL ELSE now() END
         WHERE workspace_id = $1 AND id = $2 AND state = 'ambiguous' RETURNING *",
    )
    .bind(ws.as_uuid())
    .bind(id.as_uuid())
    .bind(state)
    .bind(next)
    .bind(note)
    .fetch_optional(conn)
    .await?)
}

/// How many sends of the workspace wait to be sent (drives enqueue priority, for fairness).
pub async fn backlog(conn: &mut PgConnection, ws: WorkspaceId) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM sends WHERE workspace_id = $1 AND state IN ('queued', 'retry_wait')")
        .bind(ws.as_uuid())
        .fetch_one(conn)
        .await?)
}

/// Cancels every waiting send of a workspace, or of one of its mailboxes, each with a
/// `send.cancelled` event carrying `reason` (its credentials were destroyed). Sends in flight
/// finish their attempt; their next job finds the mailbox disconnected and cancels them.
/// Returns how many were cancelled.
pub async fn cancel_waiting(
    conn: &mut PgConnection,
    ws: WorkspaceId,
    mailbox: Option<MailboxId>,
    reason: &str,
) -> Result<u64> {
    cancel_matching(conn, ws, &CancelFilter { mailbox, ..CancelFilter::default() }, reason).await
}

/// Cancels one send that has not been handed to a provider (`queued` or `retry_wait`,
/// scheduled or not), with its `send.cancelled` event carrying `reason`, in the caller's
/// transaction. Returns the send as it stands afterwards and whether this call cancelled it
/// (a worker's claim and this update take the same row lock: exactly one of them wins);
/// `None` when the workspace has no such send.
pub async fn cancel_one(
    conn: &mut PgConnection,
    ws: WorkspaceId,
    id: SendId,
    reason: &str,
) -> Result<Option<(SendRow, bool)>> {
    let cancelled: Option<SendRow> = sqlx::query_as(
        "WITH c AS (
             UPDATE sends SET state = 'cancelled', failure_reason = $3, next_attempt_at = NULL,
                 finished_at = now(), updated_at = now()
             WHERE workspace_id = $1 AND id = $2 AND state IN ('queued', 'retry_wait') AND reconcile_reason IS NULL
             RETURNING *),
         e AS (
             INSERT INTO events (id, workspace_id, kind, send_id, mailbox_id, data)
             SELECT gen_random_uuid(), workspace_id, 'send.cancelled', id, mailbox_id,
                    jsonb_build_object('reason', $3::text, 'message_id', message_id)
             FROM c)
         SELECT * FROM c",
    )
    .bind(ws.as_uuid())
    .bind(id.as_uuid())
    .bind(reason)
    .fetch_optional(&mut *conn)
    .await?;
    match cancelled {
        Some(row) => Ok(Some((row, true))),
        None => Ok(super::get(conn, ws, id).await?.map(|row| (row, false))),
    }
}

/// Which waiting sends a bulk cancel takes: every given part must match. (Every bulk cancel
/// locks its sends in id order first, so two of them over overlapping sends never deadlock.)
#[derive(Debug, Default, Clone)]
pub struct CancelFilter {
    /// The scheduler's sequence.
    pub sequence: Option<String>,
    /// One mailbox.
    pub mailbox: Option<MailboxId>,
    /// Sends whose metadata contains this object (JSON containment).
    pub metadata: Option<serde_json::Value>,
    /// Sends with this address among their recipients (to, cc or bcc; case ignored).
    pub to: Option<String>,
}

/// Cancels every waiting send of the workspace that `filter` matches, each atomically with
/// its `send.cancelled` event; a send a worker holds is left to finish. Returns how many were
/// cancelled (0 on a repeat).
pub async fn cancel_matching(
    conn: &mut PgConnection,
    ws: WorkspaceId,
    filter: &CancelFilter,
    reason: &str,
) -> Result<u64> {
    let done = sqlx::query(
        "WITH t AS (
             SELECT id FROM sends
             WHERE workspace_id = $1 AND state IN ('queued', 'retry_wait') AND reconcile_reason IS NULL
               AND ($2::text IS NULL OR sequence = $2)
               AND ($3::uuid IS NULL OR mailbox_id = $3)
               AND ($4::jsonb IS NULL OR metadata @> $4)
               AND ($5::text IS NULL OR EXISTS (
                   SELECT 1 FROM jsonb_array_elements_text(
                       coalesce(payload->'to', '[]') || coalesce(payload->'cc', '[]') || coalesce(payload->'bcc', '[]')) r
                   WHERE lower(r) = lower($5)))
             ORDER BY id FOR UPDATE),
         c AS (
             UPDATE sends SET state = 'cancelled', failure_reason = $6, next_attempt_at = NULL,
                 finished_at = now(), updated_at = now()
             FROM t WHERE sends.id = t.id AND sends.state IN ('queued', 'retry_wait') AND sends.reconcile_reason IS NULL
             RETURNING sends.id, sends.workspace_id, sends.mailbox_id, sends.message_id)
         INSERT INTO events (id, workspace_id, kind, send_id, mailbox_id, data)
         SELECT gen_random_uuid(), workspace_id, 'send.cancelled', id, mailbox_id,
                jsonb_build_object('reason', $6::text, 'message_id', message_id)
         FROM c",
    )
    .bind(ws.as_uuid())
    .bind(filter.sequence.as_deref())
    .bind(filter.mailbox.map(|m| m.as_uuid()))
    .bind(filter.metadata.as_ref())
    .bind(filter.to.as_deref())
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Stops a sequence: cancels every waiting send of `sequence` in the workspace that stops on
/// `trigger`, each with its `send.cancelled` event (reason `reply_received`, `unsubscribed`,
/// ...), in the caller's transaction: the one recording the inbound message, so no follow-up
/// is claimed between the reply and its effect. A send already claimed by a worker was claimed
/// before this committed, and finishes. Returns how many were cancelled.
pub async fn stop_sequence(conn: &mut PgConnection, ws: WorkspaceId, sequence: &str, trigger: StopOn) -> Result<u64> {
    // The work is in the `stop_sequence` function (its migration): the reply worker may call it
    // and holds no UPDATE on sends itself.
    let stopped: i64 = sqlx::query_scalar("SELECT stop_sequence($1, $2, $3, $4)")
        .bind(ws.as_uuid())
        .bind(sequence)
        .bind(trigger.as_str())
        .bind(trigger.reason())
        .fetch_one(conn)
        .await?;
    Ok(u64::try_from(stopped).unwrap_or(0))
}

/// What stopped `row`'s sequence, if anything that `row` stops on did (the stop recorded by
/// [`stop_sequence`]): a step enqueued after the reply, or one that comes round again after an
/// attempt that was under way when the reply came.
pub async fn stopped_by(conn: &mut PgConnection, row: &SendRow) -> Result<Option<StopOn>> {
    let Some(sequence) = &row.sequence else { return Ok(None) };
    let trigger: Option<String> = sqlx::query_scalar(
        "SELECT trigger FROM sequence_stops WHERE workspace_id = $1 AND sequence = $2 AND trigger = ANY ($3)
         ORDER BY created_at LIMIT 1",
    )
    .bind(row.workspace_id)
    .bind(sequence)
    .bind(&row.stop_on)
    .fetch_optional(conn)
    .await?;
    trigger.map(|t| t.parse().map_err(|_| StoreError::Corrupt { column: "sequence_stops.trigger" })).transpose()
}

/// Whether the workspace already has a send with this idempotency key.
pub async fn key_exists(conn: &mut PgConnection, ws: WorkspaceId, key: &IdempotencyKey) -> Result<bool> {
    Ok(sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM sends WHERE workspace_id = $1 AND idempotency_key = $2)")
        .bind(ws.as_uuid())
        .bind(key.as_str())
        .fetch_one(conn)
        .await?)
}
