//! Windows and triggers: exact results for small, hand-checked inputs (time-based ones on
//! tokio's paused clock), and property tests against plain sequential code.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use futures::{Stream, StreamExt};
use proptest::prelude::*;
use weir_flow::{emit, Error, Flow, Partition, Reason, Trigger, Window, WindowId};

const SECOND: Duration = Duration::from_secs(1);

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

fn push(x: u32, mut v: Vec<u32>) -> Vec<u32> {
    v.push(x);
    v
}

/// A stream yielding each `(at, event)` `at` milliseconds after it is first polled (times
/// ascending), sleeping in between: on the paused clock, time jumps to each event.
fn at_times<T: Send + 'static>(events: Vec<(u64, T)>) -> impl Stream<Item = T> + Send + 'static {
    let mut previous = 0;
    let steps: Vec<(u64, T)> = events
        .into_iter()
        .map(|(at, x)| {
            let delay = at - previous;
            previous = at;
            (delay, x)
        })
        .collect();
    futures::stream::iter(steps).then(|(delay, x)| async move {
        tokio::time::sleep(Duration::from_millis(delay)).await;
        x
    })
}

fn fixed(start: u64, end: u64) -> WindowId {
    WindowId::Fixed { start, end }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().expect("runtime")
}

// ---------------------------------------------------------------------------------------
// Periodic windows and periodic triggers (paused clock).

/// Events at 100, 200, 1300 and 3500 ms; the period from 2000 to 3000 ms has none.
fn four_events() -> Vec<(u64, u32)> {
    vec![(100, 1), (200, 2), (1300, 4), (3500, 8)]
}

#[tokio::test(start_paused = true)]
async fn periodic_windows_put_each_event_in_its_period_and_report_empty_ones() -> Result<(), Error> {
    let start = tokio::time::Instant::now();
    let got: Vec<(u128, usize, usize, WindowId, Reason, Vec<u32>)> =
        Flow::from_stream(at_times(four_events()))
            .stages(1)
            .window(Window::periodic(SECOND))
            .reduce(Vec::new, push)
            .on_trigger(move |v: Vec<u32>, t: &Trigger| {
                let row = (
                    start.elapsed().as_millis(),
                    t.partition,
                    t.partitions,
                    t.window,
                    t.reason.clone(),
                    v.clone(),
                );
                (vec![row], v)
            })
            .collect()
            .await?;
    assert_eq!(
        got,
        vec![
            (1000, 0, 1, WindowId::Periodic(0), Reason::Done, vec![1, 2]),
            (2000, 0, 1, WindowId::Periodic(1), Reason::Done, vec![4]),
            (3000, 0, 1, WindowId::Periodic(2), Reason::Done, vec![]),
            // The last period closes when the flow ends, right after its event.
            (3500, 0, 1, WindowId::Periodic(3), Reason::Done, vec![8]),
        ]
    );
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn periodic_windows_emit_their_state_with_the_emit_modes() -> Result<(), Error> {
    let states: Vec<Vec<u32>> = Flow::from_stream(at_times(four_events()))
        .stages(1)
        .window(Window::periodic(SECOND))
        .reduce(Vec::new, push)
        .emit(emit::State)
        .collect()
        .await?;
    assert_eq!(states, vec![vec![1, 2], vec![4], vec![], vec![8]]);

    // The default of `reduce` emits the state's items: the count of each period.
    let counts: Vec<usize> = Flow::from_stream(at_times(four_events()))
        .stages(1)
        .window(Window::periodic(SECOND))
        .reduce(|| vec![0usize], |_, n: Vec<usize>| vec![n[0] + 1])
        .collect()
        .await?;
    assert_eq!(counts, vec![2, 1, 0, 1]);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn trigger_periodically_fires_each_period_and_keeps_what_on_trigger_returns() -> Result<(), Error> {
    let start = tokio::time::Instant::now();
    let got: Vec<(u128, WindowId, Reason, u32)> = Flow::from_stream(at_times(four_events()))
        .stages(1)
        .window(Window::global().trigger_periodically(SECOND))
        .reduce(|| 0u32, |x, sum| sum + x)
        .on_trigger(move |sum, t| (vec![(start.elapsed().as_millis(), t.window, t.reason.clone(), sum)], sum))
        .collect()
        .await?;
    let every = Reason::Periodically(SECOND);
    assert_eq!(
        got,
        vec![
            (1000, WindowId::Global, every.clone(), 3),
            (2000, WindowId::Global, every.clone(), 7),
            (3000, WindowId::Global, every, 7),
            (3500, WindowId::Global, Reason::Done, 15),
        ]
    );
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn trigger_periodically_with_emit_state_restarts_from_init() -> Result<(), Error> {
    let sums: Vec<u32> = Flow::from_stream(at_times(four_events()))
        .stages(1)
        .window(Window::global().trigger_periodically(SECOND))
        .reduce(|| 0u32, |x, sum| sum + x)
        .emit(emit::State)
        .collect()
        .await?;
    // Each emission covers the events since the previous one: 1+2, 4, nothing, 8.
    assert_eq!(sums, vec![3, 4, 0, 8]);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Count windows.

#[tokio::test]
async fn count_windows_split_exactly_inside_chunks_and_close_a_partial_last_window() -> Result<(), Error> {
    let chunks = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = chunks.clone();
    // From a stream, the layer subscribes to a producer and gets chunks of its demand (an
    // iterator source would be pulled 4096 events at a time by a reducing layer).
    let got: Vec<(WindowId, Reason, Vec<u32>)> = Flow::from_stream(futures::stream::iter(1..=8u32))
        .stages(1)
        .max_demand(4)
        .map_batch(move |chunk: Vec<u32>| {
            seen.lock().expect("lock").push(chunk.len());
            chunk
        })
        .window(Window::count(3))
        .reduce(Vec::new, push)
        .on_trigger(|v: Vec<u32>, t| (vec![(t.window, t.reason.clone(), v.clone())], v))
        .collect()
        .await?;
    assert_eq!(
        got,
        vec![
            (WindowId::Count(0), Reason::Done, vec![1, 2, 3]),
            (WindowId::Count(1), Reason::Done, vec![4, 5, 6]),
            (WindowId::Count(2), Reason::Done, vec![7, 8]),
        ]
    );
    let chunks = chunks.lock().expect("lock").clone();
    assert_eq!(chunks.iter().sum::<usize>(), 8);
    assert!(chunks.iter().all(|n| *n <= 2), "chunks of at most half of max_demand: {chunks:?}");

    // The default emission gives the state's items, window after window.
    let sums: Vec<u32> = Flow::from_enumerable(1..=8u32)
        .stages(1)
        .max_demand(4)
        .window(Window::count(3))
        .reduce(|| vec![0u32], |x, acc: Vec<u32>| vec![acc[0] + x])
        .collect()
        .await?;
    assert_eq!(sums, vec![6, 15, 15]);
    Ok(())
}

#[tokio::test]
async fn count_windows_with_an_exact_multiple_have_no_empty_last_window() -> Result<(), Error> {
    let got: Vec<Vec<u32>> = Flow::from_enumerable(1..=6u32)
        .stages(1)
        .max_demand(4)
        .window(Window::count(3))
        .reduce(Vec::new, push)
        .emit(emit::State)
        .collect()
        .await?;
    assert_eq!(got, vec![vec![1, 2, 3], vec![4, 5, 6]]);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// trigger_every.

#[tokio::test]
async fn trigger_every_fires_at_the_nth_event_inside_a_chunk_and_on_trigger_keeps_the_state(
) -> Result<(), Error> {
    let got: Vec<(WindowId, Reason, u32)> = Flow::from_enumerable(1..=8u32)
        .stages(1)
        .max_demand(4)
        .window(Window::global().trigger_every(3))
        .reduce(|| 0u32, |x, sum| sum + x)
        .on_trigger(|sum, t| (vec![(t.window, t.reason.clone(), sum)], sum))
        .collect()
        .await?;
    assert_eq!(
        got,
        vec![
            (WindowId::Global, Reason::Every(3), 6),
            (WindowId::Global, Reason::Every(3), 21),
            (WindowId::Global, Reason::Done, 36),
        ]
    );
    Ok(())
}

#[tokio::test]
async fn trigger_every_with_emit_modes_restarts_the_state_from_init() -> Result<(), Error> {
    let window = || Window::global().trigger_every(3);
    let states: Vec<Vec<u32>> = Flow::from_enumerable(1..=8u32)
        .stages(1)
        .max_demand(4)
        .window(window())
        .reduce(Vec::new, push)
        .emit(emit::State)
        .collect()
        .await?;
    assert_eq!(states, vec![vec![1, 2, 3], vec![4, 5, 6], vec![7, 8]]);

    // Kept states would emit 1, 2, 3 again at the next trigger.
    let events: Vec<u32> = Flow::from_enumerable(1..=8u32)
        .stages(1)
        .max_demand(4)
        .window(window())
        .reduce(Vec::new, push)
        .emit(emit::Events)
        .collect()
        .await?;
    assert_eq!(events, (1..=8).collect::<Vec<_>>());
    Ok(())
}

#[tokio::test]
async fn trigger_every_with_emit_nothing_restarts_the_state_too() -> Result<(), Error> {
    // The state is only seen by the reducer, which writes it elsewhere.
    let written = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = written.clone();
    let emitted: Vec<()> = Flow::from_enumerable(1..=8u32)
        .stages(1)
        .max_demand(4)
        .window(Window::global().trigger_every(3))
        .reduce(Vec::new, move |x, v: Vec<u32>| {
            let v = push(x, v);
            sink.lock().expect("lock").push(v.clone());
            v
        })
        .emit(emit::Nothing)
        .collect()
        .await?;
    assert!(emitted.is_empty());
    let written = written.lock().expect("lock").clone();
    assert_eq!(
        written,
        vec![vec![1], vec![1, 2], vec![1, 2, 3], vec![4], vec![4, 5], vec![4, 5, 6], vec![7], vec![7, 8]]
    );
    Ok(())
}

#[tokio::test]
async fn trigger_every_counts_per_count_window() -> Result<(), Error> {
    let got: Vec<(WindowId, Reason, u32)> = Flow::from_enumerable(1..=12u32)
        .stages(1)
        .max_demand(6)
        .window(Window::count(5).trigger_every(2))
        .reduce(|| 0u32, |x, sum| sum + x)
        .on_trigger(|sum, t| (vec![(t.window, t.reason.clone(), sum)], sum))
        .collect()
        .await?;
    let (w0, w1, w2) = (WindowId::Count(0), WindowId::Count(1), WindowId::Count(2));
    assert_eq!(
        got,
        vec![
            (w0, Reason::Every(2), 3),
            (w0, Reason::Every(2), 10),
            (w0, Reason::Done, 15),
            (w1, Reason::Every(2), 13),
            (w1, Reason::Every(2), 30),
            (w1, Reason::Done, 40),
            (w2, Reason::Every(2), 23),
            (w2, Reason::Done, 23),
        ]
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Custom triggers.

#[tokio::test]
async fn a_custom_trigger_fires_at_the_index_it_returns() -> Result<(), Error> {
    // Fires after every 4th event; its own state counts the events it let in, across chunks
    // of 3.
    let window = Window::global().trigger(
        "every4",
        || 0usize,
        |events: &[u32], seen: &mut usize| {
            let wanted = 4 - *seen % 4;
            if events.len() >= wanted {
                *seen += wanted;
                Some(wanted)
            } else {
                *seen += events.len();
                None
            }
        },
    );
    let got: Vec<(WindowId, Reason, Vec<u32>)> = Flow::from_enumerable(1..=10u32)
        .stages(1)
        .max_demand(6)
        .window(window)
        .reduce(Vec::new, push)
        .on_trigger(|v: Vec<u32>, t| (vec![(t.window, t.reason.clone(), v)], Vec::new()))
        .collect()
        .await?;
    let custom = Reason::Custom("every4".to_string());
    assert_eq!(
        got,
        vec![
            (WindowId::Global, custom.clone(), vec![1, 2, 3, 4]),
            (WindowId::Global, custom, vec![5, 6, 7, 8]),
            (WindowId::Global, Reason::Done, vec![9, 10]),
        ]
    );
    Ok(())
}

#[tokio::test]
async fn a_custom_trigger_at_a_marker_with_emit_state() -> Result<(), Error> {
    let window = Window::global().trigger(
        "flush",
        || (),
        |events: &[u32], _: &mut ()| events.iter().position(|x| *x == 0).map(|at| at + 1),
    );
    let got: Vec<Vec<u32>> = Flow::from_enumerable([1u32, 2, 0, 5, 0, 0, 7])
        .stages(1)
        .max_demand(4)
        .window(window)
        .reduce(Vec::new, push)
        .emit(emit::State)
        .collect()
        .await?;
    assert_eq!(got, vec![vec![1, 2, 0], vec![5, 0], vec![0], vec![7]]);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Fixed (event-time) windows.

/// `(time in ms, amount)`.
type Timed = (u64, u32);

/// `(time in ms, key, amount)`.
type Keyed = (u64, u8, u32);

fn by_time() -> impl Fn(&Timed) -> u64 + Send + Sync + 'static {
    |(time, _): &Timed| *time
}

/// Runs `events` in one stage through `window`, summing amounts, and returns every trigger
/// as (window, reason, sum so far).
async fn fixed_triggers(
    events: Vec<Timed>,
    max_demand: usize,
    window: Window<Timed>,
) -> Result<Vec<(WindowId, Reason, u32)>, Error> {
    Flow::from_enumerable(events)
        .stages(1)
        .max_demand(max_demand)
        .window(window)
        .reduce(|| 0u32, |(_, amount), total| total + amount)
        .on_trigger(|total, t| (vec![(t.window, t.reason.clone(), total)], total))
        .collect()
        .await
}

#[tokio::test]
async fn fixed_windows_report_each_window_the_empty_ones_between_and_drop_late_events() -> Result<(), Error> {
    // 1000 is the first millisecond of the second window and closes the first; 1100 comes
    // after its window closed.
    let events: Vec<Timed> = vec![(100, 1), (900, 2), (1000, 4), (3200, 8), (1100, 16), (3300, 32)];
    let got = fixed_triggers(events, 4, Window::fixed(SECOND, by_time())).await?;
    assert_eq!(
        got,
        vec![
            (fixed(0, 1000), Reason::Done, 3),
            (fixed(1000, 2000), Reason::Done, 4),
            (fixed(2000, 3000), Reason::Done, 0),
            (fixed(3000, 4000), Reason::Done, 40),
        ]
    );
    Ok(())
}

/// With 500 ms of lateness: 900 is late but within it; 1400 must not fire a second
/// watermark; 1600 closes the first window; 950 is then too late.
fn late_events() -> Vec<Timed> {
    vec![(100, 1), (1200, 2), (900, 4), (1400, 64), (1600, 8), (950, 16), (2100, 32)]
}

#[tokio::test]
async fn allowed_lateness_counts_late_events_with_one_watermark_trigger_before_done() -> Result<(), Error> {
    let window = Window::fixed(SECOND, by_time()).allowed_lateness(Duration::from_millis(500));
    let got = fixed_triggers(late_events(), 4, window).await?;
    assert_eq!(
        got,
        vec![
            (fixed(0, 1000), Reason::Watermark, 1),
            (fixed(0, 1000), Reason::Done, 5),
            (fixed(1000, 2000), Reason::Watermark, 74),
            (fixed(1000, 2000), Reason::Done, 74),
            (fixed(2000, 3000), Reason::Done, 32),
        ]
    );
    Ok(())
}

#[tokio::test]
async fn allowed_lateness_with_emit_state_restarts_after_the_watermark() -> Result<(), Error> {
    let window = Window::fixed(SECOND, by_time()).allowed_lateness(Duration::from_millis(500));
    let got: Vec<u32> = Flow::from_enumerable(late_events())
        .stages(1)
        .window(window)
        .reduce(|| 0u32, |(_, amount), total| total + amount)
        .emit(emit::State)
        .collect()
        .await?;
    // Window 0: 1 at the watermark, then the late 4. Window 1: 2 + 64 + 8, then nothing.
    assert_eq!(got, vec![1, 4, 74, 0, 32]);
    Ok(())
}

#[tokio::test]
async fn a_jump_past_a_window_and_its_lateness_fires_watermark_then_done() -> Result<(), Error> {
    let window = Window::fixed(SECOND, by_time()).allowed_lateness(Duration::from_millis(500));
    let got = fixed_triggers(vec![(100, 1), (2700, 2)], 1000, window).await?;
    assert_eq!(
        got,
        vec![
            (fixed(0, 1000), Reason::Watermark, 1),
            (fixed(0, 1000), Reason::Done, 1),
            (fixed(1000, 2000), Reason::Watermark, 0),
            (fixed(1000, 2000), Reason::Done, 0),
            (fixed(2000, 3000), Reason::Done, 2),
        ]
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Partitions and departition.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_windows_say_whose_they_are() -> Result<(), Error> {
    let got: Vec<(usize, usize, WindowId, Reason, u32)> = Flow::from_enumerable(0..40u32)
        .stages(1)
        .partition(Partition::new().stages(2).hash(|x: &u32| Some(*x as usize)))
        .window(Window::count(5))
        .reduce(|| 0u32, |x, sum| sum + x)
        .on_trigger(|sum, t| (vec![(t.partition, t.partitions, t.window, t.reason.clone(), sum)], sum))
        .collect()
        .await?;
    assert!(got.iter().all(|(_, partitions, ..)| *partitions == 2), "{got:?}");
    for p in 0..2 {
        let mine: Vec<(WindowId, Reason, u32)> = got
            .iter()
            .filter(|(partition, ..)| *partition == p)
            .map(|(_, _, window, reason, sum)| (*window, reason.clone(), *sum))
            .collect();
        let theirs: Vec<u32> = (0..40u32).filter(|x| *x as usize % 2 == p).collect();
        let expected: Vec<(WindowId, Reason, u32)> = theirs
            .chunks(5)
            .zip(0u64..)
            .map(|(chunk, n)| (WindowId::Count(n), Reason::Done, chunk.iter().sum()))
            .collect();
        assert_eq!(mine, expected, "partition {p}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn departition_merges_the_partitions_per_fixed_window() -> Result<(), Error> {
    // (time, id, amount), routed by id: the first and third windows get events from both
    // partitions; partition 1 has none in the second but reports it empty, as it lies
    // between two of its events.
    let events: Vec<(u64, u32, u32)> =
        vec![(100, 0, 1), (200, 1, 2), (1100, 0, 4), (2500, 1, 8), (2600, 0, 16)];
    let got: Vec<(WindowId, u32)> = Flow::from_enumerable(events)
        .stages(1)
        .partition(Partition::new().stages(2).hash(|(_, id, _): &(u64, u32, u32)| Some(*id as usize)))
        .window(Window::fixed(SECOND, |(time, _, _): &(u64, u32, u32)| *time))
        .reduce(|| 0u32, |(_, _, amount), total| total + amount)
        .departition(|| 0u32, |part, all| part + all, |all, window| Some((window, all)))
        .collect()
        .await?;
    assert_eq!(sorted(got), vec![(fixed(0, 1000), 3), (fixed(1000, 2000), 4), (fixed(2000, 3000), 24)]);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Invalid options and failures.

fn invalid(result: Result<Vec<u32>, Error>, option: &str, value: &str, message: &str) {
    let error = result.expect_err("an invalid option");
    assert_eq!(error.to_string(), message);
    let Error::InvalidOption { option: got_option, value: got_value, .. } = error else {
        panic!("expected an invalid {option}, got {error:?}");
    };
    assert_eq!((got_option, got_value.as_str()), (option, value));
}

async fn sum_per(window: Window<u32>) -> Result<Vec<u32>, Error> {
    Flow::from_enumerable(0..10u32)
        .stages(1)
        .window(window)
        .reduce(|| 0u32, |x, sum| sum + x)
        .emit(emit::State)
        .collect()
        .await
}

#[tokio::test]
async fn invalid_window_options_are_typed_errors_naming_the_option_and_value() {
    invalid(
        sum_per(Window::count(0)).await,
        "Window::count",
        "0",
        "Window::count (0) must be greater than 0",
    );
    invalid(
        sum_per(Window::fixed(Duration::ZERO, |x: &u32| u64::from(*x))).await,
        "Window::fixed",
        "0ns",
        "Window::fixed (0ns) must be at least 1 ms",
    );
    invalid(
        sum_per(Window::fixed(Duration::from_micros(500), |x: &u32| u64::from(*x))).await,
        "Window::fixed",
        "500µs",
        "Window::fixed (500µs) must be at least 1 ms",
    );
    invalid(
        sum_per(Window::periodic(Duration::ZERO)).await,
        "Window::periodic",
        "0ns",
        "Window::periodic (0ns) must be greater than 0",
    );
    invalid(
        sum_per(Window::global().trigger_every(0)).await,
        "trigger_every",
        "0",
        "trigger_every (0) must be greater than 0",
    );
    invalid(
        sum_per(Window::count(3).trigger_every(0)).await,
        "trigger_every",
        "0",
        "trigger_every (0) must be greater than 0",
    );
    invalid(
        sum_per(Window::global().trigger_periodically(Duration::ZERO)).await,
        "trigger_periodically",
        "0ns",
        "trigger_periodically (0ns) must be greater than 0",
    );
    for window in [Window::global(), Window::count(3), Window::periodic(SECOND)] {
        invalid(
            sum_per(window.allowed_lateness(SECOND)).await,
            "allowed_lateness",
            "1s",
            "allowed_lateness (1s) only applies to fixed windows",
        );
    }
    // The same options are fine where they apply.
    let sums = sum_per(Window::fixed(SECOND, |x: &u32| u64::from(*x)).allowed_lateness(SECOND)).await;
    assert_eq!(sums.expect("valid"), vec![45]);
}

/// Runs `flow` with a deadline, and checks it failed with a message containing `needles`.
async fn fails_with(flow: impl std::future::Future<Output = Result<Vec<u32>, Error>>, needles: &[&str]) {
    let result = tokio::time::timeout(Duration::from_secs(10), flow).await.expect("the flow hangs");
    match result {
        Err(error @ Error::Failed(_)) => {
            let message = error.to_string();
            for needle in needles {
                assert!(message.contains(needle), "{needle:?} not in {message:?}");
            }
        }
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_a_reducer_or_in_on_trigger_fails_the_flow() {
    let panicking_reducer = Flow::from_enumerable(0..100u32)
        .stages(2)
        .window(Window::count(10))
        .reduce(|| 0u32, |x, sum| if x == 42 { panic!("bad event {x}") } else { sum + x })
        .emit(emit::State)
        .collect();
    fails_with(panicking_reducer, &["reduce panicked", "bad event 42"]).await;

    // On a trigger inside a chunk.
    let panicking_trigger = Flow::from_enumerable(0..100u32)
        .stages(1)
        .window(Window::global().trigger_every(7))
        .reduce(|| 0u32, |x, sum| sum + x)
        .on_trigger(|sum: u32, _| -> (Vec<u32>, u32) { panic!("bad trigger at {sum}") });
    fails_with(panicking_trigger.collect(), &["reduce panicked", "bad trigger at 21"]).await;

    // On the final trigger, when the input ends.
    let panicking_done = Flow::from_enumerable(0..100u32)
        .stages(1)
        .window(Window::global())
        .reduce(|| 0u32, |x, sum| sum + x)
        .on_trigger(|sum: u32, t| if t.is_done() { panic!("bad end at {sum}") } else { (vec![sum], sum) });
    fails_with(panicking_done.collect(), &["reduce panicked", "bad end at 4950"]).await;

    // After mappers fused into the layer, the message names them too.
    let after_map = Flow::from_enumerable(0..100u32)
        .stages(1)
        .map(|x| x + 1)
        .window(Window::count(10))
        .reduce(|| 0u32, |x, sum| if x == 50 { panic!("bad event {x}") } else { sum + x })
        .emit(emit::State)
        .collect();
    fails_with(after_map, &["map → reduce panicked", "bad event 50"]).await;
}

#[tokio::test(start_paused = true)]
async fn a_panic_in_a_periodic_trigger_fails_the_flow() {
    let flow = Flow::from_stream(at_times(four_events()))
        .stages(1)
        .window(Window::periodic(SECOND))
        .reduce(|| 0u32, |x, sum| sum + x)
        .on_trigger(|sum: u32, t| {
            if t.window == WindowId::Periodic(1) {
                panic!("bad period with {sum}")
            }
            (vec![sum], sum)
        });
    fails_with(flow.collect(), &["reduce panicked", "bad period with 4"]).await;
}

// ---------------------------------------------------------------------------------------
// Property tests against sequential code.

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn count_windows_match_chunks_of_the_input(
        items in proptest::collection::vec(0u32..1000, 0..200),
        n in 1usize..10,
        max_demand in 1usize..20,
    ) {
        let got: Vec<(WindowId, u64, Vec<u32>)> = runtime().block_on(
            Flow::from_enumerable(items.clone())
                .stages(1)
                .max_demand(max_demand)
                .window(Window::count(n))
                .reduce(Vec::new, push)
                .on_trigger(|v: Vec<u32>, t| {
                    let sum = v.iter().map(|x| u64::from(*x)).sum();
                    (vec![(t.window, sum, v)], Vec::new())
                })
                .collect(),
        ).expect("flow");
        let expected: Vec<(WindowId, u64, Vec<u32>)> = items
            .chunks(n)
            .zip(0u64..)
            .map(|(chunk, i)| (WindowId::Count(i), chunk.iter().map(|x| u64::from(*x)).sum(), chunk.to_vec()))
            .collect();
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn trigger_every_with_emit_state_matches_chunks_of_the_input(
        items in proptest::collection::vec(0u32..1000, 0..200),
        n in 1usize..10,
        max_demand in 1usize..20,
    ) {
        let got: Vec<Vec<u32>> = runtime().block_on(
            Flow::from_enumerable(items.clone())
                .stages(1)
                .max_demand(max_demand)
                .window(Window::global().trigger_every(n))
                .reduce(Vec::new, push)
                .emit(emit::State)
                .collect(),
        ).expect("flow");
        let mut expected: Vec<Vec<u32>> = items.chunks(n).map(<[u32]>::to_vec).collect();
        // The final trigger comes after the last `Every`: empty if `n` divides the input.
        if items.len() % n == 0 {
            expected.push(Vec::new());
        }
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn group_by_matches_a_sequential_grouping(
        items in proptest::collection::vec(0u32..1000, 0..300),
        stages in 1usize..4,
        max_demand in 1usize..30,
    ) {
        let runtime = runtime();
        let mut expected: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        for x in &items {
            expected.entry(x % 7).or_default().push(*x);
        }

        // One stage: each group keeps the input's order.
        let groups: Vec<(u32, Vec<u32>)> = runtime.block_on(
            Flow::from_enumerable(items.clone())
                .stages(1)
                .max_demand(max_demand)
                .group_by(|x: &u32| x % 7)
                .collect(),
        ).expect("flow");
        prop_assert_eq!(groups.len(), expected.len());
        prop_assert_eq!(groups.into_iter().collect::<BTreeMap<_, _>>(), expected.clone());

        // Partitioned by the key: each key has one group, in some order.
        let groups: Vec<(u32, Vec<u32>)> = runtime.block_on(
            Flow::from_enumerable(items.clone())
                .partition(Partition::new().stages(stages).max_demand(max_demand).key(|x: &u32| x % 7))
                .group_by(|x: &u32| x % 7)
                .collect(),
        ).expect("flow");
        prop_assert_eq!(groups.len(), expected.len());
        let got: BTreeMap<u32, Vec<u32>> = groups.into_iter().map(|(k, vs)| (k, sorted(vs))).collect();
        let expected: BTreeMap<u32, Vec<u32>> = expected.into_iter().map(|(k, vs)| (k, sorted(vs))).collect();
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn group_by_key_matches_a_sequential_grouping(
        items in proptest::collection::vec((0u8..10, 0u32..100), 0..300),
        stages in 1usize..4,
        max_demand in 1usize..30,
    ) {
        let groups: Vec<(u8, Vec<u32>)> = runtime().block_on(
            Flow::from_enumerable(items.clone())
                .partition(Partition::new().stages(stages).max_demand(max_demand).key(|(k, _): &(u8, u32)| *k))
                .group_by_key()
                .collect(),
        ).expect("flow");
        let mut expected: HashMap<u8, Vec<u32>> = HashMap::new();
        for (k, v) in items {
            expected.entry(k).or_default().push(v);
        }
        prop_assert_eq!(groups.len(), expected.len());
        let got: HashMap<u8, Vec<u32>> = groups.into_iter().map(|(k, vs)| (k, sorted(vs))).collect();
        let expected: HashMap<u8, Vec<u32>> = expected.into_iter().map(|(k, vs)| (k, sorted(vs))).collect();
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn take_sort_matches_sort_and_truncate(
        items in proptest::collection::vec((0u8..10, 0u32..100), 0..300),
        n in 0usize..25,
        stages in 1usize..4,
        max_demand in 1usize..30,
    ) {
        let top: Vec<Vec<(u8, u32)>> = runtime().block_on(
            Flow::from_enumerable(items.clone())
                .stages(stages)
                .max_demand(max_demand)
                .take_sort(n, |a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)))
                .collect(),
        ).expect("flow");
        let mut expected = items;
        expected.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        expected.truncate(n);
        prop_assert_eq!(top, vec![expected]);
    }

    #[test]
    fn departition_of_fixed_windows_matches_sequential_sums_per_window(
        events in proptest::collection::vec((0u64..6000, 0u8..12, 0u32..100), 0..200),
        duration in 100u64..1500,
        stages in 1usize..4,
        max_demand in 1usize..20,
    ) {
        let mut events = events;
        events.sort_by_key(|(time, ..)| *time);
        let got: Vec<(WindowId, (usize, u64))> = runtime().block_on(
            Flow::from_enumerable(events.clone())
                .stages(1)
                .max_demand(max_demand)
                .partition(Partition::new().stages(stages).max_demand(max_demand).key(|(_, key, _): &Keyed| *key))
                .window(Window::fixed(Duration::from_millis(duration), |(time, ..): &Keyed| *time))
                .reduce(|| (0usize, 0u64), |(_, _, amount), (n, sum)| (n + 1, sum + u64::from(amount)))
                .departition(
                    || (0usize, 0u64),
                    |(n, sum), (all_n, all_sum)| (all_n + n, all_sum + sum),
                    |all, window| Some((window, all)),
                )
                .collect(),
        ).expect("flow");

        let mut expected: BTreeMap<u64, (usize, u64)> = BTreeMap::new();
        for (time, _, amount) in &events {
            let window = expected.entry(time - time % duration).or_default();
            window.0 += 1;
            window.1 += u64::from(*amount);
        }
        let mut merged: BTreeMap<u64, (usize, u64)> = BTreeMap::new();
        for (window, state) in &got {
            let WindowId::Fixed { start, end } = *window else {
                panic!("not a fixed window: {window:?}");
            };
            prop_assert_eq!((start % duration, end - start), (0, duration));
            prop_assert!(merged.insert(start, *state).is_none(), "window {} emitted twice", start);
        }
        // Windows no partition had events in may be reported empty; nothing else differs.
        merged.retain(|_, (n, _)| *n > 0);
        prop_assert_eq!(merged, expected);
    }
}
