//! The job queue (apalis-postgres): enqueueing inside the caller's transaction, and pruning.

use chrono::{DateTime, Utc};
use mailroom_domain::SendJob;
use sqlx::PgConnection;

use crate::{Result, StoreError};

/// Enqueues send jobs to run at the given instants, in the caller's transaction, so a job
/// exists if and only if the ledger change that needs it commits.
pub async fn push_sends(conn: &mut PgConnection, jobs: &[(SendJob, DateTime<Utc>)]) -> Result<()> {
    if jobs.is_empty() {
        return Ok(());
    }
    let tasks = jobs
        .iter()
        .map(|(job, at)| {
            let bytes = serde_json::to_vec(job).map_err(|_| StoreError::Corrupt { column: "job" })?;
            let at = u64::try_from(at.timestamp()).unwrap_or(0);
            Ok(apalis_core::task::builder::TaskBuilder::new(bytes).run_at_timestamp(at).max_attempts(25).build())
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
