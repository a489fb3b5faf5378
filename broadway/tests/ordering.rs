//! Ordering: with `partition_by`, the messages of one partition go through one processor
//! and one batch processor, in order; `message_concurrency` runs up to n `handle_message`
//! futures at once per processor, keeps the outputs in order, and still runs one
//! partition's messages one after the other.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::{ids, Tally};
use tokio::task::Id;
use weir_broadway::{
    AckData, BatchHandler, BatchInfo, BatcherOptions, BoxError, Handler, Message, Pipeline, ProcessorOptions,
    Producer, ProducerContext, ProducerOptions,
};

fn task() -> Id {
    tokio::task::try_id().unwrap()
}

/// Records which task (stage) saw each id, in `handle_message` and `handle_batch`; with
/// `delay`, `handle_message` sleeps and measures how many calls run at once, overall and
/// per key.
#[derive(Default)]
struct Recorder {
    keys: u64,
    delay: Option<Duration>,
    processed: Mutex<Vec<(u64, Id)>>,
    batched: Mutex<Vec<(u64, Id, Option<usize>)>>,
    running: AtomicUsize,
    most_running: AtomicUsize,
    running_per_key: Mutex<HashMap<u64, usize>>,
    most_per_key: AtomicUsize,
}

impl Handler for Recorder {
    type Data = u64;
    type Output = u64;

    async fn handle_message(&self, message: &mut Message<u64>) -> Result<u64, BoxError> {
        let id = *message.data();
        self.processed.lock().unwrap().push((id, task()));
        if let Some(delay) = self.delay {
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_running.fetch_max(now, Ordering::SeqCst);
            let per_key = {
                let mut running = self.running_per_key.lock().unwrap();
                let slot = running.entry(id % self.keys).or_default();
                *slot += 1;
                *slot
            };
            self.most_per_key.fetch_max(per_key, Ordering::SeqCst);
            // Later ids of a chunk finish first, so that a reordering would show.
            tokio::time::sleep(delay * u32::try_from(4 - id % 4).unwrap()).await;
            *self.running_per_key.lock().unwrap().get_mut(&(id % self.keys)).unwrap() -= 1;
            self.running.fetch_sub(1, Ordering::SeqCst);
        }
        Ok(id)
    }
}

impl BatchHandler for Recorder {
    async fn handle_batch(&self, messages: &mut [Message<u64>], info: &BatchInfo) -> Result<(), BoxError> {
        assert_eq!(messages.len(), info.size);
        let mut batched = self.batched.lock().unwrap();
        batched.extend(messages.iter().map(|m| (*m.data(), task(), info.partition)));
        Ok(())
    }
}

/// Groups `(id, stage)` records by key, in record order.
fn by_key<S: Copy>(records: &[(u64, S)], keys: u64) -> BTreeMap<u64, Vec<(u64, S)>> {
    let mut groups: BTreeMap<u64, Vec<(u64, S)>> = BTreeMap::new();
    for &(id, stage) in records {
        groups.entry(id % keys).or_default().push((id, stage));
    }
    groups
}

/// Asserts that each key's ids come in increasing order, all from one stage; returns the
/// stages seen.
fn assert_ordered_on_one_stage<S: Copy + Ord + std::fmt::Debug>(
    records: &[(u64, S)],
    keys: u64,
    per_key: u64,
) -> BTreeSet<S> {
    let mut stages = BTreeSet::new();
    for (key, seen) in by_key(records, keys) {
        let ids: Vec<u64> = seen.iter().map(|(id, _)| *id).collect();
        let expected: Vec<u64> = (0..per_key).map(|i| i * keys + key).collect();
        assert_eq!(ids, expected, "key {key}: ids out of order");
        let on: BTreeSet<S> = seen.iter().map(|(_, s)| *s).collect();
        assert_eq!(on.len(), 1, "key {key} went through several stages: {on:?}");
        stages.extend(on);
    }
    stages
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_goes_through_one_processor_and_one_batch_processor_in_order() {
    const KEYS: u64 = 7;
    const PER_KEY: u64 = 150;
    let n = KEYS * PER_KEY;
    let tally = Arc::new(Tally::default());
    let pipeline = Pipeline::builder("ordered", Recorder { keys: KEYS, ..Recorder::default() })
        .producer(ids(n, &tally), ProducerOptions::new())
        .processors(ProcessorOptions::new().concurrency(4).max_demand(5).partition_by(|m| m.data() % KEYS))
        .batcher(
            "default",
            BatcherOptions::new()
                .batch_size(6)
                .concurrency(3)
                .partition_by(|m: &Message<u64>| m.data() % KEYS),
        )
        .start()
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(60), pipeline.wait()).await.unwrap().unwrap();

    let handler = pipeline.handler();
    let processed = handler.processed.lock().unwrap().clone();
    assert_eq!(processed.len() as u64, n);
    let processors = assert_ordered_on_one_stage(&processed, KEYS, PER_KEY);
    assert_eq!(processors.len(), 4, "7 keys spread over the 4 processors");

    let batched = handler.batched.lock().unwrap().clone();
    let by_stage: Vec<(u64, Id)> = batched.iter().map(|&(id, stage, _)| (id, stage)).collect();
    let batch_processors = assert_ordered_on_one_stage(&by_stage, KEYS, PER_KEY);
    assert_eq!(batch_processors.len(), 3, "7 keys spread over the 3 batch processors");
    assert!(processors.is_disjoint(&batch_processors));
    for (id, _, partition) in batched {
        assert_eq!(partition, Some(usize::try_from(id % KEYS % 3).unwrap()), "id {id}");
    }
    tally.assert_all_successful(n);
}

/// Runs 60 ids through one processor with `processor` options and one batch processor;
/// returns the handler and the ids in the order `handle_batch` saw them.
async fn through_one_processor(processor: ProcessorOptions<u64>, keys: u64) -> (Arc<Recorder>, Vec<u64>) {
    let n = 60;
    let tally = Arc::new(Tally::default());
    let handler = Recorder { keys, delay: Some(Duration::from_millis(10)), ..Recorder::default() };
    let pipeline = Pipeline::builder("concurrent", handler)
        .producer(ids(n, &tally), ProducerOptions::new())
        .processors(processor.concurrency(1).max_demand(12))
        .batcher("default", BatcherOptions::new().batch_size(1000).batch_timeout(Duration::from_secs(3600)))
        .start()
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(600), pipeline.wait()).await.unwrap().unwrap();
    tally.assert_all_successful(n);
    let handler = pipeline.handler().clone();
    let batched = handler.batched.lock().unwrap().iter().map(|(id, _, _)| *id).collect();
    (handler, batched)
}

#[tokio::test(start_paused = true)]
async fn message_concurrency_runs_up_to_n_calls_at_once_and_keeps_the_order() {
    for n in [1, 2, 3, 5] {
        let (handler, batched) =
            through_one_processor(ProcessorOptions::new().message_concurrency(n), 1).await;
        assert_eq!(handler.most_running.load(Ordering::SeqCst), n, "message_concurrency {n}");
        assert_eq!(batched, (0..60).collect::<Vec<_>>(), "outputs out of order with message_concurrency {n}");
    }
}

#[tokio::test(start_paused = true)]
async fn message_concurrency_runs_one_partition_at_a_time() {
    const KEYS: u64 = 5;
    let options =
        ProcessorOptions::new().message_concurrency(3).partition_by(|m: &Message<u64>| m.data() % KEYS);
    let (handler, batched) = through_one_processor(options, KEYS).await;
    assert_eq!(handler.most_per_key.load(Ordering::SeqCst), 1, "a partition ran two calls at once");
    assert_eq!(handler.most_running.load(Ordering::SeqCst), 3, "partitions side by side, 3 at a time");
    let processed = handler.processed.lock().unwrap().clone();
    assert_ordered_on_one_stage(&processed, KEYS, 60 / KEYS);
    assert_eq!(batched, (0..60).collect::<Vec<_>>(), "outputs out of order");
}

/// Emits ids `0..n` in order, in groups `id % keys` (as a Kafka producer emits the offsets
/// of its partitions), and says its groups are ordered.
struct Grouped {
    next: u64,
    end: u64,
    keys: u64,
    tally: Arc<Tally>,
}

impl Producer for Grouped {
    type Event = Message<u64>;
    type Info = ();
    const ORDERED_BY_GROUP: bool = true;

    async fn handle_demand(
        &mut self,
        demand: usize,
        ctx: &mut ProducerContext<'_, ()>,
    ) -> Result<Vec<Message<u64>>, BoxError> {
        let end = (self.next + demand as u64).min(self.end);
        let messages = (self.next..end)
            .map(|id| Message::new(id, self.tally.clone(), AckData::new(id).with_group(id % self.keys)))
            .collect();
        self.next = end;
        if end == self.end {
            ctx.finish();
        }
        Ok(messages)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ordered_producers_groups_keep_their_order_without_partition_by() {
    const KEYS: u64 = 5;
    const PER_KEY: u64 = 60;
    let n = KEYS * PER_KEY;
    let tally = Arc::new(Tally::default());
    let producer = {
        let tally = tally.clone();
        move || Grouped { next: 0, end: n, keys: KEYS, tally: tally.clone() }
    };
    let recorder = Recorder { keys: KEYS, delay: Some(Duration::from_micros(200)), ..Recorder::default() };
    let pipeline = Pipeline::builder("grouped", recorder)
        .producer(producer, ProducerOptions::new())
        .processors(ProcessorOptions::new().concurrency(3).max_demand(4))
        .batcher("default", BatcherOptions::new().batch_size(7).concurrency(2))
        .start()
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(60), pipeline.wait()).await.unwrap().unwrap();

    let handler = pipeline.handler();
    let processed = handler.processed.lock().unwrap().clone();
    assert_eq!(processed.len() as u64, n);
    let processors = assert_ordered_on_one_stage(&processed, KEYS, PER_KEY);
    assert_eq!(processors.len(), 3, "5 groups spread over the 3 processors");
    let batched = handler.batched.lock().unwrap().clone();
    let by_stage: Vec<(u64, Id)> = batched.iter().map(|&(id, stage, _)| (id, stage)).collect();
    assert_eq!(assert_ordered_on_one_stage(&by_stage, KEYS, PER_KEY).len(), 2);
    tally.assert_all_successful(n);
}
