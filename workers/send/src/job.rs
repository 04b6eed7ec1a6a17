//! The job body: decides what a send needs and hands a due one to an attempt.

use std::{sync::Arc, time::Duration};

use apalis::prelude::{BoxDynError, Data};
use chrono::Utc;
use mailroom_domain::{MailboxId, SendJob, SendState};
use mailroom_store::{
    events,
    mailboxes::{self, MailboxRow},
    queue, sends,
};
use tracing::Instrument;

use crate::{Ctx, attempt, pace, reconcile};

/// The apalis handler. Infrastructure errors are logged here, once, and handed back to apalis
/// after a pause so a database outage does not turn into a hot re-fetch loop.
pub(crate) async fn handle(job: SendJob, ctx: Data<Arc<Ctx>>) -> Result<(), BoxDynError> {
    let span = tracing::info_span!("send", send.id = %job.send_id, workspace.id = %job.workspace_id);
    match process(&ctx, job).instrument(span).await {
        Ok(()) => Ok(()),
        Err(e) => {
            tracing::error!(send.id = %job.send_id, error = ?e, "send job failed; the queue will run it again");
            tokio::time::sleep(Duration::from_secs(2)).await;
            Err(e.into())
        }
    }
}

async fn process(ctx: &Ctx, job: SendJob) -> anyhow::Result<()> {
    // Each step below takes its own connection and gives it back before the next: a job never
    // holds two, so a pool smaller than the concurrency can slow jobs down but never deadlock.
    let mut conn = ctx.pool.acquire().await?;
    let Some(row) = sends::get(&mut conn, job.workspace_id, job.send_id).await? else {
        tracing::warn!("job for an unknown send; dropping it");
        return Ok(());
    };
    let mailbox = mailboxes::get(&mut conn, job.workspace_id, MailboxId::from_uuid(row.mailbox_id)).await?;
    drop(conn);
    let now = Utc::now();
    match row.state()? {
        s if s.is_terminal() => Ok(()),
        SendState::Sending => recover(ctx, &row, mailbox.as_ref()).await,
        _ if row.next_attempt_at.is_some_and(|at| at > now + chrono::Duration::seconds(1)) => {
            // Early or duplicate delivery: the job scheduled for that instant will come.
            Ok(())
        }
        SendState::RetryWait if row.next_attempt_at.is_none() => Ok(()), // parked
        _ => {
            let mailbox = mailbox.ok_or_else(|| anyhow::anyhow!("the send's mailbox is missing"))?;
            if mailbox.status == "needs_reauth" {
                return park(ctx, &row).await;
            }
            // A reconciliation is a read of Sent, not a send: it needs no slot.
            if row.reconcile_reason.is_none() && !pace::slot_due_now(ctx, &row, &mailbox).await? {
                return Ok(());
            }
            match pace::claim(ctx, &row, &mailbox).await? {
                Some(claimed) => attempt::run(ctx, claimed, mailbox).await,
                None => Ok(()),
            }
        }
    }
}

/// Workers dying during a delivery attempt of one send before it is settled as ambiguous: a
/// send that keeps killing its workers is not tried for ever.
const MAX_CRASHES: i32 = 3;

/// A send is `sending` when its job comes round again: either another worker holds a live
/// lease (this job is a duplicate), or the holder died mid-attempt. In the second case the
/// message may have reached the provider, so it is never resent blindly: it is reconciled
/// against the Sent folder where the mailbox allows, and settled as ambiguous otherwise.
async fn recover(ctx: &Ctx, row: &sends::SendRow, mailbox: Option<&MailboxRow>) -> anyhow::Result<()> {
    if let Some(until) = row.lease_until.filter(|l| *l > Utc::now()) {
        // Live lease: a duplicate delivery, or the holder's job re-queued as an orphan before
        // the lease ran out. Come back when it has: if the holder is alive the send will be
        // finished and this is a no-op; if not, it is recovered then. Dropping the job here
        // could leave the send `sending` for ever.
        let mut conn = ctx.pool.acquire().await?;
        let job = SendJob { send_id: row.send_id(), workspace_id: row.workspace() };
        queue::push_sends(&mut conn, &[(job, until + chrono::Duration::seconds(1))]).await?;
        return Ok(());
    }
    // A send whose handling keeps killing workers is not retried for ever (apalis re-queues
    // an orphaned job however often it happens): after a few recoveries it is settled.
    let give_up = row.crashes >= MAX_CRASHES || row.recoveries >= crate::MAX_RECOVERIES;
    let reason = if give_up {
        "the workers handling this send died repeatedly; it may have been delivered"
    } else {
        "the worker holding this send stopped mid-attempt; it may have been delivered"
    };
    let mut tx = ctx.pool.begin().await?;
    let reconcile_at = mailbox
        .filter(|m| !give_up && reconcile::possible(m))
        .map(|_| Utc::now() + chrono::Duration::from_std(ctx.config.reconcile_delay).unwrap_or_default());
    if sends::expire_lease(&mut tx, row, reason, reconcile_at).await? {
        if let Some(at) = reconcile_at {
            let job = SendJob { send_id: row.send_id(), workspace_id: row.workspace() };
            queue::push_sends(&mut tx, &[(job, at)]).await?;
            tracing::warn!("send left mid-attempt by a dead worker; its Sent folder will be checked");
        } else {
            let data = serde_json::json!({ "reason": reason, "message_id": row.message_id });
            let event = events::NewEvent {
                workspace: row.workspace(),
                kind: "send.ambiguous",
                send: Some(row.send_id()),
                mailbox: Some(row.mailbox()),
                data,
            };
            events::insert(&mut tx, &event).await?;
            tracing::warn!("send left mid-attempt by a dead worker is now ambiguous");
        }
    }
    tx.commit().await?;
    Ok(())
}

/// The mailbox needs re-authentication: the send waits, with no job, until it is reconnected.
async fn park(ctx: &Ctx, row: &sends::SendRow) -> anyhow::Result<()> {
    let mut tx = ctx.pool.begin().await?;
    sends::postpone(&mut tx, row, None, "mailbox needs re-authentication").await?;
    tx.commit().await?;
    Ok(())
}
