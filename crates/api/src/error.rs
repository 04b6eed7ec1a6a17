//! The one API error type, and how it maps to HTTP.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::json;

use crate::Code;

/// Everything a handler can answer besides success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A refusal: `code` names the problem (and carries the status), `message` says how to fix
    /// it.
    #[error("{message}")]
    Refused {
        /// The code, from the one table.
        code: Code,
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
    /// The request body is larger than allowed.
    #[error("{0}")]
    TooLarge(String),
    /// A dependency (the key provider) is unavailable: try again later. Logged once.
    #[error("{message}")]
    Unavailable {
        /// The code, from the one table.
        code: Code,
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
    /// A refusal with its code (which carries the status) and how to fix it.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self::Refused { code, message: message.into() }
    }

    /// Its code in the one table.
    pub fn code(&self) -> Code {
        match self {
            Self::Refused { code, .. } | Self::Unavailable { code, .. } => *code,
            Self::Unauthorized => Code::Unauthorized,
            Self::MissingScope(_) => Code::MissingScope,
            Self::BadChecksum => Code::BadChecksum,
            Self::AdminOnly => Code::AdminTokenRequired,
            Self::Timeout(_) => Code::RequestTimeout,
            Self::RateLimited(_) => Code::RateLimited,
            Self::NotFound(_) => Code::NotFound,
            Self::MethodNotAllowed => Code::MethodNotAllowed,
            Self::Conflict(_) => Code::IdempotencyConflict,
            Self::TooLarge(_) => Code::TooLarge,
            Self::Internal(_) => Code::Internal,
        }
    }

    /// The status code and the machine-readable code.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        let code = self.code();
        (code.status(), code.as_str())
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
                code: Code::KeyProviderUnavailable,
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
            e @ KeyringError::RotationInProgress(_) => Self::new(Code::RotationInProgress, e.to_string()),
            e => Self::Internal(Box::new(e)),
        }
    }
}
