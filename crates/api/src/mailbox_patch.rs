//! `PATCH /v1/mailboxes/{id}`: a mailbox's display name, who files its sent mail, its pacing,
//! and its servers (`mailbox_servers`), changed in place (its id, credentials, history and
//! waiting sends stay). A new password goes through `PUT /v1/mailboxes/{id}/credentials`.

use std::sync::Arc;

use axum::{
    Json,
    extract::{Path, State},
};
use mailroom_domain::{DisplayName, MailboxId};
use mailroom_store::{mailboxes, pacing::PacingRow};
use serde::Deserialize;

use crate::views::MailboxView;
use crate::{
    ApiError, AppState, Code,
    auth::Auth,
    json::ApiJson,
    mailbox_servers::{self, ServerPatch},
    mailboxes::view_row,
    pacing::PacingRequest,
};

/// Every field optional; `"from_name": null` removes the name.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PatchRequest {
    #[serde(default, deserialize_with = "present")]
    from_name: Option<Option<String>>,
    sent_copy: Option<String>,
    pacing: Option<PacingRequest>,
    smtp: Option<ServerPatch>,
    imap: Option<ServerPatch>,
}

/// Tells a field given as `null` (`Some(None)`) from one left out (`None`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

fn invalid(field: &str, problem: impl std::fmt::Display) -> ApiError {
    ApiError::new(Code::InvalidField, format!("`{field}`: {problem}"))
}

fn refuse_disconnected(m: &mailboxes::MailboxRow) -> Result<(), ApiError> {
    if m.status == "disconnected" {
        return Err(ApiError::new(Code::MailboxDisconnected, "the mailbox was disconnected; connect it again"));
    }
    Ok(())
}

/// `PATCH /v1/mailboxes/{id}` → 200 with the mailbox. Audited with the fields changed.
pub(crate) async fn patch(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<PatchRequest>,
) -> Result<Json<MailboxView>, ApiError> {
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
    // New servers are checked by a login before anything is locked or written.
    let servers = match (&req.smtp, &req.imap) {
        (None, None) => None,
        (smtp, imap) => {
            let read =
                mailboxes::get(&mut *state.begin(ws).await?, ws, id).await?.ok_or(ApiError::NotFound("mailbox"))?;
            refuse_disconnected(&read)?;
            let next = mailbox_servers::checked(&state, ws, &read, smtp.as_ref(), imap.as_ref()).await?;
            next.map(|n| (read, n))
        }
    };
    let mut tx = state.begin(ws).await?;
    let m = mailboxes::lock(&mut tx, ws, id).await?.ok_or(ApiError::NotFound("mailbox"))?;
    refuse_disconnected(&m)?;
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
    if let Some((read, next)) = &servers {
        mailbox_servers::unchanged(read, &m)?;
        mailboxes::set_servers(&mut tx, ws, id, &mailboxes::Servers::of(next)).await?;
        changed.extend(req.smtp.is_some().then_some("smtp"));
        changed.extend(req.imap.is_some().then_some("imap"));
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
