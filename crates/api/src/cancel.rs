//! `POST /v1/sends/{id}/cancel`: a scheduler withdraws a send that has not been handed to a
//! provider yet (a follow-up after the lead replied, say). A send already in a worker's hands
//! is never interrupted mid-transfer: the answer says so, and it ends sent, failed or
//! ambiguous like any other. Repeating a cancel answers the cancelled send again.

use std::sync::Arc;

use axum::{
    Json,
    extract::{Path, State},
};
use mailroom_domain::{SendId, SendState};
use mailroom_store::sends;
use serde::Deserialize;
use serde_json::Value;

use crate::{ApiError, AppState, auth::Auth, json::ApiJsonOrEmpty, sends::view};

/// The longest reason accepted, in characters.
const MAX_REASON_CHARS: usize = 200;

/// `POST /v1/sends/{id}/cancel` body (optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CancelRequest {
    /// Why, in the scheduler's words; carried by the `send.cancelled` event.
    reason: Option<String>,
}

/// `POST /v1/sends/{id}/cancel` → 200 with the cancelled send; 409 when it is in flight or
/// already finished.
pub(crate) async fn one(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(id): Path<String>,
    ApiJsonOrEmpty(req): ApiJsonOrEmpty<CancelRequest>,
) -> Result<Json<Value>, ApiError> {
    let id: SendId = id.parse().map_err(|_| ApiError::NotFound("send"))?;
    let reason = req.reason.unwrap_or_else(|| "cancelled through the API".to_owned());
    if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS || reason.chars().any(char::is_control) {
        return Err(ApiError::unprocessable(
            "invalid_field",
            format!("`reason`: 1 to {MAX_REASON_CHARS} characters, without control characters"),
        ));
    }
    let mut tx = state.pool.begin().await?;
    let (row, cancelled_now) =
        sends::cancel_one(&mut tx, auth.workspace, id, &reason).await?.ok_or(ApiError::NotFound("send"))?;
    tx.commit().await?;
    let now: SendState = row.state.parse().map_err(|e| ApiError::Internal(Box::new(e)))?;
    match now {
        SendState::Cancelled => {
            if cancelled_now {
                tracing::info!(send.id = %id, "send cancelled");
            }
            Ok(Json(view(&row, !cancelled_now)))
        }
        SendState::Sending => Err(ApiError::StateConflict {
            code: "send_in_flight",
            message: "the send is being handed to its provider and cannot be withdrawn; it will end sent, failed \
                      or ambiguous (watch its events)"
                .into(),
        }),
        SendState::Ambiguous => Err(ApiError::StateConflict {
            code: "send_finished",
            message: "the send is ambiguous (it may have been delivered); settle it with POST /v1/sends/{id}/resolve"
                .into(),
        }),
        finished => Err(ApiError::StateConflict {
            code: "send_finished",
            message: format!("the send is already {}; there is nothing to cancel", finished.as_str()),
        }),
    }
}
