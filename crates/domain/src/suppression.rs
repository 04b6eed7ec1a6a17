//! Suppression lists: the addresses a workspace never mails again, and why.
//!
//! Addresses are compared in one normal form: the whole address in lower case, surrounding
//! white space dropped. Local parts are case-sensitive in principle (RFC 5321) but no
//! provider a cold-outreach platform sends to treats them so, and a suppression that misses
//! `Jane@` because it holds `jane@` is the costlier mistake. Nothing else is folded: dots and
//! `+tags` are kept, because only some providers ignore them.

use std::{fmt, str::FromStr};

/// Why an address is suppressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SuppressionReason {
    /// A permanent delivery failure (5.1.x at RCPT, or an RFC 3464 report).
    HardBounce,
    /// The recipient asked to stop.
    Unsubscribe,
    /// The recipient reported the mail as spam.
    Complaint,
    /// Added by hand (API, import).
    Manual,
    /// The address was erased; only its keyed hash is kept.
    Erased,
}

impl SuppressionReason {
    /// Every reason.
    pub const ALL: [Self; 5] = [Self::HardBounce, Self::Unsubscribe, Self::Complaint, Self::Manual, Self::Erased];

    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HardBounce => "hard_bounce",
            Self::Unsubscribe => "unsubscribe",
            Self::Complaint => "complaint",
            Self::Manual => "manual",
            Self::Erased => "erased",
        }
    }
}

impl fmt::Display for SuppressionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not a [`SuppressionReason`].
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not one of hard_bounce, unsubscribe, complaint, manual, erased")]
pub struct UnknownSuppressionReason(String);

impl FromStr for SuppressionReason {
    type Err = UnknownSuppressionReason;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownSuppressionReason(s.chars().take(40).collect()))
    }
}

/// An address in the form suppression lists compare.
pub fn normalise(address: &str) -> String {
    address.trim().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_round_trip_and_addresses_fold_case_only() {
        for r in SuppressionReason::ALL {
            assert_eq!(r.as_str().parse::<SuppressionReason>().unwrap(), r);
        }
        assert!("bounced".parse::<SuppressionReason>().is_err());
        assert_eq!(normalise(" Jane.Doe+X@Example.COM "), "jane.doe+x@example.com");
    }
}
