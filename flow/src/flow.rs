//! The lazy flow: a plan of layers, turned into running stages by a terminal call.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;

use futures::{Stream, StreamExt};
use weir_core::dispatcher::PartitionDispatcher;
use weir_core::{
    from_stream, start_producer, start_producer_consumer, stream_all, AnyStageRef, BufferSize, CancelMode,
    ConsumerRef, ConsumerStream, DemandMode, PartitionKey, ProducerConsumerOptions, ProducerHandle,
    ProducerOptions, ProducerRef, SubscribeOptions,
};

use crate::error::Error;
use crate::op::{
    Filter, FilterMap, FlatMap, Identity, Inspect, Map, MapBatch, MapValues, Op, Reject, Then, UniqBy,
};
use crate::partition::{IntoRoute, Partition, Route};
use crate::reduce::{Emitting, GroupBy, GroupByKey, Plain};
use crate::reduced::{Reduced, Windowed};
use crate::source::{puller, Puller, Source, SourceStage};
use crate::stage::{Layer, LayerStage, Mapper};
use crate::window::Window;

/// For each stage of a layer, the producers (and partitions) it subscribes to.
type Plan<T> = Vec<Vec<(ProducerRef<T>, Option<PartitionKey>)>>;

/// Where a stage sits: its index in its layer, the layer's size, and the next layer's.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Position {
    pub(crate) index: usize,
    pub(crate) stages: usize,
    pub(crate) next_stages: usize,
}

/// Starts everything before a layer, given how many stages the layer has.
type StartFn<T> = Box<dyn FnOnce(usize, Running) -> BoxFuture<'static, Result<Plan<T>, Error>> + Send>;

/// What feeds a layer.
enum Upstream<T> {
    /// Stages (or producers) the layer's stages subscribe to.
    Stages(StartFn<T>),
    /// Iterators, pulled by the layer's stages themselves (see `source.rs`).
    Iterators(Vec<Puller<T>>),
}

impl<T: Send + 'static> Upstream<T> {
    /// What a layer of `stages` stages subscribes to; iterators get stages of their own.
    async fn start(self, stages: usize, running: Running) -> Result<Plan<T>, Error> {
        match self {
            Upstream::Stages(start) => start(stages, running).await,
            Upstream::Iterators(pullers) => {
                let count = pullers.len();
                let refs = Flow::<T>::start_layer(
                    Upstream::Iterators(pullers),
                    count,
                    MaxDemand::DEFAULT,
                    running,
                    |_| Ok((Mapper::new(Identity::new()), None)),
                )
                .await?;
                Ok(Flow::<T>::plan_all(&refs, stages))
            }
        }
    }
}

/// What a stage of a layer runs, and how it routes its output (`None`: to whichever
/// subscriber has demand).
type StageSpec<L, U> = (L, Option<PartitionDispatcher<U>>);

/// What a flow started: every stage, so a finished or failed flow stops them all, and how to
/// release its sources, which hold their events until every stage has subscribed (so a
/// short source cannot finish before the last stage subscribes).
#[derive(Clone, Default)]
struct Running(Arc<Mutex<Started>>);

#[derive(Default)]
struct Started {
    stages: Vec<AnyStageRef>,
    sources: Vec<Box<dyn FnOnce() + Send>>,
}

impl Running {
    fn stage(&self, stage: AnyStageRef) {
        self.with(|s| s.stages.push(stage));
    }

    fn source<E: Send + 'static, M: Send + 'static>(&self, producer: &ProducerHandle<E, M>) {
        let stage = producer.stage().clone();
        self.with(|s| {
            s.stages.push(stage.to_any());
            s.sources.push(Box::new(move || {
                let _finished_already = stage.set_demand_mode(DemandMode::Forward);
            }));
        });
    }

    fn with<R>(&self, f: impl FnOnce(&mut Started) -> R) -> R {
        f(&mut self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    fn release_sources(&self) {
        for release in self.with(|s| std::mem::take(&mut s.sources)) {
            release();
        }
    }

    fn stop_all(&self) {
        for stage in self.with(|s| std::mem::take(&mut s.stages)) {
            if stage.is_running() {
                tokio::spawn(async move { stage.stop().await });
            }
        }
    }
}

pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map(usize::from).unwrap_or(1)
}

/// A layer's `max_demand`, and whether the user chose it: with the default, a reducing layer
/// pulls larger batches from an iterator source (it emits per window, not per batch); a
/// chosen one is kept to, for items so coarse that a few make a batch.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MaxDemand {
    pub(crate) value: usize,
    pub(crate) given: bool,
}

impl MaxDemand {
    /// Elixir's default, for stages fed by a source or by any stage.
    pub(crate) const DEFAULT: MaxDemand = MaxDemand::default_of(1000);

    /// For the stages after a `partition`: every event upstream may go to any of them, and a
    /// `flat_map` before it multiplies events, so chunks of 500 would cost a message and a
    /// wake-up per few hundred events (measured: a per-word partition ran 1.7x faster).
    pub(crate) const PARTITION: MaxDemand = MaxDemand::default_of(10_000);

    pub(crate) const fn default_of(value: usize) -> Self {
        MaxDemand { value, given: false }
    }

    pub(crate) fn given_or(given: Option<usize>, default: MaxDemand) -> Self {
        given.map_or(default, |value| MaxDemand { value, given: true })
    }
}

/// A lazy, parallel dataflow: sources, then layers of stages running fused operations.
///
/// Nothing runs until a terminal call ([`collect`](Flow::collect), [`run`](Flow::run),
/// [`into_stream`](Flow::into_stream)). Mappers (`map`, `filter`, `flat_map`...) fuse into the
/// stages of the current layer; [`partition`](Flow::partition) starts a new layer whose
/// stages each get the events of one partition, and [`reduce`](Flow::reduce) folds each
/// stage's events into a state emitted when the input ends. Order is not kept across stages.
///
/// # Examples
///
/// ```
/// # #[tokio::main]
/// # async fn main() -> Result<(), weir_flow::Error> {
/// use std::collections::HashMap;
/// use weir_flow::{Flow, Partition};
///
/// let lines = vec!["a b a", "b a c"];
/// let mut counts: Vec<(String, usize)> = Flow::from_enumerable(lines)
///     .flat_map(|line: &str| line.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
///     .partition(Partition::new().key(|word: &String| word.clone()))
///     .reduce(HashMap::new, |word, mut counts: HashMap<String, usize>| {
///         *counts.entry(word).or_default() += 1;
///         counts
///     })
///     .collect()
///     .await?;
/// counts.sort();
/// assert_eq!(counts, vec![("a".into(), 3), ("b".into(), 2), ("c".into(), 1)]);
/// # Ok(()) }
/// ```
#[must_use = "flows do nothing unless run"]
pub struct Flow<T, O = Identity<T>> {
    upstream: Upstream<T>,
    op: O,
    pub(crate) stages: usize,
    pub(crate) max_demand: MaxDemand,
}

impl<T: Send + 'static> Flow<T> {
    fn source(upstream: Upstream<T>) -> Self {
        Flow { upstream, op: Identity::new(), stages: cores(), max_demand: MaxDemand::DEFAULT }
    }

    pub(crate) fn plan_all(producers: &[ProducerRef<T>], stages: usize) -> Plan<T> {
        (0..stages).map(|_| producers.iter().map(|p| (p.clone(), None)).collect()).collect()
    }

    /// One layer fed by several flows (Flow's `merge`): each flow's last layer (or its
    /// sources) feeds every stage of the new layer. Flows with pending mappers first close
    /// their layer with [`partition`](Flow::partition) or [`shuffle`](Flow::shuffle), so the
    /// type says what is merged.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use weir_flow::Flow;
    ///
    /// let evens = Flow::from_enumerable((0..10u32).filter(|x| x % 2 == 0));
    /// let odds = Flow::from_enumerable(0..10u32).filter(|x| x % 2 == 1).shuffle(2);
    /// let mut all: Vec<u32> = Flow::merge([evens, odds]).collect().await?;
    /// all.sort();
    /// assert_eq!(all, (0..10).collect::<Vec<_>>());
    /// # Ok(()) }
    /// ```
    pub fn merge(flows: impl IntoIterator<Item = Flow<T>>) -> Self {
        let upstreams: Vec<Upstream<T>> = flows.into_iter().map(|flow| flow.upstream).collect();
        Self::source(Upstream::Stages(Box::new(move |stages, running| {
            Box::pin(async move {
                let mut plan: Plan<T> = (0..stages).map(|_| Vec::new()).collect();
                for upstream in upstreams {
                    for (stage, subscriptions) in
                        plan.iter_mut().zip(upstream.start(stages, running.clone()).await?)
                    {
                        stage.extend(subscriptions);
                    }
                }
                Ok(plan)
            })
        })))
    }

    /// Applies `f` to each whole chunk of events, first thing in the layer (e.g. one
    /// lookup for many events). Only a layer's first operation can be a `map_batch`: the
    /// method exists only on a flow with no pending mappers.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use weir_flow::Flow;
    ///
    /// let mut sums: Vec<u32> = Flow::from_enumerable(0..100u32)
    ///     .max_demand(20)
    ///     .map_batch(|chunk: Vec<u32>| vec![chunk.iter().sum::<u32>()])
    ///     .collect()
    ///     .await?;
    /// assert_eq!(sums.iter().sum::<u32>(), 4950);
    /// assert!(sums.len() >= 10); // chunks of at most half the demand
    /// # Ok(()) }
    /// ```
    pub fn map_batch<F, I>(self, f: F) -> Flow<T, MapBatch<T, F>>
    where
        F: FnMut(Vec<T>) -> I + Clone + Send + 'static,
        I: IntoIterator,
        I::Item: Send + 'static,
    {
        Flow {
            upstream: self.upstream,
            op: MapBatch { f, _in: std::marker::PhantomData },
            stages: self.stages,
            max_demand: self.max_demand,
        }
    }

    /// A flow over the items of an iterator (Flow's `from_enumerable`).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use weir_flow::Flow;
    ///
    /// let mut squares: Vec<u64> = Flow::from_enumerable(1..=4u64).map(|x| x * x).collect().await?;
    /// squares.sort();
    /// assert_eq!(squares, vec![1, 4, 9, 16]);
    /// # Ok(()) }
    /// ```
    #[doc(alias = "from_iter")]
    pub fn from_enumerable<I>(items: I) -> Self
    where
        I: IntoIterator<Item = T>,
        I::IntoIter: Send + 'static,
    {
        Self::from_enumerables([items])
    }

    /// A flow over several iterators, read in parallel (one producer each).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use weir_flow::Flow;
    ///
    /// let total: Vec<u32> = Flow::from_enumerables([0..10u32, 10..20]).collect().await?;
    /// assert_eq!(total.len(), 20);
    /// # Ok(()) }
    /// ```
    pub fn from_enumerables<I>(sources: impl IntoIterator<Item = I>) -> Self
    where
        I: IntoIterator<Item = T>,
        I::IntoIter: Send + 'static,
    {
        Self::source(Upstream::Iterators(
            sources.into_iter().map(|items| puller(items.into_iter())).collect(),
        ))
    }

    /// A flow over the items of a `futures::Stream`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use weir_flow::Flow;
    ///
    /// let items: Vec<u8> = Flow::from_stream(futures::stream::iter(0..5u8)).collect().await?;
    /// assert_eq!(items.len(), 5);
    /// # Ok(()) }
    /// ```
    pub fn from_stream<S>(items: S) -> Self
    where
        S: Stream<Item = T> + Send + 'static,
    {
        Self::source(Upstream::Stages(Box::new(move |stages, running| {
            Box::pin(async move {
                let options = ProducerOptions::new().demand(DemandMode::Accumulate);
                let producer = start_producer(from_stream(items), options)?;
                running.source(&producer);
                Ok(Self::plan_all(&[producer.producer().clone()], stages))
            })
        })))
    }

    /// A flow over running producers; it ends when they all finish.
    ///
    /// Start them in [`DemandMode::Accumulate`]: the flow switches them to forward once all
    /// its stages have subscribed, so a short producer cannot finish before the last stage
    /// subscribes (Flow's advice for `from_stages`). They are stopped with the flow.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use weir_core::{from_enumerable, start_producer, DemandMode, ProducerOptions};
    /// use weir_flow::Flow;
    ///
    /// let options = ProducerOptions::new().demand(DemandMode::Accumulate);
    /// let numbers = start_producer(from_enumerable(0..100u32), options)?;
    /// let evens: Vec<u32> = Flow::from_stages([numbers]).filter(|x| x % 2 == 0).collect().await?;
    /// assert_eq!(evens.len(), 50);
    /// # Ok(()) }
    /// ```
    pub fn from_stages<M: Send + 'static>(producers: impl IntoIterator<Item = ProducerHandle<T, M>>) -> Self {
        let producers: Vec<ProducerHandle<T, M>> = producers.into_iter().collect();
        Self::source(Upstream::Stages(Box::new(move |stages, running| {
            Box::pin(async move {
                for producer in &producers {
                    running.source(producer);
                }
                let refs: Vec<ProducerRef<T>> = producers.iter().map(|p| p.producer().clone()).collect();
                Ok(Self::plan_all(&refs, stages))
            })
        })))
    }
}

impl<T: Send + 'static, O: Op<T>> Flow<T, O> {
    fn with<P: Op<T>>(self, op: impl FnOnce(O) -> P) -> Flow<T, P> {
        Flow { upstream: self.upstream, op: op(self.op), stages: self.stages, max_demand: self.max_demand }
    }

    /// How many stages run this layer (default: one per core).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use weir_flow::Flow;
    ///
    /// // One stage keeps the source's order.
    /// let in_order: Vec<u8> = Flow::from_enumerable(0..5u8).stages(1).collect().await?;
    /// assert_eq!(in_order, vec![0, 1, 2, 3, 4]);
    /// # Ok(()) }
    /// ```
    pub fn stages(mut self, stages: usize) -> Self {
        self.stages = stages;
        self
    }

    /// The `max_demand` of this layer's stages towards their producers (default 1000; 10,000
    /// after a `partition`): events travel in chunks of up to half of it. Stages reading an
    /// iterator pull that many items at a time; a reducing layer pulls at least 4096 unless
    /// this is set, so set it for coarse items (e.g. `max_demand(2)` for large text chunks,
    /// one per pull).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() {
    /// use weir_flow::Flow;
    ///
    /// let small: Vec<u8> = Flow::from_enumerable(0..10u8).max_demand(4).collect().await.unwrap();
    /// assert_eq!(small.len(), 10);
    /// let err = Flow::from_enumerable(0..10u8).max_demand(0).run().await.unwrap_err();
    /// assert_eq!(err.to_string(), "max_demand (0) must be greater than 0");
    /// # }
    /// ```
    pub fn max_demand(mut self, max_demand: usize) -> Self {
        self.max_demand = MaxDemand { value: max_demand, given: true };
        self
    }

    /// Applies `f` to every event.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use weir_flow::Flow;
    ///
    /// let lengths: Vec<usize> = Flow::from_enumerable(["a", "bb"]).map(str::len).stages(1).collect().await?;
    /// assert_eq!(lengths, vec![1, 2]);
    /// # Ok(()) }
    /// ```
    pub fn map<U, F>(self, f: F) -> Flow<T, Then<O, Map<F>>>
    where
        F: FnMut(O::Out) -> U + Clone + Send + 'static,
        U: Send + 'static,
    {
        self.with(|inner| Then { inner, step: Map(f) })
    }

    /// Keeps the events `keep` accepts.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use weir_flow::Flow;
    ///
    /// let big: Vec<u8> = Flow::from_enumerable(0..10u8).filter(|x| *x > 7).stages(1).collect().await?;
    /// assert_eq!(big, vec![8, 9]);
    /// # Ok(()) }
    /// ```
    pub fn filter<F>(self, keep: F) -> Flow<T, Then<O, Filter<F>>>
    where
        F: FnMut(&O::Out) -> bool + Clone + Send + 'static,
    {
        self.with(|inner| Then { inner, step: Filter(keep) })
    }

    /// Drops the events `drop` accepts.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use weir_flow::Flow;
    ///
    /// let small: Vec<u8> = Flow::from_enumerable(0..10u8).reject(|x| *x > 1).stages(1).collect().await?;
    /// assert_eq!(small, vec![0, 1]);
    /// # Ok(()) }
    /// ```
    pub fn reject<F>(self, drop: F) -> Flow<T, Then<O, Reject<F>>>
    where
        F: FnMut(&O::Out) -> bool + Clone + Send + 'static,
    {
        self.with(|inner| Then { inner, step: Filter(drop) })
    }

    /// Maps and keeps the `Some`s.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use weir_flow::Flow;
    ///
    /// let numbers: Vec<u8> = Flow::from_enumerable(["1", "x", "3"]).filter_map(|s| s.parse::<u8>().ok()).stages(1).collect().await?;
    /// assert_eq!(numbers, vec![1, 3]);
    /// # Ok(()) }
    /// ```
    pub fn filter_map<U, F>(self, f: F) -> Flow<T, Then<O, FilterMap<F>>>
    where
        F: FnMut(O::Out) -> Option<U> + Clone + Send + 'static,
        U: Send + 'static,
    {
        self.with(|inner| Then { inner, step: FilterMap(f) })
    }

    /// Replaces every event by the items `f` returns for it.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use weir_flow::Flow;
    ///
    /// let chars: Vec<char> = Flow::from_enumerable(["ab", "c"]).flat_map(|s: &str| s.chars().collect::<Vec<_>>()).stages(1).collect().await?;
    /// assert_eq!(chars, vec!['a', 'b', 'c']);
    /// # Ok(()) }
    /// ```
    pub fn flat_map<I, F>(self, f: F) -> Flow<T, Then<O, FlatMap<F>>>
    where
        F: FnMut(O::Out) -> I + Clone + Send + 'static,
        I: IntoIterator,
        I::Item: Send + 'static,
    {
        self.with(|inner| Then { inner, step: FlatMap(f) })
    }

    /// Calls `f` on every event, passing it on.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use weir_flow::Flow;
    ///
    /// let items: Vec<u8> = Flow::from_enumerable(0..3u8).inspect(|x| println!("saw {x}")).collect().await?;
    /// assert_eq!(items.len(), 3);
    /// # Ok(()) }
    /// ```
    pub fn inspect<F>(self, f: F) -> Flow<T, Then<O, Inspect<F>>>
    where
        F: FnMut(&O::Out) + Clone + Send + 'static,
    {
        self.with(|inner| Then { inner, step: Inspect(f) })
    }

    /// Applies `f` to the value of every `(key, value)` event.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use weir_flow::Flow;
    ///
    /// let pairs: Vec<(char, u32)> =
    ///     Flow::from_enumerable([('a', 1u32), ('b', 2)]).map_values(|v| v * 10).stages(1).collect().await?;
    /// assert_eq!(pairs, vec![('a', 10), ('b', 20)]);
    /// # Ok(()) }
    /// ```
    pub fn map_values<K, V, W, F>(self, f: F) -> Flow<T, Then<O, MapValues<F>>>
    where
        O: Op<T, Out = (K, V)>,
        F: FnMut(V) -> W + Clone + Send + 'static,
        K: Send + 'static,
        W: Send + 'static,
    {
        self.with(|inner| Then { inner, step: MapValues(f) })
    }

    /// Keeps the first event of each key, per stage: events of one key meet in one stage
    /// only after a `partition` by that key (as in Flow).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use weir_flow::{Flow, Partition};
    ///
    /// let mut firsts: Vec<u32> = Flow::from_enumerable(0..100u32)
    ///     .partition(Partition::new().key(|n: &u32| n % 10))
    ///     .uniq_by(|n: &u32| n % 10)
    ///     .collect()
    ///     .await?;
    /// firsts.sort();
    /// assert_eq!(firsts.len(), 10);
    /// # Ok(()) }
    /// ```
    pub fn uniq_by<K, F>(self, key: F) -> Flow<T, Then<O, UniqBy<F, K>>>
    where
        F: FnMut(&O::Out) -> K + Clone + Send + 'static,
        K: Hash + Eq + Clone + Send + 'static,
    {
        self.with(|inner| Then { inner, step: UniqBy { key, seen: HashSet::new() } })
    }

    /// Keeps the first of equal events, per stage (see [`uniq_by`](Flow::uniq_by)).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use weir_flow::Flow;
    ///
    /// let once: Vec<u8> = Flow::from_enumerable([1u8, 1, 2, 1, 3]).uniq().stages(1).collect().await?;
    /// assert_eq!(once, vec![1, 2, 3]);
    /// # Ok(()) }
    /// ```
    #[allow(clippy::type_complexity)]
    pub fn uniq(self) -> Flow<T, Then<O, UniqBy<fn(&O::Out) -> O::Out, O::Out>>>
    where
        O::Out: Hash + Eq + Clone,
    {
        self.uniq_by(Clone::clone as fn(&O::Out) -> O::Out)
    }

    /// Ends this layer: a new layer of `stages` stages, each event going to whichever stage
    /// has demand (no key; Flow's `shuffle`).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use weir_flow::Flow;
    ///
    /// let n: Vec<u32> = Flow::from_enumerable(0..100u32).stages(1).shuffle(4).map(|x| x + 1).collect().await?;
    /// assert_eq!(n.len(), 100);
    /// # Ok(()) }
    /// ```
    pub fn shuffle(self, stages: usize) -> Flow<O::Out> {
        let max_demand = self.max_demand;
        self.close_layer(stages, max_demand, |op, _| Ok((Mapper::new(op.clone()), None)), Flow::plan_all)
    }

    /// Ends this layer: its stages will run `make(op, next layer's stage count)`; `plan` says
    /// how the next layer's stages subscribe to them.
    pub(crate) fn close_layer<L, U>(
        self,
        next_stages: usize,
        next_max_demand: MaxDemand,
        make: impl Fn(&O, Position) -> Result<StageSpec<L, U>, Error> + Send + 'static,
        plan: impl FnOnce(&[ProducerRef<U>], usize) -> Plan<U> + Send + 'static,
    ) -> Flow<U>
    where
        L: Layer<T, Out = U>,
        U: Send + 'static,
    {
        let Flow { upstream, op, stages, max_demand } = self;
        let next = Upstream::Stages(Box::new(move |n, running| {
            Box::pin(async move {
                let refs = Self::start_layer(upstream, stages, max_demand, running, move |index| {
                    make(&op, Position { index, stages, next_stages: n })
                })
                .await?;
                Ok(plan(&refs, n))
            })
        }));
        Flow { upstream: next, op: Identity::new(), stages: next_stages, max_demand: next_max_demand }
    }

    /// Starts this layer's stages, each running what `make(index)` gives, fed by the
    /// upstream: subscribed per its plan, or pulling its iterators themselves.
    async fn start_layer<L: Layer<T>>(
        upstream: Upstream<T>,
        stages: usize,
        max_demand: MaxDemand,
        running: Running,
        make: impl Fn(usize) -> Result<StageSpec<L, L::Out>, Error>,
    ) -> Result<Vec<ProducerRef<L::Out>>, Error> {
        let given = max_demand.given;
        let max_demand = max_demand.value;
        for (option, value) in [("stages", stages), ("max_demand", max_demand)] {
            if value == 0 {
                return Err(Error::InvalidOption {
                    option,
                    value: "0".into(),
                    rule: "must be greater than 0".into(),
                });
            }
        }
        let mut refs = Vec::with_capacity(stages);
        match upstream {
            Upstream::Iterators(pullers) => {
                let source = Arc::new(Source::new(pullers));
                // The chunk size the stages would get from a producer: max_demand - min_demand.
                let chunk = max_demand - max_demand / 2;
                for index in 0..stages {
                    let (layer, dispatcher) = make(index)?;
                    let batch = if given { chunk } else { layer.pull_size(chunk) };
                    let stage = SourceStage::new(layer, source.clone(), index % source.len().max(1), batch);
                    // Unbounded: a batch's events all go out, like a producer-consumer's; what
                    // exceeds demand is at most one batch's worth.
                    let mut options = ProducerOptions::new()
                        .demand(DemandMode::Accumulate)
                        .buffer_size(BufferSize::Unbounded);
                    if let Some(dispatcher) = dispatcher {
                        options = options.dispatcher(dispatcher);
                    }
                    let handle = start_producer(stage, options)?;
                    running.source(&handle);
                    refs.push(handle.producer().clone());
                }
            }
            Upstream::Stages(start) => {
                for (index, subscriptions) in start(stages, running.clone()).await?.into_iter().enumerate() {
                    let (layer, dispatcher) = make(index)?;
                    let mut options = ProducerConsumerOptions::new();
                    if let Some(dispatcher) = dispatcher {
                        options = options.dispatcher(dispatcher);
                    }
                    let handle = start_producer_consumer(LayerStage::new(layer), options)?;
                    running.stage(handle.to_any());
                    for (producer, partition) in subscriptions {
                        // Transient: a stage outlives the first of its producers to finish, and
                        // finishes after the last (see `stage.rs`); a failure still stops it.
                        let mut subscribe =
                            SubscribeOptions::new().max_demand(max_demand).cancel(CancelMode::Transient);
                        if let Some(partition) = partition {
                            subscribe = subscribe.partition(partition);
                        }
                        handle.consumer().subscribe_to(&producer, subscribe).await?;
                    }
                    refs.push(handle.producer().clone());
                }
            }
        }
        Ok(refs)
    }

    /// Ends this layer: a new layer of stages, each receiving the events of one partition.
    ///
    /// Every event crosses to another stage. For an associative reduction (counts, sums),
    /// `reduce` before the partition too, so that only one partial result per key and stage
    /// crosses it (a combiner, as in `examples/src/bin/word_count.rs`): measured on a 100 MB
    /// word count, twice as fast as a partition per word.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use weir_flow::{Flow, Partition};
    ///
    /// // Two stages; each number goes to the stage of its parity.
    /// let parities: Vec<u64> = Flow::from_enumerable(0..10u64)
    ///     .partition(Partition::new().stages(2).hash(|n: &u64| Some(*n as usize)))
    ///     .reduce(|| vec![0u64], |n, acc: Vec<u64>| vec![acc[0] + n])
    ///     .collect()
    ///     .await?;
    /// let mut sums = parities;
    /// sums.sort();
    /// assert_eq!(sums, vec![20, 25]);
    /// # Ok(()) }
    /// ```
    pub fn partition<R: IntoRoute<O::Out>>(self, partition: Partition<O::Out, R>) -> Flow<O::Out> {
        let route = partition.route.into_route();
        let max_demand = MaxDemand::given_or(partition.max_demand, MaxDemand::PARTITION);
        self.partition_by(route, partition.stages.unwrap_or_else(cores), max_demand)
    }

    /// `partition` with a given route (no `Hash` bound on the events).
    pub(crate) fn partition_by(
        self,
        route: Route<O::Out>,
        stages: usize,
        max_demand: MaxDemand,
    ) -> Flow<O::Out> {
        self.close_layer(
            stages,
            max_demand,
            move |op, at| {
                let (route, n) = (route.clone(), at.next_stages);
                let dispatcher = PartitionDispatcher::new(n, move |e: O::Out| route(&e, n).map(|p| (e, p)))?;
                Ok((Mapper::new(op.clone()), Some(dispatcher)))
            },
            |refs, n| {
                (0..n)
                    .map(|j| refs.iter().map(|r| (r.clone(), Some(PartitionKey::Index(j)))).collect())
                    .collect()
            },
        )
    }

    /// Folds each stage's events into a state, starting from `init()` (Flow's `reduce`);
    /// the state's items are emitted when the input ends (see [`Reduced`] for other
    /// emissions and [`window`](Flow::window) for windows). After a `partition` by key, each
    /// key's events meet in one state.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use weir_flow::Flow;
    ///
    /// let sums: Vec<u64> = Flow::from_enumerable(1..=100u64).stages(1).reduce(|| vec![0], |x, s: Vec<u64>| vec![s[0] + x]).collect().await?;
    /// assert_eq!(sums, vec![5050]);
    /// # Ok(()) }
    /// ```
    pub fn reduce<A, I, R>(self, init: I, reducer: R) -> Reduced<T, O, A, Plain<R>>
    where
        A: Send + 'static,
        I: Fn() -> A + Send + Sync + 'static,
        R: FnMut(O::Out, A) -> A + Clone + Send + 'static,
    {
        self.window(Window::global()).reduce(init, reducer)
    }

    /// Folds each stage's events into a state and emits events while doing so (Flow's
    /// `emit_and_reduce`): `reducer` returns the events to emit now and the new state. By
    /// default the state itself is not emitted; see [`Reduced::on_trigger`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use weir_flow::Flow;
    ///
    /// // Running totals.
    /// let totals: Vec<u32> = Flow::from_enumerable([1u32, 2, 3])
    ///     .stages(1)
    ///     .emit_and_reduce(|| 0u32, |x, total| (Some(total + x), total + x))
    ///     .collect()
    ///     .await?;
    /// assert_eq!(totals, vec![1, 3, 6]);
    /// # Ok(()) }
    /// ```
    pub fn emit_and_reduce<A, I, R, E>(self, init: I, reducer: R) -> Reduced<T, O, A, Emitting<R>>
    where
        A: Send + 'static,
        I: Fn() -> A + Send + Sync + 'static,
        R: FnMut(O::Out, A) -> (E, A) + Clone + Send + 'static,
        E: IntoIterator,
    {
        self.window(Window::global()).emit_and_reduce(init, reducer)
    }

    /// Sets this layer's window (Flow's `window` option of `partition`): what follows is its
    /// reducer, run per window.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use weir_flow::{Flow, Window};
    ///
    /// let pairs: Vec<Vec<u8>> = Flow::from_enumerable(0..5u8).stages(1).window(Window::count(2)).reduce(Vec::new, |x, mut v: Vec<u8>| { v.push(x); v }).emit(weir_flow::emit::State).collect().await?;
    /// assert_eq!(pairs, vec![vec![0, 1], vec![2, 3], vec![4]]);
    /// # Ok(()) }
    /// ```
    pub fn window(self, window: Window<O::Out>) -> Windowed<T, O> {
        Windowed { flow: self, window }
    }

    /// Groups the values of `(key, value)` events by key, per stage: emits `(key, values)`
    /// when the input ends. After a `partition` by key, each key has one group.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use weir_flow::{Flow, Partition};
    ///
    /// let mut groups: Vec<(char, Vec<u32>)> = Flow::from_enumerable([('a', 1u32), ('b', 2), ('a', 3)])
    ///     .partition(Partition::new().key(|(k, _): &(char, u32)| *k))
    ///     .group_by_key()
    ///     .collect()
    ///     .await?;
    /// groups.sort();
    /// assert_eq!(groups, vec![('a', vec![1, 3]), ('b', vec![2])]);
    /// # Ok(()) }
    /// ```
    pub fn group_by_key<K, V>(self) -> Reduced<T, O, HashMap<K, Vec<V>>, GroupByKey>
    where
        O: Op<T, Out = (K, V)>,
        K: Hash + Eq + Send + 'static,
        V: Send + 'static,
    {
        self.window(Window::global()).group_by_key()
    }

    /// Groups events by `key`, per stage: emits `(key, events)` when the input ends.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use weir_flow::Flow;
    ///
    /// let mut by_parity: Vec<(bool, Vec<u8>)> =
    ///     Flow::from_enumerable(0..6u8).stages(1).group_by(|n: &u8| n % 2 == 0).collect().await?;
    /// by_parity.sort();
    /// assert_eq!(by_parity, vec![(false, vec![1, 3, 5]), (true, vec![0, 2, 4])]);
    /// # Ok(()) }
    /// ```
    pub fn group_by<K, F>(self, key: F) -> Reduced<T, O, HashMap<K, Vec<O::Out>>, GroupBy<F>>
    where
        F: FnMut(&O::Out) -> K + Clone + Send + 'static,
        K: Hash + Eq + Send + 'static,
    {
        self.window(Window::global()).group_by(key)
    }

    /// The first `n` events in the order `compare` gives, across all stages (Flow's
    /// `take_sort`): emits one sorted `Vec` when the input ends. Each stage keeps its own
    /// top `n`, then one stage merges them.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use weir_flow::Flow;
    ///
    /// let top: Vec<Vec<u32>> = Flow::from_enumerable(0..1000u32).take_sort(3, |a, b| b.cmp(a)).collect().await?;
    /// assert_eq!(top, vec![vec![999, 998, 997]]);
    /// # Ok(()) }
    /// ```
    pub fn take_sort<F>(self, n: usize, compare: F) -> Flow<Vec<O::Out>>
    where
        F: FnMut(&O::Out, &O::Out) -> Ordering + Clone + Send + 'static,
    {
        let keep = move |mut compare: F| {
            move |event, mut top: Vec<O::Out>| {
                let at = top.partition_point(|kept| compare(kept, &event) != Ordering::Greater);
                if at < n {
                    top.insert(at, event);
                    top.truncate(n);
                }
                top
            }
        };
        let last = keep(compare.clone());
        self.reduce(Vec::new, keep(compare))
            .shuffle(1)
            .reduce(|| Some(Vec::new()), {
                let mut last = last;
                move |event, top: Option<Vec<O::Out>>| top.map(|top| last(event, top))
            })
            .flow()
    }

    /// Starts the flow and returns its results as a stream; dropping the stream stops it.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use futures::StreamExt;
    /// use weir_flow::Flow;
    ///
    /// let mut results = Flow::from_enumerable(0..u64::MAX).into_stream().await?;
    /// let first = results.next().await;
    /// assert!(first.is_some());
    /// drop(results); // stops the flow, though its source is far from done
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`] for invalid options, [`Error::Stage`] if a stage cannot start.
    pub async fn into_stream(self) -> Result<FlowStream<O::Out>, Error> {
        let max_demand = self.max_demand.value;
        let (refs, running) = self.start_last_layer().await?;
        let options = SubscribeOptions::new().max_demand(max_demand).cancel(CancelMode::Transient);
        match stream_all(refs.iter().map(|r| (r, options.clone()))) {
            Ok(results) => {
                running.release_sources();
                Ok(FlowStream { results, running })
            }
            Err(error) => {
                running.stop_all();
                Err(error.into())
            }
        }
    }

    /// Starts every layer, the last one included; on an error, stops what started.
    async fn start_last_layer(self) -> Result<(Vec<ProducerRef<O::Out>>, Running), Error> {
        let Flow { upstream, op, stages, max_demand } = self;
        let running = Running::default();
        let started = Self::start_layer(upstream, stages, max_demand, running.clone(), move |_| {
            Ok((Mapper::new(op.clone()), None))
        })
        .await;
        match started {
            Ok(refs) => Ok((refs, running)),
            Err(error) => {
                running.stop_all();
                Err(error)
            }
        }
    }

    /// Feeds running consumers with the flow's results (Flow's `into_stages`): each
    /// subscribes to every stage of the last layer. Returns once they are subscribed and the
    /// flow runs; the consumers see the flow end as their producers finishing.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`] for invalid options, [`Error::Stage`] if a stage cannot start
    /// or a consumer cannot subscribe (the flow is then stopped).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use weir_core::{start_consumer, BoxError, Consumer, ConsumerOptions, Context, SubscriptionId};
    /// use weir_flow::Flow;
    ///
    /// struct Print;
    /// impl Consumer for Print {
    ///     type Event = u32;
    ///     type Message = ();
    ///     async fn handle_events(&mut self, e: Vec<u32>, _: SubscriptionId, _: &mut Context) -> Result<(), BoxError> {
    ///         println!("{e:?}");
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let printer = start_consumer(Print, ConsumerOptions::new())?;
    /// let running = Flow::from_enumerable(0..10u32).stages(1).into_stages([printer.consumer().clone()]).await?;
    /// printer.wait().await; // its only producer, the flow's last stage, finished
    /// drop(running);
    /// # Ok(()) }
    /// ```
    pub async fn into_stages(
        self,
        consumers: impl IntoIterator<Item = ConsumerRef<O::Out>>,
    ) -> Result<RunningFlow, Error> {
        let max_demand = self.max_demand.value;
        let (refs, running) = self.start_last_layer().await?;
        for consumer in consumers {
            for producer in &refs {
                if let Err(error) =
                    consumer.subscribe_to(producer, SubscribeOptions::new().max_demand(max_demand)).await
                {
                    running.stop_all();
                    return Err(error.into());
                }
            }
        }
        running.release_sources();
        Ok(RunningFlow { running })
    }

    /// Runs the flow detached, for its side effects (Flow's `start`): returns a handle to
    /// wait for it or stop it.
    ///
    /// # Errors
    ///
    /// As [`into_stream`](Flow::into_stream).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use weir_flow::Flow;
    ///
    /// let forever = Flow::from_enumerable(0..u64::MAX).start().await?;
    /// forever.stop().await;
    /// let short = Flow::from_enumerable(0..10u64).start().await?;
    /// short.wait().await?;
    /// # Ok(()) }
    /// ```
    pub async fn start(self) -> Result<FlowTask, Error> {
        let mut results = self.into_stream().await?;
        let task = tokio::spawn(async move {
            while results.next().await.is_some() {}
            results.finish()
        });
        Ok(FlowTask { task })
    }

    /// Runs the flow to the end and collects its results.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use std::collections::HashSet;
    /// use weir_flow::Flow;
    ///
    /// let set: HashSet<u8> = Flow::from_enumerable([1u8, 2, 2, 3]).collect().await?;
    /// assert_eq!(set.len(), 3);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`] for invalid options, [`Error::Failed`] if a stage failed (a
    /// user function returned an error or panicked): the flow is then stopped.
    pub async fn collect<C: Default + Extend<O::Out>>(self) -> Result<C, Error> {
        let mut results = self.into_stream().await?;
        let mut collected = C::default();
        while let Some(item) = results.next().await {
            collected.extend(Some(item));
        }
        results.finish()?;
        Ok(collected)
    }

    /// Runs the flow to the end for its side effects.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// use weir_flow::Flow;
    ///
    /// let seen = Arc::new(AtomicUsize::new(0));
    /// let counter = seen.clone();
    /// Flow::from_enumerable(0..100u32).inspect(move |_| { counter.fetch_add(1, Ordering::Relaxed); }).run().await?;
    /// assert_eq!(seen.load(Ordering::Relaxed), 100);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`collect`](Flow::collect).
    pub async fn run(self) -> Result<(), Error> {
        let mut results = self.into_stream().await?;
        while results.next().await.is_some() {}
        results.finish()
    }

    /// Like [`collect`](Flow::collect), from synchronous code: runs the flow on a runtime of
    /// its own.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_flow::Flow;
    ///
    /// let doubled: Vec<u8> = Flow::from_enumerable(0..3u8).map(|x| x * 2).stages(1).collect_blocking()?;
    /// assert_eq!(doubled, vec![0, 2, 4]);
    /// # Ok::<(), weir_flow::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`collect`](Flow::collect), and [`Error::Runtime`] if no runtime can be started.
    pub fn collect_blocking<C: Default + Extend<O::Out>>(self) -> Result<C, Error> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Runtime(e.to_string()))?;
        runtime.block_on(self.collect())
    }
}

/// A flow feeding consumers ([`Flow::into_stages`]). Dropping it stops every stage of
/// the flow.
///
/// # Examples
///
/// ```
/// # #[tokio::main]
/// # async fn main() -> Result<(), weir_flow::Error> {
/// use weir_core::{start_consumer, BoxError, Consumer, ConsumerOptions, Context, SubscriptionId};
/// use weir_flow::Flow;
///
/// # struct Sink;
/// # impl Consumer for Sink {
/// #     type Event = u64;
/// #     type Message = ();
/// #     async fn handle_events(&mut self, _: Vec<u64>, _: SubscriptionId, _: &mut Context) -> Result<(), BoxError> {
/// #         Ok(())
/// #     }
/// # }
/// // `Sink`: a `weir_core::Consumer` of `u64` that drops what it gets.
/// let sink = start_consumer(Sink, ConsumerOptions::new())?;
/// let running = Flow::from_enumerable(0..u64::MAX).into_stages([sink.consumer().clone()]).await?;
/// drop(running); // stops the endless flow: the consumer's producers end, so it ends too
/// assert!(!sink.wait().await.is_failure());
/// # Ok(()) }
/// ```
#[must_use = "dropping it stops the flow"]
pub struct RunningFlow {
    running: Running,
}

impl Drop for RunningFlow {
    fn drop(&mut self) {
        self.running.stop_all();
    }
}

/// A flow running detached ([`Flow::start`]).
///
/// # Examples
///
/// ```
/// # #[tokio::main]
/// # async fn main() -> Result<(), weir_flow::Error> {
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::sync::Arc;
/// use weir_flow::{Flow, FlowTask};
///
/// let sum = Arc::new(AtomicU32::new(0));
/// let add = sum.clone();
/// let flow = Flow::from_enumerable(1..=4u32).inspect(move |x| { add.fetch_add(*x, Ordering::Relaxed); });
/// let task: FlowTask = flow.start().await?; // runs on its own from here
/// task.wait().await?;
/// assert_eq!(sum.load(Ordering::Relaxed), 10);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct FlowTask {
    task: tokio::task::JoinHandle<Result<(), Error>>,
}

impl FlowTask {
    /// Waits until the flow ends.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use weir_flow::{Error, Flow};
    ///
    /// let fine = Flow::from_enumerable(1..=3u32).map(|x| 10 / x).start().await?;
    /// assert!(fine.wait().await.is_ok());
    /// let failing = Flow::from_enumerable(0..3u32).map(|x| 10 / x).start().await?;
    /// assert!(matches!(failing.wait().await, Err(Error::Failed(_)))); // 10 / 0 panicked
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Failed`] if a stage failed.
    pub async fn wait(self) -> Result<(), Error> {
        match self.task.await {
            Ok(result) => result,
            Err(join) => Err(Error::Runtime(join.to_string())),
        }
    }

    /// Stops the flow and every stage it started.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use std::sync::{atomic::{AtomicU64, Ordering::Relaxed}, Arc};
    /// use weir_flow::Flow;
    ///
    /// let seen = Arc::new(AtomicU64::new(0));
    /// let count = seen.clone();
    /// let endless = Flow::from_enumerable(0..u64::MAX).inspect(move |_| { count.fetch_add(1, Relaxed); });
    /// endless.start().await?.stop().await;
    /// // On the paused clock, a sleep ends only once no stage has work left.
    /// tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    /// let stopped_at = seen.load(Relaxed);
    /// tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    /// assert_eq!(seen.load(Relaxed), stopped_at);
    /// # Ok(()) }
    /// ```
    pub async fn stop(self) {
        self.task.abort();
        let _aborted = self.task.await;
    }
}

/// The results of a running flow. Dropping it stops every stage of the flow.
///
/// # Examples
///
/// ```
/// # #[tokio::main]
/// # async fn main() -> Result<(), weir_flow::Error> {
/// use futures::StreamExt;
/// use weir_flow::{Flow, FlowStream};
///
/// let results: FlowStream<u8> = Flow::from_enumerable(0..4u8).stages(1).into_stream().await?;
/// let doubled: Vec<u8> = results.map(|x| x * 2).collect().await;
/// assert_eq!(doubled, vec![0, 2, 4, 6]);
/// # Ok(()) }
/// ```
pub struct FlowStream<T> {
    results: ConsumerStream<T>,
    running: Running,
}

impl<T> FlowStream<T> {
    /// After the stream ended: whether the flow failed.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() {
    /// use futures::StreamExt;
    /// use weir_flow::Flow;
    ///
    /// let mut results = Flow::from_enumerable(0..3u8).map(|x| 10 / x).into_stream().await.unwrap();
    /// while results.next().await.is_some() {}
    /// assert!(results.finish().unwrap_err().to_string().contains("map panicked"));
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Failed`] with the reason of the stage that failed.
    pub fn finish(&self) -> Result<(), Error> {
        match self.results.failure() {
            Some(reason) => Err(Error::Failed(reason.clone())),
            None => Ok(()),
        }
    }
}

impl<T> Stream for FlowStream<T> {
    type Item = T;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<T>> {
        self.results.poll_next_unpin(cx)
    }
}

impl<T> Drop for FlowStream<T> {
    fn drop(&mut self) {
        self.running.stop_all();
    }
}
