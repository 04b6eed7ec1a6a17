//! The states of a send in the ledger (docs/design.md section 3).

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// Where a send stands. Transitions are conditional updates in the store, so two workers
/// racing on one send cannot both move it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SendState {
    /// Accepted, waiting for its first attempt.
    Queued,
    /// A worker holds it and may be talking to the provider.
    Sending,
    /// Waiting before another attempt (or for its mailbox to be ready again).
    RetryWait,
    /// Accepted by the provider. Terminal.
    Sent,
    /// Refused for good. Terminal.
    Failed,
    /// May or may not have been delivered; never resent automatically. Terminal until an
    /// operator resolves it.
    Ambiguous,
    /// Cancelled before it was sent. Terminal.
    Cancelled,
}

impl SendState {
    /// The name stored in the database and shown in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sending => "sending",
            Self::RetryWait => "retry_wait",
            Self::Sent => "sent",
            Self::Failed => "failed",
            Self::Ambiguous => "ambiguous",
            Self::Cancelled => "cancelled",
        }
    }

    /// Whether no worker will touch the send again.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Sent | Self::Failed | Self::Ambiguous | Self::Cancelled)
    }
}

impl fmt::Display for SendState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A state name the ledger does not know.
#[derive(Debug, thiserror::Error)]
#[error("unknown send state `{0}`")]
pub struct UnknownState(String);

impl FromStr for SendState {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "queued" => Self::Queued,
            "sending" => Self::Sending,
            "retry_wait" => Self::RetryWait,
            "sent" => Self::Sent,
            "failed" => Self::Failed,
            "ambiguous" => Self::Ambiguous,
            "cancelled" => Self::Cancelled,
            other => return Err(UnknownState(other.to_owned())),
        })
    }
}
