//! Starting a pipeline's stages and keeping its producers running.
//!
//! ```text
//! producer_0..p ──(demand or partition by processors' partition_by)──▶ processor_0..n
//!   processor ──(partition by batcher)──▶ batcher_<name> ──(demand or partition_by)──▶ batch_processor_<name>_0..k
//! ```
//!
//! Processors subscribe to every producer with a temporary cancel mode: a producer that
//! crashes is restarted by its slot task (`supervise_producer`), which subscribes every
//! processor to the new instance. A processor finishes once every producer is gone for
//! good and its subscriptions have ended; batchers finish after the last processor (flushing
//! their open batches), batch processors after their batcher.

pub(crate) mod batch_processor;
pub(crate) mod batcher;
pub(crate) mod processor;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use weir_core::dispatcher::PartitionDispatcher;
use weir_core::{
    start_consumer, start_producer_consumer, AnyStageRef, CancelMode, ConsumerOptions, ConsumerRef, Context,
    ProducerConsumerOptions, ProducerRef, StageRef, SubscribeOptions,
};

use crate::config::{BatcherOptions, PartitionFn};
use crate::error::Error;
use crate::handler::{BatchHandler, Handler};
use crate::message::Message;
use crate::producer::{ProducerControl, ProducerStart, StartProducer};
use crate::rate_limit::RateLimiter;
use crate::retry::RetryPolicy;
use crate::telemetry::{BatcherMetrics, StageMetrics};
use batch_processor::BatchProcessor;
use batcher::Batcher;
use processor::ProcessorInfo;

/// Decides when a consuming stage finishes: once its upstream is gone for good and every
/// subscription to it has ended (events come before the end on a subscription, so nothing
/// is left behind).
#[derive(Default)]
pub(crate) struct Finishing {
    subscriptions: usize,
    pub(crate) upstream_done: bool,
    finished: bool,
}

impl Finishing {
    pub(crate) fn subscribed(&mut self) {
        self.subscriptions += 1;
    }

    /// A subscription ended; true if the stage finishes now.
    pub(crate) fn cancelled<M>(&mut self, ctx: &mut Context<M>) -> bool {
        self.subscriptions = self.subscriptions.saturating_sub(1);
        self.check(ctx)
    }

    pub(crate) fn upstream_done<M>(&mut self, ctx: &mut Context<M>) -> bool {
        self.upstream_done = true;
        self.check(ctx)
    }

    fn check<M>(&mut self, ctx: &mut Context<M>) -> bool {
        if self.upstream_done && self.subscriptions == 0 && !self.finished {
            self.finished = true;
            ctx.finish();
            return true;
        }
        false
    }
}

/// What starting one batcher needs; the handler's batch callbacks are bound in
/// [`start_batcher`], monomorphized where the builder knows `H: BatchHandler`.
pub(crate) struct BatcherStart<'a, H: Handler> {
    pub(crate) pipeline: &'a Arc<str>,
    pub(crate) name: &'a Arc<str>,
    pub(crate) index: usize,
    pub(crate) batchers: usize,
    pub(crate) options: &'a BatcherOptions<H::Output>,
    pub(crate) handler: &'a Arc<H>,
    pub(crate) retry: Option<RetryPolicy>,
    pub(crate) processors: &'a [ProducerRef<Message<H::Output>>],
    pub(crate) in_flight: &'a Arc<std::sync::atomic::AtomicI64>,
}

pub(crate) type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// Starts a batcher and its batch processors; returns their stages.
pub(crate) type StartBatcher<H> =
    for<'a> fn(BatcherStart<'a, H>) -> BoxFuture<'a, Result<Vec<Started>, Error>>;

/// A started stage and its name, for `topology()`.
pub(crate) struct Started {
    pub(crate) name: String,
    pub(crate) stage: AnyStageRef,
}

pub(crate) fn start_batcher<H: BatchHandler>(
    start: BatcherStart<'_, H>,
) -> BoxFuture<'_, Result<Vec<Started>, Error>> {
    Box::pin(async move {
        let BatcherStart { pipeline, name, index, batchers, options, handler, retry, processors, in_flight } =
            start;
        let stage_name = format!("{pipeline}.batcher_{name}");
        let partition = options.partition_by.clone().map(|hash| (options.concurrency, hash));
        let batcher = Batcher::new(
            name.clone(),
            options.batch_size.clone(),
            options.batch_timeout,
            partition.clone(),
            BatcherMetrics::new(pipeline, name),
        );
        let mut stage_options = ProducerConsumerOptions::new().name(stage_name.clone());
        if partition.is_some() {
            let dispatcher =
                PartitionDispatcher::new(options.concurrency, |batch: batcher::Batch<H::Output>| {
                    let p = batch.info.partition.unwrap_or(0);
                    Some((batch, p))
                })?;
            stage_options = stage_options.dispatcher(dispatcher);
        }
        let handle = start_producer_consumer(batcher, stage_options)?;
        let mut subscribe =
            SubscribeOptions::new().max_demand(options.effective_max_demand()).cancel(CancelMode::Temporary);
        if let Some(min) = options.min_demand {
            subscribe = subscribe.min_demand(min);
        }
        if batchers > 1 {
            subscribe = subscribe.partition(index);
        }
        for processor in processors {
            handle.consumer().subscribe_to(processor, subscribe.clone()).await?;
        }
        let mut started = vec![Started { name: stage_name, stage: handle.to_any() }];
        for k in 0..options.concurrency {
            let stage_name = format!("{pipeline}.batch_processor_{name}_{k}");
            let metrics = StageMetrics::new(pipeline, &stage_name, "handle_batch", in_flight.clone());
            let batch_processor = BatchProcessor { handler: handler.clone(), retry, metrics };
            let mut subscribe =
                SubscribeOptions::new().max_demand(2).min_demand(1).cancel(CancelMode::Permanent);
            if partition.is_some() {
                subscribe = subscribe.partition(k);
            }
            let consumer = start_consumer(batch_processor, ConsumerOptions::new().name(stage_name.clone()))?;
            // Subscribed (and accepted) before the producers are released: a subscription left
            // to the new stage's task may reach the batcher after it finished (a short-lived
            // pipeline), which would discard its last batches and fail the batch processor.
            consumer.consumer().subscribe_to(handle.producer(), subscribe).await?;
            started.push(Started { name: stage_name, stage: consumer.to_any() });
        }
        Ok(started)
    })
}

/// The running processors, as producers see them.
pub(crate) struct ProcessorRefs<D> {
    pub(crate) consumers: Vec<ConsumerRef<Message<D>>>,
    pub(crate) stages: Vec<StageRef<ProcessorInfo>>,
    pub(crate) subscribe: SubscribeOptions<Message<D>>,
    pub(crate) partitioned: bool,
}

impl<D: Send + 'static> ProcessorRefs<D> {
    /// Subscribes every processor to `producer` (processor `i` to partition `i` when
    /// processors are partitioned).
    pub(crate) async fn subscribe_all(&self, producer: &ProducerRef<Message<D>>) -> Result<(), Error> {
        for (i, consumer) in self.consumers.iter().enumerate() {
            let mut options = self.subscribe.clone();
            if self.partitioned {
                options = options.partition(i);
            }
            consumer.subscribe_to(producer, options).await?;
        }
        Ok(())
    }
}

/// What a producer slot needs to restart its producer.
pub(crate) struct Slot<D> {
    pub(crate) index: usize,
    pub(crate) name: String,
    pub(crate) start: StartProducer<D>,
    pub(crate) limiter: Option<Arc<RateLimiter>>,
    pub(crate) partition: Option<(usize, PartitionFn<D>)>,
    pub(crate) metrics: StageMetrics,
    pub(crate) max_restarts: usize,
    pub(crate) max_seconds: Duration,
}

impl<D: Send + 'static> Slot<D> {
    pub(crate) fn start_instance(&self) -> Result<Box<dyn ProducerControl<D>>, Error> {
        (self.start)(ProducerStart {
            name: self.name.clone(),
            index: self.index,
            limiter: self.limiter.clone(),
            partition: self.partition.clone(),
            metrics: self.metrics.clone(),
        })
    }
}

/// The producers running now, by slot; `None` once a slot is done.
pub(crate) type Current<D> = Arc<Mutex<Vec<Option<Arc<dyn ProducerControl<D>>>>>>;

/// What every producer slot shares.
pub(crate) struct Slots<D> {
    pub(crate) current: Current<D>,
    pub(crate) processors: ProcessorRefs<D>,
    pub(crate) draining: AtomicBool,
    pub(crate) live: AtomicUsize,
}

impl<D> Slots<D> {
    pub(crate) fn current(&self) -> std::sync::MutexGuard<'_, Vec<Option<Arc<dyn ProducerControl<D>>>>> {
        self.current.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Keeps slot `slot.index`'s producer running: restarts it when it crashes (within the
/// restart intensity, not while draining) and subscribes the processors to the new
/// instance. When the slot is done, tells the processors if it was the last.
pub(crate) async fn supervise_producer<D: Send + 'static>(slot: Slot<D>, shared: Arc<Slots<D>>) {
    let mut restarts: std::collections::VecDeque<Instant> = std::collections::VecDeque::new();
    loop {
        let Some(instance) = shared.current().get(slot.index).cloned().flatten() else { break };
        let reason = instance.stage().wait().await;
        if !reason.is_failure() || shared.draining.load(Ordering::SeqCst) {
            break;
        }
        let now = Instant::now();
        restarts.retain(|t| now.duration_since(*t) < slot.max_seconds);
        if restarts.len() >= slot.max_restarts {
            tracing::error!(producer = %slot.name, %reason, "producer crashed too often ({} restarts within {:?}); it stays down", slot.max_restarts, slot.max_seconds);
            break;
        }
        restarts.push_back(now);
        tracing::warn!(producer = %slot.name, %reason, "producer crashed; restarting it");
        let restarted = match slot.start_instance() {
            Ok(instance) => Arc::<dyn ProducerControl<D>>::from(instance),
            Err(error) => {
                tracing::error!(producer = %slot.name, %error, "producer could not restart");
                break;
            }
        };
        if let Err(error) = shared.processors.subscribe_all(restarted.producer()).await {
            tracing::error!(producer = %slot.name, %error, "processors could not subscribe to the restarted producer");
        }
        restarted.release_demand();
        if let Some(entry) = shared.current().get_mut(slot.index) {
            *entry = Some(restarted.clone());
        }
        if shared.draining.load(Ordering::SeqCst) {
            restarted.drain();
        }
    }
    if let Some(entry) = shared.current().get_mut(slot.index) {
        *entry = None;
    }
    if shared.live.fetch_sub(1, Ordering::SeqCst) == 1 {
        for processor in &shared.processors.stages {
            let _stopped_already = processor.cast(ProcessorInfo::ProducersDone);
        }
    }
}
