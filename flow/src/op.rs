//! Fused operations: the mappers of one layer, composed into one function per stage.
//!
//! Each fluent call wraps the chain in one small adapter (like `Iterator` adapters), so a
//! chunk of events runs through every mapper in one monomorphized loop, with no task and no
//! allocation per operation.

use std::marker::PhantomData;

/// A chain of mappers from `In`: pushes each outcome of one input to `emit`.
///
/// Implemented by the adapters the fluent calls build; users do not implement it.
pub trait Op<In>: Clone + Send + 'static {
    /// What comes out of the chain.
    type Out: Send + 'static;

    /// Runs one input through the chain.
    fn push<E: FnMut(Self::Out)>(&mut self, item: In, emit: &mut E);

    /// The operations of the chain, e.g. `flat_map → filter`, for errors.
    fn describe(&self) -> String;
}

/// `inner`'s description followed by `name`.
fn then(inner: String, name: &str) -> String {
    if inner.is_empty() {
        name.to_string()
    } else {
        format!("{inner} → {name}")
    }
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

    fn describe(&self) -> String {
        String::new()
    }
}

/// Built by [`Flow::map`](crate::Flow::map).
#[derive(Clone)]
pub struct Map<O, F> {
    pub(crate) inner: O,
    pub(crate) f: F,
}

impl<In, O, F, U> Op<In> for Map<O, F>
where
    O: Op<In>,
    F: FnMut(O::Out) -> U + Clone + Send + 'static,
    U: Send + 'static,
{
    type Out = U;

    fn push<E: FnMut(U)>(&mut self, item: In, emit: &mut E) {
        let f = &mut self.f;
        self.inner.push(item, &mut |x| emit(f(x)));
    }

    fn describe(&self) -> String {
        then(self.inner.describe(), "map")
    }
}

/// Built by [`Flow::filter`](crate::Flow::filter) and [`Flow::reject`](crate::Flow::reject).
#[derive(Clone)]
pub struct Filter<O, F> {
    pub(crate) inner: O,
    pub(crate) keep: F,
    pub(crate) when: bool,
}

impl<In, O, F> Op<In> for Filter<O, F>
where
    O: Op<In>,
    F: FnMut(&O::Out) -> bool + Clone + Send + 'static,
{
    type Out = O::Out;

    fn push<E: FnMut(O::Out)>(&mut self, item: In, emit: &mut E) {
        let (keep, when) = (&mut self.keep, self.when);
        self.inner.push(item, &mut |x| {
            if keep(&x) == when {
                emit(x);
            }
        });
    }

    fn describe(&self) -> String {
        then(self.inner.describe(), if self.when { "filter" } else { "reject" })
    }
}

/// Built by [`Flow::filter_map`](crate::Flow::filter_map).
#[derive(Clone)]
pub struct FilterMap<O, F> {
    pub(crate) inner: O,
    pub(crate) f: F,
}

impl<In, O, F, U> Op<In> for FilterMap<O, F>
where
    O: Op<In>,
    F: FnMut(O::Out) -> Option<U> + Clone + Send + 'static,
    U: Send + 'static,
{
    type Out = U;

    fn push<E: FnMut(U)>(&mut self, item: In, emit: &mut E) {
        let f = &mut self.f;
        self.inner.push(item, &mut |x| {
            if let Some(y) = f(x) {
                emit(y);
            }
        });
    }

    fn describe(&self) -> String {
        then(self.inner.describe(), "filter_map")
    }
}

/// Built by [`Flow::flat_map`](crate::Flow::flat_map).
#[derive(Clone)]
pub struct FlatMap<O, F> {
    pub(crate) inner: O,
    pub(crate) f: F,
}

impl<In, O, F, I> Op<In> for FlatMap<O, F>
where
    O: Op<In>,
    F: FnMut(O::Out) -> I + Clone + Send + 'static,
    I: IntoIterator,
    I::Item: Send + 'static,
{
    type Out = I::Item;

    fn push<E: FnMut(I::Item)>(&mut self, item: In, emit: &mut E) {
        let f = &mut self.f;
        self.inner.push(item, &mut |x| f(x).into_iter().for_each(&mut *emit));
    }

    fn describe(&self) -> String {
        then(self.inner.describe(), "flat_map")
    }
}

/// Built by [`Flow::inspect`](crate::Flow::inspect).
#[derive(Clone)]
pub struct Inspect<O, F> {
    pub(crate) inner: O,
    pub(crate) f: F,
}

impl<In, O, F> Op<In> for Inspect<O, F>
where
    O: Op<In>,
    F: FnMut(&O::Out) + Clone + Send + 'static,
{
    type Out = O::Out;

    fn push<E: FnMut(O::Out)>(&mut self, item: In, emit: &mut E) {
        let f = &mut self.f;
        self.inner.push(item, &mut |x| {
            f(&x);
            emit(x);
        });
    }

    fn describe(&self) -> String {
        then(self.inner.describe(), "inspect")
    }
}

/// Built by [`Flow::map_values`](crate::Flow::map_values).
#[derive(Clone)]
pub struct MapValues<O, F> {
    pub(crate) inner: O,
    pub(crate) f: F,
}

impl<In, O, F, K, V, W> Op<In> for MapValues<O, F>
where
    O: Op<In, Out = (K, V)>,
    F: FnMut(V) -> W + Clone + Send + 'static,
    K: Send + 'static,
    W: Send + 'static,
{
    type Out = (K, W);

    fn push<E: FnMut((K, W))>(&mut self, item: In, emit: &mut E) {
        let f = &mut self.f;
        self.inner.push(item, &mut |(k, v)| emit((k, f(v))));
    }

    fn describe(&self) -> String {
        then(self.inner.describe(), "map_values")
    }
}

/// Built by [`Flow::uniq_by`](crate::Flow::uniq_by) and [`Flow::uniq`](crate::Flow::uniq).
#[derive(Clone)]
pub struct UniqBy<O, F, K> {
    pub(crate) inner: O,
    pub(crate) key: F,
    /// Keys seen by this stage (each stage starts from the plan's empty set).
    pub(crate) seen: std::collections::HashSet<K>,
}

impl<In, O, F, K> Op<In> for UniqBy<O, F, K>
where
    O: Op<In>,
    F: FnMut(&O::Out) -> K + Clone + Send + 'static,
    K: std::hash::Hash + Eq + Clone + Send + 'static,
{
    type Out = O::Out;

    fn push<E: FnMut(O::Out)>(&mut self, item: In, emit: &mut E) {
        let (key, seen) = (&mut self.key, &mut self.seen);
        self.inner.push(item, &mut |x| {
            if seen.insert(key(&x)) {
                emit(x);
            }
        });
    }

    fn describe(&self) -> String {
        then(self.inner.describe(), "uniq_by")
    }
}
