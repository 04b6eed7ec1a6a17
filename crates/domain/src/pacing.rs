//! Mailbox pacing (docs/design.md section 5): how fast, how much and when a mailbox may send.
//!
//! The arithmetic lives here, pure; the store applies it under a lock on the mailbox row so
//! every worker process sees the same limits.

use std::{fmt, time::Duration};

use chrono::{DateTime, Days, LocalResult, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

/// Why a pacing setting was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacingError {
    /// Not an `HH:MM` time.
    #[error("`{0}` is not a time of day in HH:MM form")]
    Time(String),
    /// Not an IANA time-zone name.
    #[error("`{0}` is not an IANA time zone such as Europe/Paris")]
    TimeZone(String),
    /// Start and end are the same.
    #[error("the send window is empty (start equals end)")]
    EmptyWindow,
}

/// The hours of the day, in the mailbox's own time zone, when it may send. A window whose end
/// is before its start runs across midnight.
#[derive(Clone, PartialEq, Eq)]
pub struct SendWindow {
    start: NaiveTime,
    end: NaiveTime,
    tz: Tz,
}

fn parse_time(s: &str) -> Result<NaiveTime, PacingError> {
    NaiveTime::parse_from_str(s, "%H:%M").map_err(|_| PacingError::Time(s.to_owned()))
}

impl SendWindow {
    /// Parses `09:00`, `17:30`, `Europe/Paris`.
    pub fn parse(start: &str, end: &str, tz: &str) -> Result<Self, PacingError> {
        let (start, end) = (parse_time(start)?, parse_time(end)?);
        let tz: Tz = tz.parse().map_err(|_| PacingError::TimeZone(tz.to_owned()))?;
        if start == end {
            return Err(PacingError::EmptyWindow);
        }
        Ok(Self { start, end, tz })
    }

    /// The window's start, end and zone as text.
    pub fn parts(&self) -> (String, String, String) {
        (self.start.format("%H:%M").to_string(), self.end.format("%H:%M").to_string(), self.tz.name().to_owned())
    }

    fn is_open_at(&self, time: NaiveTime) -> bool {
        if self.start < self.end {
            self.start <= time && time < self.end
        } else {
            time >= self.start || time < self.end
        }
    }

    /// The first instant at or after `t` inside the window.
    pub fn next_open(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        let local = t.with_timezone(&self.tz);
        if self.is_open_at(local.time()) {
            return t;
        }
        // Closed: the window opens at `start` today if that is still ahead, else tomorrow.
        let today = local.date_naive();
        let day = if local.time() < self.start { today } else { today.checked_add_days(Days::new(1)).unwrap_or(today) };
        let naive = day.and_time(self.start);
        let opened = match self.tz.from_local_datetime(&naive) {
            LocalResult::Single(x) | LocalResult::Ambiguous(x, _) => x,
            // The start falls in a daylight-saving gap: open when the clocks have moved on.
            LocalResult::None => {
                self.tz.from_local_datetime(&(naive + chrono::Duration::hours(1))).earliest().unwrap_or(local)
            }
        };
        opened.with_timezone(&Utc).max(t)
    }
}

impl fmt::Debug for SendWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (s, e, z) = self.parts();
        write!(f, "SendWindow({s}-{e} {z})")
    }
}

/// A mailbox's limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pacing {
    /// Most sends in any rolling 24 hours (`None`: no cap).
    pub daily_cap: Option<u32>,
    /// Least time between the starts of two sends.
    pub min_gap: Duration,
    /// Up to this much random time is added to each gap, so sends do not look machine-timed.
    pub jitter: Duration,
    /// When the mailbox may send (`None`: any time).
    pub window: Option<SendWindow>,
    /// Most attempts in flight at once for the mailbox, across all workers.
    pub max_sessions: u32,
}

impl Pacing {
    /// No limits beyond a session cap: for tests, demos and private relays.
    pub fn unlimited() -> Self {
        Self { daily_cap: None, min_gap: Duration::ZERO, jitter: Duration::ZERO, window: None, max_sessions: 16 }
    }

    /// What a new mailbox gets unless told otherwise: gentle enough for a warmed-up mailbox of
    /// a cold-outreach sender (a few hundred a day, about one a minute).
    pub fn default_for_new_mailbox() -> Self {
        Self {
            daily_cap: Some(400),
            min_gap: Duration::from_secs(60),
            jitter: Duration::from_secs(60),
            window: None,
            max_sessions: 2,
        }
    }

    /// The gap to leave after a send, for a random `unit` in `[0, 1)`.
    pub fn gap(&self, unit: f64) -> Duration {
        self.min_gap + self.jitter.mul_f64(unit.clamp(0.0, 1.0))
    }

    /// The first instant at or after `t` inside the send window.
    pub fn next_open(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        self.window.as_ref().map_or(t, |w| w.next_open(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn an_open_window_leaves_the_time_alone() {
        let w = SendWindow::parse("09:00", "17:00", "Europe/Paris").unwrap();
        // 10:00 UTC is 11:00 in Paris in November.
        assert_eq!(w.next_open(at("2026-11-23T10:00:00Z")), at("2026-11-23T10:00:00Z"));
    }

    #[test]
    fn a_closed_window_opens_at_the_next_local_start() {
        let w = SendWindow::parse("09:00", "17:00", "Europe/Paris").unwrap();
        // 17:30 Paris: tomorrow 09:00 Paris = 08:00 UTC.
        assert_eq!(w.next_open(at("2026-11-23T16:30:00Z")), at("2026-11-24T08:00:00Z"));
        // 06:00 Paris: today 09:00 Paris.
        assert_eq!(w.next_open(at("2026-11-23T05:00:00Z")), at("2026-11-23T08:00:00Z"));
        let ny = SendWindow::parse("09:00", "17:00", "America/New_York").unwrap();
        assert_eq!(ny.next_open(at("2026-07-01T12:00:00Z")), at("2026-07-01T13:00:00Z"));
    }

    #[test]
    fn a_window_across_midnight_is_open_on_both_sides_of_it() {
        let w = SendWindow::parse("22:00", "02:00", "UTC").unwrap();
        assert_eq!(w.next_open(at("2026-11-23T23:30:00Z")), at("2026-11-23T23:30:00Z"));
        assert_eq!(w.next_open(at("2026-11-23T01:00:00Z")), at("2026-11-23T01:00:00Z"));
        assert_eq!(w.next_open(at("2026-11-23T12:00:00Z")), at("2026-11-23T22:00:00Z"));
    }

    #[test]
    fn bad_settings_are_named() {
        assert_eq!(SendWindow::parse("9am", "17:00", "UTC"), Err(PacingError::Time("9am".into())));
        assert_eq!(SendWindow::parse("09:00", "17:00", "Mars/Base"), Err(PacingError::TimeZone("Mars/Base".into())));
        assert_eq!(SendWindow::parse("09:00", "09:00", "UTC"), Err(PacingError::EmptyWindow));
    }

    #[test]
    fn the_gap_adds_jitter_within_bounds() {
        let p = Pacing { jitter: Duration::from_secs(10), ..Pacing::default_for_new_mailbox() };
        assert_eq!(p.gap(0.0), Duration::from_secs(60));
        assert_eq!(p.gap(0.5), Duration::from_secs(65));
    }
}
