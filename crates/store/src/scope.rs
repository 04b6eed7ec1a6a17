//! The workspace a transaction works in, for row-level security.
//!
//! The API's role sees and writes only the rows of the workspace named by the
//! transaction-local setting `mailroom.workspace` (the `row_security` migration), underneath
//! the `workspace_id` every statement already names. [`begin`] opens a transaction with the
//! setting in the same round trip as its `BEGIN`; the setting ends with the transaction, so a
//! pooled connection never carries one request's workspace to the next (and without one the
//! API's role sees nothing). Under the owner (the CLI) or a worker's role the setting changes
//! nothing, so business actions shared with them scope themselves unconditionally.

use mailroom_domain::WorkspaceId;
use sqlx::{PgConnection, PgPool, Postgres, Transaction};

use crate::Result;

/// A transaction scoped to one workspace.
pub type Scoped = Transaction<'static, Postgres>;

/// Begins a transaction that works in `ws`.
pub async fn begin(pool: &PgPool, ws: WorkspaceId) -> Result<Scoped> {
    // A `WorkspaceId` formats as a bare UUID (hex digits and dashes): nothing to quote. One
    // simple-query message carries both statements, so the scope costs no round trip of its own.
    let sql = format!("BEGIN; SELECT set_config('mailroom.workspace', '{}', true)", ws.as_uuid());
    Ok(pool.begin_with(sqlx::AssertSqlSafe(sql)).await?)
}

/// Begins a transaction in `ws` that records sends: it holds the workspace's erasure lock shared
/// (in the same round trip), so an erasure's first step waits for it and a send screened here
/// is either found by that erasure or refused after it (see `erasure`). Enqueues never wait
/// for one another.
pub async fn begin_enqueue(pool: &PgPool, ws: WorkspaceId) -> Result<Scoped> {
    let sql = format!(
        "BEGIN; SELECT set_config('mailroom.workspace', '{}', true), pg_advisory_xact_lock_shared({})",
        ws.as_uuid(),
        crate::erasure::lock_key_sql(ws)
    );
    Ok(pool.begin_with(sqlx::AssertSqlSafe(sql)).await?)
}

/// How long one statement of an export may run: it streams a whole table to a reader, which the
/// API drops after a stall, so this only bounds a runaway.
const EXPORT_STATEMENT_TIMEOUT: &str = "30min";

/// Begins a read-only transaction in `ws` that sees one snapshot throughout (an export reads
/// several tables as they were at one instant).
pub async fn begin_snapshot(pool: &PgPool, ws: WorkspaceId) -> Result<Scoped> {
    let sql = format!(
        "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;
         SELECT set_config('mailroom.workspace', '{}', true), set_config('statement_timeout', '{}', true)",
        ws.as_uuid(),
        EXPORT_STATEMENT_TIMEOUT
    );
    Ok(pool.begin_with(sqlx::AssertSqlSafe(sql)).await?)
}

/// Moves an open transaction to `ws`: a step that writes another workspace's rows (a parent's
/// audit trail when a sub-workspace is created or deleted).
pub async fn enter(conn: &mut PgConnection, ws: WorkspaceId) -> Result<()> {
    sqlx::query("SELECT set_config('mailroom.workspace', $1, true)")
        .bind(ws.as_uuid().to_string())
        .execute(conn)
        .await?;
    Ok(())
}

/// [`enter`] when `needed`: a step that may or may not leave the transaction's workspace.
pub async fn enter_if(conn: &mut PgConnection, needed: bool, ws: WorkspaceId) -> Result<()> {
    if needed { enter(conn, ws).await } else { Ok(()) }
}
