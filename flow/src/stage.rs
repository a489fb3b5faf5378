//! The stages a flow runs: one producer-consumer per stage of a layer, running the layer's
//! fused operations and what the layer does with their outcome ([`Layer`]).

use std::any::Any;
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};

use weir_core::{
    panic_message, AskMode, BoxError, Context, ExitReason, Peer, ProducerConsumer, SubscriptionId,
};

use crate::op::Op;

/// What a layer does with the events of one stage: per chunk, and when its input ends.
pub(crate) trait Layer<T>: Send + 'static {
    type Out: Send + 'static;

    /// Handles a chunk; returns what to emit now.
    fn chunk(&mut self, events: Vec<T>) -> Vec<Self::Out>;

    /// The input ended; returns what to emit last.
    fn done(&mut self) -> Vec<Self::Out>;

    /// The layer's operations, for errors.
    fn describe(&self) -> String;
}

/// Emits what the operations give.
pub(crate) struct Mapper<O>(pub(crate) O);

impl<T: Send + 'static, O: Op<T>> Layer<T> for Mapper<O> {
    type Out = O::Out;

    fn chunk(&mut self, events: Vec<T>) -> Vec<O::Out> {
        let mut out = Vec::with_capacity(events.len());
        for event in events {
            self.0.push(event, &mut |x| out.push(x));
        }
        out
    }

    fn done(&mut self) -> Vec<O::Out> {
        Vec::new()
    }

    fn describe(&self) -> String {
        self.0.describe()
    }
}

/// Folds what the operations give into a state; emits the state's items at the end.
pub(crate) struct Reducer<O, A, R> {
    pub(crate) op: O,
    pub(crate) state: Option<A>,
    pub(crate) reducer: R,
}

impl<T, O, A, R> Layer<T> for Reducer<O, A, R>
where
    T: Send + 'static,
    O: Op<T>,
    A: IntoIterator + Send + 'static,
    A::Item: Send + 'static,
    R: FnMut(O::Out, A) -> A + Send + 'static,
{
    type Out = A::Item;

    fn chunk(&mut self, events: Vec<T>) -> Vec<A::Item> {
        let reducer = &mut self.reducer;
        // The state leaves its field once per chunk: kept in a local, LLVM can keep it in
        // registers instead of storing it back after every event.
        let mut state = self.state.take();
        for event in events {
            self.op.push(event, &mut |x| state = state.take().map(|acc| reducer(x, acc)));
        }
        self.state = state;
        Vec::new()
    }

    fn done(&mut self) -> Vec<A::Item> {
        self.state.take().map(|s| s.into_iter().collect()).unwrap_or_default()
    }

    fn describe(&self) -> String {
        format!("{} → reduce", self.op.describe())
    }
}

/// One stage of a layer. Its subscriptions are transient and it counts its producers, so it
/// finishes after the last one ends (not the first); a failure still stops it at once.
pub(crate) struct LayerStage<T, L> {
    layer: L,
    producers: usize,
    _events: PhantomData<fn(T)>,
}

impl<T, L> LayerStage<T, L> {
    pub(crate) fn new(layer: L) -> Self {
        LayerStage { layer, producers: 0, _events: PhantomData }
    }
}

/// A panic in a layer's functions, as an error naming them. Panics are caught once per
/// chunk, not per event, to keep the loop tight.
fn panicked(operations: String, panic: &(dyn Any + Send)) -> BoxError {
    format!("{operations} panicked: {}", panic_message(panic)).into()
}

impl<T: Send + 'static, L: Layer<T>> ProducerConsumer for LayerStage<T, L> {
    type In = T;
    type Out = L::Out;
    type Message = ();

    async fn handle_events(
        &mut self,
        events: Vec<T>,
        _: SubscriptionId,
        _: &mut Context,
    ) -> Result<Vec<L::Out>, BoxError> {
        let layer = &mut self.layer;
        catch_unwind(AssertUnwindSafe(|| layer.chunk(events)))
            .map_err(|panic| panicked(layer.describe(), &*panic))
    }

    async fn handle_subscribe(&mut self, peer: Peer, _: &mut Context) -> Result<AskMode, BoxError> {
        if let Peer::Producer(_) = peer {
            self.producers += 1;
        }
        Ok(AskMode::Automatic)
    }

    async fn handle_cancel(
        &mut self,
        peer: Peer,
        _: &ExitReason,
        ctx: &mut Context,
    ) -> Result<Vec<L::Out>, BoxError> {
        if let Peer::Producer(_) = peer {
            self.producers -= 1;
            if self.producers == 0 {
                ctx.finish();
                let layer = &mut self.layer;
                return catch_unwind(AssertUnwindSafe(|| layer.done()))
                    .map_err(|panic| panicked(layer.describe(), &*panic));
            }
        }
        Ok(Vec::new())
    }
}
