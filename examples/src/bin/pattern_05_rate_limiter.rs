//! Pattern 5 of the GenStage guide: a rate limiter, with manual demand.
//!
//! `RateLimitedConsumer` returns [`AskMode::Manual`] from `handle_subscribe`: the runtime then
//! never asks on its behalf. Instead, at the start of every interval it asks for `max_demand`
//! events with [`Context::ask`] and schedules the next interval with [`Context::send_after`]
//! — at most `max_demand` events per interval, whatever the producer could do.
//!
//! The guide passes the interval as a subscription option; here it is a field of the
//! consumer, and `max_demand` is read back with [`Context::subscription_demand`].
//!
//! What to look for: windows of at most 10 events, one per interval, until the producer's
//! 45 events are consumed (about 4 intervals).
//!
//! ```sh
//! cargo run -p weir-examples --bin pattern_05_rate_limiter
//! ```

use std::collections::HashMap;
use std::error::Error;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use weir_core::{
    from_enumerable, start_consumer, start_producer, AskMode, BoxError, Consumer, ConsumerOptions, Context,
    ExitReason, ProducerOptions, SubscribeOptions, SubscriptionId,
};

/// Events allowed per interval (the subscription's `max_demand`).
const PER_INTERVAL: usize = 10;
/// The length of an interval.
const INTERVAL: Duration = Duration::from_millis(100);
/// Events the producer has.
const EVENTS: u64 = 45;

/// The consumer's timer message: time to ask this producer again.
#[derive(Debug)]
struct AskAgain(SubscriptionId);

/// Per producer: how many events to ask for at the next interval.
struct Window {
    pending: usize,
}

/// Asks each producer for at most `max_demand` events per interval.
struct RateLimitedConsumer {
    interval: Duration,
    producers: HashMap<SubscriptionId, Window>,
    /// How many events arrived in each interval, shared with `main` for the checks.
    windows: Arc<Mutex<Vec<usize>>>,
    started: Instant,
}

impl RateLimitedConsumer {
    /// Asks `from` for what the last interval consumed and schedules the next interval.
    fn ask_and_schedule(&mut self, from: SubscriptionId, ctx: &mut Context<AskAgain>) {
        if let Some(window) = self.producers.get_mut(&from) {
            println!("{:>4} ms: asking for {}", self.started.elapsed().as_millis(), window.pending);
            ctx.ask(from, window.pending);
            ctx.send_after(AskAgain(from), self.interval);
            window.pending = 0;
            if let Ok(mut windows) = self.windows.lock() {
                windows.push(0);
            }
        }
    }
}

impl Consumer for RateLimitedConsumer {
    type Event = u64;
    type Message = AskAgain;

    async fn handle_subscribe(
        &mut self,
        from: SubscriptionId,
        ctx: &mut Context<AskAgain>,
    ) -> Result<AskMode, BoxError> {
        // How many events per interval: the subscription's max_demand.
        let (max_demand, _min_demand) = ctx.subscription_demand(from).ok_or("unknown subscription")?;
        self.producers.insert(from, Window { pending: max_demand });
        self.ask_and_schedule(from, ctx);
        // Manual: this consumer decides when to ask for more events.
        Ok(AskMode::Manual)
    }

    async fn handle_events(
        &mut self,
        events: Vec<u64>,
        from: SubscriptionId,
        _ctx: &mut Context<AskAgain>,
    ) -> Result<(), BoxError> {
        // What was consumed is what may be asked for at the next interval.
        if let Some(window) = self.producers.get_mut(&from) {
            window.pending += events.len();
        }
        println!("{:>4} ms: got {:?}", self.started.elapsed().as_millis(), events);
        if let Some(current) = self.windows.lock().map_err(|_| "lock poisoned")?.last_mut() {
            *current += events.len();
        }
        Ok(())
    }

    async fn handle_info(
        &mut self,
        AskAgain(from): AskAgain,
        ctx: &mut Context<AskAgain>,
    ) -> Result<(), BoxError> {
        self.ask_and_schedule(from, ctx);
        Ok(())
    }

    async fn handle_cancel(
        &mut self,
        from: SubscriptionId,
        reason: &ExitReason,
        _ctx: &mut Context<AskAgain>,
    ) -> Result<(), BoxError> {
        println!("{:>4} ms: producer gone ({reason})", self.started.elapsed().as_millis());
        self.producers.remove(&from);
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let started = Instant::now();
    let producer = start_producer(from_enumerable(0..EVENTS), ProducerOptions::new())?;
    let windows = Arc::new(Mutex::new(Vec::new()));
    let limiter = RateLimitedConsumer {
        interval: INTERVAL,
        producers: HashMap::new(),
        windows: windows.clone(),
        started,
    };
    // 10 events every 100 ms.
    let consumer = start_consumer(
        limiter,
        ConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new().max_demand(PER_INTERVAL)),
    )?;

    let reason = tokio::time::timeout(Duration::from_secs(2), consumer.wait())
        .await
        .map_err(|_| "the rate-limited consumer did not finish within 2 s")?;
    let elapsed = started.elapsed();

    let windows = windows.lock().map_err(|_| "lock poisoned")?.clone();
    println!("events per interval: {windows:?}, total time {elapsed:?}");
    assert!(matches!(reason, ExitReason::Normal), "the consumer ended with {reason}");
    assert_eq!(windows.iter().sum::<usize>(), EVENTS as usize, "every event was consumed");
    assert!(windows.iter().all(|&n| n <= PER_INTERVAL), "at most {PER_INTERVAL} events per interval");
    let intervals_needed = (EVENTS as usize).div_ceil(PER_INTERVAL) as u32 - 1;
    assert!(
        elapsed >= INTERVAL * intervals_needed,
        "{EVENTS} events at {PER_INTERVAL} per {INTERVAL:?} cannot take less than {:?}",
        INTERVAL * intervals_needed
    );
    println!("ok: rate limited to {PER_INTERVAL} events per {INTERVAL:?}");
    Ok(())
}
