//! This process's own GCRA buckets, in memory: the first gate for failed authentications, so
//! a flood of bad tokens from one address is refused without a database round trip (the shared
//! bucket in PostgreSQL then holds the limit across replicas).

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use super::Rate;

/// In-memory buckets: name → theoretical arrival time.
#[derive(Debug, Default)]
pub struct LocalBuckets(Mutex<HashMap<String, Instant>>);

impl LocalBuckets {
    /// The most buckets kept; past it, full ones are dropped first, then everything.
    const MAX: usize = 10_000;

    /// Takes one request from `bucket` at `rate`: `Ok` when it fits, else how long until one
    /// would.
    pub(crate) fn take(&self, bucket: &str, rate: Rate) -> Result<(), Duration> {
        let emission = Duration::from_secs(60) / rate.per_minute;
        let tolerance = emission * rate.burst;
        let now = Instant::now();
        let mut map = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= Self::MAX {
            map.retain(|_, tat| *tat > now);
            if map.len() >= Self::MAX {
                map.clear();
            }
        }
        let tat = map.get(bucket).copied().unwrap_or(now).max(now);
        let next = tat + emission;
        if next - now > tolerance {
            return Err(next - now - tolerance);
        }
        map.insert(bucket.to_owned(), next);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_refusals_with_the_wait() {
        let local = LocalBuckets::default();
        let rate = Rate { per_minute: 6, burst: 3 };
        for _ in 0..3 {
            assert!(local.take("a", rate).is_ok());
        }
        let wait = local.take("a", rate).unwrap_err();
        assert!(wait > Duration::from_secs(9) && wait <= Duration::from_secs(10), "{wait:?}");
        assert!(local.take("b", rate).is_ok(), "another bucket is its own");
    }
}
