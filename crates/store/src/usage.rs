//! Usage per workspace and day (UTC), for Billing. The ledger's triggers append one small row
//! per accepted, sent or failed send (`usage_deltas`: plain inserts, so no two transactions
//! ever wait on each other for a counter); housekeeping folds them into one row per workspace
//! and day (`usage_daily`). A read sums the folded days and the few deltas not folded yet.

use mailroom_domain::WorkspaceId;
use sqlx::PgConnection;

use crate::Result;

/// A workspace's usage on one day (UTC).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UsageDay {
    /// The day.
    pub day: chrono::NaiveDate,
    /// Sends accepted.
    pub accepted: i64,
    /// Sends delivered.
    pub sent: i64,
    /// Sends failed.
    pub failed: i64,
}

/// Usage per day from `from` to `to` (inclusive), days without any left out. Reads one row per
/// day plus the deltas not folded yet, never the ledger itself.
pub async fn days(
    conn: &mut PgConnection,
    ws: WorkspaceId,
    from: chrono::NaiveDate,
    to: chrono::NaiveDate,
) -> Result<Vec<UsageDay>> {
    Ok(sqlx::query_as(
        "SELECT day, sum(accepted)::bigint AS accepted, sum(sent)::bigint AS sent, sum(failed)::bigint AS failed
         FROM (SELECT day, accepted, sent, failed FROM usage_daily WHERE workspace_id = $1 AND day BETWEEN $2 AND $3
               UNION ALL
               SELECT day, accepted, sent, failed FROM usage_deltas WHERE workspace_id = $1 AND day BETWEEN $2 AND $3) u
         GROUP BY day ORDER BY day",
    )
    .bind(ws.as_uuid())
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await?)
}

/// Folds the deltas into one row per workspace and day; returns how many deltas it folded.
/// Safe in several workers at once: a delta is deleted by exactly one fold.
pub async fn fold(conn: &mut PgConnection, limit: i64) -> Result<u64> {
    let folded: i64 = sqlx::query_scalar(
        "WITH picked AS (SELECT ctid FROM usage_deltas LIMIT $1 FOR UPDATE SKIP LOCKED),
              moved AS (DELETE FROM usage_deltas d USING picked WHERE d.ctid = picked.ctid
                        RETURNING d.workspace_id, d.day, d.accepted, d.sent, d.failed),
              summed AS (SELECT workspace_id, day, sum(accepted) AS accepted, sum(sent) AS sent,
                                sum(failed) AS failed, count(*) AS n
                         FROM moved GROUP BY workspace_id, day),
              upserted AS (INSERT INTO usage_daily (workspace_id, day, accepted, sent, failed)
                           SELECT workspace_id, day, accepted, sent, failed FROM summed ORDER BY workspace_id, day
                           ON CONFLICT (workspace_id, day) DO UPDATE SET
                               accepted = usage_daily.accepted + EXCLUDED.accepted,
                               sent = usage_daily.sent + EXCLUDED.sent,
                               failed = usage_daily.failed + EXCLUDED.failed)
         SELECT coalesce(sum(n), 0)::bigint FROM summed",
    )
    .bind(limit)
    .fetch_one(conn)
    .await?;
    Ok(u64::try_from(folded).unwrap_or(0))
}
