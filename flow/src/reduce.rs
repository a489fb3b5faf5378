//! The functions of a reducing layer: how events fold into a window's state
//! ([`ReduceFn`]), and what a trigger emits ([`emit`] modes or `on_trigger`).

use std::collections::HashMap;
use std::hash::Hash;

use crate::window::{Trigger, WindowId};

/// How an event folds into a window's state; implemented for the functions given to
/// [`reduce`](crate::Flow::reduce) and [`emit_and_reduce`](crate::Flow::emit_and_reduce).
pub trait ReduceFn<X, A, U>: Clone + Send + 'static {
    /// Folds `x` into `acc`, pushing any events to emit right away to `out`.
    fn reduce(&mut self, x: X, acc: A, out: &mut Vec<U>) -> A;
}

/// A reducer that only folds: built by [`reduce`](crate::Flow::reduce).
#[derive(Clone)]
pub struct Plain<F>(pub(crate) F);

impl<X, A, U, F> ReduceFn<X, A, U> for Plain<F>
where
    F: FnMut(X, A) -> A + Clone + Send + 'static,
{
    fn reduce(&mut self, x: X, acc: A, _: &mut Vec<U>) -> A {
        (self.0)(x, acc)
    }
}

/// A reducer that also emits events: built by
/// [`emit_and_reduce`](crate::Flow::emit_and_reduce).
#[derive(Clone)]
pub struct Emitting<F>(pub(crate) F);

impl<X, A, U, I, F> ReduceFn<X, A, U> for Emitting<F>
where
    F: FnMut(X, A) -> (I, A) + Clone + Send + 'static,
    I: IntoIterator<Item = U>,
{
    fn reduce(&mut self, x: X, acc: A, out: &mut Vec<U>) -> A {
        let (events, acc) = (self.0)(x, acc);
        out.extend(events);
        acc
    }
}

/// What a trigger does with a window's state: pushes what to emit to `out` and returns the
/// state to keep (ignored after the final trigger), or `None` to start again from `init`.
///
/// Implemented for the [`emit`] modes and the function given to
/// [`on_trigger`](crate::Reduced::on_trigger).
pub trait OnTrigger<A, U>: Send {
    /// Handles one trigger of a window.
    fn trigger(&mut self, acc: A, trigger: &Trigger, out: &mut Vec<U>) -> Option<A>;
}

/// A user's `on_trigger` function.
#[derive(Clone)]
pub(crate) struct UserTrigger<F>(pub(crate) F);

impl<A, U, I, F> OnTrigger<A, U> for UserTrigger<F>
where
    F: FnMut(A, &Trigger) -> (I, A) + Send,
    I: IntoIterator<Item = U>,
{
    fn trigger(&mut self, acc: A, trigger: &Trigger, out: &mut Vec<U>) -> Option<A> {
        let (events, acc) = (self.0)(acc, trigger);
        out.extend(events);
        Some(acc)
    }
}

/// What a reducing layer emits on each trigger, without writing an `on_trigger` (Flow's
/// `emit/2`).
///
/// After a trigger that is not the last of its window (every n events, periodically, the
/// watermark, a custom trigger) the window starts again from `init()`, so each emission
/// covers the events since the previous one (Flow keeps the whole state instead; use
/// [`on_trigger`](crate::Reduced::on_trigger) and return the state to do that).
///
/// # Examples
///
/// ```
/// # #[tokio::main]
/// # async fn main() -> Result<(), weir_flow::Error> {
/// use std::collections::HashMap;
/// use weir_flow::{emit, Flow};
///
/// let maps: Vec<HashMap<bool, u32>> = Flow::from_enumerable(0..10u32)
///     .stages(1)
///     .reduce(HashMap::new, |x, mut acc: HashMap<bool, u32>| {
///         *acc.entry(x % 2 == 0).or_default() += x;
///         acc
///     })
///     .emit(emit::State)
///     .collect()
///     .await?;
/// assert_eq!(maps, vec![HashMap::from([(true, 20), (false, 25)])]);
/// # Ok(()) }
/// ```
pub mod emit {
    use super::OnTrigger;
    use crate::window::Trigger;

    /// A way of emitting a state; implemented by [`Events`], [`State`] and [`Nothing`].
    pub trait Mode<A>: OnTrigger<A, Self::Out> + Clone + Sync + 'static {
        /// What is emitted.
        type Out: Send + 'static;
    }

    /// Emit the items of the state (the default of `reduce`).
    #[derive(Debug, Clone, Copy)]
    pub struct Events;

    /// Emit the state itself, as one event.
    #[derive(Debug, Clone, Copy)]
    pub struct State;

    /// Emit nothing (e.g. the state was written elsewhere); the flow's items are `()`.
    #[derive(Debug, Clone, Copy)]
    pub struct Nothing;

    impl<A: IntoIterator> OnTrigger<A, A::Item> for Events {
        fn trigger(&mut self, acc: A, _: &Trigger, out: &mut Vec<A::Item>) -> Option<A> {
            out.extend(acc);
            None
        }
    }

    impl<A> Mode<A> for Events
    where
        A: IntoIterator,
        A::Item: Send + 'static,
    {
        type Out = A::Item;
    }

    impl<A> OnTrigger<A, A> for State {
        fn trigger(&mut self, acc: A, _: &Trigger, out: &mut Vec<A>) -> Option<A> {
            out.push(acc);
            None
        }
    }

    impl<A: Send + 'static> Mode<A> for State {
        type Out = A;
    }

    impl<A> OnTrigger<A, ()> for Nothing {
        fn trigger(&mut self, _: A, _: &Trigger, _: &mut Vec<()>) -> Option<A> {
            None
        }
    }

    impl<A> Mode<A> for Nothing {
        type Out = ();
    }
}

/// Emits only what the reducer emitted and keeps the state: the default of
/// [`emit_and_reduce`](crate::Flow::emit_and_reduce).
#[derive(Debug, Clone, Copy)]
pub struct KeepState;

impl<A, U> OnTrigger<A, U> for KeepState {
    fn trigger(&mut self, acc: A, _: &Trigger, _: &mut Vec<U>) -> Option<A> {
        Some(acc)
    }
}

/// Emits `(window, state)` on each window's final trigger: what `departition` merges.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FinalState;

impl<A> OnTrigger<A, (WindowId, A)> for FinalState {
    fn trigger(&mut self, acc: A, trigger: &Trigger, out: &mut Vec<(WindowId, A)>) -> Option<A> {
        if trigger.is_done() {
            out.push((trigger.window, acc));
            None
        } else {
            Some(acc)
        }
    }
}

/// What a reducer emits when no emission is chosen: the state's items for `reduce` and
/// `group_by`, only the reducer's own events for `emit_and_reduce`.
pub trait DefaultEmit<X, A>: ReduceFn<X, A, Self::Out> {
    /// What the layer emits.
    type Out: Send + 'static;
    /// What its triggers do.
    type Mode: OnTrigger<A, Self::Out> + Clone + Sync + 'static;

    /// The trigger behaviour.
    fn mode() -> Self::Mode;
}

impl<X, A, F> DefaultEmit<X, A> for Plain<F>
where
    F: FnMut(X, A) -> A + Clone + Send + 'static,
    A: IntoIterator,
    A::Item: Send + 'static,
{
    type Out = A::Item;
    type Mode = emit::Events;

    fn mode() -> emit::Events {
        emit::Events
    }
}

impl<X, A, I, F> DefaultEmit<X, A> for Emitting<F>
where
    F: FnMut(X, A) -> (I, A) + Clone + Send + 'static,
    I: IntoIterator,
    I::Item: Send + 'static,
{
    type Out = I::Item;
    type Mode = KeepState;

    fn mode() -> KeepState {
        KeepState
    }
}

/// Groups events by a key: built by [`group_by`](crate::Flow::group_by).
#[derive(Clone)]
pub struct GroupBy<F>(pub(crate) F);

impl<X, K, U, F> ReduceFn<X, HashMap<K, Vec<X>>, U> for GroupBy<F>
where
    X: Send + 'static,
    K: Hash + Eq + Send + 'static,
    F: FnMut(&X) -> K + Clone + Send + 'static,
{
    fn reduce(&mut self, x: X, mut groups: HashMap<K, Vec<X>>, _: &mut Vec<U>) -> HashMap<K, Vec<X>> {
        groups.entry((self.0)(&x)).or_default().push(x);
        groups
    }
}

impl<X, K, F> DefaultEmit<X, HashMap<K, Vec<X>>> for GroupBy<F>
where
    X: Send + 'static,
    K: Hash + Eq + Send + 'static,
    F: FnMut(&X) -> K + Clone + Send + 'static,
{
    type Out = (K, Vec<X>);
    type Mode = emit::Events;

    fn mode() -> emit::Events {
        emit::Events
    }
}

/// Groups the values of `(key, value)` events by key: built by
/// [`group_by_key`](crate::Flow::group_by_key).
#[derive(Debug, Clone, Copy)]
pub struct GroupByKey;

impl<K, V, U> ReduceFn<(K, V), HashMap<K, Vec<V>>, U> for GroupByKey
where
    K: Hash + Eq + Send + 'static,
    V: Send + 'static,
{
    fn reduce(
        &mut self,
        (key, value): (K, V),
        mut groups: HashMap<K, Vec<V>>,
        _: &mut Vec<U>,
    ) -> HashMap<K, Vec<V>> {
        groups.entry(key).or_default().push(value);
        groups
    }
}

impl<K, V> DefaultEmit<(K, V), HashMap<K, Vec<V>>> for GroupByKey
where
    K: Hash + Eq + Send + 'static,
    V: Send + 'static,
{
    type Out = (K, Vec<V>);
    type Mode = emit::Events;

    fn mode() -> emit::Events {
        emit::Events
    }
}
