//! Joins of two flows on a key: `bounded_join` (over the whole input) and `window_join`
//! (per window).
//!
//! Both flows are partitioned by key into the same stages, so equal keys meet. Each stage
//! keeps the events of both sides per key and emits a match as soon as both halves are in;
//! when the window closes, the outer modes emit the events that never matched.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;

use crate::flow::{cores, Flow, MaxDemand};
use crate::op::Op;
use crate::partition::{hash_index, Route};
use crate::reduce::{OnTrigger, ReduceFn};
use crate::window::{Trigger, Window};

/// Which events a join emits (Flow's join modes).
///
/// # Examples
///
/// ```
/// # #[tokio::main]
/// # async fn main() -> Result<(), weir_flow::Error> {
/// use weir_flow::{Flow, JoinMode};
///
/// // Left outer: every user, with their logins if any.
/// let users = Flow::from_enumerable([(1u32, "ann"), (2, "bob")]);
/// let logins = Flow::from_enumerable([(1u32, 9u32), (3, 7)]);
/// let mut rows: Vec<(Option<&str>, Option<u32>)> = Flow::bounded_join(
///     JoinMode::LeftOuter, users, logins, |u: &(u32, &str)| u.0, |l: &(u32, u32)| l.0,
///     |u, l| (u.map(|u| u.1), l.map(|l| l.1)),
/// ).collect().await?;
/// rows.sort(); // login 3 has no user: a left outer join drops it
/// assert_eq!(rows, vec![(Some("ann"), Some(9)), (Some("bob"), None)]);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JoinMode {
    /// Only matches.
    Inner,
    /// Matches, and left events without a match (with `None` on the right).
    LeftOuter,
    /// Matches, and right events without a match (with `None` on the left).
    RightOuter,
    /// Matches, and the events of either side without a match.
    FullOuter,
}

/// An event of one side of a join, as the join's window sees it.
///
/// # Examples
///
/// ```
/// # #[tokio::main]
/// # async fn main() -> Result<(), weir_flow::Error> {
/// use std::time::Duration;
/// use weir_flow::{Flow, JoinMode, Side, Window};
///
/// // (key, time in ms): the window reads the time of either side's events.
/// let time = |side: &Side<(u8, u64), (u8, u64)>| match side { Side::Left(e) | Side::Right(e) => e.1 };
/// let window = Window::fixed(Duration::from_secs(1), time).allowed_lateness(Duration::from_secs(60));
/// let (left, right) = (Flow::from_enumerable([(1u8, 100u64)]), Flow::from_enumerable([(1u8, 1500u64)]));
/// let key = |e: &(u8, u64)| e.0;
/// let times = |l: Option<&(u8, u64)>, r: Option<&(u8, u64)>| (l.map(|l| l.1), r.map(|r| r.1));
/// let mut rows: Vec<_> = Flow::window_join(JoinMode::FullOuter, left, right, window, key, key, times).collect().await?;
/// rows.sort(); // different seconds: no match, so each comes alone
/// assert_eq!(rows, vec![(None, Some(1500)), (Some(100), None)]);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Side<L, R> {
    /// From the left flow.
    Left(L),
    /// From the right flow.
    Right(R),
}

/// One key's events in a window, each with whether it matched.
struct Entry<L, R> {
    lefts: Vec<(L, bool)>,
    rights: Vec<(R, bool)>,
}

impl<L, R> Default for Entry<L, R> {
    fn default() -> Self {
        Entry { lefts: Vec::new(), rights: Vec::new() }
    }
}

/// A window's join state.
pub(crate) struct JoinState<K, L, R>(HashMap<K, Entry<L, R>>);

/// Folds an event into the join state, emitting its matches: the join's reducer.
pub(crate) struct JoinReduce<FL, FR, J> {
    left_key: FL,
    right_key: FR,
    join: J,
}

impl<FL: Clone, FR: Clone, J: Clone> Clone for JoinReduce<FL, FR, J> {
    fn clone(&self) -> Self {
        JoinReduce {
            left_key: self.left_key.clone(),
            right_key: self.right_key.clone(),
            join: self.join.clone(),
        }
    }
}

impl<L, R, K, U, FL, FR, J> ReduceFn<Side<L, R>, JoinState<K, L, R>, U> for JoinReduce<FL, FR, J>
where
    K: Hash + Eq,
    FL: Fn(&L) -> K + Clone + Send + 'static,
    FR: Fn(&R) -> K + Clone + Send + 'static,
    J: FnMut(Option<&L>, Option<&R>) -> U + Clone + Send + 'static,
{
    fn reduce(
        &mut self,
        side: Side<L, R>,
        mut state: JoinState<K, L, R>,
        out: &mut Vec<U>,
    ) -> JoinState<K, L, R> {
        match side {
            Side::Left(l) => {
                let entry = state.0.entry((self.left_key)(&l)).or_default();
                for (r, matched) in &mut entry.rights {
                    out.push((self.join)(Some(&l), Some(r)));
                    *matched = true;
                }
                let matched = !entry.rights.is_empty();
                entry.lefts.push((l, matched));
            }
            Side::Right(r) => {
                let entry = state.0.entry((self.right_key)(&r)).or_default();
                for (l, matched) in &mut entry.lefts {
                    out.push((self.join)(Some(l), Some(&r)));
                    *matched = true;
                }
                let matched = !entry.lefts.is_empty();
                entry.rights.push((r, matched));
            }
        }
        state
    }
}

/// On a window's final trigger, emits the unmatched events the mode asks for.
struct Unmatched<J> {
    mode: JoinMode,
    join: J,
}

impl<K, L, R, U, J> OnTrigger<JoinState<K, L, R>, U> for Unmatched<J>
where
    J: FnMut(Option<&L>, Option<&R>) -> U + Send,
{
    fn trigger(
        &mut self,
        state: JoinState<K, L, R>,
        trigger: &Trigger,
        out: &mut Vec<U>,
    ) -> Option<JoinState<K, L, R>> {
        if !trigger.is_done() {
            return Some(state);
        }
        let (lefts, rights) = match self.mode {
            JoinMode::Inner => return None,
            JoinMode::LeftOuter => (true, false),
            JoinMode::RightOuter => (false, true),
            JoinMode::FullOuter => (true, true),
        };
        for entry in state.0.into_values() {
            if lefts {
                entry
                    .lefts
                    .iter()
                    .filter(|(_, m)| !m)
                    .for_each(|(l, _)| out.push((self.join)(Some(l), None)));
            }
            if rights {
                entry
                    .rights
                    .iter()
                    .filter(|(_, m)| !m)
                    .for_each(|(r, _)| out.push((self.join)(None, Some(r))));
            }
        }
        None
    }
}

impl<U: Send + 'static> Flow<U> {
    /// Joins two flows on a key over their whole input (Flow's `bounded_join`): `join` is
    /// called with both events of each match (`Some`, `Some`) as soon as both are in, and,
    /// once the input ends, with the events the `mode` keeps that never matched (`None` on
    /// the other side). Both inputs are kept in memory until the end, so they must be
    /// bounded. The join runs in one stage per core.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use weir_flow::{Flow, JoinMode};
    ///
    /// let customers = Flow::from_enumerable([(1u32, "ann"), (2, "bob")]);
    /// let orders = Flow::from_enumerable([(1u32, 10u32), (1, 20), (3, 5)]);
    /// let mut rows: Vec<(Option<&str>, Option<u32>)> = Flow::bounded_join(
    ///     JoinMode::FullOuter,
    ///     customers,
    ///     orders,
    ///     |(id, _): &(u32, &str)| *id,
    ///     |(id, _): &(u32, u32)| *id,
    ///     |c, o| (c.map(|c| c.1), o.map(|o| o.1)),
    /// )
    /// .collect()
    /// .await?;
    /// rows.sort();
    /// assert_eq!(rows, vec![(None, Some(5)), (Some("ann"), Some(10)), (Some("ann"), Some(20)), (Some("bob"), None)]);
    /// # Ok(()) }
    /// ```
    pub fn bounded_join<TL, OL, TR, OR, K, FL, FR, J>(
        mode: JoinMode,
        left: Flow<TL, OL>,
        right: Flow<TR, OR>,
        left_key: FL,
        right_key: FR,
        join: J,
    ) -> Flow<U>
    where
        TL: Send + 'static,
        TR: Send + 'static,
        OL: Op<TL>,
        OR: Op<TR>,
        K: Hash + Eq + Send + 'static,
        FL: Fn(&OL::Out) -> K + Clone + Send + Sync + 'static,
        FR: Fn(&OR::Out) -> K + Clone + Send + Sync + 'static,
        J: FnMut(Option<&OL::Out>, Option<&OR::Out>) -> U + Clone + Send + Sync + 'static,
    {
        Self::window_join(mode, left, right, Window::global(), left_key, right_key, join)
    }

    /// Joins two flows on a key, per window (Flow's `window_join`): as
    /// [`bounded_join`](Flow::bounded_join), but events only match within one window
    /// (e.g. [`Window::fixed`] over both sides' event times), and the unmatched events
    /// are emitted when their window closes.
    ///
    /// The two sides reach the join's stages interleaved in no set order, and a fixed
    /// window's watermark is the latest event time a stage has seen, from either side: give
    /// the window an [`allowed_lateness`](Window::allowed_lateness) that covers how far the
    /// sides may drift apart, or a late side's events are dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), weir_flow::Error> {
    /// use std::time::Duration;
    /// use weir_flow::{Flow, JoinMode, Side, Window};
    ///
    /// // (key, time in ms): only events of the same second match.
    /// let clicks = Flow::from_enumerable([("a", 100u64), ("a", 1500)]);
    /// let views = Flow::from_enumerable([("a", 900u64)]);
    /// let window = Window::fixed(Duration::from_secs(1), |side: &Side<(&str, u64), (&str, u64)>| match side {
    ///     Side::Left((_, t)) | Side::Right((_, t)) => *t,
    /// })
    /// .allowed_lateness(Duration::from_secs(60));
    /// let matches: Vec<(u64, u64)> = Flow::window_join(
    ///     JoinMode::Inner,
    ///     clicks,
    ///     views,
    ///     window,
    ///     |(k, _): &(&str, u64)| *k,
    ///     |(k, _): &(&str, u64)| *k,
    ///     |c, v| (c.map_or(0, |c| c.1), v.map_or(0, |v| v.1)),
    /// )
    /// .collect()
    /// .await?;
    /// assert_eq!(matches, vec![(100, 900)]);
    /// # Ok(()) }
    /// ```
    #[allow(clippy::too_many_arguments)]
    pub fn window_join<TL, OL, TR, OR, K, FL, FR, J>(
        mode: JoinMode,
        left: Flow<TL, OL>,
        right: Flow<TR, OR>,
        window: Window<Side<OL::Out, OR::Out>>,
        left_key: FL,
        right_key: FR,
        join: J,
    ) -> Flow<U>
    where
        TL: Send + 'static,
        TR: Send + 'static,
        OL: Op<TL>,
        OR: Op<TR>,
        K: Hash + Eq + Send + 'static,
        FL: Fn(&OL::Out) -> K + Clone + Send + Sync + 'static,
        FR: Fn(&OR::Out) -> K + Clone + Send + Sync + 'static,
        J: FnMut(Option<&OL::Out>, Option<&OR::Out>) -> U + Clone + Send + Sync + 'static,
    {
        let stages = cores();
        let route: Route<Side<OL::Out, OR::Out>> = {
            let (left_key, right_key) = (left_key.clone(), right_key.clone());
            Arc::new(move |side: &Side<OL::Out, OR::Out>, n: usize| {
                Some(match side {
                    Side::Left(l) => hash_index(&left_key(l), n),
                    Side::Right(r) => hash_index(&right_key(r), n),
                })
            })
        };
        // A chosen max_demand of the left side applies to the partitions; else theirs.
        let max_demand = if left.max_demand.given { left.max_demand } else { MaxDemand::PARTITION };
        let left = left.map(Side::Left).partition_by(route.clone(), stages, max_demand);
        let right = right.map(Side::Right).partition_by(route, stages, max_demand);
        let reducer = JoinReduce { left_key, right_key, join: join.clone() };
        Flow::merge([left, right])
            .stages(stages)
            .window(window)
            .with(|| JoinState(HashMap::new()), reducer, "join")
            .emit_with(move || Unmatched { mode, join: join.clone() })
    }
}
