//! Connecting a Gmail or Microsoft 365 mailbox over OAuth: authorization code with PKCE (S256).
//!
//! `start` (workspace-scoped) makes a random, single-use state bound to the workspace and the
//! requesting key, stores its hash with the PKCE verifier, and answers the provider's
//! authorization URL. The browser comes back to `callback` (no API key: the state is the
//! credential), which uses the state up, exchanges the code with the verifier, checks the
//! granted scopes, learns the address, seals the tokens and creates the mailbox. Any failure
//! creates nothing and says why.

use std::{net::SocketAddr, sync::Arc};

use axum::{
    Json,
    extract::{ConnectInfo, Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use chrono::Utc;
use mailroom_domain::{DisplayName, EmailAddress};
use mailroom_keyring::oauth_config::OAuthProvider;
use mailroom_store::{api_keys, oauth};
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, TokenResponse, TokenUrl,
};
use rand::RngCore;
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{ApiError, AppState, Code, auth::Auth, json::ApiJson, oauth_mailbox};

/// `POST /v1/mailboxes/oauth/{provider}/start` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct StartRequest {
    /// `smtp` (XOAUTH2) or `api` (the Gmail API / Microsoft Graph).
    transport: String,
    from_name: Option<String>,
    pacing: Option<Value>,
    /// Where the browser goes when the connection ends (an origin in `oauth.return_origins`),
    /// with `mailbox_id` and `status`, or `error` and `error_description`.
    return_url: Option<String>,
}

fn bad_state(code: Code, message: &str) -> ApiError {
    ApiError::new(code, message.to_owned())
}

/// The OpenID Connect ID token that comes with the tokens when `openid` was asked for: it says
/// who the account is even when the access token is for mail only (Microsoft SMTP grants
/// cannot read Graph `/me`).
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub(crate) struct IdTokenField {
    #[serde(default)]
    id_token: Option<String>,
}

impl oauth2::ExtraTokenFields for IdTokenField {}

type TokenWithId = oauth2::StandardTokenResponse<IdTokenField, oauth2::basic::BasicTokenType>;

/// A client with no endpoint set yet.
type Unset = oauth2::Client<
    oauth2::basic::BasicErrorResponse,
    TokenWithId,
    oauth2::basic::BasicTokenIntrospectionResponse,
    oauth2::StandardRevocableToken,
    oauth2::basic::BasicRevocationErrorResponse,
>;

/// A client with its authorization and token endpoints set.
type Client = oauth2::Client<
    oauth2::basic::BasicErrorResponse,
    TokenWithId,
    oauth2::basic::BasicTokenIntrospectionResponse,
    oauth2::StandardRevocableToken,
    oauth2::basic::BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

fn client(p: &OAuthProvider, redirect: &str) -> Result<Client, ApiError> {
    let url_err = |e: oauth2::url::ParseError| ApiError::Internal(Box::new(e));
    Ok(Unset::new(ClientId::new(p.client_id.clone()))
        .set_client_secret(ClientSecret::new(p.client_secret.expose_secret().to_owned()))
        .set_auth_uri(AuthUrl::new(p.auth_url.clone()).map_err(url_err)?)
        .set_token_uri(TokenUrl::new(p.token_url.clone()).map_err(url_err)?)
        .set_redirect_uri(RedirectUrl::new(redirect.to_owned()).map_err(url_err)?))
}

fn scopes(p: &OAuthProvider, transport: &str) -> Vec<String> {
    if transport == "api" { p.api_scopes.clone() } else { p.smtp_scopes.clone() }
}

/// `POST /v1/mailboxes/oauth/{provider}/start` → 201 `{authorization_url, expires_at}`.
pub(crate) async fn start(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(provider): Path<String>,
    ApiJson(req): ApiJson<StartRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let p = state.oauth.provider(&provider).ok_or_else(|| {
        ApiError::new(Code::ProviderNotConfigured, format!("OAuth provider `{provider}` is not configured"))
    })?;
    match req.transport.as_str() {
        "smtp" => {}
        "api" => {}
        _ => return Err(ApiError::new(Code::InvalidField, "`transport`: must be `smtp` or `api`")),
    }
    if let Some(name) = &req.from_name {
        DisplayName::parse(name).map_err(|e| ApiError::new(Code::InvalidField, format!("`from_name`: {e}")))?;
    }
    if let Some(pacing) = &req.pacing {
        let parsed: crate::pacing::PacingRequest = serde_json::from_value(pacing.clone())
            .map_err(|e| ApiError::new(Code::InvalidField, format!("`pacing`: {e}")))?;
        parsed.parse()?;
    }
    check_return_url(&state, req.return_url.as_deref())?;
    let request = json!({ "from_name": req.from_name, "pacing": req.pacing, "return_url": req.return_url });
    authorize(&state, &auth, p, &provider, &req.transport, request).await
}

/// Refuses a `return_url` whose origin the operator has not allowed.
pub(crate) fn check_return_url(state: &AppState, url: Option<&str>) -> Result<(), ApiError> {
    let Some(url) = url else { return Ok(()) };
    let allowed =
        mailroom_keyring::oauth_config::origin_of(url).is_some_and(|o| state.oauth.return_origins.contains(&o));
    if !allowed || url.len() > 2000 {
        return Err(ApiError::new(
            Code::ReturnUrlNotAllowed,
            "`return_url` must be an http(s) URL on an origin the operator allows (oauth.return_origins)",
        ));
    }
    Ok(())
}

/// Stores a new single-use state (PKCE verifier, the request) and answers the provider's
/// authorization URL.
pub(crate) async fn authorize(
    state: &AppState,
    auth: &Auth,
    p: &OAuthProvider,
    provider: &str,
    transport: &str,
    request: Value,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    let value = hex::encode(raw);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let oauth_client = client(p, &state.oauth.redirect_url)?;
    let mut authorize = oauth_client.authorize_url(|| CsrfToken::new(value.clone())).set_pkce_challenge(challenge);
    for s in scopes(p, transport) {
        authorize = authorize.add_scope(Scope::new(s));
    }
    if provider == "google" {
        // Google issues a refresh token only with offline access, and again only on consent.
        authorize = authorize.add_extra_param("access_type", "offline").add_extra_param("prompt", "consent");
    }
    let (url, _) = authorize.url();
    let expires_at = Utc::now() + chrono::Duration::from_std(state.oauth.state_ttl).unwrap_or_default();
    let row = oauth::StateRow {
        state_hash: Sha256::digest(value.as_bytes()).to_vec(),
        workspace_id: auth.workspace.as_uuid(),
        api_key_id: auth.key.as_uuid(),
        provider: provider.to_owned(),
        transport: transport.to_owned(),
        pkce_verifier: verifier.secret().to_owned(),
        request,
        expires_at,
    };
    let mut tx = state.begin(auth.workspace).await?;
    oauth::insert(&mut tx, &row).await?;
    let target = format!("{provider} ({})", row.transport);
    mailroom_store::audit::record(&mut tx, Some(auth.workspace), &auth.actor(), "mailbox.oauth.start", Some(&target))
        .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(json!({ "authorization_url": url.to_string(), "expires_at": expires_at }))))
}

/// The provider's redirect back to us.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /v1/oauth/callback?code=&state=` → 201 with the new mailbox; when the connection was
/// started with a `return_url`, a 303 back there with `mailbox_id` and `status=connected`, or
/// `error` and `error_description` (a state that cannot be read has no trusted place to
/// return to, and answers JSON).
pub(crate) async fn callback(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    crate::json::ApiQuery(q): crate::json::ApiQuery<Callback>,
) -> Result<Response, ApiError> {
    let value = q
        .state
        .clone()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad_state(Code::OauthStateMissing, "the `state` parameter is missing"))?;
    // The callback carries no key: the state names the workspace (read across workspaces).
    let row = oauth::consume(&mut *state.pool.acquire().await?, &Sha256::digest(value.as_bytes())).await?.ok_or_else(
        || {
            bad_state(
                Code::OauthStateInvalid,
                "this connection was not started here, or was already completed; start again",
            )
        },
    )?;
    let back = row.request.get("return_url").and_then(Value::as_str).map(str::to_owned);
    let done = complete(&state, peer, q, &row).await;
    match (back, done) {
        // A re-authorisation answers 200 with the same mailbox; a connection 201 with a new one.
        (None, Ok(mailbox)) if mailbox.get("resumed_sends").is_some() => Ok(Json(mailbox).into_response()),
        (None, Ok(mailbox)) => Ok((StatusCode::CREATED, Json(mailbox)).into_response()),
        (None, Err(e)) => Err(e),
        (Some(url), done) => Ok(return_to(&url, done)),
    }
}

/// The redirect back to the platform's page, with the outcome in its query.
fn return_to(url: &str, done: Result<Value, ApiError>) -> Response {
    let Ok(mut u) = oauth2::url::Url::parse(url) else {
        return ApiError::Internal("a stored return_url no longer parses".into()).into_response();
    };
    match done {
        Ok(mailbox) => {
            let id = mailbox["id"].as_str().unwrap_or_default();
            let status = if mailbox.get("resumed_sends").is_some() { "reconnected" } else { "connected" };
            u.query_pairs_mut().append_pair("mailbox_id", id).append_pair("status", status);
        }
        Err(e) => {
            let (status, code) = e.status_and_code();
            let description = if status.is_server_error() {
                // Logged once, as every 5xx is; the browser learns nothing more.
                drop(e.into_response());
                "the connection could not be completed; try again".to_owned()
            } else {
                e.to_string()
            };
            u.query_pairs_mut().append_pair("error", code).append_pair("error_description", &description);
        }
    }
    axum::response::Redirect::to(u.as_str()).into_response()
}

/// Everything after the state is known: the provider's answer, the code exchange, the account,
/// the new mailbox.
async fn complete(state: &AppState, peer: SocketAddr, q: Callback, row: &oauth::StateRow) -> Result<Value, ApiError> {
    if row.expires_at < Utc::now() {
        return Err(bad_state(Code::OauthStateExpired, "this connection took too long; start again"));
    }
    let key =
        api_keys::find(&mut *state.pool.acquire().await?, mailroom_domain::ApiKeyId::from_uuid(row.api_key_id)).await?;
    if key.is_none_or(|k| k.revoked_at.is_some() || k.workspace.as_uuid() != row.workspace_id) {
        return Err(bad_state(Code::OauthStateInvalid, "the API key that started this connection is no longer valid"));
    }
    if let Some(error) = q.error {
        let code = if error == "access_denied" { Code::OauthAccessDenied } else { Code::OauthProviderError };
        return Err(bad_state(code, &format!("the provider answered `{error}`: nothing was connected")));
    }
    let code = q.code.ok_or_else(|| bad_state(Code::OauthCodeMissing, "the `code` parameter is missing"))?;
    let p = state.oauth.provider(&row.provider).ok_or(ApiError::NotFound("provider"))?;
    let token = client(p, &state.oauth.redirect_url)?
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(PkceCodeVerifier::new(row.pkce_verifier.clone()))
        .request_async(&state.oauth.http)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, provider = %row.provider, "OAuth code exchange failed");
            ApiError::new(Code::OauthExchangeFailed, format!("the provider refused the code exchange: {e}"))
        })?;
    let wanted = scopes(p, &row.transport);
    let granted: Vec<String> =
        token.scopes().map_or_else(|| wanted.clone(), |s| s.iter().map(|s| s.to_string()).collect());
    let missing: Vec<&String> = wanted.iter().filter(|w| !granted.contains(w)).collect();
    if !missing.is_empty() {
        return Err(ApiError::new(
            Code::OauthScopesMissing,
            format!("the account did not grant {missing:?}; connect again and allow them"),
        ));
    }
    let refresh = token.refresh_token().ok_or_else(|| {
        ApiError::new(Code::OauthNoRefreshToken, "the provider issued no refresh token; connect again")
    })?;
    // The token came straight from the provider over TLS, so its ID token's claims are trusted
    // as they are (OpenID Connect Core 3.1.3.7); without one, the profile endpoint says.
    let claimed = token.extra_fields().id_token.as_deref().and_then(oauth_mailbox::address_in_id_token);
    let address = match claimed {
        Some(a) => a,
        None => oauth_mailbox::address(&state.oauth.http, p, token.access_token().secret()).await?,
    };
    let from = EmailAddress::parse(&address)
        .map_err(|e| ApiError::new(Code::OauthNoAddress, format!("the account's address is unusable: {e}")))?;
    let tokens = oauth_mailbox::Tokens {
        access: secrecy::SecretString::from(token.access_token().secret().to_owned()),
        refresh: secrecy::SecretString::from(refresh.secret().to_owned()),
        expires_at: token.expires_in().map(|d| Utc::now() + chrono::Duration::from_std(d).unwrap_or_default()),
        scopes: granted,
    };
    match row.request.get("mailbox_id").and_then(Value::as_str) {
        Some(id) => crate::oauth_reauth::reauthorise(state, row, id, &from, tokens, &peer.ip().to_string()).await,
        None => oauth_mailbox::create(state, row, p, &from, tokens, &peer.ip().to_string()).await,
    }
}
