//! How `partition` routes events to the stages of the next layer.

use std::hash::Hash;
use std::sync::Arc;

pub(crate) type Route<T> = Arc<dyn Fn(&T, usize) -> Option<usize> + Send + Sync>;

/// Options of [`Flow::partition`](crate::Flow::partition): how many stages the new layer
/// has and which stage each event goes to.
///
/// By key, equal keys meet in the same stage. A custom hash returns a stage index (taken
/// modulo the number of stages) or `None` to drop the event. Without either, events are
/// routed by their own hash.
///
/// # Examples
///
/// ```
/// use weir_flow::Partition;
///
/// let by_word = Partition::new().stages(4).key(|word: &String| word.clone());
/// let evens_only = Partition::new().hash(|n: &u64| (n % 2 == 0).then_some(*n as usize));
/// ```
pub struct Partition<T> {
    pub(crate) stages: Option<usize>,
    pub(crate) route: Option<Route<T>>,
    pub(crate) max_demand: Option<usize>,
}

impl<T> Default for Partition<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Partition<T> {
    /// One stage per core, events routed by their own hash.
    pub fn new() -> Self {
        Partition { stages: None, route: None, max_demand: None }
    }

    /// The number of stages of the new layer (default: the number of cores).
    pub fn stages(mut self, stages: usize) -> Self {
        self.stages = Some(stages);
        self
    }

    /// The `max_demand` of the new layer's stages (default 1000).
    pub fn max_demand(mut self, max_demand: usize) -> Self {
        self.max_demand = Some(max_demand);
        self
    }

    /// Routes by a key of each event: equal keys go to the same stage.
    pub fn key<K: Hash>(mut self, key: impl Fn(&T) -> K + Send + Sync + 'static) -> Self {
        self.route = Some(Arc::new(move |event: &T, stages: usize| Some(hash_index(&key(event), stages))));
        self
    }

    /// Routes by a custom hash: the stage index (modulo the number of stages), or `None` to
    /// drop the event.
    pub fn hash(mut self, hash: impl Fn(&T) -> Option<usize> + Send + Sync + 'static) -> Self {
        self.route = Some(Arc::new(move |event: &T, stages: usize| hash(event).map(|h| h % stages)));
        self
    }

    pub(crate) fn route(&self) -> Route<T>
    where
        T: Hash,
    {
        self.route
            .clone()
            .unwrap_or_else(|| Arc::new(|event: &T, stages: usize| Some(hash_index(event, stages))))
    }
}

pub(crate) fn hash_index<K: Hash + ?Sized>(key: &K, stages: usize) -> usize {
    use std::hash::BuildHasher;
    // Fx with a seed of its own (so a stage's keys are not correlated with the stages' own
    // Fx maps), and multiply-shift, which uses the well-mixed high bits.
    let h = rustc_hash::FxBuildHasher.hash_one((0x9E37_79B9_7F4A_7C15u64, key));
    ((u128::from(h) * stages as u128) >> 64) as usize
}
