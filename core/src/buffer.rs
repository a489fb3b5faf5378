//! The producer buffer: events emitted beyond the consumers' demand wait here.

use std::collections::VecDeque;

/// How many events a producer buffers beyond its consumers' demand (GenStage's `buffer_size`).
///
/// # Examples
///
/// ```
/// use weir_core::BufferSize;
///
/// assert_eq!(BufferSize::default(), BufferSize::Bounded(10_000));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BufferSize {
    /// At most this many events; more are discarded per [`BufferKeep`].
    Bounded(usize),
    /// No bound. Memory then grows with whatever the stage emits beyond demand.
    Unbounded,
}

impl Default for BufferSize {
    fn default() -> Self {
        BufferSize::Bounded(10_000)
    }
}

impl From<usize> for BufferSize {
    fn from(n: usize) -> Self {
        BufferSize::Bounded(n)
    }
}

/// Which events a full buffer keeps (GenStage's `buffer_keep`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BufferKeep {
    /// Keep the newest events, discarding the oldest (the default).
    #[default]
    Last,
    /// Keep the oldest events, discarding new ones.
    First,
}

/// Something queued behind the buffered events: delivered once every event before it is dispatched.
#[derive(Debug)]
pub(crate) enum Marker<M> {
    /// An info message (`async_info`/`sync_info`).
    Info(M),
    /// Stop normally (a producer that finished).
    Finish,
}

/// Buffered events, interleaved with markers by position.
#[derive(Debug)]
pub(crate) struct Buffer<T, M> {
    events: VecDeque<T>,
    /// Markers and the absolute event count that must leave the buffer before them.
    markers: VecDeque<(u64, Marker<M>)>,
    /// Absolute count of events that left the front of the buffer.
    taken: u64,
    size: BufferSize,
    keep: BufferKeep,
}

impl<T, M> Buffer<T, M> {
    pub(crate) fn new(size: BufferSize, keep: BufferKeep) -> Self {
        Buffer { events: VecDeque::new(), markers: VecDeque::new(), taken: 0, size, keep }
    }

    pub(crate) fn len(&self) -> usize {
        self.events.len()
    }

    /// Appends events; returns how many events were discarded to respect the size.
    pub(crate) fn push(&mut self, events: Vec<T>) -> usize {
        let BufferSize::Bounded(cap) = self.size else {
            self.events.extend(events);
            return 0;
        };
        match self.keep {
            BufferKeep::First => {
                let room = cap.saturating_sub(self.events.len());
                let discarded = events.len().saturating_sub(room);
                self.events.extend(events.into_iter().take(room));
                discarded
            }
            BufferKeep::Last => {
                self.events.extend(events);
                let discarded = self.events.len().saturating_sub(cap);
                self.events.drain(..discarded);
                self.taken += discarded as u64;
                discarded
            }
        }
    }

    /// Queues a marker behind every event buffered so far.
    pub(crate) fn push_marker(&mut self, marker: Marker<M>) {
        let position = self.taken + self.events.len() as u64;
        self.markers.push_back((position, marker));
    }

    /// Takes up to `n` events from the front.
    pub(crate) fn take(&mut self, n: usize) -> Vec<T> {
        let n = n.min(self.events.len());
        self.taken += n as u64;
        if n == self.events.len() {
            return Vec::from(std::mem::take(&mut self.events));
        }
        self.events.drain(..n).collect()
    }

    /// Puts events back at the front (a dispatcher could not send them all).
    pub(crate) fn restore_front(&mut self, events: Vec<T>) {
        self.taken -= events.len() as u64;
        for e in events.into_iter().rev() {
            self.events.push_front(e);
        }
    }

    /// Removes the markers whose events have all left the buffer.
    pub(crate) fn due_markers(&mut self) -> Vec<Marker<M>> {
        let mut due = Vec::new();
        while self.markers.front().is_some_and(|(pos, _)| *pos <= self.taken) {
            if let Some((_, m)) = self.markers.pop_front() {
                due.push(m);
            }
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_last_discards_oldest() {
        let mut b: Buffer<u32, ()> = Buffer::new(BufferSize::Bounded(3), BufferKeep::Last);
        assert_eq!(b.push(vec![1, 2, 3, 4, 5]), 2);
        assert_eq!(b.take(10), vec![3, 4, 5]);
    }

    #[test]
    fn keep_first_discards_newest() {
        let mut b: Buffer<u32, ()> = Buffer::new(BufferSize::Bounded(3), BufferKeep::First);
        assert_eq!(b.push(vec![1, 2]), 0);
        assert_eq!(b.push(vec![3, 4, 5]), 2);
        assert_eq!(b.take(10), vec![1, 2, 3]);
    }

    #[test]
    fn markers_are_due_after_the_events_before_them() {
        let mut b: Buffer<u32, &str> = Buffer::new(BufferSize::Unbounded, BufferKeep::Last);
        b.push(vec![1, 2]);
        b.push_marker(Marker::Info("after two"));
        b.push(vec![3]);
        assert!(b.due_markers().is_empty());
        assert_eq!(b.take(1), vec![1]);
        assert!(b.due_markers().is_empty());
        assert_eq!(b.take(1), vec![2]);
        assert!(matches!(b.due_markers().as_slice(), [Marker::Info("after two")]));
        assert_eq!(b.len(), 1);
    }

    #[test]
    fn restore_front_keeps_order() {
        let mut b: Buffer<u32, ()> = Buffer::new(BufferSize::Unbounded, BufferKeep::Last);
        b.push(vec![1, 2, 3]);
        let taken = b.take(2);
        b.restore_front(taken);
        assert_eq!(b.take(3), vec![1, 2, 3]);
    }
}
