//! A webhook endpoint's deliveries: the list (by state and event type, newest first, a page at a
//! time), a test event for the endpoint alone, and a replay of a finished delivery.

use std::sync::Arc;

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use mailroom_domain::{EventId, WebhookId};
use mailroom_store::{events, webhooks};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    ApiError, AppState, Code,
    auth::Auth,
    views::{DeliveryPage, DeliveryView},
};

/// The endpoint named in the path, if it is a live one of the workspace, and whether it is on.
async fn endpoint(
    conn: &mut mailroom_store::PgConnection,
    auth: &Auth,
    id: &str,
) -> Result<(WebhookId, bool), ApiError> {
    let id: WebhookId = id.parse().map_err(|_| ApiError::NotFound("webhook"))?;
    let row = webhooks::get(conn, auth.workspace, id.as_uuid()).await?.ok_or(ApiError::NotFound("webhook"))?;
    Ok((id, row.enabled))
}

fn switched_off(id: WebhookId) -> ApiError {
    ApiError::new(
        Code::WebhookDisabled,
        format!("webhook {id} is switched off and would get nothing; switch it on with PATCH /v1/webhooks/{id}"),
    )
}

/// `GET /v1/webhooks/{id}/deliveries` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct DeliveryQuery {
    state: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    after: Option<String>,
    limit: Option<i64>,
}

/// `GET /v1/webhooks/{id}/deliveries?state=pending|delivered|failed&type=&after=&limit=`
/// (default `failed`, newest first; `next` is the cursor of the following page).
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(id): Path<String>,
    crate::json::ApiQuery(q): crate::json::ApiQuery<DeliveryQuery>,
) -> Result<Json<DeliveryPage>, ApiError> {
    let wanted = q.state.as_deref().unwrap_or("failed");
    if !matches!(wanted, "pending" | "delivered" | "failed") {
        return Err(ApiError::new(Code::InvalidState, "`state` is pending, delivered or failed"));
    }
    // The listing's cursor reads like every other; newest first, it is the position to go below.
    let (after, limit) = crate::page::Page::new(q.after, q.limit).bounds()?;
    let before = (after > 0).then_some(after);
    let filter = webhooks::DeliveryFilter { state: wanted, kind: q.kind.as_deref(), before, limit };
    let mut conn = state.begin(auth.workspace).await?;
    let (id, _) = endpoint(&mut conn, &auth, &id).await?;
    let rows = webhooks::deliveries(&mut conn, auth.workspace, id.as_uuid(), &filter).await?;
    let next = (rows.len() as i64 == limit).then(|| rows.last().map(|d| d.event_pos.to_string())).flatten();
    let deliveries = rows
        .iter()
        .map(|d| DeliveryView {
            event_id: EventId::from_uuid(d.event_id),
            kind: d.kind.clone(),
            state: d.state.clone(),
            attempts: d.attempts,
            last_status: d.last_status.clone(),
            next_attempt_at: d.next_attempt_at,
        })
        .collect();
    Ok(Json(DeliveryPage { deliveries, next }))
}

/// `POST /v1/webhooks/{id}/test` → 202 `{"event_id"}`: a `webhook.test` event, on the feed and
/// delivered to this endpoint alone (whatever types it takes), signed like any other.
pub(crate) async fn test(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let mut tx = state.begin(auth.workspace).await?;
    let (id, on) = endpoint(&mut tx, &auth, &id).await?;
    if !on {
        return Err(switched_off(id));
    }
    let data = json!({ "webhook_id": id, "message": "a test event sent on request" });
    let event = events::NewEvent { workspace: auth.workspace, kind: "webhook.test", send: None, mailbox: None, data };
    let event_id = events::insert(&mut tx, &event).await?;
    tx.commit().await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "event_id": event_id }))))
}

/// `POST /v1/webhooks/{id}/deliveries/{event_id}/replay` → 202: a delivered or failed delivery
/// is due again now (a pending one is `409 delivery_pending`).
pub(crate) async fn replay(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path((id, event)): Path<(String, String)>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let event: EventId = event.parse().map_err(|_| ApiError::NotFound("delivery"))?;
    let mut tx = state.begin(auth.workspace).await?;
    let (id, on) = endpoint(&mut tx, &auth, &id).await?;
    if !on {
        return Err(switched_off(id));
    }
    match webhooks::replay(&mut tx, auth.workspace, id.as_uuid(), event.as_uuid()).await? {
        webhooks::Replay::Missing => return Err(ApiError::NotFound("delivery")),
        webhooks::Replay::Pending => {
            return Err(ApiError::new(
                Code::DeliveryPending,
                "the delivery is still pending; it is tried again anyway",
            ));
        }
        webhooks::Replay::Queued => {}
    }
    let what = format!("{id} {event}");
    mailroom_store::audit::record(&mut tx, Some(auth.workspace), &auth.actor(), "webhook.replay", Some(&what)).await?;
    tx.commit().await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "event_id": event, "state": "pending" }))))
}
