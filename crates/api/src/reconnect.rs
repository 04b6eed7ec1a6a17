//! `PUT /v1/mailboxes/{id}/credentials`: a mailbox's new password, checked by a real login
//! and sealed in place of the old one, keeping the mailbox's id, settings, pacing, history and
//! waiting sends. A mailbox parked on `needs_reauth` (or `unusable`) is active again and its
//! waiting sends go out, each once.

use std::sync::Arc;

use axum::{
    Json,
    extract::{Path, State},
};
use mailroom_domain::{MailboxId, mask_email};
use mailroom_store::{
    mailbox_state::{self, Change},
    mailboxes::{self, MailboxRow},
};
use mailroom_transport::{
    Endpoint, Refused, TlsMode,
    imap::{ImapCredential, ImapEndpoint, ImapError, ImapTls},
};
use mailroom_vault::Field;
use secrecy::SecretString;
use serde::Deserialize;

use crate::views::MailboxView;
use crate::{
    ApiError, AppState, Code,
    auth::Auth,
    json::ApiJson,
    mailboxes::{Server, reachable, seal},
};

/// A new password.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewPassword {
    #[schema(value_type = String, format = Password)]
    password: SecretString,
}

/// `{"smtp": {"password"}, "imap"?: {"password"}}`: an IMAP password only for a mailbox with
/// IMAP settings; without one, the stored IMAP password stays.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CredentialsRequest {
    smtp: NewPassword,
    imap: Option<NewPassword>,
}

/// `PUT /v1/mailboxes/{id}/credentials` → 200 with the mailbox and `resumed_sends`.
pub(crate) async fn put(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<CredentialsRequest>,
) -> Result<Json<MailboxView>, ApiError> {
    let id: MailboxId = id.parse().map_err(|_| ApiError::NotFound("mailbox"))?;
    let ws = auth.workspace;
    let m = mailboxes::get(&mut *state.begin(ws).await?, ws, id).await?.ok_or(ApiError::NotFound("mailbox"))?;
    if m.status == "disconnected" {
        return Err(ApiError::new(
            Code::MailboxDisconnected,
            "its credentials were destroyed; connect the mailbox again",
        ));
    }
    if m.auth_kind != "password" {
        return Err(ApiError::new(
            Code::MailboxUsesOauth,
            "this mailbox signs in over OAuth, not with a password; authorise it again with its provider",
        ));
    }
    // An unusable mailbox may hold no password that opens: all of them are given anew.
    if m.status == "unusable" && m.imap_host.is_some() && req.imap.is_none() {
        return Err(ApiError::new(
            Code::InvalidField,
            "`imap`: the mailbox is unusable, so every password it holds is replaced: give the IMAP password too",
        ));
    }
    if req.imap.is_some() && m.imap_host.is_none() {
        return Err(ApiError::new(Code::InvalidField, "`imap`: this mailbox has no IMAP settings"));
    }
    check_smtp(&state, &m, &req.smtp.password).await?;
    if let Some(imap) = &req.imap {
        check_imap(&state, &m, &imap.password).await?;
    }
    let mut tx = state.begin(ws).await?;
    let mut given = vec![(Field::SmtpPassword, &req.smtp.password)];
    if let Some(imap) = &req.imap {
        given.push((Field::ImapPassword, &imap.password));
    }
    let resumed = reseal_in_place(&state, &mut tx, ws, id, &given).await?;
    mailroom_store::audit::record(&mut tx, Some(ws), &auth.actor(), "mailbox.reconnect", Some(&id.to_string())).await?;
    let row = mailboxes::get(&mut tx, ws, id).await?.ok_or(ApiError::NotFound("mailbox"))?;
    tx.commit().await?;
    tracing::info!(mailbox.id = %id, from = %mask_email(&row.from_address), resumed, "mailbox reconnected");
    Ok(Json(MailboxView::resumed(&row, resumed)))
}

/// Seals `secrets` in place of the mailbox's under its row's lock, makes a parked mailbox
/// active again and wakes its waiting sends (password reconnects and OAuth re-grants alike);
/// returns how many were woken. `409` when the mailbox was disconnected meanwhile.
pub(crate) async fn reseal_in_place(
    state: &AppState,
    tx: &mut mailroom_store::PgConnection,
    ws: mailroom_domain::WorkspaceId,
    id: MailboxId,
    secrets: &[(Field, &SecretString)],
) -> Result<u64, ApiError> {
    let sealed = seal(state, tx, ws, id, secrets).await?;
    match mailbox_state::reconnect(tx, ws, id, &sealed.rows()).await?.ok_or(ApiError::NotFound("mailbox"))? {
        Change::Done { resumed } => Ok(resumed),
        // Disconnected while the login was checked or the grant was given.
        Change::Refused(_) | Change::Already => {
            Err(ApiError::new(Code::MailboxDisconnected, "the mailbox was disconnected meanwhile; connect it again"))
        }
    }
}

/// A real SMTP login with the stored settings and the new password.
pub(crate) async fn check_smtp(state: &AppState, m: &MailboxRow, password: &SecretString) -> Result<(), ApiError> {
    let port = u16::try_from(m.smtp_port).unwrap_or(587);
    reachable(state, Server::Smtp, &m.smtp_host, port).await?;
    let endpoint = Endpoint {
        host: m.smtp_host.clone(),
        port,
        tls: if m.smtp_tls == "implicit" { TlsMode::Implicit } else { TlsMode::StartTls },
        username: m.smtp_username.clone(),
        xoauth2: false,
    };
    if let Err(f) = mailroom_transport::verify(&state.smtp, &endpoint, password).await {
        tracing::info!(from = %mask_email(&m.from_address), failure = %f, "SMTP login check failed");
        let code = if f.answer.is_some() { Code::SmtpAuthFailed } else { Code::SmtpUnreachable };
        return Err(ApiError::new(code, f.for_tenant()));
    }
    Ok(())
}

/// A real IMAP login with the stored settings and the new password.
pub(crate) async fn check_imap(state: &AppState, m: &MailboxRow, password: &SecretString) -> Result<(), ApiError> {
    let (Some(host), Some(port)) = (m.imap_host.clone(), m.imap_port.and_then(|p| u16::try_from(p).ok())) else {
        return Err(ApiError::new(Code::InvalidField, "`imap`: this mailbox has no IMAP settings"));
    };
    let addrs = reachable(state, Server::Imap, &host, port).await?;
    let tls = match m.imap_tls.as_deref() {
        Some("implicit") => ImapTls::Implicit,
        Some("starttls") => ImapTls::StartTls,
        _ => ImapTls::None,
    };
    if matches!(tls, ImapTls::None) && !state.smtp.reach.egress.allows_plain_text(&host, port, &addrs) {
        return Err(ApiError::new(Code::EgressDenied, format!("`imap.tls`: {}", Refused::PlainText)));
    }
    let username = m.imap_username.clone().unwrap_or_default();
    let endpoint = ImapEndpoint { host, port, tls, username, sent_folder: m.sent_folder.clone() };
    let limit = state.smtp.command_timeout;
    if let Err(e) =
        mailroom_transport::imap::verify(&endpoint, ImapCredential::Password(password), &state.smtp.reach, limit).await
    {
        tracing::info!(error = %crate::error::chain(&e), "IMAP login check failed");
        let code = if matches!(e, ImapError::Login(_)) { Code::ImapAuthFailed } else { Code::ImapUnreachable };
        return Err(ApiError::new(code, e.to_string()));
    }
    Ok(())
}
