//! Consumers: stages that ask for events and handle them.

use std::future::Future;
use std::sync::Arc;

use crate::error::{BoxError, Error, ExitReason};
use crate::handle::{AsProducer, ConsumerHandle, ConsumerRef};
use crate::producer::ProducerOptions;
use crate::runtime::{self, Behaviour, Emit, Kind, Never, Peer, Subscriptions};
use crate::stage::Context;
use crate::subscription::{AskMode, SubscribeOptions, SubscriptionId};

/// A stage that consumes events (GenStage's `:consumer`).
///
/// Only [`handle_events`](Consumer::handle_events) is required. Events come in chunks of at
/// most `max_demand - min_demand`; the runtime asks for more as chunks are handled, unless
/// [`handle_subscribe`](Consumer::handle_subscribe) chose [`AskMode::Manual`].
///
/// # Examples
///
/// ```
/// use weir_core::{BoxError, Consumer, Context, SubscriptionId};
///
/// struct Sum(u64);
///
/// impl Consumer for Sum {
///     type Event = u64;
///     type Message = ();
///
///     async fn handle_events(&mut self, events: Vec<u64>, _from: SubscriptionId, _ctx: &mut Context) -> Result<(), BoxError> {
///         self.0 += events.iter().sum::<u64>();
///         Ok(())
///     }
/// }
/// ```
pub trait Consumer: Send + 'static {
    /// The events it consumes.
    type Event: Send + 'static;
    /// The messages it accepts through [`StageRef::cast`](crate::StageRef::cast) and timers.
    type Message: Send + 'static;

    /// Handles a chunk of events from the subscription `from`.
    fn handle_events(
        &mut self,
        events: Vec<Self::Event>,
        from: SubscriptionId,
        ctx: &mut Context<Self::Message>,
    ) -> impl Future<Output = Result<(), BoxError>> + Send;

    /// Subscribing to a producer; choose who asks for demand (default: automatic).
    fn handle_subscribe(
        &mut self,
        producer: SubscriptionId,
        ctx: &mut Context<Self::Message>,
    ) -> impl Future<Output = Result<AskMode, BoxError>> + Send {
        let _ = (producer, ctx);
        async { Ok(AskMode::Automatic) }
    }

    /// A subscription ended: the producer finished, failed, refused or was cancelled.
    fn handle_cancel(
        &mut self,
        producer: SubscriptionId,
        reason: &ExitReason,
        ctx: &mut Context<Self::Message>,
    ) -> impl Future<Output = Result<(), BoxError>> + Send {
        let _ = (producer, reason, ctx);
        async { Ok(()) }
    }

    /// A message arrived (cast, call, timer or info).
    fn handle_info(
        &mut self,
        message: Self::Message,
        ctx: &mut Context<Self::Message>,
    ) -> impl Future<Output = Result<(), BoxError>> + Send {
        let _ = (message, ctx);
        async { Ok(()) }
    }

    /// The stage is stopping.
    fn terminate(&mut self, reason: &ExitReason) -> impl Future<Output = ()> + Send {
        let _ = reason;
        async {}
    }
}

/// Options of a consumer: its name and the producers it subscribes to when it starts
/// (and again after a supervisor restarts it).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), weir_core::Error> {
/// use weir_core::{from_enumerable, start_producer, ConsumerOptions, ProducerOptions, SubscribeOptions};
///
/// let numbers = start_producer(from_enumerable(0..100u64), ProducerOptions::new())?;
/// let options = ConsumerOptions::new()
///     .name("printer")
///     .subscribe_to(&numbers, SubscribeOptions::new().max_demand(10));
/// # let _ = options; Ok(()) }
/// ```
pub struct ConsumerOptions<T> {
    pub(crate) name: Option<String>,
    pub(crate) subscriptions: Subscriptions<T>,
}

impl<T> Default for ConsumerOptions<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> ConsumerOptions<T> {
    /// No name, no subscriptions.
    pub fn new() -> Self {
        ConsumerOptions { name: None, subscriptions: Vec::new() }
    }

    /// The stage's name, used in logs.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Subscribes to `producer` when the stage starts.
    pub fn subscribe_to(mut self, producer: &impl AsProducer<T>, options: SubscribeOptions<T>) -> Self {
        self.subscriptions.push((producer.as_producer().clone(), options));
        self
    }
}

/// Starts a consumer as a tokio task; it subscribes to the producers in its options.
///
/// # Errors
///
/// [`Error::InvalidOption`] for invalid subscription options, [`Error::NoRuntime`] outside a
/// tokio runtime.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), weir_core::Error> {
/// use weir_core::{
///     from_enumerable, start_consumer, start_producer, BoxError, Consumer, ConsumerOptions, Context,
///     Error, ExitReason, ProducerOptions, SubscribeOptions, SubscriptionId,
/// };
///
/// struct Print;
/// impl Consumer for Print {
///     type Event = u64;
///     type Message = ();
///     async fn handle_events(&mut self, events: Vec<u64>, _: SubscriptionId, _: &mut Context) -> Result<(), BoxError> {
///         println!("{events:?}");
///         Ok(())
///     }
/// }
///
/// let numbers = start_producer(from_enumerable(0..10u64), ProducerOptions::new())?;
/// let printer = start_consumer(Print, ConsumerOptions::new().subscribe_to(&numbers, SubscribeOptions::new()))?;
/// assert!(matches!(printer.wait().await, ExitReason::Normal));
///
/// let bad = ConsumerOptions::new().subscribe_to(&numbers, SubscribeOptions::new().max_demand(0));
/// assert!(matches!(start_consumer(Print, bad), Err(Error::InvalidOption { option: "max_demand", .. })));
/// # Ok(()) }
/// ```
pub fn start_consumer<C: Consumer>(
    consumer: C,
    options: ConsumerOptions<C::Event>,
) -> Result<ConsumerHandle<C::Event, C::Message>, Error> {
    let setup = ProducerOptions::<Never>::new().setup;
    let spawned = runtime::spawn(AsConsumerStage(consumer), options.name, setup, options.subscriptions)?;
    Ok(ConsumerHandle { stage: spawned.stage, consumer: ConsumerRef::new(Arc::new(spawned.inbox)) })
}

struct AsConsumerStage<C>(C);

impl<C: Consumer> Behaviour for AsConsumerStage<C> {
    type In = C::Event;
    type Out = Never;
    type Message = C::Message;
    const KIND: Kind = Kind::Consumer;

    async fn demand(&mut self, _demand: usize, _ctx: &mut Context<C::Message>) -> Emit<Never> {
        Ok(Vec::new())
    }

    async fn events(
        &mut self,
        events: Vec<C::Event>,
        from: SubscriptionId,
        ctx: &mut Context<C::Message>,
    ) -> Emit<Never> {
        self.0.handle_events(events, from, ctx).await.map(|()| Vec::new())
    }

    async fn info(&mut self, message: C::Message, ctx: &mut Context<C::Message>) -> Emit<Never> {
        self.0.handle_info(message, ctx).await.map(|()| Vec::new())
    }

    async fn subscribe(&mut self, peer: Peer, ctx: &mut Context<C::Message>) -> Result<AskMode, BoxError> {
        match peer {
            Peer::Producer(sub) => self.0.handle_subscribe(sub, ctx).await,
            Peer::Consumer(_) => Ok(AskMode::Automatic),
        }
    }

    async fn cancel(
        &mut self,
        peer: Peer,
        reason: &ExitReason,
        ctx: &mut Context<C::Message>,
    ) -> Emit<Never> {
        match peer {
            Peer::Producer(sub) => self.0.handle_cancel(sub, reason, ctx).await.map(|()| Vec::new()),
            Peer::Consumer(_) => Ok(Vec::new()),
        }
    }

    fn discarded(&mut self, _discarded: usize, _buffered: usize) -> bool {
        true
    }

    fn terminate(&mut self, reason: &ExitReason) -> impl Future<Output = ()> + Send {
        self.0.terminate(reason)
    }
}
