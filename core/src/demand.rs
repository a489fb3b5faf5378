//! Demand accounting: how a consumer splits incoming events into chunks and when it asks again.
//!
//! A subscription asks for `max_demand` events. Incoming events are handled in chunks of at
//! most `max_demand - min_demand`; after each chunk, when the outstanding demand is at or below
//! `min_demand`, the consumer asks for `max_demand - outstanding` (GenStage's `split_batches`).

/// Whether a producer forwards demand to its callbacks or holds it (GenStage's `demand` option).
///
/// # Examples
///
/// ```
/// use weir_core::DemandMode;
///
/// assert_eq!(DemandMode::default(), DemandMode::Forward);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DemandMode {
    /// Demand reaches `handle_demand` and emitted events are dispatched (the default).
    #[default]
    Forward,
    /// Demand and emitted events are held until the mode is set to `Forward`.
    Accumulate,
}

/// One chunk of events to handle, and the demand to ask for once it is handled.
#[derive(Debug)]
pub(crate) struct Chunk<T> {
    pub(crate) events: Vec<T>,
    pub(crate) ask_after: usize,
}

/// Outstanding demand of one subscription, seen from the consumer.
#[derive(Debug, Clone)]
pub(crate) struct DemandState {
    max: usize,
    min: usize,
    /// Events asked for and not yet received (including asks scheduled after pending chunks).
    outstanding: usize,
    manual: bool,
}

impl DemandState {
    pub(crate) fn new(max: usize, min: usize) -> Self {
        DemandState { max, min, outstanding: 0, manual: false }
    }

    pub(crate) fn set_manual(&mut self, manual: bool) {
        self.manual = manual;
    }

    pub(crate) fn is_manual(&self) -> bool {
        self.manual
    }

    /// The first ask of an automatic subscription.
    pub(crate) fn initial_ask(&mut self) -> usize {
        let ask = self.max - self.outstanding.min(self.max);
        self.outstanding += ask;
        ask
    }

    /// Records a manual ask.
    pub(crate) fn asked(&mut self, demand: usize) {
        self.outstanding = self.outstanding.saturating_add(demand);
    }

    /// Splits received events into chunks; returns them and how many events exceeded the demand.
    pub(crate) fn receive<T>(&mut self, events: Vec<T>) -> (Vec<Chunk<T>>, usize) {
        let mut chunks = Vec::new();
        let excess = self.receive_into(events, |c| chunks.push(c));
        (chunks, excess)
    }

    /// Like `receive`, handing each chunk to `push` (no allocation).
    pub(crate) fn receive_into<T>(&mut self, mut events: Vec<T>, mut push: impl FnMut(Chunk<T>)) -> usize {
        if self.manual {
            let excess = events.len().saturating_sub(self.outstanding);
            self.outstanding = self.outstanding.saturating_sub(events.len());
            push(Chunk { events, ask_after: 0 });
            return excess;
        }
        let step = (self.max - self.min).max(1);
        let mut excess = 0;
        let mut old = self.outstanding;
        let mut new = self.outstanding;
        while !events.is_empty() {
            let rest = if events.len() > step { events.split_off(step) } else { Vec::new() };
            let batch = std::mem::replace(&mut events, rest);
            let mut size = batch.len();
            if size > old {
                excess += size - old;
                size = old;
                old = 0;
            } else {
                old -= size;
            }
            let remaining = new - size;
            let ask_after = if remaining <= self.min {
                new = self.max;
                self.max - remaining
            } else {
                new = remaining;
                0
            };
            push(Chunk { events: batch, ask_after });
        }
        self.outstanding = new;
        excess
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asks_300_after_third_batch_of_100_with_max_1000_min_750() {
        let mut d = DemandState::new(1000, 750);
        assert_eq!(d.initial_ask(), 1000);
        for expected in [0, 0, 300, 0] {
            let (chunks, excess) = d.receive((0..100).collect::<Vec<u32>>());
            assert_eq!(excess, 0);
            assert_eq!(chunks.len(), 1);
            assert_eq!(chunks[0].ask_after, expected);
        }
    }

    #[test]
    fn splits_into_chunks_of_max_minus_min() {
        let mut d = DemandState::new(10, 5);
        d.initial_ask();
        let (chunks, _) = d.receive((0..10).collect::<Vec<u32>>());
        let sizes: Vec<_> = chunks.iter().map(|c| (c.events.len(), c.ask_after)).collect();
        assert_eq!(sizes, vec![(5, 5), (5, 5)]);
    }

    #[test]
    fn counts_excess_events() {
        let mut d = DemandState::new(4, 2);
        d.initial_ask();
        let (_, excess) = d.receive((0..6).collect::<Vec<u32>>());
        assert_eq!(excess, 2);
    }

    #[test]
    fn manual_subscriptions_get_one_chunk_and_no_asks() {
        let mut d = DemandState::new(10, 5);
        d.set_manual(true);
        d.asked(3);
        let (chunks, excess) = d.receive((0..3).collect::<Vec<u32>>());
        assert_eq!((chunks.len(), chunks[0].ask_after, excess), (1, 0, 0));
    }
}
