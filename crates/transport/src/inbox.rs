//! Reading what arrived in a mailbox's INBOX since the last look, for reply detection, and
//! waiting on an open session to be told of new mail (IMAP IDLE, RFC 2177).
//!
//! The cursor is the folder's `UIDVALIDITY` and the last UID read. While `UIDVALIDITY` holds,
//! only UIDs above the cursor are fetched. When it changes (the server renumbered the folder),
//! or on the first look, the folder is re-scanned from a date instead: the caller dedupes what
//! it has seen before, so nothing is reported twice and nothing is skipped. Messages are fetched
//! with `BODY.PEEK[]` from a folder opened with `EXAMINE`, so reading changes nothing for the
//! mailbox's owner.

use std::time::Duration;

use async_imap::{
    extensions::idle::IdleResponse,
    imap_proto::{MailboxDatum, Response},
    types::UnsolicitedResponse,
};
use chrono::NaiveDate;
use futures::TryStreamExt;

use crate::imap::{ImapCredential, ImapEndpoint, ImapError, Session, login, timed};

/// Where the last look stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboxCursor {
    /// The folder's `UIDVALIDITY` at the last look (`None`: never looked).
    pub uidvalidity: Option<u32>,
    /// The highest UID read.
    pub last_uid: u32,
}

/// What a look found.
#[derive(Debug)]
pub struct Fetched {
    /// Messages, oldest UID first: `(uid, raw RFC 5322 bytes)`.
    pub messages: Vec<(u32, Vec<u8>)>,
    /// The cursor to store once the messages are recorded.
    pub cursor: InboxCursor,
    /// Whether the folder was re-scanned by date (first look, or `UIDVALIDITY` changed).
    pub rescanned: bool,
    /// Whether more messages are waiting than `max` allowed this time.
    pub more: bool,
}

/// A logged-in IMAP session on a mailbox, for reading its INBOX.
pub struct Inbox {
    session: Session,
    idle: bool,
    /// Messages in INBOX at the last look (new mail raises it).
    exists: u32,
}

impl std::fmt::Debug for Inbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbox").field("idle", &self.idle).field("exists", &self.exists).finish_non_exhaustive()
    }
}

impl Inbox {
    /// Logs in and learns whether the server offers IDLE. The credential is not kept.
    pub async fn open(
        ep: &ImapEndpoint,
        credential: ImapCredential<'_>,
        reach: &crate::Reach,
        limit: Duration,
    ) -> Result<Self, ImapError> {
        timed(limit, async {
            let mut session = login(ep, credential, reach).await?;
            let idle = session.capabilities().await?.has_str("IDLE");
            Ok(Self { session, idle, exists: 0 })
        })
        .await
    }

    /// Whether the server offers IDLE.
    pub fn can_idle(&self) -> bool {
        self.idle
    }

    /// Fetches up to `max` messages that arrived after `cursor` (or, on a re-scan, since `since`).
    pub async fn fetch(
        &mut self,
        cursor: InboxCursor,
        since: NaiveDate,
        max: usize,
        limit: Duration,
    ) -> Result<Fetched, ImapError> {
        timed(limit, self.fetch_inner(cursor, since, max)).await
    }

    async fn fetch_inner(&mut self, cursor: InboxCursor, since: NaiveDate, max: usize) -> Result<Fetched, ImapError> {
        let session = &mut self.session;
        let folder = session.examine("INBOX").await?;
        self.exists = folder.exists;
        let validity = folder.uid_validity.unwrap_or(0);
        // Everything that arrives after this answer gets a UID at or above it.
        let next = folder.uid_next.unwrap_or(1);
        let rescanned = cursor.uidvalidity != Some(validity);
        let mut uids: Vec<u32> = if rescanned {
            let query = format!("SINCE {}", since.format("%d-%b-%Y"));
            session.uid_search(query).await?.into_iter().collect()
        } else {
            let query = format!("UID {}:*", cursor.last_uid.saturating_add(1));
            session.uid_search(query).await?.into_iter().filter(|u| *u > cursor.last_uid).collect()
        };
        uids.sort_unstable();
        let more = uids.len() > max;
        uids.truncate(max);
        let mut messages = Vec::with_capacity(uids.len());
        if !uids.is_empty() {
            let set = uids.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
            let mut stream = session.uid_fetch(set, "(UID BODY.PEEK[])").await?;
            while let Some(fetch) = stream.try_next().await? {
                if let (Some(uid), Some(body)) = (fetch.uid, fetch.body()) {
                    messages.push((uid, body.to_vec()));
                }
            }
        }
        messages.sort_by_key(|(uid, _)| *uid);
        let last_uid = match (more, uids.last()) {
            (true, Some(last)) => *last,
            // Read up to where the folder stood when selected.
            _ => next.saturating_sub(1).max(uids.last().copied().unwrap_or(0)),
        };
        let last_uid = if rescanned || more { last_uid } else { last_uid.max(cursor.last_uid) };
        Ok(Fetched { messages, cursor: InboxCursor { uidvalidity: Some(validity), last_uid }, rescanned, more })
    }

    /// Waits in IDLE, up to `within`, for INBOX to grow past what the last [`Inbox::fetch`]
    /// saw. Returns whether it did; the session is closed either way. Flag changes and
    /// keep-alives are not news. Mail that arrived since that fetch's `EXAMINE` (reported
    /// during the fetch, or as IDLE starts) counts: it is above the cursor stored.
    pub async fn wait_for_mail(self, within: Duration, limit: Duration) -> Result<bool, ImapError> {
        let Self { session, exists, .. } = self;
        let unsolicited = session.unsolicited_responses.clone();
        let mut handle = session.idle();
        timed(limit, async { Ok(handle.init().await?) }).await?;
        let grew = |n: u32| n > exists;
        let mut news = std::iter::from_fn(|| unsolicited.try_recv().ok())
            .any(|u| matches!(u, UnsolicitedResponse::Exists(n) if grew(n)));
        let deadline = tokio::time::Instant::now() + within;
        while !news {
            let (wait, _interrupt) = handle.wait_with_timeout(within);
            match tokio::time::timeout_at(deadline, wait).await {
                Err(_) | Ok(Ok(IdleResponse::Timeout | IdleResponse::ManualInterrupt)) => break,
                Ok(Ok(IdleResponse::NewData(data))) => {
                    news = matches!(data.parsed(), Response::MailboxData(MailboxDatum::Exists(n)) if grew(*n));
                }
                Ok(Err(e)) => return Err(e.into()),
            }
        }
        // Leave politely when the server lets us; the connection closes either way.
        let _ = tokio::time::timeout(limit, async {
            if let Ok(mut session) = handle.done().await {
                session.logout().await.ok();
            }
        })
        .await;
        Ok(news)
    }

    /// Logs out.
    pub async fn close(mut self, limit: Duration) {
        let _ = tokio::time::timeout(limit, self.session.logout()).await;
    }
}
