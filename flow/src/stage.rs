//! The stages a flow runs: one producer-consumer per stage of a layer, running the layer's
//! fused operations and what the layer does with their outcome ([`Layer`]).

use std::any::Any;
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};

use weir_core::{
    panic_message, AskMode, BoxError, Context, ExitReason, Peer, ProducerConsumer, SubscriptionId,
};

use crate::op::Op;

/// A timer a layer set: a periodic window's end, or a periodic trigger.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Tick {
    Window,
    Trigger,
    /// A source stage goes on with its input (see `source.rs`).
    Continue,
}

/// What a layer does with the events of one stage: per chunk, on its timers, and when its
/// input ends.
pub(crate) trait Layer<T>: Send + 'static {
    type Out: Send + 'static;

    /// The stage subscribed to its first producer: set timers.
    fn start(&mut self, _ctx: &mut Context<Tick>) {}

    /// Handles a chunk; returns what to emit now.
    fn chunk(&mut self, events: Vec<T>) -> Vec<Self::Out>;

    /// How many events to pull at once from an iterator source, given the chunk size its
    /// demand implies. Layers that emit per event keep to it, so what they emit stays
    /// bounded by demand.
    fn pull_size(&self, chunk: usize) -> usize {
        chunk
    }

    /// A timer fired; returns what to emit now.
    fn tick(&mut self, _tick: Tick, _ctx: &mut Context<Tick>) -> Vec<Self::Out> {
        Vec::new()
    }

    /// The input ended; returns what to emit last.
    fn done(&mut self) -> Vec<Self::Out>;

    /// The layer's operations, for errors.
    fn describe(&self) -> String;
}

/// Emits what the operations give.
pub(crate) struct Mapper<O> {
    op: O,
    /// How many events the last chunk gave: after a `flat_map` a chunk gives many times its
    /// size, and sizing the output by it saves the reallocations of growing it.
    last_out: usize,
}

impl<O> Mapper<O> {
    pub(crate) fn new(op: O) -> Self {
        Mapper { op, last_out: 0 }
    }
}

impl<T: Send + 'static, O: Op<T>> Layer<T> for Mapper<O> {
    type Out = O::Out;

    fn chunk(&mut self, events: Vec<T>) -> Vec<O::Out> {
        let mut out = Vec::with_capacity(events.len().max(self.last_out));
        self.op.push_all(events, &mut |x| out.push(x));
        self.last_out = out.len();
        out
    }

    fn done(&mut self) -> Vec<O::Out> {
        Vec::new()
    }

    fn describe(&self) -> String {
        self.op.describe()
    }
}

/// One stage of a layer. Its subscriptions are transient and it counts its producers, so it
/// finishes after the last one ends (not the first); a failure still stops it at once.
pub(crate) struct LayerStage<T, L> {
    layer: L,
    producers: usize,
    started: bool,
    _events: PhantomData<fn(T)>,
}

impl<T, L> LayerStage<T, L> {
    pub(crate) fn new(layer: L) -> Self {
        LayerStage { layer, producers: 0, started: false, _events: PhantomData }
    }
}

/// Runs `f` on a layer, turning a panic into an error naming the layer's functions. Panics
/// are caught once per chunk, not per event, to keep the loop tight.
pub(crate) fn catching<T, L: Layer<T>, R>(layer: &mut L, f: impl FnOnce(&mut L) -> R) -> Result<R, BoxError> {
    catch_unwind(AssertUnwindSafe(|| f(layer))).map_err(|panic| panicked(layer.describe(), &*panic))
}

fn panicked(operations: String, panic: &(dyn Any + Send)) -> BoxError {
    format!("{operations} panicked: {}", panic_message(panic)).into()
}

impl<T: Send + 'static, L: Layer<T>> ProducerConsumer for LayerStage<T, L> {
    type In = T;
    type Out = L::Out;
    type Message = Tick;

    async fn handle_events(
        &mut self,
        events: Vec<T>,
        _: SubscriptionId,
        _: &mut Context<Tick>,
    ) -> Result<Vec<L::Out>, BoxError> {
        catching(&mut self.layer, |layer| layer.chunk(events))
    }

    async fn handle_subscribe(&mut self, peer: Peer, ctx: &mut Context<Tick>) -> Result<AskMode, BoxError> {
        if let Peer::Producer(_) = peer {
            self.producers += 1;
            if self.producers == 1 && !self.started {
                self.started = true;
                self.layer.start(ctx);
            }
        }
        Ok(AskMode::Automatic)
    }

    async fn handle_info(&mut self, tick: Tick, ctx: &mut Context<Tick>) -> Result<Vec<L::Out>, BoxError> {
        catching(&mut self.layer, |layer| layer.tick(tick, ctx))
    }

    async fn handle_cancel(
        &mut self,
        peer: Peer,
        _: &ExitReason,
        ctx: &mut Context<Tick>,
    ) -> Result<Vec<L::Out>, BoxError> {
        if let Peer::Producer(_) = peer {
            self.producers -= 1;
            if self.producers == 0 {
                ctx.finish();
                return catching(&mut self.layer, |layer| layer.done());
            }
        }
        Ok(Vec::new())
    }
}
