//! Turns a ledger message into RFC 5322 bytes and an SMTP envelope.

use lettre::{
    Address, Message,
    address::Envelope,
    message::{
        Mailbox, MultiPart, SinglePart,
        header::{ContentType, HeaderName, HeaderValue},
    },
};
use mailroom_domain::{EmailAddress, MessageId, OutgoingMessage};

/// A message ready to hand to a transport.
pub struct Composed {
    /// Envelope sender and every recipient (including Bcc).
    pub envelope: Envelope,
    /// The formatted message (no Bcc header).
    pub bytes: Vec<u8>,
}

/// Why a message could not be composed. Reaching this is a bug or a corrupt ledger row: the
/// API validated everything before storing it.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    /// An address lettre does not accept.
    #[error("address not accepted by the MIME builder")]
    Address(#[source] lettre::address::AddressError),
    /// A header name lettre does not accept.
    #[error("header name `{0}` not accepted by the MIME builder")]
    HeaderName(String),
    /// Neither a text nor an HTML body.
    #[error("the message has no body")]
    NoBody,
    /// lettre refused the message.
    #[error("the MIME builder refused the message")]
    Build(#[source] lettre::error::Error),
}

fn address(a: &EmailAddress) -> Result<Address, ComposeError> {
    a.as_str().parse().map_err(ComposeError::Address)
}

/// Composes `msg` from `from`, with the ledger's Message-ID. `bcc_header` keeps the Bcc
/// recipients in a header: the Gmail API and Graph take no envelope, they read the recipients
/// from the message (and strip Bcc before delivery). Over SMTP the envelope carries them.
pub fn compose(
    from: &EmailAddress,
    from_name: Option<&str>,
    message_id: &MessageId,
    msg: &OutgoingMessage,
    bcc_header: bool,
) -> Result<Composed, ComposeError> {
    let sender = address(from)?;
    let mut b = Message::builder()
        .from(Mailbox::new(from_name.map(str::to_owned), sender.clone()))
        .subject(msg.subject.clone())
        .message_id(Some(message_id.as_str().to_owned()))
        .date_now();
    for to in &msg.to {
        b = b.to(Mailbox::new(None, address(to)?));
    }
    for cc in &msg.cc {
        b = b.cc(Mailbox::new(None, address(cc)?));
    }
    if bcc_header {
        for bcc in &msg.bcc {
            b = b.bcc(Mailbox::new(None, address(bcc)?));
        }
        b = b.keep_bcc();
    }
    for (name, value) in &msg.headers {
        let header = HeaderName::new_from_ascii(name.clone()).map_err(|_| ComposeError::HeaderName(name.clone()))?;
        b = b.raw_header(HeaderValue::new(header, value.clone()));
    }
    let message = match (&msg.text, &msg.html) {
        (Some(text), Some(html)) => b.multipart(MultiPart::alternative_plain_html(text.clone(), html.clone())),
        (Some(text), None) => b.singlepart(SinglePart::builder().header(ContentType::TEXT_PLAIN).body(text.clone())),
        (None, Some(html)) => b.singlepart(SinglePart::builder().header(ContentType::TEXT_HTML).body(html.clone())),
        (None, None) => return Err(ComposeError::NoBody),
    }
    .map_err(ComposeError::Build)?;
    let recipients = msg.recipients().map(address).collect::<Result<Vec<_>, _>>()?;
    let envelope = Envelope::new(Some(sender), recipients).map_err(ComposeError::Build)?;
    Ok(Composed { envelope, bytes: message.formatted() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> EmailAddress {
        EmailAddress::parse(s).unwrap()
    }

    #[test]
    fn bcc_is_in_the_envelope_but_not_the_headers_and_the_message_id_is_the_ledgers() {
        let from = addr("sender@example.test");
        let id = MessageId::generate(&from);
        let msg = OutgoingMessage {
            to: vec![addr("a@example.test")],
            cc: vec![addr("c@example.test")],
            bcc: vec![addr("hidden@example.test")],
            subject: "Hi".into(),
            text: Some("hello".into()),
            html: Some("<p>hello</p>".into()),
            headers: vec![("X-Campaign".into(), "q4".into())],
        };
        let c = compose(&from, Some("Sender"), &id, &msg, false).unwrap();
        let text = String::from_utf8(c.bytes).unwrap();
        assert!(text.contains(&format!("Message-ID: {}", id.as_str())));
        assert!(text.contains("X-Campaign: q4"));
        assert!(!text.contains("hidden@"));
        assert_eq!(c.envelope.to().len(), 3);
        // For the providers' APIs, which read recipients from the message itself.
        let api = String::from_utf8(compose(&from, None, &id, &msg, true).unwrap().bytes).unwrap();
        assert!(api.contains("Bcc: hidden@example.test"), "{api}");
    }
}
