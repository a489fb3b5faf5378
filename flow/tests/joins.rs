//! `bounded_join` and `window_join` against sequential joins of the same inputs.
//!
//! Every event carries a unique id, so the results compare as sorted multisets of
//! `(left, right)` rows whatever the order the join's stages emit them in.

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use proptest::prelude::*;
use weir_flow::{Flow, JoinMode, Side, Window};

/// `(key, id)`: ids are unique per side.
type Event = (u8, u32);
type Row = (Option<Event>, Option<Event>);

const MODES: [JoinMode; 4] =
    [JoinMode::Inner, JoinMode::LeftOuter, JoinMode::RightOuter, JoinMode::FullOuter];

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort_unstable();
    v
}

/// Gives each key a unique id: its index in the input.
fn with_ids(keys: &[u8]) -> Vec<Event> {
    keys.iter().zip(0u32..).map(|(&k, id)| (k, id)).collect()
}

/// The sequential join: a nested loop for the matches, then the unmatched rows the mode
/// keeps. `same_group` says whether two events may match at all (same key, and for windowed
/// joins the same window).
fn sequential_join(
    mode: JoinMode,
    left: &[Event],
    right: &[Event],
    same_group: impl Fn(&Event, &Event) -> bool,
) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut right_matched = vec![false; right.len()];
    for l in left {
        let mut matched = false;
        for (r, r_matched) in right.iter().zip(&mut right_matched) {
            if same_group(l, r) {
                rows.push((Some(*l), Some(*r)));
                matched = true;
                *r_matched = true;
            }
        }
        if !matched && matches!(mode, JoinMode::LeftOuter | JoinMode::FullOuter) {
            rows.push((Some(*l), None));
        }
    }
    if matches!(mode, JoinMode::RightOuter | JoinMode::FullOuter) {
        for (r, matched) in right.iter().zip(right_matched) {
            if !matched {
                rows.push((None, Some(*r)));
            }
        }
    }
    sorted(rows)
}

fn row(l: Option<&Event>, r: Option<&Event>) -> Row {
    (l.copied(), r.copied())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Keys from a small range, so there are matches, unmatched events on both sides and
    /// duplicate keys (many-to-many matches); sources of several stages and small demands,
    /// so the two sides reach the join interleaved in chunks.
    #[test]
    fn bounded_join_matches_a_sequential_join_in_every_mode(
        left_keys in proptest::collection::vec(0u8..8, 0..60),
        right_keys in proptest::collection::vec(0u8..8, 0..60),
        left_stages in 1usize..4,
        right_stages in 1usize..4,
        max_demand in 1usize..20,
    ) {
        let (left, right) = (with_ids(&left_keys), with_ids(&right_keys));
        for mode in MODES {
            let got: Vec<Row> = Flow::bounded_join(
                mode,
                Flow::from_enumerable(left.clone()).stages(left_stages).max_demand(max_demand),
                Flow::from_enumerable(right.clone()).stages(right_stages).max_demand(max_demand),
                |(k, _): &Event| *k,
                |(k, _): &Event| *k,
                row,
            )
            .collect_blocking()
            .expect("bounded_join runs");
            let expected = sequential_join(mode, &left, &right, |l, r| l.0 == r.0);
            prop_assert_eq!(sorted(got), expected, "mode {:?}", mode);
        }
    }

    /// Fixed windows of 1 s over `(key, time)` events, each side in time order. The sides
    /// reach a stage interleaved in no set order, so the allowed lateness covers the whole
    /// time range: nothing is dropped, and events match exactly when they share key and second.
    #[test]
    fn window_join_with_fixed_windows_matches_within_a_window_only(
        left_events in proptest::collection::vec((0u8..4, 0u64..5_000), 0..40),
        right_events in proptest::collection::vec((0u8..4, 0u64..5_000), 0..40),
        mode_index in 0usize..4,
        max_demand in 1usize..10,
    ) {
        let mode = MODES[mode_index];
        // (key, id) events, with their times on the side; ids in time order.
        let timed = |mut events: Vec<(u8, u64)>| {
            events.sort_by_key(|&(_, t)| t);
            let times: HashMap<u32, u64> = (0u32..).zip(events.iter().map(|&(_, t)| t)).collect();
            let keyed: Vec<Event> = events.iter().zip(0u32..).map(|(&(k, _), id)| (k, id)).collect();
            (keyed, times)
        };
        let (left, left_times) = timed(left_events);
        let (right, right_times) = timed(right_events);
        let second = |t: u64| t / 1000;
        let expected = sequential_join(mode, &left, &right, |l, r| {
            l.0 == r.0 && second(left_times[&l.1]) == second(right_times[&r.1])
        });

        // The flows carry (key, id, time); rows drop the time.
        let with_time = |events: &[Event], times: &HashMap<u32, u64>| -> Vec<(u8, u32, u64)> {
            events.iter().map(|&(k, id)| (k, id, times[&id])).collect()
        };
        type Timed = (u8, u32, u64);
        let window = Window::fixed(Duration::from_secs(1), |side: &Side<Timed, Timed>| match side {
            Side::Left((_, _, t)) | Side::Right((_, _, t)) => *t,
        })
        .allowed_lateness(Duration::from_secs(3600));
        let got: Vec<Row> = Flow::window_join(
            mode,
            Flow::from_enumerable(with_time(&left, &left_times)).max_demand(max_demand),
            Flow::from_enumerable(with_time(&right, &right_times)).max_demand(max_demand),
            window,
            |(k, _, _): &Timed| *k,
            |(k, _, _): &Timed| *k,
            |l: Option<&Timed>, r: Option<&Timed>| (l.map(|&(k, id, _)| (k, id)), r.map(|&(k, id, _)| (k, id))),
        )
        .collect_blocking()
        .expect("window_join runs");
        prop_assert_eq!(sorted(got), expected, "mode {:?}", mode);
    }

    /// Count windows hold `n` events of a stage, whichever side they come from, so which
    /// events share a window depends on the interleaving; what does not: with windows of 2,
    /// every event is in at most one match (its window has one other event), and a full
    /// outer join emits every event exactly once, matched or not.
    #[test]
    fn window_join_with_count_windows_matches_within_a_window_only(
        left_keys in proptest::collection::vec(0u8..3, 0..40),
        right_keys in proptest::collection::vec(0u8..3, 0..40),
        max_demand in 1usize..10,
    ) {
        let (left, right) = (with_ids(&left_keys), with_ids(&right_keys));
        let join = |window: usize, mode: JoinMode| -> Vec<Row> {
            Flow::window_join(
                mode,
                Flow::from_enumerable(left.clone()).max_demand(max_demand),
                Flow::from_enumerable(right.clone()).max_demand(max_demand),
                Window::count(window),
                |(k, _): &Event| *k,
                |(k, _): &Event| *k,
                row,
            )
            .collect_blocking()
            .expect("window_join runs")
        };

        // Windows of one event: nothing ever matches.
        prop_assert_eq!(join(1, JoinMode::Inner), Vec::<Row>::new());
        let alone: Vec<Row> = left.iter().map(|l| (Some(*l), None))
            .chain(right.iter().map(|r| (None, Some(*r))))
            .collect();
        prop_assert_eq!(sorted(join(1, JoinMode::FullOuter)), sorted(alone));

        // Windows of two events: each event once, matches only of equal keys.
        let rows = join(2, JoinMode::FullOuter);
        for (l, r) in &rows {
            if let (Some(l), Some(r)) = (l, r) {
                prop_assert_eq!(l.0, r.0, "a match of different keys: {:?}", (l, r));
            }
        }
        let lefts = sorted(rows.iter().filter_map(|(l, _)| *l).collect());
        let rights = sorted(rows.iter().filter_map(|(_, r)| *r).collect());
        prop_assert_eq!(lefts, sorted(left.clone()));
        prop_assert_eq!(rights, sorted(right.clone()));
    }
}

/// The example of the docs, with the sides' roles swapped and the later side first in
/// each: with enough lateness, an event of a window before the first one a stage opened
/// is not dropped.
#[test]
fn window_join_keeps_early_events_of_a_side_that_lags_within_the_lateness() {
    type Timed = (&'static str, u64);
    let window = Window::fixed(Duration::from_secs(1), |side: &Side<Timed, Timed>| match side {
        Side::Left((_, t)) | Side::Right((_, t)) => *t,
    })
    .allowed_lateness(Duration::from_secs(60));
    // The right side (all in second 3) is read alone first; then the left side, from second 0.
    let right = Flow::from_enumerable([("a", 3_100u64), ("a", 3_200)]);
    let left =
        Flow::from_stream(futures::stream::iter([("a", 100u64), ("a", 3_500)]).then(|event| async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            event
        }));
    let got: Vec<(Option<u64>, Option<u64>)> = Flow::window_join(
        JoinMode::FullOuter,
        left,
        right,
        window,
        |(k, _): &Timed| *k,
        |(k, _): &Timed| *k,
        |l: Option<&Timed>, r: Option<&Timed>| (l.map(|l| l.1), r.map(|r| r.1)),
    )
    .collect_blocking()
    .expect("window_join runs");
    assert_eq!(
        sorted(got),
        vec![(Some(100), None), (Some(3_500), Some(3_100)), (Some(3_500), Some(3_200))],
        "the left event of second 0 is within the lateness, so not dropped"
    );
}
