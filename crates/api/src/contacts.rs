//! `POST /v1/contacts/erase`: a data subject's erasure (see `mailroom_keyring::erasure`), and
//! the suppression check at enqueue, which also knows erased addresses by their keyed hash.

use std::sync::Arc;

use axum::{
    Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use mailroom_domain::{EmailAddress, WorkspaceId, suppression::normalise};
use mailroom_keyring::erasure;
use mailroom_store::{PgConnection, suppressions};
use serde::Deserialize;
use serde_json::json;
use tracing::Instrument;

use crate::{ApiError, AppState, Code, auth::Auth, json::ApiJson};

/// The erasure request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EraseRequest {
    address: String,
}

/// `POST /v1/contacts/erase {"address"}` → `{"erased": true, "sends", "cancelled", "events"}`.
/// Safe to repeat (a repeat finds what is left).
///
/// The erasure runs in a task of its own, so it finishes when the client goes away or the
/// request's time runs out: then the answer is `202 {"erased": false, "status": "in_progress"}`
/// (the address is already suppressed), and `contact.erased` says when it is done.
pub(crate) async fn erase(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    ApiJson(req): ApiJson<EraseRequest>,
) -> Result<Response, ApiError> {
    let address = EmailAddress::parse(req.address.trim())
        .map_err(|e| ApiError::new(Code::InvalidField, format!("`address`: {e}")))?;
    // Half the request's time: reading the key and the body came out of the same budget.
    let budget = state.limits.edge.request_timeout / 2;
    let (answer, answered) = tokio::sync::oneshot::channel();
    let task = {
        let state = state.clone();
        async move {
            let done = erasure::erase(&state.pool, &state.vault, auth.workspace, address.as_str(), &auth.actor()).await;
            // Nobody waits any more (answered 202, or the client left): the failure is logged here.
            if let Err(Err(e)) = answer.send(done) {
                tracing::error!(error = %crate::error::chain(&e), "the erasure failed part-way; a repeat finishes it");
            }
        }
    };
    tokio::spawn(task.instrument(tracing::Span::current()));
    let done = match tokio::time::timeout(budget, answered).await {
        Ok(Ok(done)) => done?,
        Ok(Err(gone)) => return Err(ApiError::Internal(Box::new(gone))),
        Err(_) => {
            tracing::info!("erasure continues after the request's time");
            let body = json!({ "erased": false, "status": "in_progress",
                "detail": "the address is suppressed; the rest of the erasure runs on and publishes contact.erased \
                           when it is done (repeating the request is safe)" });
            return Ok((StatusCode::ACCEPTED, Json(body)).into_response());
        }
    };
    Ok(Json(json!({
        "erased": true,
        "sends": done.sends,
        "cancelled": done.cancelled,
        "events": done.events,
    }))
    .into_response())
}

/// Refuses a send to a suppressed recipient, naming the address, the reason and since when.
/// Erased addresses are listed by keyed hash: when the workspace has erased any, its hash key
/// (returned by the same query) is opened and the recipients' hashes are looked up too.
pub(crate) async fn screen(
    conn: &mut PgConnection,
    state: &AppState,
    ws: WorkspaceId,
    recipients: &[String],
) -> Result<(), ApiError> {
    let (found, sealed) = suppressions::screen(conn, ws, recipients).await?;
    if let Some(first) = found.first() {
        let more = match found.len() - 1 {
            0 => String::new(),
            n => format!(", and {n} more recipient(s)"),
        };
        return Err(ApiError::new(
            Code::RecipientSuppressed,
            format!(
                "`{}` is on the workspace's suppression list ({}, since {}){more}; take it off with \
                 DELETE /v1/suppressions/{{address}} if that was a mistake",
                first.address,
                first.reason,
                first.created_at.format("%Y-%m-%dT%H:%M:%SZ")
            ),
        ));
    }
    let Some(sealed) = sealed else { return Ok(()) };
    let hasher = erasure::hasher(conn, &state.vault, ws, &sealed).await?;
    let hashed: Vec<String> = recipients.iter().map(|r| hasher.hash(r)).collect();
    drop(hasher);
    let erased = suppressions::matching(conn, ws, &hashed).await?;
    let Some(first) = erased.first() else { return Ok(()) };
    let named = hashed.iter().position(|h| *h == first.address).map(|i| normalise(&recipients[i]));
    Err(ApiError::new(
        Code::RecipientSuppressed,
        format!(
            "`{}` was erased from this workspace on {} and is never mailed again",
            named.unwrap_or_default(),
            first.created_at.format("%Y-%m-%dT%H:%M:%SZ")
        ),
    ))
}
