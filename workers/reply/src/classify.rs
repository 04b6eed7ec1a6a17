//! What an inbound message is (docs/design.md section 6): a bounce (RFC 3464 report), an automatic
//! reply (RFC 3834 and the headers mail systems use in practice), an unsubscribe request, or a
//! person's reply.

use crate::parse::{Inbound, RecipientStatus};

/// The classes, in the order they are tested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A permanent delivery failure (5.x.x) for this recipient.
    BounceHard(RecipientStatus),
    /// A temporary one (4.x.x, or `delayed`).
    BounceSoft(RecipientStatus),
    /// An out-of-office or other automatic answer.
    AutoReply,
    /// The recipient asks to receive no more.
    Unsubscribe,
    /// A person answered.
    Reply,
}

impl Kind {
    /// The event it yields.
    pub fn event(&self) -> &'static str {
        match self {
            Self::BounceHard(_) => "bounce.hard",
            Self::BounceSoft(_) => "bounce.soft",
            Self::AutoReply => "reply.auto",
            Self::Unsubscribe => "reply.unsubscribe",
            Self::Reply => "reply.received",
        }
    }
}

const AUTO_SUBJECTS: [&str; 10] = [
    "out of office",
    "out of the office",
    "automatic reply",
    "auto reply",
    "autoreply",
    "auto-reply",
    "auto:",
    "abwesenheitsnotiz",
    "réponse automatique",
    "i am away",
];

fn automatic(m: &Inbound) -> bool {
    let by_header = m.auto_headers.iter().any(|(name, value)| match name.as_str() {
        "auto-submitted" => value != "no",
        "precedence" => matches!(value.as_str(), "auto_reply" | "bulk" | "junk"),
        _ => true,
    });
    let subject = m.subject.to_lowercase();
    by_header || AUTO_SUBJECTS.iter().any(|s| subject.starts_with(s) || subject.contains(&format!(" {s}")))
}

fn unsubscribe(m: &Inbound) -> bool {
    let asks = |t: &str| {
        let t = t.trim().to_lowercase();
        ["unsubscribe", "remove me", "stop emailing", "opt out", "opt-out"].iter().any(|w| t.starts_with(w))
    };
    asks(&m.subject) || asks(&m.excerpt)
}

/// Classifies a message; for a report, as seen for `recipient` when given (the send's
/// recipient), else for its first failed or delayed recipient.
pub fn classify(m: &Inbound) -> Kind {
    if let Some(report) = &m.report {
        let failing = report.recipients.iter().find(|r| r.action == "failed" || r.action == "delayed");
        if let Some(r) = failing {
            return if r.action == "failed" && r.status.starts_with('5') {
                Kind::BounceHard(r.clone())
            } else {
                Kind::BounceSoft(r.clone())
            };
        }
    }
    if automatic(m) {
        return Kind::AutoReply;
    }
    if unsubscribe(m) {
        return Kind::Unsubscribe;
    }
    Kind::Reply
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse;

    fn msg(headers: &str, body: &str) -> Inbound {
        parse(
            format!("{headers}\r\nFrom: Lead <lead@example.org>\r\nMessage-ID: <r1@example.org>\r\n\r\n{body}")
                .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn a_plain_answer_is_a_reply_with_its_references_newest_first() {
        let m = msg(
            "Subject: Re: hello\r\nIn-Reply-To: <a@x>\r\nReferences: <z@x> <a@x>",
            "Sounds good!\r\n\r\nOn Mon, X wrote:\r\n> hi",
        );
        assert_eq!(classify(&m), Kind::Reply);
        assert_eq!(m.refs, vec!["<a@x>", "<a@x>", "<z@x>"]);
        assert_eq!(m.excerpt, "Sounds good!");
        assert_eq!(m.from.as_deref(), Some("lead@example.org"));
    }

    #[test]
    fn automatic_answers_are_recognised_by_header_or_subject() {
        for h in [
            "Subject: Re: hello\r\nAuto-Submitted: auto-replied",
            "Subject: Re: hello\r\nX-Autoreply: yes",
            "Subject: Re: hello\r\nX-Autorespond: yes",
            "Subject: Re: hello\r\nX-Auto-Response-Suppress: All",
            "Subject: Re: hello\r\nPrecedence: auto_reply",
            "Subject: Re: hello\r\nPrecedence: bulk",
            "Subject: Out of Office: back Monday",
            "Subject: Automatic reply: hello",
        ] {
            assert_eq!(classify(&msg(h, "I am away.")), Kind::AutoReply, "{h}");
        }
        assert_eq!(classify(&msg("Subject: Re: hi\r\nAuto-Submitted: no", "Yes please")), Kind::Reply);
    }

    #[test]
    fn an_unsubscribe_request_is_its_own_kind() {
        assert_eq!(classify(&msg("Subject: Re: hello", "Unsubscribe me please")), Kind::Unsubscribe);
        assert_eq!(classify(&msg("Subject: unsubscribe", "")), Kind::Unsubscribe);
    }

    fn dsn(action: &str, status: &str) -> Vec<u8> {
        format!(
            "From: MAILER-DAEMON@mx.example.org\r\nTo: sender@example.test\r\nSubject: Undelivered Mail\r\n\
             Message-ID: <dsn1@mx>\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n\
             --B\r\nContent-Type: text/plain\r\n\r\nSorry.\r\n\
             --B\r\nContent-Type: message/delivery-status\r\n\r\n\
             Reporting-MTA: dns; mx.example.org\r\nOriginal-Envelope-Id: env-1\r\n\r\n\
             Final-Recipient: rfc822; Nobody@Example.org\r\nAction: {action}\r\nStatus: {status}\r\n\
             Diagnostic-Code: smtp; 550 {status} User unknown\r\n\r\n\
             --B\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: sender@example.test\r\n\
             Message-ID: <orig@example.test>\r\nSubject: hello\r\n\r\n--B--\r\n"
        )
        .into_bytes()
    }

    #[test]
    fn a_delivery_report_is_a_hard_or_soft_bounce_naming_the_original() {
        let m = parse(&dsn("failed", "5.1.1")).unwrap();
        let report = m.report.clone().unwrap();
        assert_eq!(report.original_message_id.as_deref(), Some("<orig@example.test>"));
        assert_eq!(report.envelope_id.as_deref(), Some("env-1"));
        match classify(&m) {
            Kind::BounceHard(r) => {
                assert_eq!((r.recipient.as_str(), r.status.as_str()), ("nobody@example.org", "5.1.1"));
                assert!(r.diagnostic.unwrap().contains("User unknown"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(classify(&parse(&dsn("delayed", "4.4.1")).unwrap()), Kind::BounceSoft(_)));
    }

    #[test]
    fn a_message_without_an_id_dedupes_on_its_headers() {
        let raw = b"From: a@b\r\nSubject: x\r\n\r\nbody";
        let (a, b) = (parse(raw).unwrap(), parse(raw).unwrap());
        assert!(a.dedupe_key.starts_with("sha256:"));
        assert_eq!(a.dedupe_key, b.dedupe_key);
    }
}
