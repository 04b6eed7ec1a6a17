//! One delivery attempt of a claimed send.

use anyhow::Context as _;
use mailroom_domain::{EmailAddress, MailboxId, MessageId, OutgoingMessage, WorkspaceId};
use mailroom_store::{
    keys,
    mailboxes::{self, MailboxRow},
    sends::SendRow,
};
use mailroom_transport::{Endpoint, TlsMode, compose};
use mailroom_vault::{Field, KeyContext, SealContext, WrappedKey};
use secrecy::SecretString;

use crate::{Ctx, outcome};

/// Composes the claimed send, delivers it and records the outcome.
pub(crate) async fn run(ctx: &Ctx, claimed: SendRow, mailbox: MailboxRow) -> anyhow::Result<()> {
    let (ws, mbx) = (claimed.workspace(), claimed.mailbox());
    let composed = serde_json::from_value::<OutgoingMessage>(claimed.payload.clone())
        .context("the ledger payload does not parse")
        .and_then(|msg| {
            let from = EmailAddress::parse(&mailbox.from_address).context("the mailbox's from address is invalid")?;
            let id = MessageId::from_stored(claimed.message_id.clone());
            Ok(compose(&from, mailbox.from_name.as_deref(), &id, &msg)?)
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
    };
    let result = ctx.sessions.deliver(mbx, &endpoint, || open_password(ctx, ws, mbx), &composed).await;
    outcome::record(ctx, &claimed, &composed, result).await
}

/// Opens the mailbox's SMTP password for this job only. The sealed header names the key
/// version; the vault never tries other keys.
async fn open_password(ctx: &Ctx, ws: WorkspaceId, mbx: MailboxId) -> anyhow::Result<SecretString> {
    let field = Field::SmtpPassword;
    let mut conn = ctx.pool.acquire().await?;
    let (sealed, _) = mailboxes::secret(&mut conn, ws, mbx, field.as_str())
        .await?
        .context("the mailbox has no sealed SMTP password")?;
    let version = mailroom_vault::key_version(&sealed)?;
    let row = keys::version(&mut conn, ws, i32::try_from(version)?)
        .await?
        .with_context(|| format!("workspace key version {version} of {ws} is missing or destroyed"))?;
    drop(conn);
    let wrapped = WrappedKey {
        context: KeyContext { workspace: ws, version },
        provider: row.provider,
        kms_key_id: row.kms_key_id,
        blob: row.wrapped_key,
    };
    let seal_ctx = SealContext { workspace: ws, mailbox: mbx, field };
    Ok(ctx.vault.open(&wrapped, &seal_ctx, &sealed).await?)
}
