//! Fused operations: the mappers of one layer, composed into one function per stage.
//!
//! Each fluent call wraps the chain in one small adapter, [`Then`] with a [`Step`] (like
//! `Iterator` adapters), so a chunk of events runs through every mapper in one monomorphized
//! loop, with no task and no allocation per operation.

use std::collections::HashSet;
use std::hash::Hash;
use std::marker::PhantomData;

/// A chain of mappers from `In`: pushes each outcome of its input to `emit`.
///
/// Implemented by the adapters the fluent calls build; users do not implement it.
pub trait Op<In>: Clone + Send + 'static {
    /// What comes out of the chain.
    type Out: Send + 'static;

    /// Runs one input through the chain.
    fn push<E: FnMut(Self::Out)>(&mut self, item: In, emit: &mut E);

    /// Runs a whole chunk through the chain (what a stage calls; `map_batch` sees the chunk).
    fn push_all<E: FnMut(Self::Out)>(&mut self, items: Vec<In>, emit: &mut E) {
        for item in items {
            self.push(item, emit);
        }
    }

    /// The operations of the chain, e.g. `flat_map → filter`, for errors.
    fn describe(&self) -> String;
}

/// One mapper: what it does with each event that reaches it.
pub trait Step<X>: Clone + Send + 'static {
    /// What comes out of it.
    type Out: Send + 'static;

    /// Handles one event.
    fn step<E: FnMut(Self::Out)>(&mut self, x: X, emit: &mut E);

    /// Its name in error messages (the fluent call's name).
    fn name(&self) -> &'static str;
}

/// The empty chain.
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

    fn push<E: FnMut(T)>(&mut self, item: T, emit: &mut E) {
        emit(item);
    }

    fn push_all<E: FnMut(T)>(&mut self, items: Vec<T>, emit: &mut E) {
        items.into_iter().for_each(emit);
    }

    fn describe(&self) -> String {
        String::new()
    }
}

/// A chain followed by one more mapper.
#[derive(Clone)]
pub struct Then<O, S> {
    pub(crate) inner: O,
    pub(crate) step: S,
}

impl<In, O: Op<In>, S: Step<O::Out>> Op<In> for Then<O, S> {
    type Out = S::Out;

    fn push<E: FnMut(S::Out)>(&mut self, item: In, emit: &mut E) {
        let step = &mut self.step;
        self.inner.push(item, &mut |x| step.step(x, emit));
    }

    fn push_all<E: FnMut(S::Out)>(&mut self, items: Vec<In>, emit: &mut E) {
        let step = &mut self.step;
        self.inner.push_all(items, &mut |x| step.step(x, emit));
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

    fn push<E: FnMut(I::Item)>(&mut self, item: T, emit: &mut E) {
        self.push_all(vec![item], emit);
    }

    fn push_all<E: FnMut(I::Item)>(&mut self, items: Vec<T>, emit: &mut E) {
        (self.f)(items).into_iter().for_each(emit);
    }

    fn describe(&self) -> String {
        "map_batch".to_string()
    }
}

/// Built by [`Flow::map`](crate::Flow::map).
#[derive(Clone)]
pub struct Map<F>(pub(crate) F);

impl<X, F, U> Step<X> for Map<F>
where
    F: FnMut(X) -> U + Clone + Send + 'static,
    U: Send + 'static,
{
    type Out = U;

    fn step<E: FnMut(U)>(&mut self, x: X, emit: &mut E) {
        emit((self.0)(x));
    }

    fn name(&self) -> &'static str {
        "map"
    }
}

/// Built by [`Flow::filter`](crate::Flow::filter) and [`Flow::reject`](crate::Flow::reject).
#[derive(Clone)]
pub struct Filter<F> {
    pub(crate) keep: F,
    pub(crate) when: bool,
}

impl<X, F> Step<X> for Filter<F>
where
    X: Send + 'static,
    F: FnMut(&X) -> bool + Clone + Send + 'static,
{
    type Out = X;

    fn step<E: FnMut(X)>(&mut self, x: X, emit: &mut E) {
        if (self.keep)(&x) == self.when {
            emit(x);
        }
    }

    fn name(&self) -> &'static str {
        if self.when {
            "filter"
        } else {
            "reject"
        }
    }
}

/// Built by [`Flow::filter_map`](crate::Flow::filter_map).
#[derive(Clone)]
pub struct FilterMap<F>(pub(crate) F);

impl<X, F, U> Step<X> for FilterMap<F>
where
    F: FnMut(X) -> Option<U> + Clone + Send + 'static,
    U: Send + 'static,
{
    type Out = U;

    fn step<E: FnMut(U)>(&mut self, x: X, emit: &mut E) {
        if let Some(y) = (self.0)(x) {
            emit(y);
        }
    }

    fn name(&self) -> &'static str {
        "filter_map"
    }
}

/// Built by [`Flow::flat_map`](crate::Flow::flat_map).
#[derive(Clone)]
pub struct FlatMap<F>(pub(crate) F);

impl<X, F, I> Step<X> for FlatMap<F>
where
    F: FnMut(X) -> I + Clone + Send + 'static,
    I: IntoIterator,
    I::Item: Send + 'static,
{
    type Out = I::Item;

    fn step<E: FnMut(I::Item)>(&mut self, x: X, emit: &mut E) {
        (self.0)(x).into_iter().for_each(emit);
    }

    fn name(&self) -> &'static str {
        "flat_map"
    }
}

/// Built by [`Flow::inspect`](crate::Flow::inspect).
#[derive(Clone)]
pub struct Inspect<F>(pub(crate) F);

impl<X, F> Step<X> for Inspect<F>
where
    X: Send + 'static,
    F: FnMut(&X) + Clone + Send + 'static,
{
    type Out = X;

    fn step<E: FnMut(X)>(&mut self, x: X, emit: &mut E) {
        (self.0)(&x);
        emit(x);
    }

    fn name(&self) -> &'static str {
        "inspect"
    }
}

/// Built by [`Flow::map_values`](crate::Flow::map_values).
#[derive(Clone)]
pub struct MapValues<F>(pub(crate) F);

impl<K, V, W, F> Step<(K, V)> for MapValues<F>
where
    F: FnMut(V) -> W + Clone + Send + 'static,
    K: Send + 'static,
    W: Send + 'static,
{
    type Out = (K, W);

    fn step<E: FnMut((K, W))>(&mut self, (k, v): (K, V), emit: &mut E) {
        emit((k, (self.0)(v)));
    }

    fn name(&self) -> &'static str {
        "map_values"
    }
}

/// Built by [`Flow::uniq_by`](crate::Flow::uniq_by) and [`Flow::uniq`](crate::Flow::uniq).
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

    fn step<E: FnMut(X)>(&mut self, x: X, emit: &mut E) {
        if self.seen.insert((self.key)(&x)) {
            emit(x);
        }
    }

    fn name(&self) -> &'static str {
        "uniq_by"
    }
}
