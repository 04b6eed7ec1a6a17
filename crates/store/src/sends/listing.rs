//! Listing a workspace's sends by any mix of filters, a page at a time, oldest first.
//!
//! Every filter has an index that leads with `workspace_id` and ends with `id`, so a page is an
//! index range read in cursor order, never a sort of the matches, at any ledger size:
//! `(workspace_id, id)`, `(workspace_id, state, id)`, `(workspace_id, mailbox_id, id)`,
//! `(workspace_id, sequence, id)`, a GIN index on `metadata` (containment), and
//! `(workspace_id, finished_at)` for sent sends. A creation range needs none of its own: ids
//! are UUID v7, ordered by creation time, so it is a range of ids.

use chrono::{DateTime, Utc};
use mailroom_domain::{MailboxId, SendId, SendState, WorkspaceId};
use sqlx::{PgConnection, Postgres, QueryBuilder};

use super::SendRow;
use crate::Result;

/// What a listing asks for; every part optional.
#[derive(Debug, Default, Clone)]
pub struct SendFilter {
    /// Only sends in this state.
    pub state: Option<SendState>,
    /// Only sends of this mailbox.
    pub mailbox: Option<MailboxId>,
    /// Only the steps of this sequence.
    pub sequence: Option<String>,
    /// Only sends whose metadata contains this object (`{"campaign": "c7"}`).
    pub metadata: Option<serde_json::Value>,
    /// Created at or after.
    pub created_from: Option<DateTime<Utc>>,
    /// Created before.
    pub created_to: Option<DateTime<Utc>>,
    /// Sent at or after (only sent sends).
    pub sent_from: Option<DateTime<Utc>>,
    /// Sent before (only sent sends).
    pub sent_to: Option<DateTime<Utc>>,
    /// After this send (the previous page's last).
    pub after: Option<SendId>,
}

/// The smallest UUID v7 of the millisecond `at` (every id created then or later is not less).
fn first_id_at(at: DateTime<Utc>) -> uuid::Uuid {
    let ms = u64::try_from(at.timestamp_millis()).unwrap_or(0) & 0xFFFF_FFFF_FFFF;
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    bytes[6] = 0x70; // version 7
    bytes[8] = 0x80; // RFC 4122 variant
    uuid::Uuid::from_bytes(bytes)
}

/// The statement of a listing, after `head` (`SELECT *`, or `EXPLAIN SELECT *` for its plan).
fn query(head: &str, ws: WorkspaceId, f: &SendFilter, limit: i64) -> QueryBuilder<Postgres> {
    let mut q = QueryBuilder::new(format!("{head} FROM sends WHERE workspace_id = "));
    q.push_bind(ws.as_uuid());
    if let Some(s) = f.state {
        q.push(" AND state = ").push_bind(s.as_str());
    }
    if let Some(m) = f.mailbox {
        q.push(" AND mailbox_id = ").push_bind(m.as_uuid());
    }
    if let Some(seq) = &f.sequence {
        q.push(" AND sequence = ").push_bind(seq.clone());
    }
    if let Some(meta) = &f.metadata {
        // `IS NOT NULL` lets the planner use the partial GIN index (sends without metadata
        // are not in it, so they cost their insert nothing).
        q.push(" AND metadata IS NOT NULL AND metadata @> ").push_bind(meta.clone());
    }
    if let Some(from) = f.created_from {
        q.push(" AND id >= ").push_bind(first_id_at(from));
    }
    if let Some(to) = f.created_to {
        q.push(" AND id < ").push_bind(first_id_at(to));
    }
    if f.sent_from.is_some() || f.sent_to.is_some() {
        q.push(" AND state = 'sent'");
    }
    if let Some(from) = f.sent_from {
        q.push(" AND finished_at >= ").push_bind(from);
    }
    if let Some(to) = f.sent_to {
        q.push(" AND finished_at < ").push_bind(to);
    }
    if let Some(after) = f.after {
        q.push(" AND id > ").push_bind(after.as_uuid());
    }
    q.push(" ORDER BY id LIMIT ").push_bind(limit);
    q
}

/// A page of the workspace's sends matching `f`, oldest first.
pub async fn list(conn: &mut PgConnection, ws: WorkspaceId, f: &SendFilter, limit: i64) -> Result<Vec<SendRow>> {
    Ok(query("SELECT *", ws, f, limit).build_query_as().fetch_all(conn).await?)
}

/// The plan PostgreSQL chooses for a listing, one line per node (tests and docs show that each
/// filter reads an index in cursor order).
pub async fn plan(conn: &mut PgConnection, ws: WorkspaceId, f: &SendFilter, limit: i64) -> Result<Vec<String>> {
    Ok(query("EXPLAIN SELECT *", ws, f, limit).build_query_scalar().fetch_all(conn).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_id_of_a_millisecond_sorts_before_every_id_made_then() {
        let at = Utc::now();
        let lower = first_id_at(at);
        let made = uuid::Uuid::now_v7();
        assert!(lower <= made, "{lower} {made}");
        assert!(first_id_at(at + chrono::Duration::seconds(1)) > made);
        assert_eq!(lower.get_version_num(), 7);
    }
}
