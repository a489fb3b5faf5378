//! Producer-consumers: stages that turn the events they consume into events they produce.

use std::future::Future;
use std::sync::Arc;

use crate::buffer::{BufferKeep, BufferSize};
use crate::demand::DemandMode;
use crate::dispatcher::Dispatcher;
use crate::error::{BoxError, Error, ExitReason};
use crate::handle::{AsProducer, ConsumerRef, ProducerConsumerHandle, ProducerRef};
use crate::producer::ProducerOptions;
use crate::runtime::{self, Behaviour, Emit, Kind, Peer, Subscriptions};
use crate::stage::Context;
use crate::subscription::{AskMode, SubscribeOptions, SubscriptionId};

/// A stage that consumes events and produces events (GenStage's `:producer_consumer`).
///
/// Only [`handle_events`](ProducerConsumer::handle_events) is required. It is called only
/// while its consumers have demand, so back-pressure reaches upstream producers; events it
/// emits beyond demand (e.g. one event in, many out) are buffered.
///
/// # Examples
///
/// ```
/// use weir_core::{BoxError, Context, ProducerConsumer, SubscriptionId};
///
/// struct Double;
///
/// impl ProducerConsumer for Double {
///     type In = u64;
///     type Out = u64;
///     type Message = ();
///
///     async fn handle_events(&mut self, events: Vec<u64>, _from: SubscriptionId, _ctx: &mut Context) -> Result<Vec<u64>, BoxError> {
///         Ok(events.into_iter().map(|e| e * 2).collect())
///     }
/// }
/// ```
pub trait ProducerConsumer: Send + 'static {
    /// The events it consumes.
    type In: Send + 'static;
    /// The events it produces.
    type Out: Send + 'static;
    /// The messages it accepts through [`StageRef::cast`](crate::StageRef::cast) and timers.
    type Message: Send + 'static;

    /// Turns a chunk of events from `from` into events to emit.
    fn handle_events(
        &mut self,
        events: Vec<Self::In>,
        from: SubscriptionId,
        ctx: &mut Context<Self::Message>,
    ) -> impl Future<Output = Result<Vec<Self::Out>, BoxError>> + Send;

    /// A subscription starts: to a producer (choose who asks for demand) or from a consumer.
    fn handle_subscribe(
        &mut self,
        peer: Peer,
        ctx: &mut Context<Self::Message>,
    ) -> impl Future<Output = Result<AskMode, BoxError>> + Send {
        let _ = (peer, ctx);
        async { Ok(AskMode::Automatic) }
    }

    /// A subscription ended; may emit events.
    fn handle_cancel(
        &mut self,
        peer: Peer,
        reason: &ExitReason,
        ctx: &mut Context<Self::Message>,
    ) -> impl Future<Output = Result<Vec<Self::Out>, BoxError>> + Send {
        let _ = (peer, reason, ctx);
        async { Ok(Vec::new()) }
    }

    /// A message arrived (cast, call, timer or info); may emit events.
    fn handle_info(
        &mut self,
        message: Self::Message,
        ctx: &mut Context<Self::Message>,
    ) -> impl Future<Output = Result<Vec<Self::Out>, BoxError>> + Send {
        let _ = (message, ctx);
        async { Ok(Vec::new()) }
    }

    /// The buffer was full and `discarded` events were dropped. Return whether to log the
    /// default warning.
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

/// Options of a producer-consumer: those of a producer and of a consumer.
///
/// The buffer is unbounded by default, as in GenStage: it holds only what `handle_events`
/// emits beyond its consumers' demand, but a stage that turns one event into very many can
/// grow it without bound. Set [`buffer_size`](Self::buffer_size) to cap it.
///
/// # Examples
///
/// ```
/// use weir_core::{ProducerConsumerOptions, BufferSize};
///
/// let options = ProducerConsumerOptions::<u64, String>::new().name("render").buffer_size(10_000);
/// ```
pub struct ProducerConsumerOptions<I, O> {
    producer: ProducerOptions<O>,
    subscriptions: Subscriptions<I>,
}

impl<I, O> Default for ProducerConsumerOptions<I, O> {
    fn default() -> Self {
        Self::new()
    }
}

impl<I, O> ProducerConsumerOptions<I, O> {
    /// Defaults: unbounded buffer, forward demand, demand dispatcher, no subscriptions.
    pub fn new() -> Self {
        ProducerConsumerOptions {
            producer: ProducerOptions::with_buffer(BufferSize::Unbounded),
            subscriptions: Vec::new(),
        }
    }

    /// The stage's name, used in logs.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.producer = self.producer.name(name);
        self
    }

    /// How many emitted events to buffer beyond demand.
    pub fn buffer_size(mut self, size: impl Into<BufferSize>) -> Self {
        self.producer = self.producer.buffer_size(size);
        self
    }

    /// Which events a full buffer keeps.
    pub fn buffer_keep(mut self, keep: BufferKeep) -> Self {
        self.producer = self.producer.buffer_keep(keep);
        self
    }

    /// The initial demand mode.
    pub fn demand(mut self, mode: DemandMode) -> Self {
        self.producer = self.producer.demand(mode);
        self
    }

    /// The dispatcher for its consumers.
    pub fn dispatcher(mut self, dispatcher: impl Dispatcher<O>) -> Self {
        self.producer = self.producer.dispatcher(dispatcher);
        self
    }

    /// Subscribes to `producer` when the stage starts.
    pub fn subscribe_to(mut self, producer: &impl AsProducer<I>, options: SubscribeOptions<I>) -> Self {
        self.subscriptions.push((producer.as_producer().clone(), options));
        self
    }
}

/// Starts a producer-consumer as a tokio task.
///
/// # Errors
///
/// [`Error::InvalidOption`] for invalid options, [`Error::NoRuntime`] outside a tokio runtime.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), weir_core::Error> {
/// use futures::StreamExt;
/// use weir_core::{from_enumerable, start_producer, start_producer_consumer, stream, BoxError, Context,
///     ProducerConsumer, ProducerConsumerOptions, ProducerOptions, SubscribeOptions, SubscriptionId};
///
/// struct Double;
/// impl ProducerConsumer for Double {
///     type In = u64;
///     type Out = u64;
///     type Message = ();
///     async fn handle_events(&mut self, e: Vec<u64>, _: SubscriptionId, _: &mut Context) -> Result<Vec<u64>, BoxError> {
///         Ok(e.into_iter().map(|x| x * 2).collect())
///     }
/// }
///
/// let numbers = start_producer(from_enumerable(1..=3u64), ProducerOptions::new())?;
/// let doubler = start_producer_consumer(Double,
///     ProducerConsumerOptions::new().subscribe_to(&numbers, SubscribeOptions::new()))?;
/// let out: Vec<u64> = stream(&doubler, SubscribeOptions::new())?.collect().await;
/// assert_eq!(out, vec![2, 4, 6]);
/// # Ok(()) }
/// ```
pub fn start_producer_consumer<S: ProducerConsumer>(
    stage: S,
    options: ProducerConsumerOptions<S::In, S::Out>,
) -> Result<ProducerConsumerHandle<S::In, S::Out, S::Message>, Error> {
    let ProducerOptions { name, setup } = options.producer;
    let spawned = runtime::spawn(AsProducerConsumerStage(stage), name, setup, options.subscriptions)?;
    let inbox = Arc::new(spawned.inbox);
    Ok(ProducerConsumerHandle {
        stage: spawned.stage,
        producer: ProducerRef::new(inbox.clone()),
        consumer: ConsumerRef::new(inbox),
    })
}

struct AsProducerConsumerStage<S>(S);

impl<S: ProducerConsumer> Behaviour for AsProducerConsumerStage<S> {
    type In = S::In;
    type Out = S::Out;
    type Message = S::Message;
    const KIND: Kind = Kind::ProducerConsumer;

    async fn demand(&mut self, _demand: usize, _ctx: &mut Context<S::Message>) -> Emit<S::Out> {
        Ok(Vec::new())
    }

    fn events(
        &mut self,
        events: Vec<S::In>,
        from: SubscriptionId,
        ctx: &mut Context<S::Message>,
    ) -> impl Future<Output = Emit<S::Out>> + Send {
        self.0.handle_events(events, from, ctx)
    }

    fn info(
        &mut self,
        message: S::Message,
        ctx: &mut Context<S::Message>,
    ) -> impl Future<Output = Emit<S::Out>> + Send {
        self.0.handle_info(message, ctx)
    }

    fn subscribe(
        &mut self,
        peer: Peer,
        ctx: &mut Context<S::Message>,
    ) -> impl Future<Output = Result<AskMode, BoxError>> + Send {
        self.0.handle_subscribe(peer, ctx)
    }

    fn cancel(
        &mut self,
        peer: Peer,
        reason: &ExitReason,
        ctx: &mut Context<S::Message>,
    ) -> impl Future<Output = Emit<S::Out>> + Send {
        self.0.handle_cancel(peer, reason, ctx)
    }

    fn discarded(&mut self, discarded: usize, buffered: usize) -> bool {
        self.0.handle_discarded(discarded, buffered)
    }

    fn terminate(&mut self, reason: &ExitReason) -> impl Future<Output = ()> + Send {
        self.0.terminate(reason)
    }
}
