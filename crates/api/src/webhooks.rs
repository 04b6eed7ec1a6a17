//! Webhook endpoints: register (the signing secret, `whsec_<base64 of 32 random bytes>` as the
//! Standard Webhooks specification has it, is shown once, then kept sealed like a credential),
//! list, change, rotate the secret, remove. Deliveries, tests and replays are in
//! `webhook_deliveries`.

use std::sync::Arc;

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use base64::{Engine as _, engine::general_purpose::STANDARD};
use mailroom_domain::{MailboxId, WebhookId};
use mailroom_store::webhooks;
use mailroom_transport::Refused;
use mailroom_vault::{Field, SealContext};
use rand::RngCore;
use secrecy::SecretString;
use serde::Deserialize;

use crate::{
    ApiError, AppState, Code,
    auth::Auth,
    mailboxes::active_key,
    views::{WebhookList, WebhookView},
};

/// `POST /v1/webhooks` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewWebhook {
    url: String,
    #[serde(default)]
    event_types: Vec<String>,
}

/// Checks a webhook URL: absolute HTTP(S), no credentials in it, and a host the egress policy
/// lets Mailroom reach. Checked again at every delivery, on the addresses the host resolves
/// to then (a name may change its answer after registration).
async fn check_url(state: &AppState, url: &str) -> Result<(), ApiError> {
    let bad = |why: &str| ApiError::new(Code::InvalidUrl, format!("`url`: {why}"));
    if url.len() > 2048 {
        return Err(bad("at most 2048 characters"));
    }
    let parsed = reqwest::Url::parse(url).map_err(|_| bad("not a URL"))?;
    match state.smtp.reach.egress.vet_url(&parsed).await {
        Ok(_) => Ok(()),
        Err(Refused::BadUrl(why)) => Err(bad(why)),
        // A name that does not resolve yet may later: delivery checks it again.
        Err(Refused::Unresolved { .. }) => Ok(()),
        Err(e) => Err(ApiError::new(Code::EgressDenied, format!("`url`: {e}"))),
    }
}

fn check_types(types: &[String]) -> Result<(), ApiError> {
    match types.iter().find(|t| t.is_empty() || t.len() > 64 || !t.contains('.')) {
        Some(t) => Err(ApiError::new(Code::InvalidEventType, format!("`{t}` is not an event type"))),
        None => Ok(()),
    }
}

/// A new signing secret, sealed for the endpoint `id` under the workspace's active key.
async fn new_secret(
    state: &AppState,
    conn: &mut mailroom_store::PgConnection,
    ws: mailroom_domain::WorkspaceId,
    id: WebhookId,
) -> Result<(SecretString, Vec<u8>, i32), ApiError> {
    let mut raw = zeroize::Zeroizing::new([0u8; 32]);
    rand::rng().fill_bytes(raw.as_mut());
    let secret = SecretString::from(format!("whsec_{}", STANDARD.encode(raw.as_ref())));
    let key = active_key(conn, ws).await?;
    let ctx = SealContext { workspace: ws, mailbox: MailboxId::from_uuid(id.as_uuid()), field: Field::WebhookSecret };
    let sealed = state.vault.seal(&key, &ctx, &secret).await?;
    Ok((secret, sealed, i32::try_from(key.context.version).unwrap_or(i32::MAX)))
}

/// `POST /v1/webhooks` → 201 with the secret, shown this once.
pub(crate) async fn create(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    crate::json::ApiJson(req): crate::json::ApiJson<NewWebhook>,
) -> Result<(StatusCode, Json<WebhookView>), ApiError> {
    check_url(&state, &req.url).await?;
    check_types(&req.event_types)?;
    let id = WebhookId::new();
    let mut tx = state.begin(auth.workspace).await?;
    let (secret, sealed, key_version) = new_secret(&state, &mut tx, auth.workspace, id).await?;
    let row = webhooks::WebhookRow {
        id: id.as_uuid(),
        workspace_id: auth.workspace.as_uuid(),
        url: req.url,
        event_types: req.event_types,
        secret_sealed: sealed,
        key_version,
        created_at: chrono::Utc::now(),
        enabled: true,
        disabled_reason: None,
        failing_since: None,
        previous_until: None,
        legacy_signature: false,
    };
    webhooks::insert(&mut tx, &row).await?;
    mailroom_store::audit::record(
        &mut tx,
        Some(auth.workspace),
        &auth.actor(),
        "webhook.create",
        Some(&id.to_string()),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(WebhookView::with_secret(&row, &secret))))
}

/// `GET /v1/webhooks`.
pub(crate) async fn list(State(state): State<Arc<AppState>>, auth: Auth) -> Result<Json<WebhookList>, ApiError> {
    let mut conn = state.begin(auth.workspace).await?;
    let rows = webhooks::list(&mut conn, auth.workspace).await?;
    Ok(Json(WebhookList { webhooks: rows.iter().map(WebhookView::of).collect() }))
}

/// `DELETE /v1/webhooks/{id}`.
pub(crate) async fn delete(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id: WebhookId = id.parse().map_err(|_| ApiError::NotFound("webhook"))?;
    let mut tx = state.begin(auth.workspace).await?;
    if !webhooks::delete(&mut tx, auth.workspace, id.as_uuid()).await? {
        return Err(ApiError::NotFound("webhook"));
    }
    mailroom_store::audit::record(
        &mut tx,
        Some(auth.workspace),
        &auth.actor(),
        "webhook.delete",
        Some(&id.to_string()),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PATCH /v1/webhooks/{id}` body: what to change.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct WebhookChange {
    url: Option<String>,
    event_types: Option<Vec<String>>,
    enabled: Option<bool>,
    legacy_signature: Option<bool>,
}

/// `PATCH /v1/webhooks/{id}` → 200 with the endpoint. Switched on again, it takes the events
/// published from then on, and its failure record starts afresh.
pub(crate) async fn patch(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(id): Path<String>,
    crate::json::ApiJson(req): crate::json::ApiJson<WebhookChange>,
) -> Result<Json<WebhookView>, ApiError> {
    let id: WebhookId = id.parse().map_err(|_| ApiError::NotFound("webhook"))?;
    if let Some(url) = &req.url {
        check_url(&state, url).await?;
    }
    if let Some(types) = &req.event_types {
        check_types(types)?;
    }
    let change = webhooks::Change {
        url: req.url,
        event_types: req.event_types,
        enabled: req.enabled,
        legacy_signature: req.legacy_signature,
    };
    let mut tx = state.begin(auth.workspace).await?;
    let row =
        webhooks::change(&mut tx, auth.workspace, id.as_uuid(), &change).await?.ok_or(ApiError::NotFound("webhook"))?;
    let what = format!("{id}: {}", changed_fields(&change));
    mailroom_store::audit::record(&mut tx, Some(auth.workspace), &auth.actor(), "webhook.update", Some(&what)).await?;
    tx.commit().await?;
    Ok(Json(WebhookView::of(&row)))
}

fn changed_fields(c: &webhooks::Change) -> String {
    let named = [
        c.url.as_ref().map(|_| "url".to_owned()),
        c.event_types.as_ref().map(|_| "event_types".to_owned()),
        c.enabled.map(|on| format!("enabled={on}")),
        c.legacy_signature.map(|on| format!("legacy_signature={on}")),
    ];
    let named: Vec<String> = named.into_iter().flatten().collect();
    if named.is_empty() { "nothing".to_owned() } else { named.join(", ") }
}

/// `POST /v1/webhooks/{id}/rotate-secret` → 200 with the new secret (shown this once); the
/// previous one keeps signing beside it until `previous_secret_expires_at`.
pub(crate) async fn rotate_secret(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<WebhookView>, ApiError> {
    let id: WebhookId = id.parse().map_err(|_| ApiError::NotFound("webhook"))?;
    let mut tx = state.begin(auth.workspace).await?;
    webhooks::get(&mut tx, auth.workspace, id.as_uuid()).await?.ok_or(ApiError::NotFound("webhook"))?;
    let (secret, sealed, version) = new_secret(&state, &mut tx, auth.workspace, id).await?;
    let overlap = chrono::Duration::from_std(state.limits.webhook_secret_overlap).unwrap_or(chrono::Duration::days(1));
    let until = chrono::Utc::now() + overlap;
    let row = webhooks::rotate_secret(&mut tx, auth.workspace, id.as_uuid(), &sealed, version, until)
        .await?
        .ok_or(ApiError::NotFound("webhook"))?;
    mailroom_store::audit::record(
        &mut tx,
        Some(auth.workspace),
        &auth.actor(),
        "webhook.rotate_secret",
        Some(&id.to_string()),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(WebhookView::with_secret(&row, &secret)))
}
