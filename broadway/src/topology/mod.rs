//! The stages of a pipeline, and how they start, finish and restart (`running.rs`).
//!
//! ```text
//! producer_0..p ──(demand or partition by processors' partition_by)──▶ processor_0..n
//!   processor ──(partition by batcher)──▶ batcher_<name> ──(demand or partition_by)──▶ batch_processor_<name>_0..k
//! ```
//!
//! Every subscription is temporary: a stage that crashes is restarted by its slot's task,
//! which wires the new instance to its neighbours. A processor finishes once every producer
//! is gone for good and its subscriptions have ended; batchers finish after the last
//! processor (flushing their open batches), batch processors after their batcher.

pub(crate) mod batch_processor;
pub(crate) mod batcher;
pub(crate) mod processor;
pub(crate) mod running;

use weir_core::Context;

/// Decides when a consuming stage finishes: once its upstream is gone for good and every
/// subscription to it has ended (events come before the end on a subscription, so nothing
/// is left behind).
#[derive(Default)]
pub(crate) struct Finishing {
    subscriptions: usize,
    pub(crate) upstream_done: bool,
    finished: bool,
}

impl Finishing {
    pub(crate) fn subscribed(&mut self) {
        self.subscriptions += 1;
    }

    /// A subscription ended; true if the stage finishes now.
    pub(crate) fn cancelled<M>(&mut self, ctx: &mut Context<M>) -> bool {
        self.subscriptions = self.subscriptions.saturating_sub(1);
        self.check(ctx)
    }

    pub(crate) fn upstream_done<M>(&mut self, ctx: &mut Context<M>) -> bool {
        self.upstream_done = true;
        self.check(ctx)
    }

    fn check<M>(&mut self, ctx: &mut Context<M>) -> bool {
        if self.upstream_done && self.subscriptions == 0 && !self.finished {
            self.finished = true;
            ctx.finish();
            return true;
        }
        false
    }
}
