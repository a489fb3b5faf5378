//! Stages shared by the integration tests: a scriptable producer ([`Source`]), a recording
//! consumer ([`Collector`]) and a mapping producer-consumer ([`Mapper`]), each reporting what
//! its callbacks saw through a [`Shared`] log the test reads.
//!
//! Every test runs on tokio's paused clock: [`settle`] lets all stages run until they are idle,
//! [`within`] turns a hang into a failure.

// Each test file uses its own subset of these helpers.
#![allow(dead_code)]

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use weir_core::dispatcher::{DemandDispatcher, Dispatcher, Downstream};
use weir_core::{
    AskMode, BoxError, Consumer, Context, DemandMode, Error, ExitReason, Peer, Producer, ProducerConsumer,
    Reply, SubscriptionId,
};

/// How long a test waits for something before failing (on the paused clock, so it costs nothing).
pub(crate) const TIMEOUT: Duration = Duration::from_secs(60);

/// Lets every stage run until all of them are idle.
///
/// On the paused clock time only advances when no task can run, so once this sleep ends every
/// message sent so far has been handled (and every timer due within 1ms has fired).
pub(crate) async fn settle() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

/// Awaits `fut`, failing the test if it does not finish within [`TIMEOUT`].
pub(crate) async fn within<F: Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(TIMEOUT, fut).await {
        Ok(output) => output,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// The error inside a failed exit reason; panics (failing the test) on a normal one.
pub(crate) fn failure(reason: &ExitReason) -> &Error {
    match reason {
        ExitReason::Failed(error) => error,
        other => panic!("expected a failure, got {other}"),
    }
}

/// A log shared between a stage and the test.
pub(crate) struct Shared<T>(Arc<Mutex<T>>);

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Shared(self.0.clone())
    }
}

impl<T: Default> Default for Shared<T> {
    fn default() -> Self {
        Shared(Arc::new(Mutex::new(T::default())))
    }
}

impl<T> Shared<T> {
    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        // A stage that panicked on purpose never holds the lock, but don't hide the log if it did.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What a [`Source`] emits from `handle_demand`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum OnDemand {
    /// Exactly the demand (up to its limit).
    Exact,
    /// Nothing: events come from [`SourceMsg::Push`].
    Nothing,
    /// This many times the demand (the excess is buffered).
    Times(usize),
    /// At most this many events per call, keeping the rest of the demand owed.
    AtMost(usize),
    /// Panic in `handle_demand`.
    Panic,
}

/// What a [`Source`]'s callbacks saw.
#[derive(Default)]
pub(crate) struct SourceLog {
    /// Every `demand` passed to `handle_demand`, in order.
    pub(crate) demands: Vec<usize>,
    pub(crate) subscribed: Vec<SubscriptionId>,
    pub(crate) cancelled: Vec<(SubscriptionId, ExitReason)>,
    /// `(discarded, buffered)` of every `handle_discarded`.
    pub(crate) discarded: Vec<(usize, usize)>,
    /// Labels of the [`SourceMsg::Mark`] messages handled, in order.
    pub(crate) marks: Vec<&'static str>,
    pub(crate) terminated: Option<ExitReason>,
}

impl SourceLog {
    /// Total demand passed to `handle_demand`.
    pub(crate) fn demanded(&self) -> usize {
        self.demands.iter().sum()
    }
}

/// Messages a [`Source`] understands.
pub(crate) enum SourceMsg {
    /// Emit these events.
    Push(Vec<u64>),
    /// Emit these events and reply with how many events were pushed so far.
    PushAndCount(Vec<u64>, Reply<usize>),
    /// Drop the reply without answering.
    Ignore(Reply<usize>),
    /// Emit these events after `delay` (through `send_after`).
    PushAfter(Vec<u64>, Duration),
    /// Record the label in [`SourceLog::marks`].
    Mark(&'static str),
    /// Switch the demand mode from inside a callback.
    SetMode(DemandMode),
    /// Reply with the demand mode the callback context sees.
    Mode(Reply<DemandMode>),
    /// Emit these events and finish in the same callback.
    PushAndFinish(Vec<u64>),
    /// Finish (stop normally once the buffer drained).
    Finish,
    /// Return an error from `handle_info`.
    Fail,
    /// Panic in `handle_info`.
    Panic,
    /// Panic in `handle_info` while holding a call's reply.
    PanicOnCall(Reply<usize>),
}

/// A scriptable producer of `u64`s counting up from 0.
pub(crate) struct Source {
    next: u64,
    limit: u64,
    on_demand: OnDemand,
    pushed: usize,
    log: Shared<SourceLog>,
}

impl Source {
    /// A source emitting per `on_demand`, without limit, and its log.
    pub(crate) fn new(on_demand: OnDemand) -> (Self, Shared<SourceLog>) {
        let log = Shared::default();
        let source = Source { next: 0, limit: u64::MAX, on_demand, pushed: 0, log: log.clone() };
        (source, log)
    }

    /// Emits from `handle_demand` only events below `limit` (then nothing, without finishing).
    pub(crate) fn limit(mut self, limit: u64) -> Self {
        self.limit = limit;
        self
    }

    fn take(&mut self, n: usize) -> Vec<u64> {
        let end = self.next.saturating_add(n as u64).min(self.limit);
        let events = (self.next..end).collect();
        self.next = end;
        events
    }
}

impl Producer for Source {
    type Event = u64;
    type Message = SourceMsg;

    async fn handle_demand(
        &mut self,
        demand: usize,
        _ctx: &mut Context<SourceMsg>,
    ) -> Result<Vec<u64>, BoxError> {
        self.log.lock().demands.push(demand);
        Ok(match self.on_demand {
            OnDemand::Exact => self.take(demand),
            OnDemand::Nothing => Vec::new(),
            OnDemand::Times(k) => self.take(demand * k),
            OnDemand::AtMost(n) => self.take(n.min(demand)),
            OnDemand::Panic => panic!("handle_demand panicked on purpose"),
        })
    }

    async fn handle_info(
        &mut self,
        message: SourceMsg,
        ctx: &mut Context<SourceMsg>,
    ) -> Result<Vec<u64>, BoxError> {
        match message {
            SourceMsg::Push(events) => Ok(events),
            SourceMsg::PushAndCount(events, reply) => {
                self.pushed += events.len();
                reply.send(self.pushed);
                Ok(events)
            }
            SourceMsg::Ignore(reply) => {
                drop(reply);
                Ok(Vec::new())
            }
            SourceMsg::PushAfter(events, delay) => {
                ctx.send_after(SourceMsg::Push(events), delay);
                Ok(Vec::new())
            }
            SourceMsg::Mark(label) => {
                self.log.lock().marks.push(label);
                Ok(Vec::new())
            }
            SourceMsg::SetMode(mode) => {
                ctx.set_demand_mode(mode);
                Ok(Vec::new())
            }
            SourceMsg::Mode(reply) => {
                reply.send(ctx.demand_mode());
                Ok(Vec::new())
            }
            SourceMsg::PushAndFinish(events) => {
                ctx.finish();
                Ok(events)
            }
            SourceMsg::Finish => {
                ctx.finish();
                Ok(Vec::new())
            }
            SourceMsg::Fail => Err("producer failed on purpose".into()),
            SourceMsg::Panic => panic!("producer panicked on purpose"),
            SourceMsg::PanicOnCall(_reply) => panic!("producer panicked while answering a call"),
        }
    }

    async fn handle_subscribe(
        &mut self,
        consumer: SubscriptionId,
        _ctx: &mut Context<SourceMsg>,
    ) -> Result<(), BoxError> {
        self.log.lock().subscribed.push(consumer);
        Ok(())
    }

    async fn handle_cancel(
        &mut self,
        consumer: SubscriptionId,
        reason: &ExitReason,
        _ctx: &mut Context<SourceMsg>,
    ) -> Result<Vec<u64>, BoxError> {
        self.log.lock().cancelled.push((consumer, reason.clone()));
        Ok(Vec::new())
    }

    fn handle_discarded(&mut self, discarded: usize, buffered: usize) -> bool {
        self.log.lock().discarded.push((discarded, buffered));
        false
    }

    async fn terminate(&mut self, reason: &ExitReason) {
        self.log.lock().terminated = Some(reason.clone());
    }
}

/// What a [`Collector`]'s callbacks saw.
pub(crate) struct CollectorLog<T> {
    /// Every `handle_events` call: the subscription and the chunk.
    pub(crate) chunks: Vec<(SubscriptionId, Vec<T>)>,
    pub(crate) subscribed: Vec<SubscriptionId>,
    pub(crate) cancelled: Vec<(SubscriptionId, ExitReason)>,
    pub(crate) terminated: Option<ExitReason>,
}

impl<T> Default for CollectorLog<T> {
    fn default() -> Self {
        CollectorLog { chunks: Vec::new(), subscribed: Vec::new(), cancelled: Vec::new(), terminated: None }
    }
}

impl<T: Clone> CollectorLog<T> {
    /// Every event received, in order.
    pub(crate) fn events(&self) -> Vec<T> {
        self.chunks.iter().flat_map(|(_, chunk)| chunk.iter().cloned()).collect()
    }

    /// How many events were received.
    pub(crate) fn count(&self) -> usize {
        self.chunks.iter().map(|(_, chunk)| chunk.len()).sum()
    }

    /// The size of every chunk, in order.
    pub(crate) fn chunk_sizes(&self) -> Vec<usize> {
        self.chunks.iter().map(|(_, chunk)| chunk.len()).collect()
    }
}

/// Messages a [`Collector`] understands.
pub(crate) enum CollectorMsg {
    /// Ask every subscription for this many more events (manual mode).
    Ask(usize),
    /// Cancel every subscription from inside a callback (`Context::cancel`).
    CancelAll,
}

/// How a [`Collector`] fails when it sees its trigger event.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Failure {
    Panic,
    Error,
}

/// A consumer recording everything its callbacks see.
pub(crate) struct Collector<T> {
    log: Shared<CollectorLog<T>>,
    /// `Some(n)`: manual mode, asking `n` on subscription.
    manual: Option<usize>,
    fail_on: Option<(T, Failure)>,
    subs: Vec<SubscriptionId>,
}

impl<T> Collector<T> {
    /// An automatic collector and its log.
    pub(crate) fn new() -> (Self, Shared<CollectorLog<T>>) {
        let log = Shared::default();
        let collector = Collector { log: log.clone(), manual: None, fail_on: None, subs: Vec::new() };
        (collector, log)
    }

    /// A manual-mode collector asking `initial` on each subscription, and its log.
    pub(crate) fn manual(initial: usize) -> (Self, Shared<CollectorLog<T>>) {
        let (mut collector, log) = Self::new();
        collector.manual = Some(initial);
        (collector, log)
    }

    /// Fails (after recording the chunk) when a chunk contains `event`.
    pub(crate) fn fail_on(mut self, event: T, how: Failure) -> Self {
        self.fail_on = Some((event, how));
        self
    }
}

impl<T> Consumer for Collector<T>
where
    T: Clone + PartialEq + std::fmt::Debug + Send + 'static,
{
    type Event = T;
    type Message = CollectorMsg;

    async fn handle_events(
        &mut self,
        events: Vec<T>,
        from: SubscriptionId,
        _ctx: &mut Context<CollectorMsg>,
    ) -> Result<(), BoxError> {
        let trigger = self.fail_on.as_ref().filter(|(event, _)| events.contains(event)).cloned();
        self.log.lock().chunks.push((from, events));
        match trigger {
            Some((event, Failure::Panic)) => panic!("boom at {event:?}"),
            Some((event, Failure::Error)) => Err(format!("bad event {event:?}").into()),
            None => Ok(()),
        }
    }

    async fn handle_subscribe(
        &mut self,
        producer: SubscriptionId,
        ctx: &mut Context<CollectorMsg>,
    ) -> Result<AskMode, BoxError> {
        self.log.lock().subscribed.push(producer);
        self.subs.push(producer);
        match self.manual {
            Some(initial) => {
                ctx.ask(producer, initial);
                Ok(AskMode::Manual)
            }
            None => Ok(AskMode::Automatic),
        }
    }

    async fn handle_cancel(
        &mut self,
        producer: SubscriptionId,
        reason: &ExitReason,
        _ctx: &mut Context<CollectorMsg>,
    ) -> Result<(), BoxError> {
        self.subs.retain(|s| *s != producer);
        self.log.lock().cancelled.push((producer, reason.clone()));
        Ok(())
    }

    async fn handle_info(
        &mut self,
        message: CollectorMsg,
        ctx: &mut Context<CollectorMsg>,
    ) -> Result<(), BoxError> {
        match message {
            CollectorMsg::Ask(n) => {
                for sub in &self.subs {
                    ctx.ask(*sub, n);
                }
            }
            CollectorMsg::CancelAll => {
                for sub in &self.subs {
                    ctx.cancel(*sub);
                }
            }
        }
        Ok(())
    }

    async fn terminate(&mut self, reason: &ExitReason) {
        self.log.lock().terminated = Some(reason.clone());
    }
}

/// What a [`Mapper`]'s callbacks saw.
#[derive(Default)]
pub(crate) struct MapperLog {
    /// Input events handled by `handle_events`.
    pub(crate) handled: usize,
    pub(crate) cancelled: Vec<(Peer, ExitReason)>,
    pub(crate) terminated: Option<ExitReason>,
}

/// A producer-consumer turning each `u64` into the events of a function.
pub(crate) struct Mapper {
    map: Box<dyn Fn(u64) -> Vec<u64> + Send>,
    panic_on: Option<u64>,
    log: Shared<MapperLog>,
}

impl Mapper {
    /// A mapper applying `map` to each event, and its log.
    pub(crate) fn new(map: impl Fn(u64) -> Vec<u64> + Send + 'static) -> (Self, Shared<MapperLog>) {
        let log = Shared::default();
        let mapper = Mapper { map: Box::new(map), panic_on: None, log: log.clone() };
        (mapper, log)
    }

    /// Passes events through unchanged.
    pub(crate) fn identity() -> (Self, Shared<MapperLog>) {
        Self::new(|e| vec![e])
    }

    /// Panics in `handle_events` when a chunk contains `event`.
    pub(crate) fn panic_on(mut self, event: u64) -> Self {
        self.panic_on = Some(event);
        self
    }
}

impl ProducerConsumer for Mapper {
    type In = u64;
    type Out = u64;
    type Message = ();

    async fn handle_events(
        &mut self,
        events: Vec<u64>,
        _from: SubscriptionId,
        _ctx: &mut Context,
    ) -> Result<Vec<u64>, BoxError> {
        if let Some(trigger) = self.panic_on.filter(|t| events.contains(t)) {
            panic!("mapper boom at {trigger}");
        }
        self.log.lock().handled += events.len();
        Ok(events.into_iter().flat_map(|e| (self.map)(e)).collect())
    }

    async fn handle_cancel(
        &mut self,
        peer: Peer,
        reason: &ExitReason,
        _ctx: &mut Context,
    ) -> Result<Vec<u64>, BoxError> {
        self.log.lock().cancelled.push((peer, reason.clone()));
        Ok(Vec::new())
    }

    async fn terminate(&mut self, reason: &ExitReason) {
        self.log.lock().terminated = Some(reason.clone());
    }
}

/// What an [`Audited`] dispatcher saw: demand asked by consumers and events sent to them.
#[derive(Default)]
pub(crate) struct AuditLog {
    pub(crate) asked: usize,
    pub(crate) sent: usize,
    /// The most events ever sent beyond what had been asked (0 when demand was respected).
    pub(crate) worst_excess: usize,
}

/// A [`DemandDispatcher`] that counts asks and sent events, to check from the producer's side
/// that consumers never receive more than they asked for.
pub(crate) struct Audited<T> {
    inner: DemandDispatcher<T>,
    log: Shared<AuditLog>,
}

impl<T> Audited<T> {
    pub(crate) fn new() -> (Self, Shared<AuditLog>) {
        let log = Shared::default();
        let audited = Audited { inner: DemandDispatcher::new(), log: log.clone() };
        (audited, log)
    }
}

impl<T: Send + 'static> Dispatcher<T> for Audited<T> {
    fn subscribe(&mut self, consumer: Downstream<T>) -> Result<usize, Error> {
        self.inner.subscribe(consumer)
    }

    fn cancel(&mut self, id: SubscriptionId) -> usize {
        self.inner.cancel(id)
    }

    fn ask(&mut self, id: SubscriptionId, demand: usize) -> usize {
        self.log.lock().asked += demand;
        self.inner.ask(id, demand)
    }

    fn dispatch(&mut self, events: &mut Vec<T>) -> usize {
        let before = events.len();
        let more = self.inner.dispatch(events);
        let mut log = self.log.lock();
        log.sent += before - events.len();
        log.worst_excess = log.worst_excess.max(log.sent.saturating_sub(log.asked));
        more
    }

    fn buffered(&self) -> usize {
        self.inner.buffered()
    }
}

/// A current-thread runtime on the paused clock, for property tests (one per case).
pub(crate) fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a current-thread tokio runtime")
}
