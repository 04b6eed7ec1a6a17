//! `GET /v1/events`: the workspace's events in a stable order, by cursor.
//!
//! Each call first publishes committed events (gives them positions in commit order), so a
//! client that pages with `after` never skips one. Events carry a unique `id`: a client that
//! reads a page twice (a retry after a timeout) dedupes on it.

use std::sync::Arc;

use axum::{Json, extract::State};
use mailroom_domain::MailboxId;
use serde::Deserialize;

use crate::{ApiError, AppState, Code, auth::Auth, page::Page, views::EventPage};

/// `GET /v1/events` query: the page, and optionally one event type and one mailbox.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct FeedQuery {
    after: Option<String>,
    limit: Option<i64>,
    #[serde(rename = "type")]
    kind: Option<String>,
    mailbox_id: Option<String>,
}

/// `GET /v1/events?after=&limit=&type=&mailbox_id=`.
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    crate::json::ApiQuery(q): crate::json::ApiQuery<FeedQuery>,
) -> Result<Json<EventPage>, ApiError> {
    let (after, limit) = Page::new(q.after, q.limit).bounds()?;
    let mailbox = q
        .mailbox_id
        .as_deref()
        .map(str::parse::<MailboxId>)
        .transpose()
        .map_err(|e| ApiError::new(Code::InvalidQuery, format!("`mailbox_id`: {e}")))?;
    mailroom_store::events::publish(&state.pool).await?;
    let mut conn = state.begin(auth.workspace).await?;
    let filter = mailroom_store::events::FeedFilter { kind: q.kind.as_deref(), mailbox };
    let rows = mailroom_store::events::page(&mut conn, auth.workspace, after, limit, &filter).await?;
    let next = rows.last().map_or(after, |e| e.pos);
    Ok(Json(EventPage { events: rows.iter().map(|e| e.wire()).collect(), next: next.to_string() }))
}
