//! The broadcast dispatcher through real stages: every consumer gets every event, at the pace
//! of the slowest; selectors filter per consumer; a consumer may subscribe only once.

mod common;

use common::{failure, settle, within, Collector, CollectorLog, CollectorMsg, OnDemand, Shared, Source};
use weir_core::dispatcher::BroadcastDispatcher;
use weir_core::{
    from_enumerable, start_consumer, start_producer, CancelMode, ConsumerHandle, ConsumerOptions, DemandMode,
    Error, ExitReason, ProducerOptions, SubscribeOptions,
};

type Consumers = Vec<(ConsumerHandle<u64, CollectorMsg>, Shared<CollectorLog<u64>>)>;

fn range(from: u64, to: u64) -> Vec<u64> {
    (from..to).collect()
}

#[tokio::test(start_paused = true)]
async fn every_consumer_gets_every_event_when_all_subscribe_while_accumulating() {
    // GenStage's recipe: accumulate demand until every consumer is subscribed, then forward,
    // so that no consumer misses the first events.
    let options =
        ProducerOptions::new().dispatcher(BroadcastDispatcher::new()).demand(DemandMode::Accumulate);
    let producer = start_producer(from_enumerable(0..50u64), options).expect("producer");
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

    for (i, (consumer, log)) in consumers.iter().enumerate() {
        assert!(matches!(within("a consumer to finish", consumer.wait()).await, ExitReason::Normal));
        assert_eq!(log.lock().events(), range(0, 50), "consumer {i}");
    }
}

#[tokio::test(start_paused = true)]
async fn every_consumer_gets_every_event_emitted_after_it_asked() {
    let (source, source_log) = Source::new(OnDemand::Exact);
    let options = ProducerOptions::new().dispatcher(BroadcastDispatcher::new());
    let producer = start_producer(source.limit(30), options).expect("producer");
    let mut consumers: Consumers = Vec::new();
    for _ in 0..3 {
        let (collector, log) = Collector::<u64>::manual(0);
        let consumer = start_consumer(
            collector,
            ConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new()),
        )
        .expect("consumer");
        consumers.push((consumer, log));
    }
    settle().await;
    for (consumer, _) in &consumers {
        consumer.cast(CollectorMsg::Ask(30)).expect("ask");
    }
    settle().await;
    for (_, log) in &consumers {
        assert_eq!(log.lock().events(), range(0, 30));
    }
    assert_eq!(source_log.lock().demanded(), 30, "the producer is asked once for all consumers");
}

#[tokio::test(start_paused = true)]
async fn demand_follows_the_slowest_consumer() {
    let (source, source_log) = Source::new(OnDemand::Exact);
    let producer = start_producer(source, ProducerOptions::new().dispatcher(BroadcastDispatcher::new()))
        .expect("producer");
    let (fast, fast_log) = Collector::<u64>::manual(0);
    let (slow, slow_log) = Collector::<u64>::manual(0);
    let fast = start_consumer(fast, ConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new()))
        .expect("consumer");
    let slow = start_consumer(slow, ConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new()))
        .expect("consumer");
    settle().await;

    fast.cast(CollectorMsg::Ask(10)).expect("ask");
    slow.cast(CollectorMsg::Ask(3)).expect("ask");
    settle().await;
    assert_eq!(source_log.lock().demanded(), 3);
    assert_eq!(fast_log.lock().events(), range(0, 3));
    assert_eq!(slow_log.lock().events(), range(0, 3));

    slow.cast(CollectorMsg::Ask(10)).expect("ask");
    settle().await;
    assert_eq!(source_log.lock().demanded(), 10);
    assert_eq!(fast_log.lock().events(), range(0, 10));
    assert_eq!(slow_log.lock().events(), range(0, 10));
}

#[tokio::test(start_paused = true)]
async fn selector_filters_the_events_a_consumer_receives() {
    let (source, _) = Source::new(OnDemand::Exact);
    let producer =
        start_producer(source.limit(20), ProducerOptions::new().dispatcher(BroadcastDispatcher::new()))
            .expect("producer");
    let (even, even_log) = Collector::<u64>::manual(0);
    let (all, all_log) = Collector::<u64>::manual(0);
    let even = start_consumer(
        even,
        ConsumerOptions::new()
            .subscribe_to(&producer, SubscribeOptions::new().selector(|e: &u64| e % 2 == 0)),
    )
    .expect("consumer");
    let all = start_consumer(all, ConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new()))
        .expect("consumer");
    settle().await;
    even.cast(CollectorMsg::Ask(20)).expect("ask");
    all.cast(CollectorMsg::Ask(20)).expect("ask");
    settle().await;

    assert_eq!(all_log.lock().events(), range(0, 20));
    assert_eq!(even_log.lock().events(), (0..20).filter(|e| e % 2 == 0).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn subscribing_the_same_consumer_twice_is_already_subscribed() {
    let (source, _) = Source::new(OnDemand::Exact);
    let producer =
        start_producer(source.limit(10), ProducerOptions::new().dispatcher(BroadcastDispatcher::new()))
            .expect("producer");
    let (collector, log) = Collector::<u64>::manual(0);
    let consumer = start_consumer(collector, ConsumerOptions::new()).expect("consumer");

    let first = within(
        "the first subscription",
        consumer.consumer().subscribe_to(&producer, SubscribeOptions::new()),
    )
    .await;
    assert!(first.is_ok(), "{first:?}");
    let second = within(
        "the second subscription",
        consumer.consumer().subscribe_to(&producer, SubscribeOptions::new().cancel(CancelMode::Temporary)),
    )
    .await;
    assert!(matches!(second, Err(Error::AlreadySubscribed)), "{second:?}");
    assert_eq!(
        Error::AlreadySubscribed.to_string(),
        "consumer is already subscribed to this broadcast producer"
    );

    // The refused subscription was temporary: the consumer keeps its first one, without duplicates.
    settle().await;
    assert!(consumer.is_running());
    consumer.cast(CollectorMsg::Ask(10)).expect("ask");
    settle().await;
    assert_eq!(log.lock().events(), range(0, 10));
}

#[tokio::test(start_paused = true)]
async fn a_permanent_duplicate_subscription_stops_the_consumer() {
    let (source, _) = Source::new(OnDemand::Exact);
    let producer = start_producer(source, ProducerOptions::new().dispatcher(BroadcastDispatcher::new()))
        .expect("producer");
    let (collector, _log) = Collector::<u64>::manual(0);
    let consumer =
        start_consumer(collector, ConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new()))
            .expect("consumer");
    settle().await;

    let second = within(
        "the second subscription",
        consumer.consumer().subscribe_to(&producer, SubscribeOptions::new()),
    )
    .await;
    assert!(matches!(second, Err(Error::AlreadySubscribed)), "{second:?}");
    let exit = within("the consumer to stop", consumer.wait()).await;
    assert!(matches!(failure(&exit), Error::AlreadySubscribed), "{exit}");
    assert!(producer.is_running());
}

#[tokio::test(start_paused = true)]
async fn a_slow_consumer_leaving_unblocks_the_others() {
    let (source, source_log) = Source::new(OnDemand::Exact);
    let producer = start_producer(source, ProducerOptions::new().dispatcher(BroadcastDispatcher::new()))
        .expect("producer");
    let (fast, fast_log) = Collector::<u64>::manual(0);
    let (slow, _) = Collector::<u64>::manual(0);
    let fast = start_consumer(fast, ConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new()))
        .expect("consumer");
    let slow = start_consumer(slow, ConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new()))
        .expect("consumer");
    settle().await;
    fast.cast(CollectorMsg::Ask(10)).expect("ask");
    slow.cast(CollectorMsg::Ask(3)).expect("ask");
    settle().await;
    assert_eq!(fast_log.lock().count(), 3, "the slow consumer sets the pace");

    within("the slow consumer to stop", slow.stop()).await;
    settle().await;
    assert_eq!(fast_log.lock().events(), range(0, 10));
    assert_eq!(source_log.lock().demanded(), 10);
}
