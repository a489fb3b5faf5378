//! Subscriptions between a consumer and a producer: their options and identities.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::Error;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// Identifies one subscription (GenStage's subscription tag).
///
/// Consumers receive it as the `from` of their events and use it to ask for demand
/// manually or to cancel the subscription.
///
/// # Examples
///
/// ```
/// use weir_core::SubscriptionId;
///
/// assert_ne!(SubscriptionId::new(), SubscriptionId::new());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscriptionId(u64);

impl SubscriptionId {
    /// A new, unique id.
    pub fn new() -> Self {
        SubscriptionId(next_id())
    }
}

impl Default for SubscriptionId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for SubscriptionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#sub{}", self.0)
    }
}

/// Identifies one running stage instance.
///
/// # Examples
///
/// ```
/// use weir_core::StageId;
///
/// assert_ne!(StageId::new(), StageId::new());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StageId(u64);

impl StageId {
    /// A new, unique id.
    pub fn new() -> Self {
        StageId(next_id())
    }
}

impl Default for StageId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for StageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#stage{}", self.0)
    }
}

/// What a consumer does when a subscription to a producer ends (GenStage's `:cancel` option).
///
/// # Examples
///
/// ```
/// use weir_core::{CancelMode, ExitReason};
///
/// assert!(CancelMode::Permanent.stops_on(&ExitReason::Normal));
/// assert!(!CancelMode::Transient.stops_on(&ExitReason::Normal));
/// assert!(CancelMode::Transient.stops_on(&ExitReason::failed("boom")));
/// assert!(!CancelMode::Temporary.stops_on(&ExitReason::failed("boom")));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CancelMode {
    /// The consumer stops whenever the subscription ends (the default).
    #[default]
    Permanent,
    /// The consumer stops only if the subscription ends with a failure.
    Transient,
    /// The consumer never stops because of this subscription.
    Temporary,
}

impl CancelMode {
    /// Whether a consumer in this mode stops when the subscription ends for `reason`.
    pub fn stops_on(self, reason: &crate::ExitReason) -> bool {
        match self {
            CancelMode::Permanent => true,
            CancelMode::Transient => reason.is_failure(),
            CancelMode::Temporary => false,
        }
    }
}

/// Whether a consumer asks for events itself or lets the runtime do it.
///
/// Returned by `handle_subscribe`; GenStage's `{:automatic, state}` / `{:manual, state}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AskMode {
    /// The runtime asks for `max_demand` events and re-asks as chunks are handled.
    #[default]
    Automatic,
    /// The consumer asks with [`Context::ask`](crate::Context::ask).
    Manual,
}

/// Names a partition of a [`PartitionDispatcher`](crate::dispatcher::PartitionDispatcher):
/// an index, or a name when the partitions are named.
///
/// # Examples
///
/// ```
/// use weir_core::PartitionKey;
///
/// assert_eq!(PartitionKey::from(2), PartitionKey::Index(2));
/// assert_eq!(PartitionKey::from("odd"), PartitionKey::Name("odd".into()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PartitionKey {
    /// A partition by index, `0..partitions`.
    Index(usize),
    /// A partition by name.
    Name(Arc<str>),
}

impl fmt::Display for PartitionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PartitionKey::Index(i) => write!(f, "{i}"),
            PartitionKey::Name(n) => write!(f, "{n:?}"),
        }
    }
}

impl From<usize> for PartitionKey {
    fn from(i: usize) -> Self {
        PartitionKey::Index(i)
    }
}

impl From<&str> for PartitionKey {
    fn from(name: &str) -> Self {
        PartitionKey::Name(name.into())
    }
}

impl From<String> for PartitionKey {
    fn from(name: String) -> Self {
        PartitionKey::Name(name.into())
    }
}

/// A filter a consumer gives a broadcast producer: only events it accepts are sent.
pub type Selector<T> = Arc<dyn Fn(&T) -> bool + Send + Sync>;

/// Options of one subscription: demand, cancel mode, partition, selector.
///
/// # Examples
///
/// ```
/// use weir_core::{CancelMode, SubscribeOptions};
///
/// let opts = SubscribeOptions::<u64>::new()
///     .max_demand(100)
///     .min_demand(50)
///     .cancel(CancelMode::Transient);
/// assert_eq!(opts.validate().unwrap(), ());
/// assert_eq!(opts.demand(), (100, 50));
///
/// let err = SubscribeOptions::<u64>::new().max_demand(10).min_demand(10).validate().unwrap_err();
/// assert_eq!(err.to_string(), "min_demand (10) must be less than max_demand (10)");
/// ```
pub struct SubscribeOptions<T> {
    pub(crate) max_demand: usize,
    pub(crate) min_demand: Option<usize>,
    pub(crate) cancel: CancelMode,
    pub(crate) partition: Option<PartitionKey>,
    pub(crate) selector: Option<Selector<T>>,
}

impl<T> Clone for SubscribeOptions<T> {
    fn clone(&self) -> Self {
        SubscribeOptions {
            max_demand: self.max_demand,
            min_demand: self.min_demand,
            cancel: self.cancel,
            partition: self.partition.clone(),
            selector: self.selector.clone(),
        }
    }
}

impl<T> fmt::Debug for SubscribeOptions<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubscribeOptions")
            .field("max_demand", &self.max_demand)
            .field("min_demand", &self.min_demand)
            .field("cancel", &self.cancel)
            .field("partition", &self.partition)
            .field("selector", &self.selector.is_some())
            .finish()
    }
}

impl<T> Default for SubscribeOptions<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> SubscribeOptions<T> {
    /// Default options: `max_demand` 1000, `min_demand` half of it, permanent cancel.
    pub fn new() -> Self {
        SubscribeOptions {
            max_demand: 1000,
            min_demand: None,
            cancel: CancelMode::Permanent,
            partition: None,
            selector: None,
        }
    }

    /// The most events the consumer has asked for and not yet received (default 1000).
    pub fn max_demand(mut self, max_demand: usize) -> Self {
        self.max_demand = max_demand;
        self
    }

    /// When outstanding demand falls to this, the consumer asks for more (default `max_demand / 2`).
    pub fn min_demand(mut self, min_demand: usize) -> Self {
        self.min_demand = Some(min_demand);
        self
    }

    /// What the consumer does when the subscription ends.
    pub fn cancel(mut self, cancel: CancelMode) -> Self {
        self.cancel = cancel;
        self
    }

    /// The partition to consume, for producers with a partition dispatcher.
    pub fn partition(mut self, partition: impl Into<PartitionKey>) -> Self {
        self.partition = Some(partition.into());
        self
    }

    /// Only events this accepts are sent, for producers with a broadcast dispatcher.
    pub fn selector(mut self, selector: impl Fn(&T) -> bool + Send + Sync + 'static) -> Self {
        self.selector = Some(Arc::new(selector));
        self
    }

    /// The effective `(max_demand, min_demand)`.
    pub fn demand(&self) -> (usize, usize) {
        (self.max_demand, self.min_demand.unwrap_or(self.max_demand / 2))
    }

    /// Checks the demand options.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`] when `max_demand` is 0 or `min_demand >= max_demand`.
    pub fn validate(&self) -> Result<(), Error> {
        let (max, min) = self.demand();
        if max == 0 {
            return Err(Error::invalid("max_demand", max, "must be greater than 0"));
        }
        if min >= max {
            return Err(Error::invalid("min_demand", min, format!("must be less than max_demand ({max})")));
        }
        Ok(())
    }
}
