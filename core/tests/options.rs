//! Invalid options are refused where they are given, with an error naming the option, the
//! value and the rule.

mod common;

use common::{settle, within, Collector, Mapper, OnDemand, Source};
use weir_core::dispatcher::PartitionDispatcher;
use weir_core::{
    start_consumer, start_producer, start_producer_consumer, stream, BufferSize, ConsumerOptions, Error,
    ProducerConsumerOptions, ProducerOptions, SubscribeOptions,
};

/// Asserts `error` is an invalid `option` with `value`, displayed as `display`.
fn assert_invalid(error: &Error, option: &str, value: &str, display: &str) {
    match error {
        Error::InvalidOption { option: got, value: got_value, .. } => {
            assert_eq!(*got, option);
            assert_eq!(got_value, value);
        }
        other => panic!("expected InvalidOption for {option}, got {other:?}"),
    }
    assert_eq!(error.to_string(), display);
}

fn producer() -> weir_core::ProducerHandle<u64, common::SourceMsg> {
    let (source, _) = Source::new(OnDemand::Exact);
    start_producer(source, ProducerOptions::new()).expect("producer")
}

#[tokio::test(start_paused = true)]
async fn max_demand_zero_is_invalid() {
    let producer = producer();
    let (collector, _) = Collector::<u64>::new();
    let error = start_consumer(
        collector,
        ConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new().max_demand(0)),
    )
    .err()
    .expect("max_demand 0 is refused");
    assert_invalid(&error, "max_demand", "0", "max_demand (0) must be greater than 0");
}

#[tokio::test(start_paused = true)]
async fn min_demand_equal_to_max_demand_is_invalid() {
    let producer = producer();
    let (collector, _) = Collector::<u64>::new();
    let error = start_consumer(
        collector,
        ConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new().max_demand(10).min_demand(10)),
    )
    .err()
    .expect("min_demand 10 is refused");
    assert_invalid(&error, "min_demand", "10", "min_demand (10) must be less than max_demand (10)");
}

#[tokio::test(start_paused = true)]
async fn min_demand_above_max_demand_is_invalid() {
    let error = SubscribeOptions::<u64>::new().max_demand(5).min_demand(8).validate().expect_err("refused");
    assert_invalid(&error, "min_demand", "8", "min_demand (8) must be less than max_demand (5)");
    // The default min_demand follows max_demand, so lowering max_demand alone is fine.
    assert!(SubscribeOptions::<u64>::new().max_demand(1).validate().is_ok());
    assert_eq!(SubscribeOptions::<u64>::new().max_demand(1).demand(), (1, 0));
}

#[tokio::test(start_paused = true)]
async fn buffer_size_zero_is_invalid_for_producers_and_producer_consumers() {
    let (source, _) = Source::new(OnDemand::Exact);
    let error = start_producer(source, ProducerOptions::new().buffer_size(0)).err().expect("refused");
    assert_invalid(
        &error,
        "buffer_size",
        "0",
        "buffer_size (0) must be greater than 0 (use BufferSize::Unbounded for no bound)",
    );

    let (mapper, _) = Mapper::identity();
    let error =
        start_producer_consumer(mapper, ProducerConsumerOptions::new().buffer_size(BufferSize::Bounded(0)))
            .err()
            .expect("refused");
    assert!(matches!(error, Error::InvalidOption { option: "buffer_size", .. }), "{error:?}");
}

#[tokio::test(start_paused = true)]
async fn a_producer_consumer_refuses_invalid_subscription_options() {
    let producer = producer();
    let (mapper, _) = Mapper::identity();
    let error = start_producer_consumer(
        mapper,
        ProducerConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new().max_demand(0)),
    )
    .err()
    .expect("refused");
    assert_invalid(&error, "max_demand", "0", "max_demand (0) must be greater than 0");
}

#[tokio::test(start_paused = true)]
async fn runtime_subscriptions_refuse_invalid_options_and_the_consumer_keeps_running() {
    let producer = producer();
    let (collector, log) = Collector::<u64>::new();
    let consumer = start_consumer(collector, ConsumerOptions::new()).expect("consumer");

    let error = within(
        "the subscription",
        consumer.consumer().subscribe_to(&producer, SubscribeOptions::new().max_demand(4).min_demand(4)),
    )
    .await
    .expect_err("refused");
    assert_invalid(&error, "min_demand", "4", "min_demand (4) must be less than max_demand (4)");
    let error = consumer
        .consumer()
        .async_subscribe(&producer, SubscribeOptions::new().max_demand(0))
        .expect_err("refused");
    assert_invalid(&error, "max_demand", "0", "max_demand (0) must be greater than 0");

    settle().await;
    assert!(consumer.is_running());
    assert!(log.lock().subscribed.is_empty(), "no subscription was attempted");
}

#[tokio::test(start_paused = true)]
async fn stream_refuses_invalid_options() {
    let producer = producer();
    let error = stream(&producer, SubscribeOptions::new().max_demand(0)).err().expect("refused");
    assert_invalid(&error, "max_demand", "0", "max_demand (0) must be greater than 0");
}

#[test]
fn a_partition_dispatcher_needs_partitions_with_distinct_names() {
    let error = PartitionDispatcher::<u64>::new(0, |e| Some((e, 0))).err().expect("refused");
    assert_invalid(&error, "partitions", "0", "partitions (0) must be greater than 0");
    let error = PartitionDispatcher::named(["a", "b", "a"], |e: u64| Some((e, "a"))).err().expect("refused");
    assert!(matches!(error, Error::InvalidOption { option: "partitions", .. }), "{error:?}");
    assert!(error.to_string().contains("\"a\""), "{error}");
}
