//! Pattern 7 of the GenStage guide: a producer whose events arrive on their own (webhooks,
//! external queues), buffered automatically until consumers ask.
//!
//! `AsyncProducer::handle_demand` emits nothing: events are pushed by cast at any time and
//! `handle_info` emits them. What no consumer has asked for waits in the producer's buffer,
//! up to `buffer_size`; beyond it events are discarded — the oldest with
//! [`BufferKeep::Last`] (the default), the newest with [`BufferKeep::First`] — and the
//! `handle_discarded` hook runs (GenStage's `format_discarded`).
//!
//! The program pushes 250 events into each of two producers (buffer of 100) before any
//! consumer subscribes, then subscribes a consumer and pushes 20 more.
//!
//! What to look for: 150 events discarded per producer, the estimated buffered count, and the
//! consumer of the `Last` producer starting at event 150, that of the `First` one at event 0.
//!
//! ```sh
//! cargo run -p weir-examples --bin pattern_07_buffered_producer
//! ```

use std::error::Error;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use weir_core::{
    start_consumer, start_producer, BoxError, BufferKeep, Consumer, ConsumerOptions, Context, ExitReason,
    Producer, ProducerHandle, ProducerOptions, Reply, SubscribeOptions, SubscriptionId,
};

/// The producers' buffer size.
const BUFFER_SIZE: usize = 100;
/// Events pushed before anyone subscribes.
const EARLY: u64 = 250;
/// Events pushed once a consumer is subscribed.
const LATE: u64 = 20;

#[derive(Debug)]
enum PushMsg {
    /// New events from the outside world (the guide's `push/1`).
    Push(Vec<u64>),
    /// How many events were discarded so far?
    Discarded(Reply<usize>),
    /// No more events: finish once the buffer is drained.
    Close,
}

/// Emits whatever is pushed to it; the runtime buffers it until there is demand.
struct AsyncProducer {
    name: &'static str,
    discarded: usize,
}

impl Producer for AsyncProducer {
    type Event = u64;
    type Message = PushMsg;

    async fn handle_demand(
        &mut self,
        _demand: usize,
        _ctx: &mut Context<PushMsg>,
    ) -> Result<Vec<u64>, BoxError> {
        // No events on demand: they arrive through `push`.
        Ok(Vec::new())
    }

    async fn handle_info(
        &mut self,
        message: PushMsg,
        ctx: &mut Context<PushMsg>,
    ) -> Result<Vec<u64>, BoxError> {
        match message {
            // Emitted events beyond the current demand are buffered automatically.
            PushMsg::Push(events) => return Ok(events),
            PushMsg::Discarded(reply) => reply.send(self.discarded),
            // `finish` stops the stage once every buffered event has been dispatched.
            PushMsg::Close => ctx.finish(),
        }
        Ok(Vec::new())
    }

    fn handle_discarded(&mut self, discarded: usize, buffered: usize) -> bool {
        self.discarded += discarded;
        println!("[{}] discarded {discarded} events, buffer now holds {buffered}", self.name);
        // false: our message replaces the library's default warning.
        false
    }
}

/// Records what it receives.
struct Collect(Arc<Mutex<Vec<u64>>>);

impl Consumer for Collect {
    type Event = u64;
    type Message = ();

    async fn handle_events(
        &mut self,
        events: Vec<u64>,
        _: SubscriptionId,
        _: &mut Context,
    ) -> Result<(), BoxError> {
        self.0.lock().map_err(|_| "lock poisoned")?.extend(events);
        Ok(())
    }
}

/// Runs the scenario on one producer; returns what its consumer received.
async fn scenario(keep: BufferKeep) -> Result<(Vec<u64>, usize), Box<dyn Error>> {
    let name = if keep == BufferKeep::Last { "keep last" } else { "keep first" };
    println!("--- buffer_size {BUFFER_SIZE}, {name} ---");
    let producer: ProducerHandle<u64, PushMsg> = start_producer(
        AsyncProducer { name, discarded: 0 },
        ProducerOptions::new().name(name).buffer_size(BUFFER_SIZE).buffer_keep(keep),
    )?;

    // Events arrive while nobody consumes: they go to the buffer, and overflow it.
    for chunk in (0..EARLY).collect::<Vec<_>>().chunks(50) {
        producer.cast(PushMsg::Push(chunk.to_vec()))?;
    }
    let buffered = producer.estimated_buffered_count().await?;
    let discarded = producer.call(PushMsg::Discarded).await?;
    println!("[{name}] before any consumer: {buffered} buffered, {discarded} discarded");
    assert_eq!(buffered, BUFFER_SIZE, "the buffer holds buffer_size events");
    assert_eq!(discarded, EARLY as usize - BUFFER_SIZE, "the rest was discarded");

    // A consumer subscribes: it is served from the buffer first.
    let received = Arc::new(Mutex::new(Vec::new()));
    let consumer = start_consumer(
        Collect(received.clone()),
        ConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new().max_demand(50)),
    )?;
    // Once the buffer is delivered, push more: they go out as soon as the consumer asks.
    tokio::time::timeout(Duration::from_secs(1), async {
        while received.lock().map(|r| r.len()).unwrap_or_default() < BUFFER_SIZE {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .map_err(|_| "the buffered events were not delivered within 1 s")?;
    producer.cast(PushMsg::Push((EARLY..EARLY + LATE).collect()))?;
    producer.cast(PushMsg::Close)?;
    let reason = tokio::time::timeout(Duration::from_secs(2), consumer.wait())
        .await
        .map_err(|_| "the consumer did not finish within 2 s")?;
    assert!(matches!(reason, ExitReason::Normal), "the consumer ended with {reason}");

    let received = received.lock().map_err(|_| "lock poisoned")?.clone();
    println!(
        "[{name}] consumer received {} events: {:?} .. {:?}",
        received.len(),
        received.first(),
        received.last()
    );
    Ok((received, discarded))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let late: Vec<u64> = (EARLY..EARLY + LATE).collect();

    // Keep the newest: the 150 oldest are gone, events 150..250 survive.
    let (received, _) = scenario(BufferKeep::Last).await?;
    let expected: Vec<u64> = (EARLY - BUFFER_SIZE as u64..EARLY).chain(late.iter().copied()).collect();
    assert_eq!(received, expected, "keep last: the newest buffered events, then the late ones");

    // Keep the oldest: events 0..100 survive, the 150 that arrived on a full buffer are gone.
    let (received, _) = scenario(BufferKeep::First).await?;
    let expected: Vec<u64> = (0..BUFFER_SIZE as u64).chain(late.iter().copied()).collect();
    assert_eq!(received, expected, "keep first: the oldest buffered events, then the late ones");

    println!("ok: the buffer kept {BUFFER_SIZE} events and reported what it discarded");
    Ok(())
}
