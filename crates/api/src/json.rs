//! A JSON body extractor whose rejections are [`ApiError`]s in our error shape.

use axum::{
    extract::{FromRequest, Request, rejection::JsonRejection},
    http::StatusCode,
};
use serde::de::DeserializeOwned;

use crate::ApiError;

/// Like `axum::Json`, but a malformed body answers `{"error": {"code": "invalid_json", ...}}`.
pub(crate) struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Self(v)),
            Err(r) => Err(rejection(r)),
        }
    }
}

fn rejection(r: JsonRejection) -> ApiError {
    match r.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge("the request body is larger than allowed".into()),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            ApiError::bad_request("invalid_content_type", "send the body as JSON with `Content-Type: application/json`")
        }
        _ => ApiError::bad_request("invalid_json", r.body_text()),
    }
}
