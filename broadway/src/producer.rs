//! Producers: what a pipeline ingests from. The user writes a [`Producer`]; the pipeline
//! runs each instance inside a stage that adds draining, rate limiting and test pushes.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::task::TaskTracker;
use weir_core::dispatcher::PartitionDispatcher;
use weir_core::{
    start_producer, AnyStageRef, BoxError, Context, DemandMode, ProducerHandle,
    ProducerOptions as StageOptions, ProducerRef,
};

use crate::error::Error;
use crate::message::Message;
use crate::rate_limit::RateLimiter;
use crate::telemetry::StageMetrics;

/// A source of messages (a Broadway producer module): answers demand with events.
///
/// Only [`handle_demand`](Producer::handle_demand) is required. It may return fewer events
/// than asked, and emit the rest later from [`handle_info`](Producer::handle_info) (e.g.
/// when a spawned task that fetched them sends them through [`ProducerContext::sender`]).
/// Events are [`Message`]s, or anything a transformer given to
/// [`Builder::producer_with_transformer`](crate::Builder::producer_with_transformer) turns
/// into messages.
///
/// An `Err` or a panic in a callback crashes this producer only: the pipeline restarts it
/// (see [`ProducerOptions::max_restarts`](crate::ProducerOptions::max_restarts)); the
/// messages it held are acknowledged as failed.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use weir_broadway::{AckData, Acknowledger, BoxError, Message, NoopAcknowledger, Producer, ProducerContext};
///
/// /// Counts up, forever.
/// struct Counter { next: u64, ack: Arc<dyn Acknowledger> }
///
/// impl Producer for Counter {
///     type Event = Message<u64>;
///     type Info = ();
///
///     async fn handle_demand(&mut self, demand: usize, _: &mut ProducerContext<'_, ()>) -> Result<Vec<Message<u64>>, BoxError> {
///         let messages = (self.next..self.next + demand as u64)
///             .map(|n| Message::new(n, self.ack.clone(), AckData::new(n)))
///             .collect();
///         self.next += demand as u64;
///         Ok(messages)
///     }
/// }
/// # let _ = Counter { next: 0, ack: NoopAcknowledger::new() };
/// ```
pub trait Producer: Send + 'static {
    /// What it emits: [`Message`]s, or raw events for a transformer.
    type Event: Send + 'static;
    /// What it accepts through [`ProducerContext::sender`] and timers.
    type Info: Send + 'static;

    /// Whether the messages of one [`AckData::group`](crate::AckData::group) must be
    /// handled in the order produced (a Kafka partition). Then, unless `partition_by` says
    /// otherwise, processors and batch processors are partitioned by group: each group's
    /// messages go through one processor and one batch processor, in order.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_broadway::{AckData, BoxError, Message, NoopAcknowledger, Producer, ProducerContext};
    ///
    /// /// Offsets of two partitions, interleaved; each partition's order must hold.
    /// struct Partitions { next: u64 }
    ///
    /// impl Producer for Partitions {
    ///     type Event = Message<u64>;
    ///     type Info = ();
    ///     const ORDERED_BY_GROUP: bool = true;
    ///
    ///     async fn handle_demand(&mut self, demand: usize, _: &mut ProducerContext<'_, ()>) -> Result<Vec<Message<u64>>, BoxError> {
    ///         let first = self.next;
    ///         self.next += demand as u64;
    ///         Ok((first..self.next)
    ///             .map(|n| Message::new(n, NoopAcknowledger::new(), AckData::new(n / 2).with_group(n % 2)))
    ///             .collect())
    ///     }
    /// }
    /// assert!(Partitions::ORDERED_BY_GROUP);
    /// # let _ = Partitions { next: 0 };
    /// ```
    const ORDERED_BY_GROUP: bool = false;

    /// The pipeline asks for `demand` more events.
    fn handle_demand(
        &mut self,
        demand: usize,
        ctx: &mut ProducerContext<'_, Self::Info>,
    ) -> impl Future<Output = Result<Vec<Self::Event>, BoxError>> + Send;

    /// An info arrived; may emit events.
    fn handle_info(
        &mut self,
        info: Self::Info,
        ctx: &mut ProducerContext<'_, Self::Info>,
    ) -> impl Future<Output = Result<Vec<Self::Event>, BoxError>> + Send {
        let _ = (info, ctx);
        async { Ok(Vec::new()) }
    }

    /// The pipeline is stopping: stop fetching (cancel the consumer, stop polling). What it
    /// returns is still processed; after it, `handle_demand` is not called again and events
    /// from `handle_info` are still accepted until the producer's buffered events are out
    /// (Broadway's `prepare_for_draining`).
    fn prepare_for_draining(
        &mut self,
        ctx: &mut ProducerContext<'_, Self::Info>,
    ) -> impl Future<Output = Result<Vec<Self::Event>, BoxError>> + Send {
        let _ = ctx;
        async { Ok(Vec::new()) }
    }
}

/// What a producer callback can ask of the pipeline: schedule an info, get a sender for
/// infos, say it is done.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use weir_broadway::{BoxError, Message, Producer, ProducerContext};
///
/// /// Polls every 100 ms.
/// struct Poller;
///
/// impl Producer for Poller {
///     type Event = Message<Vec<u8>>;
///     type Info = &'static str;
///
///     async fn handle_demand(&mut self, _: usize, ctx: &mut ProducerContext<'_, &'static str>) -> Result<Vec<Message<Vec<u8>>>, BoxError> {
///         ctx.send_after("poll", Duration::from_millis(100));
///         Ok(Vec::new())
///     }
/// }
/// ```
pub struct ProducerContext<'a, I> {
    sender: &'a InfoSender<I>,
    tasks: &'a TaskTracker,
    name: &'a str,
    index: usize,
    timers: Vec<(Duration, I)>,
    finished: bool,
}

impl<I: Send + 'static> ProducerContext<'_, I> {
    /// Delivers `info` to `handle_info` after `delay`.
    pub fn send_after(&mut self, info: I, delay: Duration) {
        self.timers.push((delay, info));
    }

    /// A handle to send infos to this producer from anywhere (a task it spawned).
    pub fn sender(&self) -> InfoSender<I> {
        self.sender.clone()
    }

    /// Spawns `task` as one the pipeline waits for: [`Pipeline::stop`](crate::Pipeline::stop)
    /// and [`Pipeline::wait`](crate::Pipeline::wait) return once it has ended too (`stop`
    /// within the shutdown timeout). For the task that receives from a broker and sends
    /// the acknowledgements: the last ones reach the broker before `stop` returns, so a
    /// program that exits right after it does not get those messages redelivered.
    ///
    /// The task must end on its own once the producer is dropped (or drained): the
    /// pipeline does not cancel it.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_broadway::{BoxError, Message, Producer, ProducerContext};
    ///
    /// /// Receives from a client in its own task; `None` until the first demand.
    /// struct Client { stop: Option<tokio::sync::oneshot::Sender<()>> }
    ///
    /// impl Producer for Client {
    ///     type Event = Message<Vec<u8>>;
    ///     type Info = Vec<Message<Vec<u8>>>;
    ///
    ///     async fn handle_demand(&mut self, _: usize, ctx: &mut ProducerContext<'_, Self::Info>) -> Result<Vec<Message<Vec<u8>>>, BoxError> {
    ///         if self.stop.is_none() {
    ///             let (stop, stopped) = tokio::sync::oneshot::channel();
    ///             self.stop = Some(stop);
    ///             let deliver = ctx.sender();
    ///             // Ends when the producer drains or is dropped (`stop` dropped).
    ///             ctx.spawn(async move {
    ///                 let _ = stopped.await;
    ///                 let _ = deliver; // ... flush the last acknowledgements, close the connection
    ///             });
    ///         }
    ///         Ok(Vec::new())
    ///     }
    ///
    ///     async fn handle_info(&mut self, received: Self::Info, _: &mut ProducerContext<'_, Self::Info>) -> Result<Vec<Message<Vec<u8>>>, BoxError> {
    ///         Ok(received)
    ///     }
    ///
    ///     async fn prepare_for_draining(&mut self, _: &mut ProducerContext<'_, Self::Info>) -> Result<Vec<Message<Vec<u8>>>, BoxError> {
    ///         self.stop.take();
    ///         Ok(Vec::new())
    ///     }
    /// }
    /// ```
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.tasks.spawn(task);
    }

    /// This producer is done: the pipeline drains and stops once every producer is done.
    pub fn finish(&mut self) {
        self.finished = true;
    }

    /// The producer's stage name (`{pipeline}.producer_{index}`).
    pub fn name(&self) -> &str {
        self.name
    }

    /// Which of the pipeline's producers this is (`0..concurrency`).
    pub fn index(&self) -> usize {
        self.index
    }
}

/// Sends infos to a producer's `handle_info`. Cheap to clone.
///
/// # Examples
///
/// ```
/// use weir_broadway::{BoxError, Message, Producer, ProducerContext};
///
/// struct Fetcher;
///
/// impl Producer for Fetcher {
///     type Event = Message<String>;
///     type Info = Vec<Message<String>>;
///
///     async fn handle_demand(&mut self, _: usize, ctx: &mut ProducerContext<'_, Self::Info>) -> Result<Vec<Message<String>>, BoxError> {
///         let sender = ctx.sender();
///         tokio::spawn(async move {
///             // fetch, then hand the messages back to the producer:
///             let _stopped = sender.send(Vec::new());
///         });
///         Ok(Vec::new())
///     }
///
///     async fn handle_info(&mut self, fetched: Self::Info, _: &mut ProducerContext<'_, Self::Info>) -> Result<Vec<Message<String>>, BoxError> {
///         Ok(fetched)
///     }
/// }
/// ```
pub struct InfoSender<I>(Arc<dyn Fn(I) -> Result<(), Error> + Send + Sync>);

impl<I> Clone for InfoSender<I> {
    fn clone(&self) -> Self {
        InfoSender(self.0.clone())
    }
}

impl<I> InfoSender<I> {
    /// Sends `info`.
    ///
    /// # Errors
    ///
    /// [`Error::NotRunning`] when the producer has stopped (the info is dropped).
    pub fn send(&self, info: I) -> Result<(), Error> {
        (self.0)(info)
    }
}

/// The mailbox of a producer stage: the user's infos and the pipeline's requests.
pub(crate) enum Control<I, D> {
    Info(I),
    Drain,
    Push(Vec<Message<D>>),
    Released,
}

/// Which producer callback to run.
enum Callback<I> {
    Demand(usize),
    Info(I),
    Drain,
}

/// Turns a producer's events into messages.
pub(crate) trait Transform<E, D>: Send + Sync + 'static {
    fn apply(&self, events: Vec<E>) -> Vec<Message<D>>;
}

/// No transformer: the events are the messages (and stay where they are).
pub(crate) struct AsIs;

impl<D: Send + 'static> Transform<Message<D>, D> for AsIs {
    fn apply(&self, events: Vec<Message<D>>) -> Vec<Message<D>> {
        events
    }
}

/// A user's transformer, applied to each event.
pub(crate) struct EachWith<F>(pub(crate) F);

impl<E, D, F> Transform<E, D> for EachWith<F>
where
    F: Fn(E) -> Message<D> + Send + Sync + 'static,
{
    fn apply(&self, events: Vec<E>) -> Vec<Message<D>> {
        events.into_iter().map(&self.0).collect()
    }
}

/// Runs a user's producer: applies the transformer, the rate limit and draining.
struct ProducerStage<P: Producer, D, F> {
    producer: P,
    transform: Arc<F>,
    /// Made from the stage's own handle on the first callback.
    sender: Option<InfoSender<P::Info>>,
    name: Arc<str>,
    index: usize,
    limiter: Option<Arc<RateLimiter>>,
    held: VecDeque<Message<D>>,
    release_scheduled: bool,
    draining: bool,
    finished: bool,
    metrics: StageMetrics,
    tasks: TaskTracker,
}

type Ctx<P, D> = Context<Control<<P as Producer>::Info, D>>;

impl<P, D, F> ProducerStage<P, D, F>
where
    P: Producer,
    D: Send + 'static,
    F: Transform<P::Event, D>,
{
    /// Runs a user callback with a [`ProducerContext`], then applies what it asked for.
    async fn call(
        &mut self,
        ctx: &mut Ctx<P, D>,
        callback: Callback<P::Info>,
    ) -> Result<Vec<Message<D>>, BoxError> {
        let me = ctx.me();
        let sender = self.sender.get_or_insert_with(|| {
            let me = me.clone();
            InfoSender(Arc::new(move |info| me.cast(Control::Info(info)).map_err(|_| Error::NotRunning)))
        });
        let mut pctx = ProducerContext {
            sender,
            tasks: &self.tasks,
            name: &self.name,
            index: self.index,
            timers: Vec::new(),
            finished: false,
        };
        let events = match callback {
            Callback::Demand(demand) => self.producer.handle_demand(demand, &mut pctx).await?,
            Callback::Info(info) => self.producer.handle_info(info, &mut pctx).await?,
            Callback::Drain => self.producer.prepare_for_draining(&mut pctx).await?,
        };
        let (timers, finished) = (pctx.timers, pctx.finished);
        for (delay, info) in timers {
            ctx.send_after(Control::Info(info), delay);
        }
        self.finished |= finished;
        let messages = self.transform.apply(events);
        Ok(self.limit(messages, ctx))
    }

    /// Lets through what the rate limit allows; holds the rest until the next interval.
    fn limit(&mut self, mut messages: Vec<Message<D>>, ctx: &mut Ctx<P, D>) -> Vec<Message<D>> {
        if let Some(limiter) = &self.limiter {
            if !self.held.is_empty() {
                self.held.extend(messages);
                messages = Vec::new();
                let (granted, next) = limiter.take(self.held.len());
                messages.extend(self.held.drain(..granted));
                self.schedule_release(next, ctx);
            } else if !messages.is_empty() {
                let (granted, next) = limiter.take(messages.len());
                self.held.extend(messages.drain(granted..));
                self.schedule_release(next, ctx);
            }
        }
        self.metrics.emitted(&mut messages);
        if self.finished && self.held.is_empty() {
            ctx.finish();
        }
        messages
    }

    fn schedule_release(&mut self, next: Option<tokio::time::Instant>, ctx: &mut Ctx<P, D>) {
        if let (Some(at), false) = (next, self.release_scheduled) {
            self.release_scheduled = true;
            ctx.send_after(Control::Released, at.saturating_duration_since(tokio::time::Instant::now()));
        }
    }
}

impl<P, D, F> weir_core::Producer for ProducerStage<P, D, F>
where
    P: Producer,
    D: Send + 'static,
    F: Transform<P::Event, D>,
{
    type Event = Message<D>;
    type Message = Control<P::Info, D>;

    async fn handle_demand(
        &mut self,
        demand: usize,
        ctx: &mut Ctx<P, D>,
    ) -> Result<Vec<Message<D>>, BoxError> {
        if self.draining || self.finished {
            return Ok(Vec::new());
        }
        self.call(ctx, Callback::Demand(demand)).await
    }

    async fn handle_info(
        &mut self,
        control: Control<P::Info, D>,
        ctx: &mut Ctx<P, D>,
    ) -> Result<Vec<Message<D>>, BoxError> {
        match control {
            Control::Info(info) => self.call(ctx, Callback::Info(info)).await,
            Control::Drain if !self.draining => {
                self.draining = true;
                let last = self.call(ctx, Callback::Drain).await;
                self.finished = true;
                if self.held.is_empty() {
                    ctx.finish();
                }
                last
            }
            Control::Drain => Ok(Vec::new()),
            Control::Push(messages) => Ok(self.limit(messages, ctx)),
            Control::Released => {
                self.release_scheduled = false;
                Ok(self.limit(Vec::new(), ctx))
            }
        }
    }
}

/// What the pipeline keeps of a running producer, whatever its type.
pub(crate) trait ProducerControl<D>: Send + Sync {
    fn producer(&self) -> &ProducerRef<Message<D>>;
    fn stage(&self) -> AnyStageRef;
    fn drain(&self);
    fn push(&self, messages: Vec<Message<D>>) -> Result<(), Error>;
    fn release_demand(&self);
}

struct Running<I, D>(ProducerHandle<Message<D>, Control<I, D>>);

impl<I: Send + 'static, D: Send + 'static> ProducerControl<D> for Running<I, D> {
    fn producer(&self) -> &ProducerRef<Message<D>> {
        self.0.producer()
    }

    fn stage(&self) -> AnyStageRef {
        self.0.to_any()
    }

    fn drain(&self) {
        // A producer that stopped already has nothing to drain.
        let _stopped = self.0.cast(Control::Drain);
    }

    fn push(&self, messages: Vec<Message<D>>) -> Result<(), Error> {
        self.0.cast(Control::Push(messages)).map_err(|_| Error::NotRunning)
    }

    fn release_demand(&self) {
        let _stopped = self.0.set_demand_mode(DemandMode::Forward);
    }
}

/// How to start one producer instance; the pipeline decides the dispatcher.
pub(crate) struct ProducerStart<D> {
    pub(crate) name: String,
    pub(crate) index: usize,
    pub(crate) limiter: Option<Arc<RateLimiter>>,
    /// Route to `processors` partitions by this hash (processors' `partition_by`).
    pub(crate) partition: Option<(usize, crate::config::PartitionFn<D>)>,
    pub(crate) metrics: StageMetrics,
    pub(crate) tasks: TaskTracker,
}

pub(crate) type StartProducer<D> =
    Arc<dyn Fn(ProducerStart<D>) -> Result<Box<dyn ProducerControl<D>>, Error> + Send + Sync>;

/// The type-erased starter of a user's producer factory and transformer.
pub(crate) fn starter<P, D, F>(
    factory: impl Fn() -> P + Send + Sync + 'static,
    transform: F,
) -> StartProducer<D>
where
    P: Producer,
    D: Send + 'static,
    F: Transform<P::Event, D>,
{
    let transform = Arc::new(transform);
    Arc::new(move |start: ProducerStart<D>| {
        let mut options = StageOptions::new().name(start.name.clone()).demand(DemandMode::Accumulate);
        if let Some((partitions, hash)) = start.partition {
            let n = partitions as u64;
            let dispatcher = PartitionDispatcher::new(partitions, move |message: Message<D>| {
                #[allow(clippy::cast_possible_truncation)] // the remainder is below `partitions`, a usize
                let partition = (hash(&message) % n) as usize;
                Some((message, partition))
            })?;
            options = options.dispatcher(dispatcher);
        }
        let stage = ProducerStage {
            producer: factory(),
            transform: transform.clone(),
            sender: None,
            name: start.name.into(),
            index: start.index,
            limiter: start.limiter,
            held: VecDeque::new(),
            release_scheduled: false,
            draining: false,
            finished: false,
            metrics: start.metrics,
            tasks: start.tasks,
        };
        Ok(Box::new(Running(start_producer(stage, options)?)) as Box<dyn ProducerControl<D>>)
    })
}
