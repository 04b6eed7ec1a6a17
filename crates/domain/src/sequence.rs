//! Sequences: the sends a scheduler makes for one lead in one campaign (a first email and its
//! follow-ups). What the lead sends back can stop the rest of the sequence; each send says
//! which inbound messages stop it.

use std::{fmt, str::FromStr};

/// An inbound message that stops the waiting sends of its sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StopOn {
    /// A person's reply.
    Reply,
    /// An automatic reply (out of office): stops only sends that ask for it.
    AutoReply,
    /// A request to unsubscribe.
    Unsubscribe,
    /// A hard bounce.
    Bounce,
}

impl StopOn {
    /// What a send stops on unless it says otherwise (the `sends.stop_on` column's default).
    pub const DEFAULT: [Self; 3] = [Self::Reply, Self::Unsubscribe, Self::Bounce];

    /// Every kind, in the order they are stored.
    pub const ALL: [Self; 4] = [Self::Reply, Self::AutoReply, Self::Unsubscribe, Self::Bounce];

    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reply => "reply",
            Self::AutoReply => "auto_reply",
            Self::Unsubscribe => "unsubscribe",
            Self::Bounce => "bounce",
        }
    }

    /// The reason a send it cancels carries in its `send.cancelled` event.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Reply => "reply_received",
            Self::AutoReply => "auto_reply_received",
            Self::Unsubscribe => "unsubscribed",
            Self::Bounce => "bounced",
        }
    }
}

impl fmt::Display for StopOn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not a [`StopOn`].
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not one of reply, auto_reply, unsubscribe, bounce")]
pub struct UnknownStopOn(String);

impl FromStr for StopOn {
    type Err = UnknownStopOn;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "reply" => Self::Reply,
            "auto_reply" => Self::AutoReply,
            "unsubscribe" => Self::Unsubscribe,
            "bounce" => Self::Bounce,
            other => return Err(UnknownStopOn(other.chars().take(40).collect())),
        })
    }
}
