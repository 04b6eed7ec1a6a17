//! RFC 5322 Message-IDs, fixed when a send is accepted.

use std::fmt;

use uuid::Uuid;

use crate::EmailAddress;

/// A Message-ID such as `<0192c0de...@example.com>`, with its angle brackets.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct MessageId(String);

impl MessageId {
    /// A fresh, globally unique Message-ID in the sender's domain, so replies and bounces
    /// refer back to it and providers do not flag a foreign domain.
    pub fn generate(from: &EmailAddress) -> Self {
        Self(format!("<{}@{}>", Uuid::new_v4().simple(), from.domain()))
    }

    /// Wraps a Message-ID read back from the ledger (written by [`MessageId::generate`]).
    pub fn from_stored(value: String) -> Self {
        Self(value)
    }

    /// The Message-ID with its angle brackets.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageId({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_id_is_bracketed_and_in_the_senders_domain() {
        let from = EmailAddress::parse("a@Example.org").unwrap();
        let id = MessageId::generate(&from);
        assert!(id.as_str().starts_with('<'));
        assert!(id.as_str().ends_with("@example.org>"));
        assert_ne!(id, MessageId::generate(&from));
    }
}
