//! Taking over sends whose worker died mid-attempt.

use chrono::{DateTime, Utc};
use mailroom_domain::SendState;
use sqlx::PgConnection;

use super::SendRow;
use crate::Result;

/// What becomes of a send whose worker died holding it.
#[derive(Debug, Clone, Copy)]
pub enum AfterCrash<'a> {
    /// The body was never handed over: nothing can have been delivered. Try again at `at`.
    Retry {
        /// When.
        at: DateTime<Utc>,
    },
    /// It may have been delivered: look in the Sent folder at `at`.
    Reconcile {
        /// When.
        at: DateTime<Utc>,
        /// Why it needs the look.
        reason: &'a str,
    },
    /// Settled without delivery (`failed`) or without knowing (`ambiguous`).
    Settle {
        /// `failed` or `ambiguous`.
        state: SendState,
        /// Why.
        reason: &'a str,
    },
}

/// Takes over a `sending` row whose lease has expired (its worker died mid-attempt), as
/// `after` says. Returns whether it did (false: another recoverer was first).
pub async fn expire_lease(conn: &mut PgConnection, row: &SendRow, after: AfterCrash<'_>) -> Result<bool> {
    let (state, failure, reconcile, at) = match after {
        AfterCrash::Retry { at } => (SendState::RetryWait, None, None, Some(at)),
        AfterCrash::Reconcile { at, reason } => (SendState::RetryWait, None, Some(reason), Some(at)),
        AfterCrash::Settle { state, reason } => (state, Some(reason), None, None),
    };
    let done = sqlx::query(
        "WITH freed AS (DELETE FROM mailbox_sessions WHERE send_id = $2)
         UPDATE sends SET state = $4, failure_reason = $5, reconcile_reason = $6, next_attempt_at = $7,
            lease_until = NULL, locked_by = NULL, updated_at = now(), recoveries = recoveries + 1,
            crashes = crashes + CASE WHEN reconcile_reason IS NULL THEN 1 ELSE 0 END,
            finished_at = CASE WHEN $7::timestamptz IS NULL THEN now() END
         WHERE workspace_id = $1 AND id = $2 AND state = 'sending' AND attempts = $3 AND lease_until < now()",
    )
    .bind(row.workspace_id)
    .bind(row.id)
    .bind(row.attempts)
    .bind(state.as_str())
    .bind(failure)
    .bind(reconcile)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}
