//! The producer buffer: events emitted beyond demand, `buffer_size`/`buffer_keep` discards and
//! the `handle_discarded` hook, `estimated_buffered_count`, and `async_info`/`sync_info`
//! queued behind buffered events.

mod common;

use common::{settle, within, Collector, CollectorMsg, OnDemand, Source, SourceMsg};
use weir_core::{
    start_consumer, start_producer, BufferKeep, BufferSize, ConsumerOptions, ProducerOptions,
    SubscribeOptions,
};

fn range(from: u64, to: u64) -> Vec<u64> {
    (from..to).collect()
}

#[tokio::test(start_paused = true)]
async fn full_buffer_keeping_last_discards_the_oldest_and_reports_the_count() {
    let (source, source_log) = Source::new(OnDemand::Nothing);
    let producer =
        start_producer(source, ProducerOptions::new().buffer_size(5).buffer_keep(BufferKeep::Last))
            .expect("producer");
    producer.cast(SourceMsg::Push(range(0, 8))).expect("push");
    settle().await;
    assert_eq!(source_log.lock().discarded, vec![(3, 5)]);
    assert_eq!(producer.estimated_buffered_count().await.expect("buffered"), 5);

    producer.cast(SourceMsg::Push(range(8, 10))).expect("push");
    settle().await;
    assert_eq!(source_log.lock().discarded, vec![(3, 5), (2, 5)]);

    let (collector, log) = Collector::<u64>::new();
    let _consumer =
        start_consumer(collector, ConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new()))
            .expect("consumer");
    settle().await;
    assert_eq!(log.lock().events(), range(5, 10));
    assert_eq!(producer.estimated_buffered_count().await.expect("buffered"), 0);
}

#[tokio::test(start_paused = true)]
async fn full_buffer_keeping_first_discards_the_newest_and_reports_the_count() {
    let (source, source_log) = Source::new(OnDemand::Nothing);
    let producer =
        start_producer(source, ProducerOptions::new().buffer_size(5).buffer_keep(BufferKeep::First))
            .expect("producer");
    producer.cast(SourceMsg::Push(range(0, 3))).expect("push");
    producer.cast(SourceMsg::Push(range(3, 8))).expect("push");
    settle().await;
    assert_eq!(source_log.lock().discarded, vec![(3, 5)]);

    let (collector, log) = Collector::<u64>::new();
    let _consumer =
        start_consumer(collector, ConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new()))
            .expect("consumer");
    settle().await;
    assert_eq!(log.lock().events(), range(0, 5));
}

#[tokio::test(start_paused = true)]
async fn buffer_holds_only_what_consumers_did_not_ask_for() {
    // A consumer asked 4: of 10 events emitted only 6 are buffered, so a buffer of 6 discards nothing.
    let (source, source_log) = Source::new(OnDemand::Nothing);
    let producer = start_producer(source, ProducerOptions::new().buffer_size(6)).expect("producer");
    let (collector, log) = Collector::<u64>::manual(4);
    let _consumer =
        start_consumer(collector, ConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new()))
            .expect("consumer");
    settle().await;

    producer.cast(SourceMsg::Push(range(0, 10))).expect("push");
    settle().await;
    assert_eq!(log.lock().events(), range(0, 4));
    assert_eq!(producer.estimated_buffered_count().await.expect("buffered"), 6);
    assert!(source_log.lock().discarded.is_empty());
}

#[tokio::test(start_paused = true)]
async fn unbounded_buffer_never_discards() {
    let (source, source_log) = Source::new(OnDemand::Nothing);
    let producer =
        start_producer(source, ProducerOptions::new().buffer_size(BufferSize::Unbounded)).expect("producer");
    producer.cast(SourceMsg::Push(range(0, 25_000))).expect("push");
    settle().await;
    assert_eq!(producer.estimated_buffered_count().await.expect("buffered"), 25_000);
    assert!(source_log.lock().discarded.is_empty());
}

#[tokio::test(start_paused = true)]
async fn default_buffer_holds_ten_thousand_events() {
    let (source, source_log) = Source::new(OnDemand::Nothing);
    let producer = start_producer(source, ProducerOptions::new()).expect("producer");
    producer.cast(SourceMsg::Push(range(0, 10_001))).expect("push");
    settle().await;
    assert_eq!(producer.estimated_buffered_count().await.expect("buffered"), 10_000);
    assert_eq!(source_log.lock().discarded, vec![(1, 10_000)]);
}

#[tokio::test(start_paused = true)]
async fn async_info_is_delivered_only_after_the_events_buffered_before_it() {
    let (source, source_log) = Source::new(OnDemand::Nothing);
    let producer = start_producer(source, ProducerOptions::new()).expect("producer");
    producer.cast(SourceMsg::Push(range(0, 10))).expect("push");
    producer.async_info(SourceMsg::Mark("after ten")).expect("async_info");
    // Events emitted after the info do not hold it back.
    producer.cast(SourceMsg::Push(range(10, 15))).expect("push");
    settle().await;
    assert!(source_log.lock().marks.is_empty(), "10 events are still buffered before the info");

    let (collector, log) = Collector::<u64>::manual(6);
    let consumer =
        start_consumer(collector, ConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new()))
            .expect("consumer");
    settle().await;
    assert_eq!(log.lock().count(), 6);
    assert!(source_log.lock().marks.is_empty(), "4 events are still buffered before the info");

    consumer.cast(CollectorMsg::Ask(4)).expect("ask");
    settle().await;
    assert_eq!(log.lock().events(), range(0, 10));
    assert_eq!(source_log.lock().marks, vec!["after ten"]);
    assert_eq!(producer.estimated_buffered_count().await.expect("buffered"), 5);
}

#[tokio::test(start_paused = true)]
async fn async_info_with_an_empty_buffer_is_delivered_right_away() {
    let (source, source_log) = Source::new(OnDemand::Nothing);
    let producer = start_producer(source, ProducerOptions::new()).expect("producer");
    producer.async_info(SourceMsg::Mark("now")).expect("async_info");
    settle().await;
    assert_eq!(source_log.lock().marks, vec!["now"]);
}

#[tokio::test(start_paused = true)]
async fn sync_info_returns_once_queued_and_is_delivered_after_buffered_events() {
    let (source, source_log) = Source::new(OnDemand::Nothing);
    let producer = start_producer(source, ProducerOptions::new()).expect("producer");
    producer.cast(SourceMsg::Push(range(0, 3))).expect("push");
    within("sync_info", producer.sync_info(SourceMsg::Mark("first"))).await.expect("sync_info");
    within("sync_info", producer.sync_info(SourceMsg::Mark("second"))).await.expect("sync_info");
    settle().await;
    assert!(source_log.lock().marks.is_empty());

    let (collector, log) = Collector::<u64>::new();
    let _consumer =
        start_consumer(collector, ConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new()))
            .expect("consumer");
    settle().await;
    assert_eq!(log.lock().events(), range(0, 3));
    assert_eq!(source_log.lock().marks, vec!["first", "second"], "infos keep their order");
}

#[tokio::test(start_paused = true)]
async fn async_info_to_a_consumer_is_delivered_right_away() {
    // A consumer has no buffer: the info goes straight to handle_info.
    let (source, _) = Source::new(OnDemand::Exact);
    let producer = start_producer(source.limit(3), ProducerOptions::new()).expect("producer");
    let (collector, log) = Collector::<u64>::manual(0);
    let consumer =
        start_consumer(collector, ConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new()))
            .expect("consumer");
    settle().await;
    consumer.async_info(CollectorMsg::Ask(3)).expect("async_info");
    settle().await;
    assert_eq!(log.lock().events(), range(0, 3));
}

#[tokio::test(start_paused = true)]
async fn estimated_buffered_count_follows_emission_and_demand() {
    let (source, _) = Source::new(OnDemand::Nothing);
    let producer = start_producer(source, ProducerOptions::new()).expect("producer");
    assert_eq!(producer.estimated_buffered_count().await.expect("buffered"), 0);
    producer.cast(SourceMsg::Push(range(0, 7))).expect("push");
    assert_eq!(producer.estimated_buffered_count().await.expect("buffered"), 7);

    let (collector, _log) = Collector::<u64>::manual(2);
    let consumer =
        start_consumer(collector, ConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new()))
            .expect("consumer");
    settle().await;
    assert_eq!(producer.estimated_buffered_count().await.expect("buffered"), 5);
    consumer.cast(CollectorMsg::Ask(10)).expect("ask");
    settle().await;
    assert_eq!(producer.estimated_buffered_count().await.expect("buffered"), 0);
}
