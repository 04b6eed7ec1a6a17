//! The job queue (apalis-postgres): enqueueing inside the caller's transaction, and pruning.

use chrono::{DateTime, Utc};
use mailroom_domain::SendJob;
use sqlx::PgConnection;

use crate::{Result, StoreError};

/// Enqueues send jobs to run at the given instants, in the caller's transaction, so a job
/// exists if and only if the ledger change that needs it commits.
pub async fn push_sends(conn: &mut PgConnection, jobs: &[(SendJob, DateTime<Utc>)]) -> Result<()> {
    push_sends_with_priority(conn, jobs, 0).await
}

/// The priority of new sends of a workspace that already has `backlog` waiting: a workspace
/// with little waiting goes ahead of one with a large backlog, so one busy tenant cannot
/// delay everyone else's ready sends (the queue fetches by priority, then by due time).
pub fn fairness_priority(backlog: i64) -> usize {
    let magnitude = ((backlog.max(0) + 1) as f64).log10().floor() as usize;
    4usize.saturating_sub(magnitude)
}

/// [`push_sends`] with an explicit queue priority (higher first).
pub async fn push_sends_with_priority(
    conn: &mut PgConnection,
    jobs: &[(SendJob, DateTime<Utc>)],
    priority: usize,
) -> Result<()> {
    if jobs.is_empty() {
        return Ok(());
    }
    let tasks = jobs
        .iter()
        .map(|(job, at)| {
            let bytes = serde_json::to_vec(job).map_err(|_| StoreError::Corrupt { column: "job" })?;
            let at = u64::try_from(at.timestamp()).unwrap_or(0);
            Ok(apalis_core::task::builder::TaskBuilder::new(bytes)
                .run_at_timestamp(at)
                .max_attempts(25)
                .priority(priority)
                .build())
        })
        .collect::<Result<Vec<_>>>()?;
    apalis_postgres::queries::push_tasks(conn, SendJob::QUEUE, tasks).await?;
    Ok(())
}

/// Deletes finished job rows older than `older_than` (apalis never deletes them). Returns how
/// many were removed. The ledger keeps its own rows: they hold the idempotency keys.
pub async fn prune_finished(conn: &mut PgConnection, older_than: DateTime<Utc>) -> Result<u64> {
    let done = sqlx::query("DELETE FROM apalis.jobs WHERE status IN ('Done', 'Killed') AND done_at < $1")
        .bind(older_than)
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_backlog_outranks_a_large_one() {
        assert_eq!(fairness_priority(0), 4);
        assert_eq!(fairness_priority(10), 3);
        assert_eq!(fairness_priority(1_000), 1);
        assert_eq!(fairness_priority(50_000), 0);
    }
}
