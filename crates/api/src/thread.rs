//! Threads: a follow-up names the send it answers (`in_reply_to`), and the engine writes its
//! `In-Reply-To` and `References` from the ledger's Message-IDs, so a scheduler never
//! hand-writes them and the whole chain stays intact over any number of steps.
//!
//! The rule for a parent that will never arrive: it is checked when the follow-up is
//! accepted. A parent that is `cancelled` or `failed` then is refused (`422
//! thread_parent_not_sent`); one still waiting, in flight, `ambiguous` or `sent` is accepted
//! (schedulers enqueue every step of a sequence at once). A parent that ends `cancelled` or
//! `failed` later does not stop the follow-up: cancel it, or its sequence, to stop it.

use mailroom_domain::{OutgoingMessage, SendId, WorkspaceId};
use mailroom_store::{PgConnection, sends};

use crate::{ApiError, Code, validate::ValidSend};

/// The headers the engine writes for a follow-up (lower case); a request with `in_reply_to`
/// may not set them itself.
pub(crate) const WRITTEN: [&str; 2] = ["in-reply-to", "references"];

/// The longest `References` value kept. Past it the oldest ids after the first are dropped, as
/// RFC 5322 (3.6.4) allows: the thread's root and the nearest ancestors keep it threaded.
const MAX_REFERENCES_CHARS: usize = 900;

fn refused(code: Code, message: String) -> ApiError {
    ApiError::new(code, format!("`in_reply_to`: {message}"))
}

/// The follow-up's message: `v`'s, with the thread's headers and, when it gave none, the
/// thread's subject.
pub(crate) async fn follow_up(
    conn: &mut PgConnection,
    ws: WorkspaceId,
    parent: SendId,
    v: &ValidSend,
) -> Result<OutgoingMessage, ApiError> {
    let row = sends::get(conn, ws, parent)
        .await?
        .ok_or_else(|| refused(Code::ThreadParentNotFound, format!("no send {parent} in this workspace")))?;
    if row.mailbox() != v.mailbox {
        return Err(refused(
            Code::ThreadMailboxMismatch,
            format!("send {parent} goes out from another mailbox; a thread stays in one mailbox"),
        ));
    }
    if matches!(row.state.as_str(), "cancelled" | "failed") {
        return Err(refused(
            Code::ThreadParentNotSent,
            format!("send {parent} is `{}` and will never arrive; follow up a send that went or is waiting", row.state),
        ));
    }
    if row.erased_at.is_some() {
        return Err(refused(
            Code::ThreadParentErased,
            format!("send {parent} was erased with its recipient's data; start a new thread"),
        ));
    }
    let first: OutgoingMessage = serde_json::from_value(row.payload).map_err(|e| ApiError::Internal(Box::new(e)))?;
    let mut chain: Vec<String> = first
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("references"))
        .map(|(_, v)| v.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    chain.push(row.message_id.clone());
    trim(&mut chain);
    let mut m = v.message.clone();
    if m.subject.is_empty() {
        m.subject = reply_subject(&first.subject);
    }
    m.headers.push(("In-Reply-To".into(), row.message_id));
    m.headers.push(("References".into(), chain.join(" ")));
    Ok(m)
}

/// `Re: ` and the subject, once.
fn reply_subject(subject: &str) -> String {
    let answered = subject.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("re:"));
    if answered { subject.to_owned() } else { format!("Re: {subject}") }
}

/// Drops the oldest ids after the first until the chain fits.
fn trim(chain: &mut Vec<String>) {
    while chain.len() > 2 && chain.iter().map(|c| c.len() + 1).sum::<usize>() > MAX_REFERENCES_CHARS {
        chain.remove(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_subject_is_prefixed_once() {
        assert_eq!(reply_subject("Intro"), "Re: Intro");
        assert_eq!(reply_subject("RE: Intro"), "RE: Intro");
        assert_eq!(reply_subject("Ré"), "Re: Ré");
    }

    #[test]
    fn a_long_chain_keeps_its_root_and_newest_ids() {
        let mut chain: Vec<String> = (0..40).map(|i| format!("<{i:040}@example.test>")).collect();
        trim(&mut chain);
        assert!(chain.iter().map(|c| c.len() + 1).sum::<usize>() <= MAX_REFERENCES_CHARS);
        assert_eq!(chain[0], format!("<{:040}@example.test>", 0));
        assert_eq!(chain.last().unwrap(), &format!("<{:040}@example.test>", 39));
    }
}
