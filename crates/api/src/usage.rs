//! `GET /v1/usage?from=YYYY-MM-DD&to=YYYY-MM-DD`: sends accepted, sent and failed per day
//! (UTC), for Billing. Read from counters the ledger keeps, so it costs the same at any size.
//! An agency reads a client's usage through a grant holding `usage:read`.

use std::sync::Arc;

use axum::{Json, extract::State};
use chrono::{NaiveDate, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{ApiError, AppState, Code, auth::Auth};

/// The query string.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct Range {
    /// The first day; 29 days before `to` when absent.
    from: Option<String>,
    /// The last day; today (UTC) when absent.
    to: Option<String>,
}

/// Longest range one request may ask for, in days.
const MAX_DAYS: i64 = 366;

fn day(field: &'static str, value: Option<&str>) -> Result<Option<NaiveDate>, ApiError> {
    value
        .map(|v| {
            NaiveDate::parse_from_str(v, "%Y-%m-%d")
                .map_err(|_| ApiError::new(Code::InvalidQuery, format!("`{field}` must be a date, YYYY-MM-DD")))
        })
        .transpose()
}

/// `GET /v1/usage`.
pub(crate) async fn get(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    crate::json::ApiQuery(range): crate::json::ApiQuery<Range>,
) -> Result<Json<Value>, ApiError> {
    let to = day("to", range.to.as_deref())?.unwrap_or_else(|| Utc::now().date_naive());
    let from = day("from", range.from.as_deref())?.unwrap_or(to - chrono::Duration::days(29));
    if from > to || (to - from).num_days() >= MAX_DAYS {
        return Err(ApiError::new(
            Code::InvalidQuery,
            format!("`from` must not be after `to`, and the range at most {MAX_DAYS} days"),
        ));
    }
    let mut conn = state.begin(auth.workspace).await?;
    let days = mailroom_store::usage::days(&mut conn, auth.workspace, from, to).await?;
    let total = |f: fn(&mailroom_store::usage::UsageDay) -> i64| days.iter().map(f).sum::<i64>();
    Ok(Json(json!({
        "workspace_id": auth.workspace,
        "from": from,
        "to": to,
        "days": days.iter().map(|d| json!({ "day": d.day, "accepted": d.accepted, "sent": d.sent, "failed": d.failed }))
            .collect::<Vec<_>>(),
        "totals": { "accepted": total(|d| d.accepted), "sent": total(|d| d.sent), "failed": total(|d| d.failed) },
    })))
}
