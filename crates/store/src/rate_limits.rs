//! Rate-limit buckets, shared by every API replica through PostgreSQL: GCRA (the generic cell
//! rate algorithm), one statement per request for all the buckets it draws on. A bucket is one
//! row holding its theoretical arrival time (`tat`); a request is allowed when moving `tat` one
//! emission interval on stays within the burst tolerance. A denied request moves nothing.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::Result;

/// One bucket a request draws on.
#[derive(Debug, Clone)]
pub struct Draw {
    /// The bucket's name (`key:<id>:reads`, `workspace:<id>:sends`, `source:<address>`).
    pub bucket: String,
    /// Seconds between two requests at the sustained rate.
    pub emission_secs: f64,
    /// How far ahead of now `tat` may run: the burst, in seconds (burst × emission).
    pub tolerance_secs: f64,
}

/// What a bucket said.
#[derive(Debug, Clone)]
pub struct Drawn {
    /// The bucket's name.
    pub bucket: String,
    /// Whether the request fits this bucket (it is allowed only if it fits them all).
    pub allowed: bool,
    /// The bucket's theoretical arrival time after this request (unmoved when denied).
    pub tat: DateTime<Utc>,
    /// The database's clock when it decided.
    pub now: DateTime<Utc>,
}

/// Draws on every bucket in one statement; answers in the order given. The request is allowed
/// only if every bucket allows it, and only then does any bucket move.
pub async fn draw(conn: &mut PgConnection, draws: &[Draw]) -> Result<Vec<Drawn>> {
    let names: Vec<&str> = draws.iter().map(|d| d.bucket.as_str()).collect();
    let emission: Vec<f64> = draws.iter().map(|d| d.emission_secs).collect();
    let tolerance: Vec<f64> = draws.iter().map(|d| d.tolerance_secs).collect();
    // The all-or-nothing decision and its locking are in `rate_draw` (see its migration).
    let rows: Vec<(String, bool, DateTime<Utc>, DateTime<Utc>)> =
        sqlx::query_as("SELECT name, allowed, arrival, decided_at FROM rate_draw($1, $2, $3)")
            .bind(&names)
            .bind(&emission)
            .bind(&tolerance)
            .fetch_all(conn)
            .await?;
    Ok(draws
        .iter()
        .filter_map(|d| rows.iter().find(|r| r.0 == d.bucket))
        .map(|(bucket, allowed, tat, now)| Drawn { bucket: bucket.clone(), allowed: *allowed, tat: *tat, now: *now })
        .collect())
}

/// Deletes buckets that are full again (equivalent to absent); returns how many.
pub async fn prune(conn: &mut PgConnection) -> Result<u64> {
    // Rows a request holds are skipped, never waited for: no deadlock with `rate_draw`.
    let pruned = sqlx::query(
        "DELETE FROM rate_buckets WHERE bucket IN
           (SELECT bucket FROM rate_buckets WHERE tat < now() - interval '1 minute' FOR UPDATE SKIP LOCKED)",
    )
    .execute(conn)
    .await?;
    Ok(pruned.rows_affected())
}
