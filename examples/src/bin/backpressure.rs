//! Back-pressure, the point of it all: a fast producer held back by a slow consumer.
//!
//! `FastSource` could produce millions of events a second; it reads its source in pages of
//! 64. `SlowSink` takes a millisecond per event and asks for at most 50 at a time. Every
//! quarter of a second the program prints how many events were produced and consumed, and
//! the producer's [`estimated_buffered_count`](weir_core::StageRef::estimated_buffered_count):
//! production follows consumption, never running ahead by more than the consumer's
//! `max_demand` plus the rest of a page waiting in the producer's buffer.
//!
//! After 2.5 s the program closes the producer: it finishes once its buffer has been
//! delivered, and the consumer after handling everything — nothing is lost.
//!
//! ```sh
//! cargo run --release -p weir-examples --bin backpressure
//! ```

use std::error::Error;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use weir_core::{
    start_consumer, start_producer, BoxError, Consumer, ConsumerOptions, Context, ExitReason, Producer,
    ProducerOptions, SubscribeOptions, SubscriptionId,
};

/// The consumer's `max_demand`: the most events it is ever sent without having asked.
const MAX_DEMAND: usize = 50;
/// The producer reads its source a page at a time.
const PAGE: usize = 64;
/// How long the program runs before closing the producer.
const RUN_FOR: Duration = Duration::from_millis(2500);
/// How often it prints the counts.
const EVERY: Duration = Duration::from_millis(250);

#[derive(Debug)]
enum SourceMsg {
    /// Stop producing; finish once the buffer is delivered.
    Close,
}

/// Produces as fast as it is asked, a page at a time: whatever it emits beyond demand (the
/// rest of a page) waits in its buffer.
struct FastSource {
    next: u64,
    produced: Arc<AtomicU64>,
}

impl Producer for FastSource {
    type Event = u64;
    type Message = SourceMsg;

    async fn handle_demand(
        &mut self,
        demand: usize,
        _ctx: &mut Context<SourceMsg>,
    ) -> Result<Vec<u64>, BoxError> {
        let count = (demand.div_ceil(PAGE) * PAGE) as u64;
        let events = (self.next..self.next + count).collect();
        self.next += count;
        self.produced.fetch_add(count, Ordering::SeqCst);
        Ok(events)
    }

    async fn handle_info(
        &mut self,
        message: SourceMsg,
        ctx: &mut Context<SourceMsg>,
    ) -> Result<Vec<u64>, BoxError> {
        match message {
            SourceMsg::Close => ctx.finish(),
        }
        Ok(Vec::new())
    }
}

/// Handles each event in a millisecond, and checks that they arrive in order.
struct SlowSink {
    consumed: Arc<AtomicU64>,
    expected: u64,
}

impl Consumer for SlowSink {
    type Event = u64;
    type Message = ();

    async fn handle_events(
        &mut self,
        events: Vec<u64>,
        _: SubscriptionId,
        _: &mut Context,
    ) -> Result<(), BoxError> {
        for event in events {
            if event != self.expected {
                return Err(format!("expected event {}, got {event}", self.expected).into());
            }
            self.expected += 1;
            tokio::time::sleep(Duration::from_millis(1)).await;
            self.consumed.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let produced = Arc::new(AtomicU64::new(0));
    let consumed = Arc::new(AtomicU64::new(0));
    let source = start_producer(
        FastSource { next: 0, produced: produced.clone() },
        ProducerOptions::new().name("fast-source"),
    )?;
    let sink = start_consumer(
        SlowSink { consumed: consumed.clone(), expected: 0 },
        ConsumerOptions::new()
            .name("slow-sink")
            .subscribe_to(&source, SubscribeOptions::new().max_demand(MAX_DEMAND)),
    )?;

    // What may be produced and not yet consumed: what the consumer asked for, plus the rest
    // of a page in the producer's buffer.
    let bound = (MAX_DEMAND + PAGE) as u64;
    println!("max_demand {MAX_DEMAND}, page {PAGE}: produced - consumed may not exceed {bound}");
    println!("{:>6} {:>9} {:>9} {:>10} {:>9}", "time", "produced", "consumed", "in flight", "buffered");
    let started = Instant::now();
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + EVERY, EVERY);
    while started.elapsed() < RUN_FOR {
        ticks.tick().await;
        let buffered = source.estimated_buffered_count().await?;
        // Read `produced` first: `consumed` can only have grown since.
        let produced = produced.load(Ordering::SeqCst);
        let consumed = consumed.load(Ordering::SeqCst);
        println!(
            "{:>4}ms {produced:>9} {consumed:>9} {:>10} {buffered:>9}",
            started.elapsed().as_millis(),
            produced.saturating_sub(consumed)
        );
        assert!(
            produced <= consumed + bound,
            "the producer ran ahead: {produced} produced, {consumed} consumed"
        );
        assert!(buffered < PAGE, "the buffer only ever holds the rest of a page, not {buffered} events");
    }

    // Close the source: it delivers its buffer and stops; the sink drains and stops.
    source.cast(SourceMsg::Close)?;
    let reason = tokio::time::timeout(Duration::from_secs(2), sink.wait())
        .await
        .map_err(|_| "the sink did not finish within 2 s")?;
    let (produced, consumed) = (produced.load(Ordering::SeqCst), consumed.load(Ordering::SeqCst));
    println!(
        "sink stopped ({reason}) after {:?}: {produced} produced, {consumed} consumed",
        started.elapsed()
    );
    assert!(matches!(reason, ExitReason::Normal), "the sink ended with {reason}");
    assert_eq!(produced, consumed, "everything produced was consumed");
    // A millisecond per event: back-pressure kept production to the consumer's pace.
    let pace = RUN_FOR.as_millis() as u64 + 500;
    assert!(produced <= pace + bound, "{produced} events produced in about {pace} ms of 1 ms events");
    println!("ok: the producer never ran more than {bound} events ahead of the consumer");
    Ok(())
}
