//! The SQS producer against a local SQS server (moto, `SQS_ENDPOINT`, default
//! `http://127.0.0.1:9324`; `scripts/services.sh sqs` starts it). Without it these tests
//! fail: they never skip. Each test has its own queues.
#![cfg(feature = "sqs")]
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use aws_sdk_sqs::types::{MessageAttributeValue, QueueAttributeName};
use support::sqs::{
    client, counts, create, delete, empty_within, options, queue, queue_name, queue_with_dead_letters, send,
    take_all,
};
use weir_broadway::{
    AckAction, AckOptions, BatchHandler, BatchInfo, BatcherOptions, BoxError, Handler, Message, Metadata,
    MetadataValue, Pipeline, ProcessorOptions, ProducerOptions,
};
use weir_connectors::sqs::{self, SqsOptions, SqsProducer};

/// One `handle_message` call.
#[derive(Debug, Clone)]
struct Seen {
    id: u64,
    redelivered: bool,
    metadata: Metadata,
}

/// Parses ids; fails those in `fail` (those in `fail_first` only when not redelivered);
/// sets `on_success` to Noop for those in `keep`; sleeps `slow.1` on id `slow.0`. Records
/// every call and, per batch partition, the ids batched in order.
#[derive(Default)]
struct Bodies {
    fail: Vec<u64>,
    fail_first: Vec<u64>,
    keep: Vec<u64>,
    slow: Option<(u64, Duration)>,
    seen: Mutex<Vec<Seen>>,
    refused: Mutex<Vec<String>>,
    batched: Mutex<Vec<(Option<usize>, u64)>>,
}

impl Bodies {
    fn seen_counts(&self) -> BTreeMap<u64, usize> {
        let mut counts = BTreeMap::new();
        for seen in self.seen.lock().unwrap().iter() {
            *counts.entry(seen.id).or_default() += 1;
        }
        counts
    }

    fn handled(&self) -> BTreeMap<u64, usize> {
        let mut counts = BTreeMap::new();
        for (_, id) in self.batched.lock().unwrap().iter() {
            *counts.entry(*id).or_default() += 1;
        }
        counts
    }
}

impl Handler for Bodies {
    type Data = String;
    type Output = u64;

    async fn handle_message(&self, message: &mut Message<String>) -> Result<u64, BoxError> {
        let id: u64 = message.data().parse()?;
        let redelivered = message.ack_data().redelivered;
        self.seen.lock().unwrap().push(Seen { id, redelivered, metadata: message.metadata().clone() });
        if let Some((slow, pause)) = self.slow {
            if slow == id {
                tokio::time::sleep(pause).await;
            }
        }
        if self.keep.contains(&id) {
            let refused = message.configure_ack(AckOptions::new().on_failure(AckAction::Reject)).unwrap_err();
            self.refused.lock().unwrap().push(refused.to_string());
            message.configure_ack(AckOptions::new().on_success(AckAction::Noop))?;
        }
        if self.fail.contains(&id) || (self.fail_first.contains(&id) && !redelivered) {
            message.fail("listed");
        }
        Ok(id)
    }
}

impl BatchHandler for Bodies {
    async fn handle_batch(&self, messages: &mut [Message<u64>], info: &BatchInfo) -> Result<(), BoxError> {
        self.batched.lock().unwrap().extend(messages.iter().map(|m| (info.partition, *m.data())));
        Ok(())
    }
}

/// One producer, 2 processors, batches of 10 (20 ms timeout).
async fn start(handler: Bodies, options: SqsOptions) -> Pipeline<Bodies> {
    Pipeline::builder("sqs", handler)
        .producer(SqsProducer::factory(options).unwrap(), ProducerOptions::new())
        .processors(ProcessorOptions::new().concurrency(2))
        .batcher("default", BatcherOptions::new().batch_size(10).batch_timeout(Duration::from_millis(20)))
        .start()
        .await
        .unwrap()
}

/// Waits (at most `seconds`) until `done` holds of the handler.
async fn wait_for(pipeline: &Pipeline<Bodies>, seconds: u64, what: &str, done: impl Fn(&Bodies) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
    while !done(pipeline.handler()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}: seen {:?}",
            pipeline.handler().seen_counts()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_is_handled_once_and_deleted() {
    let n = 500;
    let client = client();
    let url = queue(&client, "all").await;
    send(&client, &url, &(0..n).collect::<Vec<_>>(), None).await;
    let pipeline = start(Bodies::default(), options(&url)).await;
    wait_for(&pipeline, 60, "every id handled", |b| b.handled().len() == n as usize).await;
    let report = pipeline.stop().await;
    assert!(report.graceful, "{report:?}");

    let handled = pipeline.handler().handled();
    assert_eq!(handled.keys().copied().collect::<Vec<_>>(), (0..n).collect::<Vec<_>>());
    assert!(handled.values().all(|c| *c == 1), "each handled once");
    assert_eq!(counts(&client, &url).await, (0, 0), "deleted before stop returned");
    delete(&client, &url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_messages_come_back_after_the_visibility_timeout_then_go_to_the_dead_letter_queue() {
    let client = client();
    let (url, dead) = queue_with_dead_letters(&client, "redrive", 2).await;
    send(&client, &url, &(0..20).collect::<Vec<_>>(), None).await;
    let handler = Bodies { fail: vec![3, 7], ..Bodies::default() };
    let pipeline = start(handler, options(&url).visibility_timeout(1)).await;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while counts(&client, &dead).await.0 < 2 {
        assert!(tokio::time::Instant::now() < deadline, "seen {:?}", pipeline.handler().seen_counts());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let report = pipeline.stop().await;
    assert!(report.graceful, "{report:?}");

    let seen = pipeline.handler().seen_counts();
    assert_eq!((seen[&3], seen[&7]), (2, 2), "failed twice (max receive count 2), then moved: {seen:?}");
    let redelivered: Vec<u64> =
        pipeline.handler().seen.lock().unwrap().iter().filter(|s| s.redelivered).map(|s| s.id).collect();
    assert_eq!(redelivered.len(), 2, "the second delivery says it is one: {redelivered:?}");
    let handled = pipeline.handler().handled();
    assert_eq!(handled.len(), 18);
    assert!(handled.values().all(|c| *c == 1));
    let mut dead_ids = take_all(&client, &dead).await;
    dead_ids.sort_unstable();
    assert_eq!(dead_ids, [3, 7]);
    assert_eq!(counts(&client, &url).await, (0, 0));
    delete(&client, &url).await;
    delete(&client, &dead).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reject_and_requeue_makes_a_failed_message_visible_again_at_once() {
    let client = client();
    let url = queue(&client, "requeue").await;
    send(&client, &url, &(0..10).collect::<Vec<_>>(), None).await;
    let handler = Bodies { fail_first: vec![5], ..Bodies::default() };
    // A visibility timeout of 60 s: only the release brings it back within the wait.
    let options = options(&url).visibility_timeout(60).on_failure(AckAction::RejectAndRequeue);
    let pipeline = start(handler, options).await;
    wait_for(&pipeline, 10, "id 5 handled on its second delivery", |b| b.handled().len() == 10).await;
    let report = pipeline.stop().await;
    assert!(report.graceful, "{report:?}");
    assert_eq!(pipeline.handler().seen_counts()[&5], 2);
    assert_eq!(counts(&client, &url).await, (0, 0));
    delete(&client, &url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_failure_ack_deletes_failed_messages() {
    let client = client();
    let url = queue(&client, "fail-delete").await;
    send(&client, &url, &(0..10).collect::<Vec<_>>(), None).await;
    let handler = Bodies { fail: vec![2, 8], ..Bodies::default() };
    let pipeline = start(handler, options(&url).visibility_timeout(1).on_failure(AckAction::Ack)).await;
    wait_for(&pipeline, 10, "every id seen", |b| b.seen_counts().len() == 10).await;
    // Past the visibility timeout: a failed message left alone would be back by now.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let report = pipeline.stop().await;
    assert!(report.graceful, "{report:?}");
    let seen = pipeline.handler().seen_counts();
    assert!(seen.values().all(|c| *c == 1), "nothing delivered twice: {seen:?}");
    assert_eq!(pipeline.handler().handled().len(), 8);
    assert_eq!(counts(&client, &url).await, (0, 0), "the failed ones were deleted too");
    delete(&client, &url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configure_ack_keeps_a_message_and_refuses_actions_sqs_lacks() {
    let client = client();
    let url = queue(&client, "configure").await;
    send(&client, &url, &(0..10).collect::<Vec<_>>(), None).await;
    let handler = Bodies { keep: vec![4], ..Bodies::default() };
    let pipeline = start(handler, options(&url).visibility_timeout(60)).await;
    wait_for(&pipeline, 10, "every id handled", |b| b.handled().len() == 10).await;
    let report = pipeline.stop().await;
    assert!(report.graceful, "{report:?}");
    assert_eq!(
        *pipeline.handler().refused.lock().unwrap(),
        ["on_failure (Reject) must be one of Noop, Ack, RejectAndRequeue for SQS"]
    );
    assert_eq!(counts(&client, &url).await, (0, 1), "id 4 not deleted: in flight until its timeout");
    delete(&client, &url).await;
}

/// A message handled for longer than its visibility timeout (2 s) is delivered once with
/// the heartbeat, twice without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lease_heartbeat_keeps_a_slow_message_invisible() {
    let client = client();
    let (with, without) = tokio::join!(
        heartbeat_run(&client, "heartbeat-on", true),
        heartbeat_run(&client, "heartbeat-off", false)
    );
    assert_eq!(with, 1, "with the heartbeat, the slow message is delivered once");
    assert!(without >= 2, "without it, delivered again while being handled ({without} times)");
}

/// Runs 3 messages, id 0 handled in 5 s, visibility timeout 2 s; returns how often id 0 was
/// delivered.
async fn heartbeat_run(client: &aws_sdk_sqs::Client, test: &str, heartbeat: bool) -> usize {
    let url = queue(client, test).await;
    send(client, &url, &[0, 1, 2], None).await;
    let handler = Bodies { slow: Some((0, Duration::from_secs(5))), ..Bodies::default() };
    let options = options(&url).visibility_timeout(2).wait_time_seconds(1).visibility_heartbeat(heartbeat);
    let pipeline = start(handler, options).await;
    wait_for(&pipeline, 20, "id 0 handled", |b| b.handled().contains_key(&0)).await;
    // A second delivery would have come 2 s after the first: the run lasted 5 s.
    let report = pipeline.stop().await;
    assert!(report.graceful, "{report:?}");
    let delivered = pipeline.handler().seen_counts()[&0];
    empty_within(client, &url, Duration::from_secs(10)).await;
    delete(client, &url).await;
    delivered
}

/// What this test binary logs at WARN and above (a global subscriber, set once).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn captured() -> &'static Captured {
    static CAPTURED: OnceLock<Captured> = OnceLock::new();
    CAPTURED.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::WARN)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        captured
    })
}

/// A message handled for 3 s with a 1 s visibility timeout and no heartbeat: meanwhile a
/// receive finds it visible again, past its maximum receive count (1), and moves it to the
/// dead-letter queue. Its delete is then refused, and reported naming the message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_the_queue_refuses_is_reported_for_its_message() {
    let logs = captured();
    let client = client();
    let (url, dead) = queue_with_dead_letters(&client, "refused-delete", 1).await;
    send(&client, &url, &[0], None).await;
    let handler = Bodies { slow: Some((0, Duration::from_secs(3))), ..Bodies::default() };
    let options = options(&url).visibility_timeout(1).wait_time_seconds(1).visibility_heartbeat(false);
    let pipeline = start(handler, options).await;
    wait_for(&pipeline, 15, "id 0 handled", |b| b.handled().contains_key(&0)).await;
    let report = pipeline.stop().await;
    assert!(report.graceful, "{report:?}");

    let seen = pipeline.handler().seen.lock().unwrap()[0].clone();
    let message_id = seen.metadata.get("message_id").and_then(MetadataValue::as_str).unwrap().to_owned();
    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let line = logs.lines().find(|line| line.contains(&message_id)).unwrap_or_else(|| panic!("{logs}"));
    assert!(line.contains("could not delete a message") && line.contains("ReceiptHandleIsInvalid"), "{line}");
    assert_eq!(take_all(&client, &dead).await, [0], "moved to the dead-letter queue");
    delete(&client, &url).await;
    delete(&client, &dead).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_during_a_long_poll_is_prompt() {
    let client = client();
    let url = queue(&client, "long-poll").await;
    let pipeline = start(Bodies::default(), options(&url).wait_time_seconds(20)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let report = pipeline.stop().await;
    assert!(report.graceful, "{report:?}");
    assert!(report.elapsed < Duration::from_secs(2), "stop waited for the long poll: {report:?}");
    delete(&client, &url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_is_copied_from_messages() {
    let client = client();
    let url = queue(&client, "metadata").await;
    let color = MessageAttributeValue::builder().data_type("String").string_value("red").build().unwrap();
    let sent = client
        .send_message()
        .queue_url(&url)
        .message_body("7")
        .message_attributes("color", color)
        .send()
        .await
        .unwrap();
    let options = options(&url).attribute_names(["SentTimestamp"]).message_attribute_names(["All"]);
    let pipeline = start(Bodies::default(), options).await;
    wait_for(&pipeline, 10, "id 7 handled", |b| b.handled().len() == 1).await;
    pipeline.stop().await;

    let seen = pipeline.handler().seen.lock().unwrap()[0].clone();
    let metadata = seen.metadata;
    assert_eq!(metadata.get("message_id").and_then(MetadataValue::as_str), sent.message_id());
    assert!(metadata.get("receipt_handle").and_then(MetadataValue::as_str).is_some_and(|h| !h.is_empty()));
    let Some(MetadataValue::Map(attributes)) = metadata.get("attributes") else { panic!("{metadata:?}") };
    assert_eq!(attributes.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["SentTimestamp"]);
    let sent_at: u64 = attributes[0].1.as_str().unwrap().parse().unwrap();
    assert!(sent_at > 1_600_000_000_000, "milliseconds since the epoch: {sent_at}");
    let Some(MetadataValue::Map(values)) = metadata.get("message_attributes") else { panic!("{metadata:?}") };
    assert_eq!(*values, [("color".to_owned(), MetadataValue::Str("red".into()))]);
    assert_eq!(metadata.get("message_group_id"), None, "a standard queue has no groups");
    delete(&client, &url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifo_groups_keep_their_order_through_partitioned_stages() {
    const GROUPS: u64 = 3;
    const PER_GROUP: u64 = 30;
    let client = client();
    let name = format!("{}.fifo", queue_name("fifo"));
    let url = create(&client, &name, &[(QueueAttributeName::FifoQueue, "true".to_owned())]).await;
    let ids: Vec<u64> = (0..GROUPS * PER_GROUP).collect();
    let group = |id: u64| format!("g{}", id % GROUPS);
    send(&client, &url, &ids, Some(&group)).await;
    // Short long polls: moto holds a long poll on a FIFO queue whose groups all have
    // messages in flight until its wait ends, even when a delete frees a group meanwhile.
    let options = options(&url).wait_time_seconds(1);
    let pipeline = Pipeline::builder("fifo", Bodies::default())
        .producer(SqsProducer::factory(options).unwrap(), ProducerOptions::new())
        .processors(ProcessorOptions::new().concurrency(3).partition_by(sqs::message_group))
        .batcher(
            "default",
            BatcherOptions::new()
                .batch_size(4)
                .batch_timeout(Duration::from_millis(20))
                .concurrency(2)
                .partition_by(sqs::message_group),
        )
        .start()
        .await
        .unwrap();
    wait_for(&pipeline, 30, "every id handled", |b| b.handled().len() == ids.len()).await;
    let report = pipeline.stop().await;
    assert!(report.graceful, "{report:?}");

    let mut per_group: HashMap<u64, Vec<u64>> = HashMap::new();
    let mut partitions: HashMap<u64, Vec<Option<usize>>> = HashMap::new();
    for (partition, id) in pipeline.handler().batched.lock().unwrap().iter() {
        per_group.entry(id % GROUPS).or_default().push(*id);
        partitions.entry(id % GROUPS).or_default().push(*partition);
    }
    for (g, seen) in &per_group {
        let expected: Vec<u64> = (0..PER_GROUP).map(|i| i * GROUPS + g).collect();
        assert_eq!(*seen, expected, "group {g} out of order");
        assert!(partitions[g].windows(2).all(|w| w[0] == w[1]), "group {g} on several batch processors");
    }
    for seen in pipeline.handler().seen.lock().unwrap().iter() {
        let expected = group(seen.id);
        assert_eq!(
            seen.metadata.get("message_group_id").and_then(MetadataValue::as_str),
            Some(expected.as_str())
        );
    }
    assert_eq!(counts(&client, &url).await, (0, 0));
    delete(&client, &url).await;
}

#[test]
fn invalid_options_are_typed_errors_naming_the_option_and_value() {
    let url = "http://127.0.0.1:9324/000000000000/q";
    let error = |options: SqsOptions| SqsProducer::factory(options).err().unwrap().to_string();
    assert_eq!(error(options("sqs://q")), "sqs.queue_url (\"sqs://q\") must be an http:// or https:// URL");
    assert_eq!(
        error(options(url).max_number_of_messages(0)),
        "sqs.max_number_of_messages (0) must be between 1 and 10"
    );
    assert_eq!(
        error(options(url).wait_time_seconds(21)),
        "sqs.wait_time_seconds (21) must be between 0 and 20"
    );
    assert_eq!(
        error(options(url).visibility_timeout(-1)),
        "sqs.visibility_timeout (-1) must be between 0 and 43200"
    );
    assert_eq!(
        error(options(url).receives_in_flight(0)),
        "sqs.receives_in_flight (0) must be greater than 0"
    );
    assert_eq!(
        error(options(url).on_success(AckAction::RejectAndRequeue)),
        "sqs.on_success (RejectAndRequeue) must be one of Ack, Noop for SQS"
    );
    assert_eq!(
        error(options(url).on_failure(AckAction::Reject)),
        "sqs.on_failure (Reject) must be one of Noop, Ack, RejectAndRequeue for SQS"
    );
    assert!(error(options(url).attribute_names(["Colour"]))
        .starts_with("sqs.attribute_names (\"Colour\") must be one of All, "));
    let secret = format!("{:?}", options(url).credentials("key", "hunter2"));
    assert!(!secret.contains("hunter2"), "the secret is not in Debug output: {secret}");
    assert_eq!(
        error(options(url).message_attribute_names([""])),
        "sqs.message_attribute_names (\"\") must not be empty"
    );
}
