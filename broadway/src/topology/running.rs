//! The running topology: every stage in its slot, and one supervising task per slot that
//! restarts a crashed stage and wires the new instance to its neighbours.
//!
//! Subscriptions between stages are temporary, so a crash ends only the subscriptions to
//! the crashed stage; its neighbours keep running, and the restarted instance subscribes
//! to its producers and is subscribed to by its consumers. Each consuming stage finishes
//! once its upstream is done for good (told by the slot tasks: `ProducersDone`,
//! `ProcessorsDone`, or its batcher ending normally) and its subscriptions have ended.
//!
//! A stage that crashes too often stays down. The pipeline goes on without it when others
//! of its kind take its messages (a producer; a processor or batch processor without
//! `partition_by` and with running siblings); otherwise what it would have handled has
//! nowhere to go, so the pipeline stops (see `Running::goes_on_without`).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::task::TaskTracker;
use weir_core::dispatcher::PartitionDispatcher;
use weir_core::{
    start_consumer, start_producer_consumer, AnyStageRef, CancelMode, ConsumerOptions, ConsumerRef,
    ProducerConsumerOptions, ProducerRef, StageRef, SubscribeOptions,
};

use crate::config::{BatcherOptions, ProcessorOptions, ProducerOptions};
use crate::error::Error;
use crate::handler::{BatchHandler, Handler};
use crate::message::Message;
use crate::pipeline::{BatcherTopology, Topology};
use crate::producer::{ProducerControl, ProducerStart, StartProducer};
use crate::rate_limit::RateLimiter;
use crate::retry::RetryPolicy;
use crate::telemetry::{BatcherMetrics, StageMetrics};
use crate::topology::batch_processor::BatchProcessor;
use crate::topology::batcher::{Batch, Batcher, BatcherInfo};
use crate::topology::processor::{LastProcessor, Processor, ProcessorInfo, ProcessorShared};

/// Restarts of processors, batchers and batch processors allowed within
/// `STAGE_RESTART_WINDOW` (Broadway's defaults: 3 in 5 seconds).
const STAGE_MAX_RESTARTS: usize = 3;
const STAGE_RESTART_WINDOW: Duration = Duration::from_secs(5);

/// What starting a pipeline needs, checked by the builder.
pub(crate) struct Spec<H: Handler> {
    pub(crate) name: Arc<str>,
    pub(crate) handler: Arc<H>,
    pub(crate) start_producer: StartProducer<H::Data>,
    pub(crate) producers: ProducerOptions,
    pub(crate) processors: ProcessorOptions<H::Data>,
    pub(crate) batchers: Vec<BatcherSpec<H>>,
    pub(crate) retry: Option<RetryPolicy>,
    pub(crate) limiter: Option<Arc<RateLimiter>>,
    pub(crate) in_flight: Arc<AtomicI64>,
}

/// One batcher's options, and how to start its batch processors (monomorphized where the
/// builder knows `H: BatchHandler`).
pub(crate) struct BatcherSpec<H: Handler> {
    pub(crate) name: Arc<str>,
    pub(crate) options: BatcherOptions<H::Output>,
    pub(crate) start: StartBatchProcessor<H>,
}

pub(crate) type StartBatchProcessor<H> = fn(
    &Arc<H>,
    Option<RetryPolicy>,
    String,
    StageMetrics,
) -> Result<Started<Batch<<H as Handler>::Output>>, Error>;

pub(crate) fn start_batch_processor<H: BatchHandler>(
    handler: &Arc<H>,
    retry: Option<RetryPolicy>,
    name: String,
    metrics: StageMetrics,
) -> Result<Started<Batch<H::Output>>, Error> {
    let batch_processor = BatchProcessor::new(handler.clone(), retry, metrics);
    let handle = start_consumer(batch_processor, ConsumerOptions::new().name(name))?;
    Ok(Started { consumer: handle.consumer().clone(), any: handle.to_any() })
}

/// A started consuming stage: how to subscribe it, and its lifecycle.
pub(crate) struct Started<T> {
    consumer: ConsumerRef<T>,
    any: AnyStageRef,
}

struct ProcessorEntry<D, O> {
    consumer: ConsumerRef<Message<D>>,
    stage: StageRef<ProcessorInfo>,
    /// Where batchers subscribe, when there are batchers.
    output: Option<ProducerRef<Message<O>>>,
    any: AnyStageRef,
}

struct BatcherEntry<O> {
    consumer: ConsumerRef<Message<O>>,
    producer: ProducerRef<Batch<O>>,
    stage: StageRef<BatcherInfo>,
    any: AnyStageRef,
}

/// A stage's place in the topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Producer(usize),
    Processor(usize),
    Batcher(usize),
    BatchProcessor(usize, usize),
}

type ProducerSlots<D> = Vec<Option<Arc<dyn ProducerControl<D>>>>;

/// A running pipeline's stages.
pub(crate) struct Running<H: Handler> {
    spec: Spec<H>,
    shared: Arc<ProcessorShared<H>>,
    pub(crate) draining: AtomicBool,
    producers: Mutex<ProducerSlots<H::Data>>,
    processors: Mutex<Vec<ProcessorEntry<H::Data, H::Output>>>,
    batchers: Mutex<Vec<BatcherEntry<H::Output>>>,
    batch_processors: Mutex<Vec<Vec<Started<Batch<H::Output>>>>>,
    live_producers: AtomicUsize,
    live_processors: AtomicUsize,
    /// Processors, and batch processors of each batcher, that stayed down.
    processors_down: AtomicUsize,
    batch_processors_down: Vec<AtomicUsize>,
    /// Slots whose stage may still run; 0 once the pipeline has stopped.
    live: watch::Sender<usize>,
    failures: Mutex<Vec<Error>>,
    /// Restarts one at a time, so two restarted neighbours subscribe to each other once.
    restarting: tokio::sync::Mutex<()>,
    /// Tasks producers spawned ([`ProducerContext::spawn`](crate::ProducerContext::spawn)).
    tasks: TaskTracker,
    pub(crate) topology: Topology,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Logs a subscription that could not be made: its stage stopped, and its own restart (or
/// the end of the pipeline) takes care of it.
fn subscribed(result: Result<weir_core::SubscriptionId, weir_core::Error>, what: &str) {
    if let Err(error) = result {
        tracing::debug!(%error, "{what}: subscription not made");
    }
}

impl<H: Handler> Running<H> {
    /// Starts every stage, wires them, releases the producers and supervises every slot.
    pub(crate) async fn start(spec: Spec<H>) -> Result<Arc<Self>, Error> {
        let name = spec.name.clone();
        let shared = Arc::new(ProcessorShared {
            handler: spec.handler.clone(),
            batchers: spec.batchers.iter().map(|b| b.name.clone()).collect(),
            retry: spec.retry,
            message_concurrency: spec.processors.message_concurrency,
            partition_by: spec.processors.partition_by.clone(),
        });
        let topology = Topology {
            producers: (0..spec.producers.concurrency).map(|i| format!("{name}.producer_{i}")).collect(),
            processors: (0..spec.processors.concurrency).map(|i| format!("{name}.processor_{i}")).collect(),
            processor_max_demand: spec.processors.max_demand,
            batchers: spec
                .batchers
                .iter()
                .map(|b| BatcherTopology {
                    name: b.name.to_string(),
                    stage: format!("{name}.batcher_{}", b.name),
                    batch_processors: (0..b.options.concurrency)
                        .map(|k| format!("{name}.batch_processor_{}_{k}", b.name))
                        .collect(),
                    batch_size: format!("{:?}", b.options.batch_size),
                    batch_timeout: b.options.batch_timeout,
                    concurrency: b.options.concurrency,
                })
                .collect(),
        };
        let slots = spec.producers.concurrency
            + spec.processors.concurrency
            + spec.batchers.iter().map(|b| 1 + b.options.concurrency).sum::<usize>();
        let running = Arc::new(Running {
            live_producers: AtomicUsize::new(spec.producers.concurrency),
            live_processors: AtomicUsize::new(spec.processors.concurrency),
            processors_down: AtomicUsize::new(0),
            batch_processors_down: spec.batchers.iter().map(|_| AtomicUsize::new(0)).collect(),
            spec,
            shared,
            draining: AtomicBool::new(false),
            producers: Mutex::new(Vec::new()),
            processors: Mutex::new(Vec::new()),
            batchers: Mutex::new(Vec::new()),
            batch_processors: Mutex::new(Vec::new()),
            live: watch::Sender::new(slots),
            failures: Mutex::new(Vec::new()),
            restarting: tokio::sync::Mutex::new(()),
            tasks: TaskTracker::new(),
            topology,
        });
        running.start_all().await?;
        let mut all = Vec::new();
        all.extend((0..running.spec.producers.concurrency).map(Slot::Producer));
        all.extend((0..running.spec.processors.concurrency).map(Slot::Processor));
        for (b, batcher) in running.spec.batchers.iter().enumerate() {
            all.push(Slot::Batcher(b));
            all.extend((0..batcher.options.concurrency).map(|k| Slot::BatchProcessor(b, k)));
        }
        for slot in all {
            tokio::spawn(running.clone().supervise(slot));
        }
        Ok(running)
    }

    /// Starts the stages from the last to the first, each subscribed before the producers
    /// are released, so a short-lived source cannot finish before everyone is listening.
    async fn start_all(&self) -> Result<(), Error> {
        let producers: ProducerSlots<H::Data> = (0..self.spec.producers.concurrency)
            .map(|i| self.start_producer(i).map(|p| Some(Arc::from(p))))
            .collect::<Result<_, _>>()?;
        for i in 0..self.spec.processors.concurrency {
            let entry = self.start_processor(i)?;
            for producer in producers.iter().flatten() {
                entry.consumer.subscribe_to(producer.producer(), self.processor_subscription(i)).await?;
            }
            lock(&self.processors).push(entry);
        }
        for b in 0..self.spec.batchers.len() {
            let entry = self.start_batcher(b)?;
            let outputs: Vec<_> = lock(&self.processors).iter().filter_map(|p| p.output.clone()).collect();
            for output in &outputs {
                entry.consumer.subscribe_to(output, self.batcher_subscription(b)).await?;
            }
            let mut started = Vec::new();
            for k in 0..self.spec.batchers[b].options.concurrency {
                let batch_processor = self.start_batch_processor(b, k)?;
                batch_processor.consumer.subscribe_to(&entry.producer, self.batch_subscription(b, k)).await?;
                started.push(batch_processor);
            }
            lock(&self.batchers).push(entry);
            lock(&self.batch_processors).push(started);
        }
        for producer in producers.iter().flatten() {
            producer.release_demand();
        }
        *lock(&self.producers) = producers;
        Ok(())
    }

    fn start_producer(&self, index: usize) -> Result<Box<dyn ProducerControl<H::Data>>, Error> {
        let spec = &self.spec;
        let name = self.topology.producers[index].clone();
        let partition = spec.processors.partition_by.clone().map(|hash| (spec.processors.concurrency, hash));
        (spec.start_producer)(ProducerStart {
            metrics: StageMetrics::new(&spec.name, &name, "handle_demand", spec.in_flight.clone()),
            name,
            index,
            limiter: spec.limiter.clone(),
            partition,
            tasks: self.tasks.clone(),
        })
    }

    fn processor_subscription(&self, index: usize) -> SubscribeOptions<Message<H::Data>> {
        let processors = &self.spec.processors;
        let mut options =
            SubscribeOptions::new().max_demand(processors.max_demand).cancel(CancelMode::Temporary);
        if let Some(min) = processors.min_demand {
            options = options.min_demand(min);
        }
        if processors.partition_by.is_some() {
            options = options.partition(index);
        }
        options
    }

    fn start_processor(&self, index: usize) -> Result<ProcessorEntry<H::Data, H::Output>, Error> {
        let spec = &self.spec;
        let name = self.topology.processors[index].clone();
        let metrics = StageMetrics::new(&spec.name, &name, "handle_message", spec.in_flight.clone());
        let processor = Processor::new(self.shared.clone(), metrics);
        if spec.batchers.is_empty() {
            let handle = start_consumer(LastProcessor(processor), ConsumerOptions::new().name(name))?;
            return Ok(ProcessorEntry {
                consumer: handle.consumer().clone(),
                stage: handle.stage().clone(),
                output: None,
                any: handle.to_any(),
            });
        }
        let mut options = ProducerConsumerOptions::new().name(name);
        if spec.batchers.len() > 1 {
            let dispatcher = PartitionDispatcher::new(spec.batchers.len(), |m: Message<H::Output>| {
                let batcher = m.envelope.batcher_index;
                Some((m, batcher))
            })?;
            options = options.dispatcher(dispatcher);
        }
        let handle = start_producer_consumer(processor, options)?;
        Ok(ProcessorEntry {
            consumer: handle.consumer().clone(),
            stage: handle.stage().clone(),
            output: Some(handle.producer().clone()),
            any: handle.to_any(),
        })
    }

    fn batcher_subscription(&self, b: usize) -> SubscribeOptions<Message<H::Output>> {
        let options = &self.spec.batchers[b].options;
        let mut subscribe =
            SubscribeOptions::new().max_demand(options.effective_max_demand()).cancel(CancelMode::Temporary);
        if let Some(min) = options.min_demand {
            subscribe = subscribe.min_demand(min);
        }
        if self.spec.batchers.len() > 1 {
            subscribe = subscribe.partition(b);
        }
        subscribe
    }

    fn start_batcher(&self, b: usize) -> Result<BatcherEntry<H::Output>, Error> {
        let spec = &self.spec.batchers[b];
        let options = &spec.options;
        let partition = options.partition_by.clone().map(|hash| (options.concurrency, hash));
        let batcher = Batcher::new(
            spec.name.clone(),
            options.batch_size.clone(),
            options.batch_timeout,
            partition.clone(),
            BatcherMetrics::new(&self.spec.name, &spec.name),
        );
        let mut stage_options = ProducerConsumerOptions::new().name(self.topology.batchers[b].stage.clone());
        if partition.is_some() {
            let dispatcher = PartitionDispatcher::new(options.concurrency, |batch: Batch<H::Output>| {
                let p = batch.info.partition.unwrap_or(0);
                Some((batch, p))
            })?;
            stage_options = stage_options.dispatcher(dispatcher);
        }
        let handle = start_producer_consumer(batcher, stage_options)?;
        Ok(BatcherEntry {
            consumer: handle.consumer().clone(),
            producer: handle.producer().clone(),
            stage: handle.stage().clone(),
            any: handle.to_any(),
        })
    }

    fn batch_subscription(&self, b: usize, k: usize) -> SubscribeOptions<Batch<H::Output>> {
        // A batch is already a chunk: ask for two, so the next waits while one is handled.
        let mut subscribe = SubscribeOptions::new().max_demand(2).min_demand(1).cancel(CancelMode::Temporary);
        if self.spec.batchers[b].options.partition_by.is_some() {
            subscribe = subscribe.partition(k);
        }
        subscribe
    }

    fn start_batch_processor(&self, b: usize, k: usize) -> Result<Started<Batch<H::Output>>, Error> {
        let spec = &self.spec;
        let name = self.topology.batchers[b].batch_processors[k].clone();
        let metrics = StageMetrics::new(&spec.name, &name, "handle_batch", spec.in_flight.clone());
        (spec.batchers[b].start)(&spec.handler, spec.retry, name, metrics)
    }

    fn name(&self, slot: Slot) -> String {
        match slot {
            Slot::Producer(i) => self.topology.producers[i].clone(),
            Slot::Processor(i) => self.topology.processors[i].clone(),
            Slot::Batcher(b) => self.topology.batchers[b].stage.clone(),
            Slot::BatchProcessor(b, k) => self.topology.batchers[b].batch_processors[k].clone(),
        }
    }

    fn stage(&self, slot: Slot) -> Option<AnyStageRef> {
        match slot {
            Slot::Producer(i) => lock(&self.producers).get(i).cloned().flatten().map(|p| p.stage()),
            Slot::Processor(i) => lock(&self.processors).get(i).map(|p| p.any.clone()),
            Slot::Batcher(b) => lock(&self.batchers).get(b).map(|e| e.any.clone()),
            Slot::BatchProcessor(b, k) => {
                lock(&self.batch_processors).get(b).and_then(|s| s.get(k)).map(|s| s.any.clone())
            }
        }
    }

    /// The producers running now.
    pub(crate) fn producers(&self) -> Vec<Arc<dyn ProducerControl<H::Data>>> {
        lock(&self.producers).iter().flatten().cloned().collect()
    }

    /// Every stage running now.
    pub(crate) fn stages(&self) -> Vec<AnyStageRef> {
        let mut all: Vec<AnyStageRef> = self.producers().iter().map(|p| p.stage()).collect();
        all.extend(lock(&self.processors).iter().map(|p| p.any.clone()));
        all.extend(lock(&self.batchers).iter().map(|b| b.any.clone()));
        all.extend(lock(&self.batch_processors).iter().flatten().map(|s| s.any.clone()));
        all
    }

    /// Whether a stage may still run.
    pub(crate) fn is_running(&self) -> bool {
        *self.live.borrow() > 0
    }

    /// Waits until every slot is done, then until the tasks producers spawned have ended;
    /// the first stage that failed for good, if any.
    pub(crate) async fn wait(&self) -> Result<(), Error> {
        let mut live = self.live.subscribe();
        let _sender_lives_in_self = live.wait_for(|n| *n == 0).await;
        self.tasks.close();
        self.tasks.wait().await;
        lock(&self.failures).first().cloned().map_or(Ok(()), Err)
    }

    /// Keeps `slot`'s stage running: restarts it when it crashes (within the restart
    /// intensity, not while draining). When the slot is done, tells its consumers if it
    /// was the last of its kind.
    async fn supervise(self: Arc<Self>, slot: Slot) {
        let (max_restarts, window) = match slot {
            Slot::Producer(_) => (self.spec.producers.max_restarts, self.spec.producers.max_seconds),
            _ => (STAGE_MAX_RESTARTS, STAGE_RESTART_WINDOW),
        };
        let name = self.name(slot);
        let mut restarts: VecDeque<Instant> = VecDeque::new();
        while let Some(stage) = self.stage(slot) {
            let reason = stage.wait().await;
            if !reason.is_failure() || self.draining.load(Ordering::SeqCst) {
                break;
            }
            let now = Instant::now();
            restarts.retain(|t| now.duration_since(*t) < window);
            if restarts.len() >= max_restarts {
                tracing::error!(stage = %name, %reason, "stage crashed too often ({max_restarts} restarts within {window:?}); it stays down");
                self.stays_down(slot, &name, reason.to_string()).await;
                break;
            }
            restarts.push_back(now);
            tracing::warn!(stage = %name, %reason, "stage crashed; restarting it (the messages it held are acknowledged as failed)");
            if let Err(error) = self.restart(slot).await {
                tracing::error!(stage = %name, %error, "stage could not restart");
                self.stays_down(slot, &name, error.to_string()).await;
                break;
            }
        }
        self.slot_done(slot);
    }

    /// `slot`'s stage stays down: `wait` reports it, and the pipeline stops unless it can go
    /// on without it.
    async fn stays_down(&self, slot: Slot, name: &str, reason: String) {
        lock(&self.failures).push(Error::StageFailed { stage: name.to_owned(), reason });
        if !self.goes_on_without(slot) {
            tracing::error!(stage = %name, "no other stage takes the messages of the stage that stays down; the pipeline stops");
            self.stop_all().await;
        }
    }

    /// Whether the pipeline can go on without `slot`'s stage, down for good: only if other
    /// stages of its kind take its messages. Without it, the messages it would have had
    /// wait forever: a batcher's in the processors (which then stop asking), a lone or
    /// partitioned processor's in the producers, a lone or partitioned batch processor's in
    /// its batcher; the stages holding them never finish, and `wait` would hang.
    fn goes_on_without(&self, slot: Slot) -> bool {
        match slot {
            // The other producers go on; when none is left, the pipeline drains.
            Slot::Producer(_) => true,
            Slot::Processor(_) => {
                let down = self.processors_down.fetch_add(1, Ordering::SeqCst) + 1;
                let processors = &self.spec.processors;
                processors.partition_by.is_none() && down < processors.concurrency
            }
            Slot::Batcher(_) => false,
            Slot::BatchProcessor(b, _) => {
                let down = self.batch_processors_down[b].fetch_add(1, Ordering::SeqCst) + 1;
                let options = &self.spec.batchers[b].options;
                options.partition_by.is_none() && down < options.concurrency
            }
        }
    }

    /// Stops every stage still running (each after its current callback): the messages
    /// they hold are acknowledged as failed. Marked draining first, under the restart lock,
    /// so that no stage is restarted after this (it would wait for neighbours that are
    /// gone, and the pipeline would never stop).
    async fn stop_all(&self) {
        let _no_restart_meanwhile = self.restarting.lock().await;
        self.draining.store(true, Ordering::SeqCst);
        for stage in self.stages() {
            // Not awaited here: a stage stopping after a long callback holds up no other.
            tokio::spawn(async move { stage.stop().await });
        }
    }

    fn slot_done(&self, slot: Slot) {
        match slot {
            Slot::Producer(i) => {
                if let Some(entry) = lock(&self.producers).get_mut(i) {
                    *entry = None;
                }
                if self.live_producers.fetch_sub(1, Ordering::SeqCst) == 1 {
                    for processor in lock(&self.processors).iter() {
                        let _stopped_already = processor.stage.cast(ProcessorInfo::ProducersDone);
                    }
                }
            }
            Slot::Processor(_) => {
                if self.live_processors.fetch_sub(1, Ordering::SeqCst) == 1 {
                    for batcher in lock(&self.batchers).iter() {
                        let _stopped_already = batcher.stage.cast(BatcherInfo::ProcessorsDone);
                    }
                }
            }
            Slot::Batcher(_) | Slot::BatchProcessor(..) => {}
        }
        self.live.send_modify(|n| *n = n.saturating_sub(1));
    }

    /// Starts a new instance in `slot` and wires it to the running neighbours.
    async fn restart(&self, slot: Slot) -> Result<(), Error> {
        let _one_at_a_time = self.restarting.lock().await;
        if self.draining.load(Ordering::SeqCst) && !matches!(slot, Slot::Producer(_)) {
            // The pipeline stopped (`stop_all`) or started draining while this slot waited
            // for the lock: no restart, as `supervise` decides while draining; its task then
            // sees the old instance stopped and ends. (A restarted processor or batcher would
            // find no neighbours and never finish.)
            return Ok(());
        }
        match slot {
            Slot::Producer(i) => {
                let producer: Arc<dyn ProducerControl<H::Data>> = Arc::from(self.start_producer(i)?);
                let consumers: Vec<_> = lock(&self.processors).iter().map(|p| p.consumer.clone()).collect();
                for (j, consumer) in consumers.iter().enumerate() {
                    subscribed(
                        consumer.subscribe_to(producer.producer(), self.processor_subscription(j)).await,
                        "processor to restarted producer",
                    );
                }
                producer.release_demand();
                if let Some(entry) = lock(&self.producers).get_mut(i) {
                    *entry = Some(producer.clone());
                }
                if self.draining.load(Ordering::SeqCst) {
                    producer.drain();
                }
            }
            Slot::Processor(i) => {
                let entry = self.start_processor(i)?;
                for producer in self.producers() {
                    subscribed(
                        entry
                            .consumer
                            .subscribe_to(producer.producer(), self.processor_subscription(i))
                            .await,
                        "restarted processor to producer",
                    );
                }
                if let Some(output) = &entry.output {
                    let batchers: Vec<_> = lock(&self.batchers).iter().map(|b| b.consumer.clone()).collect();
                    for (b, batcher) in batchers.iter().enumerate() {
                        subscribed(
                            batcher.subscribe_to(output, self.batcher_subscription(b)).await,
                            "batcher to restarted processor",
                        );
                    }
                }
                if self.live_producers.load(Ordering::SeqCst) == 0 {
                    let _stopped_already = entry.stage.cast(ProcessorInfo::ProducersDone);
                }
                if let Some(slot) = lock(&self.processors).get_mut(i) {
                    *slot = entry;
                }
            }
            Slot::Batcher(b) => {
                let entry = self.start_batcher(b)?;
                let outputs: Vec<_> =
                    lock(&self.processors).iter().filter_map(|p| p.output.clone()).collect();
                for output in &outputs {
                    subscribed(
                        entry.consumer.subscribe_to(output, self.batcher_subscription(b)).await,
                        "restarted batcher to processor",
                    );
                }
                let consumers: Vec<_> = lock(&self.batch_processors)
                    .get(b)
                    .map(|s| s.iter().map(|s| s.consumer.clone()).collect())
                    .unwrap_or_default();
                for (k, consumer) in consumers.iter().enumerate() {
                    subscribed(
                        consumer.subscribe_to(&entry.producer, self.batch_subscription(b, k)).await,
                        "batch processor to restarted batcher",
                    );
                }
                if self.live_processors.load(Ordering::SeqCst) == 0 {
                    let _stopped_already = entry.stage.cast(BatcherInfo::ProcessorsDone);
                }
                if let Some(slot) = lock(&self.batchers).get_mut(b) {
                    *slot = entry;
                }
            }
            Slot::BatchProcessor(b, k) => {
                let started = self.start_batch_processor(b, k)?;
                let batcher = lock(&self.batchers).get(b).map(|e| e.producer.clone());
                if let Some(batcher) = batcher {
                    subscribed(
                        started.consumer.subscribe_to(&batcher, self.batch_subscription(b, k)).await,
                        "restarted batch processor to batcher",
                    );
                }
                if let Some(slot) = lock(&self.batch_processors).get_mut(b).and_then(|s| s.get_mut(k)) {
                    *slot = started;
                }
            }
        }
        Ok(())
    }
}
