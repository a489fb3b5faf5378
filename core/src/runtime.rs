//! The task that runs a stage: one loop for producers, producer-consumers and consumers.
//!
//! The loop takes one message at a time from the protocol inbox, the mailbox or a timer,
//! updates demand, then `drive`s: serves buffered events, calls `handle_demand` for owed
//! demand, and handles queued event chunks while downstream demand allows.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, OnceLock};

use futures::FutureExt;
use rustc_hash::FxHashMap;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::buffer::{Buffer, BufferKeep, BufferSize, Marker};
use crate::demand::{Chunk, DemandMode, DemandState};
use crate::dispatcher::{DemandDispatcher, Dispatcher, Downstream};
use crate::error::{panic_message, BoxError, Error, ExitReason};
use crate::handle::ProducerRef;
use crate::protocol::{Inbox, ProducerLink, SubscribeReply, SubscribeRequest};
use crate::stage::{Command, Context, Mail, StageLink, StageRef};
use crate::subscription::{AskMode, CancelMode, StageId, SubscribeOptions, SubscriptionId};

/// The other end of a subscription, as `handle_subscribe`/`handle_cancel` of a
/// producer-consumer see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// A producer this stage consumes from.
    Producer(SubscriptionId),
    /// A consumer of this stage.
    Consumer(SubscriptionId),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Producer,
    ProducerConsumer,
    Consumer,
}

pub(crate) type Emit<T> = Result<Vec<T>, BoxError>;

/// The callbacks of any stage kind, as the runtime calls them.
pub(crate) trait Behaviour: Send + 'static {
    type In: Send + 'static;
    type Out: Send + 'static;
    type Message: Send + 'static;
    const KIND: Kind;

    fn demand(
        &mut self,
        demand: usize,
        ctx: &mut Context<Self::Message>,
    ) -> impl Future<Output = Emit<Self::Out>> + Send;
    fn events(
        &mut self,
        events: Vec<Self::In>,
        from: SubscriptionId,
        ctx: &mut Context<Self::Message>,
    ) -> impl Future<Output = Emit<Self::Out>> + Send;
    fn info(
        &mut self,
        message: Self::Message,
        ctx: &mut Context<Self::Message>,
    ) -> impl Future<Output = Emit<Self::Out>> + Send;
    fn subscribe(
        &mut self,
        peer: Peer,
        ctx: &mut Context<Self::Message>,
    ) -> impl Future<Output = Result<AskMode, BoxError>> + Send;
    fn cancel(
        &mut self,
        peer: Peer,
        reason: &ExitReason,
        ctx: &mut Context<Self::Message>,
    ) -> impl Future<Output = Emit<Self::Out>> + Send;
    fn discarded(&mut self, discarded: usize, buffered: usize) -> bool;
    /// Work still in flight outside the runtime's queues: a finishing stage waits for it.
    fn busy(&self) -> bool {
        false
    }
    fn terminate(&mut self, reason: &ExitReason) -> impl Future<Output = ()> + Send;
}

/// Producer-side options, validated.
pub(crate) struct ProducerSetup<T> {
    pub(crate) buffer_size: BufferSize,
    pub(crate) buffer_keep: BufferKeep,
    pub(crate) demand: DemandMode,
    pub(crate) dispatcher: Option<Box<dyn Dispatcher<T>>>,
}

impl<T> ProducerSetup<T> {
    pub(crate) fn validate(&self) -> Result<(), Error> {
        if self.buffer_size == BufferSize::Bounded(0) {
            return Err(Error::invalid(
                "buffer_size",
                0,
                "must be greater than 0 (use BufferSize::Unbounded for no bound)",
            ));
        }
        Ok(())
    }
}

pub(crate) type Subscriptions<T> = Vec<(ProducerRef<T>, SubscribeOptions<T>)>;

pub(crate) struct Spawned<B: Behaviour> {
    pub(crate) stage: StageRef<B::Message>,
    pub(crate) inbox: mpsc::UnboundedSender<Inbox<B::In, B::Out>>,
}

/// Validates the options and starts the stage's task.
pub(crate) fn spawn<B: Behaviour>(
    behaviour: B,
    name: Option<String>,
    producer: ProducerSetup<B::Out>,
    subscriptions: Subscriptions<B::In>,
) -> Result<Spawned<B>, Error> {
    producer.validate()?;
    for (_, options) in &subscriptions {
        options.validate()?;
    }
    let rt = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
    let id = StageId::new();
    let (inbox_tx, inbox_rx) = mpsc::unbounded_channel();
    let (mail_tx, mail_rx) = mpsc::unbounded_channel();
    let (exit_tx, exit_rx) = watch::channel(None);
    let abort = Arc::new(OnceLock::new());
    let stage = StageRef::new(StageLink { id, mail: mail_tx, exit: exit_rx, abort: abort.clone() });
    let name: Arc<str> = name.map(Into::into).unwrap_or_else(|| id.to_string().into());
    let runtime = Runtime {
        behaviour,
        ctx: Context {
            // Its own slot: a supervisor re-points the handles it gave out, not this one.
            me: stage.pinned(),
            subscriptions: HashMap::new(),
            name: name.clone(),
            commands: Vec::new(),
            timers: Vec::new(),
            demand_mode: producer.demand,
        },
        id,
        name,
        inbox_tx: inbox_tx.clone(),
        upstream: Default::default(),
        queued: VecDeque::new(),
        downstream: Default::default(),
        dispatcher: producer.dispatcher.unwrap_or_else(|| Box::new(DemandDispatcher::new())),
        buffer: Buffer::new(producer.buffer_size, producer.buffer_keep),
        owed: 0,
        finishing: None,
        finish_queued: false,
        finish_due: None,
        demand_changed: false,
        exit: None,
        timers: JoinSet::new(),
        asks: Vec::new(),
        chunks_since_ask: 0,
        exit_guard: ExitGuard(Some(exit_tx)),
    };
    let task = rt.spawn(async move {
        runtime.run(inbox_rx, mail_rx, subscriptions).await;
    });
    let _set_once = abort.set(task.abort_handle());
    Ok(Spawned { stage, inbox: inbox_tx })
}

/// Publishes the exit reason, also when the task is aborted.
struct ExitGuard(Option<watch::Sender<Option<ExitReason>>>);

impl ExitGuard {
    fn set(&mut self, reason: ExitReason) {
        if let Some(tx) = self.0.take() {
            tx.send_replace(Some(reason));
        }
    }
}

impl Drop for ExitGuard {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            tx.send_replace(Some(ExitReason::failed("stage task was aborted")));
        }
    }
}

/// What a stage has received and not yet handled, in the order it arrived.
enum Queued<T> {
    Chunk(SubscriptionId, Chunk<T>),
    /// The normal end of a subscription, behind the events it sent before it.
    Down(SubscriptionId, CancelMode, ExitReason),
}

struct Upstream<T> {
    link: Arc<dyn ProducerLink<T>>,
    demand: DemandState,
    cancel: CancelMode,
}

struct Runtime<B: Behaviour> {
    behaviour: B,
    ctx: Context<B::Message>,
    id: StageId,
    name: Arc<str>,
    inbox_tx: mpsc::UnboundedSender<Inbox<B::In, B::Out>>,
    upstream: FxHashMap<SubscriptionId, Upstream<B::In>>,
    /// Received chunks not yet handled (a producer-consumer waits for downstream demand).
    queued: VecDeque<Queued<B::In>>,
    downstream: FxHashMap<SubscriptionId, Downstream<B::Out>>,
    dispatcher: Box<dyn Dispatcher<B::Out>>,
    buffer: Buffer<B::Out, B::Message>,
    /// Demand forwarded by the dispatcher and not yet served.
    owed: usize,
    /// Stop with this reason once queued work is done (an upstream finished).
    finishing: Option<ExitReason>,
    finish_queued: bool,
    /// The finish marker was reached; stop once the dispatcher holds nothing either.
    finish_due: Option<ExitReason>,
    /// Consumers' demand changed: buffered events may now be taken even if nothing is owed
    /// (demand a departed consumer left behind is not forwarded again).
    demand_changed: bool,
    exit: Option<ExitReason>,
    timers: JoinSet<B::Message>,
    /// Asks owed upstream for chunks handled in this drive, one entry per subscription.
    asks: Vec<(SubscriptionId, usize)>,
    chunks_since_ask: usize,
    exit_guard: ExitGuard,
}

/// Handled chunks whose asks may travel together.
const ASK_EVERY: usize = 4;

/// If the task ends without `terminate` (a panic outside a callback, or an abort), peers
/// still learn that the stage failed, so none waits for it forever.
impl<B: Behaviour> Drop for Runtime<B> {
    fn drop(&mut self) {
        if self.downstream.is_empty() && self.upstream.is_empty() {
            return;
        }
        let reason = ExitReason::failed("stage task panicked or was aborted");
        self.exit_guard.set(reason.clone());
        for (sub, downstream) in self.downstream.drain() {
            downstream.link.down(sub, reason.clone());
        }
        for (sub, up) in self.upstream.drain() {
            up.link.cancel(sub, reason.clone());
        }
    }
}

/// Runs a callback, turning its error or panic into the stage's failure.
async fn guard<T>(
    callback: &'static str,
    fut: impl Future<Output = Result<T, BoxError>>,
) -> Result<T, ExitReason> {
    match AssertUnwindSafe(fut).catch_unwind().await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(source)) => Err(Error::Callback { callback, source: Arc::from(source) }.into()),
        Err(panic) => Err(Error::Panicked { callback, message: panic_message(&*panic) }.into()),
    }
}

impl<B: Behaviour> Runtime<B> {
    async fn run(
        mut self,
        mut inbox: mpsc::UnboundedReceiver<Inbox<B::In, B::Out>>,
        mut mail: mpsc::UnboundedReceiver<Mail<B::Message>>,
        subscriptions: Subscriptions<B::In>,
    ) {
        for (producer, options) in subscriptions {
            self.subscribe_to(SubscriptionId::new(), producer.link(), options, None).await;
        }
        let mut more = self.drive().await;
        while self.exit.is_none() {
            if more {
                tokio::task::yield_now().await;
                self.handle_ready(&mut inbox, &mut mail).await;
                more = self.drive().await;
                continue;
            }
            tokio::select! {
                biased;
                Some(msg) = inbox.recv() => {
                    self.on_inbox(msg).await;
                    self.handle_ready(&mut inbox, &mut mail).await;
                }
                Some(msg) = mail.recv() => self.on_mail(msg).await,
                Some(fired) = self.timers.join_next(), if !self.timers.is_empty() => {
                    if let Ok(message) = fired {
                        self.on_info(message).await;
                    }
                }
            }
            more = self.drive().await;
        }
        let reason = self.exit.take().unwrap_or(ExitReason::Normal);
        self.terminate(reason, &mut inbox, &mut mail).await;
    }

    /// Handles a batch of whatever else is ready before driving once: fewer wake-ups and one
    /// ask per subscription for the lot, and a busy inbox does not starve the mailbox (stop,
    /// casts) or timers.
    async fn handle_ready(
        &mut self,
        inbox: &mut mpsc::UnboundedReceiver<Inbox<B::In, B::Out>>,
        mail: &mut mpsc::UnboundedReceiver<Mail<B::Message>>,
    ) {
        const BATCH: usize = 32;
        // The stop check comes first: a message taken after it must still be handled.
        for _ in 0..BATCH {
            if self.exit.is_some() {
                return;
            }
            let Ok(msg) = inbox.try_recv() else { break };
            self.on_inbox(msg).await;
        }
        for _ in 0..BATCH {
            if self.exit.is_some() {
                return;
            }
            let Ok(msg) = mail.try_recv() else { break };
            self.on_mail(msg).await;
        }
        if self.exit.is_none() {
            if let Some(Ok(message)) = self.timers.try_join_next() {
                self.on_info(message).await;
            }
        }
    }

    fn fail(&mut self, reason: ExitReason) {
        if self.exit.is_none() {
            if reason.is_failure() {
                tracing::error!(stage = %self.name, %reason, "stage failed");
            }
            self.exit = Some(reason);
        }
    }

    /// Applies what a callback asked for in its context.
    fn apply_commands(&mut self) {
        for command in std::mem::take(&mut self.ctx.commands) {
            match command {
                Command::Ask(sub, demand) => {
                    if let Some(up) = self.upstream.get_mut(&sub) {
                        up.demand.asked(demand);
                        up.link.ask(sub, demand);
                    }
                }
                Command::Cancel(sub) => {
                    // Through the inbox, so `handle_cancel` runs as for a cancel from a peer.
                    let reason = ExitReason::Normal;
                    let msg = match self.downstream.get(&sub) {
                        Some(downstream) => {
                            downstream.link.down(sub, reason.clone());
                            Inbox::DownstreamCancel { sub, reason }
                        }
                        None => Inbox::CancelUpstream { sub, reason },
                    };
                    let _we_are_running = self.inbox_tx.send(msg);
                }
                Command::SetDemandMode(mode) => self.ctx.demand_mode = mode,
                Command::Finish => match B::KIND {
                    Kind::Producer => {
                        if !self.finish_queued {
                            self.finish_queued = true;
                            self.buffer.push_marker(Marker::Finish);
                        }
                    }
                    // Stages that consume first handle what they have received.
                    Kind::ProducerConsumer | Kind::Consumer => {
                        self.finishing.get_or_insert(ExitReason::Normal);
                    }
                },
                Command::Stop(reason) => self.fail(reason),
            }
        }
        for (delay, message) in std::mem::take(&mut self.ctx.timers) {
            self.timers.spawn(async move {
                tokio::time::sleep(delay).await;
                message
            });
        }
    }

    /// Applies a callback's result: its events (before its commands, so that `finish` queues
    /// behind them) or its failure.
    fn settle(&mut self, result: Result<Vec<B::Out>, ExitReason>) {
        match result {
            Ok(events) => {
                self.emit(events);
                self.apply_commands();
            }
            Err(reason) => {
                self.apply_commands();
                self.fail(reason);
            }
        }
    }

    /// Dispatches emitted events, buffering what consumers have no demand for.
    fn emit(&mut self, mut events: Vec<B::Out>) {
        if events.is_empty() {
            return;
        }
        if self.ctx.demand_mode == DemandMode::Accumulate || self.buffer.len() > 0 {
            self.push_buffer(events);
            return;
        }
        let before = events.len();
        let more = self.dispatcher.dispatch(&mut events);
        let sent = before - events.len();
        if B::KIND == Kind::ProducerConsumer {
            self.owed = self.owed.saturating_sub(sent);
        }
        self.owed = self.owed.saturating_add(more);
        self.push_buffer(events);
    }

    fn push_buffer(&mut self, events: Vec<B::Out>) {
        if events.is_empty() {
            return;
        }
        let discarded = self.buffer.push(events);
        if discarded > 0 {
            let buffered = self.buffer.len();
            if self.behaviour.discarded(discarded, buffered) {
                tracing::warn!(stage = %self.name, discarded, buffered, "producer buffer full, events discarded");
            }
        }
    }

    /// Serves owed demand from the buffer; true if anything changed.
    fn serve_buffer(&mut self) -> bool {
        let demand_changed = std::mem::take(&mut self.demand_changed);
        if self.ctx.demand_mode == DemandMode::Accumulate
            || self.buffer.len() == 0
            || (self.owed == 0 && !demand_changed)
        {
            return false;
        }
        // The dispatcher sends only what consumers asked for; offer it what they could take.
        let takeable = self.downstream.values().fold(0usize, |n, d| n.saturating_add(d.max_demand));
        let mut events = self.buffer.take(self.owed.max(takeable));
        let before = events.len();
        let more = self.dispatcher.dispatch(&mut events);
        let sent = before - events.len();
        self.buffer.restore_front(events);
        self.owed = (self.owed - sent.min(self.owed)).saturating_add(more);
        self.demand_changed = sent > 0;
        sent > 0 || more > 0
    }

    /// Moves everything that can move. Returns true if it stopped on its budget with more to
    /// do, so the loop can read its channels (a `stop` must get through) before going on.
    async fn drive(&mut self) -> bool {
        const BUDGET: usize = 256;
        for _ in 0..BUDGET {
            if self.exit.is_some() {
                return false;
            }
            let served = self.serve_buffer();
            let mut markers = self.buffer.due_markers();
            if !markers.is_empty() {
                for marker in markers.drain(..) {
                    match marker {
                        Marker::Info(message) => self.on_info(message).await,
                        Marker::Finish => {
                            self.finish_due = Some(self.finishing.take().unwrap_or(ExitReason::Normal));
                        }
                    }
                }
                continue;
            }
            if served {
                continue;
            }
            let forwarding = self.ctx.demand_mode == DemandMode::Forward;
            match B::KIND {
                // A producer that called `finish` has no more events to make.
                Kind::Producer
                    if forwarding && self.owed > 0 && self.buffer.len() == 0 && !self.finish_queued =>
                {
                    let demand = std::mem::take(&mut self.owed);
                    let result = guard("handle_demand", self.behaviour.demand(demand, &mut self.ctx)).await;
                    self.settle(result);
                }
                // Only while what it emits can leave: otherwise its buffer, and its asks
                // upstream, would grow without its consumers' demand.
                Kind::ProducerConsumer | Kind::Consumer
                    if matches!(self.queued.front(), Some(Queued::Down(..))) =>
                {
                    if let Some(Queued::Down(sub, cancel, reason)) = self.queued.pop_front() {
                        self.upstream_down(sub, cancel, reason).await;
                    }
                }
                Kind::ProducerConsumer
                    if forwarding && self.owed > 0 && self.buffer.len() == 0 && !self.queued.is_empty() =>
                {
                    self.handle_chunk().await;
                }
                Kind::Consumer if !self.queued.is_empty() => self.handle_chunk().await,
                _ if self.check_finishing() => {}
                _ => {
                    self.send_asks();
                    return false;
                }
            }
        }
        self.send_asks();
        true
    }

    /// Once an upstream finished and nothing is queued, stop after the buffer drains.
    /// True if that queued a finish marker.
    fn check_finishing(&mut self) -> bool {
        if let Some(reason) = self.finish_due.take() {
            let held = self.buffer.len() + self.dispatcher.buffered();
            if held == 0 || self.downstream.is_empty() {
                if held > 0 {
                    tracing::warn!(stage = %self.name, discarded = held, "stopping with no consumers, held events discarded");
                }
                self.fail(reason);
            } else {
                self.finish_due = Some(reason);
            }
            return false;
        }
        if self.exit.is_some() || self.finishing.is_none() || self.behaviour.busy() {
            return false;
        }
        // Received events are never discarded: a producer-consumer holding some waits for a
        // consumer to take them (stop it to give up on them).
        if !self.queued.is_empty() {
            return false;
        }
        if B::KIND == Kind::Consumer || (self.downstream.is_empty() && self.buffer.len() == 0) {
            let reason = self.finishing.take().unwrap_or(ExitReason::Normal);
            self.fail(reason);
            false
        } else if !self.finish_queued {
            self.finish_queued = true;
            self.buffer.push_marker(Marker::Finish);
            true
        } else {
            false
        }
    }

    async fn handle_chunk(&mut self) {
        let Some(Queued::Chunk(sub, chunk)) = self.queued.pop_front() else {
            return;
        };
        let result = guard("handle_events", self.behaviour.events(chunk.events, sub, &mut self.ctx)).await;
        self.settle(result);
        if chunk.ask_after > 0 {
            match self.asks.iter_mut().find(|(s, _)| *s == sub) {
                Some((_, n)) => *n += chunk.ask_after,
                None => self.asks.push((sub, chunk.ask_after)),
            }
            self.chunks_since_ask += 1;
            // Asks of chunks handled together travel as one message, but a backlog does not
            // hold them back for long: the producer works while this stage catches up.
            if self.chunks_since_ask >= ASK_EVERY {
                self.send_asks();
            }
        }
    }

    fn send_asks(&mut self) {
        self.chunks_since_ask = 0;
        for (sub, demand) in self.asks.drain(..) {
            if let Some(up) = self.upstream.get(&sub) {
                up.link.ask(sub, demand);
            }
        }
    }

    async fn on_info(&mut self, message: B::Message) {
        let result = guard("handle_info", self.behaviour.info(message, &mut self.ctx)).await;
        self.settle(result);
    }

    async fn on_mail(&mut self, mail: Mail<B::Message>) {
        match mail {
            Mail::Info(message) => self.on_info(message).await,
            Mail::InfoAfterEvents(message, ack) => {
                if B::KIND == Kind::Consumer {
                    self.on_info(message).await;
                } else {
                    self.buffer.push_marker(Marker::Info(message));
                }
                if let Some(ack) = ack {
                    let _caller_gone = ack.send(());
                }
            }
            Mail::Stop(reason) => self.fail(reason),
            Mail::SetDemandMode(mode) => self.ctx.demand_mode = mode,
            Mail::GetDemandMode(reply) => {
                let _caller_gone = reply.send(self.ctx.demand_mode);
            }
            Mail::EstimateBuffered(reply) => {
                let _caller_gone = reply.send(self.buffer.len() + self.dispatcher.buffered());
            }
        }
    }

    async fn on_inbox(&mut self, msg: Inbox<B::In, B::Out>) {
        match msg {
            Inbox::Events { sub, events } => {
                let Some(up) = self.upstream.get_mut(&sub) else {
                    return;
                };
                let queued = &mut self.queued;
                let excess = up.demand.receive_into(events, |c| queued.push_back(Queued::Chunk(sub, c)));
                if excess > 0 {
                    tracing::error!(stage = %self.name, %sub, excess, "received more events than asked for");
                }
            }
            Inbox::UpstreamDown { sub, reason } => {
                if let Some(up) = self.upstream.remove(&sub) {
                    // A normal end waits behind the events received before it (a reducer
                    // emits its state on it); a failure acts at once.
                    if reason.is_failure() || self.queued.is_empty() {
                        self.upstream_down(sub, up.cancel, reason).await;
                    } else {
                        self.queued.push_back(Queued::Down(sub, up.cancel, reason));
                    }
                }
            }
            Inbox::Subscribe(request) => self.on_subscribe(*request).await,
            Inbox::Ask { sub, demand } => {
                if self.downstream.contains_key(&sub) {
                    self.owed = self.owed.saturating_add(self.dispatcher.ask(sub, demand));
                    self.demand_changed = true;
                }
            }
            Inbox::DownstreamCancel { sub, reason } => {
                if self.downstream.remove(&sub).is_some() {
                    self.owed = self.owed.saturating_add(self.dispatcher.cancel(sub));
                    self.demand_changed = true;
                    let result = guard(
                        "handle_cancel",
                        self.behaviour.cancel(Peer::Consumer(sub), &reason, &mut self.ctx),
                    )
                    .await;
                    self.settle(result);
                }
            }
            Inbox::SubscribeTo { sub, producer, options, reply } => {
                self.subscribe_to(sub, producer, *options, reply).await;
            }
            Inbox::CancelUpstream { sub, reason } => {
                if let Some(up) = self.upstream.remove(&sub) {
                    up.link.cancel(sub, reason.clone());
                    let result = guard(
                        "handle_cancel",
                        self.behaviour.cancel(Peer::Producer(sub), &reason, &mut self.ctx),
                    )
                    .await;
                    self.settle(result);
                    self.ctx.subscriptions.remove(&sub);
                }
            }
        }
    }

    /// A subscription to a producer ended: tell the callback, then stop per the cancel mode.
    async fn upstream_down(&mut self, sub: SubscriptionId, cancel: CancelMode, reason: ExitReason) {
        let result =
            guard("handle_cancel", self.behaviour.cancel(Peer::Producer(sub), &reason, &mut self.ctx)).await;
        self.settle(result);
        self.ctx.subscriptions.remove(&sub);
        if cancel.stops_on(&reason) {
            if reason.is_failure() {
                self.fail(reason);
            } else {
                self.finishing.get_or_insert(reason);
            }
        }
    }

    async fn on_subscribe(&mut self, request: SubscribeRequest<B::Out>) {
        let SubscribeRequest { sub, consumer, link, max_demand, partition, selector, reply } = request;
        let downstream = Downstream { id: sub, consumer, link, max_demand, partition, selector };
        // Only producers and producer-consumers hand out a `ProducerRef`, so only they get here.
        match self.dispatcher.subscribe(downstream.clone()) {
            Ok(more) => {
                self.downstream.insert(sub, downstream);
                if let Some(reply) = reply {
                    let _caller_gone = reply.send(Ok(sub));
                }
                self.owed = self.owed.saturating_add(more);
                let result =
                    guard("handle_subscribe", self.behaviour.subscribe(Peer::Consumer(sub), &mut self.ctx))
                        .await
                        .map(|_| Vec::new());
                self.settle(result);
            }
            Err(error) => {
                tracing::warn!(stage = %self.name, %sub, %error, "subscription refused");
                if let Some(reply) = reply {
                    let _caller_gone = reply.send(Err(error.clone()));
                }
                downstream.link.down(sub, error.into());
            }
        }
    }

    async fn subscribe_to(
        &mut self,
        sub: SubscriptionId,
        producer: Arc<dyn ProducerLink<B::In>>,
        options: SubscribeOptions<B::In>,
        reply: Option<SubscribeReply>,
    ) {
        if let Err(error) = options.validate() {
            if let Some(reply) = reply {
                let _caller_gone = reply.send(Err(error));
            }
            return;
        }
        let (max, min) = options.demand();
        let mut demand = DemandState::new(max, min);
        self.ctx.subscriptions.insert(sub, (max, min));
        let mode =
            guard("handle_subscribe", self.behaviour.subscribe(Peer::Producer(sub), &mut self.ctx)).await;
        let mode = match mode {
            Ok(mode) => mode,
            Err(reason) => {
                self.ctx.subscriptions.remove(&sub);
                if let Some(reply) = reply {
                    let error = match &reason {
                        ExitReason::Failed(error) => (**error).clone(),
                        other => Error::Exited(other.clone()),
                    };
                    let _caller_gone = reply.send(Err(error));
                }
                self.settle(Err(reason));
                return;
            }
        };
        demand.set_manual(mode == AskMode::Manual);
        let request = SubscribeRequest {
            sub,
            consumer: self.id,
            link: Arc::new(self.inbox_tx.clone()),
            max_demand: max,
            partition: options.partition,
            selector: options.selector,
            reply,
        };
        match producer.subscribe(request) {
            Ok(()) => {
                if !demand.is_manual() {
                    producer.ask(sub, demand.initial_ask());
                }
                self.upstream.insert(sub, Upstream { link: producer, demand, cancel: options.cancel });
                self.apply_commands();
            }
            Err(request) => {
                if let Some(reply) = request.reply {
                    let _caller_gone = reply.send(Err(Error::StageStopped));
                }
                self.apply_commands();
                self.upstream_down(sub, options.cancel, Error::StageStopped.into()).await;
            }
        }
    }

    async fn terminate(
        &mut self,
        reason: ExitReason,
        inbox: &mut mpsc::UnboundedReceiver<Inbox<B::In, B::Out>>,
        mail: &mut mpsc::UnboundedReceiver<Mail<B::Message>>,
    ) {
        inbox.close();
        mail.close();
        self.timers.abort_all();
        if let Err(failure) = guard("terminate", self.behaviour.terminate(&reason).map(Ok)).await {
            tracing::error!(stage = %self.name, %failure, "terminate failed");
        }
        // Published before peers hear of it, so a supervisor sees this stage stop before the
        // consumers that stop because of it.
        self.exit_guard.set(reason.clone());
        // Queries already in the mailbox are answered; calls are dropped (their caller sees
        // the stop).
        while let Ok(mail) = mail.try_recv() {
            match mail {
                Mail::GetDemandMode(reply) => {
                    let _caller_gone = reply.send(self.ctx.demand_mode);
                }
                Mail::EstimateBuffered(reply) => {
                    let _caller_gone = reply.send(self.buffer.len() + self.dispatcher.buffered());
                }
                _ => {}
            }
        }
        // Whoever raced with our exit learns that we are gone.
        while let Ok(msg) = inbox.try_recv() {
            match msg {
                Inbox::Subscribe(request) => {
                    if let Some(reply) = request.reply {
                        let _caller_gone = reply.send(Err(Error::StageStopped));
                    }
                    request.link.down(request.sub, Error::StageStopped.into());
                }
                Inbox::SubscribeTo { reply: Some(reply), .. } => {
                    let _caller_gone = reply.send(Err(Error::StageStopped));
                }
                _ => {}
            }
        }
        for (sub, downstream) in self.downstream.drain() {
            downstream.link.down(sub, reason.clone());
        }
        for (sub, up) in self.upstream.drain() {
            up.link.cancel(sub, reason.clone());
        }
    }
}

/// Used as `Out` of consumers and `In` of producers: they have no such events.
pub(crate) type Never = Infallible;
