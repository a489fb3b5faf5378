//! The RabbitMQ producer against the broker on loopback (`AMQP_URL`, default
//! `amqp://guest:guest@127.0.0.1:5672/%2f`; `scripts/services.sh` starts it). Without a
//! broker these tests fail: they never skip. Some tests look at the broker's side with
//! `rabbitmqctl` (queue counters, consumers; closing a connection as the broker would), which
//! must reach the broker's node (as root on the broker's host).
#![cfg(feature = "rabbitmq")]
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use lapin::options::{BasicGetOptions, BasicPublishOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use weir_broadway::{
    AckAction, AckOptions, BatchHandler, BatchInfo, BatcherOptions, BoxError, Handler, Message, Metadata,
    MetadataValue, Pipeline, ProcessorOptions, ProducerOptions,
};
use weir_connectors::rabbitmq::{Declare, RabbitMqOptions, RabbitMqProducer};
use weir_connectors::Backoff;

fn url() -> String {
    std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// The virtual host of [`url`], for `rabbitmqctl -p`.
fn vhost() -> String {
    let url = url();
    let path = url.split_once("://").and_then(|(_, rest)| rest.split_once('/')).map_or("", |(_, path)| path);
    if path.is_empty() {
        return "/".into();
    }
    // Percent-decoding, e.g. `%2f` for the default vhost `/`.
    let mut bytes = Vec::new();
    let mut rest = path.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        match (b, tail) {
            (b'%', [h, l, tail @ ..]) => {
                bytes.push(u8::from_str_radix(std::str::from_utf8(&[*h, *l]).unwrap(), 16).unwrap());
                rest = tail;
            }
            _ => {
                bytes.push(b);
                rest = tail;
            }
        }
    }
    String::from_utf8(bytes).unwrap()
}

/// A name for this test's queue, unique to the test and the process.
fn queue_name(test: &str) -> String {
    format!("weir-{test}-{}", std::process::id())
}

/// Publishes `ids` as text messages to `queue` (through the default exchange), each with
/// the properties `properties` gives it.
async fn publish(
    queue: &str,
    ids: impl IntoIterator<Item = u64>,
    properties: impl Fn(u64) -> BasicProperties,
) {
    let connection = Connection::connect(&url(), ConnectionProperties::default()).await.unwrap();
    let channel = connection.create_channel().await.unwrap();
    for id in ids {
        channel
            .basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions::default(),
                id.to_string().as_bytes(),
                properties(id),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }
    connection.close(200, "published".into()).await.unwrap();
}

/// A fresh queue named for `test` (non-durable, what `Declare::default()` declares),
/// holding `ids` published with `properties`; returns its name.
async fn queue_with_properties(
    test: &str,
    ids: impl IntoIterator<Item = u64>,
    properties: impl Fn(u64) -> BasicProperties,
) -> String {
    let queue = queue_name(test);
    let connection = Connection::connect(&url(), ConnectionProperties::default()).await.unwrap();
    let channel = connection.create_channel().await.unwrap();
    channel.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()).await.unwrap();
    channel
        .queue_declare(queue.as_str().into(), QueueDeclareOptions::default(), FieldTable::default())
        .await
        .unwrap();
    connection.close(200, "declared".into()).await.unwrap();
    publish(&queue, ids, properties).await;
    queue
}

/// A fresh queue holding `ids` as text messages with message ids `m{id}`; returns its name.
async fn queue_with(test: &str, ids: impl IntoIterator<Item = u64>) -> String {
    queue_with_properties(test, ids, |id| BasicProperties::default().with_message_id(format!("m{id}").into()))
        .await
}

/// Messages ready in `queue` (unacknowledged ones come back when their channel closes).
async fn ready(queue: &str) -> u32 {
    let connection = Connection::connect(&url(), ConnectionProperties::default()).await.unwrap();
    let channel = connection.create_channel().await.unwrap();
    let declared = channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions { passive: true, ..Default::default() },
            FieldTable::default(),
        )
        .await
        .unwrap();
    connection.close(200, "checked".into()).await.unwrap();
    declared.message_count()
}

/// Takes every message left in `queue` (with `basic.get`) and returns their ids.
async fn take_all(queue: &str) -> Vec<u64> {
    let connection = Connection::connect(&url(), ConnectionProperties::default()).await.unwrap();
    let channel = connection.create_channel().await.unwrap();
    let mut ids = Vec::new();
    while let Some(message) = channel.basic_get(queue.into(), BasicGetOptions { no_ack: true }).await.unwrap()
    {
        ids.push(std::str::from_utf8(&message.delivery.data).unwrap().parse().unwrap());
    }
    connection.close(200, "drained".into()).await.unwrap();
    ids
}

/// Deletes `queue` (at the end of a test that passed).
async fn delete(queue: &str) {
    let connection = Connection::connect(&url(), ConnectionProperties::default()).await.unwrap();
    let channel = connection.create_channel().await.unwrap();
    channel.queue_delete(queue.into(), QueueDeleteOptions::default()).await.unwrap();
    connection.close(200, "deleted".into()).await.unwrap();
}

/// Runs `rabbitmqctl -q ARGS` (off the runtime's threads) and returns its lines, each split
/// at tabs (`--no-table-headers` output).
async fn rabbitmqctl(args: &[&str]) -> Vec<Vec<String>> {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let output = std::process::Command::new("rabbitmqctl")
            .arg("-q")
            .args(&args)
            .output()
            .unwrap_or_else(|e| panic!("rabbitmqctl {args:?}: {e} (these tests need rabbitmqctl)"));
        assert!(
            output.status.success(),
            "rabbitmqctl {args:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .filter(|line| !line.is_empty())
            .map(|line| line.split('\t').map(str::to_owned).collect())
            .collect()
    })
    .await
    .unwrap()
}

/// What the broker says of a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct QueueStats {
    ready: u64,
    unacked: u64,
    consumers: u64,
}

async fn stats(queue: &str) -> QueueStats {
    let vhost = vhost();
    let lines = rabbitmqctl(&[
        "list_queues",
        "-p",
        &vhost,
        "--no-table-headers",
        "name",
        "messages_ready",
        "messages_unacknowledged",
        "consumers",
    ])
    .await;
    let line = lines.iter().find(|l| l[0] == queue).unwrap_or_else(|| panic!("no queue {queue}: {lines:?}"));
    let n = |i: usize| line[i].parse::<u64>().unwrap();
    QueueStats { ready: n(1), unacked: n(2), consumers: n(3) }
}

/// Waits until the broker says `done` of `queue`'s stats; returns them.
async fn stats_until(queue: &str, what: &str, done: impl Fn(QueueStats) -> bool) -> QueueStats {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let stats = stats(queue).await;
        if done(stats) {
            return stats;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{queue}: waited for {what}, the broker says {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// After a pipeline stopped: waits until its connections are gone and nothing is left
/// unacknowledged; returns the messages ready.
async fn settled(queue: &str) -> u64 {
    stats_until(queue, "no consumer and nothing unacknowledged", |s| s.consumers == 0 && s.unacked == 0)
        .await
        .ready
}

/// The consumers of `queue`: (channel, consumer tag).
async fn consumers(queue: &str) -> Vec<(String, String)> {
    let vhost = vhost();
    let lines = rabbitmqctl(&[
        "list_consumers",
        "-p",
        &vhost,
        "--no-table-headers",
        "queue_name",
        "channel_pid",
        "consumer_tag",
    ])
    .await;
    lines.into_iter().filter(|l| l[0] == queue).map(|l| (l[1].clone(), l[2].clone())).collect()
}

/// Closes, from the broker's side, the connections consuming `queue` (only those: the other
/// tests run at the same time); returns how many.
async fn close_connections_of(queue: &str) -> usize {
    let (consumers, lines) = tokio::join!(
        consumers(queue),
        rabbitmqctl(&["list_channels", "--no-table-headers", "pid", "connection"])
    );
    let channels: BTreeSet<String> = consumers.into_iter().map(|(channel, _)| channel).collect();
    let connections: BTreeSet<String> =
        lines.into_iter().filter(|l| channels.contains(&l[0])).map(|l| l[1].clone()).collect();
    for connection in &connections {
        rabbitmqctl(&["close_connection", connection, "weir test: closed by the broker"]).await;
    }
    connections.len()
}

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
