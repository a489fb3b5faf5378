//! What `handle_batch` is told about a batch.

use std::fmt;
use std::sync::Arc;

use crate::message::BatchKey;

/// A batch's batcher, key, partition, size and what closed it (Broadway's `BatchInfo`).
///
/// # Examples
///
/// ```
/// use weir_broadway::{BatchInfo, BatchKey, BatchTrigger};
///
/// let info = BatchInfo::new("sql", BatchKey::Default, None, 100, BatchTrigger::Size);
/// assert_eq!(info.to_string(), "batch of 100 from sql (key default) closed by size");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchInfo {
    /// The batcher's name.
    pub batcher: Arc<str>,
    /// The batch key of its messages.
    pub batch_key: BatchKey,
    /// The partition of its messages when the batcher has `partition_by`.
    pub partition: Option<usize>,
    /// The number of messages.
    pub size: usize,
    /// What closed it.
    pub trigger: BatchTrigger,
}

impl BatchInfo {
    /// A batch description (for tests of `handle_batch`).
    pub fn new(
        batcher: impl Into<Arc<str>>,
        batch_key: BatchKey,
        partition: Option<usize>,
        size: usize,
        trigger: BatchTrigger,
    ) -> Self {
        BatchInfo { batcher: batcher.into(), batch_key, partition, size, trigger }
    }
}

impl fmt::Display for BatchInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "batch of {} from {} (key {}", self.size, self.batcher, self.batch_key)?;
        if let Some(p) = self.partition {
            write!(f, ", partition {p}")?;
        }
        write!(f, ") closed by {}", self.trigger)
    }
}

/// What closed a batch.
///
/// # Examples
///
/// ```
/// use weir_broadway::BatchTrigger;
///
/// assert_eq!(BatchTrigger::Timeout.to_string(), "timeout");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BatchTrigger {
    /// It reached `batch_size` (or the size function said so).
    Size,
    /// `batch_timeout` passed since its first message.
    Timeout,
    /// A message in flush mode joined it.
    Flush,
    /// The pipeline is draining: partial batches are delivered.
    Drain,
}

impl BatchTrigger {
    /// The trigger's name, as in metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            BatchTrigger::Size => "size",
            BatchTrigger::Timeout => "timeout",
            BatchTrigger::Flush => "flush",
            BatchTrigger::Drain => "drain",
        }
    }
}

impl fmt::Display for BatchTrigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
