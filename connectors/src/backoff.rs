//! Reconnection backoff shared by the sources.

use std::time::Duration;

use rand::Rng;

/// How long a source waits before reconnecting, after `n` failed attempts in a row
/// (Broadway's `backoff_type`, `backoff_min`, `backoff_max`).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use weir_connectors::Backoff;
///
/// let backoff = Backoff::exponential(Duration::from_millis(100), Duration::from_secs(2));
/// assert_eq!(backoff.delay(1), Duration::from_millis(100));
/// assert_eq!(backoff.delay(3), Duration::from_millis(400));
/// assert_eq!(backoff.delay(20), Duration::from_secs(2));
/// let random = Backoff::random_exponential(Duration::from_millis(100), Duration::from_secs(2));
/// assert!(random.delay(3) <= Duration::from_millis(400));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    random: bool,
}

impl Backoff {
    /// `min`, doubling after each failed attempt, at most `max`.
    pub fn exponential(min: Duration, max: Duration) -> Self {
        Backoff { min, max, random: false }
    }

    /// Like [`exponential`](Self::exponential), each wait a random time between `min` and
    /// it, so that many clients do not reconnect in step (the default: 1 s to 30 s).
    pub fn random_exponential(min: Duration, max: Duration) -> Self {
        Backoff { min, max, random: true }
    }

    /// The wait after `attempt` failed attempts (1 for the first).
    pub fn delay(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(31);
        let full = self.min.saturating_mul(1 << exponent).min(self.max);
        if self.random && full > self.min {
            rand::thread_rng().gen_range(self.min..=full)
        } else {
            full
        }
    }

    /// The shortest and the longest wait.
    pub fn bounds(&self) -> (Duration, Duration) {
        (self.min, self.max)
    }

    /// Checks `0 < min <= max`, naming `option` in the error.
    #[cfg(any(feature = "rabbitmq", feature = "sqs", feature = "kafka"))]
    pub(crate) fn validate(&self, option: &'static str) -> Result<(), crate::error::Error> {
        if self.min.is_zero() || self.min > self.max {
            let value = format!("{:?}..{:?}", self.min, self.max);
            return Err(crate::error::Error::invalid(option, value, "must have 0 < min <= max"));
        }
        Ok(())
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::random_exponential(Duration::from_secs(1), Duration::from_secs(30))
    }
}
