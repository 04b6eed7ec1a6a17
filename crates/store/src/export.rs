//! A workspace's data read whole, row by row, for `GET /v1/export`: each function streams one
//! table in a stable order, so the caller writes rows out as they arrive and holds none. Run
//! them in one [`crate::scope::begin_snapshot`] transaction for a consistent export.

use futures::{StreamExt, TryStreamExt, stream::BoxStream};
use mailroom_domain::WorkspaceId;
use sqlx::PgConnection;

use crate::{
    Result, StoreError, audit::AuditRow, events::FeedEvent, mailboxes::MailboxRow, sends::SendRow,
    suppressions::Suppression,
};

/// A stream of rows borrowing the transaction.
pub type Rows<'c, T> = BoxStream<'c, Result<T>>;

/// The rows of `sql`, whose one parameter is the workspace.
fn of_workspace<'c, T>(sql: &'static str, conn: &'c mut PgConnection, ws: WorkspaceId) -> Rows<'c, T>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin + 'c,
{
    sqlx::query_as(sql).bind(ws.as_uuid()).fetch(conn).map_err(StoreError::from).boxed()
}

/// Every send, by id (the ledger: states, timestamps, metadata; callers show no payload).
pub fn sends(conn: &mut PgConnection, ws: WorkspaceId) -> Rows<'_, SendRow> {
    of_workspace("SELECT * FROM sends WHERE workspace_id = $1 ORDER BY id", conn, ws)
}

/// Every published event, in feed order, as the feed shows it.
pub fn events(conn: &mut PgConnection, ws: WorkspaceId) -> Rows<'_, FeedEvent> {
    crate::events::all(conn, ws)
}

/// Every mailbox, oldest first (the row holds no secret: those are in `mailbox_secrets`).
pub fn mailboxes(conn: &mut PgConnection, ws: WorkspaceId) -> Rows<'_, MailboxRow> {
    of_workspace("SELECT * FROM mailboxes WHERE workspace_id = $1 ORDER BY created_at, id", conn, ws)
}

/// The suppression list, by address.
pub fn suppressions(conn: &mut PgConnection, ws: WorkspaceId) -> Rows<'_, Suppression> {
    crate::suppressions::all(conn, ws)
}

/// The audit trail, oldest first.
pub fn audit(conn: &mut PgConnection, ws: WorkspaceId) -> Rows<'_, AuditRow> {
    of_workspace(
        "SELECT id, actor, role, request_id, action, target, source, created_at FROM audit_log
         WHERE workspace_id = $1 ORDER BY id",
        conn,
        ws,
    )
}
