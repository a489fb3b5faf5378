//! Producers: emitting fewer or more events than demanded, emitting from casts, calls and
//! timers, finishing, and messages to a stopped producer.

mod common;

use std::time::Duration;

use common::{settle, within, Collector, CollectorMsg, OnDemand, Source, SourceMsg};
use weir_core::{
    start_consumer, start_producer, ConsumerOptions, Error, ExitReason, ProducerOptions, SubscribeOptions,
};

fn range(from: u64, to: u64) -> Vec<u64> {
    (from..to).collect()
}

#[tokio::test(start_paused = true)]
async fn emitting_fewer_than_demanded_keeps_the_rest_owed_for_later_events() {
    // handle_demand emits 3 of the 10 asked; the producer owes 7 and emits them from a cast.
    let (source, source_log) = Source::new(OnDemand::AtMost(3));
    let producer = start_producer(source, ProducerOptions::new()).expect("producer");
    let (collector, log) = Collector::<u64>::manual(10);
    let _consumer = start_consumer(
        collector,
        ConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new().max_demand(10)),
    )
    .expect("consumer");

    settle().await;
    assert_eq!(log.lock().events(), range(0, 3));
    // The runtime does not call handle_demand again for demand it already passed on.
    assert_eq!(source_log.lock().demands, vec![10]);

    producer.cast(SourceMsg::Push(range(3, 10))).expect("push");
    settle().await;
    assert_eq!(log.lock().events(), range(0, 10));
    assert_eq!(source_log.lock().demands, vec![10]);
    assert_eq!(producer.estimated_buffered_count().await.expect("buffered"), 0);
}

#[tokio::test(start_paused = true)]
async fn emitting_more_than_demanded_buffers_the_excess_and_serves_later_demand_from_it() {
    let (source, source_log) = Source::new(OnDemand::Times(4));
    let producer = start_producer(source, ProducerOptions::new()).expect("producer");
    let (collector, log) = Collector::<u64>::manual(5);
    let consumer =
        start_consumer(collector, ConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new()))
            .expect("consumer");

    settle().await;
    assert_eq!(log.lock().events(), range(0, 5));
    assert_eq!(producer.estimated_buffered_count().await.expect("buffered"), 15);

    // 10 more are served from the buffer, without calling handle_demand.
    consumer.cast(CollectorMsg::Ask(10)).expect("ask");
    settle().await;
    assert_eq!(log.lock().events(), range(0, 15));
    assert_eq!(source_log.lock().demands, vec![5]);
    assert_eq!(producer.estimated_buffered_count().await.expect("buffered"), 5);

    // 10 more: 5 from the buffer, and handle_demand is asked only for the other 5.
    consumer.cast(CollectorMsg::Ask(10)).expect("ask");
    settle().await;
    assert_eq!(log.lock().events(), range(0, 25));
    assert_eq!(source_log.lock().demands, vec![5, 5]);
    assert_eq!(producer.estimated_buffered_count().await.expect("buffered"), 15);
}

#[tokio::test(start_paused = true)]
async fn events_emitted_from_a_cast_reach_consumers() {
    let (source, _) = Source::new(OnDemand::Nothing);
    let producer = start_producer(source, ProducerOptions::new()).expect("producer");
    let (collector, log) = Collector::<u64>::new();
    let _consumer =
        start_consumer(collector, ConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new()))
            .expect("consumer");

    producer.cast(SourceMsg::Push(vec![7, 8])).expect("push");
    producer.cast(SourceMsg::Push(vec![9])).expect("push");
    settle().await;
    assert_eq!(log.lock().events(), vec![7, 8, 9]);
}

#[tokio::test(start_paused = true)]
async fn call_replies_and_emits_its_events() {
    let (source, _) = Source::new(OnDemand::Nothing);
    let producer = start_producer(source, ProducerOptions::new()).expect("producer");
    let (collector, log) = Collector::<u64>::new();
    let _consumer =
        start_consumer(collector, ConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new()))
            .expect("consumer");

    let pushed =
        within("the call's reply", producer.call(|reply| SourceMsg::PushAndCount(vec![1, 2, 3], reply)))
            .await
            .expect("reply");
    assert_eq!(pushed, 3);
    let pushed = within("the call's reply", producer.call(|reply| SourceMsg::PushAndCount(vec![4], reply)))
        .await
        .expect("reply");
    assert_eq!(pushed, 4);

    settle().await;
    assert_eq!(log.lock().events(), vec![1, 2, 3, 4]);
}

#[tokio::test(start_paused = true)]
async fn call_whose_reply_is_dropped_is_no_reply() {
    let (source, _) = Source::new(OnDemand::Nothing);
    let producer = start_producer(source, ProducerOptions::new()).expect("producer");
    let answer = within("the call", producer.call(SourceMsg::Ignore)).await;
    assert!(matches!(answer, Err(Error::NoReply)), "{answer:?}");
    assert!(producer.is_running());
}

#[tokio::test(start_paused = true)]
async fn messages_to_a_stopped_producer_are_stage_stopped() {
    let (source, _) = Source::new(OnDemand::Nothing);
    let producer = start_producer(source, ProducerOptions::new()).expect("producer");
    assert!(matches!(within("the stop", producer.stop()).await, ExitReason::Shutdown));
    assert!(!producer.is_running());

    assert!(matches!(producer.cast(SourceMsg::Push(vec![1])), Err(Error::StageStopped)));
    assert!(matches!(
        within("the call", producer.call(|r| SourceMsg::PushAndCount(vec![], r))).await,
        Err(Error::StageStopped)
    ));
    assert!(matches!(producer.async_info(SourceMsg::Mark("late")), Err(Error::StageStopped)));
    assert!(matches!(
        within("sync_info", producer.sync_info(SourceMsg::Mark("late"))).await,
        Err(Error::StageStopped)
    ));
    assert!(matches!(
        within("the count", producer.estimated_buffered_count()).await,
        Err(Error::StageStopped)
    ));
    assert!(matches!(within("the mode", producer.demand_mode()).await, Err(Error::StageStopped)));
    assert!(matches!(producer.set_demand_mode(weir_core::DemandMode::Forward), Err(Error::StageStopped)));
    // Stopping again just reports how it stopped.
    assert!(matches!(within("the second stop", producer.stop()).await, ExitReason::Shutdown));
}

#[tokio::test(start_paused = true)]
async fn send_after_emits_when_the_paused_clock_reaches_the_delay() {
    let (source, _) = Source::new(OnDemand::Nothing);
    let producer = start_producer(source, ProducerOptions::new()).expect("producer");
    let (collector, log) = Collector::<u64>::new();
    let _consumer =
        start_consumer(collector, ConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new()))
            .expect("consumer");

    producer.cast(SourceMsg::PushAfter(vec![42], Duration::from_secs(10))).expect("schedule");
    settle().await;
    tokio::time::advance(Duration::from_secs(9)).await;
    settle().await;
    assert_eq!(log.lock().count(), 0, "nothing before the delay");

    tokio::time::advance(Duration::from_secs(1)).await;
    settle().await;
    assert_eq!(log.lock().events(), vec![42]);
}

#[tokio::test(start_paused = true)]
async fn finishing_stops_normally_after_buffered_events_are_dispatched() {
    let (source, source_log) = Source::new(OnDemand::Nothing);
    let producer = start_producer(source, ProducerOptions::new()).expect("producer");
    producer.cast(SourceMsg::Push(range(0, 10))).expect("push");
    producer.cast(SourceMsg::Finish).expect("finish");
    settle().await;
    // No consumer has asked: the events are still buffered and the producer waits for them.
    assert!(producer.is_running());

    let (collector, log) = Collector::<u64>::manual(4);
    let consumer =
        start_consumer(collector, ConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new()))
            .expect("consumer");
    settle().await;
    assert_eq!(log.lock().events(), range(0, 4));
    assert!(producer.is_running(), "6 events are still buffered");

    consumer.cast(CollectorMsg::Ask(6)).expect("ask");
    assert!(matches!(within("the producer to finish", producer.wait()).await, ExitReason::Normal));
    assert!(matches!(within("the consumer to finish", consumer.wait()).await, ExitReason::Normal));
    assert_eq!(log.lock().events(), range(0, 10));
    assert!(matches!(source_log.lock().terminated, Some(ExitReason::Normal)));
}

#[tokio::test(start_paused = true)]
async fn finishing_in_the_callback_that_emits_beyond_demand_still_delivers_those_events() {
    // The callback emits 10 events to a consumer that asked 4, and finishes: the 6 extra are
    // "emitted so far" and must be delivered before the producer stops (as GenStage's
    // `async_info(self(), :stop)` from the same callback would).
    let (source, _) = Source::new(OnDemand::Nothing);
    let producer = start_producer(source, ProducerOptions::new()).expect("producer");
    let (collector, log) = Collector::<u64>::manual(4);
    let consumer =
        start_consumer(collector, ConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new()))
            .expect("consumer");
    settle().await;

    producer.cast(SourceMsg::PushAndFinish(range(0, 10))).expect("push");
    settle().await;
    assert_eq!(log.lock().events(), range(0, 4));
    consumer.cast(CollectorMsg::Ask(6)).expect("ask");
    settle().await;
    assert_eq!(log.lock().events(), range(0, 10), "the events emitted with finish were lost");
    assert!(matches!(within("the producer to finish", producer.wait()).await, ExitReason::Normal));
}

#[tokio::test(start_paused = true)]
async fn a_producer_with_no_consumer_still_emits_into_its_buffer() {
    let (source, source_log) = Source::new(OnDemand::Exact);
    let producer = start_producer(source, ProducerOptions::new()).expect("producer");
    producer.cast(SourceMsg::Push(range(0, 3))).expect("push");
    settle().await;
    assert_eq!(producer.estimated_buffered_count().await.expect("buffered"), 3);
    assert!(source_log.lock().demands.is_empty(), "no consumer, no demand");
}

#[test]
fn starting_a_stage_outside_a_tokio_runtime_is_no_runtime() {
    let (source, _) = Source::new(OnDemand::Exact);
    let started = start_producer(source, ProducerOptions::new());
    assert!(matches!(started, Err(Error::NoRuntime)));
}
