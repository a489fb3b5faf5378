//! Supervision: restart stages that stop, with the strategies Erlang users know.
//!
//! Children start in the order they are added, as they are added. The handles a [`Supervisor`] gives out follow
//! their child across restarts, so a restarted consumer re-subscribes to the restarted
//! producer through the same handle (the role Erlang's registered names play).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::consumer::{start_consumer, Consumer, ConsumerOptions};
use crate::error::{Error, ExitReason};
use crate::handle::{ConsumerHandle, ProducerConsumerHandle, ProducerHandle};
use crate::producer::{start_producer, Producer, ProducerOptions};
use crate::producer_consumer::{start_producer_consumer, ProducerConsumer, ProducerConsumerOptions};
use crate::stage::AnyStageRef;

/// Which children restart when one stops and must be restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Only the child that stopped (the default).
    #[default]
    OneForOne,
    /// The child that stopped and every child added after it: the usual choice for a
    /// pipeline, whose later stages consume from earlier ones.
    RestForOne,
    /// Every child.
    OneForAll,
}

/// When a child that stopped is restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Restart {
    /// Always (the default, as in Erlang). Unsuited to finite producers.
    #[default]
    Permanent,
    /// Only when it failed.
    Transient,
    /// Never.
    Temporary,
}

impl Restart {
    fn restarts_on(self, reason: &ExitReason) -> bool {
        match self {
            Restart::Permanent => true,
            Restart::Transient => reason.is_failure(),
            Restart::Temporary => false,
        }
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Starts a new instance of a child and re-points the child's handles at it.
type Restarter = Box<dyn Fn() -> Result<AnyStageRef, Error> + Send + Sync>;

struct Child {
    restart: Restart,
    start: Restarter,
    current: Option<AnyStageRef>,
    /// Bumped when the supervisor stops or restarts the child, so stale exits are ignored.
    generation: u64,
}

/// Starts stages and restarts them when they stop, within a restart intensity
/// (`max_restarts` in `max_seconds`, default 3 in 5 s, as in Erlang); beyond it the supervisor
/// stops every child and fails.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), weir_core::Error> {
/// use weir_core::{from_enumerable, stream, ProducerOptions, Restart, Strategy, SubscribeOptions, Supervisor};
///
/// let mut supervisor = Supervisor::new(Strategy::RestForOne);
/// let numbers = supervisor.producer(Restart::Transient, || {
///     (from_enumerable(0..3u32), ProducerOptions::new())
/// })?;
/// let running = supervisor.start()?;
/// # use futures::StreamExt;
/// let seen: Vec<u32> = stream(&numbers, SubscribeOptions::new())?.collect().await;
/// assert_eq!(seen, vec![0, 1, 2]);
/// // The producer finished normally: a transient child is not restarted.
/// assert!(!running.wait().await.is_failure());
/// # Ok(()) }
/// ```
pub struct Supervisor {
    strategy: Strategy,
    max_restarts: usize,
    max_seconds: Duration,
    shutdown_timeout: Duration,
    children: Vec<Child>,
}

impl Supervisor {
    /// A supervisor with no children.
    pub fn new(strategy: Strategy) -> Self {
        Supervisor {
            strategy,
            max_restarts: 3,
            max_seconds: Duration::from_secs(5),
            shutdown_timeout: Duration::from_secs(5),
            children: Vec::new(),
        }
    }

    /// At most this many restarts in `max_seconds` (default 3).
    pub fn max_restarts(mut self, max_restarts: usize) -> Self {
        self.max_restarts = max_restarts;
        self
    }

    /// The period of the restart intensity (default 5 s).
    pub fn max_seconds(mut self, max_seconds: Duration) -> Self {
        self.max_seconds = max_seconds;
        self
    }

    /// How long a child may take to stop before its task is aborted (default 5 s, Erlang's
    /// `shutdown`).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    fn add<H: Clone + Send + Sync + 'static>(
        &mut self,
        restart: Restart,
        start: impl Fn() -> Result<H, Error> + Send + Sync + 'static,
        rebind: impl Fn(&H, &H) + Send + Sync + 'static,
        lifecycle: impl Fn(&H) -> AnyStageRef + Send + Sync + 'static,
    ) -> Result<H, Error> {
        let first = start()?;
        let current = lifecycle(&first);
        let stable = first.clone();
        let restarter: Restarter = Box::new(move || {
            let next = start()?;
            rebind(&stable, &next);
            Ok(lifecycle(&next))
        });
        self.children.push(Child { restart, start: restarter, current: Some(current), generation: 0 });
        Ok(first)
    }

    /// Starts a producer now, and again from `factory` whenever it must restart.
    ///
    /// # Errors
    ///
    /// The producer's own start errors (invalid options...).
    pub fn producer<P: Producer>(
        &mut self,
        restart: Restart,
        factory: impl Fn() -> (P, ProducerOptions<P::Event>) + Send + Sync + 'static,
    ) -> Result<ProducerHandle<P::Event, P::Message>, Error> {
        self.add(
            restart,
            move || {
                let (producer, options) = factory();
                start_producer(producer, options)
            },
            |stable: &ProducerHandle<_, _>, next| {
                stable.stage.rebind(&next.stage);
                stable.producer.rebind(&next.producer);
            },
            |h| h.stage.to_any(),
        )
    }

    /// Starts a producer-consumer now, and again from `factory` whenever it must restart;
    /// its subscriptions are made again each time.
    ///
    /// # Errors
    ///
    /// The stage's own start errors (invalid options...).
    pub fn producer_consumer<S: ProducerConsumer>(
        &mut self,
        restart: Restart,
        factory: impl Fn() -> (S, ProducerConsumerOptions<S::In, S::Out>) + Send + Sync + 'static,
    ) -> Result<ProducerConsumerHandle<S::In, S::Out, S::Message>, Error> {
        self.add(
            restart,
            move || {
                let (stage, options) = factory();
                start_producer_consumer(stage, options)
            },
            |stable: &ProducerConsumerHandle<_, _, _>, next| {
                stable.stage.rebind(&next.stage);
                stable.producer.rebind(&next.producer);
                stable.consumer.rebind(&next.consumer);
            },
            |h| h.stage.to_any(),
        )
    }

    /// Starts a consumer now, and again from `factory` whenever it must restart;
    /// its subscriptions are made again each time.
    ///
    /// # Errors
    ///
    /// The consumer's own start errors (invalid options...).
    pub fn consumer<C: Consumer>(
        &mut self,
        restart: Restart,
        factory: impl Fn() -> (C, ConsumerOptions<C::Event>) + Send + Sync + 'static,
    ) -> Result<ConsumerHandle<C::Event, C::Message>, Error> {
        self.add(
            restart,
            move || {
                let (consumer, options) = factory();
                start_consumer(consumer, options)
            },
            |stable: &ConsumerHandle<_, _>, next| {
                stable.stage.rebind(&next.stage);
                stable.consumer.rebind(&next.consumer);
            },
            |h| h.stage.to_any(),
        )
    }

    /// Starts supervising the children added so far.
    ///
    /// # Errors
    ///
    /// [`Error::NoRuntime`] outside a tokio runtime.
    pub fn start(self) -> Result<SupervisorHandle, Error> {
        let rt = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let (stop_tx, stop_rx) = mpsc::unbounded_channel();
        let (exit_tx, exit_rx) = watch::channel(None);
        rt.spawn(async move {
            let reason = self.run(stop_rx).await;
            exit_tx.send_replace(Some(reason));
        });
        Ok(SupervisorHandle { stop: stop_tx, exit: exit_rx })
    }

    async fn run(mut self, mut stop: mpsc::UnboundedReceiver<ExitReason>) -> ExitReason {
        let mut exits: FuturesUnordered<BoxFuture<(usize, u64, ExitReason)>> = FuturesUnordered::new();
        for i in 0..self.children.len() {
            self.watch(i, &mut exits);
        }
        let mut restarts: VecDeque<Instant> = VecDeque::new();
        loop {
            if self.children.iter().all(|c| c.current.is_none()) {
                return ExitReason::Normal;
            }
            let first = tokio::select! {
                Some(exit) = exits.next() => exit,
                reason = stop.recv() => {
                    let reason = reason.unwrap_or(ExitReason::Shutdown);
                    self.stop_children(0..self.children.len()).await;
                    return reason;
                }
            };
            // Stages that stop together (a consumer following its producer) are handled in
            // child order, so producers restart before their consumers re-subscribe.
            let mut stopped = vec![first];
            while let Some(Some(exit)) = exits.next().now_or_never() {
                stopped.push(exit);
            }
            stopped.sort_by_key(|(i, _, _)| *i);
            for (i, generation, reason) in stopped {
                if self.children[i].generation != generation {
                    continue;
                }
                self.children[i].current = None;
                if !self.children[i].restart.restarts_on(&reason) {
                    continue;
                }
                let now = Instant::now();
                restarts.push_back(now);
                while restarts.front().is_some_and(|t| now.duration_since(*t) > self.max_seconds) {
                    restarts.pop_front();
                }
                if restarts.len() > self.max_restarts {
                    tracing::error!(%reason, "restart intensity exceeded, supervisor stopping");
                    self.stop_children(0..self.children.len()).await;
                    return Error::RestartIntensity {
                        max_restarts: self.max_restarts,
                        max_seconds: self.max_seconds,
                    }
                    .into();
                }
                tracing::warn!(child = i, %reason, "restarting child");
                let affected = match self.strategy {
                    Strategy::OneForOne => i..i + 1,
                    Strategy::RestForOne => i..self.children.len(),
                    Strategy::OneForAll => 0..self.children.len(),
                };
                self.stop_children(affected.clone()).await;
                for j in affected {
                    if j != i && self.children[j].restart == Restart::Temporary {
                        continue;
                    }
                    match (self.children[j].start)() {
                        Ok(instance) => {
                            self.children[j].current = Some(instance);
                            self.watch(j, &mut exits);
                        }
                        Err(error) => {
                            tracing::error!(child = j, %error, "child failed to restart, supervisor stopping");
                            self.stop_children(0..self.children.len()).await;
                            return error.into();
                        }
                    }
                }
            }
        }
    }

    fn watch(&mut self, i: usize, exits: &mut FuturesUnordered<BoxFuture<(usize, u64, ExitReason)>>) {
        let child = &mut self.children[i];
        child.generation += 1;
        let generation = child.generation;
        if let Some(current) = &child.current {
            let current = current.clone();
            exits.push(Box::pin(async move { (i, generation, current.wait().await) }));
        }
    }

    /// Stops the children in `range`, last first.
    async fn stop_children(&mut self, range: std::ops::Range<usize>) {
        for child in self.children[range].iter_mut().rev() {
            child.generation += 1;
            if let Some(current) = child.current.take() {
                current.stop_within(self.shutdown_timeout).await;
            }
        }
    }
}

/// A running [`Supervisor`]. Dropping it stops the supervisor and its children, last first.
#[derive(Debug)]
#[must_use = "dropping the handle stops the supervisor and its children"]
pub struct SupervisorHandle {
    stop: mpsc::UnboundedSender<ExitReason>,
    exit: watch::Receiver<Option<ExitReason>>,
}

impl SupervisorHandle {
    /// Stops every child, last first, and waits.
    pub async fn stop(&self) -> ExitReason {
        let _stopped_already = self.stop.send(ExitReason::Shutdown);
        self.wait().await
    }

    /// Waits until the supervisor stops: every child stopped for good (normal), or the restart
    /// intensity was exceeded (a failure).
    pub async fn wait(&self) -> ExitReason {
        let mut exit = self.exit.clone();
        let result = exit.wait_for(Option::is_some).await.map(|r| r.clone());
        match result {
            Ok(Some(reason)) => reason,
            _ => ExitReason::failed("supervisor task vanished"),
        }
    }
}
