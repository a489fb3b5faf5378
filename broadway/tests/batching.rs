//! Batchers: what closes a batch (size, size function, timeout, flush, drain), how messages
//! are grouped (batch key, partition, named batchers) and what `handle_batch` is told.
//!
//! Every test runs on tokio's paused clock: times are exact, and a sleep lets the pipeline
//! run until it is idle.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::{ms, within};
use tokio::time::{sleep, Instant};
use weir_broadway::memory::{MemoryAcks, MemoryProducer, MemoryQueue};
use weir_broadway::{
    BatchHandler, BatchInfo, BatchKey, BatchMode, BatchSize, BatchTrigger, BatcherOptions, BoxError, Failure,
    Handler, Message, Pipeline, ProcessorOptions, ProducerOptions, SizeStep,
};

/// A message's data: its id, and where `handle_message` sends it.
#[derive(Debug, Clone, Default)]
struct Item {
    id: u64,
    batcher: Option<&'static str>,
    key: Option<&'static str>,
    flush: bool,
    bytes: u64,
}

fn item(id: u64) -> Item {
    Item { id, ..Item::default() }
}

fn items(ids: std::ops::Range<u64>) -> Vec<Item> {
    ids.map(item).collect()
}

impl Item {
    fn to(self, batcher: &'static str) -> Self {
        Item { batcher: Some(batcher), ..self }
    }

    fn key(self, key: &'static str) -> Self {
        Item { key: Some(key), ..self }
    }

    fn flush(self) -> Self {
        Item { flush: true, ..self }
    }

    fn bytes(self, bytes: u64) -> Self {
        Item { bytes, ..self }
    }
}

/// One call of `handle_batch`.
#[derive(Debug, Clone)]
struct Seen {
    ids: Vec<u64>,
    info: BatchInfo,
    /// When it was called, since the test started.
    at: Duration,
}

/// Routes each item as it says, and records every batch. `handle_batch` takes `work` (on
/// the paused clock) and counts how many run at once.
struct Recorder {
    started: Instant,
    work: Duration,
    seen: Mutex<Vec<Seen>>,
    running: AtomicUsize,
    most_running: AtomicUsize,
}

impl Recorder {
    fn new() -> Self {
        Recorder::working(Duration::ZERO)
    }

    fn working(work: Duration) -> Self {
        Recorder {
            started: Instant::now(),
            work,
            seen: Mutex::default(),
            running: AtomicUsize::new(0),
            most_running: AtomicUsize::new(0),
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Handler for Recorder {
    type Data = Item;
    type Output = Item;

    async fn handle_message(&self, message: &mut Message<Item>) -> Result<Item, BoxError> {
        let item = message.data().clone();
        if let Some(batcher) = item.batcher {
            message.put_batcher(batcher);
        }
        if let Some(key) = item.key {
            message.put_batch_key(key);
        }
        if item.flush {
            message.put_batch_mode(BatchMode::Flush);
        }
        Ok(item)
    }
}

impl BatchHandler for Recorder {
    async fn handle_batch(&self, messages: &mut [Message<Item>], info: &BatchInfo) -> Result<(), BoxError> {
        assert_eq!(messages.len(), info.size, "BatchInfo.size of {info}");
        let ids = messages.iter().map(|m| m.data().id).collect();
        self.seen.lock().unwrap().push(Seen { ids, info: info.clone(), at: self.started.elapsed() });
        let running = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_running.fetch_max(running, Ordering::SeqCst);
        sleep(self.work).await;
        self.running.fetch_sub(1, Ordering::SeqCst);
        Ok(())
    }
}

/// The batches' ids and triggers, in the order `handle_batch` saw them.
fn batches(seen: &[Seen]) -> Vec<(Vec<u64>, BatchTrigger)> {
    seen.iter().map(|s| (s.ids.clone(), s.info.trigger)).collect()
}

/// Runs `items` through one processor (so batches keep the items' order) and `batchers`,
/// until the producer runs out and the pipeline stops by itself.
async fn run(
    items: Vec<Item>,
    batchers: Vec<(&'static str, BatcherOptions<Item>)>,
) -> (Vec<Seen>, Arc<MemoryAcks>) {
    let (producer, acks) = MemoryProducer::from_iter(items);
    let mut builder = Pipeline::builder("batching", Recorder::new())
        .producer(producer, ProducerOptions::new())
        .processors(ProcessorOptions::new().concurrency(1));
    for (name, options) in batchers {
        builder = builder.batcher(name, options);
    }
    let pipeline = builder.start().await.unwrap();
    within(pipeline.wait()).await.unwrap();
    (pipeline.handler().seen(), acks)
}

/// A pipeline fed by a queue, with one processor and one batcher, "default".
async fn start(handler: Recorder, options: BatcherOptions<Item>) -> (Pipeline<Recorder>, MemoryQueue<Item>) {
    let (producer, queue) = MemoryProducer::queue();
    let pipeline = Pipeline::builder("batching", handler)
        .producer(producer, ProducerOptions::new())
        .processors(ProcessorOptions::new().concurrency(1))
        .batcher("default", options)
        .start()
        .await
        .unwrap();
    (pipeline, queue)
}

#[tokio::test(start_paused = true)]
async fn batches_close_when_they_reach_batch_size() {
    let options = BatcherOptions::new().batch_size(3).batch_timeout(Duration::from_secs(60));
    let (seen, acks) = run(items(0..10), vec![("default", options)]).await;

    assert_eq!(
        batches(&seen),
        vec![
            (vec![0, 1, 2], BatchTrigger::Size),
            (vec![3, 4, 5], BatchTrigger::Size),
            (vec![6, 7, 8], BatchTrigger::Size),
            // The producer ran out: the partial batch is delivered as the pipeline drains.
            (vec![9], BatchTrigger::Drain),
        ]
    );
    assert!(seen.iter().all(|s| s.at == Duration::ZERO), "nothing waited for the timeout: {seen:?}");
    assert_eq!((acks.successful(), acks.failed()), (10, 0));
}

#[tokio::test(start_paused = true)]
async fn a_size_function_closes_batches_by_bytes() {
    // Close a batch once it holds 10 bytes or more.
    let by_bytes = BatchSize::by(0, |message: &Message<Item>, bytes| {
        let bytes = bytes + message.data().bytes;
        if bytes >= 10 {
            SizeStep::Emit
        } else {
            SizeStep::Cont(bytes)
        }
    });
    let sizes = [3, 3, 3, 3, 9, 1, 5, 5, 12, 2];
    let input = sizes.iter().zip(0..).map(|(&bytes, id)| item(id).bytes(bytes)).collect();
    let options = BatcherOptions::new().batch_size(by_bytes).batch_timeout(Duration::from_secs(60));
    let (seen, acks) = run(input, vec![("default", options)]).await;

    assert_eq!(
        batches(&seen),
        vec![
            (vec![0, 1, 2, 3], BatchTrigger::Size), // 3 + 3 + 3 + 3 = 12
            (vec![4, 5], BatchTrigger::Size),       // 9 + 1 = 10: the accumulator restarted at 0
            (vec![6, 7], BatchTrigger::Size),       // 5 + 5
            (vec![8], BatchTrigger::Size),          // one message over the size is a batch of one
            (vec![9], BatchTrigger::Drain),
        ]
    );
    assert_eq!(acks.successful(), 10);
}

#[tokio::test(start_paused = true)]
async fn a_size_function_starts_every_batch_from_init() {
    // A countdown from init: batches of 3 only if every batch starts at 3 again.
    let countdown = BatchSize::by(3, |_: &Message<Item>, left| match left {
        1 => SizeStep::Emit,
        left => SizeStep::Cont(left - 1),
    });
    let options = BatcherOptions::new().batch_size(countdown).batch_timeout(Duration::from_secs(60));
    let (seen, _) = run(items(0..7), vec![("default", options)]).await;

    assert_eq!(
        batches(&seen),
        vec![
            (vec![0, 1, 2], BatchTrigger::Size),
            (vec![3, 4, 5], BatchTrigger::Size),
            (vec![6], BatchTrigger::Drain),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn the_batch_timeout_starts_with_the_first_message_and_is_not_extended() {
    let options = BatcherOptions::new().batch_size(10).batch_timeout(Duration::from_secs(1));
    let (pipeline, queue) = start(Recorder::new(), options).await;

    queue.push(item(0));
    sleep(ms(900)).await;
    queue.push(item(1)); // at 0.9 s: joins the open batch, does not move its deadline
    sleep(ms(99)).await;
    assert!(pipeline.handler().seen().is_empty(), "closed before its timeout");
    sleep(ms(2)).await; // 1.001 s

    let seen = pipeline.handler().seen();
    assert_eq!(batches(&seen), vec![(vec![0, 1], BatchTrigger::Timeout)]);
    assert_eq!(seen[0].at, Duration::from_secs(1));

    // The next batch starts its own timer with its own first message.
    sleep(ms(499)).await;
    queue.push(item(2)); // at 1.5 s
    sleep(Duration::from_secs(2)).await;
    let seen = pipeline.handler().seen();
    assert_eq!(batches(&seen[1..]), vec![(vec![2], BatchTrigger::Timeout)]);
    assert_eq!(seen[1].at, ms(2500));

    assert!(pipeline.stop().await.graceful);
    assert_eq!(queue.acks().successful(), 3);
}

#[tokio::test(start_paused = true)]
async fn every_batch_has_its_own_deadline() {
    let options = BatcherOptions::new().batch_size(2).batch_timeout(Duration::from_secs(1));
    let (pipeline, queue) = start(Recorder::new(), options).await;

    // Key a opens at 0 and closes by size at once; its deadline (1 s) must not close the
    // batch that key a opens next, at 0.3 s.
    queue.push_all([item(0).key("a"), item(1).key("a")]);
    sleep(ms(300)).await;
    queue.push(item(2).key("a"));
    sleep(ms(200)).await;
    queue.push(item(3).key("b")); // at 0.5 s
    sleep(Duration::from_secs(3)).await;

    let seen = pipeline.handler().seen();
    let closed: Vec<_> = seen.iter().map(|s| (s.ids.clone(), s.info.trigger, s.at)).collect();
    assert_eq!(
        closed,
        vec![
            (vec![0, 1], BatchTrigger::Size, Duration::ZERO),
            (vec![2], BatchTrigger::Timeout, ms(1300)),
            (vec![3], BatchTrigger::Timeout, ms(1500)),
        ]
    );
    pipeline.stop().await;
}

#[tokio::test(start_paused = true)]
async fn messages_with_different_batch_keys_go_in_different_batches() {
    let input = vec![
        item(0).key("a"),
        item(1).key("b"),
        item(2).key("a"),
        item(3),
        item(4).key("b"),
        item(5).key("a"),
        item(6).key("a"),
    ];
    let options = BatcherOptions::new().batch_size(2).batch_timeout(Duration::from_secs(60));
    let (seen, acks) = run(input, vec![("default", options)]).await;

    let keyed: Vec<_> =
        seen.iter().map(|s| (s.info.batch_key.clone(), s.ids.clone(), s.info.trigger)).collect();
    assert_eq!(
        keyed,
        vec![
            (BatchKey::from("a"), vec![0, 2], BatchTrigger::Size),
            (BatchKey::from("b"), vec![1, 4], BatchTrigger::Size),
            (BatchKey::from("a"), vec![5, 6], BatchTrigger::Size),
            (BatchKey::Default, vec![3], BatchTrigger::Drain),
        ]
    );
    assert_eq!(acks.successful(), 7);
}

#[tokio::test(start_paused = true)]
async fn a_message_in_flush_mode_closes_its_batch_at_once() {
    let options = BatcherOptions::new().batch_size(10).batch_timeout(Duration::from_secs(60));
    let (pipeline, queue) = start(Recorder::new(), options).await;

    queue.push_all([item(0), item(1).key("other"), item(2), item(3).flush(), item(4)]);
    sleep(ms(1)).await;
    let seen = pipeline.handler().seen();
    // Only the batch the flushing message joined closes; the other key's batch waits.
    assert_eq!(batches(&seen), vec![(vec![0, 2, 3], BatchTrigger::Flush)]);
    assert_eq!(seen[0].at, Duration::ZERO);

    // A flushing message closes the open batch of its own key.
    queue.push(item(5).key("other").flush());
    sleep(ms(1)).await;
    assert_eq!(batches(&pipeline.handler().seen()[1..]), vec![(vec![1, 5], BatchTrigger::Flush)]);

    assert!(pipeline.stop().await.graceful);
    assert_eq!(batches(&pipeline.handler().seen()[2..]), vec![(vec![4], BatchTrigger::Drain)]);
}

#[tokio::test(start_paused = true)]
async fn test_batch_flushes_the_batch_of_its_last_message() {
    let options = BatcherOptions::new().batch_size(10).batch_timeout(Duration::from_secs(60));
    let (pipeline, _queue) = start(Recorder::new(), options).await;

    let same_key = within(pipeline.test_batch(items(0..4)).unwrap().all()).await;
    assert!(same_key.iter().all(|ack| ack.is_successful()));
    assert_eq!(batches(&pipeline.handler().seen()), vec![(vec![0, 1, 2, 3], BatchTrigger::Flush)]);
    assert_eq!(pipeline.handler().seen()[0].at, Duration::ZERO);

    // Only the last message is in flush mode: the other key's batch waits for its timeout.
    let two_keys = vec![item(4).key("a"), item(5).key("b"), item(6).key("a"), item(7).key("b")];
    let acks = within(pipeline.test_batch(two_keys).unwrap().all()).await;
    assert_eq!(acks.iter().map(|ack| ack.tag).collect::<Vec<_>>(), vec![0, 1, 2, 3]);
    let seen = pipeline.handler().seen();
    let closed: Vec<_> = seen[1..].iter().map(|s| (s.ids.clone(), s.info.trigger, s.at)).collect();
    assert_eq!(
        closed,
        vec![
            (vec![5, 7], BatchTrigger::Flush, Duration::ZERO),
            (vec![4, 6], BatchTrigger::Timeout, Duration::from_secs(60)),
        ]
    );
    pipeline.stop().await;
}

#[tokio::test(start_paused = true)]
async fn stopping_delivers_partial_batches_oldest_first() {
    let options = BatcherOptions::new().batch_size(10).batch_timeout(Duration::from_secs(20));
    let (pipeline, queue) = start(Recorder::new(), options).await;

    queue.push_all([item(0).key("b"), item(1).key("a"), item(2).key("b")]);
    sleep(ms(100)).await;
    queue.push_all([item(3).key("c"), item(4).key("a")]);
    sleep(ms(100)).await;
    assert!(pipeline.handler().seen().is_empty());

    let report = pipeline.stop().await;
    assert!(report.graceful, "{report:?}");
    assert_eq!(report.elapsed, Duration::ZERO, "the drain waited for the batch timeout");
    let seen = pipeline.handler().seen();
    let keyed: Vec<_> =
        seen.iter().map(|s| (s.info.batch_key.to_string(), s.ids.clone(), s.info.trigger)).collect();
    assert_eq!(
        keyed,
        vec![
            ("b".to_string(), vec![0, 2], BatchTrigger::Drain),
            ("a".to_string(), vec![1, 4], BatchTrigger::Drain),
            ("c".to_string(), vec![3], BatchTrigger::Drain),
        ]
    );
    assert_eq!((queue.acks().successful(), queue.acks().failed()), (5, 0));
    assert!(!pipeline.is_running());
}

#[tokio::test(start_paused = true)]
async fn batch_info_names_batcher_key_and_partition() {
    let options = BatcherOptions::new()
        .batch_size(2)
        .batch_timeout(Duration::from_secs(60))
        .concurrency(2)
        .partition_by(|message: &Message<Item>| message.data().id % 2);
    let input = (0..9).map(|id| item(id).to("parity").key(if id < 4 { "low" } else { "high" })).collect();
    let (mut seen, _) = run(input, vec![("parity", options)]).await;

    // Two batch processors: the order between partitions is not promised.
    seen.sort_by_key(|s| s.ids[0]);
    let infos: Vec<_> = seen.iter().map(|s| (s.ids.clone(), s.info.clone())).collect();
    let info = |key: &str, partition: usize, size: usize, trigger: BatchTrigger| {
        BatchInfo::new("parity", key.into(), Some(partition), size, trigger)
    };
    assert_eq!(
        infos,
        vec![
            (vec![0, 2], info("low", 0, 2, BatchTrigger::Size)),
            (vec![1, 3], info("low", 1, 2, BatchTrigger::Size)),
            (vec![4, 6], info("high", 0, 2, BatchTrigger::Size)),
            (vec![5, 7], info("high", 1, 2, BatchTrigger::Size)),
            (vec![8], info("high", 0, 1, BatchTrigger::Drain)),
        ]
    );
    assert_eq!(seen[0].info.to_string(), "batch of 2 from parity (key low, partition 0) closed by size");

    // Without partition_by, there is no partition.
    let (seen, _) = run(items(0..2), vec![("default", BatcherOptions::new().batch_size(2))]).await;
    assert_eq!(seen[0].info, BatchInfo::new("default", BatchKey::Default, None, 2, BatchTrigger::Size));
}

#[tokio::test(start_paused = true)]
async fn put_batcher_routes_messages_to_named_batchers() {
    let input = (0..10).map(|id| item(id).to(if id % 3 == 0 { "threes" } else { "rest" })).collect();
    let (seen, acks) = run(
        input,
        vec![
            ("rest", BatcherOptions::new().batch_size(4).batch_timeout(Duration::from_secs(60))),
            ("threes", BatcherOptions::new().batch_size(2).batch_timeout(Duration::from_secs(60))),
        ],
    )
    .await;

    let of = |batcher: &str| -> Vec<_> {
        seen.iter().filter(|s| &*s.info.batcher == batcher).map(|s| (s.ids.clone(), s.info.trigger)).collect()
    };
    assert_eq!(of("rest"), vec![(vec![1, 2, 4, 5], BatchTrigger::Size), (vec![7, 8], BatchTrigger::Drain)]);
    assert_eq!(of("threes"), vec![(vec![0, 3], BatchTrigger::Size), (vec![6, 9], BatchTrigger::Size)]);
    assert_eq!(seen.len(), 4);
    assert_eq!(acks.successful(), 10);
}

#[tokio::test(start_paused = true)]
async fn an_unknown_batcher_fails_the_message() {
    let input = vec![item(0).to("sql"), item(1).to("nope"), item(2), item(3).to("sql")];
    let (seen, acks) = run(
        input,
        vec![("sql", BatcherOptions::new().batch_size(2)), ("s3", BatcherOptions::new().batch_size(2))],
    )
    .await;

    assert_eq!(batches(&seen), vec![(vec![0, 3], BatchTrigger::Size)]);
    let known = r#""sql", "s3""#.to_string();
    assert_eq!(
        acks.failures(),
        vec![
            (1, Failure::UnknownBatcher { batcher: "nope".into(), known: known.clone() }),
            // Without put_batcher a message goes to "default", which this pipeline lacks.
            (2, Failure::UnknownBatcher { batcher: "default".into(), known }),
        ]
    );
    assert_eq!(acks.failures()[0].1.to_string(), r#"unknown batcher "nope" (the pipeline has "sql", "s3")"#);
    assert_eq!((acks.successful(), acks.failed()), (2, 2));
}

/// Six batches of 10 messages at once, `handle_batch` taking 1 s each.
async fn six_slow_batches(concurrency: usize) -> Vec<Seen> {
    let options = BatcherOptions::new().batch_size(10).concurrency(concurrency);
    let (pipeline, queue) = start(Recorder::working(Duration::from_secs(1)), options).await;
    queue.push_all(items(0..60));
    sleep(Duration::from_secs(10)).await;
    let seen = pipeline.handler().seen();
    assert_eq!(pipeline.handler().most_running.load(Ordering::SeqCst), concurrency);
    assert!(pipeline.stop().await.graceful);
    assert_eq!(queue.acks().successful(), 60);
    seen
}

#[tokio::test(start_paused = true)]
async fn batcher_concurrency_spreads_batches_over_batch_processors() {
    let starts = |seen: &[Seen]| seen.iter().map(|s| s.at.as_secs()).collect::<Vec<_>>();

    let seen = six_slow_batches(1).await;
    assert_eq!(starts(&seen), vec![0, 1, 2, 3, 4, 5]);

    let mut seen = six_slow_batches(3).await;
    // Three batch processors take two batches each, side by side.
    assert_eq!(starts(&seen), vec![0, 0, 0, 1, 1, 1]);
    seen.sort_by_key(|s| s.ids[0]);
    let all: Vec<u64> = seen.iter().flat_map(|s| s.ids.clone()).collect();
    assert_eq!(all, (0..60).collect::<Vec<_>>());
    assert!(seen.iter().all(|s| s.info.size == 10 && s.info.trigger == BatchTrigger::Size));
}

#[tokio::test(start_paused = true)]
async fn a_huge_batch_size_batches_by_timeout_only() {
    // A batcher must not allocate a batch's whole size up front.
    let options = BatcherOptions::new().batch_size(usize::MAX).batch_timeout(Duration::from_secs(1));
    let (pipeline, queue) = start(Recorder::new(), options).await;
    queue.push_all(items(0..5));
    sleep(ms(1500)).await;

    let seen = pipeline.handler().seen();
    assert_eq!(batches(&seen), vec![(vec![0, 1, 2, 3, 4], BatchTrigger::Timeout)]);
    assert_eq!(seen[0].at, Duration::from_secs(1));
    let report = pipeline.stop().await;
    assert!(report.graceful && report.error.is_none(), "{report:?}");
    assert_eq!((queue.acks().successful(), queue.acks().failed()), (5, 0));
}
