//! The API's error codes: one table, each code with its HTTP status and what it means. Every
//! error answer carries one of these in `error.code`; the codes are stable (a client may match
//! on them), the messages are for people and may change.

use axum::http::StatusCode;

macro_rules! codes {
    ($($variant:ident = ($code:literal, $status:ident, $meaning:literal),)*) => {
        /// An error code (see the module's documentation).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code {
            $(#[doc = $meaning] $variant,)*
        }

        impl Code {
            /// Every code, in the table's order.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The stable string in `error.code`.
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $code,)* }
            }

            /// The HTTP status it is answered with.
            pub fn status(self) -> StatusCode {
                match self { $(Code::$variant => StatusCode::$status,)* }
            }

            /// What it means, in a sentence.
            pub fn meaning(self) -> &'static str {
                match self { $(Code::$variant => $meaning,)* }
            }
        }
    };
}

codes! {
    InvalidBody = ("invalid_body", BAD_REQUEST, "The body could not be read."),
    InvalidContentType = ("invalid_content_type", BAD_REQUEST, "The body is not sent as `application/json`."),
    InvalidCursor = ("invalid_cursor", BAD_REQUEST, "The `after` cursor is not one this listing handed out."),
    InvalidIdempotencyKey = ("invalid_idempotency_key", BAD_REQUEST, "The `Idempotency-Key` header is empty, too long or not printable ASCII."),
    InvalidItem = ("invalid_item", BAD_REQUEST, "An item of a batch is not a JSON object or lacks its idempotency key."),
    InvalidJson = ("invalid_json", BAD_REQUEST, "The body is not valid JSON."),
    InvalidLimit = ("invalid_limit", BAD_REQUEST, "`limit` is out of its range."),
    InvalidRequest = ("invalid_request", BAD_REQUEST, "The request is malformed before any route reads it (a path that is not UTF-8, say)."),
    InvalidQuery = ("invalid_query", BAD_REQUEST, "A query parameter is unknown or malformed."),
    InvalidState = ("invalid_state", BAD_REQUEST, "A state filter names no state."),
    MetadataKeyTooLong = ("metadata_key_too_long", BAD_REQUEST, "A metadata key is longer than allowed."),
    OauthAccessDenied = ("oauth_access_denied", BAD_REQUEST, "The account's owner declined the connection at the provider."),
    OauthCodeMissing = ("oauth_code_missing", BAD_REQUEST, "The provider's callback carries no `code`."),
    OauthProviderError = ("oauth_provider_error", BAD_REQUEST, "The provider answered the authorisation with an error."),
    OauthStateExpired = ("oauth_state_expired", BAD_REQUEST, "The connection took too long; start it again."),
    OauthStateInvalid = ("oauth_state_invalid", BAD_REQUEST, "The callback's `state` is unknown, used, or its key is no longer valid."),
    OauthStateMissing = ("oauth_state_missing", BAD_REQUEST, "The callback carries no `state`."),
    MissingIdempotencyKey = ("missing_idempotency_key", BAD_REQUEST, "The route needs an `Idempotency-Key` header."),
    UnstorableText = ("unstorable_text", BAD_REQUEST, "A text holds a character that cannot be stored (NUL, a lone surrogate)."),
    Unauthorized = ("unauthorized", UNAUTHORIZED, "No valid API key: missing, malformed, unknown, expired or revoked."),
    BadChecksum = ("bad_checksum", UNAUTHORIZED, "The key's checksum does not match: mistyped or cut short."),
    AdminTokenRequired = ("admin_token_required", UNAUTHORIZED, "The route is the operator's and needs the admin token."),
    MissingScope = ("missing_scope", FORBIDDEN, "The key's role or scopes lack the one the route needs."),
    ScopeEscalation = ("scope_escalation", FORBIDDEN, "A key may not give another more than it holds itself."),
    NotFound = ("not_found", NOT_FOUND, "Nothing with this id in the workspace (or out of the key's reach), or no such route."),
    MethodNotAllowed = ("method_not_allowed", METHOD_NOT_ALLOWED, "The route does not take this method."),
    RequestTimeout = ("request_timeout", REQUEST_TIMEOUT, "The request was not received and answered in time."),
    DeliveryPending = ("delivery_pending", CONFLICT, "The delivery is still pending; there is nothing to replay."),
    IdempotencyConflict = ("idempotency_conflict", CONFLICT, "The idempotency key was used before for a different request."),
    CredentialsUnusable = ("credentials_unusable", CONFLICT, "The mailbox's stored credentials cannot be opened."),
    MailboxChanged = ("mailbox_changed", CONFLICT, "The mailbox changed while the request was checked; read it again and retry."),
    MailboxDisconnected = ("mailbox_disconnected", CONFLICT, "The mailbox was disconnected and its credentials destroyed."),
    MailboxExists = ("mailbox_exists", CONFLICT, "The workspace already has a mailbox for this address."),
    MailboxNotActive = ("mailbox_not_active", CONFLICT, "The mailbox's status does not allow this change."),
    MailboxUsesOauth = ("mailbox_uses_oauth", CONFLICT, "The mailbox signs in over OAuth; the route is for password mailboxes."),
    MailboxUsesPassword = ("mailbox_uses_password", CONFLICT, "The mailbox signs in with a password; the route is for OAuth mailboxes."),
    RotationInProgress = ("rotation_in_progress", CONFLICT, "A key rotation of the workspace is already under way."),
    SendFinished = ("send_finished", CONFLICT, "The send is finished; nothing can change it."),
    SendInFlight = ("send_in_flight", CONFLICT, "A worker holds the send; its attempt is never cut mid-transfer."),
    WebhookDisabled = ("webhook_disabled", CONFLICT, "The webhook endpoint is switched off; switch it on first."),
    SendNotAmbiguous = ("send_not_ambiguous", CONFLICT, "Only an ambiguous send can be resolved."),
    TooLarge = ("too_large", PAYLOAD_TOO_LARGE, "The body is larger than allowed."),
    ConfirmationMismatch = ("confirmation_mismatch", UNPROCESSABLE_ENTITY, "The confirmation does not repeat the id it confirms."),
    DeletingOwnWorkspace = ("deleting_own_workspace", UNPROCESSABLE_ENTITY, "A key cannot delete the workspace it acts for."),
    EgressDenied = ("egress_denied", UNPROCESSABLE_ENTITY, "The address resolves where the egress policy forbids connecting."),
    ExpiryInPast = ("expiry_in_past", UNPROCESSABLE_ENTITY, "An expiry is in the past."),
    ImapAuthFailed = ("imap_auth_failed", UNPROCESSABLE_ENTITY, "The IMAP server refused the login."),
    ImapUnreachable = ("imap_unreachable", UNPROCESSABLE_ENTITY, "The IMAP server could not be reached or its TLS failed."),
    InvalidBatchSize = ("invalid_batch_size", UNPROCESSABLE_ENTITY, "A batch is empty or larger than allowed."),
    InvalidEventType = ("invalid_event_type", UNPROCESSABLE_ENTITY, "An event type is not one the engine publishes."),
    InvalidField = ("invalid_field", UNPROCESSABLE_ENTITY, "A field's value is invalid; the message names the field."),
    InvalidName = ("invalid_name", UNPROCESSABLE_ENTITY, "A name is empty or too long."),
    InvalidUrl = ("invalid_url", UNPROCESSABLE_ENTITY, "A URL is malformed, too long, or of a kind the route does not take."),
    NestingTooDeep = ("nesting_too_deep", UNPROCESSABLE_ENTITY, "A sub-workspace cannot have sub-workspaces."),
    NoParent = ("no_parent", UNPROCESSABLE_ENTITY, "The workspace has no parent to grant access to."),
    NoScopes = ("no_scopes", UNPROCESSABLE_ENTITY, "A key or grant needs at least one scope."),
    OauthAccountMismatch = ("oauth_account_mismatch", UNPROCESSABLE_ENTITY, "The OAuth grant is for another account than the mailbox's."),
    OauthExchangeFailed = ("oauth_exchange_failed", UNPROCESSABLE_ENTITY, "The provider refused to exchange the authorisation code."),
    OauthNoAddress = ("oauth_no_address", UNPROCESSABLE_ENTITY, "The provider did not say which address the grant is for."),
    OauthNoRefreshToken = ("oauth_no_refresh_token", UNPROCESSABLE_ENTITY, "The provider gave no refresh token."),
    OauthScopesMissing = ("oauth_scopes_missing", UNPROCESSABLE_ENTITY, "The grant lacks a scope sending needs."),
    ProviderNotConfigured = ("provider_not_configured", UNPROCESSABLE_ENTITY, "This OAuth provider is not configured on the server."),
    RecipientSuppressed = ("recipient_suppressed", UNPROCESSABLE_ENTITY, "A recipient is on the workspace's suppression list."),
    ReturnUrlNotAllowed = ("return_url_not_allowed", UNPROCESSABLE_ENTITY, "The return URL's origin is not on the allow-list."),
    SmtpAuthFailed = ("smtp_auth_failed", UNPROCESSABLE_ENTITY, "The SMTP server refused the login."),
    SmtpUnreachable = ("smtp_unreachable", UNPROCESSABLE_ENTITY, "The SMTP server could not be reached or its TLS failed."),
    ThreadMailboxMismatch = ("thread_mailbox_mismatch", UNPROCESSABLE_ENTITY, "A follow-up goes out from another mailbox than its parent."),
    ThreadParentErased = ("thread_parent_erased", UNPROCESSABLE_ENTITY, "The parent send was erased with its recipient's data."),
    ThreadParentNotFound = ("thread_parent_not_found", UNPROCESSABLE_ENTITY, "No parent send with this id in the workspace."),
    ThreadParentNotSent = ("thread_parent_not_sent", UNPROCESSABLE_ENTITY, "The parent send was cancelled or failed and will never arrive."),
    RoleOrScopes = ("role_or_scopes", UNPROCESSABLE_ENTITY, "A key takes either a role or a non-empty scope list, not both."),
    UnknownRole = ("unknown_role", UNPROCESSABLE_ENTITY, "A role's name is not Owner, Admin, Operator, Analyst or Billing."),
    UnknownScope = ("unknown_scope", UNPROCESSABLE_ENTITY, "A scope's name is not one the API knows."),
    RateLimited = ("rate_limited", TOO_MANY_REQUESTS, "Over a rate limit; the answer names it, the usage and the reset."),
    Internal = ("internal", INTERNAL_SERVER_ERROR, "Something failed on the server; it was logged with the request id."),
    ExportsBusy = ("exports_busy", SERVICE_UNAVAILABLE, "As many exports as the server allows are streaming."),
    KeyProviderUnavailable = ("key_provider_unavailable", SERVICE_UNAVAILABLE, "The key provider (KMS) is unavailable; nothing was stored."),
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::Code;

    #[test]
    fn codes_are_unique_snake_case_and_errors_only() {
        let mut seen = std::collections::HashSet::new();
        for c in Code::ALL {
            assert!(seen.insert(c.as_str()), "{c} twice");
            assert!(c.as_str().chars().all(|x| x.is_ascii_lowercase() || x == '_'), "{c}");
            assert!(c.status().is_client_error() || c.status().is_server_error(), "{c}");
        }
    }

    #[test]
    fn the_readme_lists_every_code_with_its_status() {
        let readme = include_str!("../../../README.md");
        for c in Code::ALL {
            let row = format!("| `{c}` | {} | {} |", c.status().as_u16(), c.meaning());
            assert!(readme.lines().any(|l| l == row), "the README's error table lacks {row}");
        }
    }
}
