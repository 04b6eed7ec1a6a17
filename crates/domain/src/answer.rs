//! What a provider's answer means for a send (docs/design.md section 4).
//!
//! The table lives here, free of any SMTP or HTTP library, so every transport maps its answers
//! onto the same verdicts and the table itself is unit-tested row by row.

use std::{fmt, time::Duration};

/// How far a delivery attempt got. Decides whether a lost connection is safe to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// TCP connect and greeting.
    Connect,
    /// TLS handshake (implicit or STARTTLS).
    Tls,
    /// SMTP AUTH.
    Auth,
    /// `MAIL FROM`.
    MailFrom,
    /// `RCPT TO`.
    Rcpt,
    /// The `DATA` command, before any of the message was written.
    Data,
    /// The message body was being written, or its final answer awaited: from here on the
    /// provider may have accepted the message even if we never hear so.
    Body,
}

/// A reply from the provider: an SMTP code with its enhanced status, or an HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The SMTP reply code (or HTTP status).
    pub code: u16,
    /// The RFC 3463 enhanced status code (`4.7.0`), when given.
    pub enhanced: Option<String>,
    /// The provider's text, for the ledger and the operator.
    pub text: String,
    /// A `Retry-After`-style hint, when the provider gave one.
    pub retry_after: Option<Duration>,
}

impl Answer {
    /// Builds an answer from an SMTP code and its text, reading the enhanced code from the
    /// start of the text when present.
    pub fn smtp(code: u16, text: impl Into<String>) -> Self {
        let text = text.into();
        let enhanced = text.split_whitespace().next().filter(|w| is_enhanced(w)).map(str::to_owned);
        Self { code, enhanced, text, retry_after: None }
    }

    fn enhanced_is(&self, prefix: &str) -> bool {
        self.enhanced.as_deref().is_some_and(|e| e.starts_with(prefix))
    }
}

fn is_enhanced(word: &str) -> bool {
    let parts: Vec<&str> = word.split('.').collect();
    parts.len() == 3
        && matches!(parts[0], "2" | "4" | "5")
        && parts[1..].iter().all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.text)
    }
}

/// What to do with a send after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Delivered to the provider: `sent`.
    Accepted,
    /// The mailbox is throttled: pause it until the hint (or an exponential delay); the send
    /// waits without burning an attempt.
    Throttled {
        /// When the provider said to come back, if it did.
        retry_after: Option<Duration>,
    },
    /// A passing failure before the provider could have accepted: retry with backoff.
    Transient,
    /// The credentials were refused: the mailbox needs re-authentication; sends wait.
    CredentialsRejected,
    /// The mailbox's daily quota is used up: pause it until the quota window rolls.
    QuotaExceeded,
    /// The recipient does not exist: `failed`, and the address goes on the suppression list.
    BadRecipient,
    /// Refused for good: `failed` with the provider's text.
    Permanent,
    /// The message may have been delivered: never resend blindly.
    Ambiguous,
}

/// Classifies the outcome of one attempt.
///
/// `answer` is `None` when the attempt ended without a reply (connection lost, timeout).
pub fn classify(phase: Phase, answer: Option<&Answer>) -> Verdict {
    let Some(a) = answer else {
        // No reply: harmless before the body was handed over, ambiguous after.
        return if phase >= Phase::Body { Verdict::Ambiguous } else { Verdict::Transient };
    };
    match a.code {
        200..=399 => Verdict::Accepted,
        400..=499 => classify_temporary(a),
        _ => classify_permanent(phase, a),
    }
}

fn classify_temporary(a: &Answer) -> Verdict {
    let throttled =
        a.code == 421 || a.code == 429 || a.enhanced_is("4.7.") || (a.code == 432 && a.enhanced_is("4.3.2"));
    if throttled { Verdict::Throttled { retry_after: a.retry_after } } else { Verdict::Transient }
}

fn classify_permanent(phase: Phase, a: &Answer) -> Verdict {
    let quota_text = a.text.to_ascii_lowercase().contains("quota");
    if a.code == 535 || a.enhanced_is("5.7.8") {
        Verdict::CredentialsRejected
    } else if a.enhanced_is("5.4.5") || (a.enhanced_is("5.2.0") && quota_text) {
        Verdict::QuotaExceeded
    } else if phase == Phase::Rcpt && a.enhanced_is("5.1.") {
        Verdict::BadRecipient
    } else {
        Verdict::Permanent
    }
}

/// Classifies the outcome of a send through a provider's HTTP API (the Gmail API, Microsoft
/// Graph). `status` is `None` when no response came; `handed_over` says whether the request
/// (the message) was fully sent by then. `reason` is the provider's error reason, when given.
pub fn classify_http(
    status: Option<u16>,
    reason: Option<&str>,
    retry_after: Option<Duration>,
    handed_over: bool,
) -> Verdict {
    let Some(status) = status else {
        return if handed_over { Verdict::Ambiguous } else { Verdict::Transient };
    };
    let reason = reason.unwrap_or_default();
    match status {
        200..=299 => Verdict::Accepted,
        429 => Verdict::Throttled { retry_after },
        403 if matches!(reason, "rateLimitExceeded" | "userRateLimitExceeded") => Verdict::Throttled { retry_after },
        403 if matches!(reason, "dailyLimitExceeded" | "quotaExceeded") => Verdict::QuotaExceeded,
        // An access token refused despite the refresh margin: the next attempt refreshes it.
        401 | 408 => Verdict::Transient,
        // Both providers may deliver after a 5xx (Graph's 504 in particular): never resend blindly.
        500..=599 => Verdict::Ambiguous,
        _ => Verdict::Permanent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(phase: Phase, code: u16, text: &str) -> Verdict {
        classify(phase, Some(&Answer::smtp(code, text)))
    }

    #[test]
    fn api_answers_follow_the_design_table() {
        let hint = Some(Duration::from_secs(30));
        assert_eq!(classify_http(Some(200), None, None, true), Verdict::Accepted);
        assert_eq!(classify_http(Some(202), None, None, true), Verdict::Accepted);
        assert_eq!(classify_http(Some(429), None, hint, true), Verdict::Throttled { retry_after: hint });
        let limited = classify_http(Some(403), Some("userRateLimitExceeded"), None, true);
        assert_eq!(limited, Verdict::Throttled { retry_after: None });
        assert_eq!(classify_http(Some(403), Some("dailyLimitExceeded"), None, true), Verdict::QuotaExceeded);
        assert_eq!(classify_http(Some(504), None, None, true), Verdict::Ambiguous);
        assert_eq!(classify_http(Some(500), None, None, true), Verdict::Ambiguous);
        assert_eq!(classify_http(None, None, None, true), Verdict::Ambiguous);
        assert_eq!(classify_http(None, None, None, false), Verdict::Transient);
        assert_eq!(classify_http(Some(400), Some("invalidArgument"), None, true), Verdict::Permanent);
    }

    #[test]
    fn the_design_table_is_followed_row_by_row() {
        use Phase::*;
        assert_eq!(at(Body, 250, "2.0.0 OK queued"), Verdict::Accepted);
        let throttled = Verdict::Throttled { retry_after: None };
        assert_eq!(at(Rcpt, 421, "4.7.0 Try again later"), throttled);
        assert_eq!(at(MailFrom, 454, "4.7.0 Too many"), throttled);
        assert_eq!(at(Rcpt, 432, "4.3.2 System not accepting"), throttled);
        assert_eq!(at(Rcpt, 451, "4.3.0 Mail server temporarily rejected"), Verdict::Transient);
        assert_eq!(at(Auth, 535, "5.7.8 Username and Password not accepted"), Verdict::CredentialsRejected);
        assert_eq!(at(Body, 550, "5.4.5 Daily user sending quota exceeded"), Verdict::QuotaExceeded);
        assert_eq!(
            at(Body, 554, "5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException"),
            Verdict::QuotaExceeded
        );
        assert_eq!(at(Rcpt, 550, "5.1.1 User unknown"), Verdict::BadRecipient);
        assert_eq!(at(Body, 554, "5.6.0 Message rejected"), Verdict::Permanent);
    }

    #[test]
    fn silence_is_harmless_before_the_body_and_ambiguous_after() {
        assert_eq!(classify(Phase::Connect, None), Verdict::Transient);
        assert_eq!(classify(Phase::Data, None), Verdict::Transient);
        assert_eq!(classify(Phase::Body, None), Verdict::Ambiguous);
    }

    #[test]
    fn the_enhanced_code_is_read_only_when_well_formed() {
        assert_eq!(Answer::smtp(550, "5.1.1 nope").enhanced.as_deref(), Some("5.1.1"));
        assert_eq!(Answer::smtp(550, "User unknown").enhanced, None);
        assert_eq!(Answer::smtp(550, "5.1 short").enhanced, None);
    }
}
