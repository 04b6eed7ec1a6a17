//! The send ledger (docs/design.md section 3).
//!
//! Every transition is one conditional `UPDATE ... WHERE state = <expected>`; the worker's
//! finishing updates are also fenced on `locked_by` and `attempts`, so a worker whose lease was
//! taken over changes nothing.

use chrono::{DateTime, Utc};
use mailroom_domain::{IdempotencyKey, MailboxId, SendId, SendState, StopOn, WorkspaceId};
use sqlx::PgConnection;

use crate::{Result, StoreError};

/// A ledger row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SendRow {
    /// The send.
    pub id: uuid::Uuid,
    /// Its workspace.
    pub workspace_id: uuid::Uuid,
    /// The mailbox it goes out through.
    pub mailbox_id: uuid::Uuid,
    /// The client's key.
    pub idempotency_key: String,
    /// SHA-256 of the normalised request.
    pub payload_hash: Vec<u8>,
    /// The normalised request (addresses, subject, bodies, headers).
    pub payload: serde_json::Value,
    /// Fixed at enqueue, reused on every attempt.
    pub message_id: String,
    /// The state's name.
    pub state: String,
    /// Attempts that reached the provider or failed on the way.
    pub attempts: i32,
    /// Not before this instant.
    pub send_at: Option<DateTime<Utc>>,
    /// The next attempt is due then.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// A `sending` row belongs to its worker until then.
    pub lease_until: Option<DateTime<Utc>>,
    /// The worker holding it.
    pub locked_by: Option<String>,
    /// The provider's last answer.
    pub last_response: Option<String>,
    /// Why it failed or is ambiguous.
    pub failure_reason: Option<String>,
    /// Set when the next step is to look for the message in Sent, not to send it.
    pub reconcile_reason: Option<String>,
    /// The instant reserved for it by its mailbox's pacing.
    pub slot_at: Option<DateTime<Utc>>,
    /// How often its handling was interrupted (worker death, Sent folder unreachable).
    pub recoveries: i32,
    /// How often a worker died during a delivery attempt of it.
    pub crashes: i32,
    /// When the current attempt began handing over the message body (unset before DATA).
    pub body_at: Option<DateTime<Utc>>,
    /// The queue priority the send was enqueued with, reused for its later jobs.
    pub queue_priority: i16,
    /// When it was accepted.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// The scheduler's metadata.
    pub metadata: Option<serde_json::Value>,
    /// The scheduler's sequence (one lead in one campaign), if it named one.
    pub sequence: Option<String>,
    /// The inbound messages of its sequence that cancel it while it waits.
    pub stop_on: Vec<String>,
    /// The send it follows up, if any.
    pub in_reply_to: Option<uuid::Uuid>,
    /// When its recipient was erased (its payload is gone; it is never sent).
    pub erased_at: Option<DateTime<Utc>>,
}

impl SendRow {
    /// The parsed state.
    pub fn state(&self) -> Result<SendState> {
        self.state.parse().map_err(|_| StoreError::Corrupt { column: "sends.state" })
    }

    /// The typed id.
    pub fn send_id(&self) -> SendId {
        SendId::from_uuid(self.id)
    }

    /// The typed workspace id.
    pub fn workspace(&self) -> WorkspaceId {
        WorkspaceId::from_uuid(self.workspace_id)
    }

    /// The typed mailbox id.
    pub fn mailbox(&self) -> MailboxId {
        MailboxId::from_uuid(self.mailbox_id)
    }
}

/// A send to record.
pub struct NewSend<'a> {
    /// Its id.
    pub id: SendId,
    /// Its workspace.
    pub workspace: WorkspaceId,
    /// Its mailbox.
    pub mailbox: MailboxId,
    /// The client's key.
    pub key: &'a IdempotencyKey,
    /// SHA-256 of the normalised request.
    pub payload_hash: &'a [u8],
    /// The normalised request.
    pub payload: &'a serde_json::Value,
    /// Its Message-ID.
    pub message_id: &'a str,
    /// Not before this instant.
    pub send_at: Option<DateTime<Utc>>,
    /// The scheduler's metadata.
    pub metadata: Option<&'a serde_json::Value>,
    /// The scheduler's sequence.
    pub sequence: Option<&'a str>,
    /// What stops it; `None` for the default.
    pub stop_on: Option<&'a [StopOn]>,
    /// The send it follows up, in one thread.
    pub in_reply_to: Option<SendId>,
}

/// The outcome of recording a send.
#[derive(Debug)]
pub enum Recorded {
    /// A new send.
    Created(SendRow),
    /// The key was already used with the same payload: the original send.
    Replayed(SendRow),
    /// The key was already used with another payload.
    Conflict(SendRow),
}

/// Records a send, or finds the one already recorded under its key.
pub async fn insert_or_replay(conn: &mut PgConnection, s: &NewSend<'_>) -> Result<Recorded> {
    let created: Option<SendRow> = sqlx::query_as(
        "INSERT INTO sends (id, workspace_id, mailbox_id, idempotency_key, payload_hash, payload, message_id,
            state, send_at, next_attempt_at, metadata, sequence, stop_on, in_reply_to)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'queued', $8, $8, $9, $10, $11, $12)
         ON CONFLICT (workspace_id, idempotency_key) DO NOTHING
         RETURNING *",
    )
    .bind(s.id.as_uuid())
    .bind(s.workspace.as_uuid())
    .bind(s.mailbox.as_uuid())
    .bind(s.key.as_str())
    .bind(s.payload_hash)
    .bind(s.payload)
    .bind(s.message_id)
    .bind(s.send_at)
    .bind(s.metadata)
    .bind(s.sequence)
    .bind(s.stop_on.unwrap_or(&StopOn::DEFAULT).iter().map(|x| x.as_str()).collect::<Vec<_>>())
    .bind(s.in_reply_to.map(|p| p.as_uuid()))
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(row) = created {
        return Ok(Recorded::Created(row));
    }
    // The conflicting insert has committed (ON CONFLICT waited for it), so this sees it.
    let existing: SendRow = sqlx::query_as("SELECT * FROM sends WHERE workspace_id = $1 AND idempotency_key = $2")
        .bind(s.workspace.as_uuid())
        .bind(s.key.as_str())
        .fetch_one(conn)
        .await?;
    Ok(if existing.payload_hash == s.payload_hash {
        Recorded::Replayed(existing)
    } else {
        Recorded::Conflict(existing)
    })
}

/// A send of the given workspace (another workspace's id finds nothing).
pub async fn get(conn: &mut PgConnection, ws: WorkspaceId, id: SendId) -> Result<Option<SendRow>> {
    Ok(sqlx::query_as("SELECT * FROM sends WHERE workspace_id = $1 AND id = $2")
        .bind(ws.as_uuid())
        .bind(id.as_uuid())
        .fetch_optional(conn)
        .await?)
}

/// Claims a due send for an attempt: `queued`/`retry_wait` → `sending`, counting the attempt
/// (a claim to reconcile is not an attempt) and taking a lease. `None` when another worker has it, it is finished, or it is not due.
pub async fn claim(
    conn: &mut PgConnection,
    ws: WorkspaceId,
    id: SendId,
    worker: &str,
    lease_secs: f64,
) -> Result<Option<SendRow>> {
    Ok(sqlx::query_as(
        "UPDATE sends SET state = 'sending', locked_by = $3, slot_at = COALESCE(slot_at, now()),
            attempts = attempts + CASE WHEN reconcile_reason IS NULL THEN 1 ELSE 0 END,
            body_at = CASE WHEN reconcile_reason IS NULL THEN NULL ELSE body_at END,
            lease_until = now() + make_interval(secs => $4), updated_at = now()
         WHERE workspace_id = $1 AND id = $2 AND state IN ('queued', 'retry_wait')
           AND COALESCE(next_attempt_at, '-infinity') <= now() + interval '1 second'
           AND NOT (state = 'retry_wait' AND next_attempt_at IS NULL)
         RETURNING *",
    )
    .bind(ws.as_uuid())
    .bind(id.as_uuid())
    .bind(worker)
    .bind(lease_secs)
    .fetch_optional(conn)
    .await?)
}

/// Records, just before the message body goes to the provider, that this attempt is about to
/// hand it over, and renews the lease for the body's transfer. Returns false when the attempt
/// no longer holds the send (its lease ran out and it was recovered, or another worker took
/// it), or when its recipient was erased meanwhile: the caller must then not send the body.
/// This fences a stalled worker out of a double-send, and an erased contact out of the mail.
pub async fn begin_body(conn: &mut PgConnection, row: &SendRow, lease_secs: f64) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE sends SET body_at = now(), lease_until = now() + make_interval(secs => $5)
         WHERE workspace_id = $1 AND id = $2 AND state = 'sending' AND attempts = $3 AND locked_by = $4
           AND lease_until > now() AND erased_at IS NULL",
    )
    .bind(row.workspace_id)
    .bind(row.id)
    .bind(row.attempts)
    .bind(&row.locked_by)
    .bind(lease_secs)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Postpones a waiting send (its mailbox is paused) without counting an attempt. `at = None`
/// parks it until its mailbox is reconnected. Returns whether it changed.
pub async fn postpone(conn: &mut PgConnection, row: &SendRow, at: Option<DateTime<Utc>>, reason: &str) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE sends SET state = 'retry_wait', next_attempt_at = $3, last_response = COALESCE($4, last_response),
            updated_at = now()
         WHERE workspace_id = $1 AND id = $2 AND state = $5 AND attempts = $6",
    )
    .bind(row.workspace_id)
    .bind(row.id)
    .bind(at)
    .bind(reason)
    .bind(&row.state)
    .bind(row.attempts)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// How an attempt ended, for [`finish`].
pub enum Finish<'a> {
    /// Accepted by the provider.
    Sent {
        /// The provider's answer.
        response: &'a str,
    },
    /// Terminal failure or ambiguity.
    Terminal {
        /// `failed` or `ambiguous`.
        state: SendState,
        /// Why.
        reason: &'a str,
    },
    /// The message may have been delivered: look for it in Sent at `at` before anything else.
    Reconcile {
        /// When to look.
        at: DateTime<Utc>,
        /// Why it is uncertain.
        reason: &'a str,
        /// This is another try after a look that could not be made (counts as a recovery).
        again: bool,
    },
    /// Try again at `at`. `refund` gives the attempt back (the mailbox was throttled, not the
    /// message refused); `at = None` parks the send until its mailbox is reconnected.
    Retry {
        /// When.
        at: Option<DateTime<Utc>>,
        /// The answer that caused it.
        response: &'a str,
        /// Whether the attempt should not count.
        refund: bool,
    },
}

/// Locks a send for recording its attempt's outcome and tells whether its recipient was erased
/// meanwhile: an erasure locks its sends too, so it comes wholly before this outcome (which
/// then keeps nothing of the contact) or wholly after (and rewrites what this one wrote).
pub async fn lock_erased(conn: &mut PgConnection, claimed: &SendRow) -> Result<bool> {
    let erased: Option<bool> = sqlx::query_scalar(
        "SELECT erased_at IS NOT NULL FROM sends WHERE workspace_id = $1 AND id = $2 FOR NO KEY UPDATE",
    )
    .bind(claimed.workspace_id)
    .bind(claimed.id)
    .fetch_optional(conn)
    .await?;
    // No row: nothing to withhold; `finish`, fenced on the claim, then changes nothing either.
    Ok(erased.unwrap_or(false))
}

/// Ends an attempt, fenced on the claim: only the worker that holds the lease for this
/// attempt can move the send. Returns whether it did.
pub async fn finish(conn: &mut PgConnection, claimed: &SendRow, outcome: &Finish<'_>) -> Result<bool> {
    let (state, next, response, reason, refund, reconcile) = match *outcome {
        Finish::Sent { response } => (SendState::Sent, None, Some(response), None, false, None),
        Finish::Terminal { state, reason } => (state, None, None, Some(reason), false, None),
        Finish::Reconcile { at, reason, .. } => (SendState::RetryWait, Some(at), None, None, false, Some(reason)),
        Finish::Retry { at, response, refund } => (SendState::RetryWait, at, Some(response), None, refund, None),
    };
    let done = sqlx::query(
        "WITH freed AS (DELETE FROM mailbox_sessions WHERE send_id = $2)
         UPDATE sends SET state = $5, next_attempt_at = $6, last_response = COALESCE($7, last_response),
            failure_reason = $8, attempts = attempts - $9::int, lease_until = NULL, locked_by = NULL,
            reconcile_reason = $10, recoveries = recoveries + $11::int,
            updated_at = now(), finished_at = CASE WHEN $5 IN ('sent', 'failed', 'ambiguous') THEN now() END
         WHERE workspace_id = $1 AND id = $2 AND state = 'sending' AND locked_by = $3 AND attempts = $4",
    )
    .bind(claimed.workspace_id)
    .bind(claimed.id)
    .bind(&claimed.locked_by)
    .bind(claimed.attempts)
    .bind(state.as_str())
    .bind(next)
    .bind(response)
    .bind(reason)
    .bind(i32::from(refund))
    .bind(reconcile)
    .bind(i32::from(matches!(outcome, Finish::Reconcile { again: true, .. })))
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

mod listing;
mod operator;
mod recovery;

pub use listing::{SendFilter, list as list_filtered, plan as list_plan};
pub use operator::*;
pub use recovery::*;
