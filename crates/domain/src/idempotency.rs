//! Idempotency keys: the client's name for one intended email.

use std::fmt;

/// Why an idempotency key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdempotencyKeyError {
    /// The key is empty.
    #[error("the idempotency key is empty")]
    Empty,
    /// The key is longer than [`IdempotencyKey::MAX_LEN`].
    #[error("the idempotency key is longer than 255 characters")]
    TooLong,
    /// The key has characters outside printable ASCII (space excluded).
    #[error("the idempotency key may only contain printable ASCII characters without spaces")]
    Charset,
}

/// A client-chosen key, unique per workspace, that names one email for ever.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// The longest key accepted.
    pub const MAX_LEN: usize = 255;

    /// Parses a key as sent in the `Idempotency-Key` header or a batch item.
    pub fn parse(input: &str) -> Result<Self, IdempotencyKeyError> {
        if input.is_empty() {
            return Err(IdempotencyKeyError::Empty);
        }
        if input.len() > Self::MAX_LEN {
            return Err(IdempotencyKeyError::TooLong);
        }
        if !input.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(IdempotencyKeyError::Charset);
        }
        Ok(Self(input.to_owned()))
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdempotencyKey({})", self.0)
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked_for_length_and_charset() {
        assert!(IdempotencyKey::parse("order-42/step-1").is_ok());
        assert_eq!(IdempotencyKey::parse(""), Err(IdempotencyKeyError::Empty));
        assert_eq!(IdempotencyKey::parse(&"k".repeat(256)), Err(IdempotencyKeyError::TooLong));
        assert_eq!(IdempotencyKey::parse("a b"), Err(IdempotencyKeyError::Charset));
        assert_eq!(IdempotencyKey::parse("é"), Err(IdempotencyKeyError::Charset));
    }
}
