//! Errors of `weir-flow`.

use weir_core::ExitReason;

/// Errors of a flow: invalid options at build time, a stage that failed at run time.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use weir_flow::{Error, Flow};
///
/// let err = Flow::from_enumerable(0..10u32).stages(0).collect::<Vec<_>>().await.unwrap_err();
/// assert_eq!(err.to_string(), "stages (0) must be greater than 0");
/// # }
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
    /// Starting the stages failed.
    #[error(transparent)]
    Stage(#[from] weir_core::Error),
    /// A stage of the flow failed (a user function returned an error or panicked).
    #[error("flow failed: {0}")]
    Failed(ExitReason),
    /// A blocking run could not start its runtime.
    #[error("cannot start a tokio runtime: {0}")]
    Runtime(String),
}
