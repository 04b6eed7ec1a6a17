//! Prefixed, human-readable identifiers (`ws_…`, `mbx_…`, `snd_…`).
//!
//! The API shows ids with a type prefix so that a workspace id pasted where a mailbox id is
//! expected is refused at parse time instead of answering a confusing 404. In the database
//! they are plain UUIDs.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

/// Why a prefixed id could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The text does not start with the expected prefix.
    #[error("expected an id starting with `{expected}_`")]
    WrongPrefix {
        /// The prefix this id type carries.
        expected: &'static str,
    },
    /// The part after the prefix is not 32 hexadecimal digits.
    #[error("`{expected}_` must be followed by 32 hexadecimal digits")]
    Malformed {
        /// The prefix this id type carries.
        expected: &'static str,
    },
}

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            /// The prefix shown in front of this id in the API.
            pub const PREFIX: &'static str = $prefix;

            /// A new random id (UUIDv7, so ids sort roughly by creation time).
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// Wraps a UUID read from the database.
            pub fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// The UUID stored in the database.
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}_{}", $prefix, self.0.simple())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let rest = s
                    .strip_prefix($prefix)
                    .and_then(|r| r.strip_prefix('_'))
                    .ok_or(IdError::WrongPrefix { expected: $prefix })?;
                if rest.len() != 32 || !rest.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(IdError::Malformed { expected: $prefix });
                }
                Uuid::parse_str(rest)
                    .map(Self)
                    .map_err(|_| IdError::Malformed { expected: $prefix })
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .pattern(Some(concat!("^", $prefix, "_[0-9a-f]{32}$")))
                    .examples([concat!($prefix, "_0190f5c2a4b87c3d9e1f2a3b4c5d6e7f")])
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed(stringify!($name))
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

prefixed_id!(
    /// A workspace: the hard tenancy boundary.
    WorkspaceId, "ws"
);
prefixed_id!(
    /// A connected mailbox.
    MailboxId, "mbx"
);
prefixed_id!(
    /// One send in the ledger.
    SendId, "snd"
);
prefixed_id!(
    /// An API key (the public half of `mr_<key id>_<secret>`).
    ApiKeyId, "key"
);
prefixed_id!(
    /// An event in the outbox.
    EventId, "evt"
);
prefixed_id!(
    /// A registered webhook endpoint.
    WebhookId, "whk"
);
prefixed_id!(
    /// A grant through which a parent agency acts in a client sub-workspace.
    GrantId, "grt"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_round_trips_through_its_text_form() {
        let id = MailboxId::new();
        let text = id.to_string();
        assert!(text.starts_with("mbx_"));
        assert_eq!(text.parse::<MailboxId>(), Ok(id));
    }

    #[test]
    fn an_id_of_another_type_is_refused() {
        let ws = WorkspaceId::new().to_string();
        assert_eq!(ws.parse::<MailboxId>(), Err(IdError::WrongPrefix { expected: "mbx" }));
    }

    #[test]
    fn a_truncated_id_is_refused() {
        assert_eq!("snd_1234".parse::<SendId>(), Err(IdError::Malformed { expected: "snd" }));
    }
}
