//! Opening a mailbox's sealed credential for the job in hand.

use anyhow::Context as _;
use mailroom_domain::{MailboxId, WorkspaceId};
use mailroom_store::{keys, mailboxes};
use mailroom_vault::{Field, KeyContext, SealContext, WrappedKey};
use secrecy::SecretString;

use crate::Ctx;

/// Opens one sealed field of a mailbox. The sealed header names the key version; the vault never
/// tries other keys. The caller drops the secret as soon as it has used it.
pub(crate) async fn open(ctx: &Ctx, ws: WorkspaceId, mbx: MailboxId, field: Field) -> anyhow::Result<SecretString> {
    let mut conn = ctx.pool.acquire().await?;
    let (sealed, _) = mailboxes::secret(&mut conn, ws, mbx, field.as_str())
        .await?
        .with_context(|| format!("the mailbox has no sealed {}", field.as_str()))?;
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
