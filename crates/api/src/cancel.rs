//! `POST /v1/sends/{id}/cancel`: a scheduler withdraws a send that has not been handed to a
//! provider yet (a follow-up after the lead replied, say). A send already in a worker's hands
//! is never interrupted mid-transfer: the answer says so, and it ends sent, failed or
//! ambiguous like any other. Repeating a cancel answers the cancelled send again.
//! `POST /v1/sends/cancel` withdraws every waiting send a filter matches (a sequence, a
//! mailbox, metadata, a recipient), each atomically with its event; repeating it cancels none.

use std::sync::Arc;

use axum::{
    Json,
    extract::{Path, State},
};
use mailroom_domain::{EmailAddress, MailboxId, SendId, SendState, mask_email};
use mailroom_store::sends;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    ApiError, AppState, Code,
    auth::Auth,
    json::{ApiJson, ApiJsonOrEmpty},
    sends::view,
};

/// The longest reason accepted, in characters.
const MAX_REASON_CHARS: usize = 200;

/// `POST /v1/sends/{id}/cancel` body (optional).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CancelRequest {
    /// Why, in the scheduler's words; carried by the `send.cancelled` event.
    reason: Option<String>,
}

/// Checks a cancel reason; the default when none was given.
/// A reason given with an action (or `default`): 1 to 500 characters, no control characters.
pub(crate) fn reason(given: Option<String>, default: &str) -> Result<String, ApiError> {
    let reason = given.unwrap_or_else(|| default.to_owned());
    if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS || reason.chars().any(char::is_control) {
        return Err(ApiError::new(
            Code::InvalidField,
            format!("`reason`: 1 to {MAX_REASON_CHARS} characters, without control characters"),
        ));
    }
    Ok(reason)
}

/// `POST /v1/sends/{id}/cancel` → 200 with the cancelled send; 409 when it is in flight or
/// already finished.
pub(crate) async fn one(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(id): Path<String>,
    ApiJsonOrEmpty(req): ApiJsonOrEmpty<CancelRequest>,
) -> Result<Json<crate::views::SendView>, ApiError> {
    let id: SendId = id.parse().map_err(|_| ApiError::NotFound("send"))?;
    let reason = reason(req.reason, "cancelled through the API")?;
    let mut tx = state.begin(auth.workspace).await?;
    let (row, cancelled_now) =
        sends::cancel_one(&mut tx, auth.workspace, id, &reason).await?.ok_or(ApiError::NotFound("send"))?;
    tx.commit().await?;
    match row.state()? {
        SendState::Cancelled => {
            if cancelled_now {
                tracing::info!(send.id = %id, "send cancelled");
            }
            Ok(Json(view(&row, !cancelled_now)))
        }
        SendState::Sending => Err(ApiError::Refused {
            code: Code::SendInFlight,
            message: "the send is being handed to its provider and cannot be withdrawn; it will end sent, failed \
                      or ambiguous (watch its events)"
                .into(),
        }),
        // Still waiting, yet not cancelled: its last attempt may have delivered it, and it
        // waits to be checked against the Sent folder (or a worker claimed and released it in
        // between; a retry of the cancel settles that case).
        SendState::Queued | SendState::RetryWait => Err(ApiError::Refused {
            code: Code::SendInFlight,
            message: "the send's last attempt may have delivered it and is being confirmed against the mailbox's \
                      Sent folder; it cannot be withdrawn now (retry the cancel if it is merely waiting)"
                .into(),
        }),
        SendState::Ambiguous => Err(ApiError::Refused {
            code: Code::SendFinished,
            message: "the send is ambiguous (it may have been delivered); settle it with POST /v1/sends/{id}/resolve"
                .into(),
        }),
        finished => Err(ApiError::Refused {
            code: Code::SendFinished,
            message: format!("the send is already {}; there is nothing to cancel", finished.as_str()),
        }),
    }
}

/// `POST /v1/sends/cancel` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BulkRequest {
    filter: BulkFilter,
    reason: Option<String>,
}

/// What a bulk cancel matches: at least one part, all of them together.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct BulkFilter {
    sequence: Option<String>,
    mailbox_id: Option<String>,
    metadata: Option<Value>,
    to: Option<String>,
}

/// `POST /v1/sends/cancel` `{"filter": {...}, "reason"?}` → 200 `{"cancelled": n}`.
pub(crate) async fn many(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    ApiJson(req): ApiJson<BulkRequest>,
) -> Result<Json<Value>, ApiError> {
    let reason = reason(req.reason, "cancelled through the API")?;
    let f = req.filter;
    if f.sequence.is_none() && f.mailbox_id.is_none() && f.metadata.is_none() && f.to.is_none() {
        return Err(ApiError::new(
            Code::InvalidField,
            "`filter`: name a `sequence`, `mailbox_id`, `metadata` or `to` (cancelling everything takes a filter)",
        ));
    }
    if let Some(seq) = &f.sequence {
        crate::validate::sequence_name(seq)?;
    }
    let mailbox = f
        .mailbox_id
        .as_deref()
        .map(str::parse::<MailboxId>)
        .transpose()
        .map_err(|e| ApiError::new(Code::InvalidField, format!("`filter.mailbox_id`: {e}")))?;
    if f.metadata.as_ref().is_some_and(|m| m.as_object().is_none_or(serde_json::Map::is_empty)) {
        return Err(ApiError::new(Code::InvalidField, "`filter.metadata`: must be a JSON object with a key"));
    }
    let to =
        f.to.as_deref()
            .map(EmailAddress::parse)
            .transpose()
            .map_err(|e| ApiError::new(Code::InvalidField, format!("`filter.to`: {e}")))?;
    let filter = sends::CancelFilter {
        sequence: f.sequence,
        mailbox,
        metadata: f.metadata,
        to: to.map(|a| a.as_str().to_owned()),
    };
    let mut tx = state.begin(auth.workspace).await?;
    let cancelled = sends::cancel_matching(&mut tx, auth.workspace, &filter, &reason).await?;
    // A bulk change is audited with what it matched (one send's cancel is its own event): the
    // mailbox, how many metadata pairs and the masked address, never a sequence id or metadata,
    // which may name a contact (the audit trail outlives an erasure).
    let pairs = filter.metadata.as_ref().and_then(|m| m.as_object()).map(serde_json::Map::len);
    let target = json!({ "sequence": filter.sequence.is_some(), "mailbox_id": filter.mailbox, "metadata_pairs": pairs,
        "to": filter.to.as_deref().map(mask_email), "cancelled": cancelled });
    mailroom_store::audit::record(
        &mut tx,
        Some(auth.workspace),
        &auth.actor(),
        "sends.cancel",
        Some(&target.to_string()),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(cancelled, "sends cancelled by filter");
    Ok(Json(json!({ "cancelled": cancelled })))
}
