//! What the document says of each route beyond the route table: a summary, the request's body
//! and query types, the success status and what it answers, and the errors particular to it.
//! `openapi::document` panics (and its test fails) for a route without an entry here.

use utoipa::{ToSchema, openapi::path::Parameter};

use crate::{
    api_keys, cancel, contacts, events, export, grants, mailbox_patch, mailbox_state, mailboxes, oauth, oauth_reauth,
    openapi::{body, optional_body, query},
    operator, pacing, page, reconnect, sends, suppressions, usage, validate,
    views::{
        AuditPage, DeliveryPage, EventPage, MailboxPage, MailboxView, PacingView, SendPage, SendView, SuppressionPage,
        SuppressionRemoved, SuppressionsAdded, WebhookList, WebhookView,
    },
    webhook_deliveries, webhooks, workspaces,
};

/// A request body.
pub(crate) enum Body {
    /// None.
    None,
    /// JSON of a schema (`register` adds it to the components).
    Json {
        /// The schema's name.
        name: String,
        /// Whether it must be given.
        required: bool,
        /// Adds the schema to the list.
        register: fn(&mut Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::Schema>)>),
    },
    /// A CSV file.
    Csv,
}

/// One route's entry.
pub(crate) struct Doc {
    pub summary: &'static str,
    pub body: Body,
    pub params: fn() -> Vec<Parameter>,
    pub idempotency_key: bool,
    pub status: u16,
    pub answer: &'static str,
    /// `json`, or the media type answered.
    pub answer_type: &'static str,
    /// Statuses besides the common ones (400, 401, 403, 404 with a path id, 429, 500).
    pub errors: &'static [u16],
    /// The success answer's schema, where it is typed.
    pub returns: Option<Returns>,
}

/// A typed answer: its schema's name, and how to register it.
pub(crate) struct Returns {
    pub name: String,
    pub register: fn(&mut Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::Schema>)>),
}

fn none() -> Vec<Parameter> {
    vec![]
}

fn d(summary: &'static str, status: u16, answer: &'static str) -> Doc {
    Doc {
        summary,
        body: Body::None,
        params: none,
        idempotency_key: false,
        status,
        answer,
        answer_type: "json",
        errors: &[],
        returns: None,
    }
}

impl Doc {
    fn body(mut self, b: Body) -> Self {
        self.body = b;
        self
    }
    fn query(mut self, params: fn() -> Vec<Parameter>) -> Self {
        self.params = params;
        self
    }
    fn errors(mut self, e: &'static [u16]) -> Self {
        self.errors = e;
        self
    }
    fn answers(mut self, media: &'static str) -> Self {
        self.answer_type = media;
        self
    }
    fn returns<T: ToSchema>(mut self) -> Self {
        self.returns = Some(Returns { name: T::name().into_owned(), register: crate::openapi::register::<T> });
        self
    }
}

/// The entry of one route, if it has one.
pub(crate) fn doc(method: &str, path: &str) -> Option<Doc> {
    Some(match (method, path) {
        ("GET", "/v1/openapi.json") => d("This document", 200, "The OpenAPI 3.1 document."),
        ("GET", "/health") => d("Whether the server is up", 200, "It is up.").answers("text/plain"),
        ("GET", "/metrics") => d("Prometheus metrics", 200, "The metrics, in text format.").answers("text/plain"),
        ("POST", "/v1/mailboxes") => d("Connect a password mailbox (checked by a real login)", 201, "The mailbox.")
            .body(body::<mailboxes::ConnectRequest>())
            .errors(&[409, 422, 503])
            .returns::<MailboxView>(),
        ("GET", "/v1/mailboxes") => d("List mailboxes", 200, "A page of mailboxes and `next`.")
            .query(query::<mailbox_state::ListQuery>)
            .returns::<MailboxPage>(),
        ("GET", "/v1/mailboxes/{id}") => {
            d("Show a mailbox", 200, "The mailbox (never a secret).").returns::<MailboxView>()
        }
        ("PATCH", "/v1/mailboxes/{id}") => d("Change a mailbox's settings in place", 200, "The mailbox.")
            .body(body::<mailbox_patch::PatchRequest>())
            .errors(&[409, 422])
            .returns::<MailboxView>(),
        ("PUT", "/v1/mailboxes/{id}/credentials") => d("Reconnect a password mailbox in place", 200, "The mailbox.")
            .body(body::<reconnect::CredentialsRequest>())
            .errors(&[409, 422])
            .returns::<MailboxView>(),
        ("POST", "/v1/mailboxes/{id}/pause") => d("Pause a mailbox", 200, "The mailbox.")
            .body(optional_body::<mailbox_state::PauseRequest>())
            .errors(&[409])
            .returns::<MailboxView>(),
        ("POST", "/v1/mailboxes/{id}/resume") => {
            d("Resume a paused mailbox", 200, "The mailbox.").errors(&[409]).returns::<MailboxView>()
        }
        ("DELETE", "/v1/mailboxes/{id}") => {
            d("Disconnect a mailbox and destroy its credentials", 200, "What was done.")
        }
        ("PUT", "/v1/mailboxes/{id}/pacing") => d("Set a mailbox's pace", 200, "The pace.")
            .body(body::<pacing::PacingRequest>())
            .errors(&[422])
            .returns::<PacingView>(),
        ("POST", "/v1/mailboxes/recheck") => d("Re-check every unusable mailbox", 200, "What each re-check found."),
        ("POST", "/v1/mailboxes/{id}/recheck") => d("Re-check an unusable mailbox", 200, "What the re-check found."),
        ("POST", "/v1/mailboxes/oauth/{provider}/start") => {
            d("Start connecting a mailbox over OAuth", 201, "The authorization URL to send the user to.")
                .body(body::<oauth::StartRequest>())
                .errors(&[422])
        }
        ("POST", "/v1/mailboxes/{id}/oauth/start") => {
            d("Start re-authorising an OAuth mailbox", 201, "The authorization URL to send the user to.")
                .body(optional_body::<oauth_reauth::RestartRequest>())
                .errors(&[409, 422])
        }
        ("GET", "/v1/oauth/callback") => d(
            "The provider's redirect back (a browser lands here)",
            201,
            "The mailbox, or a redirect to the return URL.",
        )
        .query(query::<oauth::Callback>)
        .errors(&[409, 422]),
        ("POST", "/v1/sends") => Doc {
            idempotency_key: true,
            ..d("Enqueue a send", 201, "The send (200 and `Idempotent-Replayed: true` for a repeat).")
                .body(body::<validate::SendRequest>())
                .errors(&[409, 422])
        }
        .returns::<SendView>(),
        ("POST", "/v1/sends/batch") => d("Enqueue up to 1,000 sends", 200, "One result per item.")
            .body(body::<sends::BatchRequest>())
            .errors(&[422]),
        ("GET", "/v1/sends") => d("List sends", 200, "A page of sends and `next`.")
            .query(query::<operator::ListQuery>)
            .returns::<SendPage>(),
        ("GET", "/v1/sends/{id}") => d("Show a send", 200, "The send.").returns::<SendView>(),
        ("POST", "/v1/sends/cancel") => d("Cancel every waiting send a filter matches", 200, "How many.")
            .body(body::<cancel::BulkRequest>())
            .errors(&[422]),
        ("POST", "/v1/sends/{id}/cancel") => d("Cancel a waiting send", 200, "The send.")
            .body(optional_body::<cancel::CancelRequest>())
            .errors(&[409])
            .returns::<SendView>(),
        ("POST", "/v1/sends/{id}/resolve") => d("Settle an ambiguous send", 200, "The send.")
            .body(body::<operator::ResolveRequest>())
            .errors(&[409])
            .returns::<SendView>(),
        ("GET", "/v1/events") => d("Read the event feed", 200, "A page of events and `next`.")
            .query(query::<events::FeedQuery>)
            .returns::<EventPage>(),
        ("POST", "/v1/webhooks") => d("Register a webhook endpoint", 201, "The endpoint and its secret (shown once).")
            .body(body::<webhooks::NewWebhook>())
            .errors(&[422])
            .returns::<WebhookView>(),
        ("GET", "/v1/webhooks") => d("List webhook endpoints", 200, "The endpoints.").returns::<WebhookList>(),
        ("DELETE", "/v1/webhooks/{id}") => d("Remove a webhook endpoint", 204, "Removed."),
        ("PATCH", "/v1/webhooks/{id}") => d("Change a webhook endpoint", 200, "The endpoint.")
            .body(body::<webhooks::WebhookChange>())
            .errors(&[422])
            .returns::<WebhookView>(),
        ("POST", "/v1/webhooks/{id}/rotate-secret") => {
            d("Rotate a webhook's secret", 200, "The endpoint and its new secret (shown once).")
                .returns::<WebhookView>()
        }
        ("POST", "/v1/webhooks/{id}/test") => {
            d("Send a test event to one endpoint", 202, "The event's id.").errors(&[409])
        }
        ("GET", "/v1/webhooks/{id}/deliveries") => d("List an endpoint's deliveries", 200, "A page of deliveries.")
            .query(query::<webhook_deliveries::DeliveryQuery>)
            .returns::<DeliveryPage>(),
        ("POST", "/v1/webhooks/{id}/deliveries/{event_id}/replay") => {
            d("Deliver an event again", 202, "The delivery is due now.").errors(&[409])
        }
        ("GET", "/v1/data-keys") => d("The workspace's data keys", 200, "Each version and its state."),
        ("POST", "/v1/data-keys/rotate") => {
            d("Rotate the workspace's data key", 202, "The new version.").errors(&[409])
        }
        ("POST", "/v1/workspaces") => {
            d("Create a workspace or a client sub-workspace", 201, "The workspace and a key.")
                .body(body::<workspaces::CreateRequest>())
                .errors(&[422])
        }
        ("GET", "/v1/workspaces") => d("List workspaces in reach", 200, "The workspaces."),
        ("GET", "/v1/workspaces/{id}") => d("Show a workspace", 200, "The workspace."),
        ("DELETE", "/v1/workspaces/{id}") => {
            d("Delete a workspace", 200, "What was destroyed.").body(body::<workspaces::DeleteRequest>()).errors(&[422])
        }
        ("POST", "/v1/workspaces/{id}/grants") => {
            d("Grant the parent agency access", 201, "The grant.").body(body::<grants::GrantRequest>()).errors(&[422])
        }
        ("GET", "/v1/workspaces/{id}/grants") => d("List a workspace's grants", 200, "The grants."),
        ("DELETE", "/v1/workspaces/{id}/grants/{grant}") => d("Revoke a grant", 200, "Revoked."),
        ("POST", "/v1/keys") => d("Create an API key", 201, "The key and its token (shown once).")
            .body(body::<api_keys::CreateRequest>())
            .errors(&[422]),
        ("GET", "/v1/keys") => d("List API keys", 200, "The keys (never a token)."),
        ("DELETE", "/v1/keys/{id}") => d("Revoke an API key", 200, "Revoked."),
        ("GET", "/v1/suppressions") => d("List the suppression list", 200, "A page and `next`.")
            .query(query::<suppressions::ListQuery>)
            .returns::<SuppressionPage>(),
        ("POST", "/v1/suppressions") => d("Add addresses to the suppression list", 200, "How many were added.")
            .body(body::<suppressions::AddRequest>())
            .errors(&[422])
            .returns::<SuppressionsAdded>(),
        ("POST", "/v1/suppressions/import") => d("Import a CSV into the suppression list", 200, "How many were added.")
            .body(Body::Csv)
            .errors(&[422])
            .returns::<SuppressionsAdded>(),
        ("DELETE", "/v1/suppressions/{address}") => {
            d("Take an address off the list", 200, "Removed.").returns::<SuppressionRemoved>()
        }
        ("POST", "/v1/contacts/erase") => d("Erase a contact (data-subject erasure)", 200, "What was erased.")
            .body(body::<contacts::EraseRequest>())
            .errors(&[422, 503]),
        ("GET", "/v1/export") => d("Export the workspace (JSON lines, or CSV per table)", 200, "The export, streamed.")
            .query(query::<export::ExportQuery>)
            .answers("application/x-ndjson")
            .errors(&[503]),
        ("GET", "/v1/audit") => d("Read the audit trail", 200, "A page of entries and `next`.")
            .query(query::<page::Page>)
            .returns::<AuditPage>(),
        ("GET", "/v1/usage") => d("Usage per day", 200, "Counts per day.").query(query::<usage::Range>),
        _ => return None,
    })
}
