//! IDLE watchers: after a check reads an IMAP mailbox to the end, its session is kept open in
//! IDLE until the next scheduled check, so mail that arrives meanwhile is read within seconds.
//! A watcher reads nothing itself: when the server announces new mail it makes the mailbox due
//! now and closes, and the ordinary check (claimed under the mailbox's lease, as always) reads
//! it. A watcher therefore cannot break "one reader per mailbox", and a lost one costs only
//! the wait until the next check.
//!
//! Where it helps, and where it does not: IDLE holds one connection per watched mailbox, so a
//! process watches at most `reply.idle_watchers` at once (the rest are polled, as before); the
//! Gmail API and Graph sources are polled.

use std::{sync::Arc, time::Duration};

use mailroom_domain::{MailboxId, WorkspaceId};
use mailroom_store::replies;
use mailroom_transport::inbox::Inbox;

use crate::Ctx;

/// Keeps `inbox` open in IDLE for up to `within`, if the server offers IDLE and a watcher's
/// place is free; otherwise logs out.
pub(crate) async fn watch(ctx: &Arc<Ctx>, ws: WorkspaceId, mbx: MailboxId, inbox: Inbox, within: Duration) {
    let limit = ctx.config.imap_timeout;
    let permit = ctx.watchers.clone().try_acquire_owned();
    let (true, Ok(permit)) = (inbox.can_idle() && !within.is_zero(), permit) else {
        inbox.close(limit).await;
        return;
    };
    let ctx = ctx.clone();
    tokio::spawn(async move {
        let _permit = permit;
        let mut stop = ctx.stop.clone();
        let news = tokio::select! {
            news = inbox.wait_for_mail(within, limit) => news,
            _ = stop.wait_for(|stopped| *stopped) => return,
        };
        match news {
            Ok(true) => {
                let due = async {
                    let mut conn = ctx.pool.acquire().await?;
                    anyhow::Ok(replies::check_now(&mut conn, ws, mbx).await?)
                };
                match due.await {
                    Ok(_) => {
                        ctx.wake.notify_one();
                        tracing::debug!(mailbox.id = %mbx, "new mail announced (IDLE); checking now");
                    }
                    Err(e) => {
                        tracing::warn!(mailbox.id = %mbx, error = %format!("{e:#}"), "could not make the mailbox due")
                    }
                }
            }
            Ok(false) => {}
            // The next scheduled check reads whatever this one would have announced.
            Err(e) => tracing::debug!(mailbox.id = %mbx, error = %e, "IDLE ended early"),
        }
    });
}

/// Waits (briefly) for watchers to leave after the stop signal.
pub(crate) async fn wait_for_watchers(ctx: &Ctx) {
    let all = u32::try_from(ctx.config.idle_watchers).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(ctx.config.imap_timeout, ctx.watchers.acquire_many(all)).await;
}
