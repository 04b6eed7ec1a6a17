//! Reading JSON bodies: our error shape for every rejection, the path of the field at fault,
//! and no text PostgreSQL cannot store (a NUL character: `text` and `jsonb` both refuse it,
//! which would otherwise surface as a 500 at insert time).

use axum::{
    body::Bytes,
    extract::{FromRequest, Request},
    http::header,
};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{ApiError, Code};

/// Like `axum::Json`, but every rejection is an [`ApiError`] naming the field at fault, and a
/// body holding a NUL character anywhere is refused before any handler sees it.
pub(crate) struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        parse(&body_text(req, state).await?, "").map(Self)
    }
}

/// Like [`ApiJson`], for a route whose body is optional: no body at all is `T::default()`.
pub(crate) struct ApiJsonOrEmpty<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for ApiJsonOrEmpty<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let empty = req.headers().get(header::CONTENT_LENGTH).is_none_or(|l| l.as_bytes() == b"0")
            && req.headers().get(header::TRANSFER_ENCODING).is_none();
        if empty {
            return Ok(Self(T::default()));
        }
        ApiJson::from_request(req, state).await.map(|ApiJson(v)| Self(v))
    }
}

/// A body read straight into `T` with no check for unstorable text: for a body whose parts
/// are checked one by one (a batch's items, kept as raw JSON, each rejected on its own).
pub(crate) struct ApiJsonParts<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJsonParts<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let text = body_text(req, state).await?;
        serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_str(&text))
            .map(Self)
            .map_err(|e| ApiError::new(Code::InvalidJson, at("", &e.path().to_string(), e.inner())))
    }
}

/// Like `axum::extract::Query`, but a query string that does not fit is a 400 in our error
/// shape, and a NUL character in it is refused like one in a body.
pub(crate) struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> axum::extract::FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let bad = |e: &dyn std::fmt::Display| ApiError::new(Code::InvalidQuery, format!("the query string: {e}"));
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).map_err(|e| bad(&e))?;
        if let Some((k, _)) = pairs.iter().find(|(k, v)| k.contains('\0') || v.contains('\0')) {
            let at = format!("`{}`: ", k.replace('\0', "\\0"));
            return Err(ApiError::new(Code::UnstorableText, format!("{at}contains a NUL character (U+0000)")));
        }
        serde_urlencoded::from_str(query).map(Self).map_err(|e| bad(&e))
    }
}

/// The body as UTF-8 text, once its content type says JSON and its size is within the limit.
async fn body_text<S: Send + Sync>(req: Request, state: &S) -> Result<String, ApiError> {
    if !is_json(req.headers()) {
        return Err(ApiError::new(
            Code::InvalidContentType,
            "send the body as JSON with `Content-Type: application/json`",
        ));
    }
    let bytes = Bytes::from_request(req, state).await.map_err(|r| match r.status().as_u16() {
        413 => ApiError::TooLarge("the request body is larger than allowed".into()),
        _ => ApiError::new(Code::InvalidBody, "the request body could not be read"),
    })?;
    String::from_utf8(bytes.into())
        .map_err(|e| ApiError::new(Code::InvalidJson, format!("the body is not UTF-8: {}", e.utf8_error())))
}

fn is_json(headers: &axum::http::HeaderMap) -> bool {
    let Some(ct) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else { return false };
    let essence = ct.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Parses `text` into a `T`, refusing unstorable text; errors name the field under `prefix`
/// (`items[3]` for a batch item, empty for a whole body).
pub(crate) fn parse<T: DeserializeOwned>(text: &str, prefix: &str) -> Result<T, ApiError> {
    let value: Value = serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_str(text))
        .map_err(|e| ApiError::new(Code::InvalidJson, at(prefix, &e.path().to_string(), e.inner())))?;
    storable(&value, &mut prefix.to_owned())?;
    serde_path_to_error::deserialize(value)
        .map_err(|e| ApiError::new(Code::InvalidJson, at(prefix, &e.path().to_string(), e.inner())))
}

/// "`items[2].text`: problem", or just the problem for the body as a whole.
pub(crate) fn at(prefix: &str, path: &str, problem: impl std::fmt::Display) -> String {
    let path = match (prefix, path) {
        (p, ".") | (p, "") => p.to_owned(),
        ("", q) => q.to_owned(),
        (p, q) if q.starts_with('[') => format!("{p}{q}"),
        (p, q) => format!("{p}.{q}"),
    };
    if path.is_empty() { problem.to_string() } else { format!("`{path}`: {problem}") }
}

/// Refuses the first string or object key holding a NUL character, naming where it is.
fn storable(v: &Value, path: &mut String) -> Result<(), ApiError> {
    let refuse = |path: &str| {
        ApiError::new(
            Code::UnstorableText,
            at(path, "", "contains a NUL character (U+0000), which cannot be stored; remove it"),
        )
    };
    match v {
        Value::String(s) if s.contains('\0') => Err(refuse(path)),
        Value::Array(items) => items.iter().enumerate().try_for_each(|(i, item)| {
            let len = path.len();
            path.push_str(&format!("[{i}]"));
            storable(item, path)?;
            path.truncate(len);
            Ok(())
        }),
        Value::Object(map) => map.iter().try_for_each(|(k, item)| {
            let len = path.len();
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(k);
            if k.contains('\0') {
                return Err(refuse(path));
            }
            storable(item, path)?;
            path.truncate(len);
            Ok(())
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Body {
        #[allow(dead_code)]
        text: String,
        #[allow(dead_code)]
        n: u32,
    }

    fn message(text: &str, prefix: &str) -> String {
        parse::<Body>(text, prefix).unwrap_err().to_string()
    }

    #[test]
    fn nul_anywhere_is_refused_naming_the_field() {
        assert!(message(r#"{"text":"a\u0000b","n":1}"#, "").starts_with("`text`: contains a NUL"));
        let deep = r#"{"text":"a","n":1,"m":{"k":["x","\u0000"]}}"#;
        assert!(
            message(deep, "items[2]").starts_with("`items[2].m.k[1]`: contains a NUL"),
            "{}",
            message(deep, "items[2]")
        );
        assert!(message(r#"{"text":"a","n":1,"m":{"\u0000":1}}"#, "").starts_with("`m.\0`"));
    }

    #[test]
    fn lone_surrogates_and_wrong_types_name_the_field() {
        let m = message(r#"{"text":"\ud800","n":1}"#, "");
        assert!(m.starts_with("`text`: ") && m.contains("escape"), "{m}");
        assert!(message(r#"{"text":"a","n":"x"}"#, "items[0]").starts_with("`items[0].n`: "));
        assert!(parse::<Body>(r#"{"text":"a","n":1}"#, "").is_ok());
    }
}
