//! Kafka helpers of the connector tests: the broker's address, fresh topics created with
//! their partitions, producing records, the group's committed offsets, the producer options
//! the tests share, and cutting this process's connections to the broker.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use weir_broadway::{Message, MetadataValue};
use weir_connectors::kafka::{KafkaOptions, OffsetReset};
use weir_connectors::Backoff;

pub(crate) fn brokers() -> String {
    std::env::var("KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

/// A topic or group name unique to the test and the run (the broker keeps topics while it
/// runs).
pub(crate) fn unique(test: &str) -> String {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("weir-{test}-{}-{nanos}", std::process::id())
}

fn missing(what: &str, error: impl std::fmt::Display) -> ! {
    panic!("Kafka is needed at {} (scripts/services.sh kafka): {what}: {error}", brokers())
}

/// Creates `topic` with `partitions` partitions (the test broker cannot add some later).
pub(crate) async fn create_topic(topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .unwrap_or_else(|e| missing("admin client", e));
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
    let created = admin
        .create_topics(&[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))], &options)
        .await
        .unwrap_or_else(|e| missing("creating a topic", e));
    for result in created {
        result.unwrap_or_else(|(topic, code)| missing(&format!("creating {topic}"), code));
    }
}

/// One record to produce: its partition, key and value.
pub(crate) struct Record {
    pub(crate) partition: i32,
    pub(crate) key: Option<String>,
    pub(crate) value: String,
}

/// Produces `records`, in order, and waits until the broker has them all.
pub(crate) async fn produce(topic: &str, records: impl IntoIterator<Item = Record>) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("linger.ms", "5")
        .create()
        .unwrap_or_else(|e| missing("producer", e));
    let mut deliveries = Vec::new();
    for record in records {
        let mut future = FutureRecord::to(topic).partition(record.partition).payload(&record.value);
        if let Some(key) = &record.key {
            future = future.key(key);
        }
        match producer.send_result(future) {
            Ok(delivery) => deliveries.push(delivery),
            Err((error, _)) => missing("producing", error),
        }
    }
    for delivery in deliveries {
        match delivery.await {
            Ok(Ok(_)) => {}
            Ok(Err((error, _))) => missing("producing", error),
            Err(canceled) => missing("producing", canceled),
        }
    }
}

/// A fresh topic named for `test` with `partitions` partitions, holding ids `0..n` (as
/// text) spread round-robin over the partitions, keyed `k{id % keys}` when `keys` > 0.
/// Returns its name.
pub(crate) async fn topic_with(test: &str, partitions: i32, n: u64, keys: u64) -> String {
    let topic = unique(test);
    create_topic(&topic, partitions).await;
    let records = (0..n).map(|id| Record {
        partition: i32::try_from(id % partitions as u64).unwrap(),
        key: (keys > 0).then(|| format!("k{}", id % keys)),
        value: id.to_string(),
    });
    produce(&topic, records).await;
    topic
}

/// The group's committed offset of each partition `0..partitions` of `topic` (-1: none).
pub(crate) async fn committed(group: &str, topic: &str, partitions: i32) -> Vec<i64> {
    let (group, topic) = (group.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers())
            .set("group.id", &group)
            .create()
            .unwrap_or_else(|e| missing("consumer", e));
        let mut asked = TopicPartitionList::new();
        asked.add_partition_range(&topic, 0, partitions - 1);
        let answer = consumer
            .committed_offsets(asked, Duration::from_secs(10))
            .unwrap_or_else(|e| missing("committed", e));
        let offsets = (0..partitions)
            .map(|p| match answer.find_partition(&topic, p).map(|e| e.offset()) {
                Some(Offset::Offset(offset)) => offset,
                _ => -1,
            })
            .collect();
        // A partition list that outlives its consumer makes dropping the consumer hang.
        drop(answer);
        drop(consumer);
        offsets
    })
    .await
    .unwrap()
}

/// Waits (at most `seconds`) until the group's committed offsets are `expected`.
pub(crate) async fn committed_until(group: &str, topic: &str, expected: &[i64], seconds: u64) {
    let partitions = i32::try_from(expected.len()).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
    loop {
        let now = committed(group, topic, partitions).await;
        if now == expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{group}: committed {now:?}, waiting for {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Options for a test: `topic`, the `group`, from the earliest offset (the test broker's
/// latest offset is wrong), a short session (it holds each join for half of it), frequent
/// commits, quick reconnects.
pub(crate) fn options(topic: &str, group: &str) -> KafkaOptions {
    KafkaOptions::new(brokers(), group, [topic])
        .offset_reset_policy(OffsetReset::Earliest)
        .client_config("session.timeout.ms", "6000")
        .client_config("heartbeat.interval.ms", "500")
        .commit_interval(Duration::from_millis(100))
        .revoke_timeout(Duration::from_secs(10))
        .backoff(Backoff::exponential(Duration::from_millis(50), Duration::from_millis(500)))
}

/// The integer metadata `name` (`partition`, `offset`) of a message.
pub(crate) fn metadata_int(message: &Message<Vec<u8>>, name: &str) -> i64 {
    message.metadata().get(name).and_then(MetadataValue::as_i64).unwrap()
}

/// Cuts, as a dead broker would, every connection this process has open to the broker
/// (`ss -K`: needs root and a kernel with `CONFIG_INET_DIAG_DESTROY`); returns how many.
pub(crate) async fn cut_connections() -> usize {
    let broker = brokers();
    tokio::task::spawn_blocking(move || {
        let ss = |args: &[&str]| {
            let output = std::process::Command::new("ss")
                .args(args)
                .output()
                .unwrap_or_else(|e| panic!("ss {args:?}: {e} (this test needs ss, as root)"));
            assert!(output.status.success(), "ss {args:?}: {}", String::from_utf8_lossy(&output.stderr));
            String::from_utf8(output.stdout).unwrap()
        };
        let me = format!("pid={},", std::process::id());
        let ports: Vec<String> = ss(&["-tnp", "state", "established", "dst", &broker])
            .lines()
            .filter(|line| line.contains(&me))
            .filter_map(|line| {
                line.split_whitespace().nth(2)?.rsplit_once(':').map(|(_, port)| port.to_owned())
            })
            .collect();
        for port in &ports {
            ss(&["-K", "-tn", "dst", &broker, "sport", "=", &format!(":{port}")]);
        }
        let left = ss(&["-tnp", "state", "established", "dst", &broker]);
        assert!(
            ports.iter().all(|port| !left.contains(&format!(":{port} "))),
            "ss -K did not cut the connections (root and CONFIG_INET_DIAG_DESTROY are needed): {left}"
        );
        ports.len()
    })
    .await
    .unwrap()
}
