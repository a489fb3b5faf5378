//! Dispatchers decide which consumer receives which events of a producer.
//!
//! Three come with weir, as in GenStage: [`DemandDispatcher`] (the default: each event to
//! the consumer with the most pending demand), [`BroadcastDispatcher`] (every event to every
//! consumer) and [`PartitionDispatcher`] (each event to the consumer of its partition).
//! Write your own by implementing [`Dispatcher`].

mod broadcast;
mod demand;
mod partition;

use std::fmt;
use std::sync::Arc;

pub use broadcast::BroadcastDispatcher;
pub use demand::DemandDispatcher;
pub use partition::PartitionDispatcher;

use crate::error::Error;
use crate::protocol::ConsumerLink;
use crate::subscription::{PartitionKey, Selector, StageId, SubscriptionId};

/// Routes a producer's events to its consumers and tells how much demand to forward upstream.
///
/// Every method that can change the demand returns how many events the producer should now
/// produce on top of what it was already asked for ("demand to forward").
///
/// # Examples
///
/// A dispatcher that sends everything to the most recent subscriber:
///
/// ```
/// use weir_core::dispatcher::{Dispatcher, Downstream};
/// use weir_core::{Error, SubscriptionId};
///
/// struct Newest<T> { consumer: Option<(Downstream<T>, usize)> }
///
/// impl<T: Send + 'static> Dispatcher<T> for Newest<T> {
///     fn subscribe(&mut self, consumer: Downstream<T>) -> Result<usize, Error> {
///         self.consumer = Some((consumer, 0));
///         Ok(0)
///     }
///     fn cancel(&mut self, id: SubscriptionId) -> usize {
///         if self.consumer.as_ref().is_some_and(|(c, _)| c.id() == id) {
///             self.consumer = None;
///         }
///         0
///     }
///     fn ask(&mut self, id: SubscriptionId, demand: usize) -> usize {
///         match &mut self.consumer {
///             Some((c, pending)) if c.id() == id => { *pending += demand; demand }
///             _ => 0,
///         }
///     }
///     fn dispatch(&mut self, events: &mut Vec<T>) -> usize {
///         if let Some((c, pending)) = &mut self.consumer {
///             let n = (*pending).min(events.len());
///             *pending -= n;
///             if let Err(back) = c.send(events.drain(..n).collect()) {
///                 events.splice(0..0, back);
///             }
///         }
///         0
///     }
/// }
/// ```
pub trait Dispatcher<T>: Send + 'static {
    /// A consumer subscribed. Returns the demand to forward.
    ///
    /// # Errors
    ///
    /// An error rejects the subscription (e.g. a taken partition); the consumer is told why.
    /// A dispatcher of your own refuses with [`Error::Refused`].
    fn subscribe(&mut self, consumer: Downstream<T>) -> Result<usize, Error>;

    /// A consumer left. Returns the demand to forward.
    fn cancel(&mut self, id: SubscriptionId) -> usize;

    /// A consumer asked for `demand` more events. Returns the demand to forward.
    fn ask(&mut self, id: SubscriptionId, demand: usize) -> usize;

    /// Sends what it can of `events` to consumers, leaving the rest in `events` in order
    /// (the producer buffers them). Returns the demand to forward.
    fn dispatch(&mut self, events: &mut Vec<T>) -> usize;

    /// Events held inside the dispatcher, waiting for demand.
    fn buffered(&self) -> usize {
        0
    }
}

/// A subscribed consumer, as a dispatcher sees it: where to send events and the options it gave.
pub struct Downstream<T> {
    pub(crate) id: SubscriptionId,
    pub(crate) consumer: StageId,
    pub(crate) link: Arc<dyn ConsumerLink<T>>,
    pub(crate) max_demand: usize,
    pub(crate) partition: Option<PartitionKey>,
    pub(crate) selector: Option<Selector<T>>,
}

impl<T> Clone for Downstream<T> {
    fn clone(&self) -> Self {
        Downstream {
            id: self.id,
            consumer: self.consumer,
            link: self.link.clone(),
            max_demand: self.max_demand,
            partition: self.partition.clone(),
            selector: self.selector.clone(),
        }
    }
}

impl<T> fmt::Debug for Downstream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Downstream")
            .field("id", &self.id)
            .field("consumer", &self.consumer)
            .field("max_demand", &self.max_demand)
            .field("partition", &self.partition)
            .finish()
    }
}

impl<T> Downstream<T> {
    /// The subscription.
    pub fn id(&self) -> SubscriptionId {
        self.id
    }

    /// The consuming stage (the same for all its subscriptions).
    pub fn consumer(&self) -> StageId {
        self.consumer
    }

    /// The consumer's `max_demand` for this subscription.
    pub fn max_demand(&self) -> usize {
        self.max_demand
    }

    /// The partition the consumer asked for, if any.
    pub fn partition(&self) -> Option<&PartitionKey> {
        self.partition.as_ref()
    }

    /// The consumer's selector, if any.
    pub fn selector(&self) -> Option<&Selector<T>> {
        self.selector.as_ref()
    }

    /// Sends events to the consumer.
    ///
    /// # Errors
    ///
    /// Gives the events back if the consumer is gone.
    pub fn send(&self, events: Vec<T>) -> Result<(), Vec<T>> {
        if events.is_empty() {
            return Ok(());
        }
        self.link.events(self.id, events)
    }
}

/// Takes the first `n` events of `events`, without copying when that is all of them.
pub(crate) fn take_front<T>(events: &mut Vec<T>, n: usize) -> Vec<T> {
    if n >= events.len() {
        std::mem::take(events)
    } else {
        events.drain(..n).collect()
    }
}

/// Puts events a consumer could not take back at the front of `events`.
pub(crate) fn put_back<T>(events: &mut Vec<T>, back: Vec<T>) {
    events.splice(0..0, back);
}

#[cfg(test)]
pub(crate) mod testing {
    use std::sync::{Arc, Mutex};

    use super::Downstream;
    use crate::error::ExitReason;
    use crate::protocol::ConsumerLink;
    use crate::subscription::{PartitionKey, Selector, StageId, SubscriptionId};

    /// Records what a dispatcher sends to one consumer.
    #[derive(Default)]
    pub(crate) struct Recorder<T> {
        pub(crate) received: Mutex<Vec<T>>,
    }

    impl<T: Send> ConsumerLink<T> for Recorder<T> {
        fn events(&self, _sub: SubscriptionId, events: Vec<T>) -> Result<(), Vec<T>> {
            self.received.lock().map_err(|_| Vec::new())?.extend(events);
            Ok(())
        }
        fn down(&self, _sub: SubscriptionId, _reason: ExitReason) {}
    }

    pub(crate) fn downstream<T: Send + 'static>(
        partition: Option<PartitionKey>,
        selector: Option<Selector<T>>,
    ) -> (Downstream<T>, Arc<Recorder<T>>) {
        let rec = Arc::new(Recorder { received: Mutex::new(Vec::new()) });
        let ds = Downstream {
            id: SubscriptionId::new(),
            consumer: StageId::new(),
            link: rec.clone(),
            max_demand: 1000,
            partition,
            selector,
        };
        (ds, rec)
    }

    pub(crate) fn received<T: Clone>(rec: &Recorder<T>) -> Vec<T> {
        rec.received.lock().map(|v| v.clone()).unwrap_or_default()
    }
}
