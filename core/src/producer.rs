//! Producers: stages that answer demand with events.

use std::future::Future;

use crate::buffer::{BufferKeep, BufferSize};
use crate::demand::DemandMode;
use crate::dispatcher::Dispatcher;
use crate::error::{BoxError, Error, ExitReason};
use crate::handle::{ProducerHandle, ProducerRef};
use crate::runtime::{self, Behaviour, Emit, Kind, Never, Peer, ProducerSetup};
use crate::stage::Context;
use crate::subscription::{AskMode, SubscriptionId};

/// A stage that produces events when consumers ask (GenStage's `:producer`).
///
/// Only [`handle_demand`](Producer::handle_demand) is required. It may return fewer events
/// than asked (the producer then owes the rest and may emit them later, e.g. from
/// [`handle_info`](Producer::handle_info)) or more (the excess is buffered). Every callback
/// may emit events. A finite producer calls [`Context::finish`] when it is done.
///
/// # Examples
///
/// ```
/// use weir_core::{BoxError, Context, Producer};
///
/// /// Counts up from a number, forever.
/// struct Counter(u64);
///
/// impl Producer for Counter {
///     type Event = u64;
///     type Message = ();
///
///     async fn handle_demand(&mut self, demand: usize, _ctx: &mut Context) -> Result<Vec<u64>, BoxError> {
///         let events = (self.0..self.0 + demand as u64).collect();
///         self.0 += demand as u64;
///         Ok(events)
///     }
/// }
/// ```
pub trait Producer: Send + 'static {
    /// The events it produces.
    type Event: Send + 'static;
    /// The messages it accepts through [`StageRef::cast`](crate::StageRef::cast) and timers.
    type Message: Send + 'static;

    /// Consumers asked for `demand` more events.
    fn handle_demand(
        &mut self,
        demand: usize,
        ctx: &mut Context<Self::Message>,
    ) -> impl Future<Output = Result<Vec<Self::Event>, BoxError>> + Send;

    /// A message arrived (cast, call, timer or info); may emit events.
    fn handle_info(
        &mut self,
        message: Self::Message,
        ctx: &mut Context<Self::Message>,
    ) -> impl Future<Output = Result<Vec<Self::Event>, BoxError>> + Send {
        let _ = (message, ctx);
        async { Ok(Vec::new()) }
    }

    /// A consumer subscribed.
    fn handle_subscribe(
        &mut self,
        consumer: SubscriptionId,
        ctx: &mut Context<Self::Message>,
    ) -> impl Future<Output = Result<(), BoxError>> + Send {
        let _ = (consumer, ctx);
        async { Ok(()) }
    }

    /// A consumer's subscription ended; may emit events.
    fn handle_cancel(
        &mut self,
        consumer: SubscriptionId,
        reason: &ExitReason,
        ctx: &mut Context<Self::Message>,
    ) -> impl Future<Output = Result<Vec<Self::Event>, BoxError>> + Send {
        let _ = (consumer, reason, ctx);
        async { Ok(Vec::new()) }
    }

    /// The buffer was full and `discarded` events were dropped. Return whether to log the
    /// default warning (GenStage's `format_discarded`).
    fn handle_discarded(&mut self, discarded: usize, buffered: usize) -> bool {
        let _ = (discarded, buffered);
        true
    }

    /// The stage is stopping.
    fn terminate(&mut self, reason: &ExitReason) -> impl Future<Output = ()> + Send {
        let _ = reason;
        async {}
    }
}

/// Options of a producer: buffer, demand mode, dispatcher, name.
///
/// # Examples
///
/// ```
/// use weir_core::{BufferKeep, DemandMode, ProducerOptions};
///
/// let options = ProducerOptions::<u64>::new()
///     .name("orders")
///     .buffer_size(50_000)
///     .buffer_keep(BufferKeep::First)
///     .demand(DemandMode::Accumulate);
/// ```
pub struct ProducerOptions<T> {
    pub(crate) name: Option<String>,
    pub(crate) setup: ProducerSetup<T>,
}

impl<T> Default for ProducerOptions<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> ProducerOptions<T> {
    /// Defaults: `buffer_size` 10,000 keeping the last events, forward demand, demand dispatcher.
    pub fn new() -> Self {
        Self::with_buffer(BufferSize::default())
    }

    pub(crate) fn with_buffer(buffer_size: BufferSize) -> Self {
        ProducerOptions {
            name: None,
            setup: ProducerSetup {
                buffer_size,
                buffer_keep: BufferKeep::Last,
                demand: DemandMode::Forward,
                dispatcher: None,
            },
        }
    }

    /// The stage's name, used in logs.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// How many events to buffer beyond demand: a count, or [`BufferSize::Unbounded`].
    pub fn buffer_size(mut self, size: impl Into<BufferSize>) -> Self {
        self.setup.buffer_size = size.into();
        self
    }

    /// Which events a full buffer keeps.
    pub fn buffer_keep(mut self, keep: BufferKeep) -> Self {
        self.setup.buffer_keep = keep;
        self
    }

    /// The initial demand mode.
    pub fn demand(mut self, mode: DemandMode) -> Self {
        self.setup.demand = mode;
        self
    }

    /// The dispatcher (default [`DemandDispatcher`](crate::dispatcher::DemandDispatcher)).
    pub fn dispatcher(mut self, dispatcher: impl Dispatcher<T>) -> Self {
        self.setup.dispatcher = Some(Box::new(dispatcher));
        self
    }
}

/// Starts a producer as a tokio task.
///
/// # Errors
///
/// [`Error::InvalidOption`] for invalid options (e.g. `buffer_size` 0), [`Error::NoRuntime`]
/// outside a tokio runtime.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), weir_core::Error> {
/// use weir_core::{start_producer, Error, ProducerOptions};
///
/// let producer = start_producer(weir_core::from_enumerable(0..10u64), ProducerOptions::new())?;
/// let err = start_producer(weir_core::from_enumerable(0..10u64), ProducerOptions::new().buffer_size(0));
/// assert!(matches!(err, Err(Error::InvalidOption { option: "buffer_size", .. })));
/// # Ok(()) }
/// ```
pub fn start_producer<P: Producer>(
    producer: P,
    options: ProducerOptions<P::Event>,
) -> Result<ProducerHandle<P::Event, P::Message>, Error> {
    let spawned = runtime::spawn(AsProducerStage(producer), options.name, options.setup, Vec::new())?;
    Ok(ProducerHandle {
        stage: spawned.stage,
        producer: ProducerRef::new(std::sync::Arc::new(spawned.inbox)),
    })
}

struct AsProducerStage<P>(P);

impl<P: Producer> Behaviour for AsProducerStage<P> {
    type In = Never;
    type Out = P::Event;
    type Message = P::Message;
    const KIND: Kind = Kind::Producer;

    fn demand(
        &mut self,
        demand: usize,
        ctx: &mut Context<P::Message>,
    ) -> impl Future<Output = Emit<P::Event>> + Send {
        self.0.handle_demand(demand, ctx)
    }

    async fn events(
        &mut self,
        _events: Vec<Never>,
        _from: SubscriptionId,
        _ctx: &mut Context<P::Message>,
    ) -> Emit<P::Event> {
        Ok(Vec::new())
    }

    fn info(
        &mut self,
        message: P::Message,
        ctx: &mut Context<P::Message>,
    ) -> impl Future<Output = Emit<P::Event>> + Send {
        self.0.handle_info(message, ctx)
    }

    async fn subscribe(&mut self, peer: Peer, ctx: &mut Context<P::Message>) -> Result<AskMode, BoxError> {
        if let Peer::Consumer(sub) = peer {
            self.0.handle_subscribe(sub, ctx).await?;
        }
        Ok(AskMode::Automatic)
    }

    async fn cancel(
        &mut self,
        peer: Peer,
        reason: &ExitReason,
        ctx: &mut Context<P::Message>,
    ) -> Emit<P::Event> {
        match peer {
            Peer::Consumer(sub) => self.0.handle_cancel(sub, reason, ctx).await,
            Peer::Producer(_) => Ok(Vec::new()),
        }
    }

    fn discarded(&mut self, discarded: usize, buffered: usize) -> bool {
        self.0.handle_discarded(discarded, buffered)
    }

    fn terminate(&mut self, reason: &ExitReason) -> impl Future<Output = ()> + Send {
        self.0.terminate(reason)
    }
}
