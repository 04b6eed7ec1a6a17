//! API-key authentication: `Authorization: Bearer mr_<key id>_<secret>`.
//!
//! Only a SHA-256 hash of the secret is stored; it is compared in constant time. Unknown,
//! revoked, expired and malformed keys all get the same 401, so the answer tells an attacker
//! nothing. The access layer ([`crate::routes`]) authenticates once per request and checks the
//! route's scope; handlers take the result as an [`Auth`] extractor.

use std::sync::Arc;

use axum::{
    extract::FromRequestParts,
    http::{HeaderMap, request::Parts},
};
use chrono::Utc;
use mailroom_domain::{ApiKeyId, Grant, WorkspaceId};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::{ApiError, AppState};

/// The workspace a request acts for, the key that authenticated it and what that key may do.
#[derive(Debug, Clone)]
pub(crate) struct Auth {
    pub workspace: WorkspaceId,
    pub key: ApiKeyId,
    pub grant: Grant,
}

/// Splits `mr_<32 hex>_<64 hex>` into its id and secret.
pub(crate) fn parse_token(token: &str) -> Option<(ApiKeyId, &str)> {
    let rest = token.strip_prefix("mr_")?;
    let (id, secret) = rest.split_once('_')?;
    let uuid = Uuid::try_parse(id).ok().filter(|_| id.len() == 32)?;
    (secret.len() == 64 && secret.bytes().all(|b| b.is_ascii_hexdigit())).then_some((ApiKeyId::from_uuid(uuid), secret))
}

/// The stored form of a key's secret.
pub(crate) fn hash_secret(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// Authenticates the bearer token of a request: a live key whose secret matches.
pub(crate) async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Auth, ApiError> {
    let header = headers.get(axum::http::header::AUTHORIZATION).ok_or(ApiError::Unauthorized)?;
    let token = header.to_str().ok().and_then(|h| h.strip_prefix("Bearer ")).ok_or(ApiError::Unauthorized)?;
    let (id, secret) = parse_token(token.trim()).ok_or(ApiError::Unauthorized)?;
    let mut conn = state.pool.acquire().await?;
    let row = mailroom_store::api_keys::find(&mut conn, id).await?.ok_or(ApiError::Unauthorized)?;
    let matches: bool = row.secret_hash.ct_eq(&hash_secret(secret)).into();
    let live = row.revoked_at.is_none() && row.expires_at.is_none_or(|e| e > Utc::now());
    if !(matches && live) {
        return Err(ApiError::Unauthorized);
    }
    Ok(Auth { workspace: row.workspace, key: id, grant: row.grant })
}

impl FromRequestParts<Arc<AppState>> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        // Put there by the access layer; a route without it is public, and has no key.
        parts.extensions.get::<Auth>().cloned().ok_or(ApiError::Unauthorized)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_tokens_parse() {
        let id = ApiKeyId::new();
        let token = format!("mr_{}_{}", id.as_uuid().simple(), "ab".repeat(32));
        assert_eq!(parse_token(&token).map(|(i, _)| i), Some(id));
        assert!(parse_token("mr_short_abc").is_none());
        assert!(parse_token(&token.replace("mr_", "xx_")).is_none());
        assert!(parse_token(&format!("{token}0")).is_none());
    }
}
