//! Mailbox pacing through the API: set on connect (`"pacing": {...}`) or replaced with
//! `PUT /v1/mailboxes/{id}/pacing`.

use std::{sync::Arc, time::Duration};

use axum::{
    Json,
    extract::{Path, State},
};
use mailroom_domain::{
    MailboxId,
    pacing::{Pacing, SendWindow},
};
use mailroom_store::{mailboxes::MailboxRow, pacing::PacingRow};
use serde::Deserialize;

use crate::views::PacingView;
use crate::{ApiError, AppState, Code, auth::Auth, json::ApiJson};

fn default_cap() -> Option<u32> {
    Pacing::default_for_new_mailbox().daily_cap
}
fn default_gap() -> f64 {
    Pacing::default_for_new_mailbox().min_gap.as_secs_f64()
}
fn default_jitter() -> f64 {
    Pacing::default_for_new_mailbox().jitter.as_secs_f64()
}
fn default_sessions() -> u32 {
    Pacing::default_for_new_mailbox().max_sessions
}

/// A send window: local times and an IANA zone.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct WindowRequest {
    start: String,
    end: String,
    time_zone: String,
}

/// Pacing as the client writes it. A missing field takes its default; `"daily_cap": null`
/// removes the cap.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PacingRequest {
    #[serde(default = "default_cap")]
    daily_cap: Option<u32>,
    #[serde(default = "default_gap")]
    min_gap_secs: f64,
    #[serde(default = "default_jitter")]
    jitter_secs: f64,
    #[serde(default)]
    window: Option<WindowRequest>,
    #[serde(default = "default_sessions")]
    max_sessions: u32,
}

fn invalid(field: &str, problem: impl std::fmt::Display) -> ApiError {
    ApiError::new(Code::InvalidField, format!("`pacing.{field}`: {problem}"))
}

fn seconds(field: &str, v: f64) -> Result<Duration, ApiError> {
    if !v.is_finite() || !(0.0..=86_400.0).contains(&v) {
        return Err(invalid(field, "must be 0 to 86400 seconds"));
    }
    Ok(Duration::from_secs_f64(v))
}

impl PacingRequest {
    /// Validates the request into domain pacing.
    pub(crate) fn parse(&self) -> Result<Pacing, ApiError> {
        if self.daily_cap.is_some_and(|c| c == 0 || c > 100_000) {
            return Err(invalid("daily_cap", "must be 1 to 100000, or null for no cap"));
        }
        if !(1..=100).contains(&self.max_sessions) {
            return Err(invalid("max_sessions", "must be 1 to 100"));
        }
        let window = match &self.window {
            Some(w) => Some(SendWindow::parse(&w.start, &w.end, &w.time_zone).map_err(|e| invalid("window", e))?),
            None => None,
        };
        Ok(Pacing {
            daily_cap: self.daily_cap,
            min_gap: seconds("min_gap_secs", self.min_gap_secs)?,
            jitter: seconds("jitter_secs", self.jitter_secs)?,
            window,
            max_sessions: self.max_sessions,
        })
    }
}

/// The pacing part of a mailbox view.
pub(crate) fn view(m: &MailboxRow) -> PacingView {
    crate::views::MailboxView::of(m).pacing
}

/// Writes domain pacing into a mailbox row about to be inserted.
pub(crate) fn apply(row: &mut MailboxRow, p: &Pacing) {
    let r = PacingRow::from_domain(p);
    row.daily_cap = r.daily_cap;
    row.min_gap_ms = r.min_gap_ms;
    row.jitter_ms = r.jitter_ms;
    row.window_start = r.window_start;
    row.window_end = r.window_end;
    row.time_zone = r.time_zone;
    row.max_sessions = r.max_sessions;
}

/// `PUT /v1/mailboxes/{id}/pacing`: replaces the mailbox's pacing.
pub(crate) async fn put(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<PacingRequest>,
) -> Result<Json<PacingView>, ApiError> {
    let id: MailboxId = id.parse().map_err(|_| ApiError::NotFound("mailbox"))?;
    let pacing = req.parse()?;
    let mut tx = state.begin(auth.workspace).await?;
    if !mailroom_store::pacing::set(&mut tx, auth.workspace, id, &PacingRow::from_domain(&pacing)).await? {
        return Err(ApiError::NotFound("mailbox"));
    }
    let row =
        mailroom_store::mailboxes::get(&mut tx, auth.workspace, id).await?.ok_or(ApiError::NotFound("mailbox"))?;
    mailroom_store::audit::record(
        &mut tx,
        Some(auth.workspace),
        &auth.actor(),
        "mailbox.pacing",
        Some(&id.to_string()),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(view(&row)))
}
