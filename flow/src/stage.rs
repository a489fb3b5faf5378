//! The stages a flow runs: one kind per layer, running the layer's fused operations and,
//! for a reducing layer, its reducer.

use std::any::Any;
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};

use weir_core::{
    panic_message, AskMode, BoxError, Context, ExitReason, Peer, ProducerConsumer, SubscriptionId,
};

use crate::op::Op;

/// A panic in a layer's functions, as an error naming them. Panics are caught once per
/// chunk, not per event, to keep the loop tight.
fn panicked(operations: String, panic: &(dyn Any + Send)) -> BoxError {
    format!("{operations} panicked: {}", panic_message(panic)).into()
}

/// Counts the producers a layer stage consumes, so it finishes after the last one, not the
/// first (its subscriptions are transient: a failure still stops it at once).
#[derive(Default)]
struct Upstreams(usize);

impl Upstreams {
    fn subscribed(&mut self, peer: Peer) {
        if let Peer::Producer(_) = peer {
            self.0 += 1;
        }
    }

    /// True when the last producer has finished.
    fn cancelled(&mut self, peer: Peer) -> bool {
        if let Peer::Producer(_) = peer {
            self.0 -= 1;
            return self.0 == 0;
        }
        false
    }
}

/// A stage that runs a layer's operations on every chunk.
pub(crate) struct MapStage<T, O> {
    op: O,
    upstreams: Upstreams,
    _events: PhantomData<fn(T)>,
}

impl<T, O> MapStage<T, O> {
    pub(crate) fn new(op: O) -> Self {
        MapStage { op, upstreams: Upstreams::default(), _events: PhantomData }
    }
}

impl<T: Send + 'static, O: Op<T>> ProducerConsumer for MapStage<T, O> {
    type In = T;
    type Out = O::Out;
    type Message = ();

    async fn handle_events(
        &mut self,
        events: Vec<T>,
        _: SubscriptionId,
        _: &mut Context,
    ) -> Result<Vec<O::Out>, BoxError> {
        let mut out = Vec::with_capacity(events.len());
        let op = &mut self.op;
        catch_unwind(AssertUnwindSafe(|| {
            for event in events {
                op.push(event, &mut |x| out.push(x));
            }
        }))
        .map_err(|panic| panicked(op.describe(), &*panic))?;
        Ok(out)
    }

    async fn handle_subscribe(&mut self, peer: Peer, _: &mut Context) -> Result<AskMode, BoxError> {
        self.upstreams.subscribed(peer);
        Ok(AskMode::Automatic)
    }

    async fn handle_cancel(
        &mut self,
        peer: Peer,
        _: &ExitReason,
        ctx: &mut Context,
    ) -> Result<Vec<O::Out>, BoxError> {
        if self.upstreams.cancelled(peer) {
            ctx.finish();
        }
        Ok(Vec::new())
    }
}

/// A stage that runs a layer's operations, folds what comes out into its state, and emits
/// the state's items when its producers are done.
pub(crate) struct ReduceStage<T, O, A, R> {
    op: O,
    state: Option<A>,
    reducer: R,
    upstreams: Upstreams,
    _events: PhantomData<fn(T)>,
}

impl<T, O, A, R> ReduceStage<T, O, A, R> {
    pub(crate) fn new(op: O, state: A, reducer: R) -> Self {
        ReduceStage { op, state: Some(state), reducer, upstreams: Upstreams::default(), _events: PhantomData }
    }
}

impl<T, O, A, R> ProducerConsumer for ReduceStage<T, O, A, R>
where
    T: Send + 'static,
    O: Op<T>,
    A: IntoIterator + Send + 'static,
    A::Item: Send + 'static,
    R: FnMut(O::Out, A) -> A + Send + 'static,
{
    type In = T;
    type Out = A::Item;
    type Message = ();

    async fn handle_events(
        &mut self,
        events: Vec<T>,
        _: SubscriptionId,
        _: &mut Context,
    ) -> Result<Vec<A::Item>, BoxError> {
        let (op, reducer, state) = (&mut self.op, &mut self.reducer, &mut self.state);
        catch_unwind(AssertUnwindSafe(|| {
            for event in events {
                op.push(event, &mut |x| {
                    // The state moves through the reducer and back.
                    if let Some(acc) = state.take() {
                        *state = Some(reducer(x, acc));
                    }
                });
            }
        }))
        .map_err(|panic| panicked(format!("{} → reduce", op.describe()), &*panic))?;
        Ok(Vec::new())
    }

    async fn handle_subscribe(&mut self, peer: Peer, _: &mut Context) -> Result<AskMode, BoxError> {
        self.upstreams.subscribed(peer);
        Ok(AskMode::Automatic)
    }

    async fn handle_cancel(
        &mut self,
        peer: Peer,
        _: &ExitReason,
        ctx: &mut Context,
    ) -> Result<Vec<A::Item>, BoxError> {
        if !self.upstreams.cancelled(peer) {
            return Ok(Vec::new());
        }
        ctx.finish();
        Ok(self.state.take().map(|s| s.into_iter().collect()).unwrap_or_default())
    }
}
