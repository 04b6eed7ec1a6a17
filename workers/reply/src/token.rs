//! An OAuth mailbox's access token for reading it (the Gmail API, Graph, or IMAP over
//! XOAUTH2). A grant the provider refuses marks the mailbox `needs_reauth` with one
//! `mailbox.needs_reauth` event, as the send worker does, so the scheduler hears of it even
//! from a mailbox that is only being watched.

use mailroom_domain::{MailboxId, WorkspaceId};
use mailroom_keyring::tokens::{self, TokenError};
use mailroom_store::mailboxes;
use secrecy::SecretString;

use crate::Ctx;

pub(crate) async fn access(ctx: &Ctx, ws: WorkspaceId, mbx: MailboxId) -> anyhow::Result<SecretString> {
    match tokens::access_token(&ctx.pool, &ctx.vault, &ctx.config.oauth, ws, mbx).await {
        Ok(t) => Ok(t),
        Err(TokenError::Revoked(why)) => {
            tracing::warn!(mailbox.id = %mbx, why, "an OAuth grant was refused; the mailbox needs re-authentication");
            let mut tx = ctx.pool.begin().await?;
            mailboxes::mark_needs_reauth(&mut tx, ws, mbx, &why).await?;
            tx.commit().await?;
            anyhow::bail!("the provider refused the grant; the mailbox must be connected again")
        }
        Err(e) => Err(e.into()),
    }
}
