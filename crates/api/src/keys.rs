//! The workspace's data keys: their versions and states, and starting a rotation.

use std::sync::Arc;

use axum::{Json, extract::State, http::StatusCode};
use serde_json::{Value, json};

use crate::{ApiError, AppState, auth::Auth};

/// `GET /v1/keys`: every key version of the workspace, with how many sealed values use it.
/// Key material, wrapped or not, is never shown.
pub(crate) async fn status(State(state): State<Arc<AppState>>, auth: Auth) -> Result<Json<Value>, ApiError> {
    let mut conn = state.begin(auth.workspace).await?;
    let rows = mailroom_store::keys::status(&mut conn, Some(auth.workspace)).await?;
    let keys: Vec<Value> = rows
        .iter()
        .map(|k| {
            json!({ "version": k.version, "state": k.state, "provider": k.provider, "master_key": k.kms_key_id,
                "activate_after": k.activate_after, "state_changed_at": k.state_changed_at,
                "sealed_values": k.sealed_values })
        })
        .collect();
    Ok(Json(json!({ "keys": keys })))
}

/// `POST /v1/keys/rotate`: adds the next key version; it becomes active after one cache TTL,
/// then every sealed value is re-sealed under it in the background and the old version is
/// destroyed. Sends keep working throughout. 409 while a rotation is pending.
pub(crate) async fn rotate(
    State(state): State<Arc<AppState>>,
    auth: Auth,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let actor = auth.actor();
    let started =
        mailroom_keyring::rotate::begin(&state.pool, &state.vault, auth.workspace, state.rotation_wait, &actor).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "version": started.version, "state": "pending",
        "activate_after": started.activate_after })),
    ))
}
