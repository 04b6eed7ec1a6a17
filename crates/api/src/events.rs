//! `GET /v1/events`: the workspace's events in a stable order, by cursor.
//!
//! Each call first publishes committed events (gives them positions in commit order), so a
//! client that pages with `after` never skips one. Events carry a unique `id`: a client that
//! reads a page twice (a retry after a timeout) dedupes on it.

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

/// `GET /v1/events?after=&limit=`.
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
    mailroom_store::events::publish(&state.pool).await?;
    let mut conn = state.pool.acquire().await?;
    let rows = mailroom_store::events::page(&mut conn, auth.workspace, after, limit).await?;
    let next = rows.last().map_or(after, |e| e.pos);
    let events: Vec<Value> = rows.iter().map(|e| e.wire()).collect();
    Ok(Json(json!({ "events": events, "next": next.to_string() })))
}
