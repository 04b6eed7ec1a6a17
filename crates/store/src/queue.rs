//! The job queue (apalis-postgres): enqueueing inside the caller's transaction, and pruning.

use chrono::{DateTime, Utc};
use mailroom_domain::SendJob;
use sqlx::PgConnection;

use apalis_core::task::{builder::TaskBuilder, task_id::TaskId};

use crate::{Result, StoreError, sends::SendRow};

/// apalis re-runs a job whose handler failed (an infrastructure error: the handler settles
/// every send outcome itself) up to this many times; past it, the sweeper takes over.
const MAX_ATTEMPTS: usize = 100;

/// Enqueues the next job of a send already in the ledger (a retry, a pacing reservation, a
/// recovery), in the caller's transaction, at the priority the send was first enqueued with:
/// a small tenant's retry must not fall behind a large tenant's backlog.
pub async fn reschedule(conn: &mut PgConnection, row: &SendRow, at: DateTime<Utc>) -> Result<()> {
    let job = SendJob { send_id: row.send_id(), workspace_id: row.workspace() };
    push_sends_with_priority(conn, &[(job, at)], usize::try_from(row.queue_priority).unwrap_or(0)).await
}

/// The priority of new sends of a workspace that already has `backlog` waiting: a workspace
/// with little waiting goes ahead of one with a large backlog, so one busy tenant cannot
/// delay everyone else's ready sends (the queue fetches by priority, then by due time).
pub fn fairness_priority(backlog: i64) -> usize {
    let magnitude = ((backlog.max(0) + 1) as f64).log10().floor() as usize;
    4usize.saturating_sub(magnitude)
}

/// Enqueues send jobs to run at the given instants with a queue priority (higher first), in
/// the caller's transaction, so a job exists if and only if the ledger change that needs it
/// commits.
pub async fn push_sends_with_priority(
    conn: &mut PgConnection,
    jobs: &[(SendJob, DateTime<Utc>)],
    priority: usize,
) -> Result<()> {
    if jobs.is_empty() {
        return Ok(());
    }
    // Our own job ids (ULIDs, as apalis makes them) so the ledger can name each send's job.
    let ids: Vec<String> = jobs.iter().map(|_| ulid::Ulid::generate().to_string()).collect();
    let tasks = jobs
        .iter()
        .zip(&ids)
        .map(|((job, at), id)| {
            let bytes = serde_json::to_vec(job).map_err(|_| StoreError::Corrupt { column: "job" })?;
            let at = u64::try_from(at.timestamp()).unwrap_or(0);
            Ok(TaskBuilder::new(bytes)
                .task_id(TaskId::from_string(id.clone()))
                .run_at_timestamp(at)
                .max_attempts(MAX_ATTEMPTS)
                .priority(priority)
                .build())
        })
        .collect::<Result<Vec<_>>>()?;
    apalis_postgres::queries::push_tasks(&mut *conn, SendJob::QUEUE, tasks).await?;
    let sends: Vec<uuid::Uuid> = jobs.iter().map(|(j, _)| j.send_id.as_uuid()).collect();
    sqlx::query(
        "UPDATE sends SET job_id = x.job, queue_priority = $3
         FROM unnest($1::uuid[], $2::text[]) AS x(id, job) WHERE sends.id = x.id",
    )
    .bind(&sends)
    .bind(&ids)
    .bind(i16::try_from(priority).unwrap_or(i16::MAX))
    .execute(conn)
    .await?;
    Ok(())
}

/// Queues sends again at `at`, each at the priority it was first enqueued with (priorities are
/// few, so one push per priority), in the order given.
pub async fn requeue(conn: &mut PgConnection, jobs: &[(SendJob, usize)], at: DateTime<Utc>) -> Result<()> {
    let mut by_priority: std::collections::BTreeMap<usize, Vec<(SendJob, DateTime<Utc>)>> = Default::default();
    for (job, priority) in jobs {
        by_priority.entry(*priority).or_default().push((*job, at));
    }
    for (priority, jobs) in &by_priority {
        push_sends_with_priority(conn, jobs, *priority).await?;
    }
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

/// Sends that should have been handled by now but have no live job (it was killed after too
/// many failures, pruned, or lost): due and waiting, or leased by a worker long gone. Locks
/// them (skipping ones another sweeper holds) for the caller's transaction.
pub async fn orphaned_sends(
    conn: &mut PgConnection,
    older_than: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<(SendJob, usize)>> {
    let rows: Vec<(uuid::Uuid, uuid::Uuid, i16)> = sqlx::query_as(
        "SELECT s.id, s.workspace_id, s.queue_priority FROM sends s
         WHERE ((s.state IN ('queued', 'retry_wait') AND s.next_attempt_at < $1)
                OR (s.state = 'sending' AND s.lease_until < $1))
           AND NOT EXISTS (
               SELECT 1 FROM apalis.jobs j WHERE j.id = s.job_id
                 AND (j.status IN ('Pending', 'Queued', 'Running') OR (j.status = 'Failed' AND j.attempts < j.max_attempts)))
         LIMIT $2
         FOR UPDATE OF s SKIP LOCKED",
    )
    .bind(older_than)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(s, w, p)| {
            let job = SendJob {
                send_id: mailroom_domain::SendId::from_uuid(s),
                workspace_id: mailroom_domain::WorkspaceId::from_uuid(w),
            };
            (job, usize::try_from(p).unwrap_or(0))
        })
        .collect())
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
