//! Reading what arrived in a mailbox's INBOX since the last look, for reply detection.
//!
//! The cursor is the folder's `UIDVALIDITY` and the last UID read. While `UIDVALIDITY` holds,
//! only UIDs above the cursor are fetched. When it changes (the server renumbered the folder),
//! or on the first look, the folder is re-scanned from a date instead: the caller dedupes what
//! it has seen before, so nothing is reported twice and nothing is skipped. Messages are fetched
//! with `BODY.PEEK[]`, so reading them does not mark them read for the mailbox's owner.

use std::time::Duration;

use chrono::NaiveDate;
use futures::TryStreamExt;

use crate::imap::{ImapCredential, ImapEndpoint, ImapError, login, timed};

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

/// Fetches up to `max` messages that arrived after `cursor` (or, on a re-scan, since `since`).
pub async fn fetch_new(
    ep: &ImapEndpoint,
    credential: ImapCredential<'_>,
    extra_roots: &[Vec<u8>],
    cursor: InboxCursor,
    since: NaiveDate,
    max: usize,
    limit: Duration,
) -> Result<Fetched, ImapError> {
    timed(limit, async {
        let mut session = login(ep, credential, extra_roots).await?;
        let folder = session.examine("INBOX").await?;
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
        session.logout().await.ok();
        messages.sort_by_key(|(uid, _)| *uid);
        let last_uid = match (more, uids.last()) {
            (true, Some(last)) => *last,
            // Read up to where the folder stood when selected.
            _ => next.saturating_sub(1).max(uids.last().copied().unwrap_or(0)),
        };
        let last_uid = if rescanned || more { last_uid } else { last_uid.max(cursor.last_uid) };
        Ok(Fetched { messages, cursor: InboxCursor { uidvalidity: Some(validity), last_uid }, rescanned, more })
    })
    .await
}
