//! Demand modes: `DemandMode::Accumulate` holds demand and emitted events until the producer
//! is switched to `Forward`; the mode can be queried and switched from a handle or a callback.

mod common;

use common::{settle, within, Collector, CollectorMsg, Mapper, OnDemand, Source, SourceMsg};
use weir_core::{
    start_consumer, start_producer, start_producer_consumer, ConsumerOptions, DemandMode,
    ProducerConsumerOptions, ProducerOptions, SubscribeOptions,
};

fn range(from: u64, to: u64) -> Vec<u64> {
    (from..to).collect()
}

#[tokio::test(start_paused = true)]
async fn accumulate_holds_demand_until_forward() {
    let (source, source_log) = Source::new(OnDemand::Exact);
    let producer = start_producer(source.limit(20), ProducerOptions::new().demand(DemandMode::Accumulate))
        .expect("producer");
    let mut consumers = Vec::new();
    let mut logs = Vec::new();
    for _ in 0..2 {
        let (collector, log) = Collector::<u64>::new();
        let consumer = start_consumer(
            collector,
            ConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new().max_demand(10)),
        )
        .expect("consumer");
        consumers.push(consumer);
        logs.push(log);
    }
    settle().await;
    assert!(source_log.lock().demands.is_empty(), "handle_demand is not called while accumulating");
    assert!(logs.iter().all(|log| log.lock().count() == 0));
    assert_eq!(within("the mode", producer.demand_mode()).await.expect("mode"), DemandMode::Accumulate);

    producer.set_demand_mode(DemandMode::Forward).expect("forward");
    settle().await;
    assert_eq!(within("the mode", producer.demand_mode()).await.expect("mode"), DemandMode::Forward);
    // Both consumers' demand arrives at once.
    assert_eq!(source_log.lock().demands.first(), Some(&20));
    let mut all: Vec<u64> = logs.iter().flat_map(|log| log.lock().events()).collect();
    all.sort_unstable();
    assert_eq!(all, range(0, 20));
}

#[tokio::test(start_paused = true)]
async fn accumulate_holds_emitted_events_until_forward() {
    let (source, source_log) = Source::new(OnDemand::Nothing);
    let producer =
        start_producer(source, ProducerOptions::new().demand(DemandMode::Accumulate)).expect("producer");
    let (collector, log) = Collector::<u64>::new();
    let _consumer = start_consumer(
        collector,
        ConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new().max_demand(10)),
    )
    .expect("consumer");
    settle().await;

    // The consumer has demand, yet events emitted while accumulating stay in the buffer.
    producer.cast(SourceMsg::Push(range(0, 5))).expect("push");
    settle().await;
    assert_eq!(log.lock().count(), 0);
    assert_eq!(producer.estimated_buffered_count().await.expect("buffered"), 5);

    producer.set_demand_mode(DemandMode::Forward).expect("forward");
    settle().await;
    assert_eq!(log.lock().events(), range(0, 5));
    assert_eq!(producer.estimated_buffered_count().await.expect("buffered"), 0);
    // The buffer served 5 of the 10 accumulated and handle_demand got the other 5; then the
    // consumer, down to min_demand 5, asked 5 more.
    assert_eq!(source_log.lock().demands, vec![5, 5]);
}

#[tokio::test(start_paused = true)]
async fn switching_back_to_accumulate_holds_demand_again() {
    let (source, source_log) = Source::new(OnDemand::Exact);
    let producer = start_producer(source, ProducerOptions::new()).expect("producer");
    assert_eq!(within("the mode", producer.demand_mode()).await.expect("mode"), DemandMode::Forward);
    let (collector, log) = Collector::<u64>::manual(5);
    let consumer =
        start_consumer(collector, ConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new()))
            .expect("consumer");
    settle().await;
    assert_eq!(source_log.lock().demands, vec![5]);

    producer.set_demand_mode(DemandMode::Accumulate).expect("accumulate");
    consumer.cast(CollectorMsg::Ask(3)).expect("ask");
    consumer.cast(CollectorMsg::Ask(4)).expect("ask");
    settle().await;
    assert_eq!(source_log.lock().demands, vec![5]);
    assert_eq!(log.lock().count(), 5);

    producer.set_demand_mode(DemandMode::Forward).expect("forward");
    settle().await;
    assert_eq!(source_log.lock().demands, vec![5, 7]);
    assert_eq!(log.lock().events(), range(0, 12));
}

#[tokio::test(start_paused = true)]
async fn a_callback_can_switch_the_demand_mode() {
    let (source, source_log) = Source::new(OnDemand::Exact);
    let producer =
        start_producer(source, ProducerOptions::new().demand(DemandMode::Accumulate)).expect("producer");
    let (collector, log) = Collector::<u64>::manual(4);
    let _consumer =
        start_consumer(collector, ConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new()))
            .expect("consumer");
    settle().await;
    let seen = within("the mode", producer.call(SourceMsg::Mode)).await.expect("mode");
    assert_eq!(seen, DemandMode::Accumulate, "the callback context sees the mode");

    producer.cast(SourceMsg::SetMode(DemandMode::Forward)).expect("set mode");
    settle().await;
    assert_eq!(within("the mode", producer.demand_mode()).await.expect("mode"), DemandMode::Forward);
    assert_eq!(within("the mode", producer.call(SourceMsg::Mode)).await.expect("mode"), DemandMode::Forward);
    assert_eq!(source_log.lock().demands, vec![4]);
    assert_eq!(log.lock().events(), range(0, 4));
}

#[tokio::test(start_paused = true)]
async fn the_mode_set_through_a_handle_is_seen_by_callbacks() {
    let (source, _) = Source::new(OnDemand::Nothing);
    let producer = start_producer(source, ProducerOptions::new()).expect("producer");
    producer.set_demand_mode(DemandMode::Accumulate).expect("accumulate");
    assert_eq!(
        within("the mode", producer.call(SourceMsg::Mode)).await.expect("mode"),
        DemandMode::Accumulate
    );
}

#[tokio::test(start_paused = true)]
async fn a_producer_consumer_accumulating_holds_its_events_until_forward() {
    let (source, _) = Source::new(OnDemand::Exact);
    let producer = start_producer(source.limit(10), ProducerOptions::new()).expect("producer");
    let (mapper, mapper_log) = Mapper::identity();
    let stage = start_producer_consumer(
        mapper,
        ProducerConsumerOptions::new()
            .demand(DemandMode::Accumulate)
            .subscribe_to(&producer, SubscribeOptions::new().max_demand(10)),
    )
    .expect("producer-consumer");
    let (collector, log) = Collector::<u64>::new();
    let _consumer =
        start_consumer(collector, ConsumerOptions::new().subscribe_to(&stage, SubscribeOptions::new()))
            .expect("consumer");
    settle().await;
    assert_eq!(within("the mode", stage.demand_mode()).await.expect("mode"), DemandMode::Accumulate);
    assert_eq!(mapper_log.lock().handled, 0, "events wait while accumulating");
    assert_eq!(log.lock().count(), 0);

    stage.set_demand_mode(DemandMode::Forward).expect("forward");
    settle().await;
    assert_eq!(log.lock().events(), range(0, 10));
}
