//! `GET /v1/mailboxes` (the workspace's mailboxes, filtered, a page at a time) and
//! `POST /v1/mailboxes/{id}/pause` / `.../resume` (sending stopped and restarted by hand).

use std::sync::Arc;

use axum::{
    Json,
    extract::{Path, State},
};
use mailroom_domain::MailboxId;
use mailroom_store::{
    mailbox_state::{self, Change, ListFilter},
    mailboxes,
};
use serde::Deserialize;

use crate::views::{MailboxPage, MailboxView};
use crate::{
    ApiError, AppState, Code,
    auth::Auth,
    json::{ApiJsonOrEmpty, ApiQuery},
    mailboxes::view_row,
};

/// The statuses a mailbox can be in.
const STATUSES: [&str; 6] = ["active", "paused", "needs_reauth", "unusable", "disconnected", "disabled"];
/// Who a mailbox authenticates with: a password, or an OAuth provider.
const PROVIDERS: [&str; 3] = ["password", "google", "microsoft"];

/// `GET /v1/mailboxes?status=&provider=&after=&limit=`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    status: Option<String>,
    provider: Option<String>,
    after: Option<String>,
    limit: Option<i64>,
}

fn one_of<'a>(field: &str, value: Option<&'a str>, allowed: &[&str]) -> Result<Option<&'a str>, ApiError> {
    match value {
        Some(v) if !allowed.contains(&v) => {
            Err(ApiError::new(Code::InvalidQuery, format!("`{field}` must be one of {}", allowed.join(", "))))
        }
        v => Ok(v),
    }
}

/// `GET /v1/mailboxes`: oldest first; `next` names the last of a full page.
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<MailboxPage>, ApiError> {
    let status = one_of("status", q.status.as_deref(), &STATUSES)?;
    let provider = one_of("provider", q.provider.as_deref(), &PROVIDERS)?;
    let after =
        match q.after.as_deref().filter(|a| !a.is_empty()) {
            Some(a) => Some(a.parse::<MailboxId>().map_err(|_| {
                ApiError::new(Code::InvalidCursor, "`after` must be the `next` value of an earlier page")
            })?),
            None => None,
        };
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::new(Code::InvalidLimit, "`limit` must be 1 to 1000"));
    }
    let mut tx = state.begin(auth.workspace).await?;
    let rows = mailbox_state::list(&mut tx, auth.workspace, &ListFilter { status, provider, after }, limit).await?;
    let full = i64::try_from(rows.len()).unwrap_or(i64::MAX) == limit;
    let next = rows.last().filter(|_| full).map(|m| MailboxId::from_uuid(m.id));
    Ok(Json(MailboxPage { mailboxes: rows.iter().map(view_row).collect(), next: next.map(|n| n.to_string()) }))
}

/// `{"reason"?}`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PauseRequest {
    /// Why, in the owner's words; carried by the `mailbox.paused` event.
    reason: Option<String>,
}

/// `POST /v1/mailboxes/{id}/pause`: sends nothing until resumed; its sends wait without
/// spending an attempt. 409 unless active (or already paused: then a harmless repeat).
pub(crate) async fn pause(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(id): Path<String>,
    ApiJsonOrEmpty(req): ApiJsonOrEmpty<PauseRequest>,
) -> Result<Json<MailboxView>, ApiError> {
    let id: MailboxId = id.parse().map_err(|_| ApiError::NotFound("mailbox"))?;
    let reason = crate::cancel::reason(req.reason, "paused through the API")?;
    change(&state, &auth, id, Some(&reason)).await
}

/// `POST /v1/mailboxes/{id}/resume`: active again, its waiting sends queued in the order they
/// were accepted.
pub(crate) async fn resume(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<MailboxView>, ApiError> {
    let id: MailboxId = id.parse().map_err(|_| ApiError::NotFound("mailbox"))?;
    change(&state, &auth, id, None).await
}

/// Pauses (with a reason) or resumes, audited when it changed something.
async fn change(
    state: &AppState,
    auth: &Auth,
    id: MailboxId,
    pause: Option<&str>,
) -> Result<Json<MailboxView>, ApiError> {
    let ws = auth.workspace;
    let mut tx = state.begin(ws).await?;
    let done = match pause {
        Some(reason) => mailbox_state::pause(&mut tx, ws, id, reason).await?,
        None => mailbox_state::resume(&mut tx, ws, id).await?,
    };
    let (action, verb) = if pause.is_some() { ("mailbox.pause", "paused") } else { ("mailbox.resume", "resumed") };
    let resumed = match done.ok_or(ApiError::NotFound("mailbox"))? {
        Change::Refused(status) => {
            return Err(ApiError::Refused {
                code: Code::MailboxNotActive,
                message: format!(
                    "the mailbox is `{status}`: only an active mailbox is paused, and only a paused one resumed \
                     (reconnect or re-check it first)"
                ),
            });
        }
        Change::Already => 0,
        Change::Done { resumed } => {
            let target = id.to_string();
            mailroom_store::audit::record(&mut tx, Some(ws), &auth.actor(), action, Some(&target)).await?;
            tracing::info!(mailbox.id = %id, resumed, "mailbox {verb}");
            resumed
        }
    };
    let row = mailboxes::get(&mut tx, ws, id).await?.ok_or(ApiError::NotFound("mailbox"))?;
    tx.commit().await?;
    Ok(Json(MailboxView::resumed(&row, resumed)))
}
