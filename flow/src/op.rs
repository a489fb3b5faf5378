//! Fused operations: the mappers of one layer, composed into one function per stage.
//!
//! Each fluent call wraps the chain in one small adapter, [`Then`] with a [`Step`] (like
//! `Iterator` adapters), so a chunk of events runs through every mapper in one monomorphized
//! loop, with no task and no allocation per operation.
//!
//! # Examples
//!
//! ```
//! # #[tokio::main]
//! # async fn main() -> Result<(), weir_flow::Error> {
//! use weir_flow::Flow;
//!
//! // Three mappers, fused: each stage runs them in one loop over its events.
//! let out: Vec<u32> = Flow::from_enumerable(1..=6u32)
//!     .stages(1)
//!     .map(|x| x * x)
//!     .filter(|x| x % 2 == 0)
//!     .map(|x| x + 1)
//!     .collect()
//!     .await?;
//! assert_eq!(out, vec![5, 17, 37]);
//! # Ok(()) }
//! ```

use std::collections::HashSet;
use std::hash::Hash;
use std::marker::PhantomData;

/// A chain of mappers from `In`: pushes each outcome of its input to `emit`.
///
/// Implemented by the adapters the fluent calls build; users do not implement it.
///
/// # Examples
///
/// ```
/// # #[tokio::main]
/// # async fn main() -> Result<(), weir_flow::Error> {
/// use weir_flow::op::Op;
/// use weir_flow::{Error, Flow};
///
/// // A helper taking any flow whose events come out as `u32`, whatever its mappers.
/// async fn total<T: Send + 'static, O: Op<T, Out = u32>>(flow: Flow<T, O>) -> Result<u32, Error> {
///     Ok(flow.collect::<Vec<u32>>().await?.into_iter().sum())
/// }
/// assert_eq!(total(Flow::from_enumerable(1..=4u32)).await?, 10);
/// assert_eq!(total(Flow::from_enumerable(["a", "bcd"]).map(|s: &str| s.len() as u32)).await?, 4);
/// # Ok(()) }
/// ```
pub trait Op<In>: Clone + Send + 'static {
    /// What comes out of the chain.
    type Out: Send + 'static;

    /// Runs one input through the chain.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use std::sync::{Arc, Mutex};
    /// use weir_flow::Flow;
    ///
    /// // Each event goes through the whole chain before the next one starts.
    /// let log = Arc::new(Mutex::new(Vec::new()));
    /// let (before, after) = (log.clone(), log.clone());
    /// Flow::from_enumerable(0..2u32).stages(1)
    ///     .inspect(move |x| before.lock().unwrap().push(format!("in {x}")))
    ///     .map(|x| x * 10)
    ///     .inspect(move |x| after.lock().unwrap().push(format!("out {x}")))
    ///     .run().await?;
    /// assert_eq!(*log.lock().unwrap(), ["in 0", "out 0", "in 1", "out 10"]);
    /// # Ok(()) }
    /// ```
    fn push<E: FnMut(Self::Out)>(&mut self, item: In, emit: &mut E);

    /// Runs a whole chunk through the chain (what a stage calls; `map_batch` sees the chunk).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use weir_flow::Flow;
    ///
    /// let sizes: Vec<usize> = Flow::from_enumerable(0..10u32)
    ///     .stages(1)
    ///     .max_demand(4)
    ///     .map_batch(|chunk: Vec<u32>| vec![chunk.len()])
    ///     .collect()
    ///     .await?;
    /// assert_eq!(sizes.iter().sum::<usize>(), 10);
    /// assert!(sizes.iter().all(|n| *n <= 2)); // chunks of at most half the demand
    /// # Ok(()) }
    /// ```
    #[inline]
    fn push_all<E: FnMut(Self::Out)>(&mut self, items: Vec<In>, emit: &mut E) {
        for item in items {
            self.push(item, emit);
        }
    }

    /// Folds what `items` give into `init` with `g` (a reducer's chunk).
    #[doc(hidden)]
    fn fold<A, G: FnMut(A, Self::Out) -> A>(&mut self, items: Vec<In>, init: A, g: &mut G) -> A;

    /// The operations of the chain, e.g. `flat_map → filter`, for errors.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use weir_flow::Flow;
    ///
    /// let flow = Flow::from_enumerable(0..3u32).filter(|_| true).map(|x| 10 / x);
    /// let err = flow.run().await.unwrap_err();
    /// assert!(err.to_string().contains("filter → map panicked"), "{err}");
    /// # Ok(()) }
    /// ```
    fn describe(&self) -> String;
}

/// One mapper: what it does with each event that reaches it.
///
/// # Examples
///
/// ```
/// # #[tokio::main]
/// # async fn main() -> Result<(), weir_flow::Error> {
/// use weir_flow::Flow;
///
/// // A step emits one event (map), none (filter) or several (flat_map) per event.
/// let out: Vec<u32> = Flow::from_enumerable(1..=3u32)
///     .stages(1)
///     .filter(|x| *x != 2)
///     .flat_map(|x| vec![x; x as usize])
///     .map(|x| x * 10)
///     .collect()
///     .await?;
/// assert_eq!(out, vec![10, 30, 30, 30]);
/// # Ok(()) }
/// ```
pub trait Step<X>: Clone + Send + 'static {
    /// What comes out of it.
    type Out: Send + 'static;

    /// Handles one event.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use weir_flow::Flow;
    ///
    /// // A step may remember earlier events of its stage: `uniq_by` keeps the keys it saw.
    /// let firsts: Vec<&str> = Flow::from_enumerable(["apple", "avocado", "banana", "blueberry"])
    ///     .stages(1)
    ///     .uniq_by(|word: &&str| word.chars().next())
    ///     .collect()
    ///     .await?;
    /// assert_eq!(firsts, vec!["apple", "banana"]);
    /// # Ok(()) }
    /// ```
    fn step<E: FnMut(Self::Out)>(&mut self, x: X, emit: &mut E);

    /// Folds what one event gives into `acc` with `g`: [`step`](Self::step) for a
    /// reducer, the state passed by value from call to call (no per-event `Option`, so the
    /// whole chain can stay in registers).
    #[doc(hidden)]
    fn fold<A, G: FnMut(A, Self::Out) -> A>(&mut self, x: X, acc: A, g: &mut G) -> A;

    /// Its name in error messages (the fluent call's name).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use weir_flow::Flow;
    ///
    /// let flow = Flow::from_enumerable(0..3u32).reject(|x| 10 / x > 3);
    /// let err = flow.run().await.unwrap_err();
    /// assert!(err.to_string().contains("reject panicked"), "{err}");
    /// # Ok(()) }
    /// ```
    fn name(&self) -> &'static str;
}

/// The empty chain.
///
/// # Examples
///
/// ```
/// # #[tokio::main]
/// # async fn main() -> Result<(), weir_flow::Error> {
/// use weir_flow::op::Identity;
/// use weir_flow::Flow;
///
/// // A flow with no mappers yet; `Flow<u8>` is the same type.
/// let plain: Flow<u8, Identity<u8>> = Flow::from_enumerable(0..3u8).stages(1);
/// let same: Flow<u8> = plain;
/// assert_eq!(same.collect::<Vec<_>>().await?, vec![0, 1, 2]);
/// # Ok(()) }
/// ```
pub struct Identity<T>(PhantomData<fn(T) -> T>);

impl<T> Identity<T> {
    pub(crate) fn new() -> Self {
        Identity(PhantomData)
    }
}

impl<T> Clone for Identity<T> {
    fn clone(&self) -> Self {
        Identity::new()
    }
}

impl<T: Send + 'static> Op<T> for Identity<T> {
    type Out = T;

    #[inline]
    fn push<E: FnMut(T)>(&mut self, item: T, emit: &mut E) {
        emit(item);
    }

    #[inline]
    fn push_all<E: FnMut(T)>(&mut self, items: Vec<T>, emit: &mut E) {
        items.into_iter().for_each(emit);
    }

    #[inline]
    fn fold<A, G: FnMut(A, T) -> A>(&mut self, items: Vec<T>, init: A, g: &mut G) -> A {
        let mut acc = init;
        for item in items {
            acc = g(acc, item);
        }
        acc
    }

    fn describe(&self) -> String {
        String::new()
    }
}

/// A chain followed by one more mapper.
///
/// # Examples
///
/// ```
/// # #[tokio::main]
/// # async fn main() -> Result<(), weir_flow::Error> {
/// use weir_flow::op::{Filter, Identity, Map, Then};
/// use weir_flow::Flow;
///
/// let chain: Flow<u8, Then<Then<Identity<u8>, Filter<_>>, Map<_>>> =
///     Flow::from_enumerable(0..6u8).stages(1).filter(|x| x % 2 == 1).map(|x| x * 10);
/// assert_eq!(chain.collect::<Vec<_>>().await?, vec![10, 30, 50]);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Then<O, S> {
    pub(crate) inner: O,
    pub(crate) step: S,
}

impl<In, O: Op<In>, S: Step<O::Out>> Op<In> for Then<O, S> {
    type Out = S::Out;

    #[inline]
    fn push<E: FnMut(S::Out)>(&mut self, item: In, emit: &mut E) {
        let step = &mut self.step;
        self.inner.push(item, &mut |x| step.step(x, emit));
    }

    #[inline]
    fn push_all<E: FnMut(S::Out)>(&mut self, items: Vec<In>, emit: &mut E) {
        let step = &mut self.step;
        self.inner.push_all(items, &mut |x| step.step(x, emit));
    }

    #[inline]
    fn fold<A, G: FnMut(A, S::Out) -> A>(&mut self, items: Vec<In>, init: A, g: &mut G) -> A {
        let step = &mut self.step;
        self.inner.fold(items, init, &mut |acc, x| step.fold(x, acc, g))
    }

    fn describe(&self) -> String {
        let inner = self.inner.describe();
        if inner.is_empty() {
            self.step.name().to_string()
        } else {
            format!("{inner} → {}", self.step.name())
        }
    }
}

/// A function over each whole chunk, first in its layer: built by
/// [`Flow::map_batch`](crate::Flow::map_batch).
///
/// # Examples
///
/// ```
/// # #[tokio::main]
/// # async fn main() -> Result<(), weir_flow::Error> {
/// use weir_flow::op::MapBatch;
/// use weir_flow::Flow;
///
/// let batched: Flow<u32, MapBatch<u32, _>> =
///     Flow::from_enumerable(0..4u32).stages(1).map_batch(|chunk: Vec<u32>| chunk.into_iter().map(|x| x + 1));
/// assert_eq!(batched.collect::<Vec<_>>().await?, vec![1, 2, 3, 4]);
/// # Ok(()) }
/// ```
pub struct MapBatch<T, F> {
    pub(crate) f: F,
    pub(crate) _in: PhantomData<fn(T)>,
}

impl<T, F: Clone> Clone for MapBatch<T, F> {
    fn clone(&self) -> Self {
        MapBatch { f: self.f.clone(), _in: PhantomData }
    }
}

impl<T, F, I> Op<T> for MapBatch<T, F>
where
    T: Send + 'static,
    F: FnMut(Vec<T>) -> I + Clone + Send + 'static,
    I: IntoIterator,
    I::Item: Send + 'static,
{
    type Out = I::Item;

    #[inline]
    fn push<E: FnMut(I::Item)>(&mut self, item: T, emit: &mut E) {
        self.push_all(vec![item], emit);
    }

    #[inline]
    fn push_all<E: FnMut(I::Item)>(&mut self, items: Vec<T>, emit: &mut E) {
        (self.f)(items).into_iter().for_each(emit);
    }

    #[inline]
    fn fold<A, G: FnMut(A, I::Item) -> A>(&mut self, items: Vec<T>, init: A, g: &mut G) -> A {
        (self.f)(items).into_iter().fold(init, g)
    }

    fn describe(&self) -> String {
        "map_batch".to_string()
    }
}

/// Built by [`Flow::map`](crate::Flow::map).
///
/// # Examples
///
/// ```
/// # #[tokio::main]
/// # async fn main() -> Result<(), weir_flow::Error> {
/// use weir_flow::op::{Identity, Map, Then};
/// use weir_flow::Flow;
///
/// let doubled: Flow<u8, Then<Identity<u8>, Map<_>>> = Flow::from_enumerable(1..=3u8).stages(1).map(|x| x * 2);
/// assert_eq!(doubled.collect::<Vec<_>>().await?, vec![2, 4, 6]);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Map<F>(pub(crate) F);

impl<X, F, U> Step<X> for Map<F>
where
    F: FnMut(X) -> U + Clone + Send + 'static,
    U: Send + 'static,
{
    type Out = U;

    #[inline]
    fn step<E: FnMut(U)>(&mut self, x: X, emit: &mut E) {
        emit((self.0)(x));
    }

    #[inline]
    fn fold<A, G: FnMut(A, U) -> A>(&mut self, x: X, acc: A, g: &mut G) -> A {
        g(acc, (self.0)(x))
    }

    fn name(&self) -> &'static str {
        "map"
    }
}

/// Built by [`Flow::filter`](crate::Flow::filter) (`KEEP = true`: keeps the events the
/// function accepts) and [`Flow::reject`](crate::Flow::reject) (`KEEP = false`, the
/// [`Reject`] alias). `KEEP` is a constant, so the test is a plain branch in the fused loop.
///
/// # Examples
///
/// ```
/// # #[tokio::main]
/// # async fn main() -> Result<(), weir_flow::Error> {
/// use weir_flow::op::{Filter, Identity, Then};
/// use weir_flow::Flow;
///
/// let small: Flow<u8, Then<Identity<u8>, Filter<_>>> = Flow::from_enumerable(0..6u8).stages(1).filter(|x| *x < 2);
/// assert_eq!(small.collect::<Vec<_>>().await?, vec![0, 1]);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Filter<F, const KEEP: bool = true>(pub(crate) F);

/// Built by [`Flow::reject`](crate::Flow::reject): a [`Filter`] that drops the events its
/// function accepts.
///
/// # Examples
///
/// ```
/// # #[tokio::main]
/// # async fn main() -> Result<(), weir_flow::Error> {
/// use weir_flow::op::{Identity, Reject, Then};
/// use weir_flow::Flow;
///
/// let large: Flow<u8, Then<Identity<u8>, Reject<_>>> = Flow::from_enumerable(0..6u8).stages(1).reject(|x| *x < 4);
/// assert_eq!(large.collect::<Vec<_>>().await?, vec![4, 5]);
/// # Ok(()) }
/// ```
pub type Reject<F> = Filter<F, false>;

impl<X, F, const KEEP: bool> Step<X> for Filter<F, KEEP>
where
    X: Send + 'static,
    F: FnMut(&X) -> bool + Clone + Send + 'static,
{
    type Out = X;

    #[inline]
    fn step<E: FnMut(X)>(&mut self, x: X, emit: &mut E) {
        if (self.0)(&x) == KEEP {
            emit(x);
        }
    }

    #[inline]
    fn fold<A, G: FnMut(A, X) -> A>(&mut self, x: X, acc: A, g: &mut G) -> A {
        if (self.0)(&x) == KEEP {
            g(acc, x)
        } else {
            acc
        }
    }

    fn name(&self) -> &'static str {
        if KEEP {
            "filter"
        } else {
            "reject"
        }
    }
}

/// Built by [`Flow::filter_map`](crate::Flow::filter_map).
///
/// # Examples
///
/// ```
/// # #[tokio::main]
/// # async fn main() -> Result<(), weir_flow::Error> {
/// use weir_flow::op::{FilterMap, Identity, Then};
/// use weir_flow::Flow;
///
/// let parsed: Flow<&str, Then<Identity<&str>, FilterMap<_>>> =
///     Flow::from_enumerable(["7", "x", "9"]).stages(1).filter_map(|s| s.parse::<u8>().ok());
/// assert_eq!(parsed.collect::<Vec<u8>>().await?, vec![7, 9]);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct FilterMap<F>(pub(crate) F);

impl<X, F, U> Step<X> for FilterMap<F>
where
    F: FnMut(X) -> Option<U> + Clone + Send + 'static,
    U: Send + 'static,
{
    type Out = U;

    #[inline]
    fn step<E: FnMut(U)>(&mut self, x: X, emit: &mut E) {
        if let Some(y) = (self.0)(x) {
            emit(y);
        }
    }

    #[inline]
    fn fold<A, G: FnMut(A, U) -> A>(&mut self, x: X, acc: A, g: &mut G) -> A {
        match (self.0)(x) {
            Some(y) => g(acc, y),
            None => acc,
        }
    }

    fn name(&self) -> &'static str {
        "filter_map"
    }
}

/// Built by [`Flow::flat_map`](crate::Flow::flat_map).
///
/// # Examples
///
/// ```
/// # #[tokio::main]
/// # async fn main() -> Result<(), weir_flow::Error> {
/// use weir_flow::op::{FlatMap, Identity, Then};
/// use weir_flow::Flow;
///
/// let repeated: Flow<u8, Then<Identity<u8>, FlatMap<_>>> =
///     Flow::from_enumerable(1..=2u8).stages(1).flat_map(|n| vec![n; n as usize]);
/// assert_eq!(repeated.collect::<Vec<_>>().await?, vec![1, 2, 2]);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct FlatMap<F>(pub(crate) F);

impl<X, F, I> Step<X> for FlatMap<F>
where
    F: FnMut(X) -> I + Clone + Send + 'static,
    I: IntoIterator,
    I::Item: Send + 'static,
{
    type Out = I::Item;

    #[inline]
    fn step<E: FnMut(I::Item)>(&mut self, x: X, emit: &mut E) {
        (self.0)(x).into_iter().for_each(emit);
    }

    #[inline]
    fn fold<A, G: FnMut(A, I::Item) -> A>(&mut self, x: X, acc: A, g: &mut G) -> A {
        (self.0)(x).into_iter().fold(acc, g)
    }

    fn name(&self) -> &'static str {
        "flat_map"
    }
}

/// Built by [`Flow::inspect`](crate::Flow::inspect).
///
/// # Examples
///
/// ```
/// # #[tokio::main]
/// # async fn main() -> Result<(), weir_flow::Error> {
/// use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
/// use std::sync::Arc;
/// use weir_flow::op::{Identity, Inspect, Then};
/// use weir_flow::Flow;
///
/// let seen = Arc::new(AtomicU8::new(0));
/// let count = seen.clone();
/// let counted: Flow<u8, Then<Identity<u8>, Inspect<_>>> =
///     Flow::from_enumerable(0..3u8).stages(1).inspect(move |_| { count.fetch_add(1, Relaxed); });
/// assert_eq!(counted.collect::<Vec<_>>().await?, vec![0, 1, 2]); // passed on unchanged
/// assert_eq!(seen.load(Relaxed), 3);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Inspect<F>(pub(crate) F);

impl<X, F> Step<X> for Inspect<F>
where
    X: Send + 'static,
    F: FnMut(&X) + Clone + Send + 'static,
{
    type Out = X;

    #[inline]
    fn step<E: FnMut(X)>(&mut self, x: X, emit: &mut E) {
        (self.0)(&x);
        emit(x);
    }

    #[inline]
    fn fold<A, G: FnMut(A, X) -> A>(&mut self, x: X, acc: A, g: &mut G) -> A {
        (self.0)(&x);
        g(acc, x)
    }

    fn name(&self) -> &'static str {
        "inspect"
    }
}

/// Built by [`Flow::map_values`](crate::Flow::map_values).
///
/// # Examples
///
/// ```
/// # #[tokio::main]
/// # async fn main() -> Result<(), weir_flow::Error> {
/// use weir_flow::op::{Identity, MapValues, Then};
/// use weir_flow::Flow;
///
/// let prices: Flow<(char, u32), Then<Identity<(char, u32)>, MapValues<_>>> =
///     Flow::from_enumerable([('a', 150u32), ('b', 99)]).stages(1).map_values(|cents| cents / 100);
/// assert_eq!(prices.collect::<Vec<_>>().await?, vec![('a', 1), ('b', 0)]);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct MapValues<F>(pub(crate) F);

impl<K, V, W, F> Step<(K, V)> for MapValues<F>
where
    F: FnMut(V) -> W + Clone + Send + 'static,
    K: Send + 'static,
    W: Send + 'static,
{
    type Out = (K, W);

    #[inline]
    fn step<E: FnMut((K, W))>(&mut self, (k, v): (K, V), emit: &mut E) {
        emit((k, (self.0)(v)));
    }

    #[inline]
    fn fold<A, G: FnMut(A, (K, W)) -> A>(&mut self, (k, v): (K, V), acc: A, g: &mut G) -> A {
        g(acc, (k, (self.0)(v)))
    }

    fn name(&self) -> &'static str {
        "map_values"
    }
}

/// Built by [`Flow::uniq_by`](crate::Flow::uniq_by) and [`Flow::uniq`](crate::Flow::uniq).
///
/// # Examples
///
/// ```
/// # #[tokio::main]
/// # async fn main() -> Result<(), weir_flow::Error> {
/// use weir_flow::op::{Identity, Then, UniqBy};
/// use weir_flow::Flow;
///
/// let by_tens: Flow<u8, Then<Identity<u8>, UniqBy<_, u8>>> =
///     Flow::from_enumerable([11u8, 15, 23, 19]).stages(1).uniq_by(|n: &u8| n / 10);
/// assert_eq!(by_tens.collect::<Vec<_>>().await?, vec![11, 23]);
/// let once: Flow<u8, Then<Identity<u8>, UniqBy<fn(&u8) -> u8, u8>>> =
///     Flow::from_enumerable([1u8, 1, 2]).stages(1).uniq();
/// assert_eq!(once.collect::<Vec<_>>().await?, vec![1, 2]);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct UniqBy<F, K> {
    pub(crate) key: F,
    /// Keys seen by this stage (each stage starts from the plan's empty set).
    pub(crate) seen: HashSet<K>,
}

impl<X, F, K> Step<X> for UniqBy<F, K>
where
    X: Send + 'static,
    F: FnMut(&X) -> K + Clone + Send + 'static,
    K: Hash + Eq + Clone + Send + 'static,
{
    type Out = X;

    #[inline]
    fn step<E: FnMut(X)>(&mut self, x: X, emit: &mut E) {
        if self.seen.insert((self.key)(&x)) {
            emit(x);
        }
    }

    #[inline]
    fn fold<A, G: FnMut(A, X) -> A>(&mut self, x: X, acc: A, g: &mut G) -> A {
        if self.seen.insert((self.key)(&x)) {
            g(acc, x)
        } else {
            acc
        }
    }

    fn name(&self) -> &'static str {
        "uniq_by"
    }
}
