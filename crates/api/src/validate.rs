//! Turning a send request into an [`OutgoingMessage`]: every field parsed, every limit checked,
//! every problem named.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use mailroom_domain::{EmailAddress, HeaderName, HeaderValue, MailboxId, OutgoingMessage, SendId, StopOn, Subject};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::{ApiError, ApiLimits, Code};

/// A send as the client writes it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SendRequest {
    pub mailbox_id: String,
    pub to: Vec<String>,
    #[serde(default)]
    pub cc: Vec<String>,
    #[serde(default)]
    pub bcc: Vec<String>,
    /// Required, unless `in_reply_to` is given (then `Re:` and the thread's subject).
    pub subject: Option<String>,
    pub text: Option<String>,
    pub html: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub send_at: Option<DateTime<Utc>>,
    /// The scheduler's own data (a JSON object, at most 4 KiB), returned in the send's events.
    pub metadata: Option<serde_json::Value>,
    /// The scheduler's sequence: one lead in one campaign, shared by its steps.
    pub sequence: Option<String>,
    /// Which inbound messages of the sequence cancel this send while it waits.
    pub stop_on: Option<Vec<String>>,
    /// The send this one follows up (`snd_...`, same workspace and mailbox): the engine writes
    /// `In-Reply-To` and `References`.
    pub in_reply_to: Option<String>,
}

/// The largest `metadata` object accepted, serialized.
const MAX_METADATA_BYTES: usize = 4096;
/// The longest key of the `metadata` object, in bytes.
const MAX_METADATA_KEY_BYTES: usize = 256;

/// A validated send.
#[derive(Debug)]
pub(crate) struct ValidSend {
    pub mailbox: MailboxId,
    pub message: OutgoingMessage,
    pub send_at: Option<DateTime<Utc>>,
    pub metadata: Option<serde_json::Value>,
    pub sequence: Option<String>,
    pub stop_on: Option<Vec<StopOn>>,
    /// The send it follows up; its subject is empty when it is to be taken from the thread.
    pub in_reply_to: Option<SendId>,
    pub hash: Vec<u8>,
}

fn invalid(field: &str, problem: impl std::fmt::Display) -> ApiError {
    ApiError::new(Code::InvalidField, format!("`{field}`: {problem}"))
}

fn addresses(field: &str, list: &[String]) -> Result<Vec<EmailAddress>, ApiError> {
    list.iter()
        .enumerate()
        .map(|(i, a)| EmailAddress::parse(a).map_err(|e| invalid(&format!("{field}[{i}]"), e)))
        .collect()
}

/// Validates a request against `limits`.
pub(crate) fn send(req: SendRequest, limits: &ApiLimits) -> Result<ValidSend, ApiError> {
    let mailbox: MailboxId = req.mailbox_id.parse().map_err(|e| invalid("mailbox_id", e))?;
    let (to, cc, bcc) = (addresses("to", &req.to)?, addresses("cc", &req.cc)?, addresses("bcc", &req.bcc)?);
    if to.is_empty() {
        return Err(invalid("to", "at least one recipient is required"));
    }
    let count = to.len() + cc.len() + bcc.len();
    if count > limits.max_recipients {
        return Err(invalid("to", format!("{count} recipients; at most {} per send", limits.max_recipients)));
    }
    let in_reply_to = req.in_reply_to.as_deref().map(|p| p.parse::<SendId>().map_err(|e| invalid("in_reply_to", e)));
    let in_reply_to = in_reply_to.transpose()?;
    let subject = match (&req.subject, in_reply_to) {
        (Some(s), _) => Subject::parse(s).map_err(|e| invalid("subject", e))?.as_str().to_owned(),
        (None, Some(_)) => String::new(), // `Re:` and the thread's, filled in when it is recorded
        (None, None) => {
            return Err(invalid("subject", "is required (unless `in_reply_to` names the send it follows up)"));
        }
    };
    if req.text.is_none() && req.html.is_none() {
        return Err(invalid("text", "a `text` or `html` body (or both) is required"));
    }
    let size = req.text.as_ref().map_or(0, String::len) + req.html.as_ref().map_or(0, String::len);
    if size > limits.max_message_bytes {
        return Err(ApiError::TooLarge(format!(
            "the message body is {size} bytes; at most {} are accepted",
            limits.max_message_bytes
        )));
    }
    let headers = req
        .headers
        .into_iter()
        .map(|(name, value)| {
            let n = HeaderName::parse(&name).map_err(|e| invalid(&format!("headers.{name}"), e))?;
            let v = HeaderValue::parse(&value).map_err(|e| invalid(&format!("headers.{name}"), e))?;
            Ok((n.as_str().to_owned(), v.as_str().to_owned()))
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let message = OutgoingMessage { to, cc, bcc, subject, text: req.text, html: req.html, headers };
    if in_reply_to.is_some()
        && let Some((name, _)) =
            message.headers.iter().find(|(n, _)| crate::thread::WRITTEN.contains(&n.to_ascii_lowercase().as_str()))
    {
        return Err(invalid(&format!("headers.{name}"), "written by the engine from `in_reply_to`; leave it out"));
    }
    if let Some(m) = &req.metadata {
        let Some(map) = m.as_object() else {
            return Err(invalid("metadata", "must be a JSON object"));
        };
        // A scheduler reads its metadata back by key: a key is a name, not a payload.
        if let Some(k) = map.keys().find(|k| k.len() > MAX_METADATA_KEY_BYTES) {
            let shown: String = k.chars().take(32).collect();
            return Err(ApiError::new(
                Code::MetadataKeyTooLong,
                format!("`metadata.{shown}…`: a key of {} bytes; keys are at most {MAX_METADATA_KEY_BYTES}", k.len()),
            ));
        }
        let size = m.to_string().len();
        if size > MAX_METADATA_BYTES {
            return Err(invalid("metadata", format!("{size} bytes; at most {MAX_METADATA_BYTES}")));
        }
    }
    if let Some(seq) = &req.sequence {
        sequence_name(seq)?;
    }
    let stop_on = req.stop_on.as_ref().map(|list| stop_on_list(list)).transpose()?;
    if stop_on.is_some() && req.sequence.is_none() {
        return Err(invalid("stop_on", "applies to the steps of a sequence: give the send a `sequence`"));
    }
    // The hash covers everything in the request, in a fixed field order (objects' keys sorted).
    // `metadata` and `sequence` join it only when given, so requests stored before they
    // existed still replay.
    let mut payload = serde_json::json!({ "mailbox_id": mailbox, "message": message, "send_at": req.send_at });
    if let Some(m) = &req.metadata {
        payload["metadata"] = m.clone();
    }
    if let Some(seq) = &req.sequence {
        payload["sequence"] = serde_json::json!(seq);
    }
    if let Some(parent) = in_reply_to {
        payload["in_reply_to"] = serde_json::json!(parent);
    }
    if let Some(list) = &stop_on {
        payload["stop_on"] = serde_json::json!(list.iter().map(|x| x.as_str()).collect::<Vec<_>>());
    }
    let hash = Sha256::digest(serde_json::to_vec(&payload).map_err(|e| ApiError::Internal(Box::new(e)))?).to_vec();
    Ok(ValidSend {
        mailbox,
        message,
        send_at: req.send_at,
        metadata: req.metadata,
        sequence: req.sequence,
        stop_on,
        in_reply_to,
        hash,
    })
}

/// Parses `stop_on` into its canonical form (each kind once, in a fixed order), so a retry
/// that lists them in another order is the same request.
fn stop_on_list(list: &[String]) -> Result<Vec<StopOn>, ApiError> {
    let mut parsed = list
        .iter()
        .enumerate()
        .map(|(i, s)| s.parse::<StopOn>().map_err(|e| invalid(&format!("stop_on[{i}]"), e)))
        .collect::<Result<Vec<_>, _>>()?;
    parsed.sort_by_key(|k| StopOn::ALL.iter().position(|a| a == k));
    parsed.dedup();
    Ok(parsed)
}

/// The longest sequence name, in characters.
const MAX_SEQUENCE_CHARS: usize = 200;

/// Checks a sequence name: 1 to 200 printable characters.
pub(crate) fn sequence_name(seq: &str) -> Result<(), ApiError> {
    if seq.is_empty() || seq.chars().count() > MAX_SEQUENCE_CHARS || seq.chars().any(char::is_control) {
        return Err(invalid("sequence", format!("1 to {MAX_SEQUENCE_CHARS} characters, without control characters")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> SendRequest {
        serde_json::from_value(serde_json::json!({
            "mailbox_id": mailroom_domain::MailboxId::new().to_string(),
            "to": ["a@example.com"], "subject": "Hi", "text": "hello"
        }))
        .unwrap()
    }

    #[test]
    fn the_same_request_hashes_the_same_and_a_changed_one_differently() {
        let limits = ApiLimits::default();
        let a = req();
        let mut b = SendRequest { mailbox_id: a.mailbox_id.clone(), ..req() };
        let ha = send(SendRequest { mailbox_id: a.mailbox_id.clone(), ..req() }, &limits).unwrap().hash;
        assert_eq!(send(a, &limits).unwrap().hash, ha);
        b.subject = Some("Other".into());
        assert_ne!(send(b, &limits).unwrap().hash, ha);
    }

    #[test]
    fn bad_fields_are_named() {
        let limits = ApiLimits::default();
        let mut r = req();
        r.subject = Some("a\r\nBcc: x@y.com".into());
        assert!(send(r, &limits).unwrap_err().to_string().contains("`subject`"));
        let mut r = req();
        r.to = vec!["nope".into()];
        assert!(send(r, &limits).unwrap_err().to_string().contains("`to[0]`"));
        let mut r = req();
        r.text = Some("x".repeat(limits.max_message_bytes + 1));
        assert!(matches!(send(r, &limits), Err(ApiError::TooLarge(_))));
    }
}
