//! OAuth access tokens at send time. A token that expires within a minute is refreshed first;
//! the refresh runs under a lock on the mailbox row, so however many jobs and processes need
//! it at once, one refresh call is made and all of them use its result. The new access token,
//! and the new refresh token where the provider rotated it (Microsoft always does), are sealed
//! in the same transaction that records the new expiry.

use chrono::Utc;
use mailroom_domain::{MailboxId, WorkspaceId};
use mailroom_store::{PgPool, StoreError, mailboxes, secrets};
use mailroom_vault::{Field, SealContext, Vault};
use oauth2::{
    ClientId, ClientSecret, RefreshToken, RequestTokenError, TokenResponse, TokenUrl,
    basic::{BasicClient, BasicErrorResponseType},
};
use secrecy::{ExposeSecret, SecretString};

use crate::{KeyringError, OpenError, active_key, oauth_config::OAuthSettings, open_secret};

/// Why no access token could be had.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The grant was revoked or expired (`invalid_grant`): the mailbox needs the user again.
    #[error("the provider refused the refresh token ({0}); the mailbox must be connected again")]
    Revoked(String),
    /// The provider could not be reached or failed: try again later.
    #[error("the token refresh failed for now: {0}")]
    Passing(String),
    /// A sealed token could not be opened.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// The database or vault failed.
    #[error(transparent)]
    Keyring(#[from] KeyringError),
}

impl From<StoreError> for TokenError {
    fn from(e: StoreError) -> Self {
        Self::Keyring(KeyringError::Store(e))
    }
}

impl From<mailroom_store::SqlxError> for TokenError {
    fn from(e: mailroom_store::SqlxError) -> Self {
        Self::Keyring(e.into())
    }
}

/// The registered app at `p`, endpoints still to set.
fn app_client(p: &crate::oauth_config::OAuthProvider) -> BasicClient {
    BasicClient::new(ClientId::new(p.client_id.clone()))
        .set_client_secret(ClientSecret::new(p.client_secret.expose_secret().to_owned()))
}

const MARGIN: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

/// A usable access token for an OAuth mailbox, refreshed first if it is about to expire.
pub async fn access_token(
    pool: &PgPool,
    vault: &Vault,
    oauth: &OAuthSettings,
    ws: WorkspaceId,
    mbx: MailboxId,
) -> Result<SecretString, TokenError> {
    let fresh = |m: &mailboxes::MailboxRow| m.token_expires_at.is_some_and(|t| t > Utc::now() + MARGIN);
    let mut conn = mailroom_store::scope::begin(pool, ws).await?;
    let m = mailboxes::get(&mut conn, ws, mbx).await?.ok_or_else(|| TokenError::Passing("mailbox gone".into()))?;
    drop(conn);
    if fresh(&m) {
        return Ok(open_secret(pool, vault, ws, mbx, Field::AccessToken).await?);
    }
    let mut tx = mailroom_store::scope::begin(pool, ws).await?;
    let m = mailboxes::lock(&mut tx, ws, mbx).await?.ok_or_else(|| TokenError::Passing("mailbox gone".into()))?;
    if fresh(&m) {
        // Another job refreshed it while this one waited for the lock.
        tx.commit().await?;
        return Ok(open_secret(pool, vault, ws, mbx, Field::AccessToken).await?);
    }
    let name = m.oauth_provider.as_deref().unwrap_or_default();
    let p = oauth.provider(name).ok_or_else(|| TokenError::Passing(format!("provider `{name}` is not configured")))?;
    let refresh = open_secret(pool, vault, ws, mbx, Field::RefreshToken).await?;
    let client = app_client(p)
        .set_token_uri(TokenUrl::new(p.token_url.clone()).map_err(|e| TokenError::Passing(e.to_string()))?);
    let answer = client
        .exchange_refresh_token(&RefreshToken::new(refresh.expose_secret().to_owned()))
        .request_async(&oauth.http)
        .await;
    drop(refresh);
    let token = match answer {
        Ok(t) => t,
        Err(RequestTokenError::ServerResponse(r)) if *r.error() == BasicErrorResponseType::InvalidGrant => {
            return Err(TokenError::Revoked(r.error().to_string()));
        }
        Err(e) => return Err(TokenError::Passing(e.to_string())),
    };
    let key = active_key(&mut tx, ws).await?;
    let version = i32::try_from(key.context.version).unwrap_or(i32::MAX);
    let access = SecretString::from(token.access_token().secret().to_owned());
    let mut fields = vec![(Field::AccessToken, access.clone())];
    if let Some(r) = token.refresh_token() {
        fields.push((Field::RefreshToken, SecretString::from(r.secret().to_owned())));
    }
    for (field, value) in &fields {
        let sealed = vault
            .seal(&key, &SealContext { workspace: ws, mailbox: mbx, field: *field }, value)
            .await
            .map_err(KeyringError::from)?;
        secrets::put(&mut tx, ws, mbx, field.as_str(), &sealed, version).await?;
    }
    let lifetime = token.expires_in().unwrap_or(std::time::Duration::from_secs(3_600));
    mailboxes::set_token_expiry(
        &mut tx,
        ws,
        mbx,
        Utc::now() + chrono::Duration::from_std(lifetime).unwrap_or_default(),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(mailbox.id = %mbx, provider = name, rotated = fields.len() == 2, "OAuth access token refreshed");
    Ok(access)
}

/// Revokes an OAuth mailbox's grant at its provider, before its tokens are destroyed. Says
/// what happened, for the disconnect's answer; `None` for a password mailbox.
pub async fn revoke_grant(
    pool: &PgPool,
    vault: &Vault,
    oauth: &OAuthSettings,
    ws: WorkspaceId,
    mbx: MailboxId,
) -> Result<Option<String>, TokenError> {
    let mut conn = mailroom_store::scope::begin(pool, ws).await?;
    let Some(m) = mailboxes::get(&mut conn, ws, mbx).await? else { return Ok(None) };
    drop(conn);
    let (Some(name), "oauth") = (m.oauth_provider.as_deref(), m.auth_kind.as_str()) else { return Ok(None) };
    let Some(url) = oauth.provider(name).and_then(|p| p.revoke_url.clone().map(|u| (p, u))) else {
        return Ok(Some(format!(
            "not revoked: {name} has no revocation endpoint; only Mailroom's sealed tokens were destroyed \
             (the account's owner can remove the app in their account settings)"
        )));
    };
    let (p, url) = url;
    let refresh = match open_secret(pool, vault, ws, mbx, Field::RefreshToken).await {
        Ok(r) => r,
        Err(e) => return Ok(Some(format!("not revoked: the refresh token could not be opened ({e}); destroyed"))),
    };
    let client = app_client(p)
        .set_revocation_url(oauth2::RevocationUrl::new(url).map_err(|e| TokenError::Passing(e.to_string()))?);
    let token = oauth2::StandardRevocableToken::RefreshToken(RefreshToken::new(refresh.expose_secret().to_owned()));
    drop(refresh);
    let result = match client.revoke_token(token) {
        Ok(req) => req.request_async(&oauth.http).await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    Ok(Some(match result {
        Ok(()) => format!("revoked at {name}"),
        Err(e) => {
            tracing::warn!(mailbox.id = %mbx, provider = name, error = %e, "revoking the grant failed");
            format!("revocation at {name} failed ({e}); Mailroom's sealed tokens were destroyed anyway")
        }
    }))
}
