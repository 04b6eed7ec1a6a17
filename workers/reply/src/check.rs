//! One check of one mailbox through its source (IMAP, the Gmail API or Microsoft Graph): read
//! what is new in INBOX, record each message, move the cursor. An IMAP mailbox is opened with
//! its IMAP password only (this worker never opens a password that can send); an OAuth mailbox
//! has one grant for both, so its access token is used (over XOAUTH2 for IMAP).

use std::sync::Arc;

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use mailroom_domain::{MailboxId, WorkspaceId};
use mailroom_keyring::OpenError;
use mailroom_store::{
    mailboxes::{self, MailboxRow},
    replies::{self, CheckDone, CursorRow},
};
use mailroom_transport::{
    graph_inbox::Link,
    imap::{ImapCredential, ImapEndpoint},
    inbox::{Inbox, InboxCursor},
};
use mailroom_vault::Field;
use rand::Rng;

use crate::{Ctx, parse, record};

/// What a check did, for the log and the tests.
#[derive(Debug, Default, Clone, Copy)]
pub struct Checked {
    /// Messages read.
    pub read: usize,
    /// Events written.
    pub events: usize,
}

/// Where a check got to.
struct Reached {
    checked: Checked,
    imap: InboxCursor,
    history_id: Option<String>,
    delta_link: Option<String>,
    more: bool,
    /// An IMAP session read to the end, for an IDLE watcher.
    inbox: Option<Inbox>,
}

impl Reached {
    /// Where a failed check leaves the cursor: where it was.
    fn unchanged(cursor: &CursorRow) -> Self {
        Self {
            checked: Checked::default(),
            imap: stored(cursor),
            history_id: cursor.history_id.clone(),
            delta_link: cursor.delta_link.clone(),
            more: false,
            inbox: None,
        }
    }
}

/// Reads the mailbox through its source.
async fn look(ctx: &Ctx, ws: WorkspaceId, mbx: MailboxId, cursor: &CursorRow) -> anyhow::Result<Reached> {
    let unchanged = Reached::unchanged(cursor);
    Ok(match cursor.source.as_str() {
        "gmail" => {
            let (checked, history) = crate::gmail::check(ctx, ws, mbx, cursor).await?;
            Reached { checked, history_id: Some(history), ..unchanged }
        }
        "graph" => {
            let (checked, link) = crate::graph::check(ctx, ws, mbx, cursor).await?;
            let more = matches!(link, Link::Next(_));
            Reached { checked, delta_link: Some(link.as_str().to_owned()), more, ..unchanged }
        }
        _ => {
            let (checked, imap, inbox) = check(ctx, ws, mbx, cursor).await?;
            Reached { checked, imap, more: inbox.is_none(), inbox, ..unchanged }
        }
    })
}

/// Checks one claimed mailbox and releases the claim, recording the error if it failed.
pub(crate) async fn run(ctx: &Arc<Ctx>, cursor: CursorRow) -> anyhow::Result<Checked> {
    let (ws, mbx) = (WorkspaceId::from_uuid(cursor.workspace_id), MailboxId::from_uuid(cursor.mailbox_id));
    let mut result = look(ctx, ws, mbx, &cursor).await;
    let every = ctx.config.every.mul_f64(rand::rng().random_range(0.8..1.2));
    let fallback = Reached::unchanged(&cursor);
    let (reached, error) = match &result {
        Ok(r) => (r, None),
        Err(e) => (&fallback, Some(format!("{e:#}"))),
    };
    // A batch cut short is followed at once; otherwise the next look is a jittered interval away.
    let soon = reached.more && reached.checked.read > 0;
    let next = if soon { Utc::now() } else { Utc::now() + ChronoDuration::from_std(every).unwrap_or_default() };
    let done = CheckDone {
        uidvalidity: reached.imap.uidvalidity.map(i64::from),
        last_uid: i64::from(reached.imap.last_uid),
        history_id: reached.history_id.as_deref(),
        delta_link: reached.delta_link.as_deref(),
        next_check_at: next,
        error: error.as_deref(),
    };
    let mut conn = ctx.pool.acquire().await?;
    replies::finish_check(&mut conn, ws, mbx, &ctx.config.name, &done).await?;
    drop(conn);
    // Only once the cursor is stored: a watcher's "due now" must not be overwritten by it.
    if let Some(inbox) = result.as_mut().ok().and_then(|r| r.inbox.take()) {
        crate::idle::watch(ctx, ws, mbx, inbox, (next - Utc::now()).to_std().unwrap_or_default()).await;
    }
    result.map(|r| r.checked)
}

/// The mailbox being checked.
pub(crate) async fn mailbox(ctx: &Ctx, ws: WorkspaceId, mbx: MailboxId) -> anyhow::Result<MailboxRow> {
    let mut conn = ctx.pool.acquire().await?;
    mailboxes::get(&mut conn, ws, mbx).await?.ok_or_else(|| anyhow::anyhow!("the mailbox is gone"))
}

/// Where a re-read by date starts (the first look, a changed `UIDVALIDITY`, an expired Gmail
/// history id or Graph delta link): a day before the last look, or before the mailbox was
/// connected. What was seen before is deduplicated, so nothing is skipped and nothing repeated.
pub(crate) fn rescan_since(cursor: &CursorRow, mailbox: &MailboxRow) -> DateTime<Utc> {
    cursor.checked_at.unwrap_or(mailbox.created_at) - ChronoDuration::days(1)
}

fn stored(c: &CursorRow) -> InboxCursor {
    InboxCursor {
        uidvalidity: c.uidvalidity.and_then(|v| u32::try_from(v).ok()),
        last_uid: u32::try_from(c.last_uid).unwrap_or(0),
    }
}

/// Reads an IMAP mailbox. Returns the session when everything was read (for IDLE); none when
/// a batch was cut short and the mailbox is to be read again at once.
async fn check(
    ctx: &Ctx,
    ws: WorkspaceId,
    mbx: MailboxId,
    cursor: &CursorRow,
) -> anyhow::Result<(Checked, InboxCursor, Option<Inbox>)> {
    let mailbox = mailbox(ctx, ws, mbx).await?;
    let (host, user) = (mailbox.imap_host.as_deref(), mailbox.imap_username.as_deref());
    let ep =
        ImapEndpoint::from_stored(host, mailbox.imap_port, mailbox.imap_tls.as_deref(), user, &mailbox.sent_folder)
            .ok_or_else(|| anyhow::anyhow!("the mailbox has no IMAP access"))?;
    let oauth = mailbox.auth_kind == "oauth";
    let secret = if oauth {
        crate::token::access(ctx, ws, mbx).await?
    } else {
        match mailroom_keyring::open_secret(&ctx.pool, &ctx.vault, ws, mbx, Field::ImapPassword).await {
            Ok(p) => p,
            Err(e @ OpenError::Unavailable(_)) => anyhow::bail!("{e}; will look again"),
            Err(e) => return Err(e.into()),
        }
    };
    let credential = if oauth { ImapCredential::Bearer(&secret) } else { ImapCredential::Password(&secret) };
    let since = rescan_since(cursor, &mailbox).date_naive();
    let c = &ctx.config;
    let opened = Inbox::open(&ep, credential, &c.reach, c.imap_timeout).await;
    drop(secret);
    let mut inbox = opened?;
    let fetched = inbox.fetch(stored(cursor), since, c.batch, c.imap_timeout).await?;
    let mut checked = Checked { read: fetched.messages.len(), events: 0 };
    for (_, raw) in &fetched.messages {
        checked.events += usize::from(record_raw(ctx, ws, mbx, raw).await?);
    }
    if fetched.rescanned {
        tracing::info!(mailbox.id = %mbx, read = checked.read, "inbox re-scanned by date");
    }
    if fetched.more {
        inbox.close(c.imap_timeout).await;
        return Ok((checked, fetched.cursor, None));
    }
    Ok((checked, fetched.cursor, Some(inbox)))
}

/// Parses and records one raw message; whether it yielded an event.
pub(crate) async fn record_raw(ctx: &Ctx, ws: WorkspaceId, mbx: MailboxId, raw: &[u8]) -> anyhow::Result<bool> {
    let Some(m) = parse::parse(raw) else {
        tracing::warn!(mailbox.id = %mbx, "an inbound message does not parse; skipped");
        return Ok(false);
    };
    Ok(record::record(&ctx.pool, ws, mbx, &m).await?.is_some())
}
