//! Header values a client may set: subject, display name and extra headers.
//!
//! Each refuses CR and LF, so no client text can start a header of its own, and extra headers
//! may not override the ones the engine owns (addressing, Message-ID, MIME structure).

use std::fmt;

/// Why a header-bound text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// Contains CR, LF or another control character.
    #[error("contains a line break or control character")]
    ControlCharacter,
    /// Longer than the limit for this kind of text.
    #[error("is longer than {max} characters")]
    TooLong {
        /// The limit.
        max: usize,
    },
    /// A header name that is empty or has characters outside RFC 5322 `ftext`.
    #[error("is not a valid header name")]
    InvalidName,
    /// A header the engine sets itself.
    #[error("`{0}` is set by Mailroom and cannot be overridden")]
    Reserved(String),
}

fn checked_text(input: &str, max: usize) -> Result<String, HeaderError> {
    // Tabs are the one control character RFC 5322 allows in unstructured text.
    if input.chars().any(|c| c.is_control() && c != '\t') {
        return Err(HeaderError::ControlCharacter);
    }
    if input.chars().count() > max {
        return Err(HeaderError::TooLong { max });
    }
    Ok(input.to_owned())
}

macro_rules! text_type {
    ($(#[$doc:meta])* $name:ident, $max:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Debug)]
        pub struct $name(String);

        impl $name {
            /// The longest text accepted, in characters.
            pub const MAX_LEN: usize = $max;

            /// Parses a client-supplied text.
            pub fn parse(input: &str) -> Result<Self, HeaderError> {
                checked_text(input, Self::MAX_LEN).map(Self)
            }

            /// The text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

text_type!(
    /// An email subject line.
    Subject, 998
);
text_type!(
    /// The display name in a `From` header.
    DisplayName, 200
);
text_type!(
    /// The value of an extra header.
    HeaderValue, 998
);

/// Headers the engine writes itself; a client cannot set them as extra headers.
const RESERVED: &[&str] = &[
    "from",
    "to",
    "cc",
    "bcc",
    "subject",
    "message-id",
    "date",
    "sender",
    "return-path",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
];

/// The name of an extra header, such as `List-Unsubscribe` or `X-Campaign`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct HeaderName(String);

impl HeaderName {
    /// Parses a header name and refuses the ones the engine owns.
    pub fn parse(input: &str) -> Result<Self, HeaderError> {
        if input.is_empty() || input.len() > 76 {
            return Err(HeaderError::InvalidName);
        }
        // RFC 5322 ftext: printable ASCII except `:`.
        if !input.bytes().all(|b| (33..=126).contains(&b) && b != b':') {
            return Err(HeaderError::InvalidName);
        }
        if RESERVED.contains(&input.to_ascii_lowercase().as_str()) {
            return Err(HeaderError::Reserved(input.to_owned()));
        }
        Ok(Self(input.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subject_with_a_line_break_is_refused() {
        assert_eq!(Subject::parse("Hello\r\nBcc: x@y.com"), Err(HeaderError::ControlCharacter));
        assert!(Subject::parse("Quarterly\tnumbers").is_ok());
    }

    #[test]
    fn an_overlong_subject_is_refused() {
        assert_eq!(Subject::parse(&"s".repeat(999)), Err(HeaderError::TooLong { max: 998 }));
    }

    #[test]
    fn reserved_and_malformed_header_names_are_refused() {
        assert!(HeaderName::parse("List-Unsubscribe").is_ok());
        assert_eq!(HeaderName::parse("message-ID"), Err(HeaderError::Reserved("message-ID".into())));
        assert_eq!(HeaderName::parse("X Bad"), Err(HeaderError::InvalidName));
        assert_eq!(HeaderName::parse("X:Bad"), Err(HeaderError::InvalidName));
        assert_eq!(HeaderName::parse(""), Err(HeaderError::InvalidName));
    }
}
