use std::hash::{BuildHasher, RandomState};

use super::{put_back, take_front, Dispatcher, Downstream};
use crate::error::Error;
use crate::subscription::SubscriptionId;

/// Sends each event to the consumer with the most pending demand (GenStage's default).
///
/// Consumers of one producer should share one `max_demand`: a consumer that asks for more
/// gets more. Demand a consumer asked for and did not receive before leaving is not lost:
/// the producer already owes those events, so the next asks are served from it first.
///
/// # Examples
///
/// ```
/// use weir_core::dispatcher::DemandDispatcher;
/// use weir_core::ProducerOptions;
///
/// let options = ProducerOptions::<u64>::new()
///     .dispatcher(DemandDispatcher::new().shuffle_demands_on_first_dispatch(true));
/// ```
pub struct DemandDispatcher<T> {
    consumers: Vec<(Downstream<T>, usize)>,
    /// Demand owed to consumers that left; later asks consume it before forwarding.
    pending: usize,
    max_demand: Option<usize>,
    shuffle_on_first_dispatch: bool,
    dispatched: bool,
}

impl<T> Default for DemandDispatcher<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> DemandDispatcher<T> {
    /// A demand dispatcher.
    pub fn new() -> Self {
        DemandDispatcher {
            consumers: Vec::new(),
            pending: 0,
            max_demand: None,
            shuffle_on_first_dispatch: false,
            dispatched: false,
        }
    }

    /// Shuffle consumers before the first dispatch, so the first subscriber is not always served first.
    pub fn shuffle_demands_on_first_dispatch(mut self, shuffle: bool) -> Self {
        self.shuffle_on_first_dispatch = shuffle;
        self
    }

    fn shuffle(&mut self) {
        let n = self.consumers.len();
        if n < 2 {
            return;
        }
        // A Fisher-Yates shuffle; `RandomState` is a dependency-free random seed.
        let mut seed = RandomState::new().hash_one(n);
        for i in (1..n).rev() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            self.consumers.swap(i, (seed % (i as u64 + 1)) as usize);
        }
    }
}

impl<T: Send + 'static> Dispatcher<T> for DemandDispatcher<T> {
    fn subscribe(&mut self, consumer: Downstream<T>) -> Result<usize, Error> {
        match self.max_demand {
            None => self.max_demand = Some(consumer.max_demand),
            Some(max) if max != consumer.max_demand => tracing::warn!(
                expected = max,
                got = consumer.max_demand,
                "consumers of a demand dispatcher have different max_demand: the greedier gets more events"
            ),
            Some(_) => {}
        }
        self.consumers.push((consumer, 0));
        Ok(0)
    }

    fn cancel(&mut self, id: SubscriptionId) -> usize {
        if let Some(i) = self.consumers.iter().position(|(c, _)| c.id == id) {
            let (_, demand) = self.consumers.remove(i);
            self.pending += demand;
        }
        0
    }

    fn ask(&mut self, id: SubscriptionId, demand: usize) -> usize {
        let Some((_, d)) = self.consumers.iter_mut().find(|(c, _)| c.id == id) else {
            return 0;
        };
        *d += demand;
        let already_sent = self.pending.min(demand);
        self.pending -= already_sent;
        demand - already_sent
    }

    fn dispatch(&mut self, events: &mut Vec<T>) -> usize {
        if !self.dispatched && self.shuffle_on_first_dispatch {
            self.shuffle();
        }
        self.dispatched = true;
        while !events.is_empty() {
            let Some(best) = (0..self.consumers.len())
                .filter(|&i| self.consumers[i].1 > 0)
                .max_by_key(|&i| (self.consumers[i].1, usize::MAX - i))
            else {
                break;
            };
            let (consumer, demand) = &mut self.consumers[best];
            let batch = take_front(events, *demand);
            let sent = batch.len();
            match consumer.send(batch) {
                Ok(()) => *demand -= sent,
                Err(back) => {
                    // Gone: its cancel is on the way; keep the events for the others.
                    *demand = 0;
                    put_back(events, back);
                }
            }
        }
        0
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::dispatcher::testing::{downstream, received};

    #[test]
    fn sends_to_the_consumer_with_most_demand() {
        let mut d = DemandDispatcher::new();
        let (a, ra) = downstream::<u32>(None, None);
        let (b, rb) = downstream::<u32>(None, None);
        let (ia, ib) = (a.id(), b.id());
        d.subscribe(a).unwrap();
        d.subscribe(b).unwrap();
        assert_eq!(d.ask(ia, 2), 2);
        assert_eq!(d.ask(ib, 5), 5);
        let mut events: Vec<u32> = (0..7).collect();
        d.dispatch(&mut events);
        assert!(events.is_empty());
        assert_eq!(received(&rb), vec![0, 1, 2, 3, 4]);
        assert_eq!(received(&ra), vec![5, 6]);
    }

    #[test]
    fn leaves_events_without_demand() {
        let mut d = DemandDispatcher::new();
        let (a, _ra) = downstream::<u32>(None, None);
        let ia = a.id();
        d.subscribe(a).unwrap();
        d.ask(ia, 3);
        let mut events: Vec<u32> = (0..5).collect();
        d.dispatch(&mut events);
        assert_eq!(events, vec![3, 4]);
    }

    #[test]
    fn demand_of_a_consumer_that_left_is_not_forwarded_twice() {
        let mut d = DemandDispatcher::new();
        let (a, _) = downstream::<u32>(None, None);
        let (b, rb) = downstream::<u32>(None, None);
        let (ia, ib) = (a.id(), b.id());
        d.subscribe(a).unwrap();
        d.subscribe(b).unwrap();
        assert_eq!(d.ask(ia, 10), 10);
        d.cancel(ia);
        // The producer still owes the 10 events asked by `a`: b's ask is served from them.
        assert_eq!(d.ask(ib, 4), 0);
        assert_eq!(d.ask(ib, 10), 4);
        let mut events: Vec<u32> = (0..14).collect();
        d.dispatch(&mut events);
        assert_eq!(received(&rb).len(), 14);
    }

    proptest! {
        #[test]
        fn never_sends_more_than_asked_and_loses_nothing(
            asks in proptest::collection::vec((0usize..3, 0usize..50), 1..40),
            batches in proptest::collection::vec(0usize..80, 1..40),
        ) {
            let mut d = DemandDispatcher::new();
            let mut subs = Vec::new();
            for _ in 0..3 {
                let (ds, rec) = downstream::<u64>(None, None);
                subs.push((ds.id(), rec));
                d.subscribe(ds).unwrap();
            }
            let mut asked = [0usize; 3];
            let mut next = 0u64;
            let mut leftover = Vec::new();
            for (step, n) in batches.iter().enumerate() {
                if let Some(&(c, a)) = asks.get(step) {
                    asked[c] += a;
                    d.ask(subs[c].0, a);
                }
                leftover.extend(next..next + *n as u64);
                next += *n as u64;
                d.dispatch(&mut leftover);
            }
            let mut all: Vec<u64> = leftover.clone();
            for (i, (_, rec)) in subs.iter().enumerate() {
                let got = received(rec);
                prop_assert!(got.len() <= asked[i]);
                all.extend(got);
            }
            all.sort_unstable();
            prop_assert_eq!(all, (0..next).collect::<Vec<_>>());
        }
    }
}
