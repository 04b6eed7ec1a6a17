//! `GET /v1/audit?after=&limit=`: the workspace's audit trail, oldest first, by cursor. An
//! agency reads a client's trail by naming it in `Mailroom-Workspace` within a grant that
//! holds `audit:read`.

use std::sync::Arc;

use axum::{
    Json,
    extract::{Query, State},
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{ApiError, AppState, auth::Auth};

/// The query string.
#[derive(Debug, Deserialize)]
pub(crate) struct Page {
    /// The `next` of the previous page; from the beginning when absent.
    after: Option<String>,
    /// At most this many (1 to 1000, default 100).
    limit: Option<i64>,
}

/// `GET /v1/audit`.
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Query(page): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    let after = match page.after.as_deref() {
        None | Some("") => 0,
        Some(c) => c.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
            ApiError::bad_request("invalid_cursor", "`after` must be the `next` value of an earlier page")
        })?,
    };
    let limit = page.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("invalid_limit", "`limit` must be 1 to 1000"));
    }
    let mut conn = state.pool.acquire().await?;
    let rows = mailroom_store::audit::page(&mut conn, auth.workspace, after, limit).await?;
    let next = rows.last().map_or(after, |r| r.id);
    let entries: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({ "position": r.id.to_string(), "at": r.created_at, "actor": r.actor, "role": r.role,
                "action": r.action, "target": r.target, "source": r.source, "request_id": r.request_id })
        })
        .collect();
    Ok(Json(json!({ "entries": entries, "next": next.to_string() })))
}
