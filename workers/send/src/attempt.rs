//! One delivery attempt of a claimed send.

use anyhow::Context as _;
use mailroom_domain::{EmailAddress, MessageId, OutgoingMessage};
use mailroom_store::{mailboxes::MailboxRow, sends::SendRow};
use mailroom_transport::{DeliverError, Endpoint, TlsMode, compose};
use mailroom_vault::Field;

use crate::{Ctx, outcome, reconcile, secrets};

/// Composes the claimed send, delivers it and records the outcome.
pub(crate) async fn run(ctx: &Ctx, claimed: SendRow, mailbox: MailboxRow) -> anyhow::Result<()> {
    if claimed.reconcile_reason.is_some() {
        return reconcile::run(ctx, &claimed, &mailbox).await;
    }
    if claimed.erased_at.is_some() {
        // Erased while an earlier attempt was under way: the message is gone and its
        // recipient must not be mailed.
        return outcome::erased(ctx, &claimed).await;
    }
    let (ws, mbx) = (claimed.workspace(), claimed.mailbox());
    let composed = serde_json::from_value::<OutgoingMessage>(claimed.payload.clone())
        .context("the ledger payload does not parse")
        .and_then(|msg| {
            let from = EmailAddress::parse(&mailbox.from_address).context("the mailbox's from address is invalid")?;
            let id = MessageId::from_stored(claimed.message_id.clone());
            Ok(compose(&from, mailbox.from_name.as_deref(), &id, &msg, mailbox.transport == "api")?)
        });
    let composed = match composed {
        Ok(c) => c,
        Err(e) => return outcome::uncomposable(ctx, &claimed, &e).await,
    };
    let endpoint = Endpoint {
        host: mailbox.smtp_host.clone(),
        port: u16::try_from(mailbox.smtp_port).context("stored SMTP port out of range")?,
        tls: if mailbox.smtp_tls == "implicit" { TlsMode::Implicit } else { TlsMode::StartTls },
        username: mailbox.smtp_username.clone(),
        xoauth2: mailbox.auth_kind == "oauth",
    };
    let oauth = mailbox.auth_kind == "oauth";
    // The secret that logs a new session in: the password, or a fresh OAuth access token.
    let password = || async move {
        if oauth {
            let token =
                mailroom_keyring::tokens::access_token(&ctx.pool, &ctx.vault, &ctx.config.oauth, ws, mbx).await?;
            Ok(token)
        } else {
            Ok(secrets::open(ctx, ws, mbx, Field::SmtpPassword).await?)
        }
    };
    let result = if mailbox.transport == "api" {
        api_send(ctx, &claimed, &mailbox, &composed.bytes).await
    } else {
        let before_body = || begin_body(ctx, &claimed);
        ctx.sessions.deliver(mbx, &endpoint, password, before_body, &composed).await
    };
    if outcome::record(ctx, &claimed, &mailbox, result).await? && mailbox.sent_copy == "append" {
        reconcile::append_copy(ctx, &claimed, &mailbox, &composed.bytes).await;
    }
    Ok(())
}

/// Sends through the provider's API (Gmail API or Graph): a fresh access token, the handover
/// marker, then one request carrying the whole message.
async fn api_send(
    ctx: &Ctx,
    claimed: &SendRow,
    mailbox: &MailboxRow,
    mime: &[u8],
) -> Result<mailroom_domain::Answer, DeliverError<anyhow::Error>> {
    let (ws, mbx) = (claimed.workspace(), claimed.mailbox());
    let oauth = &ctx.config.oauth;
    let name = mailbox.oauth_provider.as_deref().unwrap_or_default();
    let provider = oauth.provider(name).ok_or_else(|| {
        DeliverError::Secret(anyhow::anyhow!("the mailbox's OAuth provider `{name}` is not configured"))
    })?;
    let token = mailroom_keyring::tokens::access_token(&ctx.pool, &ctx.vault, oauth, ws, mbx)
        .await
        .map_err(|e| DeliverError::Secret(e.into()))?;
    begin_body(ctx, claimed).await.map_err(DeliverError::BeforeBody)?;
    let sent = if name == "microsoft" {
        mailroom_transport::api::graph(&oauth.http, &provider.api_base, &token, mime).await
    } else {
        mailroom_transport::api::gmail(&oauth.http, &provider.api_base, &token, mime).await
    };
    sent.map_err(DeliverError::Smtp)
}

/// Marks the attempt as handing over its body and renews its lease, or refuses when the
/// attempt no longer holds the send (a worker stalled past its lease is fenced out here).
async fn begin_body(ctx: &Ctx, claimed: &SendRow) -> anyhow::Result<()> {
    let mut conn = ctx.pool.acquire().await?;
    let held = mailroom_store::sends::begin_body(&mut conn, claimed, ctx.config.lease.as_secs_f64()).await?;
    anyhow::ensure!(
        held,
        "the attempt lost its lease, or its recipient was erased, before the body was sent; the body was not sent"
    );
    Ok(())
}
