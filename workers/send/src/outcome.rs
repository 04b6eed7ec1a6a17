//! Recording an attempt's verdict: ledger transition, event, follow-up job and mailbox state,
//! all in one transaction.

use chrono::{DateTime, Utc};
use mailroom_domain::{Answer, SendState, SuppressionReason, Verdict, mask_email};
use mailroom_keyring::OpenError;
use mailroom_store::mailboxes::MailboxRow;
use mailroom_store::{
    PgConnection, Postgres, Transaction, events, mailboxes, queue,
    sends::{self, Finish, SendRow},
    suppressions,
};
use mailroom_transport::{AttemptFailure, DeliverError};
use rand::Rng;

use crate::{Ctx, reconcile};

fn event<'a>(row: &SendRow, kind: &'a str, data: serde_json::Value) -> events::NewEvent<'a> {
    events::NewEvent { workspace: row.workspace(), kind, send: Some(row.send_id()), mailbox: Some(row.mailbox()), data }
}

fn later(d: std::time::Duration) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::days(1))
}

async fn commit(tx: Transaction<'_, Postgres>, applied: bool) -> anyhow::Result<bool> {
    if applied {
        tx.commit().await?;
    } else {
        tracing::warn!("the send's lease was taken over before its outcome was recorded");
    }
    Ok(applied)
}

/// Records the result of a delivery attempt. Returns whether the send is now `sent` and its
/// message may be filed in the Sent folder.
pub(crate) async fn record(
    ctx: &Ctx,
    row: &SendRow,
    mailbox: &MailboxRow,
    result: Result<Answer, DeliverError<anyhow::Error>>,
) -> anyhow::Result<bool> {
    let mut tx = ctx.pool.begin().await?;
    if sends::lock_erased(&mut tx, row).await? {
        let applied = withheld(&mut tx, row, &result).await?;
        commit(tx, applied).await?;
        // Not "sent" to the caller: no copy of a message naming the erased contact is filed.
        return Ok(false);
    }
    let was_sent = result.is_ok();
    let applied = match result {
        Ok(answer) => sent(&mut tx, row, &answer.to_string()).await?,
        Err(DeliverError::Secret(e)) => credential_failed(ctx, &mut tx, row, e).await?,
        Err(DeliverError::Smtp(f)) => failed(ctx, &mut tx, row, mailbox, &f).await?,
        // Nothing was handed over. If the lease was lost, the conditional update below does
        // nothing; if the database failed, the lease runs out and recovery retries the send.
        Err(DeliverError::BeforeBody(e)) => {
            tracing::warn!(error = ?e, "the body was not sent");
            transient(ctx, &mut tx, row, "the attempt stopped before handing over the body").await?
        }
    };
    Ok(commit(tx, applied).await? && was_sent)
}

/// The recipient was erased while the attempt was in flight: the ledger records what became of
/// the send, but nothing the provider said (its answer may quote the address) and nothing on
/// the suppression list (the keyed hash is there already). A mailbox-level verdict (throttled,
/// credentials refused) is left for the mailbox's next send to find again.
async fn withheld(
    tx: &mut PgConnection,
    row: &SendRow,
    result: &Result<Answer, DeliverError<anyhow::Error>>,
) -> anyhow::Result<bool> {
    const WITHHELD: &str = "its recipient was erased; the provider's answer was not kept";
    tracing::info!("the send's recipient was erased during its attempt");
    match result {
        Ok(_) => sent(tx, row, WITHHELD).await,
        Err(DeliverError::Smtp(f)) => match f.verdict() {
            Verdict::Accepted => sent(tx, row, WITHHELD).await,
            Verdict::Ambiguous => terminal(tx, row, SendState::Ambiguous, WITHHELD).await,
            _ => terminal(tx, row, SendState::Failed, WITHHELD).await,
        },
        Err(_) => terminal(tx, row, SendState::Failed, "its recipient was erased").await,
    }
}

/// Records what reconciliation found.
pub(crate) async fn reconciled(ctx: &Ctx, row: &SendRow, finding: reconcile::Finding) -> anyhow::Result<()> {
    let mut tx = ctx.pool.begin().await?;
    let applied = match finding {
        reconcile::Finding::Found => {
            tracing::info!("reconciliation found the send in the Sent folder");
            sent(&mut tx, row, "found in the Sent folder by reconciliation").await?
        }
        reconcile::Finding::Absent => {
            tracing::info!("reconciliation proved the send was not delivered; sending it again");
            let response = "not in the Sent folder, which this provider always files to: not delivered";
            retry(&mut tx, row, Some(Utc::now()), response, false).await?
        }
        reconcile::Finding::Unknown(reason) => terminal(&mut tx, row, SendState::Ambiguous, &reason).await?,
        reconcile::Finding::CouldNotLook(why) if row.recoveries < crate::MAX_RECOVERIES => {
            tracing::warn!(why = %why, "the Sent folder could not be searched; will look again");
            let reason = row.reconcile_reason.clone().unwrap_or_default();
            reconcile_later(ctx, &mut tx, row, &reason, true).await?
        }
        reconcile::Finding::CouldNotLook(why) => {
            let reason = format!("the Sent folder could not be searched, {} times in all: {why}", row.recoveries);
            terminal(&mut tx, row, SendState::Ambiguous, &reason).await?
        }
    };
    commit(tx, applied).await?;
    Ok(())
}

/// The message may have been delivered: look for it in Sent after the configured delay.
pub(crate) async fn reconcile_later(
    ctx: &Ctx,
    tx: &mut PgConnection,
    row: &SendRow,
    reason: &str,
    again: bool,
) -> anyhow::Result<bool> {
    // A repeated look waits longer: whatever stopped the first one may take a while to pass.
    let at = later(ctx.config.reconcile_delay * if again { 4 } else { 1 });
    if !sends::finish(tx, row, &Finish::Reconcile { at, reason, again }).await? {
        return Ok(false);
    }
    queue::reschedule(tx, row, at).await?;
    tracing::warn!(reason, "the send may have been delivered; its Sent folder will be checked");
    Ok(true)
}

async fn sent(tx: &mut PgConnection, row: &SendRow, response: &str) -> anyhow::Result<bool> {
    if !sends::finish(tx, row, &Finish::Sent { response }).await? {
        return Ok(false);
    }
    let data = serde_json::json!({ "message_id": row.message_id, "response": response });
    events::insert(tx, &event(row, "send.sent", data)).await?;
    mailboxes::clear_throttle(tx, row.workspace(), row.mailbox()).await?;
    tracing::info!(attempt = row.attempts, "send accepted by the provider");
    Ok(true)
}

async fn terminal(tx: &mut PgConnection, row: &SendRow, state: SendState, reason: &str) -> anyhow::Result<bool> {
    if !sends::finish(tx, row, &Finish::Terminal { state, reason }).await? {
        return Ok(false);
    }
    let kind = if state == SendState::Ambiguous { "send.ambiguous" } else { "send.failed" };
    let data = serde_json::json!({ "message_id": row.message_id, "reason": reason });
    events::insert(tx, &event(row, kind, data)).await?;
    tracing::warn!(state = %state, reason, "send finished without delivery");
    Ok(true)
}

/// Schedules another attempt at `at` (`None`: parked until the mailbox is reconnected).
async fn retry(
    tx: &mut PgConnection,
    row: &SendRow,
    at: Option<DateTime<Utc>>,
    response: &str,
    refund: bool,
) -> anyhow::Result<bool> {
    if !sends::finish(tx, row, &Finish::Retry { at, response, refund }).await? {
        return Ok(false);
    }
    if let Some(at) = at {
        queue::reschedule(tx, row, at).await?;
    }
    Ok(true)
}

/// A passing failure: retry with backoff, or give up once attempts or age run out.
async fn transient(ctx: &Ctx, tx: &mut PgConnection, row: &SendRow, detail: &str) -> anyhow::Result<bool> {
    let c = &ctx.config;
    let age = (Utc::now() - row.created_at).to_std().unwrap_or_default();
    if row.attempts as u32 >= c.max_attempts || age >= c.max_age {
        let reason = format!("gave up after {} attempts: {detail}", row.attempts);
        return terminal(tx, row, SendState::Failed, &reason).await;
    }
    let delay = c.retry_backoff.delay(row.attempts as u32, rand::rng().random());
    tracing::info!(attempt = row.attempts, retry_in_s = delay.as_secs(), detail, "transient failure; will retry");
    retry(tx, row, Some(later(delay)), detail, false).await
}

async fn failed(
    ctx: &Ctx,
    tx: &mut PgConnection,
    row: &SendRow,
    m: &MailboxRow,
    f: &AttemptFailure,
) -> anyhow::Result<bool> {
    let (ws, mbx) = (row.workspace(), row.mailbox());
    match f.verdict() {
        Verdict::Accepted => sent(tx, row, &f.detail).await,
        Verdict::Transient => transient(ctx, tx, row, &f.detail).await,
        Verdict::Permanent => terminal(tx, row, SendState::Failed, &f.detail).await,
        Verdict::Ambiguous => {
            let reason = format!("no answer after the message was sent: {}", f.detail);
            if reconcile::possible(m) {
                reconcile_later(ctx, tx, row, &reason, false).await
            } else {
                terminal(tx, row, SendState::Ambiguous, &reason).await
            }
        }
        Verdict::BadRecipient => {
            if let Some(rcpt) = &f.recipient {
                suppressions::add(tx, ws, rcpt, SuppressionReason::HardBounce, &f.detail).await?;
                tracing::info!(recipient = %mask_email(rcpt), "recipient refused; suppressed");
            }
            terminal(tx, row, SendState::Failed, &f.detail).await
        }
        Verdict::Throttled { retry_after } => {
            ctx.sessions.forget(mbx);
            let count = mailboxes::get(tx, ws, mbx).await?.map_or(0, |m| m.throttle_count);
            let delay = retry_after
                .unwrap_or_else(|| ctx.config.throttle_backoff.delay(count as u32 + 1, rand::rng().random()));
            let until = mailboxes::pause(tx, ws, mbx, later(delay), &f.detail).await?;
            tracing::warn!(pause_s = delay.as_secs(), detail = %f.detail, "mailbox throttled; pausing it");
            retry(tx, row, Some(until), &f.detail, true).await
        }
        Verdict::QuotaExceeded => {
            let until = mailboxes::pause(tx, ws, mbx, later(ctx.config.quota_pause), &f.detail).await?;
            tracing::warn!(detail = %f.detail, "mailbox hit its sending quota; pausing it");
            retry(tx, row, Some(until), &f.detail, true).await
        }
        Verdict::CredentialsRejected => {
            ctx.sessions.forget(mbx);
            if mailboxes::mark_needs_reauth(tx, ws, mbx, &f.detail).await? {
                tracing::warn!(detail = %f.detail, "mailbox credentials refused; it needs re-authentication");
            }
            retry(tx, row, None, &f.detail, true).await
        }
    }
}

/// The ledger row cannot be turned into a message: a bug or corruption, never retried.
pub(crate) async fn uncomposable(ctx: &Ctx, row: &SendRow, e: &anyhow::Error) -> anyhow::Result<()> {
    tracing::error!(error = ?e, "send could not be composed");
    let mut tx = ctx.pool.begin().await?;
    let applied = terminal(&mut tx, row, SendState::Failed, &format!("the message could not be composed: {e}")).await?;
    commit(tx, applied).await?;
    Ok(())
}

/// The send's recipient was erased after an attempt began: it fails, never to go out.
pub(crate) async fn erased(ctx: &Ctx, row: &SendRow) -> anyhow::Result<()> {
    let mut tx = ctx.pool.begin().await?;
    let applied = terminal(&mut tx, row, SendState::Failed, "its recipient was erased").await?;
    commit(tx, applied).await?;
    Ok(())
}

/// The credential could not be opened. The key provider being unavailable is nobody's fault
/// and costs no attempt: the send waits (with a backoff shared by the process) and goes out
/// when the provider answers again. A credential that will never open marks its mailbox
/// unusable, loudly, and parks the send: retrying would change nothing.
async fn credential_failed(ctx: &Ctx, tx: &mut PgConnection, row: &SendRow, e: anyhow::Error) -> anyhow::Result<bool> {
    match e.downcast_ref::<mailroom_keyring::tokens::TokenError>() {
        Some(mailroom_keyring::tokens::TokenError::Revoked(why)) => return revoked(tx, row, why).await,
        Some(mailroom_keyring::tokens::TokenError::Passing(why)) => {
            let wait = crate::secrets::provider_wait(ctx);
            tracing::warn!(why = %why, wait_secs = wait.as_secs(), "the OAuth token refresh failed for now; the send waits");
            return retry(tx, row, Some(later(wait)), "waiting for the OAuth token refresh", true).await;
        }
        Some(mailroom_keyring::tokens::TokenError::Open(o)) => return open_failed(ctx, tx, row, o).await,
        _ => {}
    }
    match e.downcast_ref::<OpenError>() {
        Some(o) => open_failed(ctx, tx, row, o).await,
        None => {
            tracing::error!(error = ?e, "the mailbox's credential could not be opened");
            transient(ctx, tx, row, "the mailbox's credential could not be opened").await
        }
    }
}

/// The grant behind an OAuth mailbox was revoked: it needs its user again; its sends wait.
async fn revoked(tx: &mut PgConnection, row: &SendRow, why: &str) -> anyhow::Result<bool> {
    let (ws, mbx) = (row.workspace(), row.mailbox());
    tracing::warn!(mailbox.id = %mbx, why, "an OAuth grant was refused; the mailbox needs re-authentication");
    mailboxes::mark_needs_reauth(tx, ws, mbx, why).await?;
    retry(tx, row, None, "mailbox needs re-authentication", true).await
}

async fn open_failed(ctx: &Ctx, tx: &mut PgConnection, row: &SendRow, e: &OpenError) -> anyhow::Result<bool> {
    match e {
        OpenError::Unavailable(cause) => {
            let wait = crate::secrets::provider_wait(ctx);
            tracing::warn!(error = %cause, wait_secs = wait.as_secs(), "the key provider is unavailable; the send waits");
            retry(tx, row, Some(later(wait)), "waiting for the key provider", true).await
        }
        OpenError::ForeignMasterKey(cause) => {
            // This process was started with another master key than the one that wrapped the
            // workspace key: a deployment mistake, not the tenant's. The mailbox stays active
            // and the send waits for a process that holds the key.
            let wait = ctx.config.throttle_backoff.base;
            tracing::error!(error = %cause, wait_secs = wait.as_secs(),
                "this worker does not hold the master key of this workspace's key; check vault settings; the send waits");
            retry(tx, row, Some(later(wait)), "waiting for a worker that holds the workspace's master key", true).await
        }
        unusable @ OpenError::Unusable { workspace, mailbox, .. } => {
            let reason = unusable.to_string();
            tracing::error!(workspace.id = %workspace, mailbox.id = %mailbox, error = %reason,
                "a mailbox credential cannot be opened; the mailbox is now unusable");
            // Under the row lock: a re-check restoring the mailbox is ordered before or after
            // this park, never between (see `job::park`).
            mailboxes::lock(tx, *workspace, *mailbox).await?;
            mailboxes::mark_unusable(tx, *workspace, *mailbox, &reason).await?;
            retry(tx, row, None, "the mailbox's credential cannot be opened", true).await
        }
        OpenError::Store(_) => {
            tracing::error!(error = ?e, "the mailbox's credential could not be opened");
            transient(ctx, tx, row, "the mailbox's credential could not be opened").await
        }
    }
}
