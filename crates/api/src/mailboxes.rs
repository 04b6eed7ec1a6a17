//! `POST /v1/mailboxes` (connect an SMTP mailbox) and `GET /v1/mailboxes/{id}`.

use std::{net::SocketAddr, sync::Arc};

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use mailroom_domain::{DisplayName, EmailAddress, MailboxId, WorkspaceId, mask_email};
use mailroom_store::mailboxes::{self, MailboxRow, SealedSecret};
use mailroom_transport::{
    Endpoint, Refused, TlsMode,
    imap::{ImapEndpoint, ImapError, ImapTls},
};
use mailroom_vault::{Field, SealContext, WrappedKey};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::views::MailboxView;
use crate::{ApiError, AppState, Code, auth::Auth, json::ApiJson};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ServerSettings {
    host: String,
    port: u16,
    tls: String,
    username: String,
    #[schema(value_type = String, format = Password)]
    password: SecretString,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ImapSettings {
    host: String,
    port: u16,
    tls: String,
    username: String,
    #[schema(value_type = String, format = Password)]
    password: SecretString,
    sent_folder: Option<String>,
}

impl ImapSettings {
    fn as_server(&self) -> ServerSettings {
        ServerSettings {
            host: self.host.clone(),
            port: self.port,
            tls: self.tls.clone(),
            username: self.username.clone(),
            password: self.password.clone(),
        }
    }

    fn endpoint(&self) -> ImapEndpoint {
        let tls = match self.tls.as_str() {
            "implicit" => ImapTls::Implicit,
            "starttls" => ImapTls::StartTls,
            _ => ImapTls::None,
        };
        let sent_folder = self.sent_folder.clone().unwrap_or_else(|| "Sent".into());
        ImapEndpoint { host: self.host.clone(), port: self.port, tls, username: self.username.clone(), sent_folder }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConnectRequest {
    from_address: String,
    from_name: Option<String>,
    smtp: ServerSettings,
    imap: Option<ImapSettings>,
    /// Who files sent mail in the Sent folder: `provider`, `append` or `none` (default).
    sent_copy: Option<String>,
    /// Pacing; defaults protect a warmed-up mailbox.
    pacing: Option<crate::pacing::PacingRequest>,
}

/// Checks the optional IMAP part: settings, `sent_copy`, and a real login.
async fn check_imap(state: &AppState, req: &ConnectRequest) -> Result<String, ApiError> {
    let sent_copy = req.sent_copy.clone().unwrap_or_else(|| "none".into());
    if !["provider", "append", "none"].contains(&sent_copy.as_str()) {
        return Err(invalid("sent_copy", "must be one of provider, append, none"));
    }
    let Some(imap) = &req.imap else {
        if sent_copy != "none" {
            return Err(invalid("sent_copy", "needs `imap` settings to reach the Sent folder"));
        }
        return Ok(sent_copy);
    };
    check_server("imap", &imap.as_server(), &["starttls", "implicit", "none"])?;
    let addrs = reachable(state, Server::Imap, &imap.host, imap.port).await?;
    if imap.tls == "none" && !state.smtp.reach.egress.allows_plain_text(&imap.host, imap.port, &addrs) {
        return Err(ApiError::new(Code::EgressDenied, format!("`imap.tls`: {}", Refused::PlainText)));
    }
    if imap.sent_folder.as_ref().is_some_and(|f| f.is_empty() || f.chars().any(|c| c.is_control() || c == '"')) {
        return Err(invalid("imap.sent_folder", "must be a folder name without quotes or control characters"));
    }
    let limit = state.smtp.command_timeout;
    if let Err(e) = mailroom_transport::imap::verify(
        &imap.endpoint(),
        mailroom_transport::imap::ImapCredential::Password(&imap.password),
        &state.smtp.reach,
        limit,
    )
    .await
    {
        // The error's own words only (never the server's): its cause goes to the log.
        tracing::info!(error = %crate::error::chain(&e), "IMAP login check failed at connect");
        let code = if matches!(e, ImapError::Login(_)) { Code::ImapAuthFailed } else { Code::ImapUnreachable };
        return Err(ApiError::new(code, e.to_string()));
    }
    Ok(sent_copy)
}

/// Whether the egress policy lets Mailroom reach `host` (a tenant's word): the addresses it
/// resolves to, or a 422 naming the field.
pub(crate) async fn reachable(
    state: &AppState,
    server: Server,
    host: &str,
    port: u16,
) -> Result<Vec<SocketAddr>, ApiError> {
    let (field, unreachable) = match server {
        Server::Smtp => ("smtp.host", Code::SmtpUnreachable),
        Server::Imap => ("imap.host", Code::ImapUnreachable),
    };
    let resolve = state.smtp.reach.egress.resolve(host, port);
    let Ok(resolved) = tokio::time::timeout(state.smtp.command_timeout, resolve).await else {
        return Err(ApiError::new(unreachable, format!("`{field}`: the name did not resolve in time")));
    };
    resolved.map_err(|e| match e {
        Refused::Unresolved { .. } => ApiError::new(unreachable, format!("`{field}`: {e}")),
        e => ApiError::new(Code::EgressDenied, format!("`{field}`: {e}")),
    })
}

/// Which of a mailbox's servers an address is for.
#[derive(Clone, Copy)]
pub(crate) enum Server {
    Smtp,
    Imap,
}

fn invalid(field: &str, problem: impl std::fmt::Display) -> ApiError {
    ApiError::new(Code::InvalidField, format!("`{field}`: {problem}"))
}

fn check_server(prefix: &str, s: &ServerSettings, modes: &[&str]) -> Result<(), ApiError> {
    check_server_fields(prefix, &s.host, s.port, &s.tls, &s.username, modes)
}

/// Checks one server's settings, naming the field at fault (connect and `PATCH` alike).
pub(crate) fn check_server_fields(
    prefix: &str,
    host: &str,
    port: u16,
    tls: &str,
    username: &str,
    modes: &[&str],
) -> Result<(), ApiError> {
    let host_ok =
        !host.is_empty() && host.len() <= 253 && host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b));
    if !host_ok {
        return Err(invalid(&format!("{prefix}.host"), "must be a host name or IP address"));
    }
    if port == 0 {
        return Err(invalid(&format!("{prefix}.port"), "must be 1 to 65535"));
    }
    if !modes.contains(&tls) {
        return Err(invalid(&format!("{prefix}.tls"), format!("must be one of {}", modes.join(", "))));
    }
    if username.is_empty() || username.chars().any(char::is_control) {
        return Err(invalid(&format!("{prefix}.username"), "must be non-empty, without control characters"));
    }
    Ok(())
}

/// Connects a mailbox: checks the SMTP password with a real login, then seals it.
pub(crate) async fn connect(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    ApiJson(req): ApiJson<ConnectRequest>,
) -> Result<(StatusCode, Json<MailboxView>), ApiError> {
    let from = EmailAddress::parse(&req.from_address).map_err(|e| invalid("from_address", e))?;
    let from_name =
        req.from_name.as_deref().map(DisplayName::parse).transpose().map_err(|e| invalid("from_name", e))?;
    check_server("smtp", &req.smtp, &["starttls", "implicit"])?;
    // Before any login: the same check is made again, under a lock, where the row is stored.
    refuse_taken(&mut *state.begin(auth.workspace).await?, auth.workspace, &from).await?;
    let pacing = match &req.pacing {
        Some(p) => p.parse()?,
        None => mailroom_domain::pacing::Pacing::default_for_new_mailbox(),
    };
    let sent_copy = check_imap(&state, &req).await?;
    let endpoint = Endpoint {
        host: req.smtp.host.clone(),
        port: req.smtp.port,
        tls: if req.smtp.tls == "implicit" { TlsMode::Implicit } else { TlsMode::StartTls },
        username: req.smtp.username.clone(),
        xoauth2: false,
    };
    reachable(&state, Server::Smtp, &req.smtp.host, req.smtp.port).await?;
    if let Err(f) = mailroom_transport::verify(&state.smtp, &endpoint, &req.smtp.password).await {
        tracing::info!(from = %mask_email(from.as_str()), failure = %f, "SMTP login check failed at connect");
        let code = if f.answer.is_some() { Code::SmtpAuthFailed } else { Code::SmtpUnreachable };
        return Err(ApiError::new(code, f.for_tenant()));
    }
    let id = MailboxId::new();
    let mut tx = state.begin(auth.workspace).await?;
    refuse_taken(&mut tx, auth.workspace, &from).await?;
    let mut secrets = vec![(Field::SmtpPassword, &req.smtp.password)];
    if let Some(imap) = &req.imap {
        secrets.push((Field::ImapPassword, &imap.password));
    }
    let sealed = seal(&state, &mut tx, auth.workspace, id, &secrets).await?;
    let mut row = new_row(id, auth.workspace, &from, from_name.as_ref().map(|n| n.as_str()));
    row.smtp_host = req.smtp.host.clone();
    row.smtp_port = i32::from(req.smtp.port);
    row.smtp_tls = req.smtp.tls.clone();
    row.smtp_username = req.smtp.username.clone();
    if let Some(i) = &req.imap {
        (row.imap_host, row.imap_port) = (Some(i.host.clone()), Some(i32::from(i.port)));
        (row.imap_tls, row.imap_username) = (Some(i.tls.clone()), Some(i.username.clone()));
        row.sent_folder = i.sent_folder.clone().unwrap_or_else(|| "Sent".into());
    }
    row.sent_copy = sent_copy;
    crate::pacing::apply(&mut row, &pacing);
    mailboxes::insert(&mut tx, &row, &sealed.rows()).await?;
    mailroom_store::mailbox_state::connected(&mut tx, &row).await?;
    mailroom_store::audit::record(
        &mut tx,
        Some(auth.workspace),
        &auth.actor(),
        "mailbox.connect",
        Some(&id.to_string()),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(mailbox.id = %id, from = %mask_email(from.as_str()), "mailbox connected");
    Ok((StatusCode::CREATED, Json(view_row(&row))))
}

/// `409 mailbox_exists` when the workspace already has a mailbox (not disconnected) sending as
/// `from`, naming it: one address is one mailbox, reconnected in place when its credentials
/// change.
pub(crate) async fn refuse_taken(
    conn: &mut mailroom_store::PgConnection,
    ws: WorkspaceId,
    from: &EmailAddress,
) -> Result<(), ApiError> {
    match mailboxes::holder(conn, ws, from.as_str()).await? {
        None => Ok(()),
        Some(existing) => Err(ApiError::new(
            Code::MailboxExists,
            format!(
                "`{}` is already connected as mailbox {}; give it new credentials with \
                 PUT /v1/mailboxes/{{id}}/credentials (or authorise it again over OAuth), or disconnect it first",
                from.as_str(),
                MailboxId::from_uuid(existing)
            ),
        )),
    }
}

/// A new mailbox row with the defaults every connection starts from.
pub(crate) fn new_row(id: MailboxId, ws: WorkspaceId, from: &EmailAddress, from_name: Option<&str>) -> MailboxRow {
    MailboxRow {
        id: id.as_uuid(),
        workspace_id: ws.as_uuid(),
        from_address: from.as_str().to_owned(),
        from_name: from_name.map(str::to_owned),
        smtp_host: String::new(),
        smtp_port: 587,
        smtp_tls: "starttls".into(),
        smtp_username: String::new(),
        imap_host: None,
        imap_port: None,
        imap_tls: None,
        imap_username: None,
        status: "active".into(),
        status_reason: None,
        paused_until: None,
        pause_reason: None,
        throttle_count: 0,
        sent_copy: "none".into(),
        sent_folder: "Sent".into(),
        daily_cap: None,
        min_gap_ms: 0,
        jitter_ms: 0,
        window_start: None,
        window_end: None,
        time_zone: "UTC".into(),
        max_sessions: 1,
        created_at: chrono::Utc::now(),
        auth_kind: "password".into(),
        oauth_provider: None,
        transport: "smtp".into(),
        oauth_scopes: None,
        token_expires_at: None,
    }
}

/// A mailbox's secrets sealed under the workspace's active data key, each bound to its field.
pub(crate) struct Sealed {
    version: i32,
    values: Vec<(Field, Vec<u8>)>,
}

impl Sealed {
    /// The rows to store.
    pub(crate) fn rows(&self) -> Vec<SealedSecret<'_>> {
        self.values
            .iter()
            .map(|(f, s)| SealedSecret { field: f.as_str(), sealed: s, key_version: self.version })
            .collect()
    }
}

/// Seals `secrets` of mailbox `id` under the workspace's active key (read in `conn`'s
/// transaction): one way for connects, reconnects and OAuth grants alike.
pub(crate) async fn seal(
    state: &AppState,
    conn: &mut mailroom_store::PgConnection,
    ws: WorkspaceId,
    id: MailboxId,
    secrets: &[(Field, &SecretString)],
) -> Result<Sealed, ApiError> {
    let key = active_key(conn, ws).await?;
    let mut values = Vec::with_capacity(secrets.len());
    for (field, secret) in secrets {
        let ctx = SealContext { workspace: ws, mailbox: id, field: *field };
        values.push((*field, state.vault.seal(&key, &ctx, secret).await?));
    }
    Ok(Sealed { version: i32::try_from(key.context.version).unwrap_or(i32::MAX), values })
}

/// The workspace's active data key, wrapped.
pub(crate) async fn active_key(
    conn: &mut mailroom_store::PgConnection,
    ws: WorkspaceId,
) -> Result<WrappedKey, ApiError> {
    Ok(mailroom_keyring::active_key(conn, ws).await?)
}

/// `DELETE /v1/mailboxes/{id}`: destroys the mailbox's sealed credentials and cancels its
/// waiting sends (crypto-shredding). Repeating it is harmless.
pub(crate) async fn disconnect(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id: MailboxId = id.parse().map_err(|_| ApiError::NotFound("mailbox"))?;
    // An OAuth grant is revoked at the provider first, while its token can still be opened.
    let revoked = mailroom_keyring::tokens::revoke_grant(&state.pool, &state.vault, &state.oauth, auth.workspace, id)
        .await
        .map_err(|e| ApiError::Internal(Box::new(e)))?;
    let done = mailroom_keyring::shred::disconnect_mailbox(&state.pool, auth.workspace, id, &auth.actor())
        .await?
        .ok_or(ApiError::NotFound("mailbox"))?;
    let grant = revoked.unwrap_or_else(|| done.provider_grant.to_owned());
    Ok(Json(json!({ "id": id, "status": "disconnected", "destroyed": done.destroyed,
        "cancelled_sends": done.cancelled_sends, "provider_grant": grant })))
}

/// `GET /v1/mailboxes/{id}`.
pub(crate) async fn show(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<MailboxView>, ApiError> {
    let id: MailboxId = id.parse().map_err(|_| ApiError::NotFound("mailbox"))?;
    let mut conn = state.begin(auth.workspace).await?;
    let row = mailboxes::get(&mut conn, auth.workspace, id).await?.ok_or(ApiError::NotFound("mailbox"))?;
    Ok(Json(view_row(&row)))
}

pub(crate) fn view_row(m: &MailboxRow) -> MailboxView {
    MailboxView::of(m)
}
