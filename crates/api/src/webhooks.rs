//! Webhook endpoints: register (the signing secret is shown once, then kept sealed like a
//! credential), list, remove, and see an endpoint's failed deliveries.

use std::sync::Arc;

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use mailroom_domain::{EventId, MailboxId, WebhookId};
use mailroom_store::webhooks;
use mailroom_transport::Refused;
use mailroom_vault::{Field, SealContext};
use rand::RngCore;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{ApiError, AppState, Code, auth::Auth, mailboxes::active_key};

/// `POST /v1/webhooks` body.
#[derive(Debug, Deserialize)]
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

fn view(w: &webhooks::WebhookRow) -> Value {
    json!({ "id": WebhookId::from_uuid(w.id), "url": w.url, "event_types": w.event_types, "created_at": w.created_at })
}

/// `POST /v1/webhooks` → 201 with the secret, shown this once.
pub(crate) async fn create(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    crate::json::ApiJson(req): crate::json::ApiJson<NewWebhook>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    check_url(&state, &req.url).await?;
    if let Some(t) = req.event_types.iter().find(|t| t.is_empty() || t.len() > 64 || !t.contains('.')) {
        return Err(ApiError::new(Code::InvalidEventType, format!("`{t}` is not an event type")));
    }
    let id = WebhookId::new();
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    let secret = SecretString::from(format!("whsec_{}", hex::encode(raw)));
    let mut tx = state.begin(auth.workspace).await?;
    let key = active_key(&mut tx, auth.workspace).await?;
    let ctx = SealContext {
        workspace: auth.workspace,
        mailbox: MailboxId::from_uuid(id.as_uuid()),
        field: Field::WebhookSecret,
    };
    let sealed = state.vault.seal(&key, &ctx, &secret).await?;
    let row = webhooks::WebhookRow {
        id: id.as_uuid(),
        workspace_id: auth.workspace.as_uuid(),
        url: req.url,
        event_types: req.event_types,
        secret_sealed: sealed,
        key_version: i32::try_from(key.context.version).unwrap_or(i32::MAX),
        created_at: chrono::Utc::now(),
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
    let mut body = view(&row);
    // The one place the secret leaves the vault: the registering client must store it.
    body["secret"] = json!(secrecy::ExposeSecret::expose_secret(&secret));
    Ok((StatusCode::CREATED, Json(body)))
}

/// `GET /v1/webhooks`.
pub(crate) async fn list(State(state): State<Arc<AppState>>, auth: Auth) -> Result<Json<Value>, ApiError> {
    let mut conn = state.begin(auth.workspace).await?;
    let rows = webhooks::list(&mut conn, auth.workspace).await?;
    Ok(Json(json!({ "webhooks": rows.iter().map(view).collect::<Vec<_>>() })))
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

/// `GET /v1/webhooks/{id}/deliveries?state=failed` query.
#[derive(Debug, Deserialize)]
pub(crate) struct DeliveryQuery {
    state: Option<String>,
}

/// `GET /v1/webhooks/{id}/deliveries?state=pending|delivered|failed` (default `failed`).
pub(crate) async fn deliveries(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(id): Path<String>,
    crate::json::ApiQuery(q): crate::json::ApiQuery<DeliveryQuery>,
) -> Result<Json<Value>, ApiError> {
    let id: WebhookId = id.parse().map_err(|_| ApiError::NotFound("webhook"))?;
    let wanted = q.state.as_deref().unwrap_or("failed");
    if !matches!(wanted, "pending" | "delivered" | "failed") {
        return Err(ApiError::new(Code::InvalidState, "`state` is pending, delivered or failed"));
    }
    let mut conn = state.begin(auth.workspace).await?;
    let rows = webhooks::deliveries(&mut conn, auth.workspace, id.as_uuid(), wanted, 500).await?;
    let list: Vec<Value> = rows
        .iter()
        .map(|d| {
            json!({ "event_id": EventId::from_uuid(d.event_id), "type": d.kind, "state": d.state,
                "attempts": d.attempts, "last_status": d.last_status, "next_attempt_at": d.next_attempt_at })
        })
        .collect();
    Ok(Json(json!({ "deliveries": list })))
}
