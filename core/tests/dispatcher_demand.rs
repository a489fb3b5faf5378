//! The demand dispatcher (the default) through real stages: events spread across consumers by
//! their pending demand, none lost or duplicated.

mod common;

use common::{
    paused_runtime, settle, within, Collector, CollectorLog, CollectorMsg, OnDemand, Shared, Source,
};
use proptest::prelude::*;
use weir_core::dispatcher::DemandDispatcher;
use weir_core::{
    from_enumerable, start_consumer, start_producer, ConsumerHandle, ConsumerOptions, DemandMode, ExitReason,
    ProducerOptions, SubscribeOptions,
};

type Consumers = Vec<(ConsumerHandle<u64, CollectorMsg>, Shared<CollectorLog<u64>>)>;

fn is_increasing(events: &[u64]) -> bool {
    events.windows(2).all(|w| w[0] < w[1])
}

#[tokio::test(start_paused = true)]
async fn spreads_events_across_consumers() {
    let producer =
        start_producer(from_enumerable(0..300u64), ProducerOptions::new().demand(DemandMode::Accumulate))
            .expect("producer");
    let mut consumers: Consumers = Vec::new();
    for _ in 0..3 {
        let (collector, log) = Collector::<u64>::new();
        let consumer = start_consumer(
            collector,
            ConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new().max_demand(10)),
        )
        .expect("consumer");
        consumers.push((consumer, log));
    }
    settle().await;
    producer.set_demand_mode(DemandMode::Forward).expect("forward");

    for (consumer, _) in &consumers {
        assert!(matches!(within("a consumer to finish", consumer.wait()).await, ExitReason::Normal));
    }
    let mut all = Vec::new();
    for (_, log) in &consumers {
        let events = log.lock().events();
        assert!(!events.is_empty(), "every consumer gets a share");
        assert!(is_increasing(&events), "each consumer sees its events in order");
        assert!(log.lock().chunk_sizes().iter().all(|&n| n <= 5));
        all.extend(events);
    }
    all.sort_unstable();
    assert_eq!(all, (0..300).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn sends_to_the_consumer_with_the_most_pending_demand() {
    let (source, _) = Source::new(OnDemand::Nothing);
    let producer = start_producer(source, ProducerOptions::new()).expect("producer");
    let (small, small_log) = Collector::<u64>::manual(2);
    let (big, big_log) = Collector::<u64>::manual(6);
    let _small =
        start_consumer(small, ConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new()))
            .expect("consumer");
    settle().await;
    let _big = start_consumer(big, ConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new()))
        .expect("consumer");
    settle().await;

    producer.cast(common::SourceMsg::Push((0..8).collect())).expect("push");
    settle().await;
    assert_eq!(big_log.lock().events(), (0..6).collect::<Vec<_>>());
    assert_eq!(small_log.lock().events(), vec![6, 7]);
}

#[tokio::test(start_paused = true)]
async fn a_consumer_that_leaves_does_not_take_new_events_with_it() {
    let (source, _) = Source::new(OnDemand::Nothing);
    let producer = start_producer(source, ProducerOptions::new()).expect("producer");
    let (leaving, leaving_log) = Collector::<u64>::manual(5);
    let (staying, staying_log) = Collector::<u64>::manual(5);
    let leaving =
        start_consumer(leaving, ConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new()))
            .expect("consumer");
    let _staying =
        start_consumer(staying, ConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new()))
            .expect("consumer");
    settle().await;
    within("the stop", leaving.stop()).await;

    producer.cast(common::SourceMsg::Push((0..5).collect())).expect("push");
    settle().await;
    assert_eq!(leaving_log.lock().count(), 0);
    assert_eq!(staying_log.lock().events(), (0..5).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn a_new_consumer_gets_the_events_buffered_after_a_consumer_left_with_unmet_demand() {
    // "Demand a consumer asked for and did not receive before leaving is not lost: the producer
    // already owes those events, so the next asks are served from it first."
    let (source, source_log) = Source::new(OnDemand::Nothing);
    let producer = start_producer(source, ProducerOptions::new()).expect("producer");
    let (leaving, _) = Collector::<u64>::manual(10);
    let leaving =
        start_consumer(leaving, ConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new()))
            .expect("consumer");
    settle().await;
    assert_eq!(source_log.lock().demands, vec![10]);
    within("the stop", leaving.stop()).await;
    settle().await;

    // The producer pays its debt while nobody is subscribed: the events are buffered.
    producer.cast(common::SourceMsg::Push((0..20).collect())).expect("push");
    settle().await;
    assert_eq!(producer.estimated_buffered_count().await.expect("buffered"), 20);

    let (joining, log) = Collector::<u64>::manual(10);
    let _joining =
        start_consumer(joining, ConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new()))
            .expect("consumer");
    settle().await;
    assert_eq!(
        log.lock().events(),
        (0..10).collect::<Vec<_>>(),
        "the buffered events never reach the new consumer"
    );
    assert_eq!(producer.estimated_buffered_count().await.expect("buffered"), 10);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn random_consumers_and_demands_share_every_event_exactly_once(
        consumers in 1usize..5,
        max in 1usize..40,
        total in 0u64..500,
        shuffle in any::<bool>(),
    ) {
        let (exits, logs) = paused_runtime().block_on(async {
            let dispatcher = DemandDispatcher::new().shuffle_demands_on_first_dispatch(shuffle);
            let options = ProducerOptions::new().demand(DemandMode::Accumulate).dispatcher(dispatcher);
            let producer = start_producer(from_enumerable(0..total), options).expect("producer");
            let mut started: Consumers = Vec::new();
            for _ in 0..consumers {
                let (collector, log) = Collector::<u64>::new();
                let options = ConsumerOptions::new()
                    .subscribe_to(&producer, SubscribeOptions::new().max_demand(max));
                started.push((start_consumer(collector, options).expect("consumer"), log));
            }
            settle().await;
            producer.set_demand_mode(DemandMode::Forward).expect("forward");
            let mut exits = Vec::new();
            for (consumer, _) in &started {
                exits.push(within("a consumer to finish", consumer.wait()).await);
            }
            (exits, started.into_iter().map(|(_, log)| log).collect::<Vec<_>>())
        });
        prop_assert!(exits.iter().all(|e| matches!(e, ExitReason::Normal)), "exits {exits:?}");
        let step = (max - max / 2).max(1);
        let mut all = Vec::new();
        for log in &logs {
            let log = log.lock();
            let events = log.events();
            prop_assert!(is_increasing(&events));
            prop_assert!(log.chunk_sizes().iter().all(|&n| n <= step));
            all.extend(events);
        }
        all.sort_unstable();
        prop_assert_eq!(all, (0..total).collect::<Vec<_>>());
    }
}
