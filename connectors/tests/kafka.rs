//! The Kafka producer against the broker on loopback (`KAFKA_BROKERS`, default
//! `127.0.0.1:9092`; `scripts/services.sh kafka` starts Tansu there). Without a broker these
//! tests fail: they never skip. Each test has its own topic (created with its partitions up
//! front) and group, and reads from the earliest offset: the test broker's "latest" is wrong.
#![cfg(feature = "kafka")]
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use support::kafka::{
    committed, committed_until, create_topic, metadata_int, options, produce, topic_with, unique, Record,
};
use weir_broadway::{
    AckAction, AckOptions, BatchHandler, BatchInfo, BatcherOptions, BoxError, Handler, Message,
    MetadataValue, Pipeline, ProcessorOptions, ProducerOptions,
};
use weir_connectors::kafka::{BeginOffset, KafkaOptions, KafkaProducer, OffsetReset, OrderBy};

/// One message as the handler saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    id: u64,
    partition: i64,
    offset: i64,
    key: Option<Vec<u8>>,
}

/// Parses ids; fails those in `fail`; holds those in `hold` until [`Recorder::open`];
/// sleeps `delay` per message. Records every `handle_message` call, every batch, and what
/// reached `handle_failed`.
#[derive(Default)]
struct Recorder {
    fail: HashSet<u64>,
    hold: HashSet<u64>,
    open: AtomicBool,
    delay: Duration,
    seen: Mutex<Vec<Seen>>,
    batches: Mutex<Vec<Vec<Seen>>>,
    failed: Mutex<Vec<u64>>,
    running: AtomicUsize,
    most_running: AtomicUsize,
}

impl Recorder {
    fn holding(ids: impl IntoIterator<Item = u64>) -> Self {
        Recorder { hold: ids.into_iter().collect(), ..Recorder::default() }
    }

    fn open(&self) {
        self.open.store(true, Ordering::SeqCst);
    }

    fn batched(&self) -> Vec<Seen> {
        self.batches.lock().unwrap().iter().flatten().cloned().collect()
    }

    /// How many times each id was in a batch.
    fn batched_counts(&self) -> BTreeMap<u64, usize> {
        let mut counts = BTreeMap::new();
        for seen in self.batched() {
            *counts.entry(seen.id).or_default() += 1;
        }
        counts
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Handler for Recorder {
    type Data = Vec<u8>;
    type Output = Seen;

    async fn handle_message(&self, message: &mut Message<Vec<u8>>) -> Result<Seen, BoxError> {
        let running = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_running.fetch_max(running, Ordering::SeqCst);
        let seen = Seen {
            id: std::str::from_utf8(message.data())?.parse()?,
            partition: metadata_int(message, "partition"),
            offset: metadata_int(message, "offset"),
            key: match message.metadata().get("key") {
                Some(MetadataValue::Bytes(key)) => Some(key.clone()),
                _ => None,
            },
        };
        self.seen.lock().unwrap().push(seen.clone());
        if self.hold.contains(&seen.id) {
            while !self.open.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        if self.fail.contains(&seen.id) {
            message.fail("listed");
        }
        self.running.fetch_sub(1, Ordering::SeqCst);
        Ok(seen)
    }

    async fn handle_failed(&self, messages: &mut [Message<Vec<u8>>]) {
        let mut failed = self.failed.lock().unwrap();
        for message in messages.iter() {
            failed.push(std::str::from_utf8(message.data()).unwrap().parse().unwrap());
        }
    }
}

impl BatchHandler for Recorder {
    async fn handle_batch(&self, messages: &mut [Message<Seen>], _: &BatchInfo) -> Result<(), BoxError> {
        self.batches.lock().unwrap().push(messages.iter().map(|m| m.data().clone()).collect());
        Ok(())
    }
}

/// Waits (at most `seconds`) until `done` holds of the handler.
async fn wait_for(handler: &Recorder, what: &str, seconds: u64, done: impl Fn(&Recorder) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
    while !done(handler) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}: {} handled, {} batched",
            handler.seen.lock().unwrap().len(),
            handler.batched().len()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One producer on `options` (with the partition, offset and key as metadata), `processors`
/// processors, batches of `batch` (20 ms timeout) on 2 batch processors.
async fn start(
    handler: Recorder,
    options: KafkaOptions,
    processors: usize,
    batch: usize,
) -> Pipeline<Recorder> {
    let options = options.metadata(["partition", "offset", "key"]);
    Pipeline::builder("kafka", handler)
        .producer(KafkaProducer::factory(options).unwrap(), ProducerOptions::new())
        .processors(ProcessorOptions::new().concurrency(processors).max_demand(20))
        .batcher(
            "default",
            BatcherOptions::new().batch_size(batch).batch_timeout(Duration::from_millis(20)).concurrency(2),
        )
        .start()
        .await
        .unwrap()
}

/// Asserts that each partition's offsets appear in increasing order in `seen`.
fn assert_in_offset_order(seen: &[Seen], what: &str, by: impl Fn(&Seen) -> Vec<u8>) {
    let mut last: BTreeMap<Vec<u8>, i64> = BTreeMap::new();
    for s in seen {
        let previous = last.insert(by(s), s.offset);
        assert!(
            previous.is_none_or(|p| p < s.offset),
            "{what}: offset {} after {previous:?} ({s:?})",
            s.offset
        );
    }
}

fn by_partition(seen: &Seen) -> Vec<u8> {
    seen.partition.to_be_bytes().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_is_handled_once_in_partition_order_and_committed() {
    const N: u64 = 2_000;
    let topic = topic_with("all", 4, N, 0).await;
    let group = unique("all");
    let pipeline = start(Recorder::default(), options(&topic, &group), 3, 50).await;
    wait_for(pipeline.handler(), "every record batched", 60, |r| r.batched().len() >= N as usize).await;
    committed_until(&group, &topic, &[500; 4], 10).await;
    let report = pipeline.stop().await;
    assert!(report.graceful, "{report:?}");

    let handler = pipeline.handler();
    assert_eq!(handler.batched_counts(), (0..N).map(|id| (id, 1)).collect(), "each record once");
    assert_in_offset_order(&handler.seen(), "handle_message", by_partition);
    assert_in_offset_order(&handler.batched(), "batches", by_partition);
    assert_eq!(committed(&group, &topic, 4).await, vec![500; 4], "nothing more after the drain");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_early_message_holds_the_commit_back() {
    const N: u64 = 200;
    // One partition, 20 keys, ordered by key over 4 processors: while record 10 is held,
    // most later records are handled and acknowledged, but the commit cannot pass 10.
    let topic = topic_with("slow", 1, N, 20).await;
    let group = unique("slow");
    let options = options(&topic, &group).order_by(OrderBy::Key);
    let pipeline = start(Recorder::holding([10]), options, 4, 10).await;
    let handler = pipeline.handler().clone();
    wait_for(&handler, "most records batched", 30, |r| r.batched().len() >= 100).await;
    // Records before 10 that share a processor chunk with it wait with it: the commit
    // settles at 10 or below, and stays there.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let held = committed(&group, &topic, 1).await[0];
    assert!((1..=10).contains(&held), "committed {held} while 10 is held");
    assert!(
        handler.batched().iter().filter(|s| s.offset > 10).count() >= 90,
        "records after 10 acknowledged"
    );
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(committed(&group, &topic, 1).await, vec![held], "the commit does not pass 10");
    }

    handler.open();
    committed_until(&group, &topic, &[N as i64], 10).await;
    assert!(pipeline.stop().await.graceful);
    assert_eq!(handler.batched_counts(), (0..N).map(|id| (id, 1)).collect());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_messages_are_committed_and_shown_to_handle_failed() {
    const N: u64 = 300;
    let topic = topic_with("failed", 2, N, 0).await;
    let group = unique("failed");
    let handler = Recorder { fail: (0..N).filter(|id| id % 7 == 3).collect(), ..Recorder::default() };
    let pipeline = start(handler, options(&topic, &group), 2, 20).await;
    committed_until(&group, &topic, &[150, 150], 30).await;
    assert!(pipeline.stop().await.graceful);

    let handler = pipeline.handler();
    let mut failed = handler.failed.lock().unwrap().clone();
    failed.sort_unstable();
    assert_eq!(failed, (0..N).filter(|id| id % 7 == 3).collect::<Vec<_>>());
    let batched: HashSet<u64> = handler.batched().iter().map(|s| s.id).collect();
    assert_eq!(batched, (0..N).filter(|id| id % 7 != 3).collect());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordering_by_key_keeps_each_key_in_order_and_uses_several_processors_for_one_partition() {
    const N: u64 = 400;
    let topic = topic_with("by-key", 1, N, 8).await;
    let group = unique("by-key");
    let handler = Recorder { delay: Duration::from_millis(2), ..Recorder::default() };
    let pipeline = start(handler, options(&topic, &group).order_by(OrderBy::Key), 4, 10).await;
    committed_until(&group, &topic, &[N as i64], 60).await;
    assert!(pipeline.stop().await.graceful);

    let handler = pipeline.handler();
    let by_key = |s: &Seen| s.key.clone().unwrap();
    assert_in_offset_order(&handler.seen(), "handle_message per key", by_key);
    assert_in_offset_order(&handler.batched(), "batches per key", by_key);
    assert!(handler.most_running.load(Ordering::SeqCst) > 1, "one partition, several processors at once");
    assert_eq!(handler.batched_counts().len(), N as usize);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_partition_does_not_starve_another() {
    // 3,000 records in partition 0, then 30 in partition 1: served in turns, partition 1's
    // records are not left behind partition 0's backlog.
    let topic = unique("fair");
    create_topic(&topic, 2).await;
    let busy = (0..3_000).map(|id| Record { partition: 0, key: None, value: id.to_string() });
    let quiet = (3_000..3_030).map(|id| Record { partition: 1, key: None, value: id.to_string() });
    produce(&topic, busy.chain(quiet)).await;
    let group = unique("fair");
    let pipeline = start(Recorder::default(), options(&topic, &group), 1, 10).await;
    committed_until(&group, &topic, &[3_000, 30], 60).await;
    assert!(pipeline.stop().await.graceful);

    let seen = pipeline.handler().seen();
    let last_quiet = seen.iter().rposition(|s| s.partition == 1).unwrap();
    assert!(last_quiet < 500, "partition 1's last record was handled {last_quiet}th of {}", seen.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_commits_exactly_what_was_handled_and_the_group_goes_on_from_there() {
    const N: u64 = 4_000;
    let topic = topic_with("stop", 2, N, 0).await;
    let group = unique("stop");
    let handler = Recorder { delay: Duration::from_millis(1), ..Recorder::default() };
    let first = start(handler, options(&topic, &group), 2, 20).await;
    wait_for(first.handler(), "1,000 batched", 60, |r| r.batched().len() >= 1_000).await;
    assert!(first.stop().await.graceful);

    // The commit of each partition is exactly the prefix it handled.
    let offsets = committed(&group, &topic, 2).await;
    let done = first.handler().batched();
    assert!(done.len() < N as usize, "stopped mid-stream");
    for partition in 0..2 {
        let mut handled: Vec<i64> =
            done.iter().filter(|s| s.partition == partition).map(|s| s.offset).collect();
        handled.sort_unstable();
        assert_eq!(handled, (0..offsets[partition as usize]).collect::<Vec<_>>(), "partition {partition}");
    }

    // The next member of the group gets exactly the rest.
    let second = start(Recorder::default(), options(&topic, &group), 2, 50).await;
    committed_until(&group, &topic, &[2_000, 2_000], 60).await;
    assert!(second.stop().await.graceful);
    let mut all: Vec<u64> = done.iter().chain(second.handler().batched().iter()).map(|s| s.id).collect();
    all.sort_unstable();
    assert_eq!(all, (0..N).collect::<Vec<_>>(), "every record once across both");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn begin_offset_reset_reads_again_from_the_reset_policy() {
    const N: u64 = 100;
    let topic = topic_with("reset", 1, N, 0).await;
    let group = unique("reset");
    let first = start(Recorder::default(), options(&topic, &group), 1, 10).await;
    committed_until(&group, &topic, &[N as i64], 30).await;
    assert!(first.stop().await.graceful);

    let again =
        options(&topic, &group).offset_reset_policy(OffsetReset::Earliest).begin_offset(BeginOffset::Reset);
    let second = start(Recorder::default(), again, 1, 10).await;
    wait_for(second.handler(), "every record again", 30, |r| r.batched().len() >= N as usize).await;
    assert!(second.stop().await.graceful);
    assert_eq!(second.handler().batched_counts(), (0..N).map(|id| (id, 1)).collect());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_carries_what_was_asked() {
    let topic = unique("metadata");
    create_topic(&topic, 3).await;
    produce(&topic, [Record { partition: 2, key: Some("k".into()), value: "7".into() }]).await;
    let group = unique("metadata");

    /// Keeps the metadata of the messages it sees.
    #[derive(Default)]
    struct Keep(Mutex<Vec<weir_broadway::Metadata>>);
    impl Handler for Keep {
        type Data = Vec<u8>;
        type Output = ();
        async fn handle_message(&self, message: &mut Message<Vec<u8>>) -> Result<(), BoxError> {
            self.0.lock().unwrap().push(message.metadata().clone());
            Ok(())
        }
    }
    let options =
        options(&topic, &group).metadata(["topic", "partition", "offset", "key", "timestamp", "headers"]);
    let pipeline = Pipeline::builder("kafka-metadata", Keep::default())
        .producer(KafkaProducer::factory(options).unwrap(), ProducerOptions::new())
        .start()
        .await
        .unwrap();
    committed_until(&group, &topic, &[-1, -1, 1], 30).await;
    assert!(pipeline.stop().await.graceful);

    let kept = pipeline.handler().0.lock().unwrap().clone();
    assert_eq!(kept.len(), 1);
    let metadata = &kept[0];
    assert_eq!(metadata.get("topic").and_then(MetadataValue::as_str), Some(topic.as_str()));
    assert_eq!(metadata.get("partition").and_then(MetadataValue::as_i64), Some(2));
    assert_eq!(metadata.get("offset").and_then(MetadataValue::as_i64), Some(0));
    assert_eq!(metadata.get("key"), Some(&MetadataValue::Bytes(b"k".to_vec())));
    assert!(metadata.get("timestamp").and_then(MetadataValue::as_i64).is_some_and(|t| t > 1_600_000_000_000));
    assert_eq!(metadata.get("headers"), Some(&MetadataValue::Map(Vec::new())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoke_that_times_out_lets_the_rebalance_go_on_and_the_next_owner_gets_the_rest() {
    const N: u64 = 100;
    let topic = topic_with("revoke-timeout", 1, N, 0).await;
    let group = unique("revoke-timeout");
    // Record 50 stays in the first member's pipeline; its revoke gives up after 300 ms.
    let first_options = options(&topic, &group)
        .revoke_timeout(Duration::from_millis(300))
        .client_config("client.id", "z-first");
    let first = start(Recorder::holding([50]), first_options, 1, 10).await;
    committed_until(&group, &topic, &[50], 30).await;

    // Members are sorted by id for the (default) range assignment: the second one, "a-…",
    // gets the only partition, from the commit, while 50 is still held in the first.
    let second_options = options(&topic, &group).client_config("client.id", "a-second");
    let second = start(Recorder::default(), second_options, 1, 10).await;
    committed_until(&group, &topic, &[N as i64], 30).await;
    assert_eq!(
        second.handler().batched_counts(),
        (50..N).map(|id| (id, 1)).collect(),
        "the second member starts at the commit"
    );

    // The first member's late acknowledgements are ignored: the commit does not move.
    first.handler().open();
    wait_for(first.handler(), "the held records batched", 10, |r| r.batched().len() == r.seen().len()).await;
    assert!(first.handler().batched_counts().contains_key(&50));
    assert!(first.stop().await.graceful);
    assert!(second.stop().await.graceful);
    assert_eq!(committed(&group, &topic, 1).await, vec![N as i64]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_acknowledgements_accept_only_commit() {
    let topic = topic_with("configure", 1, 1, 0).await;
    let group = unique("configure");

    /// Tries to configure the acknowledgement of each message.
    #[derive(Default)]
    struct Configure(Mutex<Vec<String>>);
    impl Handler for Configure {
        type Data = Vec<u8>;
        type Output = ();
        async fn handle_message(&self, message: &mut Message<Vec<u8>>) -> Result<(), BoxError> {
            let refused = message.configure_ack(AckOptions::new().on_failure(AckAction::RejectAndRequeue));
            self.0.lock().unwrap().push(refused.unwrap_err().to_string());
            message.configure_ack(AckOptions::new().on_failure(AckAction::Ack))?;
            Ok(())
        }
    }
    let pipeline = Pipeline::builder("kafka-configure", Configure::default())
        .producer(KafkaProducer::factory(options(&topic, &group)).unwrap(), ProducerOptions::new())
        .start()
        .await
        .unwrap();
    committed_until(&group, &topic, &[1], 30).await;
    assert!(pipeline.stop().await.graceful);
    let errors = pipeline.handler().0.lock().unwrap().clone();
    assert_eq!(errors.len(), 1);
    assert!(errors[0].starts_with("on_failure (RejectAndRequeue) must be Ack for Kafka"), "{}", errors[0]);
}

#[test]
fn invalid_options_name_the_option_the_value_and_the_rule() {
    let valid = || KafkaOptions::new("127.0.0.1:9092", "g", ["t"]);
    let error = |options: KafkaOptions| options.validate().unwrap_err().to_string();
    assert!(valid().validate().is_ok());
    assert_eq!(
        error(KafkaOptions::new("", "g", ["t"])),
        "kafka.hosts (\"\") must be host:port, comma-separated"
    );
    assert_eq!(
        error(KafkaOptions::new("a:9092,b", "g", ["t"])),
        "kafka.hosts (\"a:9092,b\") must be host:port, comma-separated"
    );
    assert_eq!(
        error(KafkaOptions::new("a:0", "g", ["t"])),
        "kafka.hosts (\"a:0\") must be host:port, comma-separated"
    );
    assert_eq!(error(KafkaOptions::new("a:1", "", ["t"])), "kafka.group_id (\"\") must not be empty");
    assert_eq!(
        error(KafkaOptions::new("a:1", "g", Vec::<String>::new())),
        "kafka.topics ([]) must name at least one topic"
    );
    assert_eq!(
        error(KafkaOptions::new("a:1", "g", ["^orders-.*"])),
        "kafka.topics (\"^orders-.*\") must be a topic name: 1 to 249 of a-z, A-Z, 0-9, '.', '_', '-' (no patterns)"
    );
    assert_eq!(
        error(KafkaOptions::new("a:1", "g", ["t", "u", "t"])),
        "kafka.topics (\"t\") must not repeat a topic"
    );
    assert_eq!(
        error(valid().client_config("enable.auto.commit", "true")),
        "kafka.client_config (enable.auto.commit=true) is set by the producer: use KafkaOptions::new and offset_reset_policy"
    );
    assert_eq!(
        error(valid().client_config("group.id", "other")),
        "kafka.client_config (group.id=other) is set by the producer: use KafkaOptions::new and offset_reset_policy"
    );
    let unknown = error(valid().client_config("fetch.max.byte", "1"));
    assert!(
        unknown.starts_with("kafka.client_config (fetch.max.byte=1) is refused by librdkafka: "),
        "{unknown}"
    );
    let out_of_range = error(valid().client_config("session.timeout.ms", "-5"));
    assert!(
        out_of_range.starts_with("kafka.client_config (session.timeout.ms=-5) is refused by librdkafka: ")
    );
    assert_eq!(
        error(valid().commit_interval(Duration::ZERO)),
        "kafka.commit_interval (0s) must be greater than 0"
    );
    assert_eq!(
        error(valid().revoke_timeout(Duration::ZERO)),
        "kafka.revoke_timeout (0s) must be greater than 0"
    );
    assert_eq!(
        error(valid().metadata(["headers", "value"])),
        "kafka.metadata (\"value\") must be one of topic, partition, offset, key, timestamp, headers"
    );
    assert_eq!(
        error(
            valid().backoff(weir_connectors::Backoff::exponential(
                Duration::from_secs(2),
                Duration::from_secs(1)
            ))
        ),
        "kafka.backoff (2s..1s) must have 0 < min <= max"
    );
    let refused = KafkaProducer::factory(valid().commit_interval(Duration::ZERO)).err().unwrap();
    assert_eq!(refused.to_string(), "kafka.commit_interval (0s) must be greater than 0");
    assert!(matches!(refused, weir_connectors::Error::InvalidOption { option: "kafka.commit_interval", .. }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_commit_of_an_idle_group_stays_where_it_was() {
    // Nothing to consume: a pipeline that starts, waits and stops commits nothing.
    let topic = unique("idle");
    create_topic(&topic, 2).await;
    let group = unique("idle");
    let pipeline = start(Recorder::default(), options(&topic, &group), 1, 10).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(pipeline.stop().await.graceful);
    assert_eq!(committed(&group, &topic, 2).await, vec![-1, -1]);
}
