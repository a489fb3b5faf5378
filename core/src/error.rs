//! Errors and exit reasons of stages.

use std::fmt;
use std::sync::Arc;

/// A boxed error returned by user callbacks.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors returned by `weir-core`.
///
/// # Examples
///
/// ```
/// use weir_core::{Error, SubscribeOptions};
///
/// let err = SubscribeOptions::<u64>::new().max_demand(0).validate().unwrap_err();
/// assert!(matches!(err, Error::InvalidOption { option: "max_demand", .. }));
/// assert_eq!(err.to_string(), "max_demand (0) must be greater than 0");
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An option has a value outside its valid range.
    #[error("{option} ({value}) {rule}")]
    InvalidOption {
        /// The option's name, as the builder method is named.
        option: &'static str,
        /// The rejected value.
        value: String,
        /// The rule the value breaks.
        rule: String,
    },
    /// The stage addressed is not running (it never started or has stopped).
    #[error("stage is not running")]
    StageStopped,
    /// A partition dispatcher already has a consumer on this partition.
    #[error("partition {partition} already has a consumer")]
    PartitionTaken {
        /// The partition asked for.
        partition: String,
    },
    /// A partition dispatcher has no partition of this name or index.
    #[error("unknown partition {partition} (the dispatcher has partitions {known})")]
    UnknownPartition {
        /// The partition asked for.
        partition: String,
        /// The partitions the dispatcher has.
        known: String,
    },
    /// A consumer subscribed to a partition dispatcher without naming a partition.
    #[error("partition is required: the producer uses a partition dispatcher")]
    MissingPartition,
    /// The same consumer subscribed twice to a broadcast dispatcher.
    #[error("consumer is already subscribed to this broadcast producer")]
    AlreadySubscribed,
    /// A dispatcher refused a subscription for its own reason (for dispatchers users write).
    #[error("subscription refused: {0}")]
    Refused(String),
    /// The stage dropped a call's reply without answering.
    #[error("the stage dropped the reply to a call without answering")]
    NoReply,
    /// A user callback returned an error.
    #[error("{callback} failed: {source}")]
    Callback {
        /// The callback that failed, e.g. `handle_events`.
        callback: &'static str,
        /// The error it returned.
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
    /// A user callback panicked.
    #[error("{callback} panicked: {message}")]
    Panicked {
        /// The callback that panicked, e.g. `handle_events`.
        callback: &'static str,
        /// The panic message.
        message: String,
    },
    /// A supervisor restarted children more often than its restart intensity allows.
    #[error("restart intensity exceeded: more than {max_restarts} restarts in {max_seconds:?}")]
    RestartIntensity {
        /// The configured maximum number of restarts.
        max_restarts: usize,
        /// The configured period.
        max_seconds: std::time::Duration,
    },
    /// A stage stopped because a peer stopped, with the peer's reason.
    #[error("stage exited: {0}")]
    Exited(ExitReason),
    /// `weir` was used outside a tokio runtime.
    #[error("no tokio runtime: stages must be started from within a tokio runtime")]
    NoRuntime,
}

impl Error {
    pub(crate) fn invalid(option: &'static str, value: impl fmt::Display, rule: impl Into<String>) -> Self {
        Error::InvalidOption { option, value: value.to_string(), rule: rule.into() }
    }
}

/// Why a stage stopped, or why a subscription ended.
///
/// Cancel modes and supervisors tell normal ends ([`ExitReason::Normal`],
/// [`ExitReason::Shutdown`]) from failures, as Erlang does with `:normal`/`:shutdown`
/// versus any other reason.
///
/// # Examples
///
/// ```
/// use weir_core::ExitReason;
///
/// assert!(!ExitReason::Normal.is_failure());
/// assert!(ExitReason::failed("boom").is_failure());
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ExitReason {
    /// The stage finished its work (a finite producer ran out of events).
    Normal,
    /// The stage was asked to stop.
    Shutdown,
    /// The stage failed.
    Failed(Arc<Error>),
}

impl ExitReason {
    /// A failure with a message.
    pub fn failed(message: impl Into<String>) -> Self {
        ExitReason::Failed(Arc::new(Error::Callback {
            callback: "stage",
            source: Arc::from(BoxError::from(message.into())),
        }))
    }

    /// Whether this reason is a failure (not `Normal` nor `Shutdown`).
    pub fn is_failure(&self) -> bool {
        matches!(self, ExitReason::Failed(_))
    }
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitReason::Normal => f.write_str("normal"),
            ExitReason::Shutdown => f.write_str("shutdown"),
            ExitReason::Failed(e) => write!(f, "failed: {e}"),
        }
    }
}

/// The message of a caught panic's payload.
///
/// # Examples
///
/// ```
/// let panic = std::panic::catch_unwind(|| panic!("boom {}", 1)).unwrap_err();
/// assert_eq!(weir_core::panic_message(&*panic), "boom 1");
/// ```
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_string())
}

impl From<Error> for ExitReason {
    fn from(e: Error) -> Self {
        ExitReason::Failed(Arc::new(e))
    }
}
