//! Reading an inbound message with a real MIME parser (`mail-parser`): the ids it refers to,
//! the signals that mark it automatic, and, for a delivery status notification (RFC 3464),
//! the per-recipient status and the original message's id.

use mail_parser::{HeaderName, Message, MessageParser, MimeHeaders, PartType};
use sha2::{Digest, Sha256};

/// One recipient's line in a delivery status notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientStatus {
    /// `Final-Recipient` (the address only).
    pub recipient: String,
    /// `Action`: failed, delayed, delivered, relayed, expanded.
    pub action: String,
    /// `Status`, such as `5.1.1`.
    pub status: String,
    /// `Diagnostic-Code`, when given.
    pub diagnostic: Option<String>,
}

/// A delivery status notification's content.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// One entry per recipient.
    pub recipients: Vec<RecipientStatus>,
    /// The bounced message's `Message-ID`, from the returned message or its headers.
    pub original_message_id: Option<String>,
    /// `Original-Envelope-Id`, when the sender set one.
    pub envelope_id: Option<String>,
}

/// What reply detection needs of an inbound message.
#[derive(Debug, Clone, Default)]
pub struct Inbound {
    /// Its own Message-ID (with angle brackets).
    pub message_id: Option<String>,
    /// What makes it the same message however often it is read: its Message-ID, or a hash.
    pub dedupe_key: String,
    /// The sender's address.
    pub from: Option<String>,
    /// The subject.
    pub subject: String,
    /// Ids it answers: `In-Reply-To` first, then `References` newest first (angle brackets).
    pub refs: Vec<String>,
    /// Header values that mark automatic mail, lower-cased: (name, value).
    pub auto_headers: Vec<(String, String)>,
    /// The delivery report, when it is one.
    pub report: Option<Report>,
    /// The start of its text, without quoted lines.
    pub excerpt: String,
}

fn bracket(id: &str) -> String {
    let id = id.trim().trim_start_matches('<').trim_end_matches('>');
    format!("<{id}>")
}

fn ids(m: &Message<'_>, name: HeaderName<'_>) -> Vec<String> {
    m.header(name).and_then(|v| v.as_text_list()).map(|l| l.iter().map(|s| bracket(s)).collect()).unwrap_or_default()
}

const AUTO_HEADERS: [&str; 5] =
    ["auto-submitted", "x-autoreply", "x-autorespond", "x-auto-response-suppress", "precedence"];

/// Parses a raw message. `None` only when it is not a message at all.
pub fn parse(raw: &[u8]) -> Option<Inbound> {
    let m = MessageParser::default().parse(raw)?;
    let message_id = m.message_id().map(bracket);
    let dedupe_key = message_id.clone().unwrap_or_else(|| {
        let headers = &raw[..(m.root_part().offset_body as usize).min(raw.len())];
        format!("sha256:{}", hex::encode(Sha256::digest(headers)))
    });
    let mut refs = ids(&m, HeaderName::InReplyTo);
    let mut references = ids(&m, HeaderName::References);
    references.reverse();
    refs.extend(references);
    let auto_headers = AUTO_HEADERS
        .iter()
        .filter_map(|h| m.header_raw(*h).map(|v| (h.to_string(), v.trim().to_lowercase())))
        .collect();
    let report = is_report(&m).then(|| report(&m));
    let excerpt = m.body_text(0).map(|t| excerpt(&t)).unwrap_or_default();
    Some(Inbound {
        message_id,
        dedupe_key,
        from: m.from().and_then(|a| a.first()).and_then(|a| a.address()).map(str::to_lowercase),
        subject: m.subject().unwrap_or_default().to_owned(),
        refs,
        auto_headers,
        report,
        excerpt,
    })
}

fn is_report(m: &Message<'_>) -> bool {
    m.content_type().is_some_and(|ct| {
        ct.ctype().eq_ignore_ascii_case("multipart")
            && ct.subtype().is_some_and(|s| s.eq_ignore_ascii_case("report"))
            && ct.attribute("report-type").is_some_and(|t| t.eq_ignore_ascii_case("delivery-status"))
    })
}

fn report(m: &Message<'_>) -> Report {
    let mut r = Report::default();
    for part in &m.parts {
        let Some(ct) = part.content_type() else { continue };
        let kind = format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or_default()).to_ascii_lowercase();
        match (&part.body, kind.as_str()) {
            (PartType::Message(original), _) => r.original_message_id = original.message_id().map(bracket),
            (_, "message/delivery-status" | "message/global-delivery-status") => {
                let text = String::from_utf8_lossy(part.contents()).into_owned();
                delivery_status(&text, &mut r);
            }
            (_, "text/rfc822-headers") => {
                let text = String::from_utf8_lossy(part.contents()).into_owned();
                r.original_message_id =
                    fields(&text).into_iter().find(|(k, _)| k == "message-id").map(|(_, v)| bracket(&v));
            }
            _ => {}
        }
    }
    r
}

/// `Name: value` fields of a header-like block, names lower-cased, folded lines joined.
fn fields(block: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = vec![];
    for line in block.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = out.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
        } else if let Some((k, v)) = line.split_once(':') {
            out.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    out
}

/// RFC 3464: a block of per-message fields, then one block per recipient.
fn delivery_status(text: &str, r: &mut Report) {
    let text = text.replace("\r\n", "\n");
    for block in text.split("\n\n") {
        let f = fields(block);
        let get = |name: &str| f.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        if let Some(envid) = get("original-envelope-id") {
            r.envelope_id = Some(envid);
        }
        let Some(recipient) = get("final-recipient").or_else(|| get("original-recipient")) else { continue };
        let recipient = recipient.split_once(';').map_or(recipient.as_str(), |(_, a)| a).trim().to_lowercase();
        r.recipients.push(RecipientStatus {
            recipient,
            action: get("action").unwrap_or_default().to_lowercase(),
            status: get("status").unwrap_or_default().split_whitespace().next().unwrap_or_default().to_owned(),
            diagnostic: get("diagnostic-code"),
        });
    }
}

/// The first lines a person wrote: quoted lines and the "On ... wrote:" line dropped, at most
/// 280 characters.
fn excerpt(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('>') || (line.starts_with("On ") && line.ends_with("wrote:")) {
            break;
        }
        if !line.is_empty() {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(line);
        }
        if out.chars().count() >= 280 {
            break;
        }
    }
    out.chars().take(280).collect()
}
