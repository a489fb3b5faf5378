//! Rate limiting: at most `allowed_messages` per `interval` across all producers (on the
//! paused clock), read with `Pipeline::rate_limit` and changed while running with
//! `Pipeline::update_rate_limit`; held messages are not lost.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::{ms, Tally};
use tokio::time::Instant;
use weir_broadway::memory::{MemoryProducer, MemoryQueue};
use weir_broadway::{
    AckData, BoxError, Error, Handler, Message, Pipeline, ProcessorOptions, Producer, ProducerContext,
    ProducerOptions, RateLimit,
};

/// Emits ids from a counter shared by every producer, tagging each message with the
/// producer's index as its ack group.
struct Shared {
    next: Arc<AtomicU64>,
    tally: Arc<Tally>,
}

impl Producer for Shared {
    type Event = Message<u64>;
    type Info = ();

    async fn handle_demand(
        &mut self,
        demand: usize,
        ctx: &mut ProducerContext<'_, ()>,
    ) -> Result<Vec<Message<u64>>, BoxError> {
        let first = self.next.fetch_add(demand as u64, Ordering::SeqCst);
        let group = ctx.index() as u64;
        let ack = |id| AckData::new(id).with_group(group);
        Ok((first..first + demand as u64).map(|id| Message::new(id, self.tally.clone(), ack(id))).collect())
    }
}

/// Counts the messages handled, and by which producer.
#[derive(Default)]
struct Count {
    handled: Mutex<Vec<(u64, u64)>>,
}

impl Count {
    fn handled(&self) -> usize {
        self.handled.lock().unwrap().len()
    }
}

impl Handler for Count {
    type Data = u64;
    type Output = ();

    async fn handle_message(&self, message: &mut Message<u64>) -> Result<(), BoxError> {
        self.handled.lock().unwrap().push((*message.data(), message.ack_data().group));
        Ok(())
    }
}

/// Sleeps (on the paused clock) to each `(offset from t0, expected count)` and checks the count.
async fn expect_counts(t0: Instant, count: impl Fn() -> usize, expected: &[(Duration, usize)]) {
    for &(at, n) in expected {
        tokio::time::sleep_until(t0 + at).await;
        assert_eq!(count(), n, "at t0 + {at:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn the_rate_limit_caps_all_producers_together_and_can_change_while_running() {
    let limit = RateLimit::new(10, Duration::from_secs(1));
    let (next, tally) = (Arc::new(AtomicU64::new(0)), Arc::new(Tally::default()));
    let factory = {
        let (next, tally) = (next.clone(), tally.clone());
        move || Shared { next: next.clone(), tally: tally.clone() }
    };
    let t0 = Instant::now();
    let pipeline = Pipeline::builder("limited", Count::default())
        .producer(factory, ProducerOptions::new().concurrency(2).rate_limit(limit))
        .processors(ProcessorOptions::new().concurrency(2).max_demand(10))
        .shutdown_timeout(Duration::from_secs(600))
        .start()
        .await
        .unwrap();
    assert_eq!(pipeline.rate_limit(), Some(limit));
    let handler = pipeline.handler().clone();
    let handled = || handler.handled();

    // 10 per second in all, though each producer alone has demand for more.
    expect_counts(t0, handled, &[(ms(500), 10), (ms(1500), 20), (ms(2500), 30)]).await;
    assert!(next.load(Ordering::SeqCst) > 30, "the producers hold messages over the limit");

    // From the next interval on: 25, then 5 per second.
    pipeline.update_rate_limit(RateLimit::new(25, Duration::from_secs(1))).unwrap();
    assert_eq!(pipeline.rate_limit(), Some(RateLimit::new(25, Duration::from_secs(1))));
    expect_counts(t0, handled, &[(ms(2999), 30), (ms(3500), 55), (ms(4500), 80)]).await;
    pipeline.update_rate_limit(RateLimit::new(5, Duration::from_secs(1))).unwrap();
    expect_counts(t0, handled, &[(ms(5500), 85), (ms(6500), 90)]).await;

    let groups: BTreeSet<u64> = handler.handled.lock().unwrap().iter().map(|(_, g)| *g).collect();
    assert_eq!(groups, BTreeSet::from([0, 1]), "both producers share the limit");
    assert_eq!(tally.len(), 90);

    // Stopping releases the held messages at the limit: none is lost.
    let report = pipeline.stop().await;
    assert!(report.graceful, "{report:?}");
    let emitted = next.load(Ordering::SeqCst);
    assert_eq!(handler.handled() as u64, emitted);
    tally.assert_all_successful(emitted);
    assert!(report.elapsed >= Duration::from_secs(((emitted - 90) / 5).saturating_sub(1)), "{report:?}");
}

/// Starts a pipeline `name` that takes pushed messages, at most 10 a second, through one
/// processor; returns it, its queue (kept open) and when it started.
async fn pushed_at_10_a_second(name: &str) -> (Pipeline<Count>, MemoryQueue<u64>, Instant) {
    let (producer, queue) = MemoryProducer::<u64>::queue();
    let t0 = Instant::now();
    let pipeline = Pipeline::builder(name, Count::default())
        .producer(producer, ProducerOptions::new().rate_limit(RateLimit::new(10, Duration::from_secs(1))))
        .processors(ProcessorOptions::new().concurrency(1))
        .start()
        .await
        .unwrap();
    (pipeline, queue, t0)
}

#[tokio::test(start_paused = true)]
async fn pushed_messages_are_rate_limited_too() {
    let (pipeline, _queue, t0) = pushed_at_10_a_second("pushed").await;
    let tally = Arc::new(Tally::default());
    let messages = (0..25).map(|id| tally.message(id)).collect();
    pipeline.push_messages(messages).unwrap();
    let handler = pipeline.handler().clone();
    expect_counts(t0, || handler.handled(), &[(ms(500), 10), (ms(1500), 20), (ms(2500), 25)]).await;
    tally.assert_all_successful(25);
    assert!(pipeline.stop().await.graceful);
}

#[tokio::test(start_paused = true)]
async fn an_updated_rate_limit_applies_from_the_next_interval() {
    let (pipeline, _queue, t0) = pushed_at_10_a_second("updated").await;
    let tally = Arc::new(Tally::default());
    let message = |id| tally.message(id);
    pipeline.push_messages((0..100).map(message).collect()).unwrap();
    let handler = pipeline.handler().clone();
    expect_counts(t0, || handler.handled(), &[(ms(500), 10)]).await;

    // A push in the same interval asks the limiter again: the new limit is not for now.
    pipeline.update_rate_limit(RateLimit::new(25, Duration::from_secs(1))).unwrap();
    pipeline.push_messages(vec![message(100)]).unwrap();
    expect_counts(t0, || handler.handled(), &[(ms(999), 10), (ms(1500), 35), (ms(2500), 60)]).await;
    pipeline.stop().await;
}

#[tokio::test(start_paused = true)]
async fn update_rate_limit_needs_a_rate_limit_and_a_valid_one() {
    let (producer, _queue) = MemoryProducer::<u64>::queue();
    let unlimited = Pipeline::builder("unlimited", Count::default())
        .producer(producer, ProducerOptions::new())
        .start()
        .await
        .unwrap();
    assert_eq!(unlimited.rate_limit(), None);
    let err = unlimited.update_rate_limit(RateLimit::new(5, Duration::from_secs(1))).unwrap_err();
    assert!(matches!(err, Error::InvalidOption { option: "producer.rate_limit", .. }), "{err}");
    unlimited.stop().await;

    let limit = RateLimit::new(5, Duration::from_secs(1));
    let (producer, _queue) = MemoryProducer::<u64>::queue();
    let limited = Pipeline::builder("limited", Count::default())
        .producer(producer, ProducerOptions::new().rate_limit(limit))
        .start()
        .await
        .unwrap();
    let err = limited.update_rate_limit(RateLimit::new(0, Duration::from_secs(1))).unwrap_err();
    assert!(matches!(err, Error::InvalidOption { option: "producer.rate_limit.allowed_messages", .. }));
    let err = limited.update_rate_limit(RateLimit::new(5, Duration::ZERO)).unwrap_err();
    assert!(matches!(err, Error::InvalidOption { option: "producer.rate_limit.interval", .. }));
    assert_eq!(limited.rate_limit(), Some(limit), "a rejected limit changes nothing");
    limited.stop().await;
}
