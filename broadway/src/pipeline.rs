//! The pipeline: its builder, and the handle of a running one.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::config::{BatcherOptions, ProcessorOptions, ProducerOptions};
use crate::error::Error;
use crate::handler::{BatchHandler, Handler};
use crate::message::Message;
use crate::producer::{starter, AsIs, EachWith, Producer, StartProducer};
use crate::rate_limit::{RateLimit, RateLimiter};
use crate::retry::RetryPolicy;
use crate::topology::running::{start_batch_processor, BatcherSpec, Running, Spec};

/// A running ingestion pipeline: producers → processors → batchers → batch processors
/// (Broadway's topology), with back-pressure all the way and every message acknowledged
/// exactly once.
///
/// Build one with [`Pipeline::builder`]. It runs until every producer is done (then it
/// drains and stops by itself) or until [`stop`](Pipeline::stop). Dropping the handle
/// starts a drain without waiting for it.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), weir_broadway::Error> {
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use weir_broadway::{BatchHandler, BatchInfo, BatcherOptions, BoxError, Handler, Message, Pipeline};
/// use weir_broadway::{ProcessorOptions, ProducerOptions, memory::MemoryProducer};
///
/// #[derive(Default)]
/// struct Sum(AtomicU64);
///
/// impl Handler for Sum {
///     type Data = u64;
///     type Output = u64;
///     async fn handle_message(&self, message: &mut Message<u64>) -> Result<u64, BoxError> {
///         Ok(message.data() * 2)
///     }
/// }
///
/// impl BatchHandler for Sum {
///     async fn handle_batch(&self, messages: &mut [Message<u64>], _: &BatchInfo) -> Result<(), BoxError> {
///         self.0.fetch_add(messages.iter().map(|m| m.data()).sum(), Ordering::Relaxed);
///         Ok(())
///     }
/// }
///
/// let (producer, acks) = MemoryProducer::from_iter(1..=100u64);
/// let pipeline = Pipeline::builder("sum", Sum::default())
///     .producer(producer, ProducerOptions::new())
///     .processors(ProcessorOptions::new().concurrency(2))
///     .batcher("default", BatcherOptions::new().batch_size(10))
///     .start()
///     .await?;
/// pipeline.wait().await?; // the producer ran out: the pipeline drained and stopped
/// assert_eq!(pipeline.handler().0.load(Ordering::Relaxed), 2 * 5050);
/// assert_eq!(acks.successful(), 100);
/// # Ok(()) }
/// ```
pub struct Pipeline<H: Handler> {
    name: Arc<str>,
    handler: Arc<H>,
    running: Arc<Running<H>>,
    limiter: Option<Arc<RateLimiter>>,
    shutdown_timeout: Duration,
    in_flight: Arc<AtomicI64>,
    next_push: AtomicUsize,
    stopped: AtomicBool,
}

/// Configures a pipeline; [`start`](Builder::start) checks everything and starts it.
///
/// # Examples
///
/// The configuration of `../shared/seeds/004`: one producer, 10 processors with
/// `max_demand` 5, a "persistence" batcher with batches of 100, a 1 s timeout and 5 batch
/// processors.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), weir_broadway::Error> {
/// use std::time::Duration;
/// use weir_broadway::{BatchHandler, BatchInfo, BatcherOptions, BoxError, Handler, Message, Pipeline};
/// use weir_broadway::{ProcessorOptions, ProducerOptions, memory::MemoryProducer};
///
/// struct Sync;
///
/// impl Handler for Sync {
///     type Data = String;
///     type Output = String;
///     async fn handle_message(&self, message: &mut Message<String>) -> Result<String, BoxError> {
///         message.put_batcher("persistence");
///         Ok(message.data().to_uppercase())
///     }
/// }
///
/// impl BatchHandler for Sync {
///     async fn handle_batch(&self, messages: &mut [Message<String>], _: &BatchInfo) -> Result<(), BoxError> {
///         Ok(()) // insert_all(messages)
///     }
/// }
///
/// let (producer, _queue) = MemoryProducer::<String>::queue();
/// let pipeline = Pipeline::builder("gsc_batches", Sync)
///     .producer(producer, ProducerOptions::new().concurrency(1))
///     .processors(ProcessorOptions::new().concurrency(10).max_demand(5))
///     .batcher("persistence", BatcherOptions::new()
///         .batch_size(100)
///         .batch_timeout(Duration::from_secs(1))
///         .concurrency(5))
///     .start()
///     .await?;
/// assert_eq!(pipeline.producer_names(), vec!["gsc_batches.producer_0"]);
/// pipeline.stop().await;
/// # Ok(()) }
/// ```
pub struct Builder<H: Handler> {
    name: String,
    handler: Arc<H>,
    producer: Option<(StartProducer<H::Data>, ProducerOptions)>,
    processors: ProcessorOptions<H::Data>,
    batchers: Vec<BatcherSpec<H>>,
    retry: Option<RetryPolicy>,
    shutdown_timeout: Duration,
    /// The producer's [`Producer::ORDERED_BY_GROUP`].
    ordered_by_group: bool,
}

impl<H: Handler> Pipeline<H> {
    /// A builder for a pipeline named `name` running `handler`'s callbacks. The handler is
    /// shared by every stage: it is the context of all callbacks.
    pub fn builder(name: impl Into<String>, handler: H) -> Builder<H> {
        Builder {
            name: name.into(),
            handler: Arc::new(handler),
            producer: None,
            processors: ProcessorOptions::new(),
            batchers: Vec::new(),
            retry: None,
            shutdown_timeout: Duration::from_secs(30),
            ordered_by_group: false,
        }
    }
}

impl<H: Handler> Builder<H> {
    /// The producer: `factory` makes each of the `concurrency` instances (and restarted
    /// ones). Its events are the messages.
    #[must_use]
    pub fn producer<P, F>(mut self, factory: F, options: ProducerOptions) -> Self
    where
        P: Producer<Event = Message<H::Data>>,
        F: Fn() -> P + Send + Sync + 'static,
    {
        self.producer = Some((starter(factory, AsIs), options));
        self.ordered_by_group = P::ORDERED_BY_GROUP;
        self
    }

    /// The producer, with a transformer from its events to messages (Broadway's
    /// `transformer`), e.g. to wrap raw events with an acknowledger.
    #[must_use]
    pub fn producer_with_transformer<P, F, T>(
        mut self,
        factory: F,
        transformer: T,
        options: ProducerOptions,
    ) -> Self
    where
        P: Producer,
        F: Fn() -> P + Send + Sync + 'static,
        T: Fn(P::Event) -> Message<H::Data> + Send + Sync + 'static,
    {
        self.producer = Some((starter(factory, EachWith(transformer)), options));
        self.ordered_by_group = P::ORDERED_BY_GROUP;
        self
    }

    /// The processors' options.
    #[must_use]
    pub fn processors(mut self, options: ProcessorOptions<H::Data>) -> Self {
        self.processors = options;
        self
    }

    /// Adds a batcher named `name`; `handle_message` sends messages to it with
    /// [`Message::put_batcher`] (`"default"` unless it says otherwise).
    #[must_use]
    pub fn batcher(mut self, name: impl Into<Arc<str>>, options: BatcherOptions<H::Output>) -> Self
    where
        H: BatchHandler,
    {
        self.batchers.push(BatcherSpec { name: name.into(), options, start: start_batch_processor::<H> });
        self
    }

    /// Retries failed messages per `policy` before `handle_failed`.
    #[must_use]
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// How long [`Pipeline::stop`] waits for in-flight messages (default 30 s).
    #[must_use]
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    fn validate(&self) -> Result<&(StartProducer<H::Data>, ProducerOptions), Error> {
        if self.name.is_empty() {
            return Err(Error::invalid("name", "\"\"", "must not be empty"));
        }
        let Some(producer) = &self.producer else {
            return Err(Error::invalid("producer", "none", "is required: call Builder::producer"));
        };
        producer.1.validate()?;
        self.processors.validate()?;
        for (i, BatcherSpec { name, options, .. }) in self.batchers.iter().enumerate() {
            if name.is_empty() {
                return Err(Error::invalid("batchers.name", "\"\"", "must not be empty"));
            }
            if self.batchers[..i].iter().any(|other| other.name == *name) {
                return Err(Error::invalid(
                    "batchers.name",
                    format!("{name:?}"),
                    "must not repeat a batcher",
                ));
            }
            options.validate()?;
        }
        if let Some(retry) = &self.retry {
            retry.validate()?;
        }
        if self.shutdown_timeout.is_zero() {
            return Err(Error::invalid("shutdown_timeout", "0s", "must be greater than 0"));
        }
        Ok(producer)
    }

    /// Checks the configuration and starts every stage.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`] naming the option, the value and the rule (no producer,
    /// `max_demand` 0, `min_demand >= max_demand`, a repeated batcher name...);
    /// [`Error::Stage`] outside a tokio runtime.
    pub async fn start(self) -> Result<Pipeline<H>, Error> {
        self.validate()?;
        let Builder {
            name,
            handler,
            producer,
            mut processors,
            mut batchers,
            retry,
            shutdown_timeout,
            ordered_by_group,
        } = self;
        let Some((start_producer, producers)) = producer else {
            return Err(Error::invalid("producer", "none", "is required: call Builder::producer"));
        };
        if ordered_by_group {
            processors
                .partition_by
                .get_or_insert_with(|| Arc::new(|m: &Message<H::Data>| m.ack_data().group));
            for batcher in &mut batchers {
                batcher
                    .options
                    .partition_by
                    .get_or_insert_with(|| Arc::new(|m: &Message<H::Output>| m.ack_data().group));
            }
        }
        let in_flight = Arc::new(AtomicI64::new(0));
        let limiter = producers.rate_limit.map(|limit| Arc::new(RateLimiter::new(limit)));
        let running = Running::start(Spec {
            name: name.as_str().into(),
            handler: handler.clone(),
            start_producer,
            producers,
            processors,
            batchers,
            retry,
            limiter: limiter.clone(),
            in_flight: in_flight.clone(),
        })
        .await?;
        Ok(Pipeline {
            name: name.into(),
            handler,
            running,
            limiter,
            shutdown_timeout,
            in_flight,
            next_push: AtomicUsize::new(0),
            stopped: AtomicBool::new(false),
        })
    }
}

impl<H: Handler> Pipeline<H> {
    /// The pipeline's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The handler (the callbacks' shared context).
    pub fn handler(&self) -> &Arc<H> {
        &self.handler
    }

    /// The names of the producer stages (Broadway's `producer_names`).
    pub fn producer_names(&self) -> Vec<String> {
        self.running.topology.producers.clone()
    }

    /// The stages of the pipeline (Broadway's `topology`).
    pub fn topology(&self) -> &Topology {
        &self.running.topology
    }

    /// Messages emitted by producers and not yet acknowledged.
    pub fn in_flight(&self) -> usize {
        usize::try_from(self.in_flight.load(Ordering::Relaxed)).unwrap_or(0)
    }

    /// The current rate limit, if the pipeline has one.
    pub fn rate_limit(&self) -> Option<RateLimit> {
        self.limiter.as_ref().map(|l| l.limit())
    }

    /// Changes the rate limit while running (from the next interval on; Broadway's
    /// `update_rate_limiting`).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`] if the pipeline was started without a rate limit or
    /// `limit` is invalid.
    pub fn update_rate_limit(&self, limit: RateLimit) -> Result<(), Error> {
        limit.validate()?;
        match &self.limiter {
            Some(limiter) => {
                limiter.set(limit);
                Ok(())
            }
            None => {
                Err(Error::invalid("producer.rate_limit", "none", "must be set when the pipeline starts"))
            }
        }
    }

    /// Hands `messages` to one of the producers (in turn), which emits them like its own
    /// (Broadway's `push_messages`).
    ///
    /// # Errors
    ///
    /// [`Error::NotRunning`] when the pipeline is draining or stopped (the messages are
    /// then acknowledged as failed).
    pub fn push_messages(&self, messages: Vec<Message<H::Data>>) -> Result<(), Error> {
        if self.running.draining.load(Ordering::SeqCst) {
            return Err(Error::NotRunning);
        }
        let producers = self.running.producers();
        if producers.is_empty() {
            return Err(Error::NotRunning);
        }
        let i = self.next_push.fetch_add(1, Ordering::Relaxed) % producers.len();
        producers[i].push(messages)
    }

    /// Waits until the pipeline has stopped (its producers are done and it drained, or it
    /// was stopped).
    ///
    /// # Errors
    ///
    /// [`Error::StageFailed`] naming a stage that stayed down: it crashed more often than
    /// its restart intensity allows, or could not restart. (Callbacks' errors and panics
    /// fail messages, not stages; a producer's crash, or a panicking `batch_size` function,
    /// crashes a stage, which is restarted.) The pipeline goes on without it when others of
    /// its kind take its messages (producers; processors and batch processors without
    /// `partition_by`); otherwise (a batcher, the last processor or batch processor, or a
    /// partitioned one) it stops: the stages still running stop after their current
    /// callback, and the messages they hold are acknowledged as failed.
    pub async fn wait(&self) -> Result<(), Error> {
        self.running.wait().await
    }

    /// Whether any stage is still running.
    pub fn is_running(&self) -> bool {
        self.running.is_running()
    }

    fn start_draining(&self) {
        self.running.draining.store(true, Ordering::SeqCst);
        for producer in self.running.producers() {
            producer.drain();
        }
    }

    /// Stops gracefully: producers stop fetching (`prepare_for_draining`), everything in
    /// flight is processed, partial batches are delivered, everything is acknowledged.
    /// After the shutdown timeout, the stages still running are aborted: the messages they
    /// held are acknowledged as failed ([`Failure::Dropped`](crate::Failure::Dropped)),
    /// and the report says how many.
    pub async fn stop(&self) -> ShutdownReport {
        let started = tokio::time::Instant::now();
        self.stopped.store(true, Ordering::SeqCst);
        self.start_draining();
        let drained = tokio::time::timeout(self.shutdown_timeout, self.wait()).await;
        match drained {
            Ok(result) => ShutdownReport {
                graceful: true,
                elapsed: started.elapsed(),
                abandoned: 0,
                error: result.err().map(|e| e.to_string()),
            },
            Err(_) => {
                let abandoned = self.in_flight();
                tracing::error!(
                    pipeline = %self.name,
                    abandoned,
                    "shutdown timeout ({:?}) passed; aborting the stages still running: their messages are acknowledged as failed",
                    self.shutdown_timeout
                );
                for stage in self.running.stages() {
                    stage.stop_within(Duration::ZERO).await;
                }
                ShutdownReport { graceful: false, elapsed: started.elapsed(), abandoned, error: None }
            }
        }
    }
}

impl<H: Handler> Drop for Pipeline<H> {
    fn drop(&mut self) {
        if !self.stopped.load(Ordering::SeqCst) {
            self.start_draining();
        }
    }
}

impl<H: Handler> fmt::Debug for Pipeline<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipeline")
            .field("name", &self.name)
            .field("topology", &self.running.topology)
            .finish()
    }
}

/// What [`Pipeline::stop`] did.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), weir_broadway::Error> {
/// use weir_broadway::{BoxError, Handler, Message, Pipeline, ProducerOptions, memory::MemoryProducer};
///
/// struct Nothing;
/// impl Handler for Nothing {
///     type Data = u8;
///     type Output = ();
///     async fn handle_message(&self, _: &mut Message<u8>) -> Result<(), BoxError> { Ok(()) }
/// }
///
/// let (producer, _queue) = MemoryProducer::<u8>::queue();
/// let pipeline = Pipeline::builder("idle", Nothing).producer(producer, ProducerOptions::new()).start().await?;
/// let report = pipeline.stop().await;
/// assert!(report.graceful);
/// assert_eq!(report.abandoned, 0);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Everything in flight was processed and acknowledged within the shutdown timeout.
    pub graceful: bool,
    /// How long stopping took.
    pub elapsed: Duration,
    /// Messages still in flight when the timeout passed (acknowledged as failed).
    pub abandoned: usize,
    /// A stage that failed while draining, if one did.
    pub error: Option<String>,
}

/// The stages of a running pipeline, by name (Broadway's `topology/1`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Topology {
    /// Producer stages.
    pub producers: Vec<String>,
    /// Processor stages.
    pub processors: Vec<String>,
    /// `max_demand` of each processor.
    pub processor_max_demand: usize,
    /// Batchers.
    pub batchers: Vec<BatcherTopology>,
}

/// One batcher in a [`Topology`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatcherTopology {
    /// The batcher's name.
    pub name: String,
    /// Its batcher stage.
    pub stage: String,
    /// Its batch processor stages.
    pub batch_processors: Vec<String>,
    /// Its batch size.
    pub batch_size: String,
    /// Its batch timeout.
    pub batch_timeout: Duration,
    /// How many batch processors.
    pub concurrency: usize,
}

impl fmt::Display for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "producers: {}", self.producers.join(", "))?;
        writeln!(f, "processors: {} (max_demand {})", self.processors.len(), self.processor_max_demand)?;
        for b in &self.batchers {
            writeln!(
                f,
                "batcher {}: batch_size {}, batch_timeout {:?}, {} batch processors",
                b.name, b.batch_size, b.batch_timeout, b.concurrency
            )?;
        }
        Ok(())
    }
}
