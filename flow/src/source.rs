//! Iterator sources fused into the first layer: each stage of the layer is a producer that
//! pulls batches straight from the iterators and runs the layer on them, so the items never
//! travel through a channel before the first operation (Flow runs `from_enumerable` in
//! producer stages of their own; here the first layer's stages are the producers).

use std::sync::{Arc, Mutex};

use weir_core::{BoxError, Context, Producer, SubscriptionId};

use crate::stage::{catching, Layer, Tick};

/// Moves up to `n` items of one iterator into a buffer.
pub(crate) type Puller<T> = Box<dyn FnMut(&mut Vec<T>, usize) + Send>;

/// A puller over an iterator.
pub(crate) fn puller<I>(items: I) -> Puller<I::Item>
where
    I: Iterator + Send + 'static,
{
    let mut items = items;
    Box::new(move |buffer, n| buffer.extend(items.by_ref().take(n)))
}

/// The iterators of a source, shared by the stages of the first layer. Each stage starts
/// with its own iterator (`from_enumerables` reads them in parallel) and helps with the
/// others once its own is done.
pub(crate) struct Source<T> {
    pullers: Vec<Mutex<Option<Puller<T>>>>,
}

impl<T> Source<T> {
    pub(crate) fn new(pullers: Vec<Puller<T>>) -> Self {
        Source { pullers: pullers.into_iter().map(|p| Mutex::new(Some(p))).collect() }
    }

    pub(crate) fn len(&self) -> usize {
        self.pullers.len()
    }

    /// Up to `n` items, from the iterator `preferred` first; empty once all are done.
    fn pull(&self, preferred: usize, n: usize) -> Vec<T> {
        let mut items = Vec::with_capacity(n);
        let count = self.pullers.len();
        for i in 0..count {
            let mut slot = self.pullers[(preferred + i) % count].lock().unwrap_or_else(|p| p.into_inner());
            if let Some(pull) = slot.as_mut() {
                let wanted = n - items.len();
                let before = items.len();
                pull(&mut items, wanted);
                if items.len() - before < wanted {
                    *slot = None;
                }
            }
            if items.len() == n {
                break;
            }
        }
        items
    }
}

/// Batches a source stage runs before it lets other messages in.
const BATCHES_PER_TURN: usize = 16;

/// A stage of the first layer: a producer running its layer over batches of the source.
pub(crate) struct SourceStage<T, L> {
    layer: L,
    source: Arc<Source<T>>,
    preferred: usize,
    batch: usize,
    /// Demand not yet met.
    pending: usize,
    continuing: bool,
    started: bool,
    done: bool,
}

impl<T, L: Layer<T>> SourceStage<T, L> {
    pub(crate) fn new(layer: L, source: Arc<Source<T>>, preferred: usize, batch: usize) -> Self {
        SourceStage {
            source,
            preferred,
            batch: batch.max(1),
            layer,
            pending: 0,
            continuing: false,
            started: false,
            done: false,
        }
    }

    /// Runs batches until the demand is met, the source ends, or the turn is over (then it
    /// goes on after the messages that arrived meanwhile).
    fn run(&mut self, ctx: &mut Context<Tick>) -> Result<Vec<L::Out>, BoxError> {
        let mut out = Vec::new();
        let mut batches = 0;
        while self.pending > out.len() && !self.done {
            if batches == BATCHES_PER_TURN {
                if !self.continuing {
                    self.continuing = true;
                    // Fails only when the stage is stopping: then there is nothing to go on with.
                    let _stopping = ctx.me().cast(Tick::Continue);
                }
                break;
            }
            batches += 1;
            let items = self.source.pull(self.preferred, self.batch);
            let layer = &mut self.layer;
            if items.is_empty() {
                self.done = true;
                out.extend(catching(layer, |layer| layer.done())?);
                ctx.finish();
            } else {
                out.extend(catching(layer, |layer| layer.chunk(items))?);
            }
        }
        self.pending = self.pending.saturating_sub(out.len());
        Ok(out)
    }
}

impl<T: Send + 'static, L: Layer<T>> Producer for SourceStage<T, L> {
    type Event = L::Out;
    type Message = Tick;

    async fn handle_demand(
        &mut self,
        demand: usize,
        ctx: &mut Context<Tick>,
    ) -> Result<Vec<L::Out>, BoxError> {
        self.pending += demand;
        self.run(ctx)
    }

    async fn handle_subscribe(&mut self, _: SubscriptionId, ctx: &mut Context<Tick>) -> Result<(), BoxError> {
        if !self.started {
            self.started = true;
            self.layer.start(ctx);
        }
        Ok(())
    }

    async fn handle_info(&mut self, tick: Tick, ctx: &mut Context<Tick>) -> Result<Vec<L::Out>, BoxError> {
        match tick {
            Tick::Continue => {
                self.continuing = false;
                self.run(ctx)
            }
            tick => catching(&mut self.layer, |layer| layer.tick(tick, ctx)),
        }
    }
}
