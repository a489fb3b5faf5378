//! Producer-consumers: `handle_events` runs only while downstream has demand, so back-pressure
//! reaches the upstream producer; events emitted beyond demand are buffered.

mod common;

use std::time::Duration;

use common::{paused_runtime, settle, within, Collector, CollectorMsg, Mapper, OnDemand, Source};
use proptest::prelude::*;
use weir_core::{
    from_enumerable, start_consumer, start_producer, start_producer_consumer, ConsumerOptions, ExitReason,
    ProducerConsumerOptions, ProducerOptions, SubscribeOptions,
};

#[tokio::test(start_paused = true)]
async fn handle_events_waits_for_downstream_demand() {
    let (source, source_log) = Source::new(OnDemand::Exact);
    let producer = start_producer(source.limit(100_000), ProducerOptions::new()).expect("producer");
    let (mapper, mapper_log) = Mapper::identity();
    let stage = start_producer_consumer(
        mapper,
        ProducerConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new().max_demand(10)),
    )
    .expect("producer-consumer");
    settle().await;
    // It asked its producer for max_demand and got the events, but nobody downstream asked.
    assert_eq!(source_log.lock().demanded(), 10);
    assert_eq!(mapper_log.lock().handled, 0);

    let (collector, log) = Collector::<u64>::manual(4);
    let _consumer =
        start_consumer(collector, ConsumerOptions::new().subscribe_to(&stage, SubscribeOptions::new()))
            .expect("consumer");
    settle().await;
    assert_eq!(log.lock().events(), vec![0, 1, 2, 3]);
    // Events are handled in chunks of at most max - min = 5, and only while demand lasts.
    assert!(mapper_log.lock().handled <= 4 + 5, "handled {}", mapper_log.lock().handled);
}

#[tokio::test(start_paused = true)]
async fn back_pressure_bounds_the_upstream_producer_when_the_consumer_stops_asking() {
    let (source, source_log) = Source::new(OnDemand::Exact);
    let producer = start_producer(source.limit(100_000), ProducerOptions::new()).expect("producer");
    let (mapper, mapper_log) = Mapper::identity();
    let stage = start_producer_consumer(
        mapper,
        ProducerConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new().max_demand(10)),
    )
    .expect("producer-consumer");
    // The consumer asks 10 once and never again.
    let (collector, log) = Collector::<u64>::manual(10);
    let consumer =
        start_consumer(collector, ConsumerOptions::new().subscribe_to(&stage, SubscribeOptions::new()))
            .expect("consumer");
    settle().await;
    let demanded = source_log.lock().demanded();
    let handled = mapper_log.lock().handled;
    assert_eq!(log.lock().events(), (0..10).collect::<Vec<_>>());
    // Upstream: what the consumer asked, plus at most the stage's max_demand in flight and one
    // chunk (max - min) handled beyond demand and buffered.
    assert!(demanded <= 10 + 10 + 5, "upstream asked for {demanded}");
    assert!(handled <= 10 + 5, "handled {handled}");

    // An hour later nothing more has moved.
    tokio::time::advance(Duration::from_secs(3600)).await;
    settle().await;
    assert_eq!(source_log.lock().demanded(), demanded);
    assert_eq!(mapper_log.lock().handled, handled);
    assert_eq!(log.lock().count(), 10);

    // Asking again lets exactly that much through.
    consumer.cast(CollectorMsg::Ask(7)).expect("ask");
    settle().await;
    assert_eq!(log.lock().events(), (0..17).collect::<Vec<_>>());
    let demanded = source_log.lock().demanded();
    assert!(demanded <= 17 + 10 + 5, "upstream asked for {demanded}");
}

#[tokio::test(start_paused = true)]
async fn back_pressure_reaches_through_a_chain_of_stages() {
    let (source, source_log) = Source::new(OnDemand::Exact);
    let producer = start_producer(source.limit(1_000_000), ProducerOptions::new()).expect("producer");
    let (first, _) = Mapper::identity();
    let first = start_producer_consumer(
        first,
        ProducerConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new().max_demand(20)),
    )
    .expect("producer-consumer");
    let (second, _) = Mapper::identity();
    let second = start_producer_consumer(
        second,
        ProducerConsumerOptions::new().subscribe_to(&first, SubscribeOptions::new().max_demand(20)),
    )
    .expect("producer-consumer");
    let (collector, log) = Collector::<u64>::manual(5);
    let _consumer =
        start_consumer(collector, ConsumerOptions::new().subscribe_to(&second, SubscribeOptions::new()))
            .expect("consumer");
    settle().await;
    tokio::time::advance(Duration::from_secs(3600)).await;
    settle().await;
    assert_eq!(log.lock().count(), 5);
    // Each stage holds at most its max_demand (20) in flight and one chunk (10) beyond demand.
    let demanded = source_log.lock().demanded();
    assert!(demanded <= 5 + (20 + 10) * 2, "upstream asked for {demanded}");
    tokio::time::advance(Duration::from_secs(3600)).await;
    settle().await;
    assert_eq!(source_log.lock().demanded(), demanded, "the producer is not asked for more over time");
}

#[tokio::test(start_paused = true)]
async fn events_emitted_beyond_demand_are_buffered() {
    // One event in, ten out.
    let (source, _) = Source::new(OnDemand::Exact);
    let producer = start_producer(source.limit(3), ProducerOptions::new()).expect("producer");
    let (mapper, _) = Mapper::new(|e| (e * 10..e * 10 + 10).collect());
    let stage = start_producer_consumer(
        mapper,
        ProducerConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new().max_demand(1)),
    )
    .expect("producer-consumer");
    let (collector, log) = Collector::<u64>::manual(4);
    let consumer =
        start_consumer(collector, ConsumerOptions::new().subscribe_to(&stage, SubscribeOptions::new()))
            .expect("consumer");
    settle().await;
    assert_eq!(log.lock().events(), vec![0, 1, 2, 3]);
    assert_eq!(stage.estimated_buffered_count().await.expect("buffered"), 6);

    consumer.cast(CollectorMsg::Ask(6)).expect("ask");
    settle().await;
    assert_eq!(log.lock().events(), (0..10).collect::<Vec<_>>());
    assert_eq!(stage.estimated_buffered_count().await.expect("buffered"), 0);
}

#[tokio::test(start_paused = true)]
async fn a_filtering_stage_asks_upstream_for_more() {
    // Keeps only multiples of 10: the stage must keep asking to fill its consumer's demand.
    let producer = start_producer(from_enumerable(0..1000u64), ProducerOptions::new()).expect("producer");
    let (mapper, _) = Mapper::new(|e| if e % 10 == 0 { vec![e] } else { Vec::new() });
    let stage = start_producer_consumer(
        mapper,
        ProducerConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new().max_demand(10)),
    )
    .expect("producer-consumer");
    let (collector, log) = Collector::<u64>::new();
    let consumer = start_consumer(
        collector,
        ConsumerOptions::new().subscribe_to(&stage, SubscribeOptions::new().max_demand(4)),
    )
    .expect("consumer");
    assert!(matches!(within("the consumer to finish", consumer.wait()).await, ExitReason::Normal));
    assert_eq!(log.lock().events(), (0..100).map(|e| e * 10).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn a_consumer_leaving_with_unmet_demand_does_not_unleash_the_upstream() {
    // The upstream has 1000 events ready; the stage may take only what its consumers asked.
    let (source, _) = Source::new(OnDemand::Nothing);
    let producer = start_producer(source, ProducerOptions::new()).expect("producer");
    let (mapper, mapper_log) = Mapper::identity();
    let stage = start_producer_consumer(
        mapper,
        ProducerConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new().max_demand(10)),
    )
    .expect("producer-consumer");
    let (collector, _) = Collector::<u64>::manual(10);
    let consumer =
        start_consumer(collector, ConsumerOptions::new().subscribe_to(&stage, SubscribeOptions::new()))
            .expect("consumer");
    settle().await;
    // The consumer leaves before any event arrived: its demand of 10 is unmet.
    within("the consumer to stop", consumer.stop()).await;
    settle().await;

    producer.cast(common::SourceMsg::Push((0..1000).collect())).expect("push");
    settle().await;
    // The stage may fill the departed consumer's demand into its buffer (10, plus one chunk of
    // max - min = 5) and hold its own max_demand (10) in flight; the rest stays upstream.
    let handled = mapper_log.lock().handled;
    let upstream = producer.estimated_buffered_count().await.expect("buffered");
    assert!(handled <= 10 + 5, "the stage handled {handled} events nobody asked for");
    assert!(upstream >= 1000 - 10 - 5 - 10, "only {upstream} events left upstream");

    // The events it did take are not lost: a new consumer gets them first, in order.
    let (collector, log) = Collector::<u64>::manual(10);
    let _consumer =
        start_consumer(collector, ConsumerOptions::new().subscribe_to(&stage, SubscribeOptions::new()))
            .expect("consumer");
    settle().await;
    assert_eq!(log.lock().events(), (0..10).collect::<Vec<_>>());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn random_demands_through_a_chain_keep_every_event_in_order(
        total in 0u64..400,
        stage_max in 1usize..50,
        consumer_max in 1usize..50,
        fan_out in 0usize..3,
    ) {
        let (exits, events) = paused_runtime().block_on(async {
            let producer = start_producer(from_enumerable(0..total), ProducerOptions::new()).expect("producer");
            let (mapper, _) = Mapper::new(move |e| vec![e; fan_out]);
            let stage = start_producer_consumer(
                mapper,
                ProducerConsumerOptions::new()
                    .subscribe_to(&producer, SubscribeOptions::new().max_demand(stage_max)),
            )
            .expect("producer-consumer");
            let (collector, log) = Collector::<u64>::new();
            let consumer = start_consumer(
                collector,
                ConsumerOptions::new().subscribe_to(&stage, SubscribeOptions::new().max_demand(consumer_max)),
            )
            .expect("consumer");
            let exits = [
                within("the consumer", consumer.wait()).await,
                within("the stage", stage.wait()).await,
                within("the producer", producer.wait()).await,
            ];
            let events = log.lock().events();
            (exits, events)
        });
        prop_assert!(exits.iter().all(|e| matches!(e, ExitReason::Normal)), "{exits:?}");
        let expected: Vec<u64> = (0..total).flat_map(|e| vec![e; fan_out]).collect();
        prop_assert_eq!(events, expected);
    }
}
