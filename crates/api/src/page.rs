//! Cursor pages: `?after=<next of the previous page>&limit=1..1000`, one reading for every
//! listing that pages by an increasing position.

use serde::Deserialize;

use crate::{ApiError, Code};

/// The query string of a paged listing.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct Page {
    /// The `next` of the previous page; from the beginning when absent.
    after: Option<String>,
    /// At most this many (1 to 1000, default 100).
    limit: Option<i64>,
}

impl Page {
    /// A page from its two parameters, read off a larger query.
    pub(crate) fn new(after: Option<String>, limit: Option<i64>) -> Self {
        Self { after, limit }
    }

    /// The position to read after and how many to read, or a 400 naming the parameter.
    pub(crate) fn bounds(&self) -> Result<(i64, i64), ApiError> {
        let after = match self.after.as_deref() {
            None | Some("") => 0,
            Some(c) => c.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                ApiError::new(Code::InvalidCursor, "`after` must be the `next` value of an earlier page")
            })?,
        };
        let limit = self.limit.unwrap_or(100);
        if !(1..=1000).contains(&limit) {
            return Err(ApiError::new(Code::InvalidLimit, "`limit` must be 1 to 1000"));
        }
        Ok((after, limit))
    }
}
