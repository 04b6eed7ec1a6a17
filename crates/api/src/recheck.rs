//! `POST /v1/mailboxes/{id}/recheck` and `POST /v1/mailboxes/recheck`: after the engine's
//! configuration is fixed, opens an unusable mailbox's sealed credentials again; if they open,
//! it is `active` again and its parked sends resume, each once (audited).

use std::sync::Arc;

use axum::{
    Json,
    extract::{Path, State},
};
use mailroom_domain::MailboxId;
use mailroom_keyring::recheck::{self, Recheck};
use serde_json::{Value, json};

use crate::{ApiError, AppState, auth::Auth};

/// `POST /v1/mailboxes/{id}/recheck`.
pub(crate) async fn one(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id: MailboxId = id.parse().map_err(|_| ApiError::NotFound("mailbox"))?;
    let found = recheck::mailbox(&state.pool, &state.vault, auth.workspace, id, &auth.actor())
        .await?
        .ok_or(ApiError::NotFound("mailbox"))?;
    Ok(Json(view(id, &found)))
}

/// `POST /v1/mailboxes/recheck`: every unusable mailbox of the workspace.
pub(crate) async fn all(State(state): State<Arc<AppState>>, auth: Auth) -> Result<Json<Value>, ApiError> {
    let found = recheck::workspace(&state.pool, &state.vault, auth.workspace, &auth.actor()).await?;
    Ok(Json(json!({ "mailboxes": found.iter().map(|(id, r)| view(*id, r)).collect::<Vec<_>>() })))
}

fn view(id: MailboxId, found: &Recheck) -> Value {
    match found {
        Recheck::Recovered { resumed } => {
            json!({ "id": id, "outcome": "recovered", "status": "active", "resumed_sends": resumed })
        }
        Recheck::StillUnusable { reason } => {
            json!({ "id": id, "outcome": "still_unusable", "status": "unusable", "status_reason": reason, "resumed_sends": 0 })
        }
        Recheck::NotUnusable { status } => {
            json!({ "id": id, "outcome": "not_unusable", "status": status, "resumed_sends": 0 })
        }
    }
}
