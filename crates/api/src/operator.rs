//! `GET /v1/sends?state=...` and `POST /v1/sends/{id}/resolve`: what an operator needs to find
//! ambiguous sends and settle them.

use std::sync::Arc;

use axum::{
    Json,
    extract::{Path, State},
};
use mailroom_domain::{SendId, SendState};
use mailroom_store::sends;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{ApiError, AppState, auth::Auth, json::ApiJson, ops, sends::view};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    state: String,
    after: Option<String>,
    limit: Option<i64>,
}

/// `GET /v1/sends?state=ambiguous&after=snd_...&limit=100`.
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    crate::json::ApiQuery(q): crate::json::ApiQuery<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let wanted: SendState =
        q.state.parse().map_err(|e| ApiError::bad_request("invalid_query", format!("`state`: {e}")))?;
    let after = q
        .after
        .as_deref()
        .map(str::parse::<SendId>)
        .transpose()
        .map_err(|e| ApiError::bad_request("invalid_query", format!("`after`: {e}")))?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1_000).contains(&limit) {
        return Err(ApiError::bad_request("invalid_query", "`limit` must be 1 to 1000"));
    }
    let mut conn = state.begin(auth.workspace).await?;
    let rows = sends::list(&mut conn, auth.workspace, wanted, after, limit).await?;
    let next = (rows.len() as i64 == limit).then(|| rows.last().map(|r| r.send_id())).flatten();
    Ok(Json(json!({ "sends": rows.iter().map(|r| view(r, false)).collect::<Vec<_>>(), "next_after": next })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResolveRequest {
    action: String,
    #[serde(default)]
    note: String,
}

/// `POST /v1/sends/{id}/resolve` with `{"action": "mark-sent" | "resend" | "cancel", "note"}`.
pub(crate) async fn resolve(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ResolveRequest>,
) -> Result<Json<Value>, ApiError> {
    let id: SendId = id.parse().map_err(|_| ApiError::NotFound("send"))?;
    let resolution = ops::parse_resolution(&req.action)?;
    if req.note.len() > 1_000 || req.note.chars().any(char::is_control) {
        return Err(ApiError::unprocessable("invalid_field", "`note`: at most 1000 characters, no control characters"));
    }
    let row = ops::resolve(&state.pool, auth.workspace, id, resolution, &auth.actor(), &req.note).await?;
    Ok(Json(view(&row, false)))
}
