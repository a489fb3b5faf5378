//! How `partition` routes events to the stages of the next layer: [`Partition`] and the
//! types saying whether it routes by the events' own hash or by a key or hash function.
//!
//! # Examples
//!
//! ```
//! # #[tokio::main]
//! # async fn main() -> Result<(), weir_flow::Error> {
//! use weir_flow::{Flow, Partition};
//!
//! // Routed by their own hash, equal events meet in one stage, so `uniq` sees them all.
//! let mut once: Vec<u32> = Flow::from_enumerable([3u32, 1, 3, 2, 1, 3])
//!     .partition(Partition::new().stages(2))
//!     .uniq()
//!     .collect()
//!     .await?;
//! once.sort();
//! assert_eq!(once, vec![1, 2, 3]);
//! # Ok(()) }
//! ```

use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::Arc;

/// A route: the stage of an event among `stages`, or `None` to drop it.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use weir_flow::partition::Route;
///
/// let odd_only: Route<u32> = Arc::new(|n: &u32, stages: usize| (n % 2 == 1).then(|| *n as usize % stages));
/// assert_eq!(odd_only(&7, 4), Some(3));
/// assert_eq!(odd_only(&8, 4), None);
/// ```
pub type Route<T> = Arc<dyn Fn(&T, usize) -> Option<usize> + Send + Sync>;

/// Options of [`Flow::partition`](crate::Flow::partition): how many stages the new layer
/// has and which stage each event goes to.
///
/// By key, equal keys meet in the same stage. A custom hash returns a stage index (taken
/// modulo the number of stages) or `None` to drop the event. Without either, events are
/// routed by their own hash, which needs them to be `Hash`; with a key or a hash they need
/// not be (the second type parameter records which, so the bound applies only where it is
/// needed).
///
/// # Examples
///
/// ```
/// use weir_flow::Partition;
///
/// let by_word = Partition::new().stages(4).key(|word: &String| word.clone());
/// let evens_only = Partition::new().hash(|n: &u64| (n % 2 == 0).then_some(*n as usize));
/// // Events that are not `Hash` (here, with a float), partitioned by a key that is.
/// let by_customer = Partition::new().key(|order: &(u32, f64)| order.0);
/// # let _ = (by_word, evens_only, by_customer);
/// ```
pub struct Partition<T, R = ByEvent> {
    pub(crate) stages: Option<usize>,
    pub(crate) route: R,
    pub(crate) max_demand: Option<usize>,
    events: PhantomData<fn(&T)>,
}

/// [`Partition`]'s default route: by each event's own hash.
///
/// # Examples
///
/// ```
/// use weir_flow::partition::ByEvent;
/// use weir_flow::Partition;
///
/// let by_event: Partition<u64, ByEvent> = Partition::new().stages(2);
/// # let _ = by_event;
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct ByEvent;

/// [`Partition`]'s route when given by [`Partition::key`] or [`Partition::hash`].
///
/// # Examples
///
/// ```
/// use weir_flow::partition::Routed;
/// use weir_flow::Partition;
///
/// let by_parity: Partition<u64, Routed<u64>> = Partition::new().key(|n: &u64| n % 2);
/// # let _ = by_parity;
/// ```
pub struct Routed<T>(Route<T>);

/// How a [`Partition`] routes events of type `T`: [`ByEvent`] (needs `T: Hash`) or
/// [`Routed`]. Sealed.
///
/// # Examples
///
/// ```
/// # #[tokio::main]
/// # async fn main() -> Result<(), weir_flow::Error> {
/// use weir_flow::partition::IntoRoute;
/// use weir_flow::{Flow, Partition};
///
/// // A helper that takes a partition of either kind.
/// async fn spread<R: IntoRoute<u32>>(partition: Partition<u32, R>) -> Result<Vec<u32>, weir_flow::Error> {
///     Flow::from_enumerable(0..10u32).partition(partition.stages(3)).collect().await
/// }
/// assert_eq!(spread(Partition::new()).await?.len(), 10);
/// assert_eq!(spread(Partition::new().key(|n: &u32| n % 2)).await?.len(), 10);
/// # Ok(()) }
/// ```
pub trait IntoRoute<T>: sealed::Sealed {
    /// The route, for `stages` stages.
    #[doc(hidden)]
    fn into_route(self) -> Route<T>;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::ByEvent {}
    impl<T> Sealed for super::Routed<T> {}
}

impl<T: Hash> IntoRoute<T> for ByEvent {
    fn into_route(self) -> Route<T> {
        Arc::new(|event: &T, stages: usize| Some(hash_index(event, stages)))
    }
}

impl<T> IntoRoute<T> for Routed<T> {
    fn into_route(self) -> Route<T> {
        self.0
    }
}

impl<T> Default for Partition<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Partition<T> {
    /// One stage per core, events routed by their own hash.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use weir_flow::{Flow, Partition};
    ///
    /// // Equal events meet in one stage: one group per letter, across all the stages.
    /// let mut groups: Vec<(char, Vec<char>)> = Flow::from_enumerable("abracadabra".chars())
    ///     .partition(Partition::new())
    ///     .group_by(|c: &char| *c)
    ///     .collect()
    ///     .await?;
    /// groups.sort();
    /// assert_eq!(groups.len(), 5);
    /// assert_eq!(groups[0], ('a', vec!['a'; 5]));
    /// # Ok(()) }
    /// ```
    pub fn new() -> Self {
        Partition { stages: None, route: ByEvent, max_demand: None, events: PhantomData }
    }
}

impl<T, R> Partition<T, R> {
    /// The number of stages of the new layer (default: the number of cores).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use weir_flow::{Flow, Partition};
    ///
    /// // Each of the 3 stages emits its own count when the input ends.
    /// let counts: Vec<usize> = Flow::from_enumerable(0..90u32)
    ///     .partition(Partition::new().stages(3))
    ///     .reduce(|| vec![0usize], |_, n: Vec<usize>| vec![n[0] + 1])
    ///     .collect()
    ///     .await?;
    /// assert_eq!(counts.len(), 3);
    /// assert_eq!(counts.iter().sum::<usize>(), 90);
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn stages(mut self, stages: usize) -> Self {
        self.stages = Some(stages);
        self
    }

    /// The `max_demand` of the new layer's stages (default 10,000: ten times a source's, as
    /// every upstream stage feeds each of them and a `flat_map` multiplies events; memory
    /// stays bounded by it).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use weir_flow::{Flow, Partition};
    ///
    /// let numbers = || Flow::from_enumerable(0..100u32);
    /// let all: Vec<u32> = numbers().partition(Partition::new().max_demand(10)).collect().await?;
    /// assert_eq!(all.len(), 100);
    /// let err = numbers().partition(Partition::new().max_demand(0)).run().await.unwrap_err();
    /// assert_eq!(err.to_string(), "max_demand (0) must be greater than 0");
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn max_demand(mut self, max_demand: usize) -> Self {
        self.max_demand = Some(max_demand);
        self
    }

    fn routed(self, route: Route<T>) -> Partition<T, Routed<T>> {
        Partition {
            stages: self.stages,
            route: Routed(route),
            max_demand: self.max_demand,
            events: PhantomData,
        }
    }

    /// Routes by a key of each event: equal keys go to the same stage.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use std::collections::HashMap;
    /// use weir_flow::{Flow, Partition};
    ///
    /// // Each key's amounts meet in one stage, so each key has one total.
    /// let mut totals: Vec<(char, u32)> = Flow::from_enumerable([('a', 1u32), ('b', 2), ('a', 3), ('b', 4)])
    ///     .partition(Partition::new().stages(2).key(|(k, _): &(char, u32)| *k))
    ///     .reduce(HashMap::new, |(k, v), mut m: HashMap<char, u32>| { *m.entry(k).or_default() += v; m })
    ///     .collect()
    ///     .await?;
    /// totals.sort();
    /// assert_eq!(totals, vec![('a', 4), ('b', 6)]);
    /// # Ok(()) }
    /// ```
    pub fn key<K: Hash>(self, key: impl Fn(&T) -> K + Send + Sync + 'static) -> Partition<T, Routed<T>> {
        self.routed(Arc::new(move |event: &T, stages: usize| Some(hash_index(&key(event), stages))))
    }

    /// Routes by a custom hash: the stage index (modulo the number of stages), or `None` to
    /// drop the event.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use weir_flow::{Flow, Partition};
    ///
    /// // Multiples of 3 are dropped; the others go to stage `n % 2`.
    /// let mut kept: Vec<u32> = Flow::from_enumerable(0..10u32)
    ///     .partition(Partition::new().stages(2).hash(|n: &u32| (n % 3 != 0).then_some(*n as usize)))
    ///     .collect()
    ///     .await?;
    /// kept.sort();
    /// assert_eq!(kept, vec![1, 2, 4, 5, 7, 8]);
    /// # Ok(()) }
    /// ```
    pub fn hash(self, hash: impl Fn(&T) -> Option<usize> + Send + Sync + 'static) -> Partition<T, Routed<T>> {
        self.routed(Arc::new(move |event: &T, stages: usize| hash(event).map(|h| h % stages)))
    }
}

pub(crate) fn hash_index<K: Hash + ?Sized>(key: &K, stages: usize) -> usize {
    use std::hash::BuildHasher;
    // Fx with a seed of its own (so a stage's keys are not correlated with the stages' own
    // Fx maps), and multiply-shift, which uses the well-mixed high bits.
    let h = rustc_hash::FxBuildHasher.hash_one((0x9E37_79B9_7F4A_7C15u64, key));
    ((u128::from(h) * stages as u128) >> 64) as usize
}
