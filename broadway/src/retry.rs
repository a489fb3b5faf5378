//! Retrying failed messages with exponential backoff.

use std::time::Duration;

use rand::Rng;

use crate::error::Error;
use crate::message::{Failure, Message};

/// How often, and after how long, a failed message is tried again before it goes to
/// `handle_failed` (a dead letter). Applies to `handle_message` in processors and to
/// `handle_batch` in batch processors (with the batch's failed messages). The stage waits
/// out the backoff, so its other messages wait too: keep backoffs short, or leave retries
/// to the source (requeue) for long ones.
///
/// The n-th retry waits `initial_backoff * multiplier^(n-1)`, at most `max_backoff`; with
/// jitter (the default) a random time between half of that and all of it, so retries of
/// many messages spread out.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use weir_broadway::RetryPolicy;
///
/// let policy = RetryPolicy::new(3)
///     .backoff(Duration::from_millis(100), Duration::from_secs(2))
///     .multiplier(2.0)
///     .jitter(false);
/// assert_eq!(policy.delay(1), Duration::from_millis(100));
/// assert_eq!(policy.delay(2), Duration::from_millis(200));
/// assert_eq!(policy.delay(9), Duration::from_secs(2));
/// assert!(RetryPolicy::new(0).validate().is_err());
/// ```
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    max_attempts: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    multiplier: f64,
    jitter: bool,
    retryable: fn(&Failure) -> bool,
}

impl RetryPolicy {
    /// At most `max_attempts` tries in all (1 = no retry); backoff 100 ms doubling up to
    /// 10 s, with jitter.
    pub fn new(max_attempts: u32) -> Self {
        RetryPolicy {
            max_attempts,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            multiplier: 2.0,
            jitter: true,
            retryable: |_| true,
        }
    }

    /// Retries only the failures `retryable` accepts (default: every failure), e.g. a
    /// database error in `handle_batch` but not a malformed message:
    ///
    /// ```
    /// use weir_broadway::{Failure, RetryPolicy};
    ///
    /// let policy = RetryPolicy::new(5).retry_if(|f| matches!(f, Failure::Error { callback: "handle_batch", .. }));
    /// assert!(!policy.retries(&Failure::Failed("malformed".into())));
    /// ```
    #[must_use]
    pub fn retry_if(mut self, retryable: fn(&Failure) -> bool) -> Self {
        self.retryable = retryable;
        self
    }

    /// Whether a message that failed this way is tried again (attempts permitting).
    pub fn retries(&self, failure: &Failure) -> bool {
        (self.retryable)(failure)
    }

    /// Whether `message` gets another try.
    pub(crate) fn again<T>(&self, message: &Message<T>) -> bool {
        message.attempts() < self.max_attempts && message.failure().is_some_and(|f| self.retries(f))
    }

    /// The wait before the first retry, and the longest wait.
    #[must_use]
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max;
        self
    }

    /// How much each wait grows.
    #[must_use]
    pub fn multiplier(mut self, multiplier: f64) -> Self {
        self.multiplier = multiplier;
        self
    }

    /// Whether waits are randomized.
    #[must_use]
    pub fn jitter(mut self, jitter: bool) -> Self {
        self.jitter = jitter;
        self
    }

    /// The most tries of one message.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The wait before retry number `retry` (1 for the first retry).
    pub fn delay(&self, retry: u32) -> Duration {
        let exponent = i32::try_from(retry.saturating_sub(1)).unwrap_or(i32::MAX);
        let max = self.max_backoff.as_secs_f64();
        let full = (self.initial_backoff.as_secs_f64() * self.multiplier.powi(exponent)).min(max);
        let wait = if self.jitter { rand::thread_rng().gen_range(full / 2.0..=full) } else { full };
        Duration::try_from_secs_f64(wait).unwrap_or(self.max_backoff)
    }

    /// Checks the values.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`] for zero attempts, an initial backoff above the maximum, or
    /// a multiplier below 1.
    pub fn validate(&self) -> Result<(), Error> {
        if self.max_attempts == 0 {
            return Err(Error::invalid("retry.max_attempts", 0, "must be at least 1"));
        }
        if self.initial_backoff > self.max_backoff {
            return Err(Error::invalid(
                "retry.initial_backoff",
                format!("{:?}", self.initial_backoff),
                format!("must not exceed max_backoff ({:?})", self.max_backoff),
            ));
        }
        if !(self.multiplier >= 1.0 && self.multiplier.is_finite()) {
            return Err(Error::invalid("retry.multiplier", self.multiplier, "must be a finite number >= 1"));
        }
        Ok(())
    }
}
