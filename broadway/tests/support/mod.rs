//! Helpers shared by the integration tests: a recording acknowledger ([`Tally`]), a producer
//! of ids `0..n` ([`Ids`]), and small timing helpers.

// Each test binary compiles this module and uses only a part of it.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::timeout;
use weir_broadway::{AckData, Acknowledger, BoxError, Failure, Message, Producer, ProducerContext};

/// Locks, ignoring poisoning (user code in some tests panics on purpose).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `ms` milliseconds.
pub(crate) fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// Awaits `future`, failing the test instead of hanging if it takes ten minutes (free on the
/// paused clock).
pub(crate) async fn within<F: Future>(future: F) -> F::Output {
    timeout(Duration::from_secs(600), future).await.expect("timed out")
}

/// Records every acknowledgement as (tag, failure).
#[derive(Default)]
pub(crate) struct Tally(Mutex<Vec<(u64, Option<Failure>)>>);

impl Acknowledger for Tally {
    fn ack(&self, successful: Vec<AckData>, failed: Vec<(AckData, Failure)>) {
        let mut all = lock(&self.0);
        all.extend(successful.into_iter().map(|d| (d.tag, None)));
        all.extend(failed.into_iter().map(|(d, f)| (d.tag, Some(f))));
    }
}

impl Tally {
    /// A message carrying `id` as its data and its tag, acknowledged to this tally.
    pub(crate) fn message(self: &Arc<Self>, id: u64) -> Message<u64> {
        Message::new(id, self.clone(), AckData::new(id))
    }

    /// How many acknowledgements were recorded.
    pub(crate) fn len(&self) -> usize {
        lock(&self.0).len()
    }

    /// The acknowledgements recorded so far, as (tag, failure), in the order they came.
    pub(crate) fn all(&self) -> Vec<(u64, Option<Failure>)> {
        lock(&self.0).clone()
    }

    /// Takes the acknowledgements recorded so far, as (tag, failure), in the order they came.
    pub(crate) fn take(&self) -> Vec<(u64, Option<Failure>)> {
        std::mem::take(&mut *lock(&self.0))
    }

    /// The tags acknowledged as failed.
    pub(crate) fn failed(&self) -> BTreeSet<u64> {
        lock(&self.0).iter().filter(|(_, f)| f.is_some()).map(|(tag, _)| *tag).collect()
    }

    /// Asserts that every id of `0..n` was acknowledged exactly once; returns how each was
    /// (`None` for success).
    pub(crate) fn once_each(&self, n: u64) -> BTreeMap<u64, Option<Failure>> {
        let all = self.all();
        let mut tags: Vec<u64> = all.iter().map(|(tag, _)| *tag).collect();
        tags.sort_unstable();
        assert_eq!(tags, (0..n).collect::<Vec<_>>(), "every id acknowledged exactly once");
        all.into_iter().collect()
    }

    /// Asserts that every id of `0..n` was acknowledged exactly once; returns the failed ones.
    pub(crate) fn failed_once_each(&self, n: u64) -> BTreeMap<u64, Failure> {
        self.once_each(n).into_iter().filter_map(|(tag, f)| f.map(|f| (tag, f))).collect()
    }

    /// Asserts that every id of `0..n` was acknowledged exactly once, as successful.
    pub(crate) fn assert_all_successful(&self, n: u64) {
        let failed = self.failed_once_each(n);
        assert!(failed.is_empty(), "unexpected failures: {failed:?}");
    }
    /// Asserts that every id of `0..n` but those `left` (in a source nobody reads any more)
    /// was acknowledged exactly once, and every failure is `Dropped`; returns the successful
    /// and the failed ids.
    pub(crate) fn once_each_but(&self, n: u64, left: &BTreeSet<u64>) -> (BTreeSet<u64>, BTreeSet<u64>) {
        let all = self.all();
        let mut ids: Vec<u64> = all.iter().map(|(id, _)| *id).collect();
        ids.sort_unstable();
        let expected: Vec<u64> = (0..n).filter(|id| !left.contains(id)).collect();
        assert_eq!(ids, expected, "every id acknowledged exactly once");
        let failures: Vec<_> = all.iter().filter(|(_, f)| f.is_some()).collect();
        assert!(failures.iter().all(|(_, f)| *f == Some(Failure::Dropped)), "failures: {failures:?}");
        let (ok, failed): (Vec<_>, Vec<_>) = all.iter().partition(|(_, f)| f.is_none());
        (ok.iter().map(|(id, _)| *id).collect(), failed.iter().map(|(id, _)| *id).collect())
    }
}

/// Emits ids `0..end` from a counter shared by every producer instance, in order, as asked,
/// then finishes.
pub(crate) struct Ids {
    next: Arc<AtomicU64>,
    end: u64,
    tally: Arc<Tally>,
}

impl Producer for Ids {
    type Event = Message<u64>;
    type Info = ();

    async fn handle_demand(
        &mut self,
        demand: usize,
        ctx: &mut ProducerContext<'_, ()>,
    ) -> Result<Vec<Message<u64>>, BoxError> {
        let first = self.next.fetch_add(demand as u64, Ordering::SeqCst).min(self.end);
        let last = (first + demand as u64).min(self.end);
        if last == self.end {
            ctx.finish();
        }
        Ok((first..last).map(|id| self.tally.message(id)).collect())
    }
}

/// A factory of `Ids` producers sharing one counter over `0..n`, acknowledged to `tally`
/// (with one producer, the ids come in order).
pub(crate) fn ids(n: u64, tally: &Arc<Tally>) -> impl Fn() -> Ids + Send + Sync + 'static {
    let (next, tally) = (Arc::new(AtomicU64::new(0)), tally.clone());
    move || Ids { next: next.clone(), end: n, tally: tally.clone() }
}
