//! Reconciliation: a send that may have been delivered is looked for in its mailbox's Sent
//! folder before anything else happens to it (docs/design.md section 3).
//!
//! Found: it was sent. Provably absent (the provider files every submitted message in Sent and
//! the search worked): it was not, so it is sent again. Anything else: `ambiguous`, reported and
//! never resent automatically.

use mailroom_store::{mailboxes::MailboxRow, sends::SendRow};
use mailroom_transport::imap::{self, ImapCredential, ImapEndpoint};
use mailroom_vault::Field;
use secrecy::SecretString;

use crate::{Ctx, outcome, secrets};

/// What the Sent folder says about a send.
pub(crate) enum Finding {
    /// The Message-ID is in Sent.
    Found,
    /// It is not, and this provider would have filed it: not delivered.
    Absent,
    /// Nothing can be concluded; the reason says why.
    Unknown(String),
    /// The search could not be made this time (database, vault or IMAP unavailable).
    CouldNotLook(String),
}

/// The mailbox's IMAP endpoint, when it has one.
pub(crate) fn endpoint(m: &MailboxRow) -> Option<ImapEndpoint> {
    let (host, user) = (m.imap_host.as_deref(), m.imap_username.as_deref());
    ImapEndpoint::from_stored(host, m.imap_port, m.imap_tls.as_deref(), user, &m.sent_folder)
}

/// What logs the mailbox in to IMAP: its IMAP password, or for an OAuth mailbox a fresh access
/// token (used with XOAUTH2).
async fn imap_secret(ctx: &Ctx, row: &SendRow, m: &MailboxRow) -> anyhow::Result<SecretString> {
    let (ws, mbx) = (row.workspace(), row.mailbox());
    if m.auth_kind == "oauth" {
        Ok(mailroom_keyring::tokens::access_token(&ctx.pool, &ctx.vault, &ctx.config.oauth, ws, mbx).await?)
    } else {
        Ok(secrets::open(ctx, ws, mbx, Field::ImapPassword).await?)
    }
}

fn credential<'a>(m: &MailboxRow, secret: &'a SecretString) -> ImapCredential<'a> {
    if m.auth_kind == "oauth" { ImapCredential::Bearer(secret) } else { ImapCredential::Password(secret) }
}

/// Whether sends of this mailbox can be reconciled at all: over IMAP when it has a Sent folder
/// to search, or through the provider's API (Gmail and Graph file what they send).
pub(crate) fn possible(m: &MailboxRow) -> bool {
    m.transport == "api" || (m.sent_copy != "none" && endpoint(m).is_some())
}

/// Searches the mailbox through the Gmail API or Graph.
async fn look_through_api(ctx: &Ctx, row: &SendRow, m: &MailboxRow) -> Finding {
    let name = m.oauth_provider.as_deref().unwrap_or_default();
    let Some(provider) = ctx.config.oauth.provider(name) else {
        return Finding::CouldNotLook(format!("the OAuth provider {name} is not configured"));
    };
    let (ws, mbx) = (row.workspace(), row.mailbox());
    let token = match mailroom_keyring::tokens::access_token(&ctx.pool, &ctx.vault, &ctx.config.oauth, ws, mbx).await {
        Ok(t) => t,
        Err(e) => return Finding::CouldNotLook(format!("no access token: {e}")),
    };
    let http = &ctx.config.oauth.http;
    match mailroom_transport::api::sent_contains(http, name, &provider.api_base, &token, &row.message_id).await {
        Ok(true) => Finding::Found,
        Ok(false) => Finding::Absent,
        Err(e) => Finding::CouldNotLook(e),
    }
}

async fn look(ctx: &Ctx, row: &SendRow, m: &MailboxRow) -> Finding {
    if m.transport == "api" {
        return look_through_api(ctx, row, m).await;
    }
    let Some(ep) = endpoint(m).filter(|_| m.sent_copy != "none") else {
        return Finding::Unknown("the mailbox has no Sent-folder access to check".into());
    };
    let secret = match imap_secret(ctx, row, m).await {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "the mailbox's IMAP credential could not be opened");
            return Finding::CouldNotLook("the IMAP credential could not be opened".into());
        }
    };
    let limit = ctx.config.smtp.command_timeout;
    let (reach, id) = (&ctx.config.smtp.reach, &row.message_id);
    let found = imap::sent_contains(&ep, credential(m, &secret), reach, id, limit).await;
    drop(secret);
    match found {
        Ok(true) => Finding::Found,
        Ok(false) if m.sent_copy == "provider" => Finding::Absent,
        Ok(false) => Finding::Unknown(
            "not in the Sent folder, but this server does not file sent mail itself, so that proves nothing".into(),
        ),
        // Even a refused login may pass (servers refuse logins past a connection limit): look
        // again a few times before settling the send as ambiguous.
        Err(e) => Finding::CouldNotLook(e.to_string()),
    }
}

/// Reconciles a claimed send and records what was found.
pub(crate) async fn run(ctx: &Ctx, claimed: &SendRow, mailbox: &MailboxRow) -> anyhow::Result<()> {
    let finding = look(ctx, claimed, mailbox).await;
    outcome::reconciled(ctx, claimed, finding).await
}

/// Appends a copy of a delivered message to Sent, for servers that do not file it themselves.
/// Best effort: the send is already recorded as sent; a failure only weakens later checks.
pub(crate) async fn append_copy(ctx: &Ctx, row: &SendRow, m: &MailboxRow, bytes: &[u8]) {
    let Some(ep) = endpoint(m) else { return };
    let result = async {
        let secret = imap_secret(ctx, row, m).await?;
        let limit = ctx.config.smtp.command_timeout;
        imap::append_sent(&ep, credential(m, &secret), &ctx.config.smtp.reach, bytes, limit).await?;
        anyhow::Ok(())
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(error = ?e, "could not append the sent message to the Sent folder");
    }
}
