//! Demand between a consumer and a producer: how much a consumer asks, when it asks again,
//! how it chunks what it receives, and manual demand.

mod common;

use common::{settle, within, Audited, Collector, CollectorMsg, OnDemand, Shared, Source, SourceMsg};
use proptest::prelude::*;
use weir_core::{
    start_consumer, start_producer, BoxError, BufferSize, ConsumerOptions, Context, ExitReason, Producer,
    ProducerOptions, SubscribeOptions,
};

fn batch(from: u64, len: u64) -> Vec<u64> {
    (from..from + len).collect()
}

#[tokio::test(start_paused = true)]
async fn consumer_never_receives_more_than_it_asked_even_when_producer_emits_more() {
    // The producer answers every demand with three times as many events.
    let (source, _) = Source::new(OnDemand::Times(3));
    let (dispatcher, audit) = Audited::new();
    let producer =
        start_producer(source.limit(300), ProducerOptions::new().dispatcher(dispatcher)).expect("producer");
    let (collector, log) = Collector::<u64>::new();
    let consumer = start_consumer(
        collector,
        ConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new().max_demand(10)),
    )
    .expect("consumer");

    settle().await;
    // Everything the producer emitted arrived, in order, exactly once...
    assert_eq!(log.lock().events(), (0..300).collect::<Vec<_>>());
    assert!(log.lock().chunk_sizes().iter().all(|&n| n <= 5));
    // ...and never ahead of the consumer's asks.
    let audit = audit.lock();
    assert_eq!(audit.sent, 300);
    assert_eq!(audit.worst_excess, 0, "events sent beyond demand");
    assert!(audit.asked <= 300 + 10, "asked {} for 300 events", audit.asked);
    assert!(consumer.is_running());
}

#[tokio::test(start_paused = true)]
async fn consumer_receives_at_most_its_outstanding_demand() {
    // A consumer in manual mode asks 7; a producer with plenty to give must not send an 8th.
    let (source, source_log) = Source::new(OnDemand::Times(10));
    let producer = start_producer(source, ProducerOptions::new()).expect("producer");
    let (collector, log) = Collector::<u64>::manual(7);
    let consumer = start_consumer(
        collector,
        ConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new().max_demand(100)),
    )
    .expect("consumer");

    settle().await;
    assert_eq!(log.lock().events(), batch(0, 7));
    assert_eq!(source_log.lock().demands, vec![7]);
    assert_eq!(
        producer.estimated_buffered_count().await.expect("buffered"),
        63,
        "the 63 events emitted beyond the ask wait in the producer"
    );

    consumer.cast(CollectorMsg::Ask(3)).expect("ask");
    settle().await;
    assert_eq!(log.lock().events(), batch(0, 10));
    assert_eq!(source_log.lock().demands, vec![7], "the second ask is served from the buffer");
}

#[tokio::test(start_paused = true)]
async fn chunks_are_at_most_max_minus_min_and_asks_300_after_the_third_batch_of_100() {
    let (source, source_log) = Source::new(OnDemand::Nothing);
    let producer = start_producer(source, ProducerOptions::new()).expect("producer");
    let (collector, log) = Collector::<u64>::new();
    let _consumer = start_consumer(
        collector,
        ConsumerOptions::new()
            .subscribe_to(&producer, SubscribeOptions::new().max_demand(1000).min_demand(750)),
    )
    .expect("consumer");

    settle().await;
    assert_eq!(source_log.lock().demands, vec![1000]);

    // Outstanding demand: 900, then 800 (both above min_demand 750): no new ask.
    for i in 0..2 {
        producer.cast(SourceMsg::Push(batch(i * 100, 100))).expect("push");
        settle().await;
        assert_eq!(source_log.lock().demands, vec![1000], "after batch {}", i + 1);
    }
    // 700 is below 750: the consumer asks 300 to get back to 1000.
    producer.cast(SourceMsg::Push(batch(200, 100))).expect("push");
    settle().await;
    assert_eq!(source_log.lock().demands, vec![1000, 300]);

    // And again after three more batches.
    for i in 3..6 {
        producer.cast(SourceMsg::Push(batch(i * 100, 100))).expect("push");
    }
    settle().await;
    assert_eq!(source_log.lock().demands, vec![1000, 300, 300]);

    assert_eq!(log.lock().chunk_sizes(), vec![100; 6]);
    assert_eq!(log.lock().events(), batch(0, 600));
}

#[tokio::test(start_paused = true)]
async fn a_large_batch_is_handled_in_chunks_of_max_minus_min() {
    let (source, source_log) = Source::new(OnDemand::Exact);
    let producer = start_producer(source.limit(1000), ProducerOptions::new()).expect("producer");
    let (collector, log) = Collector::<u64>::new();
    let _consumer = start_consumer(
        collector,
        ConsumerOptions::new()
            .subscribe_to(&producer, SubscribeOptions::new().max_demand(1000).min_demand(750)),
    )
    .expect("consumer");

    settle().await;
    // The 1000 events arrive together and are handled 250 at a time; after each chunk the
    // outstanding demand is back at 750 and the consumer tops it up with 250.
    assert_eq!(log.lock().chunk_sizes(), vec![250; 4]);
    assert_eq!(log.lock().events(), batch(0, 1000));
    assert_eq!(source_log.lock().demanded(), 2000);
    assert!(source_log.lock().demands[1..].iter().all(|&d| d <= 1000));
}

#[tokio::test(start_paused = true)]
async fn default_min_demand_is_half_of_max_demand() {
    assert_eq!(SubscribeOptions::<u64>::new().max_demand(10).demand(), (10, 5));
    assert_eq!(SubscribeOptions::<u64>::new().demand(), (1000, 500));

    let (source, source_log) = Source::new(OnDemand::Nothing);
    let producer = start_producer(source, ProducerOptions::new()).expect("producer");
    let (collector, log) = Collector::<u64>::new();
    let _consumer = start_consumer(
        collector,
        ConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new().max_demand(10)),
    )
    .expect("consumer");

    settle().await;
    assert_eq!(source_log.lock().demands, vec![10]);
    // 6 outstanding is above 5: no ask yet.
    producer.cast(SourceMsg::Push(batch(0, 4))).expect("push");
    settle().await;
    assert_eq!(source_log.lock().demands, vec![10]);
    // 5 outstanding is at min_demand: ask 5.
    producer.cast(SourceMsg::Push(batch(4, 1))).expect("push");
    settle().await;
    assert_eq!(source_log.lock().demands, vec![10, 5]);

    // Ten at once are handled in chunks of 10 - 5.
    producer.cast(SourceMsg::Push(batch(5, 10))).expect("push");
    settle().await;
    assert_eq!(log.lock().chunk_sizes(), vec![4, 1, 5, 5]);
}

#[tokio::test(start_paused = true)]
async fn manual_demand_delivers_exactly_what_was_asked() {
    let (source, source_log) = Source::new(OnDemand::Exact);
    let producer = start_producer(source, ProducerOptions::new()).expect("producer");
    let (collector, log) = Collector::<u64>::manual(3);
    let consumer = start_consumer(
        collector,
        ConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new().max_demand(10)),
    )
    .expect("consumer");

    settle().await;
    assert_eq!(log.lock().events(), batch(0, 3));
    assert_eq!(source_log.lock().demands, vec![3]);

    // Handling events asks for nothing in manual mode.
    settle().await;
    assert_eq!(source_log.lock().demands, vec![3]);

    consumer.cast(CollectorMsg::Ask(5)).expect("ask");
    settle().await;
    assert_eq!(log.lock().events(), batch(0, 8));
    assert_eq!(source_log.lock().demands, vec![3, 5]);

    // A manual ask may exceed max_demand: the consumer asked, so it gets them.
    consumer.cast(CollectorMsg::Ask(25)).expect("ask");
    settle().await;
    assert_eq!(log.lock().events(), batch(0, 33));
    assert_eq!(source_log.lock().demands, vec![3, 5, 25]);
}

#[tokio::test(start_paused = true)]
async fn manual_consumer_that_never_asks_receives_nothing() {
    let (source, source_log) = Source::new(OnDemand::Exact);
    let producer = start_producer(source, ProducerOptions::new()).expect("producer");
    producer.cast(SourceMsg::Push(batch(0, 50))).expect("push");
    let (collector, log) = Collector::<u64>::manual(0);
    let consumer =
        start_consumer(collector, ConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new()))
            .expect("consumer");

    settle().await;
    assert_eq!(log.lock().count(), 0);
    assert!(source_log.lock().demands.is_empty());
    assert_eq!(producer.estimated_buffered_count().await.expect("buffered"), 50);
    assert!(consumer.is_running());
}

/// Emits `batch` events at a time until `total`, whatever the demand: fewer than asked (the
/// rest stays owed and is emitted on a self-sent tick) or more (the excess is buffered).
struct Batcher {
    next: u64,
    total: u64,
    batch: u64,
    owed: usize,
    finished: bool,
    demands: Shared<Vec<usize>>,
}

struct Tick;

impl Batcher {
    fn emit(&mut self, ctx: &mut Context<Tick>) -> Vec<u64> {
        if self.next == self.total {
            // Finish from a callback of its own, once everything has been emitted.
            if !self.finished {
                self.finished = true;
                ctx.finish();
            }
            return Vec::new();
        }
        let end = (self.next + self.batch).min(self.total);
        let events: Vec<u64> = (self.next..end).collect();
        self.next = end;
        self.owed = self.owed.saturating_sub(events.len());
        if self.owed > 0 || self.next == self.total {
            ctx.me().cast(Tick).expect("the stage is running");
        }
        events
    }
}

impl Producer for Batcher {
    type Event = u64;
    type Message = Tick;

    async fn handle_demand(&mut self, demand: usize, ctx: &mut Context<Tick>) -> Result<Vec<u64>, BoxError> {
        self.demands.lock().push(demand);
        self.owed += demand;
        Ok(self.emit(ctx))
    }

    async fn handle_info(&mut self, _tick: Tick, ctx: &mut Context<Tick>) -> Result<Vec<u64>, BoxError> {
        Ok(self.emit(ctx))
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_demands_and_batches_lose_nothing_duplicate_nothing_and_never_exceed_demand(
        max in 1usize..60,
        min_ratio in 0.0f64..1.0,
        default_min in any::<bool>(),
        batch_size in 1u64..120,
        total in 0u64..400,
    ) {
        let min = ((max as f64) * min_ratio) as usize;
        let options = if default_min {
            SubscribeOptions::new().max_demand(max)
        } else {
            SubscribeOptions::new().max_demand(max).min_demand(min.min(max - 1))
        };
        let (_, min) = options.demand();
        let step = (max - min).max(1);
        let demands = Shared::<Vec<usize>>::default();
        let batcher = Batcher {
            next: 0,
            total,
            batch: batch_size,
            owed: 0,
            finished: false,
            demands: demands.clone(),
        };

        let (dispatcher, audit) = Audited::new();
        let (exit, events, sizes) = common::paused_runtime().block_on(async {
            let producer_options = ProducerOptions::new()
                .buffer_size(BufferSize::Unbounded)
                .dispatcher(dispatcher);
            let producer = start_producer(batcher, producer_options).expect("producer");
            let (collector, log) = Collector::<u64>::new();
            let consumer_options = ConsumerOptions::new().subscribe_to(&producer, options);
            let consumer = start_consumer(collector, consumer_options).expect("consumer");
            let exit = within("the consumer to finish", consumer.wait()).await;
            let log = log.lock();
            (exit, log.events(), log.chunk_sizes())
        });

        prop_assert!(matches!(exit, ExitReason::Normal), "consumer exit: {exit}");
        prop_assert_eq!(events, (0..total).collect::<Vec<_>>());
        prop_assert!(sizes.iter().all(|&n| n <= step), "chunk sizes {sizes:?} exceed {step}");
        // Never sent ahead of the asks; never more than max_demand outstanding.
        let audit = audit.lock();
        prop_assert_eq!(audit.worst_excess, 0, "events sent beyond demand");
        prop_assert!(audit.asked <= total as usize + max, "asked {} for {} events", audit.asked, total);
        let demands = demands.lock();
        prop_assert!(demands.iter().all(|&d| d <= max), "handle_demand got {demands:?}, above max_demand {max}");
    }
}
