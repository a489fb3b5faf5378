//! RabbitMQ helpers of the connector tests: the broker's URL, fresh queues with published
//! ids, what is left in a queue, and the broker's own view (`rabbitmqctl`).

use std::collections::BTreeSet;
use std::time::Duration;

use lapin::options::{BasicGetOptions, BasicPublishOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};

pub(crate) fn url() -> String {
    std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// The virtual host of [`url`], for `rabbitmqctl -p`.
pub(crate) fn vhost() -> String {
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
pub(crate) fn queue_name(test: &str) -> String {
    format!("weir-{test}-{}", std::process::id())
}

/// Publishes `ids` as text messages to `queue` (through the default exchange), each with
/// the properties `properties` gives it.
pub(crate) async fn publish(
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
pub(crate) async fn queue_with_properties(
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
pub(crate) async fn queue_with(test: &str, ids: impl IntoIterator<Item = u64>) -> String {
    queue_with_properties(test, ids, |id| BasicProperties::default().with_message_id(format!("m{id}").into()))
        .await
}

/// Messages ready in `queue` (unacknowledged ones come back when their channel closes).
pub(crate) async fn ready(queue: &str) -> u32 {
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
pub(crate) async fn take_all(queue: &str) -> Vec<u64> {
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
pub(crate) async fn delete(queue: &str) {
    let connection = Connection::connect(&url(), ConnectionProperties::default()).await.unwrap();
    let channel = connection.create_channel().await.unwrap();
    channel.queue_delete(queue.into(), QueueDeleteOptions::default()).await.unwrap();
    connection.close(200, "deleted".into()).await.unwrap();
}

/// Runs `rabbitmqctl -q ARGS` (off the runtime's threads) and returns its lines, each split
/// at tabs (`--no-table-headers` output).
pub(crate) async fn rabbitmqctl(args: &[&str]) -> Vec<Vec<String>> {
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
pub(crate) struct QueueStats {
    pub(crate) ready: u64,
    pub(crate) unacked: u64,
    pub(crate) consumers: u64,
}

pub(crate) async fn stats(queue: &str) -> QueueStats {
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
pub(crate) async fn stats_until(queue: &str, what: &str, done: impl Fn(QueueStats) -> bool) -> QueueStats {
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
pub(crate) async fn settled(queue: &str) -> u64 {
    stats_until(queue, "no consumer and nothing unacknowledged", |s| s.consumers == 0 && s.unacked == 0)
        .await
        .ready
}

/// The consumers of `queue`: (channel, consumer tag).
pub(crate) async fn consumers(queue: &str) -> Vec<(String, String)> {
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
pub(crate) async fn close_connections_of(queue: &str) -> usize {
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
