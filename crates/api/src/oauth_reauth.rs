//! Re-authorising an OAuth mailbox in place: `POST /v1/mailboxes/{id}/oauth/start` starts a
//! consent for the mailbox's own provider and transport; the callback accepts only the same
//! account (its address), seals the new tokens in place of the old under the mailbox row's
//! lock, and brings a mailbox parked on `needs_reauth` back with its waiting sends.

use std::sync::Arc;

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use mailroom_domain::{EmailAddress, MailboxId, WorkspaceId, mask_email};
use mailroom_store::{mailboxes, oauth::StateRow};
use mailroom_vault::Field;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{ApiError, AppState, Code, auth::Auth, json::ApiJsonOrEmpty, oauth_mailbox::Tokens};

/// `{"return_url"?}`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RestartRequest {
    return_url: Option<String>,
}

/// `POST /v1/mailboxes/{id}/oauth/start` → 201 `{authorization_url, expires_at}`.
pub(crate) async fn restart(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(id): Path<String>,
    ApiJsonOrEmpty(req): ApiJsonOrEmpty<RestartRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let id: MailboxId = id.parse().map_err(|_| ApiError::NotFound("mailbox"))?;
    let ws = auth.workspace;
    let m = mailboxes::get(&mut *state.begin(ws).await?, ws, id).await?.ok_or(ApiError::NotFound("mailbox"))?;
    if m.status == "disconnected" {
        return Err(ApiError::new(
            Code::MailboxDisconnected,
            "its credentials were destroyed; connect the mailbox again",
        ));
    }
    let Some(provider) = m.oauth_provider.clone().filter(|_| m.auth_kind == "oauth") else {
        return Err(ApiError::new(
            Code::MailboxUsesPassword,
            "this mailbox signs in with a password: set a new one with PUT /v1/mailboxes/{id}/credentials",
        ));
    };
    let p = state.oauth.provider(&provider).ok_or_else(|| {
        ApiError::new(Code::ProviderNotConfigured, format!("OAuth provider `{provider}` is not configured"))
    })?;
    crate::oauth::check_return_url(&state, req.return_url.as_deref())?;
    let request = json!({ "mailbox_id": id, "return_url": req.return_url });
    crate::oauth::authorize(&state, &auth, p, &provider, &m.transport, request).await
}

/// The callback's end for a re-authorisation: the same account only, tokens replaced in place.
pub(crate) async fn reauthorise(
    state: &AppState,
    row: &StateRow,
    mailbox: &str,
    from: &EmailAddress,
    tokens: Tokens,
    source: &str,
) -> Result<Value, ApiError> {
    let ws = WorkspaceId::from_uuid(row.workspace_id);
    let id: MailboxId = mailbox.parse().map_err(|e| ApiError::Internal(Box::new(e)))?;
    let mut tx = state.begin(ws).await?;
    let m = mailboxes::lock(&mut tx, ws, id).await?.ok_or(ApiError::NotFound("mailbox"))?;
    if !m.from_address.eq_ignore_ascii_case(from.as_str()) {
        tracing::info!(mailbox.id = %id, consented = %mask_email(from.as_str()), "re-authorised with another account");
        return Err(ApiError::new(
            Code::OauthAccountMismatch,
            format!(
                "the account that consented is not the mailbox's ({}); nothing changed. Sign in as that account, or \
                 connect the other one as a new mailbox",
                m.from_address
            ),
        ));
    }
    let secrets = [(Field::RefreshToken, &tokens.refresh), (Field::AccessToken, &tokens.access)];
    let resumed = crate::reconnect::reseal_in_place(state, &mut tx, ws, id, &secrets).await?;
    if let Some(at) = tokens.expires_at {
        mailboxes::set_token_expiry(&mut tx, ws, id, at).await?;
    }
    let actor = format!("api_key:{} (OAuth re-authorisation)", uuid_key(row));
    let who =
        mailroom_store::audit::Actor { name: &actor, source: Some(source), ..mailroom_store::audit::Actor::default() };
    mailroom_store::audit::record(&mut tx, Some(ws), &who, "mailbox.reconnect.oauth", Some(&id.to_string())).await?;
    let m = mailboxes::get(&mut tx, ws, id).await?.ok_or(ApiError::NotFound("mailbox"))?;
    tx.commit().await?;
    tracing::info!(mailbox.id = %id, resumed, "mailbox re-authorised over OAuth");
    Ok(json!(crate::views::MailboxView::resumed(&m, resumed)))
}

fn uuid_key(row: &StateRow) -> mailroom_domain::ApiKeyId {
    mailroom_domain::ApiKeyId::from_uuid(row.api_key_id)
}
