//! Records fetched and not yet dispatched, per partition, and the demand not yet served:
//! shared by the producer (which takes records as the pipeline asks) and the consumer thread
//! (which fetches only as much as is asked).

use std::collections::VecDeque;
use std::sync::Arc;

use weir_broadway::{AckData, Acknowledger, Message, Metadata};

use super::acker::PartitionAcker;

/// One fetched record, ready to become a message.
pub(crate) struct Record {
    pub(crate) offset: i64,
    pub(crate) payload: Vec<u8>,
    /// The message's [`AckData::group`]: the partition's id, or its key's hash.
    pub(crate) group: u64,
    pub(crate) metadata: Metadata,
}

/// An owned partition: its acknowledger (of this assignment) and what was fetched from it.
struct Partition {
    acker: Arc<PartitionAcker>,
    records: VecDeque<Record>,
}

/// What was fetched and what was asked. Memory is bounded by demand: the consumer thread
/// fetches at most [`room`](Fetched::room) more records.
#[derive(Default)]
pub(crate) struct Fetched {
    partitions: Vec<Partition>,
    /// The partition [`take`](Fetched::take) starts with, so that each gets its turn first.
    next: usize,
    buffered: usize,
    /// Asked by the pipeline and not yet served.
    demand: usize,
    /// A wake-up is on its way to the producer: no need to send another.
    notified: bool,
    stopped: bool,
}

impl Fetched {
    /// A partition assigned to this consumer: its records can be fetched and dispatched.
    pub(crate) fn add(&mut self, acker: Arc<PartitionAcker>) {
        self.partitions.push(Partition { acker, records: VecDeque::new() });
    }

    /// Partitions given up (revoked, or the session ended): their records not yet
    /// dispatched are dropped (the next owner fetches them again from the committed
    /// offset). Returns their acknowledgers, to wait for what is in flight.
    pub(crate) fn remove(&mut self, gone: impl Fn(&PartitionAcker) -> bool) -> Vec<Arc<PartitionAcker>> {
        let mut removed = Vec::new();
        let mut i = 0;
        while i < self.partitions.len() {
            if gone(&self.partitions[i].acker) {
                let partition = self.partitions.swap_remove(i);
                self.buffered -= partition.records.len();
                removed.push(partition.acker);
            } else {
                i += 1;
            }
        }
        removed
    }

    /// The acknowledgers of the owned partitions.
    pub(crate) fn ackers(&self) -> Vec<Arc<PartitionAcker>> {
        self.partitions.iter().map(|p| p.acker.clone()).collect()
    }

    /// Drain: drops what is not dispatched yet; nothing more is taken or fetched.
    pub(crate) fn stop(&mut self) {
        self.stopped = true;
        for partition in &mut self.partitions {
            partition.records.clear();
        }
        self.buffered = 0;
    }

    /// How many more records the consumer thread may fetch: the demand not covered yet.
    pub(crate) fn room(&self) -> usize {
        if self.stopped {
            return 0;
        }
        self.demand.saturating_sub(self.buffered)
    }

    /// Records fetched from `acker`'s partition, in offset order. Returns whether the
    /// producer must be told (it has demand, and no wake-up is on its way).
    pub(crate) fn push(&mut self, acker: &Arc<PartitionAcker>, records: Vec<Record>) -> bool {
        if self.stopped {
            return false;
        }
        // Records of a partition given up meanwhile are dropped (its next owner fetches them).
        if let Some(partition) = self.partitions.iter_mut().find(|p| Arc::ptr_eq(&p.acker, acker)) {
            self.buffered += records.len();
            partition.records.extend(records);
        }
        let notify = self.demand > 0 && self.buffered > 0 && !self.notified;
        self.notified |= notify;
        notify
    }

    /// The pipeline asks for `demand` more.
    pub(crate) fn ask(&mut self, demand: usize) {
        self.demand += demand;
    }

    /// The producer got the wake-up.
    pub(crate) fn woken(&mut self) {
        self.notified = false;
    }

    /// Takes up to the demand, round-robin across partitions (each in offset order), and
    /// registers the offsets with their acknowledgers.
    pub(crate) fn take(&mut self) -> Vec<Message<Vec<u8>>> {
        let mut want = self.demand.min(self.buffered);
        let mut messages = Vec::with_capacity(want);
        while want > 0 {
            let nonempty = self.partitions.iter().filter(|p| !p.records.is_empty()).count();
            if nonempty == 0 {
                break;
            }
            let share = want.div_ceil(nonempty);
            let n = self.partitions.len();
            for k in 0..n {
                let partition = &mut self.partitions[(self.next + k) % n];
                let count = share.min(partition.records.len()).min(want);
                if count == 0 {
                    continue;
                }
                partition.acker.dispatched(partition.records.iter().take(count).map(|r| r.offset));
                let records = partition.records.drain(..count);
                let acknowledger: Arc<dyn Acknowledger> = partition.acker.clone();
                messages.extend(records.map(|record| {
                    let data = AckData::new(u64::try_from(record.offset).unwrap_or_default())
                        .with_group(record.group);
                    Message::new(record.payload, acknowledger.clone(), data).with_metadata(record.metadata)
                }));
                want -= count;
            }
            self.next = (self.next + 1) % n.max(1);
        }
        self.buffered -= messages.len();
        self.demand -= messages.len();
        messages
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use weir_broadway::Metadata;

    use super::{Fetched, Record};
    use crate::kafka::acker::{PartitionAcker, Wake};

    fn acker(partition: i32) -> Arc<PartitionAcker> {
        Arc::new(PartitionAcker::new("t".into(), partition, Arc::new(Wake::default())))
    }

    fn records(group: u64, offsets: std::ops::Range<i64>) -> Vec<Record> {
        offsets
            .map(|offset| Record { offset, payload: Vec::new(), group, metadata: Metadata::new() })
            .collect()
    }

    /// (group, offset) of each message.
    fn taken(fetched: &mut Fetched) -> Vec<(u64, u64)> {
        fetched.take().iter().map(|m| (m.ack_data().group, m.ack_data().tag)).collect()
    }

    #[test]
    fn take_serves_partitions_in_turns_in_offset_order_up_to_the_demand() {
        let (a, b) = (acker(0), acker(1));
        let mut fetched = Fetched::default();
        fetched.add(a.clone());
        fetched.add(b.clone());
        fetched.ask(5);
        fetched.push(&a, records(0, 0..100));
        fetched.push(&b, records(1, 0..2));
        // Shares of ceil(5 / 2) = 3: partition 1 is not left behind partition 0's backlog.
        let messages = fetched.take();
        let order: Vec<(u64, u64)> =
            messages.iter().map(|m| (m.ack_data().group, m.ack_data().tag)).collect();
        assert_eq!(order, vec![(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]);
        assert_eq!((a.in_flight(), b.in_flight()), (3, 2), "dispatched offsets are in flight");
        drop(messages);
        assert_eq!((a.in_flight(), b.in_flight()), (0, 0), "dropped messages are settled");
        fetched.ask(4);
        assert_eq!(taken(&mut fetched), vec![(0, 3), (0, 4), (0, 5), (0, 6)]);
        assert_eq!(taken(&mut fetched), vec![], "no demand left");
    }

    #[test]
    fn room_is_the_demand_not_yet_fetched_and_nothing_once_stopped() {
        let a = acker(0);
        let mut fetched = Fetched::default();
        fetched.add(a.clone());
        assert_eq!(fetched.room(), 0, "nothing asked, nothing fetched");
        fetched.ask(10);
        fetched.push(&a, records(0, 0..4));
        assert_eq!(fetched.room(), 6);
        fetched.stop();
        assert_eq!(fetched.room(), 0);
        assert!(!fetched.push(&a, records(0, 4..6)), "nothing more after a stop");
        assert_eq!(taken(&mut fetched), vec![], "what was fetched is dropped");
    }

    #[test]
    fn the_producer_is_woken_once_until_it_takes() {
        let a = acker(0);
        let mut fetched = Fetched::default();
        fetched.add(a.clone());
        assert!(!fetched.push(&a, records(0, 0..1)), "no demand: no wake-up");
        fetched.ask(3);
        assert!(fetched.push(&a, records(0, 1..2)));
        assert!(!fetched.push(&a, records(0, 2..3)), "one wake-up on its way is enough");
        fetched.woken();
        assert_eq!(taken(&mut fetched).len(), 3);
        fetched.ask(1);
        assert!(fetched.push(&a, records(0, 3..4)));
    }

    #[test]
    fn removed_partitions_drop_their_records_and_later_pushes() {
        let (a, b) = (acker(0), acker(1));
        let mut fetched = Fetched::default();
        fetched.add(a.clone());
        fetched.add(b.clone());
        fetched.ask(10);
        fetched.push(&a, records(0, 0..3));
        fetched.push(&b, records(1, 0..3));
        let removed = fetched.remove(|acker| acker.partition == 0);
        assert_eq!(removed.len(), 1);
        assert!(Arc::ptr_eq(&removed[0], &a));
        fetched.push(&a, records(0, 3..5));
        assert_eq!(fetched.room(), 7);
        assert_eq!(taken(&mut fetched), vec![(1, 0), (1, 1), (1, 2)]);
        assert_eq!(a.in_flight(), 0, "nothing of the removed partition dispatched");
    }
}
