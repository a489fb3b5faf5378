//! Batchers: group messages per batch key (and partition) and close batches by size, size
//! function, flush mode, timeout, or at the end.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use rustc_hash::FxHashMap;
use tokio::time::Instant;
use weir_core::{AskMode, BoxError, Context, ExitReason, Peer, ProducerConsumer, SubscriptionId};

use crate::batch_info::{BatchInfo, BatchTrigger};
use crate::config::{BatchSize, PartitionFn, SizeStep};
use crate::message::{BatchKey, BatchMode, Message};
use crate::telemetry::BatcherMetrics;
use crate::topology::Finishing;

/// A closed batch on its way to a batch processor.
pub(crate) struct Batch<O> {
    pub(crate) messages: Vec<Message<O>>,
    pub(crate) info: BatchInfo,
}

struct Open<O> {
    messages: Vec<Message<O>>,
    acc: u64,
    id: u64,
}

type Key = (BatchKey, usize);

/// One batcher stage.
pub(crate) struct Batcher<O> {
    name: Arc<str>,
    size: BatchSize<O>,
    timeout: Duration,
    partition: Option<(usize, PartitionFn<O>)>,
    open: FxHashMap<Key, Open<O>>,
    /// When each open batch times out, oldest first: every batch of a batcher has the
    /// same timeout, so one timer (for the front) serves them all.
    deadlines: VecDeque<(Instant, Key, u64)>,
    timer_set: bool,
    next_id: u64,
    finishing: Finishing,
    metrics: BatcherMetrics,
}

/// The batcher's mailbox: its timer, and the pipeline telling it the processors are done.
pub(crate) enum BatcherInfo {
    Timeout,
    ProcessorsDone,
}

impl<O: Send + 'static> Batcher<O> {
    pub(crate) fn new(
        name: Arc<str>,
        size: BatchSize<O>,
        timeout: Duration,
        partition: Option<(usize, PartitionFn<O>)>,
        metrics: BatcherMetrics,
    ) -> Self {
        Batcher {
            name,
            size,
            timeout,
            partition,
            open: FxHashMap::default(),
            deadlines: VecDeque::new(),
            timer_set: false,
            next_id: 0,
            finishing: Finishing::default(),
            metrics,
        }
    }

    fn add(&mut self, message: Message<O>, closed: &mut Vec<Batch<O>>, ctx: &mut Context<BatcherInfo>) {
        let partition = match &self.partition {
            #[allow(clippy::cast_possible_truncation)] // the remainder is below `n`, a usize
            Some((n, hash)) => (hash(&message) % *n as u64) as usize,
            None => 0,
        };
        let key = (message.batch_key().clone(), partition);
        let flush = message.batch_mode() == BatchMode::Flush;
        let (init, capacity) = match &self.size {
            // A batch of a huge size (one meant to close by timeout only) must not allocate
            // its whole size up front: that overflows or aborts. It grows past this instead.
            BatchSize::Count(n) => (0, (*n).min(1024)),
            BatchSize::By { init, .. } => (*init, 0),
        };
        let open = match self.open.get_mut(&key) {
            Some(open) => open,
            None => {
                let id = self.next_id;
                self.next_id += 1;
                self.deadlines.push_back((Instant::now() + self.timeout, key.clone(), id));
                // Open first: `schedule` forgets the deadlines of batches that are not open.
                let open = self.open.entry(key.clone()).or_insert(Open {
                    messages: Vec::with_capacity(capacity),
                    acc: init,
                    id,
                });
                if !self.timer_set {
                    self.timer_set = true;
                    ctx.send_after(BatcherInfo::Timeout, self.timeout);
                }
                open
            }
        };
        let full = match &self.size {
            BatchSize::Count(n) => open.messages.len() + 1 >= *n,
            BatchSize::By { step, .. } => match step(&message, open.acc) {
                SizeStep::Cont(acc) => {
                    open.acc = acc;
                    false
                }
                SizeStep::Emit => true,
            },
        };
        open.messages.push(message);
        if full || flush {
            let trigger = if full { BatchTrigger::Size } else { BatchTrigger::Flush };
            if let Some(open) = self.open.remove(&key) {
                closed.push(self.close(key, open, trigger));
            }
        }
    }

    fn close(&self, (batch_key, partition): Key, open: Open<O>, trigger: BatchTrigger) -> Batch<O> {
        let size = open.messages.len();
        self.metrics.batch(trigger, size);
        let partition = self.partition.as_ref().map(|_| partition);
        Batch {
            messages: open.messages,
            info: BatchInfo::new(self.name.clone(), batch_key, partition, size, trigger),
        }
    }

    fn is_current(&self, key: &Key, id: u64) -> bool {
        self.open.get(key).is_some_and(|open| open.id == id)
    }

    /// Sets the timer for the oldest open batch, forgetting deadlines of closed ones.
    fn schedule(&mut self, ctx: &mut Context<BatcherInfo>) {
        while let Some((_, key, id)) = self.deadlines.front() {
            if self.is_current(key, *id) {
                break;
            }
            self.deadlines.pop_front();
        }
        if let (Some((at, _, _)), false) = (self.deadlines.front(), self.timer_set) {
            self.timer_set = true;
            ctx.send_after(BatcherInfo::Timeout, at.saturating_duration_since(Instant::now()));
        }
    }

    fn timed_out(&mut self, ctx: &mut Context<BatcherInfo>) -> Vec<Batch<O>> {
        self.timer_set = false;
        let now = Instant::now();
        let mut closed = Vec::new();
        while let Some((at, _, _)) = self.deadlines.front() {
            if *at > now {
                break;
            }
            if let Some((_, key, id)) = self.deadlines.pop_front() {
                if self.is_current(&key, id) {
                    if let Some(open) = self.open.remove(&key) {
                        closed.push(self.close(key, open, BatchTrigger::Timeout));
                    }
                }
            }
        }
        self.schedule(ctx);
        closed
    }

    /// Closes every open batch, oldest first.
    fn drain(&mut self) -> Vec<Batch<O>> {
        let mut open: Vec<(Key, Open<O>)> = self.open.drain().collect();
        open.sort_unstable_by_key(|(_, o)| o.id);
        self.deadlines.clear();
        open.into_iter().map(|(key, o)| self.close(key, o, BatchTrigger::Drain)).collect()
    }
}

impl<O: Send + 'static> ProducerConsumer for Batcher<O> {
    type In = Message<O>;
    type Out = Batch<O>;
    type Message = BatcherInfo;

    async fn handle_events(
        &mut self,
        events: Vec<Message<O>>,
        _: SubscriptionId,
        ctx: &mut Context<BatcherInfo>,
    ) -> Result<Vec<Batch<O>>, BoxError> {
        let mut closed = Vec::new();
        for message in events {
            self.add(message, &mut closed, ctx);
        }
        Ok(closed)
    }

    async fn handle_subscribe(
        &mut self,
        peer: Peer,
        _: &mut Context<BatcherInfo>,
    ) -> Result<AskMode, BoxError> {
        if let Peer::Producer(_) = peer {
            self.finishing.subscribed();
        }
        Ok(AskMode::Automatic)
    }

    async fn handle_cancel(
        &mut self,
        peer: Peer,
        _: &ExitReason,
        ctx: &mut Context<BatcherInfo>,
    ) -> Result<Vec<Batch<O>>, BoxError> {
        if let Peer::Producer(_) = peer {
            if self.finishing.cancelled(ctx) {
                return Ok(self.drain());
            }
        }
        Ok(Vec::new())
    }

    async fn handle_info(
        &mut self,
        info: BatcherInfo,
        ctx: &mut Context<BatcherInfo>,
    ) -> Result<Vec<Batch<O>>, BoxError> {
        match info {
            BatcherInfo::Timeout => Ok(self.timed_out(ctx)),
            BatcherInfo::ProcessorsDone if self.finishing.upstream_done(ctx) => Ok(self.drain()),
            BatcherInfo::ProcessorsDone => Ok(Vec::new()),
        }
    }
}
