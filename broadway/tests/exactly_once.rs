//! Exactly once: random pipelines (producers, processors, batchers, message concurrency,
//! partitions, retries) with random failures (errors, panics, `fail`, unknown batchers,
//! failed and erring batches) acknowledge every message exactly once, and fail exactly the
//! messages that should fail.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use proptest::prelude::*;
use support::{ids, Tally};
use weir_broadway::{
    BatchHandler, BatchInfo, BatcherOptions, BoxError, Failure, Handler, Message, Pipeline, ProcessorOptions,
    ProducerOptions, RetryPolicy,
};

/// What happens to one message.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    None,
    /// `handle_message` returns an error.
    Error,
    /// `handle_message` returns an error on the first try only.
    ErrorOnce,
    /// `handle_message` panics.
    Panic,
    /// `handle_message` calls `fail`.
    Fail,
    /// `handle_message` sends it to a batcher that does not exist.
    UnknownBatcher,
    /// `handle_batch` fails it.
    FailInBatch,
    /// `handle_batch` fails it on the first try only.
    FailInBatchOnce,
    /// `handle_batch` returns an error for its whole batch.
    ErrBatch,
    /// `handle_batch` panics for its whole batch.
    PanicBatch,
}

const BATCHERS: [&str; 2] = ["b0", "b1"];

#[derive(Debug, Clone)]
struct Case {
    faults: Vec<Fault>,
    producers: usize,
    processors: usize,
    max_demand: usize,
    message_concurrency: usize,
    partition: bool,
    batch_keys: bool,
    /// (batch size, batch processors, partition_by) of each batcher.
    batchers: Vec<(usize, usize, bool)>,
    retry: Option<u32>,
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        12 => Just(Fault::None),
        1 => Just(Fault::Error),
        1 => Just(Fault::ErrorOnce),
        1 => Just(Fault::Panic),
        1 => Just(Fault::Fail),
        1 => Just(Fault::UnknownBatcher),
        1 => Just(Fault::FailInBatch),
        1 => Just(Fault::FailInBatchOnce),
        1 => Just(Fault::ErrBatch),
        1 => Just(Fault::PanicBatch),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(fault(), 0..=300),
        (1..=3usize, 1..=4usize, 1..=20usize, 1..=3usize),
        (any::<bool>(), any::<bool>()),
        prop::collection::vec((1..=50usize, 1..=3usize, any::<bool>()), 0..=2),
        prop::option::of(2..=3u32),
    )
        .prop_map(
            |(
                faults,
                (producers, processors, max_demand, message_concurrency),
                (partition, batch_keys),
                batchers,
                retry,
            )| {
                Case {
                    faults,
                    producers,
                    processors,
                    max_demand,
                    message_concurrency,
                    partition,
                    batch_keys,
                    batchers,
                    retry,
                }
            },
        )
}

/// Applies the faults; records the batches it failed whole.
struct Faulty {
    faults: Vec<Fault>,
    batchers: usize,
    batch_keys: bool,
    failed_batches: Mutex<Vec<Vec<u64>>>,
}

impl Handler for Faulty {
    type Data = u64;
    type Output = u64;

    async fn handle_message(&self, message: &mut Message<u64>) -> Result<u64, BoxError> {
        let id = *message.data();
        if self.batchers > 0 {
            message.put_batcher(BATCHERS[usize::try_from(id).unwrap() % self.batchers]);
        }
        if self.batch_keys {
            message.put_batch_key(id % 3);
        }
        match self.faults[usize::try_from(id).unwrap()] {
            Fault::Error => return Err("injected error".into()),
            Fault::ErrorOnce if message.attempts() == 1 => return Err("injected error".into()),
            Fault::Panic => panic!("injected panic"),
            Fault::Fail => message.fail("injected failure"),
            Fault::UnknownBatcher => message.put_batcher("nope"),
            _ => {}
        }
        Ok(id)
    }
}

impl BatchHandler for Faulty {
    async fn handle_batch(&self, messages: &mut [Message<u64>], info: &BatchInfo) -> Result<(), BoxError> {
        assert_eq!(messages.len(), info.size);
        assert!(messages.iter().all(|m| m.batcher() == &*info.batcher && m.batch_key() == &info.batch_key));
        let faults: Vec<Fault> =
            messages.iter().map(|m| self.faults[usize::try_from(*m.data()).unwrap()]).collect();
        if faults.iter().any(|f| matches!(f, Fault::ErrBatch | Fault::PanicBatch)) {
            self.failed_batches.lock().unwrap().push(messages.iter().map(|m| *m.data()).collect());
            if faults.contains(&Fault::PanicBatch) {
                panic!("injected batch panic");
            }
            return Err("injected batch error".into());
        }
        for (message, fault) in messages.iter_mut().zip(faults) {
            if fault == Fault::FailInBatch || (fault == Fault::FailInBatchOnce && message.attempts() == 1) {
                message.fail("injected batch failure");
            }
        }
        Ok(())
    }
}

/// Runs `case`; returns each id's acknowledgements and the batches failed whole.
async fn run(case: &Case) -> (BTreeMap<u64, Vec<Option<Failure>>>, Vec<Vec<u64>>) {
    let n = case.faults.len() as u64;
    let tally = Arc::new(Tally::default());
    let handler = Faulty {
        faults: case.faults.clone(),
        batchers: case.batchers.len(),
        batch_keys: case.batch_keys,
        failed_batches: Mutex::default(),
    };
    let mut processors = ProcessorOptions::new()
        .concurrency(case.processors)
        .max_demand(case.max_demand)
        .message_concurrency(case.message_concurrency);
    if case.partition {
        processors = processors.partition_by(|m| m.data() % 5);
    }
    let mut builder = Pipeline::builder("exactly_once", handler)
        .producer(ids(n, &tally), ProducerOptions::new().concurrency(case.producers))
        .processors(processors);
    for (&(size, concurrency, partition), name) in case.batchers.iter().zip(BATCHERS) {
        let mut options = BatcherOptions::new().batch_size(size).concurrency(concurrency);
        if partition {
            options = options.partition_by(|m: &Message<u64>| m.data() / 2);
        }
        builder = builder.batcher(name, options);
    }
    if let Some(attempts) = case.retry {
        let backoff = Duration::from_millis(1);
        builder = builder.retry(RetryPolicy::new(attempts).backoff(backoff, backoff).jitter(false));
    }
    let pipeline = builder.start().await.unwrap();
    tokio::time::timeout(Duration::from_secs(60), pipeline.wait()).await.expect("the pipeline ends").unwrap();
    assert_eq!(pipeline.in_flight(), 0);

    let mut acks: BTreeMap<u64, Vec<Option<Failure>>> = BTreeMap::new();
    for (tag, failure) in tally.take() {
        acks.entry(tag).or_default().push(failure);
    }
    let failed_batches = std::mem::take(&mut *pipeline.handler().failed_batches.lock().unwrap());
    (acks, failed_batches)
}

/// The failure `fault` must cause by itself, if any: `Some(None)` for a failure in a batch
/// (whose kind depends on its batch).
fn expected_failure(fault: Fault, batchers: bool, retry: bool) -> Option<Option<fn(&Failure) -> bool>> {
    match fault {
        Fault::None => None,
        Fault::Error | Fault::ErrorOnce if fault == Fault::Error || !retry => {
            Some(Some(|f| matches!(f, Failure::Error { callback: "handle_message", .. })))
        }
        Fault::Panic => Some(Some(|f| matches!(f, Failure::Panic { callback: "handle_message", .. }))),
        Fault::Fail => Some(Some(|f| *f == Failure::Failed("injected failure".into()))),
        Fault::UnknownBatcher if batchers => Some(Some(|f| matches!(f, Failure::UnknownBatcher { .. }))),
        Fault::FailInBatch | Fault::ErrBatch | Fault::PanicBatch if batchers => Some(None),
        Fault::FailInBatchOnce if batchers && !retry => Some(None),
        _ => None,
    }
}

/// Keeps the injected panics out of the output.
fn quiet_injected_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let injected = info.payload().downcast_ref::<&str>().is_some_and(|m| m.starts_with("injected"));
            if !injected {
                default(info);
            }
        }));
    });
}

proptest! {
    // No regression files: a failure prints its minimal case.
    #![proptest_config(ProptestConfig { cases: 32, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn every_message_is_acknowledged_exactly_once(case in case()) {
        quiet_injected_panics();
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let (acks, failed_batches) = rt.block_on(run(&case));
        let fault = |id: u64| case.faults[usize::try_from(id).unwrap()];
        // A batch failed whole only because of a poisoned message in it.
        for batch in &failed_batches {
            prop_assert!(batch.iter().any(|id| matches!(fault(*id), Fault::ErrBatch | Fault::PanicBatch)));
        }
        let failed_batches: BTreeSet<u64> = failed_batches.into_iter().flatten().collect();

        let n = case.faults.len() as u64;
        prop_assert_eq!(acks.keys().copied().collect::<Vec<_>>(), (0..n).collect::<Vec<_>>());
        let batchers = !case.batchers.is_empty();
        for (id, got) in &acks {
            prop_assert_eq!(got.len(), 1, "id {} acknowledged {} times: {:?}", id, got.len(), got);
            let fault = fault(*id);
            let failure = got[0].as_ref();
            match expected_failure(fault, batchers, case.retry.is_some()) {
                Some(Some(kind)) => prop_assert!(failure.is_some_and(kind), "id {} ({:?}): {:?}", id, fault, failure),
                _ if failed_batches.contains(id) => {
                    let in_batch = |f: &Failure| matches!(f, Failure::Error { callback: "handle_batch", .. }
                        | Failure::Panic { callback: "handle_batch", .. });
                    prop_assert!(failure.is_some_and(in_batch), "id {} failed with its batch: {:?}", id, failure);
                }
                Some(None) => {
                    prop_assert_eq!(failure, Some(&Failure::Failed("injected batch failure".into())), "id {}", id);
                }
                None => prop_assert!(failure.is_none(), "id {} ({:?}) should succeed: {:?}", id, fault, failure),
            }
        }
    }
}
