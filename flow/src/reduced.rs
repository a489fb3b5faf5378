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
///
/// # Examples
///
/// ```
/// # #[tokio::main]
/// # async fn main() -> Result<(), weir_flow::Error> {
/// use weir_flow::{Flow, Window, Windowed};
///
/// let windowed: Windowed<u32, _> = Flow::from_enumerable(1..=6u32).stages(1).window(Window::count(2));
/// // Only a reducer can follow: the sums of each window's events.
/// let sums: Vec<u32> = windowed.reduce(|| vec![0u32], |x, s: Vec<u32>| vec![s[0] + x]).collect().await?;
/// assert_eq!(sums, vec![3, 7, 11]);
/// # Ok(()) }
/// ```
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
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use weir_flow::{Flow, Window};
    ///
    /// // Each window starts from `init()`: the largest event of every 3.
    /// let maxima: Vec<u32> = Flow::from_enumerable([4u32, 9, 2, 7, 1, 3, 8])
    ///     .stages(1)
    ///     .window(Window::count(3))
    ///     .reduce(|| None, |x, max: Option<u32>| Some(max.map_or(x, |m| m.max(x))))
    ///     .collect()
    ///     .await?;
    /// assert_eq!(maxima, vec![9, 7, 8]);
    /// # Ok(()) }
    /// ```
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
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use weir_flow::{Flow, Window};
    ///
    /// // Running totals that start again with each window of 2.
    /// let totals: Vec<u32> = Flow::from_enumerable(1..=5u32)
    ///     .stages(1)
    ///     .window(Window::count(2))
    ///     .emit_and_reduce(|| 0u32, |x, total| (Some(total + x), total + x))
    ///     .collect()
    ///     .await?;
    /// assert_eq!(totals, vec![1, 3, 3, 7, 5]);
    /// # Ok(()) }
    /// ```
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
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use weir_flow::{Flow, Window};
    ///
    /// // Odd and even events of 0, 1, 2, then of 3, 4, 5.
    /// let mut groups: Vec<(bool, Vec<u8>)> = Flow::from_enumerable(0..6u8)
    ///     .stages(1)
    ///     .window(Window::count(3))
    ///     .group_by(|n: &u8| n % 2 == 0)
    ///     .collect()
    ///     .await?;
    /// groups.sort();
    /// assert_eq!(groups, vec![(false, vec![1]), (false, vec![3, 5]), (true, vec![0, 2]), (true, vec![4])]);
    /// # Ok(()) }
    /// ```
    pub fn group_by<K, F>(self, key: F) -> Reduced<T, O, HashMap<K, Vec<O::Out>>, GroupBy<F>>
    where
        F: FnMut(&O::Out) -> K + Clone + Send + 'static,
        K: Hash + Eq + Send + 'static,
    {
        self.with(HashMap::new, GroupBy(key), "group_by")
    }

    /// Groups each window's `(key, value)` events by key (see [`Flow::group_by_key`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use weir_flow::{Flow, Window};
    ///
    /// let groups: Vec<(char, Vec<u32>)> = Flow::from_enumerable([('a', 1u32), ('a', 2), ('a', 3)])
    ///     .stages(1)
    ///     .window(Window::count(2))
    ///     .group_by_key()
    ///     .collect()
    ///     .await?;
    /// assert_eq!(groups, vec![('a', vec![1, 2]), ('a', vec![3])]);
    /// # Ok(()) }
    /// ```
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
///
/// # Examples
///
/// ```
/// # #[tokio::main]
/// # async fn main() -> Result<(), weir_flow::Error> {
/// use weir_flow::Flow;
///
/// // A mapper cannot follow a reducer in its layer; after `shuffle`, in the next one, it can.
/// let tenfold: Vec<u32> = Flow::from_enumerable(1..=4u32)
///     .stages(1)
///     .reduce(|| vec![0u32], |x, sum: Vec<u32>| vec![sum[0] + x])
///     .shuffle(1)
///     .map(|sum| sum * 10)
///     .collect()
///     .await?;
/// assert_eq!(tenfold, vec![100]);
/// # Ok(()) }
/// ```
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
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use weir_flow::{emit, Flow};
    ///
    /// // `reduce` would emit the state's items, 1, 2 and 3; `emit::State` emits the state.
    /// let states: Vec<Vec<u32>> = Flow::from_enumerable(1..=3u32)
    ///     .stages(1)
    ///     .reduce(Vec::new, |x, mut v: Vec<u32>| { v.push(x); v })
    ///     .emit(emit::State)
    ///     .collect()
    ///     .await?;
    /// assert_eq!(states, vec![vec![1, 2, 3]]);
    /// # Ok(()) }
    /// ```
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
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use weir_flow::Flow;
    ///
    /// // The state's items (here, one sum per stage) feed the next layer's mappers.
    /// let labels: Vec<String> = Flow::from_enumerable(1..=4u32)
    ///     .stages(1)
    ///     .reduce(|| vec![0u32], |x, sum: Vec<u32>| vec![sum[0] + x])
    ///     .flow()
    ///     .map(|sum| format!("sum={sum}"))
    ///     .collect()
    ///     .await?;
    /// assert_eq!(labels, vec!["sum=10"]);
    /// # Ok(()) }
    /// ```
    pub fn flow(self) -> Flow<R::Out> {
        let mode = R::mode();
        self.emit_with(move || mode.clone())
    }

    /// Runs the flow and collects what the layer emits (see [`Flow::collect`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use weir_flow::{Flow, Partition};
    ///
    /// // One count per stage: 4 stages share the 100 events.
    /// let counts: Vec<usize> = Flow::from_enumerable(0..100u32)
    ///     .partition(Partition::new().stages(4))
    ///     .reduce(|| vec![0usize], |_, n: Vec<usize>| vec![n[0] + 1])
    ///     .collect()
    ///     .await?;
    /// assert_eq!((counts.len(), counts.iter().sum::<usize>()), (4, 100));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Flow::collect`].
    pub async fn collect<C: Default + Extend<R::Out>>(self) -> Result<C, Error> {
        self.flow().collect().await
    }

    /// Like [`collect`](Reduced::collect), from synchronous code.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_flow::Flow;
    ///
    /// let sums: Vec<u64> = Flow::from_enumerable(1..=10u64)
    ///     .stages(1)
    ///     .reduce(|| vec![0u64], |x, sum: Vec<u64>| vec![sum[0] + x])
    ///     .collect_blocking()?;
    /// assert_eq!(sums, vec![55]);
    /// # Ok::<(), weir_flow::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Flow::collect_blocking`].
    pub fn collect_blocking<C: Default + Extend<R::Out>>(self) -> Result<C, Error> {
        self.flow().collect_blocking()
    }

    /// Runs the flow for its side effects (see [`Flow::run`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
    /// use std::sync::Arc;
    /// use weir_flow::Flow;
    ///
    /// // The reducer records the longest word elsewhere; its state has no items to emit.
    /// let longest = Arc::new(AtomicUsize::new(0));
    /// let record = longest.clone();
    /// Flow::from_enumerable(["a", "abc", "ab"])
    ///     .reduce(Vec::<()>::new, move |word, none| { record.fetch_max(word.len(), Relaxed); none })
    ///     .run()
    ///     .await?;
    /// assert_eq!(longest.load(Relaxed), 3);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Flow::run`].
    pub async fn run(self) -> Result<(), Error> {
        self.flow().run().await
    }

    /// Starts the flow and streams what the layer emits (see [`Flow::into_stream`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use futures::StreamExt;
    /// use weir_flow::{Flow, Window};
    ///
    /// let mut sums = Flow::from_enumerable(1..=5u32)
    ///     .stages(1)
    ///     .window(Window::count(2))
    ///     .reduce(|| vec![0u32], |x, sum: Vec<u32>| vec![sum[0] + x])
    ///     .into_stream()
    ///     .await?;
    /// assert_eq!(sums.next().await, Some(3)); // the first window closed
    /// assert_eq!(sums.collect::<Vec<_>>().await, vec![7, 5]);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Flow::into_stream`].
    pub async fn into_stream(self) -> Result<FlowStream<R::Out>, Error> {
        self.flow().into_stream().await
    }

    /// Feeds running consumers (see [`Flow::into_stages`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use std::sync::{Arc, Mutex};
    /// use weir_core::{start_consumer, ConsumerOptions};
    /// use weir_flow::Flow;
    /// # use weir_core::{BoxError, Consumer, Context, SubscriptionId};
    /// # struct Keep(Arc<Mutex<Vec<u32>>>);
    /// # impl Consumer for Keep {
    /// #     type Event = u32;
    /// #     type Message = ();
    /// #     async fn handle_events(&mut self, e: Vec<u32>, _: SubscriptionId, _: &mut Context) -> Result<(), BoxError> {
    /// #         self.0.lock().unwrap().extend(e);
    /// #         Ok(())
    /// #     }
    /// # }
    ///
    /// // `Keep`: a `weir_core::Consumer` that adds the events it gets to a shared list.
    /// let got = Arc::new(Mutex::new(Vec::new()));
    /// let keep = start_consumer(Keep(got.clone()), ConsumerOptions::new())?;
    /// let flow = Flow::from_enumerable(1..=4u32).stages(1).reduce(|| vec![0u32], |x, s: Vec<u32>| vec![s[0] + x]);
    /// let running = flow.into_stages([keep.consumer().clone()]).await?;
    /// keep.wait().await; // the flow ended, so did its consumer
    /// assert_eq!(*got.lock().unwrap(), vec![10]);
    /// drop(running);
    /// # Ok(()) }
    /// ```
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
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use weir_flow::{Error, Flow};
    ///
    /// // A reducer that panics fails the detached flow: `wait` says so.
    /// let task = Flow::from_enumerable(0..10u32)
    ///     .reduce(|| vec![0u32], |x, sum: Vec<u32>| { assert!(x < 5, "too big"); sum })
    ///     .start()
    ///     .await?;
    /// let Err(Error::Failed(reason)) = task.wait().await else { panic!("the flow should fail") };
    /// assert!(reason.to_string().contains("too big"));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Flow::start`].
    pub async fn start(self) -> Result<FlowTask, Error> {
        self.flow().start().await
    }

    /// A new layer, partitioned (see [`Flow::partition`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use weir_flow::{Flow, Partition};
    ///
    /// // Each of 4 stages sums its share; one stage then sums the 4 sums.
    /// let sum = |x: u32, s: Vec<u32>| vec![s[0] + x];
    /// let total: Vec<u32> = Flow::from_enumerable(1..=100u32)
    ///     .partition(Partition::new().stages(4))
    ///     .reduce(|| vec![0u32], sum)
    ///     .partition(Partition::new().stages(1))
    ///     .reduce(|| vec![0u32], sum)
    ///     .collect()
    ///     .await?;
    /// assert_eq!(total, vec![5050]);
    /// # Ok(()) }
    /// ```
    pub fn partition<P: IntoRoute<R::Out>>(self, partition: Partition<R::Out, P>) -> Flow<R::Out> {
        self.flow().partition(partition)
    }

    /// A new layer, without keys (see [`Flow::shuffle`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use weir_flow::Flow;
    ///
    /// // Two stages count their events; one stage then adds the counts up.
    /// let count: Vec<usize> = Flow::from_enumerable(0..50u32)
    ///     .shuffle(2)
    ///     .reduce(|| vec![0usize], |_, n: Vec<usize>| vec![n[0] + 1])
    ///     .shuffle(1)
    ///     .reduce(|| vec![0usize], |n, total: Vec<usize>| vec![total[0] + n])
    ///     .collect()
    ///     .await?;
    /// assert_eq!(count, vec![50]);
    /// # Ok(()) }
    /// ```
    pub fn shuffle(self, stages: usize) -> Flow<R::Out> {
        self.flow().shuffle(stages)
    }
}
