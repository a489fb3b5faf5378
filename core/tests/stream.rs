//! Consuming producers as a `futures::Stream` (`stream`, `stream_all`) and producing from one
//! (`from_stream`).

mod common;

use std::time::Duration;

use common::{settle, within, Collector, OnDemand, Source, SourceMsg};
use futures::StreamExt;
use weir_core::{
    from_enumerable, from_stream, start_consumer, start_producer, stream, stream_all, ConsumerOptions, Error,
    ExitReason, ProducerOptions, SubscribeOptions,
};

#[tokio::test(start_paused = true)]
async fn stream_yields_every_event_in_order() {
    let producer = start_producer(from_enumerable(0..2500u64), ProducerOptions::new()).expect("producer");
    let events: Vec<u64> = within(
        "the stream",
        stream(&producer, SubscribeOptions::new().max_demand(100)).expect("stream").collect(),
    )
    .await;
    assert_eq!(events, (0..2500).collect::<Vec<_>>());
    assert!(matches!(within("the producer", producer.wait()).await, ExitReason::Normal));
}

#[tokio::test(start_paused = true)]
async fn stream_asks_for_more_only_as_items_are_taken() {
    let (source, source_log) = Source::new(OnDemand::Exact);
    let producer = start_producer(source, ProducerOptions::new()).expect("producer");
    let mut events = stream(&producer, SubscribeOptions::new().max_demand(10)).expect("stream");

    for expected in 0..5 {
        assert_eq!(within("an item", events.next()).await, Some(expected));
    }
    settle().await;
    assert_eq!(source_log.lock().demands, vec![10], "half of the first ask is still unread");

    assert_eq!(within("an item", events.next()).await, Some(5));
    settle().await;
    assert_eq!(source_log.lock().demands, vec![10, 5], "the first chunk was read: ask 5 more");
}

#[tokio::test(start_paused = true)]
async fn take_then_drop_cancels_the_subscription() {
    let (source, source_log) = Source::new(OnDemand::Exact);
    let producer = start_producer(source, ProducerOptions::new()).expect("producer");
    let first: Vec<u64> = within(
        "the stream",
        stream(&producer, SubscribeOptions::new().max_demand(10)).expect("stream").take(5).collect(),
    )
    .await;
    assert_eq!(first, vec![0, 1, 2, 3, 4]);
    settle().await;

    let log = source_log.lock();
    assert_eq!(log.subscribed.len(), 1);
    assert_eq!(log.cancelled.len(), 1, "the producer sees handle_cancel");
    assert_eq!(log.cancelled[0].0, log.subscribed[0]);
    assert!(matches!(log.cancelled[0].1, ExitReason::Normal));
    drop(log);
    assert!(producer.is_running());
}

#[tokio::test(start_paused = true)]
async fn from_stream_produces_the_items_of_an_async_stream() {
    // An async source: each item takes 5ms on the paused clock.
    let source = futures::stream::unfold(0u64, |n| async move {
        if n < 10 {
            tokio::time::sleep(Duration::from_millis(5)).await;
            Some((n * n, n + 1))
        } else {
            None
        }
    });
    let producer = start_producer(from_stream(source), ProducerOptions::new()).expect("producer");
    let (collector, log) = Collector::<u64>::new();
    let consumer = start_consumer(
        collector,
        ConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new().max_demand(4)),
    )
    .expect("consumer");

    assert!(matches!(within("the consumer", consumer.wait()).await, ExitReason::Normal));
    assert!(matches!(within("the producer", producer.wait()).await, ExitReason::Normal));
    assert_eq!(log.lock().events(), (0..10).map(|n| n * n).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn from_stream_into_stream_round_trips() {
    let source = futures::stream::iter(0..300u32).then(|x| async move {
        tokio::task::yield_now().await;
        x
    });
    let producer = start_producer(from_stream(source), ProducerOptions::new()).expect("producer");
    let events: Vec<u32> = within(
        "the stream",
        stream(&producer, SubscribeOptions::new().max_demand(16)).expect("stream").collect(),
    )
    .await;
    assert_eq!(events, (0..300).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn from_stream_only_polls_as_far_as_consumers_ask() {
    let polled = common::Shared::<u64>::default();
    let counter = polled.clone();
    let source = futures::stream::unfold(0u64, move |n| {
        let counter = counter.clone();
        async move {
            *counter.lock() += 1;
            Some((n, n + 1))
        }
    });
    let producer = start_producer(from_stream(source), ProducerOptions::new()).expect("producer");
    let (collector, log) = Collector::<u64>::manual(5);
    let _consumer =
        start_consumer(collector, ConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new()))
            .expect("consumer");
    settle().await;
    assert_eq!(log.lock().events(), vec![0, 1, 2, 3, 4]);
    assert_eq!(*polled.lock(), 5, "an endless stream is polled only for what was asked");
}

#[tokio::test(start_paused = true)]
async fn stream_all_merges_several_producers() {
    let evens =
        start_producer(from_enumerable((0..50u64).map(|e| e * 2)), ProducerOptions::new()).expect("producer");
    let odds = start_producer(from_enumerable((0..50u64).map(|e| e * 2 + 1)), ProducerOptions::new())
        .expect("producer");
    let merged = stream_all([
        (&evens, SubscribeOptions::new().max_demand(7)),
        (&odds, SubscribeOptions::new().max_demand(7)),
    ])
    .expect("stream");
    let mut events: Vec<u64> = within("the stream", merged.collect()).await;
    let evens_seen: Vec<u64> = events.iter().copied().filter(|e| e % 2 == 0).collect();
    assert_eq!(evens_seen, (0..50).map(|e| e * 2).collect::<Vec<_>>(), "each producer's order is kept");
    events.sort_unstable();
    assert_eq!(events, (0..100).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn stream_ends_and_reports_why_when_the_producer_fails() {
    let (source, _) = Source::new(OnDemand::Nothing);
    let producer = start_producer(source, ProducerOptions::new()).expect("producer");
    let mut events = stream(&producer, SubscribeOptions::new()).expect("stream");
    producer.cast(SourceMsg::Push(vec![1, 2])).expect("push");
    producer.cast(SourceMsg::Fail).expect("fail");

    assert_eq!(within("an item", events.next()).await, Some(1));
    assert_eq!(within("an item", events.next()).await, Some(2));
    assert_eq!(within("the end", events.next()).await, None);
    let why = events.failure().expect("the stream knows why it ended");
    assert!(matches!(common::failure(why), Error::Callback { callback: "handle_info", .. }), "{why}");
}

#[tokio::test(start_paused = true)]
async fn stream_of_a_stopped_producer_is_stage_stopped() {
    let producer = start_producer(from_enumerable(0..1u64), ProducerOptions::new()).expect("producer");
    within("the stop", producer.stop()).await;
    assert!(matches!(stream(&producer, SubscribeOptions::new()), Err(Error::StageStopped)));
}
