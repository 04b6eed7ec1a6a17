//! Mailroom's domain types.
//!
//! Everything here is pure: values are parsed once at the edge (API, configuration, database
//! rows) into types whose private fields guarantee they are well formed, so the layers above
//! never re-check them. No I/O happens in this crate.
#![deny(missing_docs)]

pub mod access;
pub mod answer;
pub mod backoff;
pub mod email;
pub mod event;
pub mod header;
pub mod idempotency;
pub mod ids;
pub mod job;
pub mod mask;
pub mod message;
pub mod message_id;
pub mod pacing;
pub mod send;
pub mod sequence;
pub mod suppression;

pub use access::{AccessError, Grant, Role, Scope};
pub use answer::{Answer, Phase, Verdict};
pub use email::{EmailAddress, EmailError};
pub use header::{DisplayName, HeaderError, HeaderName, HeaderValue, Subject};
pub use idempotency::{IdempotencyKey, IdempotencyKeyError};
pub use ids::{ApiKeyId, EventId, GrantId, IdError, MailboxId, SendId, WebhookId, WorkspaceId};
pub use job::SendJob;
pub use mask::mask_email;
pub use message::OutgoingMessage;
pub use message_id::MessageId;
pub use send::SendState;
pub use sequence::StopOn;
pub use suppression::SuppressionReason;
