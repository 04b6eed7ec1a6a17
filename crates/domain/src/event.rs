//! An event as the scheduler sees it: one wire shape for the pull feed's items and each
//! webhook's body, described in the API document by the same type that writes it.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::{EventId, MailboxId, SendId};

/// An event on the wire.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WireEvent {
    /// Unique: receivers dedupe on it (a webhook's `webhook-id` too).
    pub id: EventId,
    /// What happened: `send.sent`, `send.failed`, `send.ambiguous`, `send.cancelled`,
    /// `reply.received`, `reply.auto`, `reply.unsubscribe`, `bounce.hard`, `bounce.soft`,
    /// `mailbox.*`, `contact.erased`, `webhook.test`, `webhook.disabled`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The send concerned, if any.
    pub send_id: Option<SendId>,
    /// The mailbox concerned, if any.
    pub mailbox_id: Option<MailboxId>,
    /// The metadata the scheduler gave with the send.
    pub metadata: Option<serde_json::Value>,
    /// Details, by type.
    pub data: serde_json::Value,
    /// When it happened.
    pub created_at: DateTime<Utc>,
}
