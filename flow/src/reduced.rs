//! The builders of a reducing layer: [`Windowed`] (a layer with a window, waiting for its
//! reducer) and [`Reduced`] (a layer with its reducer, choosing what to emit).
//!
//! They have no mappers and no second reducer, so a mapper after a reduce or two reduces in
//! one layer do not compile; a window with no reducer cannot run.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;

use weir_core::ConsumerRef;

use crate::error::Error;
use crate::flow::{Flow, FlowStream, FlowTask, RunningFlow};
use crate::op::Op;
use crate::partition::{IntoRoute, Partition};
use crate::reduce::{
    emit, DefaultEmit, Emitting, GroupBy, GroupByKey, OnTrigger, Plain, ReduceFn, UserTrigger,
};
use crate::window::layer::{WindowLayer, Windows};
use crate::window::{Trigger, Window};

/// A layer with a window, waiting for its reducer: built by [`Flow::window`].
#[must_use = "a window needs a reducer"]
pub struct Windowed<T, O: Op<T>> {
    pub(crate) flow: Flow<T, O>,
    pub(crate) window: Window<O::Out>,
}

impl<T: Send + 'static, O: Op<T>> Windowed<T, O> {
    pub(crate) fn with<A, R>(
        self,
        init: impl Fn() -> A + Send + Sync + 'static,
        reducer: R,
        name: &'static str,
    ) -> Reduced<T, O, A, R> {
        Reduced { flow: self.flow, window: self.window, init: Arc::new(init), reducer, name }
    }

    /// Folds each window's events into a state (see [`Flow::reduce`]).
    pub fn reduce<A, I, R>(self, init: I, reducer: R) -> Reduced<T, O, A, Plain<R>>
    where
        A: Send + 'static,
        I: Fn() -> A + Send + Sync + 'static,
        R: FnMut(O::Out, A) -> A + Clone + Send + 'static,
    {
        self.with(init, Plain(reducer), "reduce")
    }

    /// Folds each window's events and emits events on the way (see
    /// [`Flow::emit_and_reduce`]).
    pub fn emit_and_reduce<A, I, R, E>(self, init: I, reducer: R) -> Reduced<T, O, A, Emitting<R>>
    where
        A: Send + 'static,
        I: Fn() -> A + Send + Sync + 'static,
        R: FnMut(O::Out, A) -> (E, A) + Clone + Send + 'static,
        E: IntoIterator,
    {
        self.with(init, Emitting(reducer), "emit_and_reduce")
    }

    /// Groups each window's events by `key` (see [`Flow::group_by`]).
    pub fn group_by<K, F>(self, key: F) -> Reduced<T, O, HashMap<K, Vec<O::Out>>, GroupBy<F>>
    where
        F: FnMut(&O::Out) -> K + Clone + Send + 'static,
        K: Hash + Eq + Send + 'static,
    {
        self.with(HashMap::new, GroupBy(key), "group_by")
    }

    /// Groups each window's `(key, value)` events by key (see [`Flow::group_by_key`]).
    pub fn group_by_key<K, V>(self) -> Reduced<T, O, HashMap<K, Vec<V>>, GroupByKey>
    where
        O: Op<T, Out = (K, V)>,
        K: Hash + Eq + Send + 'static,
        V: Send + 'static,
    {
        self.with(HashMap::new, GroupByKey, "group_by_key")
    }
}

/// A layer with its reducer: choose what each trigger emits with [`emit`](Reduced::emit)
/// or [`on_trigger`](Reduced::on_trigger), or run it as it is (the reducer's default:
/// the state's items for `reduce` and `group_by`, the reducer's own events for
/// `emit_and_reduce`).
///
/// What comes next is a new layer: [`partition`](Reduced::partition),
/// [`shuffle`](Reduced::shuffle), [`departition`](Reduced::departition), or running it.
#[must_use = "flows do nothing unless run"]
pub struct Reduced<T, O: Op<T>, A, R> {
    flow: Flow<T, O>,
    window: Window<O::Out>,
    init: Arc<dyn Fn() -> A + Send + Sync>,
    reducer: R,
    name: &'static str,
}

impl<T: Send + 'static, O: Op<T>, A: Send + 'static, R> Reduced<T, O, A, R> {
    /// What each trigger emits and which state the window keeps (Flow's `on_trigger`):
    /// `f(state, trigger)` returns the events to emit and the state to go on with (ignored
    /// after the window's final trigger, [`Trigger::is_done`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use weir_flow::{Flow, Reason, Window};
    ///
    /// // A running count every 4 events, and the total at the end.
    /// let reports: Vec<(bool, usize)> = Flow::from_enumerable(0..10u32)
    ///     .stages(1)
    ///     .window(Window::global().trigger_every(4))
    ///     .reduce(|| 0usize, |_, n| n + 1)
    ///     .on_trigger(|n, trigger| (vec![(trigger.reason == Reason::Done, n)], n))
    ///     .collect()
    ///     .await?;
    /// assert_eq!(reports, vec![(false, 4), (false, 8), (true, 10)]);
    /// # Ok(()) }
    /// ```
    pub fn on_trigger<U, I, F>(self, f: F) -> Flow<U>
    where
        R: ReduceFn<O::Out, A, U>,
        F: FnMut(A, &Trigger) -> (I, A) + Clone + Send + Sync + 'static,
        I: IntoIterator<Item = U>,
        U: Send + 'static,
    {
        self.emit_with(move || UserTrigger(f.clone()))
    }

    /// What each trigger emits, without writing an `on_trigger` (Flow's `emit`): see
    /// [`emit`](crate::emit).
    pub fn emit<M: emit::Mode<A>>(self, mode: M) -> Flow<M::Out>
    where
        R: ReduceFn<O::Out, A, M::Out>,
    {
        self.emit_with(move || mode.clone())
    }

    /// Closes the layer: each stage runs the mappers, then its windows, with what
    /// `on_trigger()` makes for it.
    pub(crate) fn emit_with<U, G>(self, on_trigger: impl Fn() -> G + Send + Sync + 'static) -> Flow<U>
    where
        R: ReduceFn<O::Out, A, U>,
        G: OnTrigger<A, U> + 'static,
        U: Send + 'static,
    {
        let Reduced { flow, window, init, reducer, name } = self;
        let (stages, max_demand) = (flow.stages, flow.max_demand);
        flow.close_layer(
            stages,
            max_demand,
            move |op, at| {
                window.validate()?;
                let windows = Windows::new(
                    window.clone(),
                    init.clone(),
                    reducer.clone(),
                    Box::new(on_trigger()),
                    at.index,
                    at.stages,
                );
                Ok((WindowLayer { op: op.clone(), windows, reducer_name: name }, None))
            },
            Flow::plan_all,
        )
    }

    /// The number of stages of this layer (so of its partitions).
    pub(crate) fn stages(&self) -> usize {
        self.flow.stages
    }
}

impl<T, O, A, R> Reduced<T, O, A, R>
where
    T: Send + 'static,
    O: Op<T>,
    A: Send + 'static,
    R: DefaultEmit<O::Out, A>,
{
    /// The layer with its default emission, as a flow whose next layer is yet to come.
    pub fn flow(self) -> Flow<R::Out> {
        let mode = R::mode();
        self.emit_with(move || mode.clone())
    }

    /// Runs the flow and collects what the layer emits (see [`Flow::collect`]).
    ///
    /// # Errors
    ///
    /// As [`Flow::collect`].
    pub async fn collect<C: Default + Extend<R::Out>>(self) -> Result<C, Error> {
        self.flow().collect().await
    }

    /// Like [`collect`](Reduced::collect), from synchronous code.
    ///
    /// # Errors
    ///
    /// As [`Flow::collect_blocking`].
    pub fn collect_blocking<C: Default + Extend<R::Out>>(self) -> Result<C, Error> {
        self.flow().collect_blocking()
    }

    /// Runs the flow for its side effects (see [`Flow::run`]).
    ///
    /// # Errors
    ///
    /// As [`Flow::run`].
    pub async fn run(self) -> Result<(), Error> {
        self.flow().run().await
    }

    /// Starts the flow and streams what the layer emits (see [`Flow::into_stream`]).
    ///
    /// # Errors
    ///
    /// As [`Flow::into_stream`].
    pub async fn into_stream(self) -> Result<FlowStream<R::Out>, Error> {
        self.flow().into_stream().await
    }

    /// Feeds running consumers (see [`Flow::into_stages`]).
    ///
    /// # Errors
    ///
    /// As [`Flow::into_stages`].
    pub async fn into_stages(
        self,
        consumers: impl IntoIterator<Item = ConsumerRef<R::Out>>,
    ) -> Result<RunningFlow, Error> {
        self.flow().into_stages(consumers).await
    }

    /// Runs the flow detached (see [`Flow::start`]).
    ///
    /// # Errors
    ///
    /// As [`Flow::start`].
    pub async fn start(self) -> Result<FlowTask, Error> {
        self.flow().start().await
    }

    /// A new layer, partitioned (see [`Flow::partition`]).
    pub fn partition<P: IntoRoute<R::Out>>(self, partition: Partition<R::Out, P>) -> Flow<R::Out> {
        self.flow().partition(partition)
    }

    /// A new layer, without keys (see [`Flow::shuffle`]).
    pub fn shuffle(self, stages: usize) -> Flow<R::Out> {
        self.flow().shuffle(stages)
    }
}
