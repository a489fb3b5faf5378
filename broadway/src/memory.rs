//! In-memory producers, for examples, tests and benchmarks: one over an iterator, one over
//! a queue you push to, both acknowledging to a counter you can wait on.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{watch, Notify};
use weir_core::BoxError;

use crate::acknowledger::{AckData, Acknowledger};
use crate::message::{Failure, Message};
use crate::producer::{Producer, ProducerContext};

/// Counts acknowledgements of in-memory messages and keeps the failed ones' tags and
/// reasons. [`wait_for`](MemoryAcks::wait_for) waits until a number were acknowledged.
///
/// # Examples
///
/// ```
/// use weir_broadway::{AckData, Acknowledger, Failure, memory::MemoryAcks};
///
/// let acks = MemoryAcks::new();
/// acks.ack(vec![AckData::new(1)], vec![(AckData::new(2), Failure::Dropped)]);
/// assert_eq!((acks.successful(), acks.failed(), acks.total()), (1, 1, 2));
/// assert_eq!(acks.failures(), vec![(2, Failure::Dropped)]);
/// ```
#[derive(Debug, Default)]
pub struct MemoryAcks {
    successful: AtomicUsize,
    failed: AtomicUsize,
    failures: Mutex<Vec<(u64, Failure)>>,
    changed: Notify,
}

impl MemoryAcks {
    /// A shared counter at zero.
    pub fn new() -> Arc<Self> {
        Arc::new(MemoryAcks::default())
    }

    /// Messages acknowledged as successful.
    pub fn successful(&self) -> usize {
        self.successful.load(Ordering::SeqCst)
    }

    /// Messages acknowledged as failed.
    pub fn failed(&self) -> usize {
        self.failed.load(Ordering::SeqCst)
    }

    /// All acknowledged messages.
    pub fn total(&self) -> usize {
        self.successful() + self.failed()
    }

    /// The tags of failed messages and why they failed, in acknowledgement order.
    pub fn failures(&self) -> Vec<(u64, Failure)> {
        self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Waits until at least `n` messages have been acknowledged.
    pub async fn wait_for(&self, n: usize) {
        loop {
            let changed = self.changed.notified();
            if self.total() >= n {
                return;
            }
            changed.await;
        }
    }
}

impl Acknowledger for MemoryAcks {
    fn ack(&self, successful: Vec<AckData>, failed: Vec<(AckData, Failure)>) {
        if !failed.is_empty() {
            let mut failures = self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            failures.extend(failed.iter().map(|(data, failure)| (data.tag, failure.clone())));
        }
        self.successful.fetch_add(successful.len(), Ordering::SeqCst);
        self.failed.fetch_add(failed.len(), Ordering::SeqCst);
        self.changed.notify_waiters();
    }
}

/// What an in-memory producer reads from.
enum Source<T> {
    Iter(Box<dyn Iterator<Item = T> + Send>),
    Queue { items: VecDeque<T>, closed: bool },
}

struct Shared<T> {
    source: Mutex<Source<T>>,
    next_tag: AtomicU64,
    acks: Arc<MemoryAcks>,
    acknowledger: Arc<dyn Acknowledger>,
    /// Bumped on every push and close, so a producer waiting for items cannot miss one.
    pushed: watch::Sender<u64>,
}

impl<T> Shared<T> {
    fn source(&self) -> std::sync::MutexGuard<'_, Source<T>> {
        self.source.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A producer of in-memory data: from an iterator (it finishes when the iterator ends, so
/// the pipeline drains and stops), or from a [`MemoryQueue`] (it waits for pushes until the
/// queue is closed). Every message is tagged `0, 1, 2...` in production order and
/// acknowledged to a [`MemoryAcks`]. With `concurrency > 1`, the instances share the source.
///
/// # Examples
///
/// ```
/// use weir_broadway::memory::MemoryProducer;
///
/// let (factory, acks) = MemoryProducer::from_iter(0..1_000u32);
/// let (queue_factory, queue) = MemoryProducer::<String>::queue();
/// queue.push("hello".to_string());
/// # let _ = (factory, acks, queue_factory);
/// ```
pub struct MemoryProducer<T> {
    shared: Arc<Shared<T>>,
    demand: usize,
    waiting: bool,
    draining: bool,
}

/// Wakes a waiting [`MemoryProducer`].
pub struct Wake;

/// The sending side of a queue-fed [`MemoryProducer`].
///
/// # Examples
///
/// ```
/// use weir_broadway::memory::MemoryProducer;
///
/// let (_factory, queue) = MemoryProducer::<u32>::queue();
/// queue.push_all(0..10);
/// assert_eq!(queue.len(), 10);
/// queue.close(); // producers finish once it is empty
/// ```
#[derive(Clone)]
pub struct MemoryQueue<T> {
    shared: Arc<Shared<T>>,
}

type Factory<T> = Box<dyn Fn() -> MemoryProducer<T> + Send + Sync>;

impl<T: Send + 'static> MemoryProducer<T> {
    fn new(source: Source<T>) -> (Factory<T>, Arc<Shared<T>>) {
        let acks = MemoryAcks::new();
        let shared = Arc::new(Shared {
            source: Mutex::new(source),
            next_tag: AtomicU64::new(0),
            acknowledger: acks.clone(),
            acks,
            pushed: watch::Sender::new(0),
        });
        let for_factory = shared.clone();
        (
            Box::new(move || MemoryProducer {
                shared: for_factory.clone(),
                demand: 0,
                waiting: false,
                draining: false,
            }),
            shared,
        )
    }

    /// A producer factory over `items`, and the counter its messages are acknowledged to.
    #[allow(clippy::should_implement_trait)] // returns the factory and its acknowledgements
    pub fn from_iter<I>(items: I) -> (impl Fn() -> MemoryProducer<T> + Send + Sync, Arc<MemoryAcks>)
    where
        I: IntoIterator<Item = T>,
        I::IntoIter: Send + 'static,
    {
        let (factory, shared) = Self::new(Source::Iter(Box::new(items.into_iter())));
        (factory, shared.acks.clone())
    }

    /// A producer factory fed by a queue.
    pub fn queue() -> (impl Fn() -> MemoryProducer<T> + Send + Sync, MemoryQueue<T>) {
        let (factory, shared) = Self::new(Source::Queue { items: VecDeque::new(), closed: false });
        (factory, MemoryQueue { shared })
    }

    /// Takes up to the owed demand; also says whether the source is exhausted for good.
    fn take(&mut self) -> (Vec<Message<T>>, bool) {
        let shared = &*self.shared;
        let mut source = shared.source();
        // Tags are handed out under the source's lock, so they follow the source's order.
        let mut tag = shared.next_tag.load(Ordering::Relaxed);
        let mut wrap = |item: T| {
            tag += 1;
            Message::new(item, shared.acknowledger.clone(), AckData::new(tag - 1))
        };
        let (messages, exhausted): (Vec<Message<T>>, bool) = match &mut *source {
            Source::Iter(iter) => {
                let messages: Vec<_> = iter.by_ref().take(self.demand).map(&mut wrap).collect();
                let exhausted = messages.len() < self.demand;
                (messages, exhausted)
            }
            Source::Queue { items, closed } => {
                let n = self.demand.min(items.len());
                let messages = items.drain(..n).map(&mut wrap).collect();
                (messages, *closed && items.is_empty())
            }
        };
        shared.next_tag.store(tag, Ordering::Relaxed);
        drop(source);
        self.demand -= messages.len();
        (messages, exhausted)
    }

    /// Emits what it can; finishes when the source is exhausted, or waits for a push.
    fn serve(&mut self, ctx: &mut ProducerContext<'_, Wake>) -> Vec<Message<T>> {
        if self.draining {
            return Vec::new();
        }
        // Subscribed before taking: a push after the take is seen by the waiter.
        let mut pushed = self.shared.pushed.subscribe();
        let (messages, exhausted) = self.take();
        if exhausted {
            ctx.finish();
        } else if self.demand > 0 && !self.waiting {
            self.waiting = true;
            let sender = ctx.sender();
            tokio::spawn(async move {
                let _sender_gone = pushed.changed().await;
                let _producer_stopped = sender.send(Wake);
            });
        }
        messages
    }
}

impl<T: Send + 'static> Producer for MemoryProducer<T> {
    type Event = Message<T>;
    type Info = Wake;

    async fn handle_demand(
        &mut self,
        demand: usize,
        ctx: &mut ProducerContext<'_, Wake>,
    ) -> Result<Vec<Message<T>>, BoxError> {
        self.demand += demand;
        Ok(self.serve(ctx))
    }

    async fn handle_info(
        &mut self,
        _: Wake,
        ctx: &mut ProducerContext<'_, Wake>,
    ) -> Result<Vec<Message<T>>, BoxError> {
        self.waiting = false;
        Ok(self.serve(ctx))
    }

    async fn prepare_for_draining(
        &mut self,
        _: &mut ProducerContext<'_, Wake>,
    ) -> Result<Vec<Message<T>>, BoxError> {
        // Let a waiting task end; what is still queued stays in the queue.
        self.draining = true;
        self.shared.pushed.send_modify(|v| *v += 1);
        Ok(Vec::new())
    }
}

impl<T: Send + 'static> MemoryQueue<T> {
    /// Adds one item.
    pub fn push(&self, item: T) {
        self.push_all(std::iter::once(item));
    }

    /// Adds items, in order.
    pub fn push_all(&self, new: impl IntoIterator<Item = T>) {
        if let Source::Queue { items, .. } = &mut *self.shared.source() {
            items.extend(new);
        }
        self.shared.pushed.send_modify(|v| *v += 1);
    }

    /// Items waiting to be produced.
    pub fn len(&self) -> usize {
        match &*self.shared.source() {
            Source::Queue { items, .. } => items.len(),
            Source::Iter(_) => 0,
        }
    }

    /// Whether no item waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// No more items: the producers finish once the queue is empty, and the pipeline drains.
    pub fn close(&self) {
        if let Source::Queue { closed, .. } = &mut *self.shared.source() {
            *closed = true;
        }
        self.shared.pushed.send_modify(|v| *v += 1);
    }

    /// The counter the queue's messages are acknowledged to.
    pub fn acks(&self) -> &Arc<MemoryAcks> {
        &self.shared.acks
    }
}
