//! Exponential backoff with full jitter, as a pure function of its random input.

use std::time::Duration;

/// How retry delays grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The delay before the first retry, before jitter.
    pub base: Duration,
    /// The largest delay, before jitter.
    pub cap: Duration,
}

impl Backoff {
    /// The delay before retry number `attempt` (1-based). `unit` is a random number in
    /// `[0, 1)`: the delay is drawn from the upper half of the exponential step, so retries
    /// spread out without ever collapsing to zero.
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let exp = 2u32.saturating_pow(attempt.saturating_sub(1).min(30));
        let step = self.base.saturating_mul(exp).min(self.cap);
        let unit = unit.clamp(0.0, 1.0);
        step.mul_f64(0.5 + unit / 2.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_exponentially_up_to_the_cap() {
        let b = Backoff { base: Duration::from_secs(10), cap: Duration::from_secs(60) };
        assert_eq!(b.delay(1, 1.0), Duration::from_secs(10));
        assert_eq!(b.delay(2, 1.0), Duration::from_secs(20));
        assert_eq!(b.delay(3, 1.0), Duration::from_secs(40));
        assert_eq!(b.delay(9, 1.0), Duration::from_secs(60));
        assert_eq!(b.delay(2, 0.0), Duration::from_secs(10));
        assert_eq!(b.delay(u32::MAX, 0.5), Duration::from_secs(45));
    }
}
