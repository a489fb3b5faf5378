//! Rate limiting across all producers of a pipeline.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::Error;

/// At most `allowed_messages` messages per `interval`, across all producers of a pipeline
/// (Broadway's `rate_limiting`). Messages over the limit wait in their producer until the
/// next interval.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use weir_broadway::RateLimit;
///
/// let limit = RateLimit::new(1_000, Duration::from_secs(1));
/// assert_eq!(limit.allowed_messages, 1_000);
/// assert!(limit.validate().is_ok());
/// assert_eq!(
///     RateLimit::new(0, Duration::from_secs(1)).validate().unwrap_err().to_string(),
///     "producer.rate_limit.allowed_messages (0) must be greater than 0"
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RateLimit {
    /// Messages allowed in each interval.
    pub allowed_messages: usize,
    /// The interval.
    pub interval: Duration,
}

impl RateLimit {
    /// `allowed_messages` per `interval`.
    pub fn new(allowed_messages: usize, interval: Duration) -> Self {
        RateLimit { allowed_messages, interval }
    }

    /// Checks both values.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`] when either is zero.
    pub fn validate(&self) -> Result<(), Error> {
        if self.allowed_messages == 0 {
            return Err(Error::invalid(
                "producer.rate_limit.allowed_messages",
                self.allowed_messages,
                "must be greater than 0",
            ));
        }
        if self.interval.is_zero() {
            return Err(Error::invalid(
                "producer.rate_limit.interval",
                format!("{:?}", self.interval),
                "must be greater than 0",
            ));
        }
        Ok(())
    }
}

/// The shared counter: a fixed window that starts when the first message of an interval
/// is let through.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    state: Mutex<Window>,
}

#[derive(Debug)]
struct Window {
    limit: RateLimit,
    /// A limit set while this window runs: it applies from the next window on (as
    /// documented by `Pipeline::update_rate_limit`), not to what is left of this one.
    next: Option<RateLimit>,
    start: Instant,
    used: usize,
}

impl RateLimiter {
    pub(crate) fn new(limit: RateLimit) -> Self {
        RateLimiter { state: Mutex::new(Window { limit, next: None, start: Instant::now(), used: 0 }) }
    }

    fn window(&self) -> std::sync::MutexGuard<'_, Window> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes up to `wanted` messages from the current interval. Returns how many may go
    /// now and, when that is less than `wanted`, when the next interval starts.
    pub(crate) fn take(&self, wanted: usize) -> (usize, Option<Instant>) {
        let mut w = self.window();
        let now = Instant::now();
        if now >= w.start + w.limit.interval {
            w.start = now;
            w.used = 0;
            if let Some(next) = w.next.take() {
                w.limit = next;
            }
        }
        let granted = wanted.min(w.limit.allowed_messages.saturating_sub(w.used));
        w.used += granted;
        let next = (granted < wanted).then(|| w.start + w.limit.interval);
        (granted, next)
    }

    /// The limit last set.
    pub(crate) fn limit(&self) -> RateLimit {
        let w = self.window();
        w.next.unwrap_or(w.limit)
    }

    pub(crate) fn set(&self, limit: RateLimit) {
        self.window().next = Some(limit);
    }
}
