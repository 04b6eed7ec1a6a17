//! The server part of `PATCH /v1/mailboxes/{id}`: a password mailbox's SMTP and IMAP hosts,
//! ports, TLS modes, logins and Sent folder, changed in place. The new settings are checked
//! first by a real login with the stored password (opened for that check only, in this
//! process's memory, and dropped with it); nothing changes when the login fails. A new password
//! goes through `PUT /v1/mailboxes/{id}/credentials`.

use mailroom_domain::{MailboxId, WorkspaceId};
use mailroom_keyring::OpenError;
use mailroom_store::mailboxes::{MailboxRow, Servers};
use mailroom_vault::Field;
use serde::Deserialize;

use crate::{ApiError, AppState, Code, mailboxes::check_server_fields};

/// Changes to one server; what is left out stays.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ServerPatch {
    host: Option<String>,
    port: Option<u16>,
    tls: Option<String>,
    username: Option<String>,
    /// IMAP only.
    sent_folder: Option<String>,
}

/// The row as it would be with the changes, checked field by field and then by a real login
/// to each changed server; `None` when nothing about the servers was asked.
pub(crate) async fn checked(
    state: &AppState,
    ws: WorkspaceId,
    m: &MailboxRow,
    smtp: Option<&ServerPatch>,
    imap: Option<&ServerPatch>,
) -> Result<Option<MailboxRow>, ApiError> {
    if smtp.is_none() && imap.is_none() {
        return Ok(None);
    }
    if m.auth_kind != "password" {
        return Err(ApiError::new(
            Code::MailboxUsesOauth,
            "an OAuth mailbox connects to its provider's servers, which cannot be changed",
        ));
    }
    let mut next = m.clone();
    if let Some(s) = smtp {
        if s.sent_folder.is_some() {
            return Err(invalid("smtp.sent_folder", "the Sent folder is an IMAP setting"));
        }
        next.smtp_host = s.host.clone().unwrap_or(next.smtp_host);
        next.smtp_port = s.port.map_or(next.smtp_port, i32::from);
        next.smtp_tls = s.tls.clone().unwrap_or(next.smtp_tls);
        next.smtp_username = s.username.clone().unwrap_or(next.smtp_username);
        let port = u16::try_from(next.smtp_port).unwrap_or(0);
        check_server_fields(
            "smtp",
            &next.smtp_host,
            port,
            &next.smtp_tls,
            &next.smtp_username,
            &["starttls", "implicit"],
        )?;
    }
    if let Some(i) = imap {
        let (Some(host), Some(port), Some(tls), Some(user)) =
            (next.imap_host.clone(), next.imap_port, next.imap_tls.clone(), next.imap_username.clone())
        else {
            return Err(invalid("imap", "this mailbox has no IMAP settings to change; connect it with them"));
        };
        next.imap_host = Some(i.host.clone().unwrap_or(host));
        next.imap_port = Some(i.port.map_or(port, i32::from));
        next.imap_tls = Some(i.tls.clone().unwrap_or(tls));
        next.imap_username = Some(i.username.clone().unwrap_or(user));
        if let Some(f) = &i.sent_folder {
            if f.is_empty() || f.chars().any(|c| c.is_control() || c == '"') {
                return Err(invalid("imap.sent_folder", "must be a folder name without quotes or control characters"));
            }
            next.sent_folder = f.clone();
        }
        let (h, p, t, u) =
            (next.imap_host.as_deref(), next.imap_port, next.imap_tls.as_deref(), next.imap_username.as_deref());
        let port = p.and_then(|p| u16::try_from(p).ok()).unwrap_or(0);
        check_server_fields(
            "imap",
            h.unwrap_or(""),
            port,
            t.unwrap_or(""),
            u.unwrap_or(""),
            &["starttls", "implicit", "none"],
        )?;
    }
    let id = MailboxId::from_uuid(m.id);
    if smtp.is_some() {
        let password = stored(state, ws, id, Field::SmtpPassword).await?;
        crate::reconnect::check_smtp(state, &next, &password).await?;
    }
    if imap.is_some() {
        let password = stored(state, ws, id, Field::ImapPassword).await?;
        crate::reconnect::check_imap(state, &next, &password).await?;
    }
    Ok(Some(next))
}

/// Whether the locked row still connects where the checked one did (else the change raced
/// another and is refused rather than stored unchecked).
pub(crate) fn unchanged(read: &MailboxRow, locked: &MailboxRow) -> Result<(), ApiError> {
    if Servers::of(read) == Servers::of(locked) && read.auth_kind == locked.auth_kind {
        Ok(())
    } else {
        Err(ApiError::new(Code::MailboxChanged, "the mailbox's servers changed meanwhile; read it and try again"))
    }
}

/// The stored password, opened for the login check.
async fn stored(
    state: &AppState,
    ws: WorkspaceId,
    id: MailboxId,
    field: Field,
) -> Result<secrecy::SecretString, ApiError> {
    mailroom_keyring::open_secret(&state.pool, &state.vault, ws, id, field).await.map_err(|e| match e {
        OpenError::Unusable { .. } => ApiError::new(
            Code::CredentialsUnusable,
            "the stored password cannot be opened to check the new settings; give it anew with PUT /v1/mailboxes/{id}/credentials",
        ),
        other => other.into(),
    })
}

fn invalid(field: &str, problem: &str) -> ApiError {
    ApiError::new(Code::InvalidField, format!("`{field}`: {problem}"))
}
