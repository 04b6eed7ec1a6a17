//! Rate limits per API key and per workspace, by route class, shared by every API replica
//! (the buckets live in PostgreSQL; see `mailroom_store::rate_limits`), and a stricter one on
//! failed authentications per source address. A request draws on its key's and its workspace's
//! bucket for its class in one statement; over either, it is answered 429 with `Retry-After`,
//! the IETF draft's `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`, and a JSON
//! error naming the limit. A valid key is never limited by someone else's failures: only failed
//! authentications draw on the source's bucket.

mod local;

use axum::{http::HeaderValue, response::Response};
use chrono::{DateTime, Utc};
use mailroom_store::rate_limits::{self, Draw, Drawn};
use serde_json::{Value, json};

use mailroom_domain::ApiKeyId;

use crate::{ApiError, AppState, auth::Auth};

pub use local::LocalBuckets;

/// A sustained rate and the burst allowed on top of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Requests per minute, sustained.
    pub per_minute: u32,
    /// Requests allowed at once (the bucket's size).
    pub burst: u32,
}

impl Rate {
    /// `per_minute`, with a burst of what `burst_secs` of it add up to (at least one).
    pub fn per_minute(per_minute: u32, burst_secs: u32) -> Self {
        let burst = (u64::from(per_minute) * u64::from(burst_secs) / 60).max(1);
        Self { per_minute: per_minute.max(1), burst: u32::try_from(burst).unwrap_or(u32::MAX) }
    }

    fn draw(self, bucket: String) -> Draw {
        let emission_secs = 60.0 / f64::from(self.per_minute);
        Draw { bucket, emission_secs, tolerance_secs: emission_secs * f64::from(self.burst) }
    }
}

/// What a route does, for its limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteClass {
    /// Creating sends (single and batch).
    Sends,
    /// Reading anything.
    Reads,
    /// Every other change: mailboxes, webhooks, keys, workspaces, grants, data keys.
    Writes,
}

impl RouteClass {
    /// The class of a route.
    pub fn of(method: &str, path: &str) -> Self {
        match (method, path) {
            ("GET", _) => Self::Reads,
            ("POST", "/v1/sends" | "/v1/sends/batch") => Self::Sends,
            _ => Self::Writes,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Sends => "sends",
            Self::Reads => "reads",
            Self::Writes => "writes",
        }
    }
}

/// The limits of one route class.
#[derive(Debug, Clone, Copy)]
pub struct ClassLimits {
    /// Per API key.
    pub key: Rate,
    /// Per workspace acted in (all its keys, and its parent's keys acting in it, together).
    pub workspace: Rate,
}

/// Every limit.
#[derive(Debug, Clone, Copy)]
pub struct RateLimits {
    /// `POST /v1/sends` and `/v1/sends/batch`.
    pub sends: ClassLimits,
    /// Every `GET`.
    pub reads: ClassLimits,
    /// Every other change.
    pub writes: ClassLimits,
    /// Failed authentications per source address.
    pub failed_auth: Rate,
}

impl Default for RateLimits {
    fn default() -> Self {
        let r =
            |key, workspace| ClassLimits { key: Rate::per_minute(key, 10), workspace: Rate::per_minute(workspace, 10) };
        // The same as the configuration's defaults (`rate_limits.*`, bursts of 10 s).
        Self { sends: r(600, 1_200), reads: r(1_200, 2_400), writes: r(60, 120), failed_auth: Rate::per_minute(30, 10) }
    }
}

impl RateLimits {
    fn of(&self, class: RouteClass) -> ClassLimits {
        match class {
            RouteClass::Sends => self.sends,
            RouteClass::Reads => self.reads,
            RouteClass::Writes => self.writes,
        }
    }
}

/// Where a request stands against the limit closest to being reached.
#[derive(Debug, Clone)]
pub struct Standing {
    /// The limit, in words (`reads per API key`).
    pub name: String,
    /// Its rate.
    pub rate: Rate,
    /// Requests left in the burst after this one.
    pub remaining: u32,
    /// When the bucket is full again.
    pub reset_at: DateTime<Utc>,
    /// Seconds until the bucket is full again.
    pub reset_secs: u64,
    /// Seconds until one more request fits (denied requests only).
    pub retry_after_secs: u64,
}

/// Where a request stands against one bucket whose theoretical arrival time is `ahead` seconds
/// past `now`. A bucket that would have taken a request that another refused did not move, and
/// still has its room.
fn standing(name: String, rate: Rate, allowed: bool, ahead: f64, now: DateTime<Utc>) -> Standing {
    let emission = 60.0 / f64::from(rate.per_minute);
    let ahead = ahead.max(0.0);
    let tolerance = emission * f64::from(rate.burst);
    let left = ((tolerance - ahead) / emission).floor().max(0.0) as u32;
    let remaining = if allowed { left } else { 0 };
    let retry = if allowed { 0.0 } else { (ahead + emission - tolerance).max(0.0) };
    Standing {
        name,
        rate,
        remaining,
        reset_at: now + chrono::Duration::milliseconds((ahead * 1e3) as i64),
        reset_secs: ahead.ceil() as u64,
        retry_after_secs: retry.ceil().max(1.0) as u64,
    }
}

fn drawn_standing(name: String, rate: Rate, d: &Drawn) -> Standing {
    let ahead = (d.tat - d.now).num_milliseconds() as f64 / 1e3;
    standing(name, rate, d.allowed, ahead, d.now)
}

/// Draws a keyed request on its key's and its workspace's buckets for `class`.
pub(crate) async fn admit(state: &AppState, auth: &Auth, class: RouteClass) -> Result<Option<Standing>, ApiError> {
    let Some(limits) = &state.limits.rate else { return Ok(None) };
    let l = limits.of(class);
    let c = class.name();
    let asked = [
        (format!("{c} per API key"), l.key, format!("key:{}:{c}", auth.key)),
        (format!("{c} per workspace"), l.workspace, format!("workspace:{}:{c}", auth.workspace)),
    ];
    decide(state, &asked).await.map(Some)
}

/// Draws a request of a valid key that was refused before reaching its workspace on the key's
/// own bucket for `class`.
pub(crate) async fn admit_key(state: &AppState, key: ApiKeyId, class: RouteClass) -> Result<(), ApiError> {
    let Some(limits) = &state.limits.rate else { return Ok(()) };
    let c = class.name();
    let rate = limits.of(class).key;
    decide(state, &[(format!("{c} per API key"), rate, format!("key:{key}:{c}"))]).await.map(|_| ())
}

/// Draws a failed authentication on its source address's bucket: over the limit, the caller
/// answers 429 instead of 401. This process's own bucket is asked first, so a flood costs no
/// database round trip; then the bucket every replica shares. An IPv6 source counts by its
/// /64 (one host holds a whole /64).
pub(crate) async fn failed_auth(state: &AppState, source: &str) -> Result<(), ApiError> {
    let Some(limits) = &state.limits.rate else { return Ok(()) };
    let name = "failed authentications per source address".to_owned();
    let bucket = format!("source:{}", source_prefix(source));
    if let Err(wait) = state.local_limits.take(&bucket, limits.failed_auth) {
        let emission = 60.0 / f64::from(limits.failed_auth.per_minute);
        let ahead = wait.as_secs_f64() + emission * f64::from(limits.failed_auth.burst) - emission;
        return Err(ApiError::RateLimited(Box::new(standing(name, limits.failed_auth, false, ahead, Utc::now()))));
    }
    decide(state, &[(name, limits.failed_auth, bucket)]).await.map(|_| ())
}

/// An address as it is limited: IPv4 whole, IPv6 by its /64, anything else as given.
fn source_prefix(source: &str) -> String {
    match source.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        Ok(ip) => ip.to_canonical().to_string(),
        Err(_) => source.to_owned(),
    }
}

async fn decide(state: &AppState, asked: &[(String, Rate, String)]) -> Result<Standing, ApiError> {
    let draws: Vec<Draw> = asked.iter().map(|(_, rate, bucket)| rate.draw(bucket.clone())).collect();
    let mut conn = state.pool.acquire().await?;
    let drawn = rate_limits::draw(&mut conn, &draws).await?;
    if drawn.len() != asked.len() {
        return Err(ApiError::Internal("a rate-limit bucket did not answer".into()));
    }
    let mut standings: Vec<(bool, Standing)> = asked
        .iter()
        .zip(&drawn)
        .map(|((name, rate, _), d)| (d.allowed, drawn_standing(name.clone(), *rate, d)))
        .collect();
    // The tightest: a denial first (the longest wait among denials, so a retry at
    // `Retry-After` is not refused by the other bucket), then the fewest requests left.
    standings.sort_by_key(|(allowed, s)| (*allowed, std::cmp::Reverse(s.retry_after_secs), s.remaining));
    match standings.into_iter().next() {
        Some((false, s)) => Err(ApiError::RateLimited(Box::new(s))),
        Some((true, s)) => Ok(s),
        None => Err(ApiError::Internal("no rate limit was asked".into())),
    }
}

/// Deletes full buckets once a minute, for as long as the API serves (every replica does it;
/// a bucket deleted twice is no harm).
pub(crate) async fn prune_buckets(pool: mailroom_store::PgPool) {
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(60)).await;
        let pruned = async { rate_limits::prune(&mut *pool.acquire().await?).await }.await;
        if let Err(e) = pruned {
            tracing::warn!(error = %e, "could not prune rate-limit buckets; will try again");
        }
    }
}

impl Standing {
    /// Writes the IETF draft's headers (and `Retry-After` on a denial).
    pub(crate) fn write_headers(&self, resp: &mut Response, denied: bool) {
        let h = resp.headers_mut();
        for (name, value) in [
            ("ratelimit-limit", self.rate.burst.into()),
            ("ratelimit-remaining", u64::from(self.remaining)),
            ("ratelimit-reset", self.reset_secs),
        ] {
            h.insert(name, HeaderValue::from(value));
        }
        if denied {
            h.insert("retry-after", HeaderValue::from(self.retry_after_secs));
        }
    }

    /// The 429's details: the limit, the usage, the reset time.
    pub(crate) fn details(&self) -> Value {
        json!({
            "limit": { "name": self.name, "per_minute": self.rate.per_minute, "burst": self.rate.burst },
            "usage": { "used": self.rate.burst - self.remaining, "remaining": self.remaining },
            "reset_at": self.reset_at,
            "retry_after_secs": self.retry_after_secs,
        })
    }
}
