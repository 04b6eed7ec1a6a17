//! Email addresses, parsed strictly.
//!
//! Mailroom only accepts the common `dot-atom@domain` form (no quoted local parts, no comments,
//! no IP literals): what campaign tools actually send to, and nothing a header injection could
//! hide in. The domain is lowercased; the local part keeps its case (it is the server's to fold).

use std::{fmt, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a text is not an acceptable email address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    /// Empty, or only whitespace.
    #[error("the address is empty")]
    Empty,
    /// Longer than RFC 5321 allows (254 characters).
    #[error("the address is longer than 254 characters")]
    TooLong,
    /// Contains a line break or another control character (a header-injection attempt).
    #[error("the address contains a line break or control character")]
    ControlCharacter,
    /// No `@`, or more than one.
    #[error("the address must contain exactly one `@`")]
    At,
    /// The part before `@` is empty, too long or has characters outside dot-atom.
    #[error("the part before `@` is not a valid local part")]
    LocalPart,
    /// The part after `@` is not a dotted domain name.
    #[error("the part after `@` is not a valid domain name")]
    Domain,
}

/// A syntactically valid email address.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EmailAddress(String);

impl EmailAddress {
    /// Parses and normalises an address.
    pub fn parse(input: &str) -> Result<Self, EmailError> {
        if input.chars().any(char::is_control) {
            return Err(EmailError::ControlCharacter);
        }
        let input = input.trim();
        if input.is_empty() {
            return Err(EmailError::Empty);
        }
        if input.len() > 254 {
            return Err(EmailError::TooLong);
        }
        let mut parts = input.split('@');
        let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(EmailError::At);
        };
        if !valid_local(local) {
            return Err(EmailError::LocalPart);
        }
        if !valid_domain(domain) {
            return Err(EmailError::Domain);
        }
        Ok(Self(format!("{local}@{}", domain.to_ascii_lowercase())))
    }

    /// The address as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The domain part (after `@`), lowercased.
    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map(|(_, d)| d).unwrap_or_default()
    }
}

fn valid_local(local: &str) -> bool {
    const SPECIALS: &[u8] = b"!#$%&'*+-/=?^_`{|}~";
    !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || SPECIALS.contains(&b))
}

fn valid_domain(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    labels.len() >= 2
        && domain.len() <= 253
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Debug output ends up in logs: mask it.
        write!(f, "EmailAddress({})", crate::mask_email(&self.0))
    }
}

impl AsRef<str> for EmailAddress {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl FromStr for EmailAddress {
    type Err = EmailError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for EmailAddress {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for EmailAddress {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_address_is_accepted_and_its_domain_lowercased() {
        let a = EmailAddress::parse(" Jane.Doe+tag@Example.COM ").unwrap();
        assert_eq!(a.as_str(), "Jane.Doe+tag@example.com");
        assert_eq!(a.domain(), "example.com");
    }

    #[test]
    fn a_header_injection_is_refused() {
        assert_eq!(EmailAddress::parse("a@b.com\r\nBcc: victim@c.com"), Err(EmailError::ControlCharacter));
        assert_eq!(EmailAddress::parse("a@b.com\n"), Err(EmailError::ControlCharacter));
    }

    #[test]
    fn malformed_addresses_are_refused_with_the_reason() {
        assert_eq!(EmailAddress::parse(""), Err(EmailError::Empty));
        assert_eq!(EmailAddress::parse("ab.com"), Err(EmailError::At));
        assert_eq!(EmailAddress::parse("a@b@c.com"), Err(EmailError::At));
        assert_eq!(EmailAddress::parse(".a@b.com"), Err(EmailError::LocalPart));
        assert_eq!(EmailAddress::parse("a b@c.com"), Err(EmailError::LocalPart));
        assert_eq!(EmailAddress::parse("a@localhost"), Err(EmailError::Domain));
        assert_eq!(EmailAddress::parse("a@-b.com"), Err(EmailError::Domain));
        let long = format!("{}@example.com", "a".repeat(250));
        assert_eq!(EmailAddress::parse(&long), Err(EmailError::TooLong));
    }

    #[test]
    fn debug_output_is_masked() {
        let a = EmailAddress::parse("jane@example.com").unwrap();
        assert_eq!(format!("{a:?}"), "EmailAddress(j***@e***.com)");
    }
}
