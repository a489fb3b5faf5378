//! Errors of `weir-broadway`.

/// Errors of a pipeline: invalid configuration when it starts, and what can go wrong
/// talking to a running one.
///
/// # Examples
///
/// ```
/// use weir_broadway::{Error, ProcessorOptions};
///
/// let err = ProcessorOptions::<u8>::new().max_demand(0).validate().unwrap_err();
/// assert!(matches!(err, Error::InvalidOption { option: "processors.max_demand", .. }));
/// assert_eq!(err.to_string(), "processors.max_demand (0) must be greater than 0");
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An option has a value outside its valid range.
    #[error("{option} ({value}) {rule}")]
    InvalidOption {
        /// The option, as `section.option` (`processors.max_demand`, `batchers.batch_size`).
        option: &'static str,
        /// The rejected value.
        value: String,
        /// The rule the value breaks.
        rule: String,
    },
    /// The message was acknowledged already (after `ack_immediately`).
    #[error("the message was acknowledged already")]
    AlreadyAcknowledged,
    /// The pipeline is not running (it stopped, or is draining).
    #[error("pipeline is not running")]
    NotRunning,
    /// A stage of the pipeline failed (a bug in a stage: callbacks' errors and panics fail
    /// messages, not stages).
    #[error("stage {stage} failed: {reason}")]
    StageFailed {
        /// The stage's name.
        stage: String,
        /// Why it failed.
        reason: String,
    },
    /// A stage could not start.
    #[error(transparent)]
    Stage(#[from] weir_core::Error),
}

impl Error {
    pub(crate) fn invalid(
        option: &'static str,
        value: impl std::fmt::Display,
        rule: impl Into<String>,
    ) -> Self {
        Error::InvalidOption { option, value: value.to_string(), rule: rule.into() }
    }
}
