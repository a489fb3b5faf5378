use std::collections::{HashMap, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use super::{Dispatcher, Downstream};
use crate::error::Error;
use crate::subscription::{PartitionKey, SubscriptionId};

/// Routes a chunk of events into one `Vec` per partition: the user's hash is called in a
/// loop compiled for it (one dynamic call per chunk, not per event).
type RouteFn<T> = Box<dyn FnMut(Vec<T>, &mut [Vec<T>]) + Send>;

/// Routes each event to one of a fixed set of partitions, each with exactly one consumer
/// (GenStage's `PartitionDispatcher`).
///
/// The hash function returns the event (possibly rewritten) and its partition, or `None` to
/// drop it. Events for a partition without demand wait inside the dispatcher until its
/// consumer asks; the producer is asked only for as many events as consumers asked for.
/// So every partition needs a consumer, as in GenStage: events routed to a partition nobody
/// consumes use up demand the other partitions asked for, and a pipeline can stall on them.
///
/// # Examples
///
/// ```
/// use weir_core::dispatcher::PartitionDispatcher;
///
/// // Four partitions, by hash of the event.
/// let by_hash = PartitionDispatcher::<u64>::hashed(4).unwrap();
/// // Named partitions with a hash that may drop events.
/// let named = PartitionDispatcher::named(["odd", "even"], |n: u64| {
///     (n != 0).then(|| (n, if n % 2 == 0 { "even" } else { "odd" }))
/// })
/// .unwrap();
/// assert!(PartitionDispatcher::<u64>::hashed(0).is_err());
/// ```
pub struct PartitionDispatcher<T> {
    names: Option<Vec<Arc<str>>>,
    partitions: Vec<Partition<T>>,
    route: RouteFn<T>,
    by_sub: HashMap<SubscriptionId, usize>,
    /// Events asked for upstream and not yet dispatched.
    waiting: usize,
    /// Demand owed to consumers that left; later asks consume it before forwarding.
    pending: usize,
    routed: Vec<Vec<T>>,
}

struct Partition<T> {
    consumer: Option<Downstream<T>>,
    demand: usize,
    queue: VecDeque<T>,
}

impl<T: Send + 'static> Partition<T> {
    /// Sends `batch` (within demand); a consumer gone leaves it at the queue's front.
    fn send(&mut self, batch: Vec<T>) {
        let n = batch.len();
        let sent = match &self.consumer {
            Some(consumer) => consumer.send(batch),
            None => Err(batch),
        };
        match sent {
            Ok(()) => self.demand -= n,
            Err(back) => {
                self.demand = 0;
                for e in back.into_iter().rev() {
                    self.queue.push_front(e);
                }
            }
        }
    }
}

impl<T: Send + 'static> PartitionDispatcher<T> {
    /// `partitions` partitions `0..partitions`, routed by `hash`, which returns the partition index.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`] when `partitions` is 0.
    pub fn new(
        partitions: usize,
        hash: impl Fn(T) -> Option<(T, usize)> + Send + 'static,
    ) -> Result<Self, Error> {
        if partitions == 0 {
            return Err(Error::invalid("partitions", 0, "must be greater than 0"));
        }
        Ok(PartitionDispatcher {
            names: None,
            partitions: (0..partitions)
                .map(|_| Partition { consumer: None, demand: 0, queue: VecDeque::new() })
                .collect(),
            route: Box::new(move |events: Vec<T>, routed: &mut [Vec<T>]| {
                let partitions = routed.len();
                for event in events {
                    match hash(event) {
                        Some((event, p)) if p < partitions => routed[p].push(event),
                        Some((_, p)) => tracing::warn!(
                            partition = p,
                            partitions,
                            "hash returned an unknown partition; event dropped"
                        ),
                        None => {}
                    }
                }
            }),
            by_sub: HashMap::new(),
            waiting: 0,
            pending: 0,
            routed: (0..partitions).map(|_| Vec::new()).collect(),
        })
    }

    /// `partitions` partitions routed by the hash of the event (GenStage's `phash2` default).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`] when `partitions` is 0.
    pub fn hashed(partitions: usize) -> Result<Self, Error>
    where
        T: Hash,
    {
        Self::new(partitions, move |event: T| {
            let mut h = DefaultHasher::new();
            event.hash(&mut h);
            let p = (h.finish() % partitions as u64) as usize;
            Some((event, p))
        })
    }

    /// Named partitions routed by `hash`, which returns the partition name (or index).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`] when there are no names or a name repeats.
    pub fn named<N, K>(
        names: impl IntoIterator<Item = N>,
        hash: impl Fn(T) -> Option<(T, K)> + Send + 'static,
    ) -> Result<Self, Error>
    where
        N: Into<Arc<str>>,
        K: Into<PartitionKey>,
    {
        let names: Vec<Arc<str>> = names.into_iter().map(Into::into).collect();
        for (i, n) in names.iter().enumerate() {
            if names[..i].contains(n) {
                return Err(Error::invalid("partitions", format!("{n:?}"), "must not repeat a name"));
            }
        }
        let lookup = names.clone();
        let mut d = Self::new(names.len(), move |event: T| {
            let (event, key) = hash(event)?;
            match key.into() {
                PartitionKey::Index(i) => Some((event, i)),
                PartitionKey::Name(n) => match lookup.iter().position(|x| *x == n) {
                    Some(i) => Some((event, i)),
                    None => {
                        tracing::warn!(partition = %n, "hash returned an unknown partition; event dropped");
                        None
                    }
                },
            }
        })?;
        d.names = Some(names);
        Ok(d)
    }

    fn resolve(&self, key: &PartitionKey) -> Result<usize, Error> {
        let index = match (key, &self.names) {
            (PartitionKey::Index(i), _) => Some(*i).filter(|i| *i < self.partitions.len()),
            (PartitionKey::Name(n), Some(names)) => names.iter().position(|x| x == n),
            (PartitionKey::Name(_), None) => None,
        };
        index.ok_or_else(|| Error::UnknownPartition {
            partition: key.to_string(),
            known: match &self.names {
                Some(names) => format!("{names:?}"),
                None => format!("0..{}", self.partitions.len()),
            },
        })
    }

    /// Sends partition `p`'s routed events, queueing what it has no demand for. With
    /// nothing queued before them (the usual case) the routed `Vec` itself goes out, so an
    /// event is not copied through the queue.
    fn offer(&mut self, p: usize) {
        let part = &mut self.partitions[p];
        let routed = &mut self.routed[p];
        if !part.queue.is_empty() || part.demand == 0 {
            part.queue.extend(routed.drain(..));
            self.flush(p);
            return;
        }
        let n = part.demand.min(routed.len());
        let rest = routed.split_off(n);
        // The next chunk is likely as large: keep the capacity with the routed buffer.
        let batch = std::mem::replace(routed, Vec::with_capacity(n));
        part.queue.extend(rest);
        part.send(batch);
    }

    /// Sends queued events of partition `p` as far as its demand allows.
    fn flush(&mut self, p: usize) {
        let part = &mut self.partitions[p];
        let n = part.demand.min(part.queue.len());
        if n == 0 {
            return;
        }
        let batch: Vec<T> = part.queue.drain(..n).collect();
        part.send(batch);
    }
}

impl<T: Send + 'static> Dispatcher<T> for PartitionDispatcher<T> {
    fn subscribe(&mut self, consumer: Downstream<T>) -> Result<usize, Error> {
        let key = consumer.partition.clone().ok_or(Error::MissingPartition)?;
        let p = self.resolve(&key)?;
        let part = &mut self.partitions[p];
        if part.consumer.is_some() {
            return Err(Error::PartitionTaken { partition: key.to_string() });
        }
        self.by_sub.insert(consumer.id, p);
        part.consumer = Some(consumer);
        Ok(0)
    }

    fn cancel(&mut self, id: SubscriptionId) -> usize {
        if let Some(p) = self.by_sub.remove(&id) {
            let part = &mut self.partitions[p];
            part.consumer = None;
            self.pending += part.demand;
            part.demand = 0;
        }
        0
    }

    fn ask(&mut self, id: SubscriptionId, demand: usize) -> usize {
        let Some(&p) = self.by_sub.get(&id) else {
            return 0;
        };
        self.partitions[p].demand += demand;
        self.flush(p);
        let already_sent = self.pending.min(demand);
        self.pending -= already_sent;
        let forward = demand - already_sent;
        self.waiting += forward;
        forward
    }

    fn dispatch(&mut self, events: &mut Vec<T>) -> usize {
        let n = self.waiting.min(events.len());
        if n == 0 {
            return 0;
        }
        self.waiting -= n;
        let now: Vec<T> =
            if n == events.len() { std::mem::take(events) } else { events.drain(..n).collect() };
        (self.route)(now, &mut self.routed);
        for p in 0..self.partitions.len() {
            if !self.routed[p].is_empty() {
                self.offer(p);
            }
        }
        0
    }

    /// Events waiting for their partition's consumer to ask, or to subscribe: a finishing
    /// producer waits for them.
    fn buffered(&self) -> usize {
        self.partitions.iter().map(|p| p.queue.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::dispatcher::testing::{downstream, received};

    fn parity() -> PartitionDispatcher<u64> {
        PartitionDispatcher::new(2, |e: u64| Some((e, (e % 2) as usize))).unwrap()
    }

    type Received = std::sync::Arc<crate::dispatcher::testing::Recorder<u64>>;

    /// `parity()` with a consumer on each partition: (dispatcher, (even id, what even
    /// received), (odd id, what odd received)).
    fn parity_subscribed(
    ) -> (PartitionDispatcher<u64>, (SubscriptionId, Received), (SubscriptionId, Received)) {
        let mut d = parity();
        let (even, re) = downstream::<u64>(Some(0.into()), None);
        let (odd, ro) = downstream::<u64>(Some(1.into()), None);
        let (ie, io) = (even.id(), odd.id());
        d.subscribe(even).unwrap();
        d.subscribe(odd).unwrap();
        (d, (ie, re), (io, ro))
    }

    #[test]
    fn routed_events_beyond_a_partitions_demand_wait_in_order() {
        let (mut d, (ie, re), (io, ro)) = parity_subscribed();
        d.ask(ie, 1);
        d.ask(io, 7);
        let mut events: Vec<u64> = (0..8).collect();
        d.dispatch(&mut events);
        assert!(events.is_empty());
        assert_eq!(received(&re), vec![0]);
        assert_eq!(received(&ro), vec![1, 3, 5, 7]);
        assert_eq!(d.buffered(), 3);
        d.ask(ie, 2);
        assert_eq!(received(&re), vec![0, 2, 4]);
        let mut more: Vec<u64> = vec![8];
        d.ask(ie, 5);
        d.dispatch(&mut more);
        assert_eq!(received(&re), vec![0, 2, 4, 6, 8], "queued events go before newly routed ones");
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn routes_by_hash_and_waits_for_demand() {
        let (mut d, (ie, re), (io, ro)) = parity_subscribed();
        assert_eq!(d.ask(ie, 4), 4);
        let mut events: Vec<u64> = (0..4).collect();
        d.dispatch(&mut events);
        assert_eq!(received(&re), vec![0, 2]);
        assert!(received(&ro).is_empty());
        assert_eq!(d.buffered(), 2);
        d.ask(io, 1);
        assert_eq!(received(&ro), vec![1]);
        assert_eq!(d.buffered(), 1);
    }

    #[test]
    fn rejects_a_second_consumer_on_the_same_partition() {
        let mut d = parity();
        d.subscribe(downstream::<u64>(Some(0.into()), None).0).unwrap();
        let err = d.subscribe(downstream::<u64>(Some(0.into()), None).0).unwrap_err();
        assert_eq!(err.to_string(), "partition 0 already has a consumer");
    }

    #[test]
    fn rejects_unknown_and_missing_partitions() {
        let mut d = parity();
        let err = d.subscribe(downstream::<u64>(Some(7.into()), None).0).unwrap_err();
        assert_eq!(err.to_string(), "unknown partition 7 (the dispatcher has partitions 0..2)");
        let err = d.subscribe(downstream::<u64>(None, None).0).unwrap_err();
        assert!(matches!(err, Error::MissingPartition));
        let mut named = PartitionDispatcher::named(["a"], |e: u64| Some((e, "a"))).unwrap();
        let err = named.subscribe(downstream::<u64>(Some("b".into()), None).0).unwrap_err();
        assert!(matches!(err, Error::UnknownPartition { .. }));
    }

    #[test]
    fn hash_may_rewrite_and_drop_events() {
        let mut d =
            PartitionDispatcher::named(["small"], |e: u64| (e < 10).then(|| (e * 100, "small"))).unwrap();
        let (ds, rec) = downstream::<u64>(Some("small".into()), None);
        let id = ds.id();
        d.subscribe(ds).unwrap();
        d.ask(id, 3);
        let mut events = vec![1, 50, 2];
        d.dispatch(&mut events);
        assert_eq!(received(&rec), vec![100, 200]);
    }

    proptest! {
        #[test]
        fn never_more_than_asked_nothing_lost_or_duplicated(
            asks in proptest::collection::vec((0usize..3, 0usize..30), 1..40),
        ) {
            let mut d = PartitionDispatcher::new(3, |e: u64| Some((e, (e % 3) as usize))).unwrap();
            let mut subs = Vec::new();
            for p in 0..3usize {
                let (ds, rec) = downstream::<u64>(Some(p.into()), None);
                subs.push((ds.id(), rec));
                d.subscribe(ds).unwrap();
            }
            let mut asked = [0usize; 3];
            let mut next = 0u64;
            for (p, a) in asks {
                asked[p] += a;
                let owed = d.ask(subs[p].0, a);
                let mut events: Vec<u64> = (next..next + owed as u64).collect();
                next += owed as u64;
                d.dispatch(&mut events);
                prop_assert!(events.is_empty());
            }
            let mut all = Vec::new();
            for (p, (_, rec)) in subs.iter().enumerate() {
                let got = received(rec);
                prop_assert!(got.len() <= asked[p]);
                prop_assert!(got.iter().all(|e| (*e % 3) as usize == p));
                all.extend(got);
            }
            prop_assert_eq!(all.len() + d.buffered(), next as usize);
            all.sort_unstable();
            all.dedup();
            prop_assert_eq!(all.len() + d.buffered(), next as usize);
        }
    }
}
