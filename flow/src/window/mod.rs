//! Windows split each stage's events into groups that are reduced and emitted on their own,
//! and triggers say when a window's state is emitted (Flow.Window).
//!
//! A [`Window`] is one of: global (everything, the default), count (every `n` events),
//! periodic (processing time) or fixed (event time, with allowed lateness). Triggers added to
//! it fire [`on_trigger`](crate::Reduced::on_trigger) before the window ends: every `n`
//! events, periodically, or when a function over the incoming events says so. The final
//! trigger, [`Reason::Done`], fires when a window closes or the flow ends.

mod fixed;
pub(crate) mod layer;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::error::Error;

pub(crate) use fixed::Fixed;

/// A function giving an event's time in milliseconds, for fixed windows.
pub(crate) type TimeFn<X> = Arc<dyn Fn(&X) -> u64 + Send + Sync>;

/// A stage's custom trigger function: where to fire in the events not yet looked at.
pub(crate) type TriggerFn<X> = Box<dyn FnMut(&[X]) -> Option<usize> + Send>;

/// A custom trigger, as configured: makes each stage's own trigger function.
pub(crate) type CustomTrigger<X> = Arc<dyn Fn() -> TriggerFn<X> + Send + Sync>;

pub(crate) enum Kind<X> {
    Global,
    Count(usize),
    Periodic(Duration),
    Fixed { duration: Duration, time: TimeFn<X> },
}

/// How a layer's events are grouped before they are reduced, and when results are emitted.
///
/// Set it with [`Flow::window`](crate::Flow::window), then reduce. Each stage of the layer
/// keeps its own windows; `Trigger::partition` says whose they are.
///
/// # Examples
///
/// ```
/// # #[tokio::main]
/// # async fn main() -> Result<(), weir_flow::Error> {
/// use weir_flow::{Flow, Window};
///
/// // Sums of every 3 events, in one stage so the windows follow the input's order.
/// let sums: Vec<u32> = Flow::from_enumerable(1..=7u32)
///     .stages(1)
///     .window(Window::count(3))
///     .reduce(|| vec![0], |x, acc: Vec<u32>| vec![acc[0] + x])
///     .collect()
///     .await?;
/// assert_eq!(sums, vec![6, 15, 7]);
/// # Ok(()) }
/// ```
pub struct Window<X> {
    pub(crate) kind: Kind<X>,
    pub(crate) lateness: Duration,
    pub(crate) every: Option<usize>,
    pub(crate) periodically: Option<Duration>,
    pub(crate) custom: Option<(String, CustomTrigger<X>)>,
}

impl<X> Clone for Kind<X> {
    fn clone(&self) -> Self {
        match self {
            Kind::Global => Kind::Global,
            Kind::Count(n) => Kind::Count(*n),
            Kind::Periodic(period) => Kind::Periodic(*period),
            Kind::Fixed { duration, time } => Kind::Fixed { duration: *duration, time: time.clone() },
        }
    }
}

impl<X> Clone for Window<X> {
    fn clone(&self) -> Self {
        Window {
            kind: self.kind.clone(),
            lateness: self.lateness,
            every: self.every,
            periodically: self.periodically,
            custom: self.custom.clone(),
        }
    }
}

impl<X> fmt::Debug for Window<X> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Global => "global".to_string(),
            Kind::Count(n) => format!("count({n})"),
            Kind::Periodic(period) => format!("periodic({period:?})"),
            Kind::Fixed { duration, .. } => format!("fixed({duration:?})"),
        };
        f.debug_struct("Window")
            .field("kind", &kind)
            .field("allowed_lateness", &self.lateness)
            .field("trigger_every", &self.every)
            .field("trigger_periodically", &self.periodically)
            .field("trigger", &self.custom.as_ref().map(|(name, _)| name))
            .finish()
    }
}

impl<X> Window<X> {
    fn of(kind: Kind<X>) -> Self {
        Window { kind, lateness: Duration::ZERO, every: None, periodically: None, custom: None }
    }

    /// One window for all events; it closes when the flow ends (the default).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use weir_flow::{emit, Flow, Window};
    ///
    /// // One state per stage, emitted once, when the input ends.
    /// let totals: Vec<u32> = Flow::from_enumerable(1..=100u32)
    ///     .stages(1)
    ///     .window(Window::global())
    ///     .reduce(|| 0u32, |x, total| total + x)
    ///     .emit(emit::State)
    ///     .collect()
    ///     .await?;
    /// assert_eq!(totals, vec![5050]);
    /// # Ok(()) }
    /// ```
    pub fn global() -> Self {
        Self::of(Kind::Global)
    }

    /// A window per `n` events of a stage: the n-th event closes it, exactly, even inside a
    /// chunk. When the flow ends, a partial last window closes too.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use weir_flow::{emit, Flow, Window};
    ///
    /// // Sums of every 3 events; the last window holds what is left.
    /// let sums: Vec<u32> = Flow::from_enumerable(1..=8u32)
    ///     .stages(1)
    ///     .window(Window::count(3))
    ///     .reduce(|| 0u32, |x, sum| sum + x)
    ///     .emit(emit::State)
    ///     .collect()
    ///     .await?;
    /// assert_eq!(sums, vec![6, 15, 15]);
    /// # Ok(()) }
    /// ```
    pub fn count(n: usize) -> Self {
        Self::of(Kind::Count(n))
    }

    /// A window per `period` of processing time, from when the stage subscribes. Periods
    /// without events still close, with the initial state.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use std::time::Duration;
    /// use weir_flow::{Flow, Window};
    ///
    /// let counts: Vec<usize> = Flow::from_enumerable(0..10u32)
    ///     .stages(1)
    ///     .window(Window::periodic(Duration::from_secs(1)))
    ///     .reduce(|| vec![0usize], |_, n: Vec<usize>| vec![n[0] + 1])
    ///     .collect()
    ///     .await?;
    /// assert_eq!(counts.iter().sum::<usize>(), 10);
    /// # Ok(()) }
    /// ```
    pub fn periodic(period: Duration) -> Self {
        Self::of(Kind::Periodic(period))
    }

    /// Windows of `duration` of event time: `time` gives an event's time in milliseconds
    /// (an integer, so nothing else can be passed), and an event at `t` belongs to the window
    /// starting at `t - t % duration`.
    ///
    /// Events should arrive roughly in time order: an event's time is the stage's watermark,
    /// and windows that end at or before it close (each empty window between two others
    /// closes too, with the initial state). Events of a closed window are dropped; see
    /// [`allowed_lateness`](Window::allowed_lateness).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use std::time::Duration;
    /// use weir_flow::{emit, Flow, Window, WindowId};
    ///
    /// // (time in ms, amount): per-second totals.
    /// let events = vec![(100u64, 1u32), (900, 2), (1500, 3), (3200, 4)];
    /// let window = Window::fixed(Duration::from_secs(1), |(time, _): &(u64, u32)| *time);
    /// let totals: Vec<(u64, u32)> = Flow::from_enumerable(events)
    ///     .stages(1)
    ///     .window(window)
    ///     .reduce(|| 0u32, |(_, amount), total| total + amount)
    ///     .on_trigger(|total, trigger| {
    ///         let WindowId::Fixed { start, .. } = trigger.window else { unreachable!() };
    ///         (vec![(start, total)], 0)
    ///     })
    ///     .collect()
    ///     .await?;
    /// assert_eq!(totals, vec![(0, 3), (1000, 3), (2000, 0), (3000, 4)]);
    /// # Ok(()) }
    /// ```
    pub fn fixed(duration: Duration, time: impl Fn(&X) -> u64 + Send + Sync + 'static) -> Self {
        Self::of(Kind::Fixed { duration, time: Arc::new(time) })
    }

    /// Fixed windows only: how long (in event time) a window stays open after the watermark
    /// passes its end. Then it fires [`Reason::Watermark`] and keeps taking late events,
    /// and it closes ([`Reason::Done`]) when the watermark passes its end plus `lateness`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use std::time::Duration;
    /// use weir_flow::{Flow, Reason, Window};
    ///
    /// // (ms, amount): 900 is late but within 500 ms; 1600 closes the first second.
    /// let events = vec![(100u64, 1u32), (1200, 2), (900, 4), (1600, 8)];
    /// let window = Window::fixed(Duration::from_secs(1), |e: &(u64, u32)| e.0);
    /// let fired: Vec<(Reason, u32)> = Flow::from_enumerable(events)
    ///     .stages(1).window(window.allowed_lateness(Duration::from_millis(500)))
    ///     .reduce(|| 0u32, |(_, amount), total| total + amount)
    ///     .on_trigger(|total, trigger| (vec![(trigger.reason.clone(), total)], total))
    ///     .collect().await?;
    /// assert_eq!(fired, vec![(Reason::Watermark, 1), (Reason::Done, 5), (Reason::Done, 10)]);
    /// # Ok(()) }
    /// ```
    pub fn allowed_lateness(mut self, lateness: Duration) -> Self {
        self.lateness = lateness;
        self
    }

    /// Fires [`Reason::Every`] every `n` events of a window, splitting a chunk exactly at
    /// the n-th event.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use weir_flow::{emit, Flow, Window};
    ///
    /// // With `emit::State`, each emission covers the events since the previous one:
    /// // 1 + 2, 3 + 4, then 5 when the input ends.
    /// let sums: Vec<u32> = Flow::from_enumerable(1..=5u32)
    ///     .stages(1)
    ///     .window(Window::global().trigger_every(2))
    ///     .reduce(|| 0u32, |x, sum| sum + x)
    ///     .emit(emit::State)
    ///     .collect()
    ///     .await?;
    /// assert_eq!(sums, vec![3, 7, 5]);
    /// # Ok(()) }
    /// ```
    pub fn trigger_every(mut self, n: usize) -> Self {
        self.every = Some(n);
        self
    }

    /// Fires [`Reason::Periodically`] on every open window each `period` of processing
    /// time.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use std::time::Duration;
    /// use futures::StreamExt;
    /// use weir_flow::{Flow, Reason, Window};
    ///
    /// // On tokio's paused clock: 1 at 600 ms, 2 at 1200 ms, 3 at 1800 ms.
    /// let tick = |x| async move { tokio::time::sleep(Duration::from_millis(600)).await; x };
    /// let fired: Vec<(Reason, u32)> = Flow::from_stream(futures::stream::iter(1..=3u32).then(tick))
    ///     .stages(1).window(Window::global().trigger_periodically(Duration::from_secs(1)))
    ///     .reduce(|| 0u32, |x, sum| sum + x)
    ///     .on_trigger(|sum, trigger| (vec![(trigger.reason.clone(), sum)], sum))
    ///     .collect().await?;
    /// assert_eq!(fired, vec![(Reason::Periodically(Duration::from_secs(1)), 1), (Reason::Done, 6)]);
    /// # Ok(()) }
    /// ```
    pub fn trigger_periodically(mut self, period: Duration) -> Self {
        self.periodically = Some(period);
        self
    }

    /// A custom trigger: each stage starts a state with `init`; for each chunk of events
    /// (after the layer's mappers), `trigger` sees the events not yet looked at and returns
    /// `Some(k)` to fire [`Reason::Custom`] with `name` after the first `k` of them (at least
    /// one), or `None` to let them all in.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use weir_flow::{emit, Flow, Window};
    ///
    /// // Emit the running sum after each 0 (a "flush" marker).
    /// let window = Window::global().trigger("flush", || (), |events: &[u32], _: &mut ()| {
    ///     events.iter().position(|x| *x == 0).map(|at| at + 1)
    /// });
    /// let sums: Vec<u32> = Flow::from_enumerable([1u32, 2, 0, 5, 0, 7])
    ///     .stages(1)
    ///     .window(window)
    ///     .reduce(|| 0u32, |x, sum| sum + x)
    ///     .on_trigger(|sum, _| (vec![sum], 0))
    ///     .collect()
    ///     .await?;
    /// assert_eq!(sums, vec![3, 5, 7]);
    /// # Ok(()) }
    /// ```
    pub fn trigger<S, I, F>(mut self, name: impl Into<String>, init: I, trigger: F) -> Self
    where
        S: Send + 'static,
        I: Fn() -> S + Send + Sync + 'static,
        F: FnMut(&[X], &mut S) -> Option<usize> + Clone + Send + Sync + 'static,
    {
        let make: CustomTrigger<X> = Arc::new(move || {
            let mut state = init();
            let mut trigger = trigger.clone();
            Box::new(move |events: &[X]| trigger(events, &mut state))
        });
        self.custom = Some((name.into(), make));
        self
    }

    /// Checks the options before a flow starts.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        let invalid = |option: &'static str, value: String, rule: &str| {
            Err(Error::InvalidOption { option, value, rule: rule.to_string() })
        };
        match &self.kind {
            Kind::Count(0) => return invalid("Window::count", "0".into(), "must be greater than 0"),
            Kind::Periodic(period) if period.is_zero() => {
                return invalid("Window::periodic", format!("{period:?}"), "must be greater than 0")
            }
            Kind::Fixed { duration, .. } if duration.as_millis() == 0 => {
                return invalid("Window::fixed", format!("{duration:?}"), "must be at least 1 ms")
            }
            Kind::Fixed { .. } => {}
            _ if !self.lateness.is_zero() => {
                return invalid(
                    "allowed_lateness",
                    format!("{:?}", self.lateness),
                    "only applies to fixed windows",
                )
            }
            _ => {}
        }
        if self.every == Some(0) {
            return invalid("trigger_every", "0".into(), "must be greater than 0");
        }
        if let Some(period) = self.periodically.filter(|p| p.is_zero()) {
            return invalid("trigger_periodically", format!("{period:?}"), "must be greater than 0");
        }
        Ok(())
    }
}

/// Which window a trigger is about.
///
/// # Examples
///
/// ```
/// # #[tokio::main]
/// # async fn main() -> Result<(), weir_flow::Error> {
/// use weir_flow::{Flow, Window, WindowId};
///
/// // Count windows are numbered per stage, from 0.
/// let windows: Vec<WindowId> = Flow::from_enumerable(0..5u32)
///     .stages(1)
///     .window(Window::count(2))
///     .reduce(|| 0u32, |x, sum| sum + x)
///     .on_trigger(|sum, trigger| (vec![trigger.window], sum))
///     .collect()
///     .await?;
/// assert_eq!(windows, vec![WindowId::Count(0), WindowId::Count(1), WindowId::Count(2)]);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum WindowId {
    /// The one global window.
    Global,
    /// The n-th count window of the stage, from 0.
    Count(u64),
    /// The n-th period of a periodic window, from 0.
    Periodic(u64),
    /// A fixed window: event times in `start..end`, in milliseconds.
    Fixed {
        /// First millisecond of the window.
        start: u64,
        /// First millisecond after the window.
        end: u64,
    },
}

/// Why a trigger fired.
///
/// # Examples
///
/// ```
/// # #[tokio::main]
/// # async fn main() -> Result<(), weir_flow::Error> {
/// use weir_flow::{Flow, Reason, Window};
///
/// let reasons: Vec<Reason> = Flow::from_enumerable(1..=5u32)
///     .stages(1)
///     .window(Window::global().trigger_every(2))
///     .reduce(|| 0u32, |x, sum| sum + x)
///     .on_trigger(|sum, trigger| (vec![trigger.reason.clone()], sum))
///     .collect()
///     .await?;
/// assert_eq!(reasons, vec![Reason::Every(2), Reason::Every(2), Reason::Done]);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// The window closed, or the flow ended: the final trigger of a window.
    Done,
    /// [`Window::trigger_every`] with this count.
    Every(usize),
    /// [`Window::trigger_periodically`] with this period.
    Periodically(Duration),
    /// The watermark passed the end of a fixed window with allowed lateness.
    Watermark,
    /// A [`Window::trigger`] with this name.
    Custom(String),
}

/// What [`on_trigger`](crate::Reduced::on_trigger) is told: whose window, which, and why.
///
/// # Examples
///
/// ```
/// # #[tokio::main]
/// # async fn main() -> Result<(), weir_flow::Error> {
/// use weir_flow::{Flow, Reason, Trigger, Window, WindowId};
///
/// let triggers: Vec<Trigger> = Flow::from_enumerable(0..3u32)
///     .stages(1)
///     .window(Window::global())
///     .reduce(|| 0u32, |x, sum| sum + x)
///     .on_trigger(|sum, trigger| (vec![trigger.clone()], sum))
///     .collect()
///     .await?;
/// let t = &triggers[0];
/// assert_eq!((t.partition, t.partitions, t.window, &t.reason), (0, 1, WindowId::Global, &Reason::Done));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Trigger {
    /// The index of the stage (partition) in its layer.
    pub partition: usize,
    /// How many stages the layer has.
    pub partitions: usize,
    /// The window.
    pub window: WindowId,
    /// Why it fired.
    pub reason: Reason,
}

impl Trigger {
    /// Whether this is the window's last trigger ([`Reason::Done`]): its state is dropped
    /// after it.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use weir_flow::{Flow, Window};
    ///
    /// // Keep the running sum across `Every` triggers; emit only the final one.
    /// let totals: Vec<u32> = Flow::from_enumerable(1..=5u32)
    ///     .stages(1)
    ///     .window(Window::global().trigger_every(2))
    ///     .reduce(|| 0u32, |x, sum| sum + x)
    ///     .on_trigger(|sum, trigger| (trigger.is_done().then_some(sum), sum))
    ///     .collect()
    ///     .await?;
    /// assert_eq!(totals, vec![15]);
    /// # Ok(()) }
    /// ```
    pub fn is_done(&self) -> bool {
        self.reason == Reason::Done
    }
}
