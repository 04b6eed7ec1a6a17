//! `PATCH /v1/mailboxes/{id}`: a mailbox's display name, who files its sent mail, and its
//! pacing, changed in place (its id, credentials, history and waiting sends stay). Where it
//! connects (servers, logins) is not changed here: reconnect it for a new password.

use std::sync::Arc;

use axum::{
    Json,
    extract::{Path, State},
};
use mailroom_domain::{DisplayName, MailboxId};
use mailroom_store::{mailboxes, pacing::PacingRow};
use serde::Deserialize;
use serde_json::Value;

use crate::{ApiError, AppState, auth::Auth, json::ApiJson, mailboxes::view_row, pacing::PacingRequest};

/// Every field optional; `"from_name": null` removes the name.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PatchRequest {
    #[serde(default, deserialize_with = "present")]
    from_name: Option<Option<String>>,
    sent_copy: Option<String>,
    pacing: Option<PacingRequest>,
}

/// Tells a field given as `null` (`Some(None)`) from one left out (`None`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

fn invalid(field: &str, problem: impl std::fmt::Display) -> ApiError {
    ApiError::unprocessable("invalid_field", format!("`{field}`: {problem}"))
}

/// `PATCH /v1/mailboxes/{id}` → 200 with the mailbox. Audited with the fields changed.
pub(crate) async fn patch(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<PatchRequest>,
) -> Result<Json<Value>, ApiError> {
    let id: MailboxId = id.parse().map_err(|_| ApiError::NotFound("mailbox"))?;
    let ws = auth.workspace;
    let name = match &req.from_name {
        Some(Some(n)) => Some(Some(DisplayName::parse(n).map_err(|e| invalid("from_name", e))?.as_str().to_owned())),
        Some(None) => Some(None),
        None => None,
    };
    if let Some(mode) = &req.sent_copy
        && !["provider", "append", "none"].contains(&mode.as_str())
    {
        return Err(invalid("sent_copy", "must be one of provider, append, none"));
    }
    let pace = req.pacing.as_ref().map(PacingRequest::parse).transpose()?;
    let mut tx = state.begin(ws).await?;
    let m = mailboxes::lock(&mut tx, ws, id).await?.ok_or(ApiError::NotFound("mailbox"))?;
    if m.status == "disconnected" {
        return Err(ApiError::StateConflict {
            code: "mailbox_disconnected",
            message: "the mailbox was disconnected; connect it again".into(),
        });
    }
    // The Sent folder is reached over IMAP: a password mailbox without IMAP settings files
    // nothing there (an OAuth mailbox reaches its provider's).
    if req.sent_copy.as_deref().is_some_and(|c| c != "none") && m.imap_host.is_none() && m.auth_kind == "password" {
        return Err(invalid("sent_copy", "needs the mailbox's `imap` settings to reach the Sent folder"));
    }
    let mut changed = vec![];
    if name.is_some() || req.sent_copy.is_some() {
        let from_name = name.clone().unwrap_or(m.from_name.clone());
        let sent_copy = req.sent_copy.clone().unwrap_or(m.sent_copy.clone());
        mailboxes::set_profile(&mut tx, ws, id, from_name.as_deref(), &sent_copy).await?;
        changed.extend(name.is_some().then_some("from_name"));
        changed.extend(req.sent_copy.is_some().then_some("sent_copy"));
    }
    if let Some(p) = &pace {
        mailroom_store::pacing::set(&mut tx, ws, id, &PacingRow::from_domain(p)).await?;
        changed.push("pacing");
    }
    if !changed.is_empty() {
        let target = format!("{id}: {}", changed.join(", "));
        mailroom_store::audit::record(&mut tx, Some(ws), &auth.actor(), "mailbox.update", Some(&target)).await?;
    }
    let row = mailboxes::get(&mut tx, ws, id).await?.ok_or(ApiError::NotFound("mailbox"))?;
    tx.commit().await?;
    Ok(Json(view_row(&row)))
}
