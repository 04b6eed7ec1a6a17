//! The suppression list over the API: `GET /v1/suppressions`, `POST /v1/suppressions`,
//! `POST /v1/suppressions/import` (CSV) and `DELETE /v1/suppressions/{address}`. Addresses are
//! matched in their normal form (see `mailroom_domain::suppression`).

use std::sync::Arc;

use axum::{
    Json,
    extract::{Path, State},
};
use mailroom_domain::{EmailAddress, SuppressionReason, mask_email, suppression::normalise};
use mailroom_store::suppressions::{self, Suppression};
use serde::Deserialize;

use crate::views::{SuppressionPage, SuppressionRemoved, SuppressionView, SuppressionsAdded};
use crate::{
    ApiError, AppState, Code,
    auth::Auth,
    json::{ApiJson, ApiQuery},
};

/// Most addresses one request adds or imports.
const MAX_ADDRESSES: usize = 10_000;

/// `GET /v1/suppressions?reason=&after=&limit=`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    reason: Option<String>,
    after: Option<String>,
    limit: Option<i64>,
}

pub(crate) fn view(s: &Suppression) -> SuppressionView {
    SuppressionView::of(s)
}

fn reason(given: Option<&str>, field: &str) -> Result<Option<SuppressionReason>, ApiError> {
    given.map(|r| r.parse().map_err(|e| ApiError::new(Code::InvalidQuery, format!("`{field}`: {e}")))).transpose()
}

/// `GET /v1/suppressions`: by address; `next` is the last address of a full page.
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<SuppressionPage>, ApiError> {
    let kind = reason(q.reason.as_deref(), "reason")?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::new(Code::InvalidLimit, "`limit` must be 1 to 1000"));
    }
    let after = q.after.as_deref().map(normalise).unwrap_or_default();
    let mut tx = state.begin(auth.workspace).await?;
    let rows = suppressions::page(&mut tx, auth.workspace, kind, &after, limit).await?;
    let full = i64::try_from(rows.len()).unwrap_or(i64::MAX) == limit;
    let next = rows.last().filter(|_| full).map(|s| s.address.clone());
    Ok(Json(SuppressionPage { suppressions: rows.iter().map(view).collect(), next }))
}

/// `{"addresses": [...], "reason"?: "manual"|"unsubscribe"|"complaint"|"hard_bounce", "detail"?}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AddRequest {
    addresses: Vec<String>,
    reason: Option<String>,
    detail: Option<String>,
}

/// The reasons a person may give; `erased` is the erasure's own.
fn given_reason(r: Option<&str>, field: &str) -> Result<SuppressionReason, ApiError> {
    let parsed = r.map(str::parse::<SuppressionReason>).transpose();
    match parsed {
        Ok(None) => Ok(SuppressionReason::Manual),
        Ok(Some(SuppressionReason::Erased)) | Err(_) => Err(ApiError::new(
            Code::InvalidField,
            format!("`{field}` must be one of manual, unsubscribe, complaint, hard_bounce"),
        )),
        Ok(Some(r)) => Ok(r),
    }
}

/// Checks every address (all or nothing), naming the first bad one.
fn addresses(given: &[String], name: impl Fn(usize) -> String) -> Result<Vec<String>, ApiError> {
    if given.is_empty() || given.len() > MAX_ADDRESSES {
        return Err(ApiError::new(Code::InvalidField, format!("1 to {MAX_ADDRESSES} addresses per request")));
    }
    given
        .iter()
        .enumerate()
        .map(|(i, a)| {
            EmailAddress::parse(a.trim())
                .map(|e| normalise(e.as_str()))
                .map_err(|e| ApiError::new(Code::InvalidField, format!("`{}`: {e}", name(i))))
        })
        .collect()
}

/// `POST /v1/suppressions` → `{"added", "already"}`.
pub(crate) async fn add(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    ApiJson(req): ApiJson<AddRequest>,
) -> Result<Json<SuppressionsAdded>, ApiError> {
    let kind = given_reason(req.reason.as_deref(), "reason")?;
    let detail = crate::cancel::reason(req.detail, "added through the API")?;
    let list = addresses(&req.addresses, |i| format!("addresses[{i}]"))?;
    store(&state, &auth, &[(kind, list)], &detail, "suppressions.add").await
}

/// `POST /v1/suppressions/import`: CSV, one address per line with an optional second column,
/// the reason (`manual` when absent); a first line `address[,reason]` is a header.
pub(crate) async fn import(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    body: String,
) -> Result<Json<SuppressionsAdded>, ApiError> {
    if body.contains('\0') {
        return Err(ApiError::new(Code::UnstorableText, "the CSV holds a NUL character"));
    }
    let mut by_reason: Vec<(SuppressionReason, Vec<String>)> = vec![];
    let mut rows = 0;
    for (n, line) in body.lines().enumerate().map(|(i, l)| (i + 1, l.trim())) {
        if line.is_empty() || (n == 1 && line.to_ascii_lowercase().starts_with("address")) {
            continue;
        }
        let mut cells = line.splitn(2, ',').map(|c| c.trim().trim_matches('"'));
        let address = cells.next().unwrap_or_default();
        let kind = given_reason(cells.next().filter(|c| !c.is_empty()), &format!("line {n}: reason"))?;
        let one = addresses(&[address.to_owned()], |_| format!("line {n}"))?;
        rows += 1;
        match by_reason.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, list)) => list.extend(one),
            None => by_reason.push((kind, one)),
        }
    }
    if rows == 0 || rows > MAX_ADDRESSES {
        return Err(ApiError::new(Code::InvalidField, format!("1 to {MAX_ADDRESSES} addresses per import")));
    }
    store(&state, &auth, &by_reason, "imported", "suppressions.import").await
}

/// Adds the lists in one transaction, audited with the count (never the addresses).
async fn store(
    state: &AppState,
    auth: &Auth,
    lists: &[(SuppressionReason, Vec<String>)],
    detail: &str,
    action: &str,
) -> Result<Json<SuppressionsAdded>, ApiError> {
    let mut tx = state.begin(auth.workspace).await?;
    let (mut added, mut asked) = (0, 0);
    for (kind, list) in lists {
        added += suppressions::add_many(&mut tx, auth.workspace, list, *kind, detail).await?;
        asked += list.iter().collect::<std::collections::HashSet<_>>().len() as u64;
    }
    let target = format!("{added} address(es) added");
    mailroom_store::audit::record(&mut tx, Some(auth.workspace), &auth.actor(), action, Some(&target)).await?;
    tx.commit().await?;
    Ok(Json(SuppressionsAdded { added, already: asked - added }))
}

/// `DELETE /v1/suppressions/{address}`: the address may be mailed again. 404 when not listed.
pub(crate) async fn remove(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(address): Path<String>,
) -> Result<Json<SuppressionRemoved>, ApiError> {
    let address = normalise(&address);
    let mut tx = state.begin(auth.workspace).await?;
    if !suppressions::remove(&mut tx, auth.workspace, &address).await? {
        return Err(ApiError::NotFound("suppression"));
    }
    let target = mask_email(&address).to_string();
    mailroom_store::audit::record(&mut tx, Some(auth.workspace), &auth.actor(), "suppressions.remove", Some(&target))
        .await?;
    tx.commit().await?;
    Ok(Json(SuppressionRemoved { address, removed: true }))
}
