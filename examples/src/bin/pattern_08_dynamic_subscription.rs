//! Pattern 8 of the GenStage guide: subscribing at runtime.
//!
//! `DynamicConsumer` starts with no subscriptions. The program then, through its
//! [`ConsumerRef`](weir_core::ConsumerRef):
//!
//! 1. subscribes it to an endless `ticker` with `subscribe_to` (GenStage's `sync_subscribe`:
//!    returns once the producer accepted);
//! 2. subscribes it to a finite `batch` producer with `async_subscribe` (returns at once);
//! 3. lets `batch` run out: both subscriptions are [`CancelMode::Temporary`], so the consumer
//!    survives the end of its producers;
//! 4. cancels the `ticker` subscription (GenStage's `cancel/2`); the consumer keeps running;
//! 5. subscribes it to a last finite producer with the default [`CancelMode::Permanent`]:
//!    when that one finishes, the consumer stops too.
//!
//! What to look for: `handle_subscribe` / `handle_cancel` calls, events from both producers
//! interleaved, no ticker events after the cancel, and the consumer outliving `batch` but not
//! the permanent subscription.
//!
//! ```sh
//! cargo run -p weir-examples --bin pattern_08_dynamic_subscription
//! ```

use std::collections::HashMap;
use std::error::Error;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use weir_core::{
    from_enumerable, start_consumer, start_producer, AskMode, BoxError, CancelMode, Consumer,
    ConsumerOptions, Context, ExitReason, Producer, ProducerOptions, SubscribeOptions, SubscriptionId,
};

/// What the consumer saw, shared with `main`.
#[derive(Debug, Default)]
struct Seen {
    events: HashMap<SubscriptionId, usize>,
    subscribed: Vec<SubscriptionId>,
    cancelled: Vec<(SubscriptionId, String)>,
}

/// Counts events per subscription; logs subscriptions coming and going.
struct DynamicConsumer {
    seen: Arc<Mutex<Seen>>,
}

impl Consumer for DynamicConsumer {
    type Event = u64;
    type Message = ();

    async fn handle_subscribe(
        &mut self,
        producer: SubscriptionId,
        _ctx: &mut Context,
    ) -> Result<AskMode, BoxError> {
        println!("subscribed: {producer}");
        self.seen.lock().map_err(|_| "lock poisoned")?.subscribed.push(producer);
        Ok(AskMode::Automatic)
    }

    async fn handle_cancel(
        &mut self,
        producer: SubscriptionId,
        reason: &ExitReason,
        _ctx: &mut Context,
    ) -> Result<(), BoxError> {
        println!("unsubscribed: {producer} ({reason})");
        self.seen.lock().map_err(|_| "lock poisoned")?.cancelled.push((producer, reason.to_string()));
        Ok(())
    }

    async fn handle_events(
        &mut self,
        events: Vec<u64>,
        from: SubscriptionId,
        _ctx: &mut Context,
    ) -> Result<(), BoxError> {
        println!("{} events from {from}", events.len());
        *self.seen.lock().map_err(|_| "lock poisoned")?.events.entry(from).or_default() += events.len();
        Ok(())
    }
}

/// Counts up forever, slowly enough to interleave with the other producer.
struct Ticker(u64);

impl Producer for Ticker {
    type Event = u64;
    type Message = ();

    async fn handle_demand(&mut self, demand: usize, _ctx: &mut Context) -> Result<Vec<u64>, BoxError> {
        tokio::time::sleep(Duration::from_millis(1)).await;
        let start = self.0;
        self.0 += demand as u64;
        Ok((start..self.0).collect())
    }
}

/// Polls `condition` until it holds, for at most a second.
async fn eventually(what: &str, condition: impl Fn() -> bool) -> Result<(), Box<dyn Error>> {
    wait_until(what, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
}

/// Awaits `future` for at most a second.
async fn wait_until<T>(what: &str, future: impl Future<Output = T>) -> Result<T, Box<dyn Error>> {
    tokio::time::timeout(Duration::from_secs(1), future)
        .await
        .map_err(|_| format!("timed out: {what}").into())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let lock = || seen.lock().expect("lock poisoned");

    // Starts with no subscription at all.
    let consumer =
        start_consumer(DynamicConsumer { seen: seen.clone() }, ConsumerOptions::new().name("dynamic"))?;
    let ticker = start_producer(Ticker(0), ProducerOptions::new().name("ticker"))?;
    let batch = start_producer(from_enumerable(0..100u64), ProducerOptions::new().name("batch"))?;

    // Temporary: the consumer never stops because one of these subscriptions ends.
    let temporary = SubscribeOptions::new().max_demand(10).cancel(CancelMode::Temporary);

    // 1. sync: returns once the ticker accepted the subscription.
    let ticker_sub = consumer.consumer().subscribe_to(&ticker, temporary.clone()).await?;
    println!("main: subscribed to the ticker as {ticker_sub} (sync)");

    // 2. async: returns the subscription id at once; the subscription happens soon after.
    let batch_sub = consumer.consumer().async_subscribe(&batch, temporary)?;
    println!("main: subscribing to the batch as {batch_sub} (async)");

    // 3. The batch runs out; the consumer carries on with the ticker.
    eventually("the batch ends", || lock().cancelled.iter().any(|(sub, _)| *sub == batch_sub)).await?;
    assert_eq!(lock().events.get(&batch_sub), Some(&100), "every batch event arrived");
    assert!(consumer.is_running(), "a temporary subscription ending does not stop the consumer");

    // 4. Cancel the ticker subscription.
    eventually("ticker events", || lock().events.get(&ticker_sub).is_some_and(|&n| n > 0)).await?;
    consumer.consumer().cancel(ticker_sub)?;
    eventually("the ticker cancel", || lock().cancelled.iter().any(|(sub, _)| *sub == ticker_sub)).await?;
    let ticks = lock().events.get(&ticker_sub).copied().unwrap_or_default();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(lock().events.get(&ticker_sub).copied(), Some(ticks), "no ticker event after the cancel");
    assert!(consumer.is_running(), "cancelling a subscription does not stop the consumer");
    assert!(ticker.is_running(), "a producer does not stop when a consumer leaves");
    println!("main: {ticks} ticker events before the cancel; stopping the ticker");
    wait_until("the ticker stops", ticker.stop()).await?;

    // 5. A permanent subscription (the default): its end stops the consumer.
    let last = start_producer(from_enumerable(0..10u64), ProducerOptions::new().name("last"))?;
    let last_sub = consumer.consumer().subscribe_to(&last, SubscribeOptions::new().max_demand(10)).await?;
    let reason = wait_until("the consumer stops", consumer.wait()).await?;
    println!("main: the consumer stopped ({reason}) after its permanent producer finished");

    let seen = lock();
    assert!(matches!(reason, ExitReason::Normal), "the consumer ended with {reason}");
    assert_eq!(
        seen.subscribed,
        vec![ticker_sub, batch_sub, last_sub],
        "handle_subscribe ran for each subscription"
    );
    assert_eq!(seen.events.get(&last_sub), Some(&10), "every event of the last producer arrived");
    assert_eq!(seen.cancelled.len(), 3, "handle_cancel ran for each subscription");
    println!("ok: subscribed, cancelled and outlived producers at runtime");
    Ok(())
}
