//! Opening a mailbox's sealed credential for the job in hand.

use std::sync::atomic::Ordering;

use mailroom_domain::{MailboxId, WorkspaceId};
use mailroom_keyring::OpenError;
use mailroom_vault::Field;
use secrecy::SecretString;

use crate::Ctx;

/// Opens one sealed field of a mailbox (see [`mailroom_keyring::open_secret`]). The caller
/// drops the secret as soon as it has used it. Successes reset the process's KMS backoff.
pub(crate) async fn open(ctx: &Ctx, ws: WorkspaceId, mbx: MailboxId, field: Field) -> Result<SecretString, OpenError> {
    let opened = mailroom_keyring::open_secret(&ctx.pool, &ctx.vault, ws, mbx, field).await;
    if opened.is_ok() {
        ctx.provider_failures.store(0, Ordering::Relaxed);
    }
    opened
}

/// How long a send waits after a provider it needs (the KMS, an OAuth token endpoint) was
/// unavailable: exponential in the failures this process has seen in a row, so an outage
/// costs few calls, not one per job per second.
pub(crate) fn provider_wait(ctx: &Ctx) -> std::time::Duration {
    let failures = ctx.provider_failures.fetch_add(1, Ordering::Relaxed) + 1;
    ctx.config.throttle_backoff.delay(failures, rand::random())
}
