//! The end of an OAuth connection: the account's address, and the mailbox with its tokens
//! sealed like any credential.

use mailroom_domain::{EmailAddress, MailboxId, WorkspaceId, mask_email};
use mailroom_store::{mailboxes, oauth::StateRow};
use mailroom_vault::Field;
use secrecy::SecretString;
use serde_json::Value;

use mailroom_keyring::oauth_config::OAuthProvider;

use crate::{ApiError, AppState, Code};

/// What the code exchange yielded.
pub(crate) struct Tokens {
    pub access: SecretString,
    pub refresh: SecretString,
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
    pub scopes: Vec<String>,
}

/// The account's address: Google's userinfo `email`, Graph `/me` `mail` or
/// `userPrincipalName`.
pub(crate) async fn address(http: &reqwest::Client, p: &OAuthProvider, access: &str) -> Result<String, ApiError> {
    let failed = |why: String| ApiError::new(Code::OauthNoAddress, why);
    let resp =
        http.get(&p.userinfo_url).bearer_auth(access).send().await.map_err(|e| failed(e.without_url().to_string()))?;
    if !resp.status().is_success() {
        return Err(failed(format!("the provider's profile endpoint answered {}", resp.status())));
    }
    let me: Value = resp.json().await.map_err(|e| failed(e.without_url().to_string()))?;
    ["email", "mail", "userPrincipalName"]
        .iter()
        .find_map(|k| me[*k].as_str().filter(|s| s.contains('@')).map(str::to_owned))
        .ok_or_else(|| failed("the provider did not say the account's address".into()))
}

/// The address an ID token names (`email`, then `preferred_username`, then `upn`), if any.
pub(crate) fn address_in_id_token(jwt: &str) -> Option<String> {
    use base64::Engine as _;
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    ["email", "preferred_username", "upn"]
        .iter()
        .find_map(|k| claims[*k].as_str().filter(|s| s.contains('@')).map(str::to_owned))
}

/// Creates the mailbox and seals its tokens, in one transaction.
pub(crate) async fn create(
    state: &AppState,
    row: &StateRow,
    p: &OAuthProvider,
    from: &EmailAddress,
    tokens: Tokens,
    source: &str,
) -> Result<Value, ApiError> {
    let ws = WorkspaceId::from_uuid(row.workspace_id);
    let id = MailboxId::new();
    let pacing = match row.request.get("pacing").filter(|p| !p.is_null()) {
        Some(v) => serde_json::from_value::<crate::pacing::PacingRequest>(v.clone())
            .map_err(|e| ApiError::new(Code::InvalidField, format!("`pacing`: {e}")))?
            .parse()?,
        None => mailroom_domain::pacing::Pacing::default_for_new_mailbox(),
    };
    let mut m = crate::mailboxes::new_row(id, ws, from, row.request["from_name"].as_str());
    m.smtp_host = p.smtp_host.clone();
    m.smtp_port = i32::from(p.smtp_port);
    m.smtp_username = from.as_str().to_owned();
    if row.transport == "smtp" {
        // Read for replies, and searched for what was sent, over IMAP with the same token; the
        // provider files every submitted message in its Sent folder.
        m.imap_host = Some(p.imap_host.clone());
        m.imap_port = Some(i32::from(p.imap_port));
        m.imap_tls = Some(p.imap_tls.clone());
        m.imap_username = Some(from.as_str().to_owned());
        m.sent_folder = p.sent_folder.clone();
        m.sent_copy = "provider".into();
    }
    m.auth_kind = "oauth".into();
    m.oauth_provider = Some(row.provider.clone());
    m.transport = row.transport.clone();
    m.oauth_scopes = Some(tokens.scopes.clone());
    m.token_expires_at = tokens.expires_at;
    crate::pacing::apply(&mut m, &pacing);
    let mut tx = state.begin(ws).await?;
    // A second grant for an address the workspace has is refused but not revoked: the
    // providers revoke per account and app, which would end the existing mailbox's grant too.
    crate::mailboxes::refuse_taken(&mut tx, ws, from).await?;
    let secrets = [(Field::RefreshToken, &tokens.refresh), (Field::AccessToken, &tokens.access)];
    let sealed = crate::mailboxes::seal(state, &mut tx, ws, id, &secrets).await?;
    drop(tokens);
    mailboxes::insert(&mut tx, &m, &sealed.rows()).await?;
    let actor = format!("api_key:{}", mailroom_domain::ApiKeyId::from_uuid(row.api_key_id));
    let who =
        mailroom_store::audit::Actor { name: &actor, source: Some(source), ..mailroom_store::audit::Actor::default() };
    mailroom_store::mailbox_state::connected(&mut tx, &m).await?;
    mailroom_store::audit::record(&mut tx, Some(ws), &who, "mailbox.connect.oauth", Some(&id.to_string())).await?;
    tx.commit().await?;
    tracing::info!(mailbox.id = %id, provider = %row.provider, from = %mask_email(from.as_str()), "mailbox connected over OAuth");
    Ok(serde_json::json!(crate::mailboxes::view_row(&m)))
}
