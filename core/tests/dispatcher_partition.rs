//! The partition dispatcher through real stages: routing by hash, dropping events, one consumer
//! per partition, unknown and missing partitions.

mod common;

use common::{
    failure, paused_runtime, settle, within, Collector, CollectorLog, CollectorMsg, OnDemand, Shared, Source,
};
use proptest::prelude::*;
use weir_core::dispatcher::PartitionDispatcher;
use weir_core::{
    from_enumerable, start_consumer, start_producer, CancelMode, ConsumerHandle, ConsumerOptions, DemandMode,
    Error, ExitReason, PartitionKey, ProducerOptions, SubscribeOptions,
};

type Consumers = Vec<(ConsumerHandle<u64, CollectorMsg>, Shared<CollectorLog<u64>>)>;

fn parity() -> PartitionDispatcher<u64> {
    PartitionDispatcher::new(2, |e: u64| Some((e, (e % 2) as usize))).expect("two partitions")
}

/// Starts one automatic collector per partition key.
fn consumers_of<P: weir_core::AsProducer<u64>>(
    producer: &P,
    keys: impl IntoIterator<Item = PartitionKey>,
    max_demand: usize,
) -> Consumers {
    keys.into_iter()
        .map(|key| {
            let (collector, log) = Collector::<u64>::new();
            let options = SubscribeOptions::new().partition(key).max_demand(max_demand);
            let consumer = start_consumer(collector, ConsumerOptions::new().subscribe_to(producer, options))
                .expect("consumer");
            (consumer, log)
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn routes_each_event_to_its_partition() {
    let options = ProducerOptions::new().dispatcher(parity()).demand(DemandMode::Accumulate);
    let producer = start_producer(from_enumerable(0..40u64), options).expect("producer");
    let consumers = consumers_of(&producer, [0.into(), 1.into()], 100);
    settle().await;
    producer.set_demand_mode(DemandMode::Forward).expect("forward");

    for (consumer, _) in &consumers {
        assert!(matches!(within("a consumer to finish", consumer.wait()).await, ExitReason::Normal));
    }
    assert_eq!(consumers[0].1.lock().events(), (0..40).filter(|e| e % 2 == 0).collect::<Vec<_>>());
    assert_eq!(consumers[1].1.lock().events(), (0..40).filter(|e| e % 2 == 1).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn named_partitions_route_by_name_and_the_hash_may_drop_events() {
    // Multiples of 3 are dropped; the others go to "even" or "odd".
    let dispatcher = PartitionDispatcher::named(["even", "odd"], |e: u64| {
        (e % 3 != 0).then_some((e, if e % 2 == 0 { "even" } else { "odd" }))
    })
    .expect("named partitions");
    let (source, _) = Source::new(OnDemand::Exact);
    let producer =
        start_producer(source.limit(30), ProducerOptions::new().dispatcher(dispatcher)).expect("producer");
    let consumers = consumers_of(&producer, ["even".into(), "odd".into()], 10);
    for _ in 0..5 {
        settle().await;
    }

    let kept = |parity: u64| (0..30).filter(|e| e % 3 != 0 && e % 2 == parity).collect::<Vec<u64>>();
    assert_eq!(consumers[0].1.lock().events(), kept(0));
    assert_eq!(consumers[1].1.lock().events(), kept(1));
    assert_eq!(producer.estimated_buffered_count().await.expect("buffered"), 0);
}

#[tokio::test(start_paused = true)]
async fn events_of_a_partition_wait_in_the_dispatcher_until_its_consumer_asks() {
    let (source, _) = Source::new(OnDemand::Nothing);
    let producer = start_producer(source, ProducerOptions::new().dispatcher(parity())).expect("producer");
    let (even, even_log) = Collector::<u64>::manual(10);
    let (odd, odd_log) = Collector::<u64>::manual(0);
    let _even = start_consumer(
        even,
        ConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new().partition(0)),
    )
    .expect("consumer");
    let odd = start_consumer(
        odd,
        ConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new().partition(1)),
    )
    .expect("consumer");
    settle().await;

    producer.cast(common::SourceMsg::Push((0..10).collect())).expect("push");
    settle().await;
    assert_eq!(even_log.lock().events(), vec![0, 2, 4, 6, 8]);
    assert_eq!(odd_log.lock().count(), 0);
    assert_eq!(producer.estimated_buffered_count().await.expect("buffered"), 5, "the odd events wait");

    odd.cast(CollectorMsg::Ask(3)).expect("ask");
    settle().await;
    assert_eq!(odd_log.lock().events(), vec![1, 3, 5]);
    assert_eq!(producer.estimated_buffered_count().await.expect("buffered"), 2);
}

#[tokio::test(start_paused = true)]
async fn hashed_partitions_deliver_every_event_exactly_once() {
    let dispatcher = PartitionDispatcher::<u64>::hashed(4).expect("four partitions");
    let options = ProducerOptions::new().dispatcher(dispatcher).demand(DemandMode::Accumulate);
    let producer = start_producer(from_enumerable(0..100u64), options).expect("producer");
    let consumers = consumers_of(&producer, (0..4).map(PartitionKey::from), 1000);
    settle().await;
    producer.set_demand_mode(DemandMode::Forward).expect("forward");

    let mut all = Vec::new();
    for (consumer, log) in &consumers {
        assert!(matches!(within("a consumer to finish", consumer.wait()).await, ExitReason::Normal));
        all.extend(log.lock().events());
    }
    all.sort_unstable();
    assert_eq!(all, (0..100).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn rejects_second_consumer_on_same_partition() {
    let (source, _) = Source::new(OnDemand::Exact);
    let producer =
        start_producer(source.limit(10), ProducerOptions::new().dispatcher(parity())).expect("producer");
    let first = consumers_of(&producer, [0.into()], 10);
    settle().await;

    let (collector, log) = Collector::<u64>::new();
    let temporary = start_consumer(collector, ConsumerOptions::new()).expect("consumer");
    let taken = within(
        "the subscription",
        temporary
            .consumer()
            .subscribe_to(&producer, SubscribeOptions::new().partition(0).cancel(CancelMode::Temporary)),
    )
    .await;
    match &taken {
        Err(error @ Error::PartitionTaken { partition }) => {
            assert_eq!(partition, "0");
            assert_eq!(error.to_string(), "partition 0 already has a consumer");
        }
        other => panic!("expected PartitionTaken, got {other:?}"),
    }
    settle().await;
    assert!(temporary.is_running(), "a temporary subscription's refusal does not stop the consumer");
    assert_eq!(log.lock().count(), 0);
    assert_eq!(first[0].1.lock().events(), vec![0, 2, 4, 6, 8], "the partition's consumer is undisturbed");

    let (collector, _) = Collector::<u64>::new();
    let permanent = start_consumer(collector, ConsumerOptions::new()).expect("consumer");
    let taken = within(
        "the subscription",
        permanent.consumer().subscribe_to(&producer, SubscribeOptions::new().partition(0)),
    )
    .await;
    assert!(matches!(taken, Err(Error::PartitionTaken { .. })), "{taken:?}");
    let exit = within("the consumer to stop", permanent.wait()).await;
    assert!(matches!(failure(&exit), Error::PartitionTaken { .. }), "{exit}");
}

#[tokio::test(start_paused = true)]
async fn async_subscribe_to_a_taken_partition_stops_a_permanent_consumer() {
    let (source, _) = Source::new(OnDemand::Exact);
    let producer = start_producer(source, ProducerOptions::new().dispatcher(parity())).expect("producer");
    let _first = consumers_of(&producer, [1.into()], 10);
    settle().await;

    let (collector, _) = Collector::<u64>::manual(0);
    let consumer = start_consumer(collector, ConsumerOptions::new()).expect("consumer");
    let sub = consumer.consumer().async_subscribe(&producer, SubscribeOptions::new().partition(1));
    assert!(sub.is_ok(), "async_subscribe does not wait for the producer: {sub:?}");
    let exit = within("the consumer to stop", consumer.wait()).await;
    assert!(matches!(failure(&exit), Error::PartitionTaken { .. }), "{exit}");
}

#[tokio::test(start_paused = true)]
async fn rejects_unknown_partition() {
    let (source, _) = Source::new(OnDemand::Exact);
    let producer = start_producer(source, ProducerOptions::new().dispatcher(parity())).expect("producer");
    let (collector, _) = Collector::<u64>::new();
    let consumer = start_consumer(collector, ConsumerOptions::new()).expect("consumer");
    let unknown = within(
        "the subscription",
        consumer
            .consumer()
            .subscribe_to(&producer, SubscribeOptions::new().partition(7).cancel(CancelMode::Temporary)),
    )
    .await;
    match &unknown {
        Err(error @ Error::UnknownPartition { partition, known }) => {
            assert_eq!(partition, "7");
            assert_eq!(known, "0..2");
            assert_eq!(error.to_string(), "unknown partition 7 (the dispatcher has partitions 0..2)");
        }
        other => panic!("expected UnknownPartition, got {other:?}"),
    }

    let named = PartitionDispatcher::named(["a", "b"], |e: u64| Some((e, "a"))).expect("named");
    let producer =
        start_producer(from_enumerable(0..1u64), ProducerOptions::new().dispatcher(named)).expect("producer");
    let unknown = within(
        "the subscription",
        consumer
            .consumer()
            .subscribe_to(&producer, SubscribeOptions::new().partition("c").cancel(CancelMode::Temporary)),
    )
    .await;
    assert!(matches!(unknown, Err(Error::UnknownPartition { .. })), "{unknown:?}");
    settle().await;
    assert!(consumer.is_running());
}

#[tokio::test(start_paused = true)]
async fn subscribing_without_a_partition_is_missing_partition() {
    let (source, _) = Source::new(OnDemand::Exact);
    let producer = start_producer(source, ProducerOptions::new().dispatcher(parity())).expect("producer");
    let (collector, _) = Collector::<u64>::new();
    let consumer = start_consumer(collector, ConsumerOptions::new()).expect("consumer");
    let missing = within(
        "the subscription",
        consumer.consumer().subscribe_to(&producer, SubscribeOptions::new().cancel(CancelMode::Temporary)),
    )
    .await;
    assert!(matches!(missing, Err(Error::MissingPartition)), "{missing:?}");
}

#[tokio::test(start_paused = true)]
async fn a_partition_freed_by_its_consumer_can_be_taken_again() {
    let (source, _) = Source::new(OnDemand::Exact);
    let producer =
        start_producer(source.limit(40), ProducerOptions::new().dispatcher(parity())).expect("producer");
    let odd = consumers_of(&producer, [1.into()], 4);
    let (collector, first_log) = Collector::<u64>::manual(2);
    let first = start_consumer(
        collector,
        ConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new().partition(0)),
    )
    .expect("consumer");
    settle().await;
    within("the stop", first.stop()).await;
    settle().await;

    let (collector, log) = Collector::<u64>::manual(3);
    let second = start_consumer(collector, ConsumerOptions::new()).expect("consumer");
    let sub = within(
        "the subscription",
        second.consumer().subscribe_to(&producer, SubscribeOptions::new().partition(0)),
    )
    .await;
    assert!(sub.is_ok(), "{sub:?}");
    for _ in 0..5 {
        settle().await;
    }
    assert_eq!(log.lock().count(), 3, "the new consumer gets what it asked");
    let mut evens = first_log.lock().events();
    evens.extend(log.lock().events());
    assert!(evens.windows(2).all(|w| w[0] < w[1]) && evens.iter().all(|e| e % 2 == 0), "{evens:?}");
    // Partition 0 stopped asking, which throttles partition 1 too (upstream is asked only for
    // what consumers ask): it got only odd events, in order.
    let odds = odd[0].1.lock().events();
    assert!(!odds.is_empty() && odds.windows(2).all(|w| w[0] < w[1]) && odds.iter().all(|e| e % 2 == 1));
}

#[tokio::test(start_paused = true)]
async fn a_finishing_producer_delivers_events_waiting_in_partitions() {
    // Partition 0 asks for more than the enumerable holds, so the producer emits everything and
    // finishes at once; partition 1's consumer has not asked yet, so its events wait inside the
    // dispatcher. `finish` promises to stop only once every event emitted so far has been
    // dispatched, and `estimated_buffered_count` counts these events as held by the producer.
    let producer = start_producer(from_enumerable(0..100u64), ProducerOptions::new().dispatcher(parity()))
        .expect("producer");
    let (odd, odd_log) = Collector::<u64>::manual(0);
    let odd = start_consumer(
        odd,
        ConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new().partition(1)),
    )
    .expect("consumer");
    settle().await;
    let even = consumers_of(&producer, [0.into()], 200);
    settle().await;
    assert_eq!(even[0].1.lock().events(), (0..100).filter(|e| e % 2 == 0).collect::<Vec<_>>());

    assert!(
        producer.is_running() && odd.is_running(),
        "the producer finished (and its odd consumer with it) while the odd events still waited in its dispatcher"
    );
    assert_eq!(producer.estimated_buffered_count().await.expect("buffered"), 50);
    odd.cast(CollectorMsg::Ask(50)).expect("ask");
    settle().await;
    assert_eq!(
        odd_log.lock().events(),
        (0..100).filter(|e| e % 2 == 1).collect::<Vec<_>>(),
        "the odd events waiting in the dispatcher were dropped when the producer finished"
    );
    assert!(matches!(within("the producer", producer.wait()).await, ExitReason::Normal));
    assert!(matches!(within("the odd consumer", odd.wait()).await, ExitReason::Normal));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn random_demands_route_every_event_once_in_order(
        demands in proptest::collection::vec(1usize..30, 3),
        total in 0u64..300,
    ) {
        let logs = paused_runtime().block_on(async {
            let dispatcher = PartitionDispatcher::new(3, |e: u64| Some((e, (e % 3) as usize))).expect("partitions");
            let (source, _) = Source::new(OnDemand::Exact);
            let producer = start_producer(source.limit(total), ProducerOptions::new().dispatcher(dispatcher))
                .expect("producer");
            let mut consumers: Consumers = Vec::new();
            for (p, max) in demands.iter().enumerate() {
                let (collector, log) = Collector::<u64>::new();
                let options = SubscribeOptions::new().partition(p).max_demand(*max);
                let consumer = start_consumer(collector, ConsumerOptions::new().subscribe_to(&producer, options))
                    .expect("consumer");
                consumers.push((consumer, log));
            }
            // The producer never finishes; give every partition time to drain.
            for _ in 0..20 {
                settle().await;
            }
            consumers.into_iter().map(|(_, log)| log).collect::<Vec<_>>()
        });
        for (p, log) in logs.iter().enumerate() {
            let log = log.lock();
            let step = (demands[p] - demands[p] / 2).max(1);
            prop_assert!(log.chunk_sizes().iter().all(|&n| n <= step));
            prop_assert_eq!(log.events(), (0..total).filter(|e| (e % 3) as usize == p).collect::<Vec<_>>());
        }
    }
}
