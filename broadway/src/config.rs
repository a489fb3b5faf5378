//! Options of a pipeline's producers, processors and batchers, checked when it starts.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::error::Error;
use crate::message::Message;
use crate::rate_limit::RateLimit;

/// A function from a message to a partition hash (`partition_by`): messages with equal
/// hashes go to the same stage, in order.
pub(crate) type PartitionFn<T> = Arc<dyn Fn(&Message<T>) -> u64 + Send + Sync>;

/// Options of the producers.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use weir_broadway::{ProducerOptions, RateLimit};
///
/// let options = ProducerOptions::new()
///     .concurrency(2)
///     .rate_limit(RateLimit::new(100, Duration::from_secs(1)))
///     .max_restarts(3, Duration::from_secs(5));
/// assert!(options.validate().is_ok());
/// assert_eq!(
///     ProducerOptions::new().concurrency(0).validate().unwrap_err().to_string(),
///     "producer.concurrency (0) must be greater than 0"
/// );
/// ```
#[derive(Debug, Clone)]
pub struct ProducerOptions {
    pub(crate) concurrency: usize,
    pub(crate) rate_limit: Option<RateLimit>,
    pub(crate) max_restarts: usize,
    pub(crate) max_seconds: Duration,
}

impl Default for ProducerOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl ProducerOptions {
    /// One producer, no rate limit, at most 3 restarts in 5 seconds.
    pub fn new() -> Self {
        ProducerOptions {
            concurrency: 1,
            rate_limit: None,
            max_restarts: 3,
            max_seconds: Duration::from_secs(5),
        }
    }

    /// How many producer instances run (each from the factory).
    #[must_use]
    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency;
        self
    }

    /// At most `limit.allowed_messages` per `limit.interval`, across all producers.
    #[must_use]
    pub fn rate_limit(mut self, limit: RateLimit) -> Self {
        self.rate_limit = Some(limit);
        self
    }

    /// A crashed producer is restarted unless it crashed `max_restarts` times within
    /// `within`; then it stays down (the other producers go on), the pipeline logs why and
    /// [`Pipeline::wait`](crate::Pipeline::wait) reports it. Processors, batchers and batch
    /// processors are restarted the same way, at most 3 times in 5 seconds (Broadway's
    /// defaults); when one stays down and no other takes its messages, the pipeline stops
    /// (see [`Pipeline::wait`](crate::Pipeline::wait)).
    #[must_use]
    pub fn max_restarts(mut self, max_restarts: usize, within: Duration) -> Self {
        self.max_restarts = max_restarts;
        self.max_seconds = within;
        self
    }

    /// Checks the options.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`] naming the option, its value and the rule.
    pub fn validate(&self) -> Result<(), Error> {
        if self.concurrency == 0 {
            return Err(Error::invalid("producer.concurrency", 0, "must be greater than 0"));
        }
        if let Some(limit) = &self.rate_limit {
            limit.validate()?;
        }
        Ok(())
    }
}

fn default_processors() -> usize {
    2 * std::thread::available_parallelism().map_or(1, usize::from)
}

/// Checks `max_demand` and `min_demand`, named as in `names`.
fn check_demand(names: [&'static str; 2], max_demand: usize, min_demand: Option<usize>) -> Result<(), Error> {
    if max_demand == 0 {
        return Err(Error::invalid(names[0], 0, "must be greater than 0"));
    }
    if let Some(min) = min_demand {
        if min >= max_demand {
            return Err(Error::invalid(
                names[1],
                min,
                format!("must be less than max_demand ({max_demand})"),
            ));
        }
    }
    Ok(())
}

/// Options of the processors, the stages that run `handle_message`.
///
/// Without `partition_by`, processors take messages from any producer as they have demand:
/// no order is promised between messages. With it, all messages with the same hash go
/// through the same processor, in the order the producers emitted them.
///
/// # Examples
///
/// ```
/// use weir_broadway::ProcessorOptions;
///
/// // The seed's configuration: 10 processors asking 5 messages at a time.
/// let options = ProcessorOptions::<Vec<u8>>::new().concurrency(10).max_demand(5);
/// assert!(options.validate().is_ok());
/// let err = ProcessorOptions::<Vec<u8>>::new().max_demand(10).min_demand(10).validate().unwrap_err();
/// assert_eq!(err.to_string(), "processors.min_demand (10) must be less than max_demand (10)");
/// ```
pub struct ProcessorOptions<D> {
    pub(crate) concurrency: usize,
    pub(crate) max_demand: usize,
    pub(crate) min_demand: Option<usize>,
    pub(crate) message_concurrency: usize,
    pub(crate) partition_by: Option<PartitionFn<D>>,
}

impl<D> Clone for ProcessorOptions<D> {
    fn clone(&self) -> Self {
        ProcessorOptions { partition_by: self.partition_by.clone(), ..*self }
    }
}

impl<D> fmt::Debug for ProcessorOptions<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessorOptions")
            .field("concurrency", &self.concurrency)
            .field("max_demand", &self.max_demand)
            .field("min_demand", &self.min_demand)
            .field("message_concurrency", &self.message_concurrency)
            .field("partition_by", &self.partition_by.is_some())
            .finish()
    }
}

impl<D> Default for ProcessorOptions<D> {
    fn default() -> Self {
        Self::new()
    }
}

impl<D> ProcessorOptions<D> {
    /// Twice as many processors as cores, `max_demand` 10, one message at a time each.
    pub fn new() -> Self {
        ProcessorOptions {
            concurrency: default_processors(),
            max_demand: 10,
            min_demand: None,
            message_concurrency: 1,
            partition_by: None,
        }
    }

    /// How many processors run.
    #[must_use]
    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency;
        self
    }

    /// How many messages a processor asks for at most.
    #[must_use]
    pub fn max_demand(mut self, max_demand: usize) -> Self {
        self.max_demand = max_demand;
        self
    }

    /// When a processor asks again (default: half of `max_demand`).
    #[must_use]
    pub fn min_demand(mut self, min_demand: usize) -> Self {
        self.min_demand = Some(min_demand);
        self
    }

    /// How many `handle_message` futures one processor runs at once (default 1): I/O-bound
    /// handlers need fewer processors. Outputs keep their order; with `partition_by`,
    /// messages of one partition still run one after the other.
    #[must_use]
    pub fn message_concurrency(mut self, n: usize) -> Self {
        self.message_concurrency = n;
        self
    }

    /// Routes messages to processors by `hash` (Broadway's `partition_by`): equal hashes go
    /// to the same processor, in order.
    #[must_use]
    pub fn partition_by(mut self, hash: impl Fn(&Message<D>) -> u64 + Send + Sync + 'static) -> Self {
        self.partition_by = Some(Arc::new(hash));
        self
    }

    /// Checks the options.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`] naming the option, its value and the rule.
    pub fn validate(&self) -> Result<(), Error> {
        if self.concurrency == 0 {
            return Err(Error::invalid("processors.concurrency", 0, "must be greater than 0"));
        }
        check_demand(["processors.max_demand", "processors.min_demand"], self.max_demand, self.min_demand)?;
        if self.message_concurrency == 0 {
            return Err(Error::invalid("processors.message_concurrency", 0, "must be greater than 0"));
        }
        Ok(())
    }
}

/// What closes a batch by size: a count of messages, or a function over an accumulator
/// (e.g. to batch by bytes).
///
/// # Examples
///
/// ```
/// use weir_broadway::{BatchSize, Message, SizeStep};
///
/// let by_count: BatchSize<Vec<u8>> = 100.into();
/// // Close a batch once it holds 1 MiB.
/// let by_bytes = BatchSize::by(0, |message: &Message<Vec<u8>>, bytes| {
///     let bytes = bytes + message.data().len() as u64;
///     if bytes >= 1 << 20 { SizeStep::Emit } else { SizeStep::Cont(bytes) }
/// });
/// # let _ = (by_count, by_bytes);
/// ```
pub enum BatchSize<O> {
    /// At most this many messages.
    Count(usize),
    /// Folds each message into an accumulator starting at `init`; the batch closes (with
    /// the message) when the function returns [`SizeStep::Emit`].
    By {
        /// The accumulator of an empty batch.
        init: u64,
        /// The fold.
        step: Arc<dyn Fn(&Message<O>, u64) -> SizeStep + Send + Sync>,
    },
}

impl<O> BatchSize<O> {
    /// A size function over an accumulator (Broadway's `{init_acc, fun}` batch size).
    pub fn by(init: u64, step: impl Fn(&Message<O>, u64) -> SizeStep + Send + Sync + 'static) -> Self {
        BatchSize::By { init, step: Arc::new(step) }
    }
}

impl<O> Clone for BatchSize<O> {
    fn clone(&self) -> Self {
        match self {
            BatchSize::Count(n) => BatchSize::Count(*n),
            BatchSize::By { init, step } => BatchSize::By { init: *init, step: step.clone() },
        }
    }
}

impl<O> From<usize> for BatchSize<O> {
    fn from(count: usize) -> Self {
        BatchSize::Count(count)
    }
}

impl<O> fmt::Debug for BatchSize<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BatchSize::Count(n) => write!(f, "{n}"),
            BatchSize::By { init, .. } => write!(f, "by function (init {init})"),
        }
    }
}

/// What a size function says after a message joins a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeStep {
    /// Keep the batch open, with this accumulator.
    Cont(u64),
    /// Close the batch now (with this message); the next starts from `init`.
    Emit,
}

/// Options of one batcher and its batch processors (the stages that run `handle_batch`).
///
/// A batcher groups the messages `handle_message` sent it by batch key (and partition,
/// with `partition_by`) and closes a batch when it reaches `batch_size`, when a message in
/// flush mode joins it, or `batch_timeout` after its first message (the timer is not
/// extended by later messages).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use weir_broadway::BatcherOptions;
///
/// // The seed's "persistence" batcher.
/// let options = BatcherOptions::<String>::new()
///     .batch_size(100)
///     .batch_timeout(Duration::from_secs(1))
///     .concurrency(5);
/// assert!(options.validate().is_ok());
/// let err = BatcherOptions::<String>::new().batch_size(0).validate().unwrap_err();
/// assert_eq!(err.to_string(), "batchers.batch_size (0) must be greater than 0");
/// ```
pub struct BatcherOptions<O> {
    pub(crate) batch_size: BatchSize<O>,
    pub(crate) batch_timeout: Duration,
    pub(crate) concurrency: usize,
    pub(crate) max_demand: Option<usize>,
    pub(crate) min_demand: Option<usize>,
    pub(crate) partition_by: Option<PartitionFn<O>>,
}

impl<O> Clone for BatcherOptions<O> {
    fn clone(&self) -> Self {
        BatcherOptions {
            batch_size: self.batch_size.clone(),
            partition_by: self.partition_by.clone(),
            ..*self
        }
    }
}

impl<O> fmt::Debug for BatcherOptions<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatcherOptions")
            .field("batch_size", &self.batch_size)
            .field("batch_timeout", &self.batch_timeout)
            .field("concurrency", &self.concurrency)
            .field("max_demand", &self.max_demand)
            .field("min_demand", &self.min_demand)
            .field("partition_by", &self.partition_by.is_some())
            .finish()
    }
}

impl<O> Default for BatcherOptions<O> {
    fn default() -> Self {
        Self::new()
    }
}

impl<O> BatcherOptions<O> {
    /// Batches of 100, 1 second timeout, one batch processor.
    pub fn new() -> Self {
        BatcherOptions {
            batch_size: BatchSize::Count(100),
            batch_timeout: Duration::from_secs(1),
            concurrency: 1,
            max_demand: None,
            min_demand: None,
            partition_by: None,
        }
    }

    /// A count, or a [`BatchSize::by`] function.
    #[must_use]
    pub fn batch_size(mut self, size: impl Into<BatchSize<O>>) -> Self {
        self.batch_size = size.into();
        self
    }

    /// How long a batch may wait for more messages after its first.
    #[must_use]
    pub fn batch_timeout(mut self, timeout: Duration) -> Self {
        self.batch_timeout = timeout;
        self
    }

    /// How many batch processors run `handle_batch` for this batcher.
    #[must_use]
    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency;
        self
    }

    /// How many messages the batcher asks each processor for (default: the batch size
    /// count, or 100 with a size function).
    #[must_use]
    pub fn max_demand(mut self, max_demand: usize) -> Self {
        self.max_demand = Some(max_demand);
        self
    }

    /// When the batcher asks again (default: half of `max_demand`).
    #[must_use]
    pub fn min_demand(mut self, min_demand: usize) -> Self {
        self.min_demand = Some(min_demand);
        self
    }

    /// Routes batches to batch processors by `hash` of their messages: a batch holds
    /// messages of one hash, and equal hashes go to the same batch processor, in order.
    #[must_use]
    pub fn partition_by(mut self, hash: impl Fn(&Message<O>) -> u64 + Send + Sync + 'static) -> Self {
        self.partition_by = Some(Arc::new(hash));
        self
    }

    pub(crate) fn effective_max_demand(&self) -> usize {
        self.max_demand.unwrap_or(match self.batch_size {
            BatchSize::Count(n) => n,
            BatchSize::By { .. } => 100,
        })
    }

    /// Checks the options.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`] naming the option, its value and the rule.
    pub fn validate(&self) -> Result<(), Error> {
        if let BatchSize::Count(0) = self.batch_size {
            return Err(Error::invalid("batchers.batch_size", 0, "must be greater than 0"));
        }
        if self.batch_timeout.is_zero() {
            return Err(Error::invalid("batchers.batch_timeout", "0s", "must be greater than 0"));
        }
        if self.concurrency == 0 {
            return Err(Error::invalid("batchers.concurrency", 0, "must be greater than 0"));
        }
        check_demand(
            ["batchers.max_demand", "batchers.min_demand"],
            self.effective_max_demand(),
            self.min_demand,
        )
    }
}
