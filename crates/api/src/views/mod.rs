//! The typed answers of the scheduler's daily routes: what they serialise is what the API
//! document describes (`utoipa` derives on the same types).

use chrono::{DateTime, Utc};
use mailroom_domain::{EventId, MailboxId, SendId, WebhookId, event::WireEvent};
use mailroom_store::{sends::SendRow, webhooks};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

mod lists;
mod mailboxes;
pub(crate) use lists::{
    AuditEntry, AuditPage, SuppressionPage, SuppressionRemoved, SuppressionView, SuppressionsAdded,
};
pub(crate) use mailboxes::{MailboxPage, MailboxView, PacingView};

/// A send as the API shows it (never its body).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SendView {
    pub id: SendId,
    pub mailbox_id: MailboxId,
    pub idempotency_key: String,
    /// `queued`, `sending`, `retry_wait`, `sent`, `failed`, `ambiguous` or `cancelled`.
    pub state: String,
    pub attempts: i32,
    /// Its Message-ID, fixed at enqueue.
    pub message_id: String,
    /// The provider's last answer.
    pub last_response: Option<String>,
    /// Why it failed, was settled ambiguous or was cancelled.
    pub failure_reason: Option<String>,
    pub send_at: Option<DateTime<Utc>>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub metadata: Option<Value>,
    pub sequence: Option<String>,
    /// What stops its sequence: `reply`, `auto_reply`, `unsubscribe`, `bounce`.
    pub stop_on: Vec<String>,
    pub in_reply_to: Option<SendId>,
    /// When its recipient was erased.
    pub erased_at: Option<DateTime<Utc>>,
    /// Whether this answer repeats an earlier request's send.
    pub replayed: bool,
}

impl SendView {
    /// The view of a ledger row.
    pub(crate) fn of(row: &SendRow, replayed: bool) -> Self {
        Self {
            id: row.send_id(),
            mailbox_id: row.mailbox(),
            idempotency_key: row.idempotency_key.clone(),
            state: row.state.clone(),
            attempts: row.attempts,
            message_id: row.message_id.clone(),
            last_response: row.last_response.clone(),
            failure_reason: row.failure_reason.clone(),
            send_at: row.send_at,
            next_attempt_at: row.next_attempt_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
            metadata: row.metadata.clone(),
            sequence: row.sequence.clone(),
            stop_on: row.stop_on.clone(),
            in_reply_to: row.in_reply_to.map(SendId::from_uuid),
            erased_at: row.erased_at,
            replayed,
        }
    }
}

/// A page of sends: `next` (the last id of a full page) reads the following one.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SendPage {
    pub sends: Vec<SendView>,
    pub next: Option<SendId>,
}

/// A page of the event feed: `next` reads the following one (the same when there is nothing
/// new yet).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct EventPage {
    pub events: Vec<WireEvent>,
    pub next: String,
}

/// A webhook endpoint (its secret only in the answers that make one).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WebhookView {
    pub id: WebhookId,
    pub url: String,
    /// The types it takes (empty: all).
    pub event_types: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    /// Since when every delivery has failed.
    pub failing_since: Option<DateTime<Utc>>,
    /// Until when the secret before the last rotation still signs.
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    /// Whether the old `Mailroom-Signature` header is sent too.
    pub legacy_signature: bool,
    /// `whsec_<base64>`: shown when made (registration, rotation), never again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl WebhookView {
    /// The view of an endpoint, without its secret.
    pub(crate) fn of(w: &webhooks::WebhookRow) -> Self {
        Self {
            id: WebhookId::from_uuid(w.id),
            url: w.url.clone(),
            event_types: w.event_types.clone(),
            created_at: w.created_at,
            enabled: w.enabled,
            disabled_reason: w.disabled_reason.clone(),
            failing_since: w.failing_since,
            previous_secret_expires_at: w.previous_until.filter(|u| *u > Utc::now()),
            legacy_signature: w.legacy_signature,
            secret: None,
        }
    }

    /// The view with its new secret: registration and rotation are the only two places a
    /// webhook's secret leaves the vault (the client stores it).
    pub(crate) fn with_secret(w: &webhooks::WebhookRow, secret: &secrecy::SecretString) -> Self {
        Self { secret: Some(secrecy::ExposeSecret::expose_secret(secret).to_owned()), ..Self::of(w) }
    }
}

/// The workspace's endpoints.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WebhookList {
    pub webhooks: Vec<WebhookView>,
}

/// One delivery of an event to an endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DeliveryView {
    pub event_id: EventId,
    /// The event's type.
    #[serde(rename = "type")]
    pub kind: String,
    /// `pending`, `delivered` or `failed`.
    pub state: String,
    pub attempts: i32,
    /// The last answer: an HTTP status, or why there was none.
    pub last_status: Option<String>,
    pub next_attempt_at: DateTime<Utc>,
}

/// A page of deliveries, newest first: `next` reads the following (older) one.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DeliveryPage {
    pub deliveries: Vec<DeliveryView>,
    pub next: Option<String>,
}
