//! Applying a mailbox's pacing to a send: reserve its slot, and hold a session place while it
//! is attempted.
//!
//! A send due now whose mailbox is paced gets a slot reserved under the mailbox's row lock
//! (after the previous slot plus the gap, inside the send window, under the rolling daily cap)
//! and its job moves to that instant: one reservation and one queue write per send, however many
//! sends wait for the mailbox, so a long queue behind a slow pace costs no re-claim churn.

use std::time::Duration;

use chrono::Utc;
use mailroom_store::{
    mailboxes::{self, MailboxRow},
    pacing, queue,
    sends::SendRow,
};
use rand::Rng;

use crate::Ctx;

/// A reserved slot is used if the job comes at most this late; later, it is reserved anew so a
/// backlog released at once (after an outage) cannot burst past the gap.
const SLOT_GRACE: chrono::Duration = chrono::Duration::seconds(30);

fn std_to_chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::days(1))
}

/// Makes sure the send holds a slot that is due now. Returns whether it may be attempted now;
/// if not, its job has been moved to its slot.
pub(crate) async fn slot_due_now(ctx: &Ctx, row: &SendRow, mailbox: &MailboxRow) -> anyhow::Result<bool> {
    let now = Utc::now();
    let settings = mailbox.pacing().to_domain()?;
    let paused = mailbox.paused_until.is_some_and(|p| p > now);
    let unpaced = settings.daily_cap.is_none() && settings.min_gap.is_zero() && settings.window.is_none();
    let fresh = row.slot_at.is_some_and(|s| s >= now - SLOT_GRACE && s <= now + chrono::Duration::seconds(1));
    if !paused && (unpaced || fresh) {
        return Ok(true);
    }
    let (ws, mbx, send) = (row.workspace(), row.mailbox(), row.send_id());
    let mut tx = ctx.pool.begin().await?;
    let Some(state) = pacing::lock(&mut tx, ws, mbx).await? else { return Ok(false) };
    let settings = state.to_domain()?;
    let mut at = [Some(now), state.next_slot_at, state.paused_until].into_iter().flatten().max().unwrap_or(now);
    // Each step only moves `at` later; a few rounds settle window and cap together.
    for _ in 0..8 {
        at = settings.next_open(at);
        let Some(cap) = settings.daily_cap.map(|c| c as usize) else { break };
        let day = pacing::slots_in_day(&mut tx, mbx, at, send).await?;
        if day.len() < cap {
            break;
        }
        at = day[day.len() - cap] + chrono::Duration::hours(24) + chrono::Duration::milliseconds(1);
    }
    let next = at + std_to_chrono(settings.gap(rand::rng().random()));
    if !pacing::reserve(&mut tx, ws, send, mbx, at, next).await? {
        return Ok(false);
    }
    let due_now = at <= now + chrono::Duration::seconds(1);
    if !due_now {
        queue::reschedule(&mut tx, row, at).await?;
    }
    tx.commit().await?;
    tracing::debug!(slot = %at, "slot reserved");
    Ok(due_now)
}

/// Claims the send for an attempt if its mailbox has a session place free; otherwise moves it
/// a moment later. Returns the claimed row.
pub(crate) async fn claim(ctx: &Ctx, row: &SendRow, mailbox: &MailboxRow) -> anyhow::Result<Option<SendRow>> {
    let (ws, mbx, send) = (row.workspace(), row.mailbox(), row.send_id());
    let lease = ctx.config.lease;
    let mut tx = ctx.pool.begin().await?;
    let Some(status) = mailboxes::lock_status(&mut tx, ws, mbx).await? else { return Ok(None) };
    // Paused (or parked) since the job looked: the send waits, under the same lock the pause
    // took, so a pause that committed first is never passed by.
    if let Some(why) = crate::job::parking_reason(&status) {
        mailroom_store::sends::postpone(&mut tx, row, None, why).await?;
        tx.commit().await?;
        return Ok(None);
    }
    let until = Utc::now() + std_to_chrono(lease);
    if !pacing::open_session(&mut tx, mbx, send, mailbox.max_sessions, until).await? {
        let at = Utc::now() + chrono::Duration::milliseconds(rand::rng().random_range(1_000..3_000));
        if mailroom_store::sends::postpone(&mut tx, row, Some(at), "waiting for a free session of its mailbox").await? {
            queue::reschedule(&mut tx, row, at).await?;
        }
        tx.commit().await?;
        return Ok(None);
    }
    let claimed = mailroom_store::sends::claim(&mut tx, ws, send, &ctx.config.name, lease.as_secs_f64()).await?;
    if claimed.is_some() {
        tx.commit().await?;
    }
    Ok(claimed)
}
