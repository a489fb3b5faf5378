//! Fixed (event-time) windows: which window an event belongs to, which windows to open, and
//! what the watermark does to an open window.

use std::time::Duration;

/// What passing the watermark does to an open window.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Passed {
    /// Not passed: the window stays open.
    No,
    /// Its end passed, not its lateness: fire the watermark trigger (once), keep it open.
    Watermark,
    /// Its end plus lateness passed: close it.
    Done,
}

/// A stage's fixed windows: their size, lateness, the end of the last closed one, and the
/// watermark (the latest event time seen).
#[derive(Debug)]
pub(crate) struct Fixed {
    duration: u64,
    lateness: u64,
    closed_before: Option<u64>,
    watermark: u64,
}

impl Fixed {
    pub(crate) fn new(duration: Duration, lateness: Duration) -> Self {
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Fixed {
            duration: millis(duration).max(1),
            lateness: millis(lateness),
            closed_before: None,
            watermark: 0,
        }
    }

    /// The start of the window holding time `t`.
    pub(crate) fn start_of(&self, t: u64) -> u64 {
        t - t % self.duration
    }

    pub(crate) fn end_of(&self, start: u64) -> u64 {
        start.saturating_add(self.duration)
    }

    pub(crate) fn has_lateness(&self) -> bool {
        self.lateness > 0
    }

    /// Moves the watermark to `t` if `t` is later; returns the watermark.
    pub(crate) fn advance(&mut self, t: u64) -> u64 {
        self.watermark = self.watermark.max(t);
        self.watermark
    }

    /// Whether the window starting at `start` is late: before the end of the last closed
    /// one, or closed by the watermark already (its end plus lateness passed) though it was
    /// never opened (the stage's first events were of later windows).
    pub(crate) fn is_late(&self, start: u64) -> bool {
        self.closed_before.is_some_and(|bound| start < bound)
            || self.passed(start, self.watermark) == Passed::Done
    }

    /// The windows to open in front of the first open one (`first_open`) so that the one
    /// starting at `start`, before it, exists: it and every window between them.
    pub(crate) fn to_open_before(&self, first_open: Option<u64>, start: u64) -> impl Iterator<Item = u64> {
        let until = first_open.filter(|first| start < *first).unwrap_or(start);
        let step = usize::try_from(self.duration).unwrap_or(usize::MAX);
        (start..until).step_by(step)
    }

    /// The windows to open so that the one starting at `start` exists, given the last open
    /// one: every window between them too, so empty windows are still reported.
    pub(crate) fn to_open(&self, last_open: Option<u64>, start: u64) -> impl Iterator<Item = u64> {
        let from = match last_open {
            Some(last) => self.end_of(last),
            None => self.closed_before.unwrap_or(start),
        };
        let step = usize::try_from(self.duration).unwrap_or(usize::MAX);
        (from..=start).step_by(step)
    }

    /// What the watermark at `t` does to the open window starting at `start`.
    pub(crate) fn passed(&self, start: u64, t: u64) -> Passed {
        let end = self.end_of(start);
        if end > t {
            Passed::No
        } else if end.saturating_add(self.lateness) <= t {
            Passed::Done
        } else {
            Passed::Watermark
        }
    }

    /// Records that the window starting at `start` closed.
    pub(crate) fn closed(&mut self, start: u64) {
        self.closed_before = Some(self.end_of(start));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_between_two_events_are_opened() {
        let fixed = Fixed::new(Duration::from_millis(100), Duration::ZERO);
        assert_eq!(fixed.start_of(250), 200);
        assert_eq!(fixed.to_open(None, 200).collect::<Vec<_>>(), vec![200]);
        assert_eq!(fixed.to_open(Some(0), 300).collect::<Vec<_>>(), vec![100, 200, 300]);
        assert_eq!(fixed.to_open(Some(300), 300).count(), 0);
    }

    #[test]
    fn windows_before_the_first_open_one_open_unless_the_watermark_closed_them() {
        let mut fixed = Fixed::new(Duration::from_millis(100), Duration::from_millis(250));
        assert_eq!(fixed.advance(320), 320);
        assert_eq!(fixed.advance(10), 320);
        // Window 0 would have closed at 350; window 100 is still open to late events.
        assert!(!fixed.is_late(0));
        fixed.advance(350);
        assert!(fixed.is_late(0));
        assert!(!fixed.is_late(100));
        assert_eq!(fixed.to_open_before(Some(300), 100).collect::<Vec<_>>(), vec![100, 200]);
        assert_eq!(fixed.to_open_before(Some(300), 300).count(), 0);
        assert_eq!(fixed.to_open_before(None, 100).count(), 0);
    }

    #[test]
    fn lateness_delays_done_after_the_watermark() {
        let mut fixed = Fixed::new(Duration::from_millis(100), Duration::from_millis(50));
        assert_eq!(fixed.passed(0, 99), Passed::No);
        assert_eq!(fixed.passed(0, 100), Passed::Watermark);
        assert_eq!(fixed.passed(0, 149), Passed::Watermark);
        assert_eq!(fixed.passed(0, 150), Passed::Done);
        fixed.closed(0);
        assert!(fixed.is_late(0));
        assert!(!fixed.is_late(100));
        assert_eq!(fixed.to_open(None, 300).collect::<Vec<_>>(), vec![100, 200, 300]);
    }
}
