//! The content of one send, as accepted by the API and stored in the ledger.

use serde::{Deserialize, Serialize};

use crate::EmailAddress;

/// What to send. Built by the API from a validated request; stored in the ledger as JSON and
/// hashed (in this field order) to detect an idempotency key reused for another payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutgoingMessage {
    /// Visible recipients.
    pub to: Vec<EmailAddress>,
    /// Copied recipients.
    #[serde(default)]
    pub cc: Vec<EmailAddress>,
    /// Blind-copied recipients: in the envelope, never in a header.
    #[serde(default)]
    pub bcc: Vec<EmailAddress>,
    /// The subject line (checked free of line breaks at the edge).
    pub subject: String,
    /// The plain-text body.
    pub text: Option<String>,
    /// The HTML body.
    pub html: Option<String>,
    /// Extra headers, in order (names checked not to clash with the engine's own).
    #[serde(default)]
    pub headers: Vec<(String, String)>,
}

impl OutgoingMessage {
    /// Every envelope recipient: to, cc and bcc.
    pub fn recipients(&self) -> impl Iterator<Item = &EmailAddress> {
        self.to.iter().chain(&self.cc).chain(&self.bcc)
    }
}
