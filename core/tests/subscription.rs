//! Subscriptions made and ended at runtime: `ConsumerRef::subscribe_to`, `async_subscribe`,
//! `cancel`, `Context::cancel`, and subscribing to a stopped producer.

mod common;

use common::{failure, settle, within, Collector, CollectorMsg, Mapper, OnDemand, Source, SourceMsg};
use weir_core::{
    from_enumerable, start_consumer, start_producer, start_producer_consumer, CancelMode, ConsumerOptions,
    Error, ExitReason, ProducerConsumerOptions, ProducerOptions, SubscribeOptions,
};

fn range(from: u64, to: u64) -> Vec<u64> {
    (from..to).collect()
}

#[tokio::test(start_paused = true)]
async fn subscribe_to_at_runtime_returns_the_subscription_events_come_from() {
    let (source, source_log) = Source::new(OnDemand::Exact);
    let producer = start_producer(source.limit(20), ProducerOptions::new()).expect("producer");
    let (collector, log) = Collector::<u64>::new();
    let consumer = start_consumer(collector, ConsumerOptions::new()).expect("consumer");

    let sub = within(
        "the subscription",
        consumer.consumer().subscribe_to(&producer, SubscribeOptions::new().max_demand(10)),
    )
    .await
    .expect("subscribed");
    settle().await;

    assert_eq!(log.lock().events(), range(0, 20));
    assert!(log.lock().chunks.iter().all(|(from, _)| *from == sub));
    assert_eq!(log.lock().subscribed, vec![sub]);
    assert_eq!(source_log.lock().subscribed, vec![sub], "both ends name the subscription alike");
}

#[tokio::test(start_paused = true)]
async fn async_subscribe_returns_at_once_and_events_follow() {
    let (source, _) = Source::new(OnDemand::Exact);
    let producer = start_producer(source.limit(20), ProducerOptions::new()).expect("producer");
    let (collector, log) = Collector::<u64>::new();
    let consumer = start_consumer(collector, ConsumerOptions::new()).expect("consumer");

    let sub = consumer.consumer().async_subscribe(&producer, SubscribeOptions::new()).expect("subscribed");
    settle().await;
    assert_eq!(log.lock().events(), range(0, 20));
    assert!(log.lock().chunks.iter().all(|(from, _)| *from == sub));
}

#[tokio::test(start_paused = true)]
async fn a_consumer_can_subscribe_to_several_producers() {
    let (odd, _) = Source::new(OnDemand::Nothing);
    let (even, _) = Source::new(OnDemand::Nothing);
    let odd = start_producer(odd, ProducerOptions::new()).expect("producer");
    let even = start_producer(even, ProducerOptions::new()).expect("producer");
    let (collector, log) = Collector::<u64>::new();
    let consumer =
        start_consumer(collector, ConsumerOptions::new().subscribe_to(&odd, SubscribeOptions::new()))
            .expect("consumer");
    let even_sub =
        within("the subscription", consumer.consumer().subscribe_to(&even, SubscribeOptions::new()))
            .await
            .expect("sub");
    odd.cast(SourceMsg::Push(vec![1, 3])).expect("push");
    even.cast(SourceMsg::Push(vec![2, 4])).expect("push");
    settle().await;

    let log = log.lock();
    let from_even: Vec<u64> =
        log.chunks.iter().filter(|(from, _)| *from == even_sub).flat_map(|(_, c)| c.clone()).collect();
    let from_odd: Vec<u64> =
        log.chunks.iter().filter(|(from, _)| *from != even_sub).flat_map(|(_, c)| c.clone()).collect();
    assert_eq!(from_even, vec![2, 4]);
    assert_eq!(from_odd, vec![1, 3]);
}

#[tokio::test(start_paused = true)]
async fn cancel_ends_the_subscription_on_both_sides_and_the_consumer_keeps_running() {
    let (source, source_log) = Source::new(OnDemand::Exact);
    let producer = start_producer(source, ProducerOptions::new()).expect("producer");
    let (collector, log) = Collector::<u64>::manual(5);
    let consumer = start_consumer(collector, ConsumerOptions::new()).expect("consumer");
    let sub =
        within("the subscription", consumer.consumer().subscribe_to(&producer, SubscribeOptions::new()))
            .await
            .expect("sub");
    settle().await;
    assert_eq!(log.lock().count(), 5);

    consumer.consumer().cancel(sub).expect("cancel");
    settle().await;
    let cancelled = source_log.lock().cancelled.clone();
    assert_eq!(cancelled.len(), 1);
    assert_eq!(cancelled[0].0, sub);
    assert!(matches!(cancelled[0].1, ExitReason::Normal));
    let cancelled = log.lock().cancelled.clone();
    assert_eq!(cancelled.len(), 1, "the consumer's handle_cancel runs");
    assert_eq!(cancelled[0].0, sub);

    // Cancelling is not the producer ending: the consumer stays, and gets nothing more.
    assert!(consumer.is_running());
    consumer.cast(CollectorMsg::Ask(5)).expect("ask");
    settle().await;
    assert_eq!(log.lock().count(), 5);
    assert!(producer.is_running());
}

#[tokio::test(start_paused = true)]
async fn context_cancel_ends_the_subscription_from_a_callback() {
    let (source, source_log) = Source::new(OnDemand::Exact);
    let producer = start_producer(source, ProducerOptions::new()).expect("producer");
    let (collector, log) = Collector::<u64>::manual(3);
    let consumer =
        start_consumer(collector, ConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new()))
            .expect("consumer");
    settle().await;

    consumer.cast(CollectorMsg::CancelAll).expect("cancel");
    settle().await;
    assert_eq!(source_log.lock().cancelled.len(), 1);
    assert_eq!(log.lock().cancelled.len(), 1, "handle_cancel runs for a cancel from a callback too");
    assert!(consumer.is_running());
    consumer.cast(CollectorMsg::Ask(3)).expect("ask");
    settle().await;
    assert_eq!(log.lock().count(), 3);
}

#[tokio::test(start_paused = true)]
async fn subscribing_to_a_stopped_producer_is_stage_stopped_and_stops_a_permanent_subscriber() {
    let producer = start_producer(from_enumerable(0..1u64), ProducerOptions::new()).expect("producer");
    within("the stop", producer.stop()).await;

    let (collector, log) = Collector::<u64>::new();
    let permanent = start_consumer(collector, ConsumerOptions::new()).expect("consumer");
    let refused =
        within("the subscription", permanent.consumer().subscribe_to(&producer, SubscribeOptions::new()))
            .await;
    assert!(matches!(refused, Err(Error::StageStopped)), "{refused:?}");
    let exit = within("the consumer to stop", permanent.wait()).await;
    assert!(matches!(failure(&exit), Error::StageStopped), "{exit}");
    assert_eq!(log.lock().cancelled.len(), 1, "handle_cancel tells the consumer why");
}

#[tokio::test(start_paused = true)]
async fn subscribing_to_a_stopped_producer_leaves_a_temporary_subscriber_running() {
    let producer = start_producer(from_enumerable(0..1u64), ProducerOptions::new()).expect("producer");
    within("the stop", producer.stop()).await;

    let (collector, log) = Collector::<u64>::new();
    let temporary = start_consumer(collector, ConsumerOptions::new()).expect("consumer");
    let refused = within(
        "the subscription",
        temporary.consumer().subscribe_to(&producer, SubscribeOptions::new().cancel(CancelMode::Temporary)),
    )
    .await;
    assert!(matches!(refused, Err(Error::StageStopped)), "{refused:?}");
    settle().await;
    assert!(temporary.is_running());

    // It can still subscribe elsewhere.
    let other = start_producer(from_enumerable(0..3u64), ProducerOptions::new()).expect("producer");
    within("the subscription", temporary.consumer().subscribe_to(&other, SubscribeOptions::new()))
        .await
        .expect("subscribed");
    settle().await;
    assert_eq!(log.lock().events(), vec![0, 1, 2]);
}

#[tokio::test(start_paused = true)]
async fn a_consumer_started_against_a_stopped_producer_stops_when_permanent() {
    let producer = start_producer(from_enumerable(0..1u64), ProducerOptions::new()).expect("producer");
    within("the stop", producer.stop()).await;

    let (collector, _) = Collector::<u64>::new();
    let permanent =
        start_consumer(collector, ConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new()))
            .expect("options are valid");
    let exit = within("the consumer to stop", permanent.wait()).await;
    assert!(matches!(failure(&exit), Error::StageStopped), "{exit}");

    let (collector, _) = Collector::<u64>::new();
    let temporary = start_consumer(
        collector,
        ConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new().cancel(CancelMode::Temporary)),
    )
    .expect("options are valid");
    settle().await;
    assert!(temporary.is_running());
}

#[tokio::test(start_paused = true)]
async fn subscription_requests_to_a_stopped_consumer_are_stage_stopped() {
    let (source, _) = Source::new(OnDemand::Exact);
    let producer = start_producer(source, ProducerOptions::new()).expect("producer");
    let (collector, _) = Collector::<u64>::new();
    let consumer = start_consumer(collector, ConsumerOptions::new()).expect("consumer");
    let sub = consumer.consumer().async_subscribe(&producer, SubscribeOptions::new()).expect("subscribed");
    within("the stop", consumer.stop()).await;

    let refused =
        within("the subscription", consumer.consumer().subscribe_to(&producer, SubscribeOptions::new()))
            .await;
    assert!(matches!(refused, Err(Error::StageStopped)), "{refused:?}");
    assert!(matches!(
        consumer.consumer().async_subscribe(&producer, SubscribeOptions::new()),
        Err(Error::StageStopped)
    ));
    assert!(matches!(consumer.consumer().cancel(sub), Err(Error::StageStopped)));
}

#[tokio::test(start_paused = true)]
async fn a_producer_consumer_subscribes_at_runtime_too() {
    let producer = start_producer(from_enumerable(0..10u64), ProducerOptions::new()).expect("producer");
    let (mapper, _) = Mapper::new(|e| vec![e + 100]);
    let stage = start_producer_consumer(mapper, ProducerConsumerOptions::new()).expect("producer-consumer");
    let (collector, log) = Collector::<u64>::new();
    let consumer =
        start_consumer(collector, ConsumerOptions::new().subscribe_to(&stage, SubscribeOptions::new()))
            .expect("consumer");
    within("the subscription", stage.consumer().subscribe_to(&producer, SubscribeOptions::new()))
        .await
        .expect("subscribed");
    assert!(matches!(within("the consumer to finish", consumer.wait()).await, ExitReason::Normal));
    assert_eq!(log.lock().events(), range(100, 110));
}

#[tokio::test(start_paused = true)]
async fn the_producer_sees_a_consumer_that_stops_as_a_cancel() {
    let (source, source_log) = Source::new(OnDemand::Exact);
    let producer = start_producer(source, ProducerOptions::new()).expect("producer");
    let (collector, _) = Collector::<u64>::manual(1);
    let consumer =
        start_consumer(collector, ConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new()))
            .expect("consumer");
    settle().await;
    within("the stop", consumer.stop()).await;
    settle().await;
    let cancelled = source_log.lock().cancelled.clone();
    assert_eq!(cancelled.len(), 1);
    assert!(matches!(cancelled[0].1, ExitReason::Shutdown), "{}", cancelled[0].1);
    assert!(producer.is_running());
}
