//! The one API error type, and how it maps to HTTP.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::json;

/// Everything a handler can answer besides success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed: `code` names the problem, `message` says how to fix it.
    #[error("{message}")]
    BadRequest {
        /// Machine-readable code.
        code: &'static str,
        /// Human-readable explanation.
        message: String,
    },
    /// The request is well formed but cannot be carried out as asked.
    #[error("{message}")]
    Unprocessable {
        /// Machine-readable code.
        code: &'static str,
        /// Human-readable explanation.
        message: String,
    },
    /// Missing, malformed, unknown, expired or revoked API key.
    #[error("a valid API key is required in `Authorization: Bearer mr_...`")]
    Unauthorized,
    /// A route of the operator's, called without the admin token.
    #[error(
        "this route is the operator's: send the admin token (`mra_...`, kept in the file named by \
         api.admin_token_file) in `Authorization: Bearer`"
    )]
    AdminOnly,
    /// Over a rate limit: the standing names the limit, the usage and the reset.
    #[error(
        "over the limit of {} {} a minute (bursts of {}); retry in {} s",
        .0.rate.per_minute, .0.name, .0.rate.burst, .0.retry_after_secs
    )]
    RateLimited(Box<crate::limits::Standing>),
    /// The request was not received and answered in time.
    #[error(
        "the request was not received and answered within {} s; send the body promptly or in smaller \
         batches, and retry (sends with the same Idempotency-Key)", .0.as_secs()
    )]
    Timeout(std::time::Duration),
    /// The token ends in a checksum that does not match it: mistyped or cut short.
    #[error("the API key's checksum does not match: it was mistyped or cut short")]
    BadChecksum,
    /// Allowed to call the route, but not to do what was asked (a wider key than its maker).
    #[error("{message}")]
    Forbidden {
        /// Machine-readable code.
        code: &'static str,
        /// Human-readable explanation.
        message: String,
    },
    /// The key is valid but its role or scopes lack the one the route needs.
    #[error("this API key lacks the `{0}` scope this route needs; use a key whose role or scopes include it")]
    MissingScope(mailroom_domain::Scope),
    /// Nothing with this id in the key's workspace.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The path exists, but not with this method.
    #[error("this route does not take that method; see the route table in the README")]
    MethodNotAllowed,
    /// The idempotency key was used for a different request.
    #[error("{0}")]
    Conflict(String),
    /// The request conflicts with the resource's current state.
    #[error("{message}")]
    StateConflict {
        /// Machine-readable code.
        code: &'static str,
        /// Human-readable explanation.
        message: String,
    },
    /// The request body is larger than allowed.
    #[error("{0}")]
    TooLarge(String),
    /// A dependency (the key provider) is unavailable: try again later. Logged once.
    #[error("{message}")]
    Unavailable {
        /// Machine-readable code.
        code: &'static str,
        /// Human-readable explanation.
        message: String,
        /// The cause, for the log only.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Anything else: logged once with its cause chain, answered opaquely.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    /// A 400 with the given code and message.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest { code, message: message.into() }
    }

    /// A 422 with the given code and message.
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::Unprocessable { code, message: message.into() }
    }

    /// A 409: the request conflicts with the resource's current state.
    pub fn state_conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::StateConflict { code, message: message.into() }
    }

    /// The status code and the machine-readable code.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code),
            Self::Unprocessable { code, .. } => (StatusCode::UNPROCESSABLE_ENTITY, code),
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::MissingScope(_) => (StatusCode::FORBIDDEN, "missing_scope"),
            Self::BadChecksum => (StatusCode::UNAUTHORIZED, "bad_checksum"),
            Self::AdminOnly => (StatusCode::UNAUTHORIZED, "admin_token_required"),
            Self::Timeout(_) => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
            Self::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Self::Forbidden { code, .. } => (StatusCode::FORBIDDEN, code),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "idempotency_conflict"),
            Self::StateConflict { code, .. } => (StatusCode::CONFLICT, code),
            Self::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            Self::Unavailable { code, .. } => (StatusCode::SERVICE_UNAVAILABLE, code),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    /// The `{"code", "message"}` object, also used per item in batch answers.
    pub fn body(&self) -> serde_json::Value {
        let (_, code) = self.status_and_code();
        let mut body = json!({ "code": code, "message": self.to_string() });
        if let Self::RateLimited(s) = self {
            for (k, v) in s.details().as_object().into_iter().flatten() {
                body[k] = v.clone();
            }
        }
        body
    }
}

/// The error and its causes, for the operator's log.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, _) = self.status_and_code();
        match &self {
            Self::Internal(e) => tracing::error!(error = %chain(e.as_ref()), "request failed"),
            Self::Unavailable { source, .. } => {
                tracing::warn!(error = %chain(source.as_ref()), "dependency unavailable")
            }
            _ => {}
        }
        let mut resp = (status, Json(json!({ "error": self.body() }))).into_response();
        match &self {
            Self::Unavailable { .. } => {
                resp.headers_mut().insert("retry-after", axum::http::HeaderValue::from_static("30"));
            }
            Self::RateLimited(s) => s.write_headers(&mut resp, true),
            _ => {}
        }
        resp
    }
}

impl From<mailroom_store::StoreError> for ApiError {
    fn from(e: mailroom_store::StoreError) -> Self {
        Self::Internal(Box::new(e))
    }
}

impl From<mailroom_store::SqlxError> for ApiError {
    fn from(e: mailroom_store::SqlxError) -> Self {
        Self::Internal(Box::new(e))
    }
}

impl From<mailroom_vault::VaultError> for ApiError {
    fn from(e: mailroom_vault::VaultError) -> Self {
        use mailroom_vault::{ProviderError, VaultError};
        match e {
            VaultError::Provider(ProviderError::Unavailable(_)) => Self::Unavailable {
                code: "key_provider_unavailable",
                message: "the key provider (KMS) is unavailable; nothing was stored, try again shortly".into(),
                source: Box::new(e),
            },
            e => Self::Internal(Box::new(e)),
        }
    }
}

impl From<mailroom_keyring::OpenError> for ApiError {
    fn from(e: mailroom_keyring::OpenError) -> Self {
        mailroom_keyring::KeyringError::Open(e).into()
    }
}

impl From<mailroom_keyring::KeyringError> for ApiError {
    fn from(e: mailroom_keyring::KeyringError) -> Self {
        use mailroom_keyring::KeyringError;
        match e {
            KeyringError::Vault(v) => v.into(),
            KeyringError::Open(mailroom_keyring::OpenError::Unavailable(v)) => v.into(),
            KeyringError::NoWorkspace(_) => Self::NotFound("workspace"),
            e @ KeyringError::RotationInProgress(_) => {
                Self::StateConflict { code: "rotation_in_progress", message: e.to_string() }
            }
            e => Self::Internal(Box::new(e)),
        }
    }
}
