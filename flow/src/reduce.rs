//! The functions of a reducing layer: how events fold into a window's state
//! ([`ReduceFn`]), and what a trigger emits ([`emit`] modes or `on_trigger`).
//!
//! # Examples
//!
//! ```
//! # #[tokio::main]
//! # async fn main() -> Result<(), weir_flow::Error> {
//! use weir_flow::{emit, Flow, Window};
//!
//! // A reducer folds each window's events; an emit mode says what its triggers give.
//! let sums: Vec<u32> = Flow::from_enumerable(1..=6u32)
//!     .stages(1)
//!     .window(Window::count(3))
//!     .reduce(|| 0u32, |x, sum| sum + x)
//!     .emit(emit::State)
//!     .collect()
//!     .await?;
//! assert_eq!(sums, vec![6, 15]);
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::hash::Hash;

use crate::window::{Trigger, WindowId};

/// How an event folds into a window's state; implemented for the functions given to
/// [`reduce`](crate::Flow::reduce) and [`emit_and_reduce`](crate::Flow::emit_and_reduce).
///
/// # Examples
///
/// ```
/// # #[tokio::main]
/// # async fn main() -> Result<(), weir_flow::Error> {
/// use weir_flow::Flow;
///
/// // `reduce` takes a function that only folds; `emit_and_reduce` one that also emits.
/// let numbers = || Flow::from_enumerable(1..=3u32).stages(1);
/// let folded: Vec<u32> = numbers().reduce(|| vec![0u32], |x, s: Vec<u32>| vec![s[0] + x]).collect().await?;
/// let emitted: Vec<u32> = numbers().emit_and_reduce(|| 0u32, |x, s| (Some(x * 10), s + x)).collect().await?;
/// assert_eq!((folded, emitted), (vec![6], vec![10, 20, 30]));
/// # Ok(()) }
/// ```
pub trait ReduceFn<X, A, U>: Clone + Send + 'static {
    /// Folds `x` into `acc`, pushing any events to emit right away to `out`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use weir_flow::Flow;
    ///
    /// // What the reducer emits comes out as it folds, before the final trigger's state.
    /// let out: Vec<u32> = Flow::from_enumerable(1..=3u32)
    ///     .stages(1)
    ///     .emit_and_reduce(|| 0u32, |x, sum| (Some(x), sum + x))
    ///     .on_trigger(|sum, _| (Some(sum * 100), sum))
    ///     .collect()
    ///     .await?;
    /// assert_eq!(out, vec![1, 2, 3, 600]);
    /// # Ok(()) }
    /// ```
    fn reduce(&mut self, x: X, acc: A, out: &mut Vec<U>) -> A;
}

/// A reducer that only folds: built by [`reduce`](crate::Flow::reduce).
///
/// # Examples
///
/// ```
/// # #[tokio::main]
/// # async fn main() -> Result<(), weir_flow::Error> {
/// use weir_flow::op::Identity;
/// use weir_flow::reduce::Plain;
/// use weir_flow::{Flow, Reduced};
///
/// let summed: Reduced<u32, Identity<u32>, Vec<u32>, Plain<_>> =
///     Flow::from_enumerable(1..=3u32).stages(1).reduce(|| vec![0u32], |x, s: Vec<u32>| vec![s[0] + x]);
/// assert_eq!(summed.collect::<Vec<u32>>().await?, vec![6]);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Plain<F>(pub(crate) F);

impl<X, A, U, F> ReduceFn<X, A, U> for Plain<F>
where
    F: FnMut(X, A) -> A + Clone + Send + 'static,
{
    #[inline]
    fn reduce(&mut self, x: X, acc: A, _: &mut Vec<U>) -> A {
        (self.0)(x, acc)
    }
}

/// A reducer that also emits events: built by
/// [`emit_and_reduce`](crate::Flow::emit_and_reduce).
///
/// # Examples
///
/// ```
/// # #[tokio::main]
/// # async fn main() -> Result<(), weir_flow::Error> {
/// use weir_flow::op::Identity;
/// use weir_flow::reduce::Emitting;
/// use weir_flow::{Flow, Reduced};
///
/// let running: Reduced<u32, Identity<u32>, u32, Emitting<_>> =
///     Flow::from_enumerable(1..=3u32).stages(1).emit_and_reduce(|| 0u32, |x, t| (Some(t + x), t + x));
/// assert_eq!(running.collect::<Vec<u32>>().await?, vec![1, 3, 6]);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Emitting<F>(pub(crate) F);

impl<X, A, U, I, F> ReduceFn<X, A, U> for Emitting<F>
where
    F: FnMut(X, A) -> (I, A) + Clone + Send + 'static,
    I: IntoIterator<Item = U>,
{
    #[inline]
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
///
/// # Examples
///
/// ```
/// # #[tokio::main]
/// # async fn main() -> Result<(), weir_flow::Error> {
/// use weir_flow::{emit, Flow, Window};
///
/// // `on_trigger` keeps the state it returns; the emit modes start again from `init()`.
/// let sums = || {
///     let numbers = Flow::from_enumerable(1..=4u32).stages(1);
///     numbers.window(Window::global().trigger_every(2)).reduce(|| 0u32, |x, sum| sum + x)
/// };
/// let kept: Vec<u32> = sums().on_trigger(|sum, _| (Some(sum), sum)).collect().await?;
/// let restarted: Vec<u32> = sums().emit(emit::State).collect().await?;
/// assert_eq!((kept, restarted), (vec![3, 10, 10], vec![3, 7, 0]));
/// # Ok(()) }
/// ```
pub trait OnTrigger<A, U>: Send {
    /// Handles one trigger of a window.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use weir_flow::{Flow, Reason::*, Window, WindowId::*};
    ///
    /// // Windows of 3, a trigger every 2 events of a window: each window is told twice.
    /// let told: Vec<_> = Flow::from_enumerable(1..=5u32)
    ///     .stages(1)
    ///     .window(Window::count(3).trigger_every(2))
    ///     .reduce(|| 0u32, |x, sum| sum + x)
    ///     .on_trigger(|sum, t| (Some((t.window, t.reason.clone(), sum)), sum))
    ///     .collect()
    ///     .await?;
    /// let (w0, w1) = (Count(0), Count(1));
    /// assert_eq!(told, vec![(w0, Every(2), 3), (w0, Done, 6), (w1, Every(2), 9), (w1, Done, 9)]);
    /// # Ok(()) }
    /// ```
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
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use weir_flow::{emit, Error, Flow};
    ///
    /// async fn evens<M: emit::Mode<Vec<u32>>>(mode: M) -> Result<Vec<M::Out>, Error> {
    ///     let keep_evens = |x: u32, mut v: Vec<u32>| { if x % 2 == 0 { v.push(x) } v };
    ///     Flow::from_enumerable(0..6u32).stages(1).reduce(Vec::new, keep_evens).emit(mode).collect().await
    /// }
    /// assert_eq!(evens(emit::Events).await?, vec![0, 2, 4]);
    /// assert_eq!(evens(emit::State).await?, vec![vec![0, 2, 4]]);
    /// assert_eq!(evens(emit::Nothing).await?, vec![(); 0]);
    /// # Ok(()) }
    /// ```
    pub trait Mode<A>: OnTrigger<A, Self::Out> + Clone + Sync + 'static {
        /// What is emitted.
        type Out: Send + 'static;
    }

    /// Emit the items of the state (the default of `reduce`).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use weir_flow::{emit, Flow, Window};
    ///
    /// // Each window's state is a `Vec` (here, its events reversed), emitted item by item.
    /// let items: Vec<u32> = Flow::from_enumerable(1..=5u32)
    ///     .stages(1)
    ///     .window(Window::count(2))
    ///     .reduce(Vec::new, |x, mut v: Vec<u32>| { v.insert(0, x); v })
    ///     .emit(emit::Events)
    ///     .collect()
    ///     .await?;
    /// assert_eq!(items, vec![2, 1, 4, 3, 5]);
    /// # Ok(()) }
    /// ```
    #[derive(Debug, Clone, Copy)]
    pub struct Events;

    /// Emit the state itself, as one event.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use weir_flow::{emit, Flow, Window};
    ///
    /// // A `String` has no items of its own to emit: each window's string is one event.
    /// let words: Vec<String> = Flow::from_enumerable("abcde".chars())
    ///     .stages(1)
    ///     .window(Window::count(2))
    ///     .reduce(String::new, |c, mut s: String| { s.push(c); s })
    ///     .emit(emit::State)
    ///     .collect()
    ///     .await?;
    /// assert_eq!(words, vec!["ab", "cd", "e"]);
    /// # Ok(()) }
    /// ```
    #[derive(Debug, Clone, Copy)]
    pub struct State;

    /// Emit nothing (e.g. the state was written elsewhere); the flow's items are `()`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use std::sync::{atomic::{AtomicU32, Ordering::Relaxed}, Arc};
    /// use weir_flow::{emit, Flow};
    ///
    /// let total = Arc::new(AtomicU32::new(0));
    /// let write = total.clone();
    /// let emitted: Vec<()> = Flow::from_enumerable(1..=4u32)
    ///     .stages(1)
    ///     .reduce(|| 0u32, move |x, sum| { write.store(sum + x, Relaxed); sum + x })
    ///     .emit(emit::Nothing)
    ///     .collect()
    ///     .await?;
    /// assert_eq!((emitted.len(), total.load(Relaxed)), (0, 10));
    /// # Ok(()) }
    /// ```
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
///
/// # Examples
///
/// ```
/// # #[tokio::main]
/// # async fn main() -> Result<(), weir_flow::Error> {
/// use weir_flow::{Flow, Window};
///
/// // The state goes on across the `Every` trigger: the total reaches 10, not 3 + 7.
/// let last: Vec<u32> = Flow::from_enumerable(1..=4u32)
///     .stages(1)
///     .window(Window::global().trigger_every(2))
///     .emit_and_reduce(|| 0u32, |x, total| ((x == 4).then_some(total + x), total + x))
///     .collect()
///     .await?;
/// assert_eq!(last, vec![10]);
/// # Ok(()) }
/// ```
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
///
/// # Examples
///
/// ```
/// # #[tokio::main]
/// # async fn main() -> Result<(), weir_flow::Error> {
/// use std::collections::HashMap;
/// use weir_flow::Flow;
///
/// // No `emit` chosen: `reduce` emits its state's items, here the map's (key, value) pairs.
/// let mut counts: Vec<(char, usize)> = Flow::from_enumerable("abca".chars())
///     .stages(1)
///     .reduce(HashMap::new, |c, mut m: HashMap<char, usize>| { *m.entry(c).or_default() += 1; m })
///     .collect()
///     .await?;
/// counts.sort();
/// assert_eq!(counts, vec![('a', 2), ('b', 1), ('c', 1)]);
/// # Ok(()) }
/// ```
pub trait DefaultEmit<X, A>: ReduceFn<X, A, Self::Out> {
    /// What the layer emits.
    type Out: Send + 'static;
    /// What its triggers do.
    type Mode: OnTrigger<A, Self::Out> + Clone + Sync + 'static;

    /// The trigger behaviour.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_flow::reduce::{DefaultEmit, Emitting, Plain};
    ///
    /// type Sum = fn(u32, Vec<u32>) -> Vec<u32>;
    /// type Running = fn(u32, u32) -> (Option<u32>, u32);
    /// assert_eq!(format!("{:?}", <Plain<Sum> as DefaultEmit<u32, Vec<u32>>>::mode()), "Events");
    /// assert_eq!(format!("{:?}", <Emitting<Running> as DefaultEmit<u32, u32>>::mode()), "KeepState");
    /// ```
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
///
/// # Examples
///
/// ```
/// # #[tokio::main]
/// # async fn main() -> Result<(), weir_flow::Error> {
/// use std::collections::HashMap;
/// use weir_flow::op::Identity;
/// use weir_flow::reduce::GroupBy;
/// use weir_flow::{Flow, Reduced};
///
/// let by_parity: Reduced<u8, Identity<u8>, HashMap<bool, Vec<u8>>, GroupBy<_>> =
///     Flow::from_enumerable(0..4u8).stages(1).group_by(|n: &u8| n % 2 == 0);
/// let mut groups: Vec<(bool, Vec<u8>)> = by_parity.collect().await?;
/// groups.sort();
/// assert_eq!(groups, vec![(false, vec![1, 3]), (true, vec![0, 2])]);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct GroupBy<F>(pub(crate) F);

impl<X, K, U, F> ReduceFn<X, HashMap<K, Vec<X>>, U> for GroupBy<F>
where
    X: Send + 'static,
    K: Hash + Eq + Send + 'static,
    F: FnMut(&X) -> K + Clone + Send + 'static,
{
    #[inline]
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
///
/// # Examples
///
/// ```
/// # #[tokio::main]
/// # async fn main() -> Result<(), weir_flow::Error> {
/// use std::collections::HashMap;
/// use weir_flow::op::Identity;
/// use weir_flow::reduce::GroupByKey;
/// use weir_flow::{Flow, Reduced};
///
/// let grouped: Reduced<(char, u32), Identity<(char, u32)>, HashMap<char, Vec<u32>>, GroupByKey> =
///     Flow::from_enumerable([('a', 1u32), ('a', 2)]).stages(1).group_by_key();
/// assert_eq!(grouped.collect::<Vec<_>>().await?, vec![('a', vec![1, 2])]);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct GroupByKey;

impl<K, V, U> ReduceFn<(K, V), HashMap<K, Vec<V>>, U> for GroupByKey
where
    K: Hash + Eq + Send + 'static,
    V: Send + 'static,
{
    #[inline]
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
