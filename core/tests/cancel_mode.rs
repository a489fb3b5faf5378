//! Cancel modes: how consumers react when their producer stops normally, is shut down, fails
//! or panics.

mod common;

use common::{
    failure, settle, within, Collector, CollectorLog, CollectorMsg, OnDemand, Shared, Source, SourceMsg,
};
use weir_core::{
    start_consumer, start_producer, CancelMode, ConsumerHandle, ConsumerOptions, Error, ExitReason,
    ProducerHandle, ProducerOptions, SubscribeOptions,
};

struct Subscribers {
    permanent: (ConsumerHandle<u64, CollectorMsg>, Shared<CollectorLog<u64>>),
    transient: (ConsumerHandle<u64, CollectorMsg>, Shared<CollectorLog<u64>>),
    temporary: (ConsumerHandle<u64, CollectorMsg>, Shared<CollectorLog<u64>>),
}

/// A producer with one consumer per cancel mode, all subscribed.
async fn producer_with_subscribers() -> (ProducerHandle<u64, SourceMsg>, Subscribers) {
    let (source, _) = Source::new(OnDemand::Exact);
    let producer = start_producer(source.limit(30), ProducerOptions::new()).expect("producer");
    let subscribe = |mode: CancelMode| {
        let (collector, log) = Collector::<u64>::new();
        let options = SubscribeOptions::new().max_demand(10).cancel(mode);
        let consumer = start_consumer(collector, ConsumerOptions::new().subscribe_to(&producer, options))
            .expect("consumer");
        (consumer, log)
    };
    let subscribers = Subscribers {
        permanent: subscribe(CancelMode::Permanent),
        transient: subscribe(CancelMode::Transient),
        temporary: subscribe(CancelMode::Temporary),
    };
    settle().await;
    (producer, subscribers)
}

fn cancel_reasons(log: &Shared<CollectorLog<u64>>) -> Vec<ExitReason> {
    log.lock().cancelled.iter().map(|(_, reason)| reason.clone()).collect()
}

#[tokio::test(start_paused = true)]
async fn a_normal_finish_stops_permanent_consumers_normally_and_leaves_the_others_running() {
    let (producer, subs) = producer_with_subscribers().await;
    producer.cast(SourceMsg::Finish).expect("finish");
    assert!(matches!(within("the producer", producer.wait()).await, ExitReason::Normal));

    assert!(matches!(within("the permanent consumer", subs.permanent.0.wait()).await, ExitReason::Normal));
    settle().await;
    assert!(subs.transient.0.is_running());
    assert!(subs.temporary.0.is_running());
    for (_, log) in [&subs.permanent, &subs.transient, &subs.temporary] {
        let reasons = cancel_reasons(log);
        assert!(matches!(reasons.as_slice(), [ExitReason::Normal]), "{reasons:?}");
    }
    // Between them the consumers got everything the producer emitted.
    let mut all: Vec<u64> = [&subs.permanent, &subs.transient, &subs.temporary]
        .iter()
        .flat_map(|(_, log)| log.lock().events())
        .collect();
    all.sort_unstable();
    assert_eq!(all, (0..30).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn a_shutdown_stops_permanent_consumers_only() {
    let (producer, subs) = producer_with_subscribers().await;
    assert!(matches!(within("the producer", producer.stop()).await, ExitReason::Shutdown));

    assert!(matches!(within("the permanent consumer", subs.permanent.0.wait()).await, ExitReason::Shutdown));
    settle().await;
    assert!(subs.transient.0.is_running(), "a shutdown is not a failure");
    assert!(subs.temporary.0.is_running());
}

#[tokio::test(start_paused = true)]
async fn a_failing_producer_stops_permanent_and_transient_consumers_with_its_failure() {
    let (producer, subs) = producer_with_subscribers().await;
    producer.cast(SourceMsg::Fail).expect("fail");
    let exit = within("the producer", producer.wait()).await;
    match failure(&exit) {
        error @ Error::Callback { callback, .. } => {
            assert_eq!(*callback, "handle_info");
            assert_eq!(error.to_string(), "handle_info failed: producer failed on purpose");
        }
        other => panic!("expected a callback error, got {other}"),
    }

    for (name, consumer) in [("permanent", &subs.permanent.0), ("transient", &subs.transient.0)] {
        let exit = within(name, consumer.wait()).await;
        assert!(
            matches!(failure(&exit), Error::Callback { callback: "handle_info", .. }),
            "{name} stopped with {exit}"
        );
    }
    settle().await;
    assert!(subs.temporary.0.is_running());
    let reasons = cancel_reasons(&subs.temporary.1);
    assert!(matches!(reasons.as_slice(), [ExitReason::Failed(_)]), "{reasons:?}");
}

#[tokio::test(start_paused = true)]
async fn a_panicking_producer_stops_permanent_and_transient_consumers_with_its_failure() {
    let (producer, subs) = producer_with_subscribers().await;
    producer.cast(SourceMsg::Panic).expect("panic");
    let exit = within("the producer", producer.wait()).await;
    match failure(&exit) {
        Error::Panicked { callback, message } => {
            assert_eq!(*callback, "handle_info");
            assert_eq!(message, "producer panicked on purpose");
        }
        other => panic!("expected a panic, got {other}"),
    }

    for (name, consumer) in [("permanent", &subs.permanent.0), ("transient", &subs.transient.0)] {
        let exit = within(name, consumer.wait()).await;
        assert!(
            matches!(failure(&exit), Error::Panicked { callback: "handle_info", .. }),
            "{name} stopped with {exit}"
        );
    }
    settle().await;
    assert!(subs.temporary.0.is_running());
}

#[tokio::test(start_paused = true)]
async fn a_temporary_consumer_outlives_its_producer_and_keeps_other_subscriptions() {
    let (first, _) = Source::new(OnDemand::Nothing);
    let (second, _) = Source::new(OnDemand::Nothing);
    let first = start_producer(first, ProducerOptions::new()).expect("producer");
    let second = start_producer(second, ProducerOptions::new()).expect("producer");
    let (collector, log) = Collector::<u64>::new();
    let consumer = start_consumer(
        collector,
        ConsumerOptions::new()
            .subscribe_to(&first, SubscribeOptions::new().cancel(CancelMode::Temporary))
            .subscribe_to(&second, SubscribeOptions::new().cancel(CancelMode::Temporary)),
    )
    .expect("consumer");
    settle().await;
    first.cast(SourceMsg::Panic).expect("panic");
    within("the first producer", first.wait()).await;

    second.cast(SourceMsg::Push(vec![1, 2, 3])).expect("push");
    settle().await;
    assert!(consumer.is_running());
    assert_eq!(log.lock().events(), vec![1, 2, 3]);
}

#[tokio::test(start_paused = true)]
async fn a_permanent_subscription_ending_stops_the_consumer_even_with_other_subscriptions() {
    let (first, _) = Source::new(OnDemand::Nothing);
    let (second, second_log) = Source::new(OnDemand::Nothing);
    let first = start_producer(first, ProducerOptions::new()).expect("producer");
    let second = start_producer(second, ProducerOptions::new()).expect("producer");
    let (collector, _) = Collector::<u64>::new();
    let consumer = start_consumer(
        collector,
        ConsumerOptions::new()
            .subscribe_to(&first, SubscribeOptions::new())
            .subscribe_to(&second, SubscribeOptions::new()),
    )
    .expect("consumer");
    settle().await;
    first.cast(SourceMsg::Finish).expect("finish");
    assert!(matches!(within("the consumer", consumer.wait()).await, ExitReason::Normal));
    settle().await;
    // Its other subscription is cancelled, and that producer keeps running.
    assert_eq!(second_log.lock().cancelled.len(), 1);
    assert!(second.is_running());
}
