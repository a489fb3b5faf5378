//! What every stage shares: the [`Context`] its callbacks get, and [`StageRef`], the handle
//! others use to message it, stop it and wait for it.

use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::AbortHandle;

use crate::demand::DemandMode;
use crate::error::{Error, ExitReason};
use crate::subscription::{StageId, SubscriptionId};

/// A value that can be re-pointed at a restarted stage, so handles given out stay valid.
pub(crate) struct Slot<T>(RwLock<T>);

impl<T: Clone> Slot<T> {
    pub(crate) fn new(value: T) -> Arc<Self> {
        Arc::new(Slot(RwLock::new(value)))
    }

    pub(crate) fn get(&self) -> T {
        self.0.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    pub(crate) fn set(&self, value: T) {
        *self.0.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = value;
    }
}

/// Messages for a stage that are not part of the demand protocol.
pub(crate) enum Mail<M> {
    Info(M),
    InfoAfterEvents(M, Option<oneshot::Sender<()>>),
    Stop(ExitReason),
    SetDemandMode(DemandMode),
    GetDemandMode(oneshot::Sender<DemandMode>),
    EstimateBuffered(oneshot::Sender<usize>),
}

/// What a callback asked the runtime to do once it returns.
pub(crate) enum Command {
    Ask(SubscriptionId, usize),
    Cancel(SubscriptionId),
    SetDemandMode(DemandMode),
    Finish,
    Stop(ExitReason),
}

/// Given to every callback: ask for demand, cancel subscriptions, schedule messages, stop.
///
/// Requests take effect when the callback returns.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use weir_core::{BoxError, Consumer, Context, SubscriptionId};
///
/// struct Ticker;
///
/// impl Consumer for Ticker {
///     type Event = u64;
///     type Message = &'static str;
///
///     async fn handle_events(
///         &mut self,
///         _events: Vec<u64>,
///         _from: SubscriptionId,
///         ctx: &mut Context<&'static str>,
///     ) -> Result<(), BoxError> {
///         ctx.send_after("tick", Duration::from_secs(1));
///         Ok(())
///     }
/// }
/// ```
pub struct Context<M = ()> {
    pub(crate) me: StageRef<M>,
    /// `(max_demand, min_demand)` of each subscription to a producer.
    pub(crate) subscriptions: std::collections::HashMap<SubscriptionId, (usize, usize)>,
    pub(crate) name: Arc<str>,
    pub(crate) commands: Vec<Command>,
    pub(crate) timers: Vec<(Duration, M)>,
    pub(crate) demand_mode: DemandMode,
}

impl<M> Context<M> {
    /// Asks a producer for `demand` more events on a subscription in manual mode
    /// (GenStage's `ask/3`).
    pub fn ask(&mut self, subscription: SubscriptionId, demand: usize) {
        if demand > 0 {
            self.commands.push(Command::Ask(subscription, demand));
        }
    }

    /// The `(max_demand, min_demand)` of a subscription to a producer, while it lasts.
    pub fn subscription_demand(&self, subscription: SubscriptionId) -> Option<(usize, usize)> {
        self.subscriptions.get(&subscription).copied()
    }

    /// Cancels a subscription: one of this stage's subscriptions to a producer (the stage
    /// keeps running whatever the cancel mode), or a consumer's subscription to this producer
    /// (the consumer is told, and reacts per its cancel mode as when its producer stops).
    /// `handle_cancel` is called.
    pub fn cancel(&mut self, subscription: SubscriptionId) {
        self.commands.push(Command::Cancel(subscription));
    }

    /// The producer's demand mode.
    pub fn demand_mode(&self) -> DemandMode {
        self.demand_mode
    }

    /// Switches the producer's demand mode (GenStage's `demand/2`).
    pub fn set_demand_mode(&mut self, mode: DemandMode) {
        self.demand_mode = mode;
        self.commands.push(Command::SetDemandMode(mode));
    }

    /// Stops normally once every event emitted so far has been dispatched: how a finite
    /// producer says it is done. Its consumers then finish too (per their cancel mode).
    pub fn finish(&mut self) {
        self.commands.push(Command::Finish);
    }

    /// Stops the stage right away with `reason`; buffered events are discarded.
    pub fn stop(&mut self, reason: ExitReason) {
        self.commands.push(Command::Stop(reason));
    }

    /// Delivers `message` to this stage's `handle_info` after `delay` (Erlang's `send_after`).
    /// Pending timers die with the stage.
    pub fn send_after(&mut self, message: M, delay: Duration) {
        self.timers.push((delay, message));
    }

    /// A handle to this stage, e.g. for a task that reports back with [`StageRef::cast`].
    pub fn me(&self) -> &StageRef<M> {
        &self.me
    }

    /// The stage's name (given in its options, or its id).
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// The sending half of a [`StageRef::call`]: the stage answers through it.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), weir_core::Error> {
/// use weir_core::{start_producer, BoxError, Context, Producer, ProducerOptions, Reply};
///
/// struct Counter(u64);
/// enum Msg { Get(Reply<u64>) }
///
/// impl Producer for Counter {
///     type Event = u64;
///     type Message = Msg;
///     async fn handle_demand(&mut self, _: usize, _: &mut Context<Msg>) -> Result<Vec<u64>, BoxError> {
///         Ok(Vec::new())
///     }
///     async fn handle_info(&mut self, msg: Msg, _: &mut Context<Msg>) -> Result<Vec<u64>, BoxError> {
///         let Msg::Get(reply) = msg;
///         reply.send(self.0);
///         Ok(Vec::new())
///     }
/// }
///
/// let counter = start_producer(Counter(7), ProducerOptions::new())?;
/// assert_eq!(counter.call(Msg::Get).await?, 7);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Reply<R>(oneshot::Sender<R>);

impl<R> Reply<R> {
    /// Answers the call. A caller that gave up is ignored.
    pub fn send(self, value: R) {
        let _caller_gone = self.0.send(value);
    }
}

pub(crate) struct StageLink<M> {
    pub(crate) id: StageId,
    pub(crate) mail: mpsc::UnboundedSender<Mail<M>>,
    pub(crate) exit: watch::Receiver<Option<ExitReason>>,
    pub(crate) abort: Arc<OnceLock<AbortHandle>>,
}

impl<M> Clone for StageLink<M> {
    fn clone(&self) -> Self {
        StageLink { id: self.id, mail: self.mail.clone(), exit: self.exit.clone(), abort: self.abort.clone() }
    }
}

/// A handle to a running stage: send it messages, call it, stop it, wait for it.
///
/// Cheap to clone. A handle given out by a [`Supervisor`](crate::Supervisor) follows the
/// child across restarts.
pub struct StageRef<M> {
    link: Arc<Slot<StageLink<M>>>,
}

impl<M> Clone for StageRef<M> {
    fn clone(&self) -> Self {
        StageRef { link: self.link.clone() }
    }
}

impl<M> std::fmt::Debug for StageRef<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StageRef").field("id", &self.link.get_id()).finish()
    }
}

impl<M> Slot<StageLink<M>> {
    fn get_id(&self) -> StageId {
        self.0.read().map(|l| l.id).unwrap_or_else(|p| p.into_inner().id)
    }

    fn with<R>(&self, f: impl FnOnce(&StageLink<M>) -> R) -> R {
        f(&self.0.read().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }
}

impl<M: Send + 'static> StageRef<M> {
    pub(crate) fn new(link: StageLink<M>) -> Self {
        StageRef { link: Slot::new(link) }
    }

    /// A handle fixed on the instance running now, not following restarts.
    pub(crate) fn pinned(&self) -> Self {
        StageRef::new(self.link.get())
    }

    pub(crate) fn rebind(&self, to: &StageRef<M>) {
        self.link.set(to.link.get());
    }

    fn mail(&self, mail: Mail<M>) -> Result<(), Error> {
        self.link.with(|l| l.mail.send(mail)).map_err(|_| Error::StageStopped)
    }

    /// The running instance's id.
    pub fn id(&self) -> StageId {
        self.link.get_id()
    }

    /// Sends a message to the stage's `handle_info` (GenStage's `cast`).
    ///
    /// # Errors
    ///
    /// [`Error::StageStopped`] if the stage is not running.
    pub fn cast(&self, message: M) -> Result<(), Error> {
        self.mail(Mail::Info(message))
    }

    /// Sends a message carrying a [`Reply`] and waits for the answer (GenStage's `call`).
    ///
    /// # Errors
    ///
    /// [`Error::StageStopped`] if the stage is not running or stops before answering,
    /// [`Error::NoReply`] if it drops the reply.
    pub async fn call<R>(&self, request: impl FnOnce(Reply<R>) -> M) -> Result<R, Error> {
        let (tx, rx) = oneshot::channel();
        self.mail(Mail::Info(request(Reply(tx))))?;
        let mut exit = self.link.with(|l| l.exit.clone());
        tokio::select! {
            // A stopping stage drops the calls still in its mailbox: say so.
            answer = rx => answer.map_err(|_| if self.is_running() { Error::NoReply } else { Error::StageStopped }),
            _ = exit.wait_for(Option::is_some) => Err(Error::StageStopped),
        }
    }

    /// Queues a message to `handle_info` behind the events the producer has buffered
    /// (GenStage's `async_info`); right away if its buffer is empty.
    ///
    /// # Errors
    ///
    /// [`Error::StageStopped`] if the stage is not running.
    pub fn async_info(&self, message: M) -> Result<(), Error> {
        self.mail(Mail::InfoAfterEvents(message, None))
    }

    /// Like [`async_info`](Self::async_info), returning once the message is queued
    /// (GenStage's `sync_info`).
    ///
    /// # Errors
    ///
    /// [`Error::StageStopped`] if the stage is not running.
    pub async fn sync_info(&self, message: M) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        self.mail(Mail::InfoAfterEvents(message, Some(tx)))?;
        rx.await.map_err(|_| Error::StageStopped)
    }

    /// Events the producer holds: its buffer and what its dispatcher keeps
    /// (GenStage's `estimate_buffered_count`).
    ///
    /// # Errors
    ///
    /// [`Error::StageStopped`] if the stage is not running.
    pub async fn estimated_buffered_count(&self) -> Result<usize, Error> {
        let (tx, rx) = oneshot::channel();
        self.mail(Mail::EstimateBuffered(tx))?;
        rx.await.map_err(|_| Error::StageStopped)
    }

    /// The producer's demand mode (GenStage's `demand/1`).
    ///
    /// # Errors
    ///
    /// [`Error::StageStopped`] if the stage is not running.
    pub async fn demand_mode(&self) -> Result<DemandMode, Error> {
        let (tx, rx) = oneshot::channel();
        self.mail(Mail::GetDemandMode(tx))?;
        rx.await.map_err(|_| Error::StageStopped)
    }

    /// Sets the producer's demand mode (GenStage's `demand/2`).
    ///
    /// # Errors
    ///
    /// [`Error::StageStopped`] if the stage is not running.
    pub fn set_demand_mode(&self, mode: DemandMode) -> Result<(), Error> {
        self.mail(Mail::SetDemandMode(mode))
    }

    /// Stops the stage with [`ExitReason::Shutdown`] and waits until it has stopped.
    pub async fn stop(&self) -> ExitReason {
        self.stop_with(ExitReason::Shutdown).await
    }

    /// Stops the stage with `reason` and waits until it has stopped.
    pub async fn stop_with(&self, reason: ExitReason) -> ExitReason {
        let _stopped_already = self.mail(Mail::Stop(reason));
        self.wait().await
    }

    /// Stops the stage with [`ExitReason::Shutdown`]; if it has not stopped within `timeout`
    /// (a callback that never returns), aborts its task. Its peers are told either way.
    pub async fn stop_within(&self, timeout: std::time::Duration) -> ExitReason {
        if let Ok(reason) = tokio::time::timeout(timeout, self.stop()).await {
            return reason;
        }
        if let Some(task) = self.link.with(|l| l.abort.get().cloned()) {
            task.abort();
        }
        self.wait().await
    }

    /// Waits until the stage stops, and tells why.
    pub async fn wait(&self) -> ExitReason {
        let mut exit = self.link.with(|l| l.exit.clone());
        let result = exit.wait_for(Option::is_some).await.map(|r| r.clone());
        match result {
            Ok(Some(reason)) => reason,
            _ => ExitReason::failed("stage task vanished"),
        }
    }

    /// Whether the stage is running.
    pub fn is_running(&self) -> bool {
        self.link.with(|l| l.exit.borrow().is_none())
    }

    /// A handle to this instance that forgets the message type.
    pub fn to_any(&self) -> AnyStageRef {
        AnyStageRef(Arc::new(self.pinned()))
    }
}

type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// What [`AnyStageRef`] needs of a stage, whatever its message type.
trait Lifecycle: Send + Sync {
    fn wait(&self) -> BoxFuture<ExitReason>;
    fn stop_within(&self, timeout: std::time::Duration) -> BoxFuture<ExitReason>;
    fn is_running(&self) -> bool;
}

impl<M: Send + 'static> Lifecycle for StageRef<M> {
    fn wait(&self) -> BoxFuture<ExitReason> {
        let stage = self.clone();
        Box::pin(async move { stage.wait().await })
    }

    fn stop_within(&self, timeout: std::time::Duration) -> BoxFuture<ExitReason> {
        let stage = self.clone();
        Box::pin(async move { stage.stop_within(timeout).await })
    }

    fn is_running(&self) -> bool {
        StageRef::is_running(self)
    }
}

/// A handle to a stage of any message type: wait for it or stop it. What supervisors and
/// flows keep of the stages they run.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), weir_core::Error> {
/// use weir_core::{from_enumerable, start_producer, AnyStageRef, ProducerOptions};
///
/// let producer = start_producer(from_enumerable(0..10u8), ProducerOptions::new())?;
/// let any: AnyStageRef = producer.to_any();
/// assert!(any.is_running());
/// any.stop().await;
/// assert!(!any.is_running());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct AnyStageRef(Arc<dyn Lifecycle>);

impl std::fmt::Debug for AnyStageRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnyStageRef").field("running", &self.is_running()).finish()
    }
}

impl AnyStageRef {
    /// Waits until the stage stops, and tells why.
    pub async fn wait(&self) -> ExitReason {
        self.0.wait().await
    }

    /// Stops the stage with [`ExitReason::Shutdown`] and waits until it has stopped.
    pub async fn stop(&self) -> ExitReason {
        self.0.stop_within(Duration::MAX).await
    }

    /// Like [`StageRef::stop_within`]: stops the stage, aborting it after `timeout`.
    pub async fn stop_within(&self, timeout: Duration) -> ExitReason {
        self.0.stop_within(timeout).await
    }

    /// Whether the stage is running.
    pub fn is_running(&self) -> bool {
        self.0.is_running()
    }
}
