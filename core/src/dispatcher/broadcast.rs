use super::{take_front, Dispatcher, Downstream};
use crate::error::Error;
use crate::subscription::SubscriptionId;

/// Sends every event to every consumer (GenStage's `BroadcastDispatcher`).
///
/// Demand upstream follows the slowest consumer: the producer is asked only for events every
/// consumer has room for. A consumer may give a selector
/// ([`SubscribeOptions::selector`](crate::SubscribeOptions::selector)); events it filters out
/// are not sent to it and are asked for again on its behalf. A stage may subscribe only once.
///
/// # Examples
///
/// ```
/// use weir_core::dispatcher::BroadcastDispatcher;
/// use weir_core::ProducerOptions;
///
/// let options = ProducerOptions::<String>::new().dispatcher(BroadcastDispatcher::new());
/// ```
pub struct BroadcastDispatcher<T> {
    consumers: Vec<Subscriber<T>>,
    /// Events asked for upstream and not yet dispatched.
    waiting: usize,
}

struct Subscriber<T> {
    downstream: Downstream<T>,
    demand: usize,
    /// Events asked for upstream before this consumer subscribed, and beyond what it asked
    /// for since: not sent to it, not counted against it.
    skip: usize,
}

impl<T> Default for BroadcastDispatcher<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> BroadcastDispatcher<T> {
    /// A broadcast dispatcher.
    pub fn new() -> Self {
        BroadcastDispatcher { consumers: Vec::new(), waiting: 0 }
    }

    /// Forwards whatever every consumer now has room for beyond what is already asked.
    fn forward(&mut self) -> usize {
        let min = self.consumers.iter().map(|c| c.demand + c.skip).min().unwrap_or(0);
        let more = min.saturating_sub(self.waiting);
        self.waiting += more;
        more
    }
}

impl<T: Clone + Send + 'static> Dispatcher<T> for BroadcastDispatcher<T> {
    fn subscribe(&mut self, consumer: Downstream<T>) -> Result<usize, Error> {
        if self.consumers.iter().any(|c| c.downstream.consumer == consumer.consumer) {
            return Err(Error::AlreadySubscribed);
        }
        self.consumers.push(Subscriber { downstream: consumer, demand: 0, skip: self.waiting });
        Ok(0)
    }

    fn cancel(&mut self, id: SubscriptionId) -> usize {
        self.consumers.retain(|c| c.downstream.id != id);
        self.forward()
    }

    fn ask(&mut self, id: SubscriptionId, demand: usize) -> usize {
        if let Some(c) = self.consumers.iter_mut().find(|c| c.downstream.id == id) {
            // A newcomer that asks takes part in the events already asked for upstream:
            // it skips fewer of them, so it never gets more than it asked.
            c.skip -= c.skip.min(demand);
            c.demand += demand;
        }
        self.forward()
    }

    fn dispatch(&mut self, events: &mut Vec<T>) -> usize {
        if self.consumers.is_empty() {
            return 0;
        }
        let now = take_front(events, self.waiting);
        if now.is_empty() {
            return 0;
        }
        self.waiting -= now.len();
        let last = self.consumers.len() - 1;
        let mut now = Some(now);
        for (i, c) in self.consumers.iter_mut().enumerate() {
            let mut batch =
                if i == last { now.take().unwrap_or_default() } else { now.clone().unwrap_or_default() };
            let skip = c.skip.min(batch.len());
            c.skip -= skip;
            batch.drain(..skip);
            let len = batch.len();
            c.demand -= len;
            let selected = match c.downstream.selector() {
                Some(select) => {
                    let selected: Vec<T> = batch.into_iter().filter(|e| select(e)).collect();
                    // Filtered-out events are asked for again on this consumer's behalf.
                    c.demand += len - selected.len();
                    selected
                }
                None => batch,
            };
            // A gone consumer's cancel is on the way; the others still get the events.
            let _gone = c.downstream.send(selected);
        }
        self.forward()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::dispatcher::testing::{downstream, received};

    #[test]
    fn every_consumer_gets_every_event_at_the_pace_of_the_slowest() {
        let mut d = BroadcastDispatcher::new();
        let (a, ra) = downstream::<u32>(None, None);
        let (b, rb) = downstream::<u32>(None, None);
        let (ia, ib) = (a.id(), b.id());
        d.subscribe(a).unwrap();
        d.subscribe(b).unwrap();
        assert_eq!(d.ask(ia, 10), 0);
        assert_eq!(d.ask(ib, 3), 3);
        let mut events: Vec<u32> = (0..5).collect();
        d.dispatch(&mut events);
        assert_eq!(events, vec![3, 4]);
        assert_eq!(received(&ra), vec![0, 1, 2]);
        assert_eq!(received(&rb), vec![0, 1, 2]);
    }

    #[test]
    fn rejects_the_same_consumer_twice() {
        let mut d = BroadcastDispatcher::new();
        let (a, _) = downstream::<u32>(None, None);
        let mut again = a.clone();
        again.id = SubscriptionId::new();
        d.subscribe(a).unwrap();
        assert!(matches!(d.subscribe(again), Err(Error::AlreadySubscribed)));
    }

    #[test]
    fn filtered_out_events_are_asked_again() {
        let mut d = BroadcastDispatcher::new();
        let even: crate::Selector<u32> = std::sync::Arc::new(|e: &u32| e % 2 == 0);
        let (a, ra) = downstream::<u32>(None, Some(even));
        let ia = a.id();
        d.subscribe(a).unwrap();
        assert_eq!(d.ask(ia, 4), 4);
        let mut events: Vec<u32> = (0..4).collect();
        // Two odd events were filtered out: two more are asked for.
        assert_eq!(d.dispatch(&mut events), 2);
        assert_eq!(received(&ra), vec![0, 2]);
    }

    proptest! {
        #[test]
        fn never_more_than_asked_and_everyone_sees_the_same_prefix(
            asks in proptest::collection::vec((0usize..3, 0usize..50), 1..40),
        ) {
            let mut d = BroadcastDispatcher::new();
            let mut subs = Vec::new();
            for _ in 0..3 {
                let (ds, rec) = downstream::<u64>(None, None);
                subs.push((ds.id(), rec));
                d.subscribe(ds).unwrap();
            }
            let mut asked = [0usize; 3];
            let mut next = 0u64;
            let mut owed = 0usize;
            let mut buffer = Vec::new();
            for (c, a) in asks {
                asked[c] += a;
                owed += d.ask(subs[c].0, a);
                // The producer emits exactly what it owes.
                buffer.extend(next..next + owed as u64);
                next += owed as u64;
                owed = d.dispatch(&mut buffer);
            }
            let min = *asked.iter().min().unwrap_or(&0);
            for (i, (_, rec)) in subs.iter().enumerate() {
                let got = received(rec);
                prop_assert!(got.len() <= asked[i]);
                prop_assert_eq!(got, (0..min as u64).collect::<Vec<_>>());
            }
        }
    }
}
