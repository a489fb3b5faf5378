//! How stages stop: a finite pipeline drains and every stage stops normally; a failing or
//! panicking callback stops its stage with a reason naming the callback, and peers react per
//! their cancel mode; `terminate` runs with the reason.

mod common;

use common::{failure, settle, within, Collector, Failure, Mapper, OnDemand, Source, SourceMsg};
use weir_core::{
    from_enumerable, start_consumer, start_producer, start_producer_consumer, AskMode, BoxError, CancelMode,
    Consumer, ConsumerOptions, Context, Error, ExitReason, Peer, ProducerConsumerOptions, ProducerOptions,
    SubscribeOptions, SubscriptionId,
};

/// A consumer that panics in the callback it is told to.
struct Fragile {
    panic_in: &'static str,
}

impl Fragile {
    fn maybe_panic(&self, callback: &str) {
        if self.panic_in == callback {
            panic!("{callback} panicked on purpose");
        }
    }
}

impl Consumer for Fragile {
    type Event = u64;
    type Message = ();

    async fn handle_events(
        &mut self,
        _: Vec<u64>,
        _: SubscriptionId,
        _: &mut Context,
    ) -> Result<(), BoxError> {
        self.maybe_panic("handle_events");
        Ok(())
    }

    async fn handle_subscribe(&mut self, _: SubscriptionId, _: &mut Context) -> Result<AskMode, BoxError> {
        self.maybe_panic("handle_subscribe");
        Ok(AskMode::Automatic)
    }

    async fn handle_cancel(
        &mut self,
        _: SubscriptionId,
        _: &ExitReason,
        _: &mut Context,
    ) -> Result<(), BoxError> {
        self.maybe_panic("handle_cancel");
        Ok(())
    }

    async fn handle_info(&mut self, _: (), _: &mut Context) -> Result<(), BoxError> {
        self.maybe_panic("handle_info");
        Ok(())
    }

    async fn terminate(&mut self, _: &ExitReason) {
        self.maybe_panic("terminate");
    }
}

/// Asserts `exit` is a panic of `callback`.
fn assert_panicked_in(exit: &ExitReason, callback: &str) {
    match failure(exit) {
        Error::Panicked { callback: got, message } => {
            assert_eq!(*got, callback);
            assert!(message.contains("panicked"), "{message}");
        }
        other => panic!("expected a panic in {callback}, got {other}"),
    }
}

/// Counts and sums what it consumes.
struct Tally {
    count: common::Shared<(usize, u64)>,
}

impl Consumer for Tally {
    type Event = u64;
    type Message = ();

    async fn handle_events(
        &mut self,
        events: Vec<u64>,
        _: SubscriptionId,
        _: &mut Context,
    ) -> Result<(), BoxError> {
        let mut count = self.count.lock();
        count.0 += events.len();
        count.1 += events.iter().sum::<u64>();
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_finite_chain_processes_every_event_and_every_stage_stops_normally() {
    let producer = start_producer(from_enumerable(1..=1000u64), ProducerOptions::new()).expect("producer");
    let (double, double_log) = Mapper::new(|e| vec![e * 2]);
    let stage = start_producer_consumer(
        double,
        ProducerConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new().max_demand(50)),
    )
    .expect("producer-consumer");
    let count = common::Shared::default();
    let consumer = start_consumer(
        Tally { count: count.clone() },
        ConsumerOptions::new().subscribe_to(&stage, SubscribeOptions::new().max_demand(30)),
    )
    .expect("consumer");

    assert!(matches!(within("the consumer", consumer.wait()).await, ExitReason::Normal));
    assert!(matches!(within("the stage", stage.wait()).await, ExitReason::Normal));
    assert!(matches!(within("the producer", producer.wait()).await, ExitReason::Normal));
    assert_eq!(*count.lock(), (1000, 2 * 500_500));
    assert_eq!(double_log.lock().handled, 1000);
    assert!(matches!(double_log.lock().terminated, Some(ExitReason::Normal)));
}

#[tokio::test(start_paused = true)]
async fn a_finite_producer_with_several_consumers_finishes_them_all() {
    let producer = start_producer(from_enumerable(0..500u64), ProducerOptions::new()).expect("producer");
    let mut stages = Vec::new();
    for _ in 0..3 {
        let (collector, log) = Collector::<u64>::new();
        let consumer = start_consumer(
            collector,
            ConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new().max_demand(7)),
        )
        .expect("consumer");
        stages.push((consumer, log));
    }
    let mut total = 0;
    for (consumer, log) in &stages {
        assert!(matches!(within("a consumer", consumer.wait()).await, ExitReason::Normal));
        total += log.lock().count();
    }
    assert_eq!(total, 500);
}

#[tokio::test(start_paused = true)]
async fn a_panic_in_handle_events_fails_the_consumer_naming_the_callback() {
    let (source, source_log) = Source::new(OnDemand::Exact);
    let producer = start_producer(source.limit(100), ProducerOptions::new()).expect("producer");
    let (collector, log) = Collector::<u64>::new();
    let consumer = start_consumer(
        collector.fail_on(42, Failure::Panic),
        ConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new().max_demand(10)),
    )
    .expect("consumer");

    let exit = within("the consumer", consumer.wait()).await;
    match failure(&exit) {
        error @ Error::Panicked { callback, message } => {
            assert_eq!(*callback, "handle_events");
            assert_eq!(message, "boom at 42");
            assert_eq!(error.to_string(), "handle_events panicked: boom at 42");
        }
        other => panic!("expected a panic, got {other}"),
    }
    assert!(log.lock().events().contains(&42));
    assert!(
        matches!(&log.lock().terminated, Some(reason) if reason.is_failure()),
        "terminate runs after a panic"
    );

    // The producer is told (handle_cancel with the failure) and keeps running.
    settle().await;
    let cancelled = source_log.lock().cancelled.clone();
    assert_eq!(cancelled.len(), 1);
    assert!(matches!(failure(&cancelled[0].1), Error::Panicked { callback: "handle_events", .. }));
    assert!(producer.is_running());
}

#[tokio::test(start_paused = true)]
async fn an_error_from_handle_events_fails_the_consumer_with_the_callback_error() {
    let producer = start_producer(from_enumerable(0..100u64), ProducerOptions::new()).expect("producer");
    let (collector, _) = Collector::<u64>::new();
    let consumer = start_consumer(
        collector.fail_on(7, Failure::Error),
        ConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new().max_demand(5)),
    )
    .expect("consumer");
    let exit = within("the consumer", consumer.wait()).await;
    match failure(&exit) {
        error @ Error::Callback { callback, .. } => {
            assert_eq!(*callback, "handle_events");
            assert_eq!(error.to_string(), "handle_events failed: bad event 7");
        }
        other => panic!("expected a callback error, got {other}"),
    }
    assert_eq!(exit.to_string(), "failed: handle_events failed: bad event 7");
}

#[tokio::test(start_paused = true)]
async fn a_panicking_producer_consumer_fails_and_its_peers_react_per_cancel_mode() {
    let (source, source_log) = Source::new(OnDemand::Exact);
    let producer = start_producer(source.limit(1000), ProducerOptions::new()).expect("producer");
    let (mapper, mapper_log) = Mapper::identity();
    let stage = start_producer_consumer(
        mapper.panic_on(25),
        ProducerConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new().max_demand(10)),
    )
    .expect("producer-consumer");
    let (permanent, _) = Collector::<u64>::new();
    let permanent = start_consumer(
        permanent,
        ConsumerOptions::new().subscribe_to(&stage, SubscribeOptions::new().max_demand(10)),
    )
    .expect("consumer");
    let (temporary, temporary_log) = Collector::<u64>::new();
    let temporary = start_consumer(
        temporary,
        ConsumerOptions::new()
            .subscribe_to(&stage, SubscribeOptions::new().max_demand(10).cancel(CancelMode::Temporary)),
    )
    .expect("consumer");

    let exit = within("the stage", stage.wait()).await;
    assert!(matches!(failure(&exit), Error::Panicked { callback: "handle_events", .. }), "{exit}");
    assert!(matches!(&mapper_log.lock().terminated, Some(reason) if reason.is_failure()));

    let exit = within("the permanent consumer", permanent.wait()).await;
    assert!(matches!(failure(&exit), Error::Panicked { callback: "handle_events", .. }), "{exit}");
    settle().await;
    assert!(temporary.is_running());
    assert!(temporary_log.lock().cancelled.iter().all(|(_, reason)| reason.is_failure()));
    // Upstream, the producer only loses a consumer.
    assert!(producer.is_running());
    let cancelled = source_log.lock().cancelled.clone();
    assert_eq!(cancelled.len(), 1);
    assert!(cancelled[0].1.is_failure());
}

#[tokio::test(start_paused = true)]
async fn stop_shuts_a_stage_down_and_runs_terminate() {
    let (source, source_log) = Source::new(OnDemand::Exact);
    let producer = start_producer(source.limit(10), ProducerOptions::new()).expect("producer");
    let (collector, log) = Collector::<u64>::new();
    let consumer =
        start_consumer(collector, ConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new()))
            .expect("consumer");
    settle().await;

    assert!(matches!(within("the consumer", consumer.stop()).await, ExitReason::Shutdown));
    assert!(matches!(log.lock().terminated, Some(ExitReason::Shutdown)));
    assert!(!consumer.is_running());
    assert!(matches!(
        within("the producer", producer.stop_with(ExitReason::failed("enough"))).await,
        ExitReason::Failed(_)
    ));
    assert!(
        matches!(&source_log.lock().terminated, Some(reason) if reason.to_string() == "failed: stage failed: enough")
    );
}

#[tokio::test(start_paused = true)]
async fn a_producer_consumer_finishes_after_draining_what_it_received() {
    // The producer finishes long before the slow consumer has taken everything.
    let producer = start_producer(from_enumerable(0..100u64), ProducerOptions::new()).expect("producer");
    let (mapper, mapper_log) = Mapper::identity();
    let stage = start_producer_consumer(
        mapper,
        ProducerConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new().max_demand(1000)),
    )
    .expect("producer-consumer");
    settle().await;
    assert!(matches!(within("the producer", producer.wait()).await, ExitReason::Normal));
    assert!(stage.is_running(), "it still holds the events");

    let (collector, log) = Collector::<u64>::new();
    let consumer = start_consumer(
        collector,
        ConsumerOptions::new().subscribe_to(&stage, SubscribeOptions::new().max_demand(3)),
    )
    .expect("consumer");
    assert!(matches!(within("the consumer", consumer.wait()).await, ExitReason::Normal));
    assert!(matches!(within("the stage", stage.wait()).await, ExitReason::Normal));
    assert_eq!(log.lock().events(), (0..100).collect::<Vec<_>>());
    let cancelled = mapper_log.lock().cancelled.clone();
    assert!(cancelled
        .iter()
        .any(|(peer, reason)| matches!(peer, Peer::Producer(_)) && matches!(reason, ExitReason::Normal)));
}

#[tokio::test(start_paused = true)]
async fn a_panic_in_handle_demand_fails_the_producer_naming_the_callback() {
    let (source, _) = Source::new(OnDemand::Panic);
    let producer = start_producer(source, ProducerOptions::new()).expect("producer");
    let (collector, _) = Collector::<u64>::new();
    let consumer =
        start_consumer(collector, ConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new()))
            .expect("consumer");
    assert_panicked_in(&within("the producer", producer.wait()).await, "handle_demand");
    assert_panicked_in(&within("the consumer", consumer.wait()).await, "handle_demand");
}

#[tokio::test(start_paused = true)]
async fn a_panic_in_handle_subscribe_refuses_the_subscription_and_fails_the_consumer() {
    let (source, source_log) = Source::new(OnDemand::Exact);
    let producer = start_producer(source, ProducerOptions::new()).expect("producer");
    let consumer =
        start_consumer(Fragile { panic_in: "handle_subscribe" }, ConsumerOptions::new()).expect("consumer");
    let refused =
        within("the subscription", consumer.consumer().subscribe_to(&producer, SubscribeOptions::new()))
            .await;
    match refused {
        Err(error @ Error::Panicked { callback: "handle_subscribe", .. }) => {
            assert!(error.to_string().contains("panicked on purpose"), "{error}");
        }
        other => panic!("expected the subscription to fail, got {other:?}"),
    }
    assert_panicked_in(&within("the consumer", consumer.wait()).await, "handle_subscribe");
    settle().await;
    assert!(source_log.lock().demands.is_empty());
    assert!(producer.is_running());
}

#[tokio::test(start_paused = true)]
async fn panics_in_handle_info_and_handle_cancel_name_their_callback() {
    let consumer =
        start_consumer(Fragile { panic_in: "handle_info" }, ConsumerOptions::new()).expect("consumer");
    consumer.cast(()).expect("cast");
    assert_panicked_in(&within("the consumer", consumer.wait()).await, "handle_info");

    let producer = start_producer(from_enumerable(0..3u64), ProducerOptions::new()).expect("producer");
    let consumer = start_consumer(
        Fragile { panic_in: "handle_cancel" },
        ConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new().cancel(CancelMode::Temporary)),
    )
    .expect("consumer");
    assert_panicked_in(&within("the consumer", consumer.wait()).await, "handle_cancel");
}

#[tokio::test(start_paused = true)]
async fn a_panic_in_terminate_keeps_the_exit_reason() {
    let consumer =
        start_consumer(Fragile { panic_in: "terminate" }, ConsumerOptions::new()).expect("consumer");
    assert!(matches!(within("the consumer", consumer.stop()).await, ExitReason::Shutdown));
}

#[tokio::test(start_paused = true)]
async fn a_call_to_a_stage_that_panics_while_answering_fails_instead_of_hanging() {
    let (source, _) = Source::new(OnDemand::Nothing);
    let producer = start_producer(source, ProducerOptions::new()).expect("producer");
    let answer = within("the call", producer.call(SourceMsg::PanicOnCall)).await;
    assert!(matches!(answer, Err(Error::NoReply | Error::StageStopped)), "{answer:?}");
    assert_panicked_in(&within("the producer", producer.wait()).await, "handle_info");
}

/// Counts up forever, as fast as asked.
struct Endless(u64);

impl weir_core::Producer for Endless {
    type Event = u64;
    type Message = ();

    async fn handle_demand(&mut self, demand: usize, _ctx: &mut Context) -> Result<Vec<u64>, BoxError> {
        let events = (self.0..self.0 + demand as u64).collect();
        self.0 += demand as u64;
        Ok(events)
    }
}

/// Drops what it gets.
struct Sink;

impl Consumer for Sink {
    type Event = u64;
    type Message = ();

    async fn handle_events(
        &mut self,
        _events: Vec<u64>,
        _: SubscriptionId,
        _: &mut Context,
    ) -> Result<(), BoxError> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_and_messages_get_through_while_events_keep_flowing() -> Result<(), Error> {
    let producer = start_producer(Endless(0), ProducerOptions::new())?;
    let consumer = start_consumer(
        Sink,
        ConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new().max_demand(10).min_demand(5)),
    )?;
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    // The producer's inbox never empties; its mailbox must still be read.
    let count = tokio::time::timeout(std::time::Duration::from_secs(10), producer.estimated_buffered_count())
        .await
        .expect("a busy inbox starves the mailbox");
    assert_eq!(count?, 0);
    let reason = tokio::time::timeout(std::time::Duration::from_secs(10), consumer.stop())
        .await
        .expect("stop hangs while events keep arriving");
    assert!(matches!(reason, ExitReason::Shutdown));
    producer.stop().await;
    Ok(())
}

/// Emits more than asked, and panics when the buffer overflows.
struct Overflowing;

impl weir_core::Producer for Overflowing {
    type Event = u64;
    type Message = ();

    async fn handle_demand(&mut self, _demand: usize, _ctx: &mut Context) -> Result<Vec<u64>, BoxError> {
        Ok((0..100).collect())
    }

    fn handle_discarded(&mut self, _discarded: usize, _buffered: usize) -> bool {
        panic!("handle_discarded panicked on purpose")
    }
}

#[tokio::test(start_paused = true)]
async fn a_panic_outside_the_async_callbacks_still_tells_the_peers() -> Result<(), Error> {
    let producer = start_producer(Overflowing, ProducerOptions::new().buffer_size(10))?;
    let consumer = start_consumer(
        Sink,
        ConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new().max_demand(5)),
    )?;
    let reason = within("the consumer", consumer.wait()).await;
    assert!(reason.is_failure(), "the consumer sees its producer fail: {reason}");
    assert!(within("the producer", producer.wait()).await.is_failure());
    Ok(())
}

#[tokio::test]
async fn a_producer_kept_busy_by_a_selector_still_stops() -> Result<(), Error> {
    let producer = start_producer(
        Endless(0),
        ProducerOptions::new().dispatcher(weir_core::dispatcher::BroadcastDispatcher::new()),
    )?;
    let consumer = start_consumer(
        Sink,
        ConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new().selector(|_: &u64| false)),
    )?;
    tokio::task::yield_now().await;
    // Every event is filtered out and asked for again: the producer never runs out of work.
    assert!(matches!(within("the producer", producer.stop()).await, ExitReason::Shutdown));
    within("the consumer", consumer.wait()).await;
    Ok(())
}
