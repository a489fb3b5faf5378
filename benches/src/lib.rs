//! Measurements of weir against hand-written tokio pipelines.
//!
//! The same two shapes are built both ways, doing identical work per event:
//!
//! * **direct**: a counting source → a summing sink;
//! * **map**: a counting source → a cheap map ([`map_event`]) → a summing sink.
//!
//! In weir the source is a [`Producer`], the map a [`ProducerConsumer`] and the sink a
//! [`Consumer`], subscribed with `max_demand`/`min_demand = max_demand / 2`, so events travel
//! in `Vec` chunks of `max_demand - min_demand`. The hand-written versions are tokio tasks
//! joined by bounded [`tokio::sync::mpsc`] channels carrying `Vec<u64>` chunks of that same
//! size, holding at most `max_demand` events per channel (the same bound weir's demand sets).
//!
//! Both report an [`Outcome`] (events seen and their checksum) so callers can check that the
//! two did the same work. The `core_compare` binary and the `core` criterion bench use them.
//!
//! [`corpus`] is a Rust port of `shared/bench-inputs/gen_corpus.py` (the deterministic inputs)
//! and [`flow_shapes`] holds the `weir-flow` measurements (word count, map/filter/reduce,
//! event-window aggregation) with their sequential and rayon counterparts; [`flow_harness`] is
//! what the `flow_*` programs share (command line, input, interleaved runs, summary lines);
//! [`ingest`] what the source benchmarks share (order messages, parsing, CPU time).

pub mod corpus;
pub mod flow_harness;
pub mod flow_shapes;
pub mod ingest;

use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use weir_core::{
    start_consumer, start_producer, start_producer_consumer, BoxError, Consumer, ConsumerOptions, Context,
    Error, ExitReason, Producer, ProducerConsumer, ProducerConsumerOptions, ProducerOptions,
    SubscribeOptions, SubscriptionId,
};

/// The cheap map both `map` pipelines apply to every event.
#[inline]
pub fn map_event(x: u64) -> u64 {
    x.wrapping_mul(2).wrapping_add(1)
}

/// Maps a chunk in place (the `Vec` allocation is reused), as both `map` pipelines do.
pub fn map_chunk(events: Vec<u64>) -> Vec<u64> {
    events.into_iter().map(map_event).collect()
}

/// The next `len` events of the counting source, starting at `from`.
pub fn count_chunk(from: u64, len: u64) -> Vec<u64> {
    (from..from + len).collect()
}

/// What a sink saw: how many events and their wrapping sum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Outcome {
    /// Events received.
    pub events: u64,
    /// Wrapping sum of the events received.
    pub checksum: u64,
}

impl Outcome {
    /// Adds a chunk of events.
    #[inline]
    pub fn add(&mut self, events: &[u64]) {
        self.events += events.len() as u64;
        self.checksum = events.iter().fold(self.checksum, |acc, &x| acc.wrapping_add(x));
    }
}

/// Pipeline parameters shared by both implementations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// Events the source emits before it finishes.
    pub events: u64,
    /// weir's `max_demand` (`min_demand` is half of it).
    pub max_demand: usize,
    /// Capacity, in chunks, of each hand-written channel.
    pub capacity: usize,
}

impl Params {
    /// `events` through stages with `max_demand`; hand-written channels hold
    /// `max_demand` events' worth of chunks (see [`Params::default_capacity`]).
    pub fn new(events: u64, max_demand: usize) -> Self {
        let mut params = Params { events, max_demand, capacity: 1 };
        params.capacity = params.default_capacity();
        params
    }

    /// weir's `min_demand`: half of `max_demand`.
    pub fn min_demand(&self) -> usize {
        self.max_demand / 2
    }

    /// Events per chunk: `max_demand - min_demand`.
    pub fn chunk(&self) -> usize {
        (self.max_demand - self.min_demand()).max(1)
    }

    /// The default capacity, in chunks, of each hand-written channel: `max_demand` events' worth,
    /// i.e. 2 chunks when `min_demand` is half of `max_demand`.
    pub fn default_capacity(&self) -> usize {
        (self.max_demand / self.chunk()).max(1)
    }

    fn subscribe_options<T>(&self) -> SubscribeOptions<T> {
        SubscribeOptions::new().max_demand(self.max_demand).min_demand(self.min_demand())
    }
}

/// The pipeline shapes measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// source → sink.
    Direct,
    /// source → map → sink.
    Map,
}

impl Shape {
    /// Both shapes.
    pub const ALL: [Shape; 2] = [Shape::Direct, Shape::Map];

    /// A short label.
    pub fn label(self) -> &'static str {
        match self {
            Shape::Direct => "producer -> consumer",
            Shape::Map => "producer -> map -> consumer",
        }
    }

    /// The checksum a correct run of this shape must produce.
    pub fn expected(self, params: Params) -> Outcome {
        let mut out = Outcome::default();
        let mut next = 0;
        while next < params.events {
            let len = (params.events - next).min(params.chunk() as u64);
            let chunk = count_chunk(next, len);
            match self {
                Shape::Direct => out.add(&chunk),
                Shape::Map => out.add(&map_chunk(chunk)),
            }
            next += len;
        }
        out
    }
}

/// The counting source as a weir producer: emits the next `demand` numbers, finishes after `end`.
#[derive(Debug)]
pub struct Counter {
    next: u64,
    end: u64,
}

impl Counter {
    /// Counts `0..end`.
    pub fn new(end: u64) -> Self {
        Counter { next: 0, end }
    }
}

impl Producer for Counter {
    type Event = u64;
    type Message = ();

    async fn handle_demand(&mut self, demand: usize, ctx: &mut Context) -> Result<Vec<u64>, BoxError> {
        if self.next >= self.end {
            return Ok(Vec::new());
        }
        let len = (self.end - self.next).min(demand as u64);
        let events = count_chunk(self.next, len);
        self.next += len;
        if self.next == self.end {
            ctx.finish();
        }
        Ok(events)
    }
}

/// The map as a weir producer-consumer.
#[derive(Debug, Default)]
pub struct Map;

impl ProducerConsumer for Map {
    type In = u64;
    type Out = u64;
    type Message = ();

    async fn handle_events(
        &mut self,
        events: Vec<u64>,
        _from: SubscriptionId,
        _ctx: &mut Context,
    ) -> Result<Vec<u64>, BoxError> {
        Ok(map_chunk(events))
    }
}

/// The summing sink as a weir consumer; reports its [`Outcome`] when it stops.
#[derive(Debug)]
pub struct Sum {
    outcome: Outcome,
    report: Option<oneshot::Sender<Outcome>>,
}

impl Sum {
    /// A sink reporting through `report`.
    pub fn new(report: oneshot::Sender<Outcome>) -> Self {
        Sum { outcome: Outcome::default(), report: Some(report) }
    }
}

impl Consumer for Sum {
    type Event = u64;
    type Message = ();

    async fn handle_events(
        &mut self,
        events: Vec<u64>,
        _from: SubscriptionId,
        _ctx: &mut Context,
    ) -> Result<(), BoxError> {
        self.outcome.add(&events);
        Ok(())
    }

    async fn terminate(&mut self, _reason: &ExitReason) {
        if let Some(report) = self.report.take() {
            let _nobody_waits = report.send(self.outcome);
        }
    }
}

/// Why a pipeline run failed.
#[derive(Debug)]
pub enum RunError {
    /// weir refused to start a stage.
    Start(Error),
    /// The sink stopped abnormally.
    Exit(ExitReason),
    /// The sink or a task vanished without reporting.
    Lost(&'static str),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Start(e) => write!(f, "starting a stage failed: {e}"),
            RunError::Exit(reason) => write!(f, "the sink stopped abnormally: {reason}"),
            RunError::Lost(what) => write!(f, "{what}"),
        }
    }
}

impl std::error::Error for RunError {}

impl From<Error> for RunError {
    fn from(e: Error) -> Self {
        RunError::Start(e)
    }
}

/// Runs `shape` through weir stages; must be called inside a tokio runtime.
///
/// # Errors
///
/// When a stage does not start or the sink does not stop normally.
pub async fn run_weir(shape: Shape, params: Params) -> Result<Outcome, RunError> {
    let (tx, rx) = oneshot::channel();
    let source = start_producer(Counter::new(params.events), ProducerOptions::new())?;
    let sink = match shape {
        Shape::Direct => start_consumer(
            Sum::new(tx),
            ConsumerOptions::new().subscribe_to(&source, params.subscribe_options()),
        )?,
        Shape::Map => {
            let map = start_producer_consumer(
                Map,
                ProducerConsumerOptions::new().subscribe_to(&source, params.subscribe_options()),
            )?;
            start_consumer(
                Sum::new(tx),
                ConsumerOptions::new().subscribe_to(&map, params.subscribe_options()),
            )?
        }
    };
    match sink.wait().await {
        ExitReason::Normal => {}
        other => return Err(RunError::Exit(other)),
    }
    rx.await.map_err(|_| RunError::Lost("the weir sink did not report"))
}

/// Runs `shape` as hand-written tokio tasks joined by bounded mpsc channels of `Vec<u64>`
/// chunks; must be called inside a tokio runtime.
///
/// # Errors
///
/// When a task panics.
pub async fn run_hand(shape: Shape, params: Params) -> Result<Outcome, RunError> {
    let chunk = params.chunk() as u64;
    let capacity = params.capacity.max(1);
    let end = params.events;
    let (source_tx, source_rx) = mpsc::channel::<Vec<u64>>(capacity);
    let source = tokio::spawn(async move {
        let mut next = 0;
        while next < end {
            let len = (end - next).min(chunk);
            if source_tx.send(count_chunk(next, len)).await.is_err() {
                break;
            }
            next += len;
        }
    });
    let mut sink_rx = source_rx;
    let map = match shape {
        Shape::Direct => None,
        Shape::Map => {
            let (map_tx, map_rx) = mpsc::channel::<Vec<u64>>(capacity);
            let mut from = std::mem::replace(&mut sink_rx, map_rx);
            Some(tokio::spawn(async move {
                while let Some(events) = from.recv().await {
                    if map_tx.send(map_chunk(events)).await.is_err() {
                        break;
                    }
                }
            }))
        }
    };
    let sink = tokio::spawn(async move {
        let mut outcome = Outcome::default();
        while let Some(events) = sink_rx.recv().await {
            outcome.add(&events);
        }
        outcome
    });
    let outcome = sink.await.map_err(|_| RunError::Lost("the hand-written sink panicked"))?;
    source.await.map_err(|_| RunError::Lost("the hand-written source panicked"))?;
    if let Some(map) = map {
        map.await.map_err(|_| RunError::Lost("the hand-written map panicked"))?;
    }
    Ok(outcome)
}

/// Which implementation to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Implementation {
    /// weir stages.
    Weir,
    /// Hand-written tokio tasks and channels.
    Hand,
}

impl Implementation {
    /// A short label.
    pub fn label(self) -> &'static str {
        match self {
            Implementation::Weir => "weir",
            Implementation::Hand => "hand-written",
        }
    }

    /// Runs `shape` with this implementation, timing it end to end (stage start to sink exit).
    ///
    /// # Errors
    ///
    /// See [`run_weir`] and [`run_hand`].
    pub async fn run_timed(self, shape: Shape, params: Params) -> Result<(Outcome, Duration), RunError> {
        let start = Instant::now();
        let outcome = match self {
            Implementation::Weir => run_weir(shape, params).await?,
            Implementation::Hand => run_hand(shape, params).await?,
        };
        Ok((outcome, start.elapsed()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn both_implementations_agree_on_both_shapes() {
        let params = Params::new(12_345, 100);
        for shape in Shape::ALL {
            let expected = shape.expected(params);
            assert_eq!(expected.events, 12_345);
            assert_eq!(run_weir(shape, params).await.expect("weir run"), expected);
            assert_eq!(run_hand(shape, params).await.expect("hand run"), expected);
        }
    }
}
