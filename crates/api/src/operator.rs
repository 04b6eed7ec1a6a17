//! `GET /v1/sends` (the workspace's sends, filtered, a page at a time) and
//! `POST /v1/sends/{id}/resolve` (settling an ambiguous send).

use std::sync::Arc;

use axum::{
    Json,
    extract::{Path, State},
};
use chrono::{DateTime, Utc};
use mailroom_domain::{MailboxId, SendId, SendState};
use mailroom_store::sends::{self, SendFilter};
use serde::Deserialize;
use serde_json::json;

use crate::{
    ApiError, AppState, Code,
    auth::Auth,
    json::ApiJson,
    ops,
    sends::view,
    views::{SendPage, SendView},
};

/// `GET /v1/sends` filters, every one optional.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    state: Option<String>,
    mailbox_id: Option<String>,
    sequence: Option<String>,
    /// With `metadata_value`: sends whose metadata has this key with this (string) value.
    metadata_key: Option<String>,
    metadata_value: Option<String>,
    created_from: Option<DateTime<Utc>>,
    created_to: Option<DateTime<Utc>>,
    sent_from: Option<DateTime<Utc>>,
    sent_to: Option<DateTime<Utc>>,
    after: Option<String>,
    limit: Option<i64>,
}

fn bad(field: &str, problem: impl std::fmt::Display) -> ApiError {
    ApiError::new(Code::InvalidQuery, format!("`{field}`: {problem}"))
}

impl ListQuery {
    fn filter(self) -> Result<SendFilter, ApiError> {
        let state = self.state.as_deref().map(str::parse::<SendState>).transpose().map_err(|e| bad("state", e))?;
        let mailbox =
            self.mailbox_id.as_deref().map(str::parse::<MailboxId>).transpose().map_err(|e| bad("mailbox_id", e))?;
        if let Some(seq) = &self.sequence {
            crate::validate::sequence_name(seq).map_err(|_| bad("sequence", "1 to 200 characters"))?;
        }
        let metadata = match (self.metadata_key, self.metadata_value) {
            (None, None) => None,
            (Some(k), Some(v)) if !k.is_empty() => Some(json!({ k: v })),
            _ => return Err(bad("metadata_key", "comes with `metadata_value`, both non-empty")),
        };
        let after = match self.after.as_deref().filter(|a| !a.is_empty()) {
            Some(a) => Some(a.parse::<SendId>().map_err(|_| {
                ApiError::new(Code::InvalidCursor, "`after` must be the `next` value of an earlier page")
            })?),
            None => None,
        };
        Ok(SendFilter {
            state,
            mailbox,
            sequence: self.sequence,
            metadata,
            created_from: self.created_from,
            created_to: self.created_to,
            sent_from: self.sent_from,
            sent_to: self.sent_to,
            after,
        })
    }
}

/// `GET /v1/sends?state=&mailbox_id=&sequence=&metadata_key=&metadata_value=&created_from=&created_to=&sent_from=&sent_to=&after=&limit=`:
/// oldest first; `next` is the last id of a full page.
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    crate::json::ApiQuery(q): crate::json::ApiQuery<ListQuery>,
) -> Result<Json<SendPage>, ApiError> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1_000).contains(&limit) {
        return Err(ApiError::new(Code::InvalidLimit, "`limit` must be 1 to 1000"));
    }
    let filter = q.filter()?;
    let mut conn = state.begin(auth.workspace).await?;
    let rows = sends::list_filtered(&mut conn, auth.workspace, &filter, limit).await?;
    let full = i64::try_from(rows.len()).unwrap_or(i64::MAX) == limit;
    let next = rows.last().filter(|_| full).map(|r| r.send_id());
    Ok(Json(SendPage { sends: rows.iter().map(|r| view(r, false)).collect(), next }))
}

#[derive(Deserialize, utoipa::ToSchema)]
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
) -> Result<Json<SendView>, ApiError> {
    let id: SendId = id.parse().map_err(|_| ApiError::NotFound("send"))?;
    let resolution = ops::parse_resolution(&req.action)?;
    if req.note.len() > 1_000 || req.note.chars().any(char::is_control) {
        return Err(ApiError::new(Code::InvalidField, "`note`: at most 1000 characters, no control characters"));
    }
    let row = ops::resolve(&state.pool, auth.workspace, id, resolution, &auth.actor(), &req.note).await?;
    Ok(Json(view(&row, false)))
}
