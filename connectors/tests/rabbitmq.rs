//! The RabbitMQ producer against the broker on loopback (`AMQP_URL`, default
//! `amqp://guest:guest@127.0.0.1:5672/%2f`; `scripts/services.sh` starts it). Without a
//! broker these tests fail: they never skip. Some tests look at the broker's side with
//! `rabbitmqctl` (queue counters, consumers; closing a connection as the broker would), which
//! must reach the broker's node (as root on the broker's host).
#![cfg(feature = "rabbitmq")]
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use lapin::options::QueueDeclareOptions;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use support::rabbitmq::{
    close_connections_of, consumers, delete, publish, queue_with, queue_with_properties, ready, settled,
    stats, stats_until, take_all, url,
};
use weir_broadway::{
    AckAction, AckOptions, BatchHandler, BatchInfo, BatcherOptions, BoxError, Handler, Message, Metadata,
    MetadataValue, Pipeline, ProcessorOptions, ProducerOptions,
};
use weir_connectors::rabbitmq::{Declare, RabbitMqOptions, RabbitMqProducer};
use weir_connectors::Backoff;

/// One `handle_message` call.
#[derive(Debug, Clone)]
struct Seen {
    id: u64,
    redelivered: bool,
    metadata: Metadata,
}

/// Parses ids; fails those in `fail`; for those in `reject`, tries `configure_ack` with an
/// action RabbitMQ does not have (Noop) and then sets Reject on failure; sleeps `delay` per
/// message. Records every `handle_message` call, and what each batch held.
#[derive(Default)]
struct Ids {
    fail: Vec<u64>,
    reject: Vec<u64>,
    delay: Duration,
    seen: Mutex<Vec<Seen>>,
    configured: Mutex<Vec<(u64, Result<(), String>)>>,
    handled: Mutex<BTreeMap<u64, usize>>,
}

impl Ids {
    /// How many times `handle_message` saw each id.
    fn seen_counts(&self) -> BTreeMap<u64, usize> {
        let mut counts = BTreeMap::new();
        for seen in self.seen.lock().unwrap().iter() {
            *counts.entry(seen.id).or_default() += 1;
        }
        counts
    }

    /// How many times each id was in a batch (handled successfully).
    fn handled(&self) -> BTreeMap<u64, usize> {
        self.handled.lock().unwrap().clone()
    }
}

impl Handler for Ids {
    type Data = Vec<u8>;
    type Output = u64;

    async fn handle_message(&self, message: &mut Message<Vec<u8>>) -> Result<u64, BoxError> {
        let id: u64 = std::str::from_utf8(message.data())?.parse()?;
        self.seen.lock().unwrap().push(Seen {
            id,
            redelivered: message.ack_data().redelivered,
            metadata: message.metadata().clone(),
        });
        if self.reject.contains(&id) {
            let noop = message.configure_ack(AckOptions::new().on_failure(AckAction::Noop));
            self.configured.lock().unwrap().push((id, noop.map_err(|e| e.to_string())));
            message.configure_ack(AckOptions::new().on_failure(AckAction::Reject))?;
        }
        if self.fail.contains(&id) {
            message.fail("listed");
        }
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        Ok(id)
    }
}

impl BatchHandler for Ids {
    async fn handle_batch(&self, messages: &mut [Message<u64>], _: &BatchInfo) -> Result<(), BoxError> {
        let mut handled = self.handled.lock().unwrap();
        for message in messages.iter() {
            *handled.entry(*message.data()).or_default() += 1;
        }
        Ok(())
    }
}

/// Waits (at most 10 s) until `done` holds of the handler.
async fn wait_for(pipeline: &Pipeline<Ids>, what: &str, done: impl Fn(&Ids) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done(pipeline.handler()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}: {} ids handled, {} calls",
            pipeline.handler().handled.lock().unwrap().len(),
            pipeline.handler().seen.lock().unwrap().len()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One producer on `options`, 2 processors, batches of 10 (20 ms timeout).
async fn start(handler: Ids, options: RabbitMqOptions) -> Pipeline<Ids> {
    Pipeline::builder("rabbit", handler)
        .producer(RabbitMqProducer::factory(options).unwrap(), ProducerOptions::new())
        .processors(ProcessorOptions::new().concurrency(2))
        .batcher("default", BatcherOptions::new().batch_size(10).batch_timeout(Duration::from_millis(20)))
        .start()
        .await
        .unwrap()
}

async fn run_until(pipeline: &Pipeline<Ids>, n: usize) {
    wait_for(pipeline, &format!("{n} ids handled"), |ids| ids.handled.lock().unwrap().len() >= n).await;
}

/// A short backoff: the reconnection tests must not wait the default second.
fn short_backoff() -> Backoff {
    Backoff::exponential(Duration::from_millis(50), Duration::from_millis(200))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_is_handled_once_and_acknowledged() {
    let n = 2_000;
    let queue = queue_with("all", 0..n).await;
    let producer =
        RabbitMqProducer::factory(RabbitMqOptions::new(url(), queue.clone()).prefetch_count(200)).unwrap();
    let pipeline = Pipeline::builder("rabbit", Ids::default())
        .producer(producer, ProducerOptions::new().concurrency(2))
        .processors(ProcessorOptions::new().concurrency(2).max_demand(50))
        .batcher("default", BatcherOptions::new().batch_size(100).batch_timeout(Duration::from_millis(50)))
        .start()
        .await
        .unwrap();
    run_until(&pipeline, n as usize).await;
    let report = pipeline.stop().await;
    assert!(report.graceful, "{report:?}");
    let handled = pipeline.handler().handled();
    assert_eq!(handled.keys().copied().collect::<Vec<_>>(), (0..n).collect::<Vec<_>>());
    assert!(handled.values().all(|c| *c == 1), "each handled once");
    assert_eq!(settled(&queue).await, 0, "nothing left, nothing unacknowledged");
    delete(&queue).await;
}

/// `stop` returns once the last acknowledgements are sent: a program that exits right
/// after it (its runtime dropped, every task cancelled) gets nothing it handled redelivered.
#[test]
fn a_program_exiting_right_after_stop_gets_nothing_redelivered() {
    let n = 2_000;
    let test = tokio::runtime::Runtime::new().unwrap();
    let queue = test.block_on(queue_with("exit-after-stop", 0..n));
    let program = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let handled = program.block_on(async {
        let options = RabbitMqOptions::new(url(), queue.clone()).prefetch_count(100);
        let pipeline = start(Ids { delay: Duration::from_millis(1), ..Ids::default() }, options).await;
        run_until(&pipeline, 300).await;
        let report = pipeline.stop().await;
        assert!(report.graceful, "{report:?}");
        pipeline.handler().handled()
    });
    drop(program);
    let left: BTreeSet<u64> = test.block_on(take_all(&queue)).into_iter().collect();
    let redelivered: Vec<&u64> = handled.keys().filter(|id| left.contains(id)).collect();
    assert!(redelivered.is_empty(), "handled, acknowledged, and back in the queue: {redelivered:?}");
    assert_eq!(handled.len() + left.len(), n as usize, "every message handled or left in the queue");
    test.block_on(delete(&queue));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_messages_are_rejected_or_requeued_per_policy() {
    for (action, expect_left) in [(AckAction::Reject, 0), (AckAction::RejectAndRequeue, 3)] {
        let queue = queue_with(&format!("fail-{action:?}"), 0..100).await;
        let options =
            RabbitMqOptions::new(url(), queue.clone()).on_failure(action).declare(Declare::default());
        let handler = Ids { fail: vec![3, 50, 99], ..Ids::default() };
        let pipeline = start(handler, options).await;
        run_until(&pipeline, 97).await;
        // A requeued message comes back (and fails again): stop, then count what is left.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let report = pipeline.stop().await;
        assert!(report.graceful);
        assert_eq!(settled(&queue).await, u64::from(expect_left), "{action:?}");
        assert_eq!(ready(&queue).await, expect_left, "{action:?}");
        delete(&queue).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reject_and_requeue_once_delivers_a_failing_message_twice() {
    let n = 50;
    let queue = queue_with("requeue-once", 0..n).await;
    let options = RabbitMqOptions::new(url(), queue.clone())
        .on_failure(AckAction::RejectAndRequeueOnce)
        .metadata(["redelivered"]);
    let pipeline = start(Ids { fail: vec![7], ..Ids::default() }, options).await;
    wait_for(&pipeline, "the others handled and 7 seen twice", |ids| {
        ids.handled.lock().unwrap().len() == n as usize - 1 && ids.seen_counts().get(&7) == Some(&2)
    })
    .await;
    // A third delivery would come now.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let report = pipeline.stop().await;
    assert!(report.graceful, "{report:?}");
    let ids = pipeline.handler();
    let sevens: Vec<Seen> = ids.seen.lock().unwrap().iter().filter(|s| s.id == 7).cloned().collect();
    assert_eq!(sevens.len(), 2, "requeued once, then rejected: {sevens:?}");
    assert_eq!(sevens.iter().map(|s| s.redelivered).collect::<Vec<_>>(), [false, true]);
    assert_eq!(
        sevens.iter().map(|s| s.metadata.get("redelivered").cloned()).collect::<Vec<_>>(),
        [Some(MetadataValue::Bool(false)), Some(MetadataValue::Bool(true))]
    );
    let seen = ids.seen_counts();
    assert!(seen.iter().all(|(id, count)| *count == if *id == 7 { 2 } else { 1 }), "{seen:?}");
    let handled = ids.handled();
    assert_eq!(handled.keys().copied().collect::<Vec<_>>(), (0..n).filter(|id| *id != 7).collect::<Vec<_>>());
    assert!(handled.values().all(|c| *c == 1));
    assert_eq!(settled(&queue).await, 0, "7 was rejected the second time, not requeued");
    delete(&queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configure_ack_overrides_the_producers_failure_action() {
    let n = 50;
    let queue = queue_with("configure-ack", 0..n).await;
    // The producer requeues failed messages; 3 is set to be rejected instead, 7 is not.
    let options = RabbitMqOptions::new(url(), queue.clone()).on_failure(AckAction::RejectAndRequeue);
    let handler = Ids { fail: vec![3, 7], reject: vec![3], ..Ids::default() };
    let pipeline = start(handler, options).await;
    wait_for(&pipeline, "the others handled and 7 requeued twice", |ids| {
        ids.handled.lock().unwrap().len() == n as usize - 2 && ids.seen_counts().get(&7) >= Some(&3)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let report = pipeline.stop().await;
    assert!(report.graceful, "{report:?}");
    let ids = pipeline.handler();
    assert_eq!(ids.seen_counts().get(&3), Some(&1), "3 was rejected, not requeued");
    assert_eq!(
        *ids.configured.lock().unwrap(),
        [(
            3,
            Err("on_failure (Noop) must be Ack, Reject, RejectAndRequeue or RejectAndRequeueOnce for RabbitMQ"
                .to_owned())
        )],
        "configure_ack refuses Noop"
    );
    let handled = ids.handled();
    assert_eq!(
        handled.keys().copied().collect::<Vec<_>>(),
        (0..n).filter(|id| ![3, 7].contains(id)).collect::<Vec<_>>()
    );
    assert!(handled.values().all(|c| *c == 1));
    assert_eq!(settled(&queue).await, 1, "7 went back to the queue");
    assert_eq!(take_all(&queue).await, [7]);
    delete(&queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_is_copied_from_deliveries() {
    let n = 20;
    let queue = queue_with_properties("metadata", 0..n, |id| {
        let mut headers = FieldTable::default();
        headers.insert("tenant".into(), AMQPValue::LongString("acme".into()));
        headers.insert("id".into(), AMQPValue::LongLongInt(i64::try_from(id).unwrap()));
        BasicProperties::default()
            .with_message_id(format!("m{id}").into())
            .with_content_type("application/json".into())
            .with_headers(headers)
    })
    .await;
    let names = ["routing_key", "headers", "message_id", "redelivered", "delivery_tag", "content_type"];
    let options = RabbitMqOptions::new(url(), queue.clone()).metadata(names);
    let pipeline = start(Ids::default(), options).await;
    run_until(&pipeline, n as usize).await;
    let report = pipeline.stop().await;
    assert!(report.graceful, "{report:?}");
    let seen = pipeline.handler().seen.lock().unwrap().clone();
    assert_eq!(seen.len(), n as usize);
    let mut tags = BTreeSet::new();
    for Seen { id, metadata, .. } in &seen {
        let keys: Vec<&str> = metadata.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, names, "exactly the names asked for, in order");
        let get = |name: &str| metadata.get(name).unwrap().clone();
        assert_eq!(
            get("routing_key"),
            MetadataValue::Str(queue.clone()),
            "the default exchange routes by queue"
        );
        assert_eq!(get("message_id"), MetadataValue::Str(format!("m{id}")));
        assert_eq!(get("content_type"), MetadataValue::Str("application/json".into()));
        assert_eq!(get("redelivered"), MetadataValue::Bool(false));
        tags.insert(get("delivery_tag").as_u64().unwrap());
        let MetadataValue::Map(headers) = get("headers") else { panic!("headers: {metadata:?}") };
        let mut headers: BTreeMap<String, MetadataValue> = headers.into_iter().collect();
        assert_eq!(headers.remove("tenant"), Some(MetadataValue::Str("acme".into())));
        assert_eq!(headers.remove("id"), Some(MetadataValue::Int(i64::try_from(*id).unwrap())));
        assert!(headers.is_empty(), "{headers:?}");
    }
    assert_eq!(tags, (1..=n).collect(), "one channel: delivery tags 1..=n");
    assert_eq!(settled(&queue).await, 0);
    delete(&queue).await;

    // An unknown name is refused up front, by `validate` and so by `factory`.
    let options = RabbitMqOptions::new(url(), "q").metadata(["routing_key", "colour"]);
    let expected = "rabbitmq.metadata (\"colour\") must be one of delivery_tag, redelivered, exchange, \
                    routing_key, headers, content_type, content_encoding, correlation_id, message_id, \
                    timestamp, type, app_id, reply_to";
    assert_eq!(options.validate().unwrap_err().to_string(), expected);
    assert_eq!(RabbitMqProducer::factory(options).err().unwrap().to_string(), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_when_the_broker_closes_the_connection() {
    let n = 4_000;
    let queue = queue_with("reconnect", 0..n).await;
    let options = RabbitMqOptions::new(url(), queue.clone()).prefetch_count(20).backoff(short_backoff());
    let handler = Ids { delay: Duration::from_millis(1), ..Ids::default() };
    let pipeline = start(handler, options).await;
    run_until(&pipeline, 200).await;
    assert_eq!(close_connections_of(&queue).await, 1, "the producer's connection");
    let handled_then = pipeline.handler().handled.lock().unwrap().len();
    assert!(handled_then < n as usize, "closed mid-stream ({handled_then} handled)");
    run_until(&pipeline, n as usize).await;
    // The duplicates (delivered on the dead channel, redelivered on the new one) settle too.
    let stats = stats_until(&queue, "an empty queue", |s| s.ready == 0 && s.unacked == 0).await;
    assert_eq!(stats.consumers, 1, "consuming again");
    assert!(pipeline.is_running());
    let report = pipeline.stop().await;
    assert!(report.graceful, "{report:?}");
    let ids = pipeline.handler();
    let handled = ids.handled();
    assert_eq!(handled.keys().copied().collect::<Vec<_>>(), (0..n).collect::<Vec<_>>(), "at least once");
    let redelivered = ids.seen.lock().unwrap().iter().filter(|s| s.redelivered).count();
    assert!(redelivered > 0, "what the dead channel had in flight came again");
    assert_eq!(settled(&queue).await, 0, "nothing left, nothing unacknowledged");
    delete(&queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_the_queue_being_deleted_and_declared_again() {
    let queue = queue_with("deleted", 0..100).await;
    let options =
        RabbitMqOptions::new(url(), queue.clone()).declare(Declare::default()).backoff(short_backoff());
    let pipeline = start(Ids::default(), options).await;
    run_until(&pipeline, 100).await;
    // Deleting the queue cancels its consumer (basic.cancel from the broker).
    delete(&queue).await;
    // Publish into the queue declared again (by the producer's reconnection, or here
    // first: declarations are idempotent).
    let connection = Connection::connect(&url(), ConnectionProperties::default()).await.unwrap();
    let channel = connection.create_channel().await.unwrap();
    channel
        .queue_declare(queue.as_str().into(), QueueDeclareOptions::default(), FieldTable::default())
        .await
        .unwrap();
    connection.close(200, "declared".into()).await.unwrap();
    publish(&queue, 100..200, |_| BasicProperties::default()).await;
    run_until(&pipeline, 200).await;
    assert!(pipeline.is_running());
    let stats = stats_until(&queue, "an empty queue", |s| s.ready == 0 && s.unacked == 0).await;
    assert_eq!(stats.consumers, 1, "consuming the new queue");
    let report = pipeline.stop().await;
    assert!(report.graceful, "{report:?}");
    assert_eq!(report.error, None);
    let handled = pipeline.handler().handled();
    assert_eq!(handled.keys().copied().collect::<Vec<_>>(), (0..200).collect::<Vec<_>>());
    assert!(handled.values().all(|c| *c == 1), "nothing was in flight when the queue went");
    assert_eq!(settled(&queue).await, 0);
    delete(&queue).await;
}

/// Stops while messages flow, with each failure policy (none of these messages fails):
/// what was handled was handled once and acknowledged, the rest is back in the queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_mid_stream_is_graceful_and_loses_nothing() {
    let n = 2_000;
    for on_failure in [AckAction::RejectAndRequeue, AckAction::Reject] {
        let queue = queue_with(&format!("stop-{on_failure:?}"), 0..n).await;
        let options = RabbitMqOptions::new(url(), queue.clone()).prefetch_count(20).on_failure(on_failure);
        let handler = Ids { delay: Duration::from_millis(1), ..Ids::default() };
        let pipeline = start(handler, options).await;
        run_until(&pipeline, 300).await;
        let report = pipeline.stop().await;
        assert!(report.graceful, "{on_failure:?}: {report:?}");
        assert_eq!(report.abandoned, 0);
        let handled = pipeline.handler().handled();
        assert!(handled.values().all(|c| *c == 1), "{on_failure:?}: each handled once");
        let left_count = settled(&queue).await;
        let left = take_all(&queue).await;
        assert_eq!(left.len() as u64, left_count);
        let left_set: BTreeSet<u64> = left.iter().copied().collect();
        assert_eq!(left_set.len(), left.len(), "{on_failure:?}: no id twice in the queue");
        assert!(!left.is_empty(), "{on_failure:?}: stopped mid-stream");
        let handled_set: BTreeSet<u64> = handled.keys().copied().collect();
        assert!(
            handled_set.is_disjoint(&left_set),
            "{on_failure:?}: handled and back in the queue: {:?}",
            handled_set.intersection(&left_set).collect::<Vec<_>>()
        );
        let all: BTreeSet<u64> = handled_set.union(&left_set).copied().collect();
        let lost: Vec<u64> = (0..n).filter(|id| !all.contains(id)).collect();
        assert!(lost.is_empty(), "{on_failure:?}: lost {} ids: {lost:?}", lost.len());
        delete(&queue).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_producers_consume_on_two_channels() {
    let n = 500;
    let queue = queue_with("two-channels", 0..n).await;
    let options = RabbitMqOptions::new(url(), queue.clone()).prefetch_count(10).metadata(["delivery_tag"]);
    let handler = Ids { delay: Duration::from_millis(1), ..Ids::default() };
    let pipeline = Pipeline::builder("two", handler)
        .producer(RabbitMqProducer::factory(options).unwrap(), ProducerOptions::new().concurrency(2))
        .processors(ProcessorOptions::new().concurrency(2))
        .batcher("default", BatcherOptions::new().batch_size(10).batch_timeout(Duration::from_millis(20)))
        .start()
        .await
        .unwrap();
    run_until(&pipeline, n as usize).await;
    // Idle now, still consuming: one consumer per producer, each on its own channel.
    let consumers = consumers(&queue).await;
    let channels: BTreeSet<&String> = consumers.iter().map(|(channel, _)| channel).collect();
    assert_eq!(channels.len(), 2, "{consumers:?}");
    let pid = std::process::id();
    let tags: BTreeSet<String> = consumers.iter().map(|(_, tag)| tag.clone()).collect();
    assert_eq!(tags, [format!("two.producer_0-{pid}"), format!("two.producer_1-{pid}")].into());
    assert_eq!(stats(&queue).await.consumers, 2);
    let report = pipeline.stop().await;
    assert!(report.graceful, "{report:?}");
    // Delivery tags count per channel: both channels delivered their first message.
    let firsts = pipeline
        .handler()
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.metadata.get("delivery_tag").and_then(MetadataValue::as_u64) == Some(1))
        .count();
    assert_eq!(firsts, 2, "both producers delivered");
    let handled = pipeline.handler().handled();
    assert_eq!(handled.len(), n as usize);
    assert!(handled.values().all(|c| *c == 1));
    assert_eq!(settled(&queue).await, 0);
    delete(&queue).await;
}
