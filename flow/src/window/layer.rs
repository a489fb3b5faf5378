//! The reducing layer of a stage: puts each event in its window, folds it into the window's
//! state and fires the triggers.

use std::collections::VecDeque;
use std::sync::Arc;

use super::{Fixed, Kind, Reason, Trigger, TriggerFn, Window, WindowId};
use crate::op::Op;
use crate::reduce::{OnTrigger, ReduceFn};
use crate::stage::{Layer, Tick};
use weir_core::Context;

/// An open window and its state.
struct Open<A> {
    id: WindowId,
    /// `None` only while the reducer runs (or after it panicked).
    acc: Option<A>,
    events: usize,
    since_trigger: usize,
    watermarked: bool,
}

/// The windows of one stage and the functions that fill and emit them.
pub(crate) struct Windows<X, A, R, U> {
    kind: Kind<X>,
    fixed: Option<Fixed>,
    every: Option<usize>,
    periodically: Option<std::time::Duration>,
    custom: Option<(String, TriggerFn<X>)>,
    init: Arc<dyn Fn() -> A + Send + Sync>,
    reducer: R,
    on_trigger: Box<dyn OnTrigger<A, U>>,
    /// In window order. Global, count and periodic windows have exactly one open window.
    open: VecDeque<Open<A>>,
    next: u64,
    partition: usize,
    partitions: usize,
}

impl<X: Send + 'static, A: Send + 'static, R: ReduceFn<X, A, U>, U: Send + 'static> Windows<X, A, R, U> {
    pub(crate) fn new(
        window: Window<X>,
        init: Arc<dyn Fn() -> A + Send + Sync>,
        reducer: R,
        on_trigger: Box<dyn OnTrigger<A, U>>,
        partition: usize,
        partitions: usize,
    ) -> Self {
        let fixed = match &window.kind {
            Kind::Fixed { duration, .. } => Some(Fixed::new(*duration, window.lateness)),
            _ => None,
        };
        let mut windows = Windows {
            kind: window.kind,
            fixed,
            every: window.every,
            periodically: window.periodically,
            custom: window.custom.map(|(name, make)| (name, make())),
            init,
            reducer,
            on_trigger,
            open: VecDeque::new(),
            next: 0,
            partition,
            partitions,
        };
        if windows.fixed.is_none() {
            windows.open_next();
        }
        windows
    }

    fn empty(init: &Arc<dyn Fn() -> A + Send + Sync>, id: WindowId) -> Open<A> {
        Open { id, acc: Some(init()), events: 0, since_trigger: 0, watermarked: false }
    }

    fn open_window(&mut self, id: WindowId) {
        let open = Self::empty(&self.init, id);
        self.open.push_back(open);
    }

    /// Opens the next global, count or periodic window.
    fn open_next(&mut self) {
        let id = match self.kind {
            Kind::Count(_) => WindowId::Count(self.next),
            Kind::Periodic(_) => WindowId::Periodic(self.next),
            _ => WindowId::Global,
        };
        self.next += 1;
        self.open_window(id);
    }

    /// Folds a chunk of events that need no per-event decision: one open window, no
    /// trigger counting events. The state goes by value through the chain's fold (no
    /// `Option` per event), as in a sequential `fold`.
    fn fold_all<In, O: Op<In, Out = X>>(&mut self, op: &mut O, events: Vec<In>, out: &mut Vec<U>) {
        let Some(open) = self.open.front_mut() else { return };
        // Only a reducer that panicked leaves no state; the stage has failed then.
        let Some(acc) = open.acc.take() else { return };
        let reducer = &mut self.reducer;
        // Only a periodic window needs its count (an empty one is not reported); counting
        // costs a tight fold a quarter of its speed, so other windows skip it.
        let acc = if matches!(self.kind, Kind::Periodic(_)) {
            let (acc, count) =
                op.fold(events, (acc, 0), &mut |(acc, count), x| (reducer.reduce(x, acc, out), count + 1));
            open.events += count;
            acc
        } else {
            op.fold(events, acc, &mut |acc, x| reducer.reduce(x, acc, out))
        };
        open.acc = Some(acc);
    }

    /// Puts one event in its window.
    fn event(&mut self, x: X, out: &mut Vec<U>) {
        let slot = match &self.kind {
            Kind::Fixed { time, .. } => {
                let t = time(&x);
                match self.fixed_slot(t, out) {
                    Some(slot) => slot,
                    None => return,
                }
            }
            _ => 0,
        };
        let Some(open) = self.open.get_mut(slot) else { return };
        if let Some(acc) = open.acc.take() {
            open.acc = Some(self.reducer.reduce(x, acc, out));
        }
        open.events += 1;
        open.since_trigger += 1;
        let (events, since_trigger) = (open.events, open.since_trigger);
        if let Some(n) = self.every.filter(|n| *n == since_trigger) {
            self.fire(slot, Reason::Every(n), out);
        }
        if let Kind::Count(n) = self.kind {
            if events == n {
                self.close_front(out);
                self.open_next();
            }
        }
    }

    /// For an event at time `t`: opens its window (and those between it and the open ones),
    /// moves the watermark to `t` if later, and returns the window's slot, or `None` if it
    /// is late.
    fn fixed_slot(&mut self, t: u64, out: &mut Vec<U>) -> Option<usize> {
        let fixed = self.fixed.as_mut()?;
        let watermark = fixed.advance(t);
        let start = fixed.start_of(t);
        if fixed.is_late(start) {
            return None;
        }
        let first_open = self.open.front().map(|open| window_start(open.id));
        let last_open = self.open.back().map(|open| window_start(open.id));
        let before: Vec<u64> = fixed.to_open_before(first_open, start).collect();
        let to_open: Vec<(u64, u64)> =
            fixed.to_open(last_open, start).map(|start| (start, fixed.end_of(start))).collect();
        for start in before.into_iter().rev() {
            let end = fixed.end_of(start);
            self.open.push_front(Self::empty(&self.init, WindowId::Fixed { start, end }));
        }
        for (start, end) in to_open {
            self.open_window(WindowId::Fixed { start, end });
        }
        self.watermark(watermark, out);
        let first = self.open.front().map(|open| window_start(open.id))?;
        let fixed = self.fixed.as_ref()?;
        let duration = fixed.end_of(0);
        usize::try_from((start - first) / duration).ok()
    }

    /// Fires the watermark and done triggers of the fixed windows that time `t` passed.
    fn watermark(&mut self, t: u64, out: &mut Vec<U>) {
        let mut slot = 0;
        while let (Some(open), Some(fixed)) = (self.open.get(slot), self.fixed.as_ref()) {
            let start = window_start(open.id);
            match fixed.passed(start, t) {
                super::fixed::Passed::No => break,
                passed => {
                    if fixed.has_lateness() && !open.watermarked {
                        self.fire(slot, Reason::Watermark, out);
                        if let Some(open) = self.open.get_mut(slot) {
                            open.watermarked = true;
                        }
                    }
                    if passed == super::fixed::Passed::Done {
                        // Windows close in order: this is the first open one.
                        self.close_front(out);
                        if let Some(fixed) = self.fixed.as_mut() {
                            fixed.closed(start);
                        }
                    } else {
                        slot += 1;
                    }
                }
            }
        }
    }

    /// Fires a trigger on the window in `slot`.
    fn fire(&mut self, slot: usize, reason: Reason, out: &mut Vec<U>) {
        let Some(open) = self.open.get_mut(slot) else { return };
        let Some(acc) = open.acc.take() else { return };
        let trigger =
            Trigger { partition: self.partition, partitions: self.partitions, window: open.id, reason };
        let kept = self.on_trigger.trigger(acc, &trigger, out);
        if !trigger.is_done() {
            open.acc = Some(kept.unwrap_or_else(|| (self.init)()));
            open.since_trigger = 0;
        }
    }

    fn close_front(&mut self, out: &mut Vec<U>) {
        self.fire(0, Reason::Done, out);
        self.open.pop_front();
    }

    fn fire_all(&mut self, reason: &Reason, out: &mut Vec<U>) {
        for slot in 0..self.open.len() {
            self.fire(slot, reason.clone(), out);
        }
    }

    fn needs_each_event(&self) -> bool {
        self.every.is_some() || matches!(self.kind, Kind::Count(_) | Kind::Fixed { .. })
    }
}

fn window_start(id: WindowId) -> u64 {
    match id {
        WindowId::Fixed { start, .. } => start,
        _ => 0,
    }
}

/// A stage's layer: its mappers, then its windows.
pub(crate) struct WindowLayer<O, X, A, R, U> {
    pub(crate) op: O,
    pub(crate) windows: Windows<X, A, R, U>,
    pub(crate) reducer_name: &'static str,
}

impl<In, O, A, R, U> Layer<In> for WindowLayer<O, O::Out, A, R, U>
where
    In: Send + 'static,
    O: Op<In>,
    A: Send + 'static,
    R: ReduceFn<O::Out, A, U>,
    U: Send + 'static,
{
    type Out = U;

    fn start(&mut self, ctx: &mut Context<Tick>) {
        if let Kind::Periodic(period) = self.windows.kind {
            ctx.send_after(Tick::Window, period);
        }
        if let Some(period) = self.windows.periodically {
            ctx.send_after(Tick::Trigger, period);
        }
    }

    fn chunk(&mut self, events: Vec<In>) -> Vec<U> {
        let mut out = Vec::new();
        let windows = &mut self.windows;
        if let Some((name, mut trigger)) = windows.custom.take() {
            let mut rest = Vec::with_capacity(events.len());
            self.op.push_all(events, &mut |x| rest.push(x));
            while !rest.is_empty() {
                let Some(at) = trigger(&rest) else {
                    rest.into_iter().for_each(|x| windows.event(x, &mut out));
                    break;
                };
                let tail = rest.split_off(at.clamp(1, rest.len()));
                rest.into_iter().for_each(|x| windows.event(x, &mut out));
                windows.fire_all(&Reason::Custom(name.clone()), &mut out);
                rest = tail;
            }
            windows.custom = Some((name, trigger));
        } else if windows.needs_each_event() {
            self.op.push_all(events, &mut |x| windows.event(x, &mut out));
        } else {
            windows.fold_all(&mut self.op, events, &mut out);
        }
        out
    }

    /// A reducer emits per window, not per event: larger pulls cost less per event.
    fn pull_size(&self, chunk: usize) -> usize {
        chunk.max(4096)
    }

    fn tick(&mut self, tick: Tick, ctx: &mut Context<Tick>) -> Vec<U> {
        let mut out = Vec::new();
        let windows = &mut self.windows;
        match (tick, &windows.kind, windows.periodically) {
            (Tick::Window, Kind::Periodic(period), _) => {
                ctx.send_after(Tick::Window, *period);
                windows.close_front(&mut out);
                windows.open_next();
            }
            (Tick::Trigger, _, Some(period)) => {
                ctx.send_after(Tick::Trigger, period);
                windows.fire_all(&Reason::Periodically(period), &mut out);
            }
            _ => {}
        }
        out
    }

    fn done(&mut self) -> Vec<U> {
        let mut out = Vec::new();
        let windows = &mut self.windows;
        while let Some(open) = windows.open.front() {
            let report = match windows.kind {
                Kind::Global | Kind::Fixed { .. } => true,
                Kind::Count(_) | Kind::Periodic(_) => open.events > 0,
            };
            if report {
                windows.close_front(&mut out);
            } else {
                windows.open.pop_front();
            }
        }
        out
    }

    fn describe(&self) -> String {
        let ops = self.op.describe();
        if ops.is_empty() {
            self.reducer_name.to_string()
        } else {
            format!("{ops} → {}", self.reducer_name)
        }
    }
}
