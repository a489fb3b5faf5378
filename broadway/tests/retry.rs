//! Retries: a [`RetryPolicy`] tries failed messages again after its backoff (on the paused
//! clock), `Message::attempts` counts the tries, a message that succeeds on a retry is
//! acknowledged as successful, one that exhausts its attempts goes to the dead-letter hook
//! and is acknowledged as failed; `handle_batch` is retried with only the failed messages.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::{ids, Tally};
use tokio::time::Instant;
use weir_broadway::{
    BatchHandler, BatchInfo, BatcherOptions, BoxError, Failure, Handler, Message, Pipeline, ProcessorOptions,
    ProducerOptions, RetryPolicy,
};

/// Runs ids `0..n` through `handler` with `policy`, with one processor (and a batcher of 10
/// when `batched`); returns the handler and the failed acknowledgements.
async fn run<H>(handler: H, n: u64, policy: RetryPolicy, batched: bool) -> (Arc<H>, BTreeMap<u64, Failure>)
where
    H: BatchHandler<Data = u64>,
{
    let tally = Arc::new(Tally::default());
    let mut builder = Pipeline::builder("retry", handler)
        .producer(ids(n, &tally), ProducerOptions::new())
        .processors(ProcessorOptions::new().concurrency(1).max_demand(10))
        .retry(policy);
    if batched {
        builder = builder.batcher(
            "default",
            BatcherOptions::new().batch_size(10).batch_timeout(Duration::from_secs(3600)),
        );
    }
    let pipeline = builder.start().await.unwrap();
    tokio::time::timeout(Duration::from_secs(3600), pipeline.wait()).await.unwrap().unwrap();
    let failed = tally.failed_once_each(n);
    (pipeline.handler().clone(), failed)
}

fn policy() -> RetryPolicy {
    RetryPolicy::new(3)
        .backoff(Duration::from_millis(100), Duration::from_secs(10))
        .multiplier(3.0)
        .jitter(false)
}

/// `handle_message` by id % 4: 0 succeeds, 1 errs once, 2 panics once, 3 always fails.
#[derive(Default)]
struct Flaky {
    /// (id, attempts, when) of every call.
    calls: Mutex<Vec<(u64, u32, Instant)>>,
    /// (id, attempts, failure) of the messages `handle_failed` saw.
    dead: Mutex<Vec<(u64, u32, Failure)>>,
}

impl Handler for Flaky {
    type Data = u64;
    type Output = u64;

    async fn handle_message(&self, message: &mut Message<u64>) -> Result<u64, BoxError> {
        let (id, attempts) = (*message.data(), message.attempts());
        self.calls.lock().unwrap().push((id, attempts, Instant::now()));
        match (id % 4, attempts) {
            (1, 1) => Err("not yet".into()),
            (2, 1) => panic!("injected panic"),
            (3, _) => {
                message.fail("always");
                Ok(id)
            }
            _ => Ok(id),
        }
    }

    async fn handle_failed(&self, messages: &mut [Message<u64>]) {
        let mut dead = self.dead.lock().unwrap();
        dead.extend(messages.iter().map(|m| (*m.data(), m.attempts(), m.failure().cloned().unwrap())));
    }
}

impl BatchHandler for Flaky {
    async fn handle_batch(&self, _: &mut [Message<u64>], _: &BatchInfo) -> Result<(), BoxError> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn failed_messages_are_retried_after_the_backoff_then_dead_lettered() {
    let n = 40;
    let (handler, failed) = run(Flaky::default(), n, policy(), false).await;

    let mut calls: BTreeMap<u64, Vec<(u32, Instant)>> = BTreeMap::new();
    for &(id, attempts, at) in handler.calls.lock().unwrap().iter() {
        calls.entry(id).or_default().push((attempts, at));
    }
    assert_eq!(calls.len() as u64, n);
    for (id, tries) in &calls {
        let attempts: Vec<u32> = tries.iter().map(|(a, _)| *a).collect();
        let expected = match id % 4 {
            0 => vec![1],
            1 | 2 => vec![1, 2],
            _ => vec![1, 2, 3],
        };
        assert_eq!(attempts, expected, "id {id}");
        // Each retry waits its backoff exactly: 100 ms, then 300 ms (no jitter).
        let waits: Vec<Duration> = tries.windows(2).map(|w| w[1].1 - w[0].1).collect();
        let backoffs = [Duration::from_millis(100), Duration::from_millis(300)];
        assert_eq!(waits, backoffs[..waits.len()], "id {id}");
    }

    let dead = handler.dead.lock().unwrap().clone();
    let always: Vec<u64> = (0..n).filter(|id| id % 4 == 3).collect();
    assert_eq!(dead.iter().map(|(id, _, _)| *id).collect::<Vec<_>>(), always);
    for (id, attempts, failure) in dead {
        assert_eq!(attempts, 3, "id {id} reached handle_failed after all its attempts");
        assert_eq!(failure, Failure::Failed("always".into()));
    }
    assert_eq!(failed.keys().copied().collect::<Vec<_>>(), always, "only the exhausted ones failed");
    assert!(failed.values().all(|f| *f == Failure::Failed("always".into())));
}

#[tokio::test(start_paused = true)]
async fn a_single_attempt_policy_does_not_retry() {
    let (handler, failed) = run(Flaky::default(), 8, RetryPolicy::new(1).jitter(false), false).await;
    assert_eq!(handler.calls.lock().unwrap().len(), 8, "no retries");
    assert_eq!(failed.keys().copied().collect::<Vec<_>>(), vec![1, 2, 3, 5, 6, 7]);
    assert!(matches!(failed[&1], Failure::Error { callback: "handle_message", .. }));
    assert!(matches!(failed[&2], Failure::Panic { callback: "handle_message", .. }));
    let dead = handler.dead.lock().unwrap();
    assert!(dead.iter().all(|(_, attempts, _)| *attempts == 1));
}

/// `handle_batch`: the batch of 20..30 errs on its first try; ids % 5 == 0 fail on the
/// first try and ids % 10 == 0 on every try.
#[derive(Default)]
struct FlakyBatches {
    /// (attempts, ids, info.size, when) of every call.
    calls: Mutex<Vec<(u32, Vec<u64>, usize, Instant)>>,
    /// (id, attempts, failure) of the messages `handle_failed_batch` saw.
    dead: Mutex<Vec<(u64, u32, Failure)>>,
}

impl Handler for FlakyBatches {
    type Data = u64;
    type Output = u64;

    async fn handle_message(&self, message: &mut Message<u64>) -> Result<u64, BoxError> {
        Ok(*message.data())
    }
}

impl BatchHandler for FlakyBatches {
    async fn handle_batch(&self, messages: &mut [Message<u64>], info: &BatchInfo) -> Result<(), BoxError> {
        let attempts = messages[0].attempts();
        assert!(messages.iter().all(|m| m.attempts() == attempts && !m.is_failed()));
        let ids: Vec<u64> = messages.iter().map(|m| *m.data()).collect();
        self.calls.lock().unwrap().push((attempts, ids.clone(), info.size, Instant::now()));
        if attempts == 1 && ids.contains(&25) {
            return Err("db down".into());
        }
        for message in messages {
            let id = *message.data();
            if id % 10 == 0 || (attempts == 1 && id % 5 == 0) {
                message.fail("still down");
            }
        }
        Ok(())
    }

    async fn handle_failed_batch(&self, messages: &mut [Message<u64>], info: &BatchInfo) {
        assert_eq!(info.size, messages.len());
        let mut dead = self.dead.lock().unwrap();
        dead.extend(messages.iter().map(|m| (*m.data(), m.attempts(), m.failure().cloned().unwrap())));
    }
}

#[tokio::test(start_paused = true)]
async fn handle_batch_is_retried_with_only_the_failed_messages() {
    let (handler, failed) = run(FlakyBatches::default(), 30, policy(), true).await;

    // One processor and batches of 10: the batches are 0..10, 10..20 and 20..30.
    let calls = handler.calls.lock().unwrap().clone();
    let mut by_batch: BTreeMap<u64, Vec<(u32, Vec<u64>, usize, Instant)>> = BTreeMap::new();
    for call in calls {
        by_batch.entry(call.1[0] / 10).or_default().push(call);
    }
    let tried = |batch: u64| -> Vec<(u32, Vec<u64>)> {
        by_batch[&batch]
            .iter()
            .map(|(attempts, ids, size, _)| {
                assert_eq!(*size, ids.len(), "info.size is the retried batch's size");
                (*attempts, ids.clone())
            })
            .collect()
    };
    assert_eq!(tried(0), vec![(1, (0..10).collect()), (2, vec![0, 5]), (3, vec![0])]);
    assert_eq!(tried(1), vec![(1, (10..20).collect()), (2, vec![10, 15]), (3, vec![10])]);
    assert_eq!(tried(2), vec![(1, (20..30).collect()), (2, (20..30).collect()), (3, vec![20])]);
    for (batch, tries) in &by_batch {
        let waits: Vec<Duration> = tries.windows(2).map(|w| w[1].3 - w[0].3).collect();
        assert_eq!(waits, [Duration::from_millis(100), Duration::from_millis(300)], "batch {batch}");
    }

    let dead = handler.dead.lock().unwrap().clone();
    let mut dead_ids: Vec<u64> = dead.iter().map(|(id, _, _)| *id).collect();
    dead_ids.sort_unstable();
    assert_eq!(dead_ids, vec![0, 10, 20]);
    assert!(dead.iter().all(|(_, attempts, f)| *attempts == 3 && *f == Failure::Failed("still down".into())));
    assert_eq!(failed.keys().copied().collect::<Vec<_>>(), vec![0, 10, 20]);
}

/// `handle_message` fails even ids with an error (transient) and odd ones with
/// `Message::fail` (permanent), recording the attempts of each.
#[derive(Default)]
struct TwoKinds(Mutex<BTreeMap<u64, u32>>);

impl Handler for TwoKinds {
    type Data = u64;
    type Output = u64;

    async fn handle_message(&self, message: &mut Message<u64>) -> Result<u64, BoxError> {
        let id = *message.data();
        self.0.lock().unwrap().insert(id, message.attempts());
        if id % 2 == 0 {
            return Err("transient".into());
        }
        message.fail("malformed");
        Ok(id)
    }
}

impl BatchHandler for TwoKinds {
    async fn handle_batch(&self, _: &mut [Message<u64>], _: &BatchInfo) -> Result<(), BoxError> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn retry_if_retries_only_the_failures_it_accepts() {
    let policy = policy().retry_if(|f| matches!(f, Failure::Error { .. }));
    let (handler, failed) = run(TwoKinds::default(), 6, policy, false).await;
    let attempts = handler.0.lock().unwrap().clone();
    assert_eq!(attempts, BTreeMap::from([(0, 3), (1, 1), (2, 3), (3, 1), (4, 3), (5, 1)]));
    assert_eq!(failed.len(), 6);
    assert!(failed.iter().all(|(id, f)| matches!(f, Failure::Failed(_)) == (id % 2 == 1)), "{failed:?}");
}
