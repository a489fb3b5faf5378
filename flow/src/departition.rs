//! `departition`: one stage that merges, per window, the final states of every partition.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::flow::Flow;
use crate::op::Op;
use crate::reduce::{FinalState, ReduceFn};
use crate::reduced::Reduced;
use crate::stage::Layer;
use crate::window::WindowId;

/// The departition stage: the merged state of each window and how many partitions gave it.
struct Departition<A, B, M, D> {
    partitions: usize,
    init: Arc<dyn Fn() -> B + Send + Sync>,
    merge: M,
    done: D,
    windows: BTreeMap<WindowId, (Option<B>, usize)>,
    _state: std::marker::PhantomData<fn(A)>,
}

impl<A, B, M, D, I> Layer<(WindowId, A)> for Departition<A, B, M, D>
where
    A: Send + 'static,
    B: Send + 'static,
    M: FnMut(A, B) -> B + Send + 'static,
    D: FnMut(B, WindowId) -> I + Send + 'static,
    I: IntoIterator,
    I::Item: Send + 'static,
{
    type Out = I::Item;

    fn chunk(&mut self, states: Vec<(WindowId, A)>) -> Vec<I::Item> {
        let mut out = Vec::new();
        for (window, state) in states {
            let (merged, reported) = self.windows.entry(window).or_insert_with(|| (Some((self.init)()), 0));
            *merged = merged.take().map(|merged| (self.merge)(state, merged));
            *reported += 1;
            if *reported == self.partitions {
                if let Some((Some(merged), _)) = self.windows.remove(&window) {
                    out.extend((self.done)(merged, window));
                }
            }
        }
        out
    }

    fn done(&mut self) -> Vec<I::Item> {
        let mut out = Vec::new();
        for (window, (merged, _)) in std::mem::take(&mut self.windows) {
            if let Some(merged) = merged {
                out.extend((self.done)(merged, window));
            }
        }
        out
    }

    fn describe(&self) -> String {
        "departition".to_string()
    }
}

impl<T: Send + 'static, O: Op<T>, A: Send + 'static, R: ReduceFn<O::Out, A, (WindowId, A)>>
    Reduced<T, O, A, R>
{
    /// Merges the states of all partitions into one stage, per window (Flow's
    /// `departition`): each partition's state at its window's final trigger is merged into
    /// `init()` with `merge(state, merged)`; once every partition gave its state for a
    /// window (or the flow ends), `done(merged, window)` gives the events to emit. Windows are
    /// emitted in order at the end; before that, as they complete.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use std::collections::HashMap;
    /// use weir_flow::{Flow, Partition};
    ///
    /// // Word counts per partition, merged into one map.
    /// let words = ["a", "b", "a", "c", "b", "a"];
    /// let counts: Vec<HashMap<&str, usize>> = Flow::from_enumerable(words)
    ///     .partition(Partition::new().stages(3).key(|w: &&str| *w))
    ///     .reduce(HashMap::new, |w, mut m: HashMap<&str, usize>| { *m.entry(w).or_default() += 1; m })
    ///     .departition(HashMap::new, |part, mut all: HashMap<&str, usize>| { all.extend(part); all }, |all, _| Some(all))
    ///     .collect()
    ///     .await?;
    /// assert_eq!(counts, vec![HashMap::from([("a", 3), ("b", 2), ("c", 1)])]);
    /// # Ok(()) }
    /// ```
    pub fn departition<B, U, I, Fi, Fm, Fd>(self, init: Fi, merge: Fm, done: Fd) -> Flow<U>
    where
        B: Send + 'static,
        U: Send + 'static,
        I: IntoIterator<Item = U>,
        Fi: Fn() -> B + Send + Sync + 'static,
        Fm: FnMut(A, B) -> B + Clone + Send + 'static,
        Fd: FnMut(B, WindowId) -> I + Clone + Send + 'static,
    {
        let partitions = self.stages();
        let init: Arc<dyn Fn() -> B + Send + Sync> = Arc::new(init);
        let states = self.emit_with(|| FinalState).stages(1);
        let max_demand = states.max_demand;
        states.close_layer(
            crate::flow::cores(),
            max_demand,
            move |_, _| {
                let departition = Departition {
                    partitions,
                    init: init.clone(),
                    merge: merge.clone(),
                    done: done.clone(),
                    windows: BTreeMap::new(),
                    _state: std::marker::PhantomData,
                };
                Ok((departition, None))
            },
            Flow::plan_all,
        )
    }
}
