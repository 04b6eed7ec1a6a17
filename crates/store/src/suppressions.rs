//! A workspace's suppression list: addresses never mailed again, each with why and since when.
//! Addresses are stored in their normal form (`mailroom_domain::suppression::normalise`).

use chrono::{DateTime, Utc};
use mailroom_domain::{SuppressionReason, WorkspaceId, suppression::normalise};
use sqlx::PgConnection;

use crate::{Result, StoreError};

/// One suppressed address.
#[derive(Debug, Clone)]
pub struct Suppression {
    /// The address, normalised.
    pub address: String,
    /// Why.
    pub reason: SuppressionReason,
    /// The detail: the provider's answer, the report's status, a note.
    pub detail: String,
    /// Since when.
    pub created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct Raw {
    address: String,
    kind: String,
    reason: String,
    created_at: DateTime<Utc>,
}

impl TryFrom<Raw> for Suppression {
    type Error = StoreError;

    fn try_from(r: Raw) -> Result<Self> {
        let reason = r.kind.parse().map_err(|_| StoreError::Corrupt { column: "suppressions.kind" })?;
        Ok(Self { address: r.address, reason, detail: r.reason, created_at: r.created_at })
    }
}

/// Suppresses one address (idempotent: the first reason stays).
pub async fn add(
    conn: &mut PgConnection,
    ws: WorkspaceId,
    address: &str,
    reason: SuppressionReason,
    detail: &str,
) -> Result<()> {
    add_many(conn, ws, &[address.to_owned()], reason, detail).await.map(|_| ())
}

/// Suppresses many addresses in one statement; returns how many were new.
pub async fn add_many(
    conn: &mut PgConnection,
    ws: WorkspaceId,
    addresses: &[String],
    reason: SuppressionReason,
    detail: &str,
) -> Result<u64> {
    let normal: Vec<String> = addresses.iter().map(|a| normalise(a)).collect();
    let done = sqlx::query(
        "INSERT INTO suppressions (workspace_id, address, kind, reason)
         SELECT $1, a, $3, $4 FROM (SELECT DISTINCT unnest($2::text[]) AS a) u
         ON CONFLICT DO NOTHING",
    )
    .bind(ws.as_uuid())
    .bind(&normal)
    .bind(reason.as_str())
    .bind(detail)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// The entries among `addresses` (compared in normal form).
pub async fn matching(conn: &mut PgConnection, ws: WorkspaceId, addresses: &[String]) -> Result<Vec<Suppression>> {
    let normal: Vec<String> = addresses.iter().map(|a| normalise(a)).collect();
    let rows: Vec<Raw> = sqlx::query_as(
        "SELECT address, kind, reason, created_at FROM suppressions
         WHERE workspace_id = $1 AND address = ANY($2) ORDER BY address",
    )
    .bind(ws.as_uuid())
    .bind(&normal)
    .fetch_all(conn)
    .await?;
    rows.into_iter().map(Suppression::try_from).collect()
}

/// What enqueue checks in one round trip: the entries among `addresses` (in normal form),
/// and the workspace's erasure-hash key, sealed, when it has one (its erased addresses are
/// listed by keyed hash, which only that key computes).
pub async fn screen(
    conn: &mut PgConnection,
    ws: WorkspaceId,
    addresses: &[String],
) -> Result<(Vec<Suppression>, Option<Vec<u8>>)> {
    let normal: Vec<String> = addresses.iter().map(|a| normalise(a)).collect();
    // An entry (its four columns), or the key (the fifth).
    type Row = (Option<String>, Option<String>, Option<String>, Option<DateTime<Utc>>, Option<Vec<u8>>);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT address, kind, reason, created_at, NULL::bytea FROM suppressions
             WHERE workspace_id = $1 AND address = ANY($2)
             UNION ALL
             SELECT NULL, NULL, NULL, NULL, sealed FROM workspace_secrets WHERE workspace_id = $1 AND name = 'erasure'",
    )
    .bind(ws.as_uuid())
    .bind(&normal)
    .fetch_all(conn)
    .await?;
    let mut found = vec![];
    let mut key = None;
    for row in rows {
        match row {
            (Some(address), Some(kind), Some(reason), Some(created_at), _) => {
                found.push(Suppression::try_from(Raw { address, kind, reason, created_at })?);
            }
            (.., sealed) => key = sealed.or(key),
        }
    }
    found.sort_by(|a, b| a.address.cmp(&b.address));
    Ok((found, key))
}

/// A page of the list by address, optionally of one reason (through `(workspace_id, kind,
/// address)` or the primary key).
pub async fn page(
    conn: &mut PgConnection,
    ws: WorkspaceId,
    reason: Option<SuppressionReason>,
    after: &str,
    limit: i64,
) -> Result<Vec<Suppression>> {
    let rows: Vec<Raw> = sqlx::query_as(
        "SELECT address, kind, reason, created_at FROM suppressions
         WHERE workspace_id = $1 AND ($2::text IS NULL OR kind = $2) AND address > $3
         ORDER BY address LIMIT $4",
    )
    .bind(ws.as_uuid())
    .bind(reason.map(|r| r.as_str()))
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.into_iter().map(Suppression::try_from).collect()
}

/// Takes an address off the list. Whether it was there.
pub async fn remove(conn: &mut PgConnection, ws: WorkspaceId, address: &str) -> Result<bool> {
    let done = sqlx::query("DELETE FROM suppressions WHERE workspace_id = $1 AND address = $2")
        .bind(ws.as_uuid())
        .bind(normalise(address))
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// The whole list of a workspace by address, as a stream (the export).
pub fn all(conn: &mut PgConnection, ws: WorkspaceId) -> crate::export::Rows<'_, Suppression> {
    use futures::{StreamExt, TryStreamExt};
    sqlx::query_as::<_, Raw>(
        "SELECT address, kind, reason, created_at FROM suppressions WHERE workspace_id = $1 ORDER BY address",
    )
    .bind(ws.as_uuid())
    .fetch(conn)
    .map_err(StoreError::from)
    .and_then(|r| async move { Suppression::try_from(r) })
    .boxed()
}
