//! The OAuth connect flow's states: random, single-use, bound to a workspace and the API key
//! that started the flow, expiring in minutes. Only a hash of each state is stored.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::Result;

/// A state as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StateRow {
    /// SHA-256 of the state value.
    pub state_hash: Vec<u8>,
    /// The workspace the mailbox will belong to.
    pub workspace_id: uuid::Uuid,
    /// The API key that started the flow.
    pub api_key_id: uuid::Uuid,
    /// `google` or `microsoft`.
    pub provider: String,
    /// `smtp` or `api`.
    pub transport: String,
    /// The PKCE verifier for the code exchange.
    pub pkce_verifier: String,
    /// The rest of the connect request (display name, pacing).
    pub request: serde_json::Value,
    /// When it stops being accepted.
    pub expires_at: DateTime<Utc>,
}

/// Stores a new state.
pub async fn insert(conn: &mut PgConnection, s: &StateRow) -> Result<()> {
    sqlx::query(
        "INSERT INTO oauth_states (state_hash, workspace_id, api_key_id, provider, transport, pkce_verifier, request, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&s.state_hash)
    .bind(s.workspace_id)
    .bind(s.api_key_id)
    .bind(&s.provider)
    .bind(&s.transport)
    .bind(&s.pkce_verifier)
    .bind(&s.request)
    .bind(s.expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Uses up a state: returns it the first time only (expired or not: the caller checks), and
/// never again, so a replayed callback finds nothing. The callback carries no key, so this is
/// read across workspaces (through `mailroom_consume_oauth_state`).
pub async fn consume(conn: &mut PgConnection, state_hash: &[u8]) -> Result<Option<StateRow>> {
    Ok(sqlx::query_as(
        "SELECT state_hash, workspace_id, api_key_id, provider, transport, pkce_verifier, request, expires_at
         FROM mailroom_consume_oauth_state($1)",
    )
    .bind(state_hash)
    .fetch_optional(conn)
    .await?)
}
