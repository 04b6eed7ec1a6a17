//! `GET /v1/events`: the workspace's events in a stable order, by cursor.
//!
//! Each call first publishes committed events (gives them positions in commit order), so a
//! client that pages with `after` never skips one. Events carry a unique `id`: a client that
//! reads a page twice (a retry after a timeout) dedupes on it.

use std::sync::Arc;

use axum::{Json, extract::State};
use serde_json::{Value, json};

use crate::{ApiError, AppState, auth::Auth, page::Page};

/// `GET /v1/events?after=&limit=`.
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    crate::json::ApiQuery(page): crate::json::ApiQuery<Page>,
) -> Result<Json<Value>, ApiError> {
    let (after, limit) = page.bounds()?;
    mailroom_store::events::publish(&state.pool).await?;
    let mut conn = state.begin(auth.workspace).await?;
    let rows = mailroom_store::events::page(&mut conn, auth.workspace, after, limit).await?;
    let next = rows.last().map_or(after, |e| e.pos);
    let events: Vec<Value> = rows.iter().map(|e| e.wire()).collect();
    Ok(Json(json!({ "events": events, "next": next.to_string() })))
}
