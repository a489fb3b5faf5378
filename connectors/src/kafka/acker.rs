//! The acknowledger of one partition for one assignment of it: which dispatched offsets are
//! still in flight, and the offset to commit (every earlier dispatched offset acknowledged).

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use weir_broadway::{AckAction, AckData, AckOptions, Acknowledger, Failure};

use crate::ack_actions::{self, Allowed};

/// What `on_success` and `on_failure` may be for Kafka: the offset is committed either way.
const COMMIT: Allowed = Allowed {
    actions: &[AckAction::Ack],
    rule: "must be Ack for Kafka: a failed message is committed like a successful one (re-route it in \
           handle_failed)",
};

/// Wakes the consumer thread: fetched records, a partition queue turning non-empty, more
/// demand, the last in-flight message of a partition given up, a stop.
#[derive(Default)]
pub(crate) struct Wake {
    pending: Mutex<bool>,
    changed: Condvar,
}

impl Wake {
    pub(crate) fn notify(&self) {
        *self.pending.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.changed.notify_one();
    }

    /// Waits until notified (since the last wait) or until `timeout` passes.
    pub(crate) fn wait(&self, timeout: Duration) {
        let pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let (mut pending, _) = self
            .changed
            .wait_timeout_while(pending, timeout, |pending| !*pending)
            .unwrap_or_else(|p| p.into_inner());
        *pending = false;
    }

    /// Waits until `done` holds or `deadline` passes; returns whether it holds.
    pub(crate) fn wait_until(&self, deadline: Instant, done: impl Fn() -> bool) -> bool {
        loop {
            if done() {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            self.wait(deadline - now);
        }
    }
}

/// The acknowledgement state of one partition's dispatched offsets.
#[derive(Debug, Default)]
struct Track {
    /// False once the partition is given up: later acknowledgements are ignored.
    owned: bool,
    /// Dispatched offsets from the oldest not acknowledged on, ascending (dispatch is in
    /// offset order), each with whether it is acknowledged.
    window: VecDeque<(i64, bool)>,
    in_flight: usize,
    /// The offset to commit: every dispatched offset below it is acknowledged.
    upto: Option<i64>,
    /// A message dropped unacknowledged (a stage crashed or was aborted): the commit never
    /// passes it in this assignment, so the next owner fetches it again.
    held_at: Option<i64>,
    /// The last offset handed to a commit.
    sent: Option<i64>,
    /// A revoke or drain waits for the in-flight count to reach zero.
    watched: bool,
}

impl Track {
    fn dispatched(&mut self, offsets: impl Iterator<Item = i64>) {
        for offset in offsets {
            self.in_flight += 1;
            if self.held_at.is_none() {
                self.window.push_back((offset, false));
            }
        }
    }

    /// Settles `offset`: acknowledged, or dropped without acknowledgement.
    fn settle(&mut self, offset: i64, acknowledged: bool) {
        if self.held_at.is_some_and(|held| offset >= held) {
            self.in_flight -= 1;
            return;
        }
        let Ok(i) = self.window.binary_search_by_key(&offset, |entry| entry.0) else {
            return;
        };
        self.in_flight -= 1;
        if acknowledged {
            self.window[i].1 = true;
        } else {
            // Offsets after it are only counted from now on: none can be committed.
            self.held_at = Some(offset);
            self.window.truncate(i);
        }
        while let Some(&(offset, true)) = self.window.front() {
            self.window.pop_front();
            self.upto = Some(offset + 1);
        }
    }
}

/// Acknowledges the messages of one partition for one assignment of it. A new assignment
/// gets a new acknowledger: acknowledgements that arrive after the partition was given up
/// find theirs released and are ignored, never committed.
pub(crate) struct PartitionAcker {
    pub(crate) topic: Arc<str>,
    pub(crate) partition: i32,
    track: Mutex<Track>,
    wake: Arc<Wake>,
}

impl PartitionAcker {
    pub(crate) fn new(topic: Arc<str>, partition: i32, wake: Arc<Wake>) -> Self {
        let track = Track { owned: true, ..Track::default() };
        PartitionAcker { topic, partition, track: Mutex::new(track), wake }
    }

    fn track(&self) -> MutexGuard<'_, Track> {
        self.track.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Offsets about to be emitted, in order.
    pub(crate) fn dispatched(&self, offsets: impl Iterator<Item = i64>) {
        self.track().dispatched(offsets);
    }

    /// Messages emitted and not settled yet.
    pub(crate) fn in_flight(&self) -> usize {
        self.track().in_flight
    }

    /// Wake the consumer thread when the last message in flight is settled.
    pub(crate) fn watch(&self) {
        self.track().watched = true;
    }

    /// The offset to commit if it moved since the last commit; it counts as sent.
    pub(crate) fn to_commit(&self) -> Option<i64> {
        let mut track = self.track();
        if !track.owned || track.upto <= track.sent {
            return None;
        }
        track.sent = track.upto;
        track.upto
    }

    /// A commit of `offset` failed: the next commit sends it again.
    pub(crate) fn commit_failed(&self, offset: i64) {
        let mut track = self.track();
        if track.sent == Some(offset) {
            track.sent = None;
        }
    }

    /// The partition is given up: later acknowledgements are ignored.
    pub(crate) fn release(&self) {
        let mut track = self.track();
        track.owned = false;
        track.window.clear();
    }
}

fn tag_offset(data: &AckData) -> i64 {
    i64::try_from(data.tag).unwrap_or(i64::MAX)
}

impl Acknowledger for PartitionAcker {
    fn ack(&self, successful: Vec<AckData>, failed: Vec<(AckData, Failure)>) {
        let mut track = self.track();
        if !track.owned {
            tracing::debug!(
                topic = %self.topic,
                partition = self.partition,
                ignored = successful.len() + failed.len(),
                "kafka: acknowledgements for a partition given up are ignored"
            );
            return;
        }
        for data in &successful {
            track.settle(tag_offset(data), true);
        }
        // Failed messages count as acknowledged (broadway_kafka): `handle_failed` is where
        // they are re-routed. Dropped ones were never handled: they hold the commit back.
        for (data, failure) in &failed {
            track.settle(tag_offset(data), !matches!(failure, Failure::Dropped));
        }
        let notify = track.watched && track.in_flight == 0;
        drop(track);
        if notify {
            self.wake.notify();
        }
    }

    fn configure(&self, data: &mut AckData, options: AckOptions) -> Result<(), weir_broadway::Error> {
        ack_actions::configure(data, options, &COMMIT, &COMMIT)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use weir_broadway::{AckAction, AckData, AckOptions, Acknowledger, Failure};

    use super::{PartitionAcker, Wake};

    fn acker() -> PartitionAcker {
        PartitionAcker::new("t".into(), 0, Arc::new(Wake::default()))
    }

    fn ok(offsets: impl IntoIterator<Item = u64>) -> Vec<AckData> {
        offsets.into_iter().map(AckData::new).collect()
    }

    fn failed(offsets: impl IntoIterator<Item = u64>, failure: Failure) -> Vec<(AckData, Failure)> {
        offsets.into_iter().map(|o| (AckData::new(o), failure.clone())).collect()
    }

    #[test]
    fn the_commit_covers_only_contiguous_acknowledged_offsets() {
        let acker = acker();
        acker.dispatched(0..10);
        assert_eq!(acker.to_commit(), None, "nothing acknowledged");
        acker.ack(ok([1, 2, 3, 5]), Vec::new());
        assert_eq!(acker.to_commit(), None, "0 is still in flight: it holds the rest back");
        acker.ack(ok([0]), Vec::new());
        assert_eq!(acker.to_commit(), Some(4), "0..=3 acknowledged, 4 in flight");
        assert_eq!(acker.to_commit(), None, "sent already");
        acker.ack(ok([4, 6, 7, 8, 9]), Vec::new());
        assert_eq!(acker.to_commit(), Some(10));
        assert_eq!(acker.in_flight(), 0);
    }

    #[test]
    fn offsets_with_gaps_commit_past_the_last_acknowledged_one() {
        // Compaction and transaction markers leave gaps: only dispatched offsets count.
        let acker = acker();
        acker.dispatched([3, 7, 20].into_iter());
        acker.ack(ok([7, 3]), Vec::new());
        assert_eq!(acker.to_commit(), Some(8));
        acker.ack(ok([20]), Vec::new());
        assert_eq!(acker.to_commit(), Some(21));
    }

    #[test]
    fn failed_messages_count_as_acknowledged_and_dropped_ones_hold_the_commit_back() {
        let acker = acker();
        acker.dispatched(0..6);
        acker.ack(ok([0]), failed([1], Failure::Failed("bad".into())));
        assert_eq!(acker.to_commit(), Some(2));
        acker.ack(ok([2, 4, 5]), failed([3], Failure::Dropped));
        assert_eq!(acker.to_commit(), Some(3), "never past the dropped message");
        assert_eq!(acker.in_flight(), 0);
        acker.dispatched(6..8);
        acker.ack(ok([6, 7]), Vec::new());
        assert_eq!((acker.to_commit(), acker.in_flight()), (None, 0));
    }

    #[test]
    fn acknowledgements_after_release_are_ignored() {
        let acker = acker();
        acker.dispatched(0..4);
        acker.ack(ok([0]), Vec::new());
        acker.release();
        acker.ack(ok([1, 2, 3]), Vec::new());
        assert_eq!(acker.to_commit(), None, "released: nothing more is committed");
    }

    #[test]
    fn a_failed_commit_is_sent_again() {
        let acker = acker();
        acker.dispatched(0..2);
        acker.ack(ok([0, 1]), Vec::new());
        assert_eq!(acker.to_commit(), Some(2));
        acker.commit_failed(2);
        assert_eq!(acker.to_commit(), Some(2));
    }

    #[test]
    fn the_last_settlement_of_a_watched_partition_wakes_the_consumer_thread() {
        let wake = Arc::new(Wake::default());
        let acker = PartitionAcker::new("t".into(), 0, wake.clone());
        acker.dispatched(0..2);
        acker.watch();
        acker.ack(ok([0]), Vec::new());
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(20);
        assert!(!wake.wait_until(deadline, || acker.in_flight() == 0));
        acker.ack(Vec::new(), failed([1], Failure::Dropped));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        assert!(wake.wait_until(deadline, || acker.in_flight() == 0));
    }

    #[test]
    fn configure_accepts_only_ack() {
        let acker = acker();
        let mut data = AckData::new(1);
        acker.configure(&mut data, AckOptions::new().on_failure(AckAction::Ack)).unwrap();
        assert_eq!(data.on_failure, Some(AckAction::Ack));
        let error = acker.configure(&mut data, AckOptions::new().on_failure(AckAction::Reject)).unwrap_err();
        assert!(error.to_string().starts_with("on_failure (Reject) must be Ack for Kafka"), "{error}");
        let error = acker.configure(&mut data, AckOptions::new().on_success(AckAction::Noop)).unwrap_err();
        assert!(error.to_string().starts_with("on_success (Noop) must be Ack"), "{error}");
    }
}
