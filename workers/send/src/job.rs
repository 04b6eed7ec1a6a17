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
            match mailbox.status.as_str() {
                s if parking_reason(s).is_some() => return park(ctx, &row, &mailbox.status).await,
                "disconnected" => return cancel(ctx, &row).await,
                _ => {}
            }
            // A step of a sequence stopped by a reply (enqueued after it, or back after an
            // attempt that was under way when it came) is cancelled, never tried.
            if row.reconcile_reason.is_none() && row.sequence.is_some() {
                let mut conn = ctx.pool.acquire().await?;
                if let Some(trigger) = sends::stopped_by(&mut conn, &row).await? {
                    sends::cancel_one(&mut conn, row.workspace(), row.send_id(), trigger.reason()).await?;
                    return Ok(());
                }
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

/// Workers dying during delivery attempts of one send before it is settled: a send that keeps
/// killing its workers is not tried for ever (apalis re-queues an orphaned job however often
/// it happens, whatever its `max_attempts`).
const MAX_CRASHES: i32 = 3;

/// A send is `sending` when its job comes round again: either another worker holds a live
/// lease (this job is a duplicate), or the holder died mid-attempt. If it died before handing
/// the body over (`body_at` unset), nothing can have been delivered and the send is retried,
/// or `failed` once it has crashed workers [`MAX_CRASHES`] times. If it died after, the message
/// may have reached the provider, so it is never resent blindly: it is reconciled against the
/// Sent folder where the mailbox allows, and settled as ambiguous otherwise.
async fn recover(ctx: &Ctx, row: &sends::SendRow, mailbox: Option<&MailboxRow>) -> anyhow::Result<()> {
    if let Some(until) = row.lease_until.filter(|l| *l > Utc::now()) {
        // Live lease: a duplicate delivery, or the holder's job re-queued as an orphan before
        // the lease ran out. Come back when it has: if the holder is alive the send will be
        // finished and this is a no-op; if not, it is recovered then. Dropping the job here
        // could leave the send `sending` for ever.
        let mut conn = ctx.pool.acquire().await?;
        queue::reschedule(&mut conn, row, until + chrono::Duration::seconds(1)).await?;
        return Ok(());
    }
    let reconciling = row.reconcile_reason.is_some();
    let crashes = row.crashes + i32::from(!reconciling);
    let give_up = crashes >= MAX_CRASHES || row.recoveries + 1 >= crate::MAX_RECOVERIES;
    let after = after_crash(ctx, row, mailbox, give_up, crashes);
    let mut tx = ctx.pool.begin().await?;
    if sends::expire_lease(&mut tx, row, after.0).await? {
        match after.0 {
            sends::AfterCrash::Retry { at } | sends::AfterCrash::Reconcile { at, .. } => {
                queue::reschedule(&mut tx, row, at).await?;
            }
            sends::AfterCrash::Settle { state, reason } => {
                let kind = if state == SendState::Failed { "send.failed" } else { "send.ambiguous" };
                let data = serde_json::json!({ "reason": reason, "message_id": row.message_id });
                let event = events::NewEvent {
                    workspace: row.workspace(),
                    kind,
                    send: Some(row.send_id()),
                    mailbox: Some(row.mailbox()),
                    data,
                };
                events::insert(&mut tx, &event).await?;
            }
        }
        tracing::warn!(crashes, outcome = after.1, "recovered a send left mid-attempt by a dead worker");
    }
    tx.commit().await?;
    Ok(())
}

/// What to do with a send whose worker died, and a word for the log.
fn after_crash<'a>(
    ctx: &Ctx,
    row: &'a sends::SendRow,
    mailbox: Option<&MailboxRow>,
    give_up: bool,
    crashes: i32,
) -> (sends::AfterCrash<'a>, &'static str) {
    use sends::AfterCrash;
    let handed_over = row.reconcile_reason.is_some() || row.body_at.is_some();
    if !handed_over && give_up {
        let reason = "the workers handling this send died repeatedly before handing the message over; never delivered";
        return (AfterCrash::Settle { state: SendState::Failed, reason }, "failed");
    }
    if !handed_over {
        let delay = ctx.config.retry_backoff.delay(u32::try_from(crashes).unwrap_or(1), rand::random());
        let at = Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
        return (AfterCrash::Retry { at }, "retry: nothing was handed over");
    }
    let reason = if give_up {
        "the workers handling this send died repeatedly after handing the message over; it may have been delivered"
    } else {
        "the worker holding this send stopped after handing the message over; it may have been delivered"
    };
    if !give_up && mailbox.is_some_and(reconcile::possible) {
        let at = Utc::now() + chrono::Duration::from_std(ctx.config.reconcile_delay).unwrap_or_default();
        return (AfterCrash::Reconcile { at, reason }, "reconcile");
    }
    (AfterCrash::Settle { state: SendState::Ambiguous, reason }, "ambiguous")
}

/// Why a send of a mailbox in `status` waits with no job, if it does: the mailbox is paused by
/// hand, needs re-authentication, or is unusable until an operator acts.
pub(crate) fn parking_reason(status: &str) -> Option<&'static str> {
    match status {
        "paused" => Some("mailbox paused: waiting for it to be resumed"),
        "needs_reauth" => Some("mailbox needs re-authentication"),
        "unusable" => Some("mailbox unusable: its credential cannot be opened"),
        _ => None,
    }
}

/// The mailbox needs re-authentication or an operator: the send waits, with no job, until
/// it is reconnected or re-checked. Parked under the mailbox row's lock, so a re-check that
/// restores the mailbox meanwhile either comes after (and resumes this send) or before (and
/// this send is queued again instead of parked on an active mailbox for ever).
async fn park(ctx: &Ctx, row: &sends::SendRow, status: &str) -> anyhow::Result<()> {
    let mut tx = ctx.pool.begin().await?;
    let now = mailboxes::lock(&mut tx, row.workspace(), row.mailbox()).await?.map(|m| m.status);
    if now.as_deref() != Some(status) {
        sends::postpone(&mut tx, row, Some(Utc::now()), "the mailbox's status changed; queued again").await?;
        queue::reschedule(&mut tx, row, Utc::now()).await?;
        tx.commit().await?;
        return Ok(());
    }
    let why = parking_reason(status).unwrap_or("mailbox needs re-authentication");
    sends::postpone(&mut tx, row, None, why).await?;
    tx.commit().await?;
    Ok(())
}

/// The mailbox was disconnected after this send was claimed or rescheduled: cancel it (and
/// any other waiting send of the mailbox), each with an event.
async fn cancel(ctx: &Ctx, row: &sends::SendRow) -> anyhow::Result<()> {
    let mut tx = ctx.pool.begin().await?;
    let reason = "the mailbox was disconnected and its credentials destroyed";
    sends::cancel_waiting(&mut tx, row.workspace(), Some(row.mailbox()), reason).await?;
    tx.commit().await?;
    Ok(())
}
