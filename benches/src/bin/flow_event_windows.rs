//! Event-window aggregation on the 5,000,000-event corpus: sequential, rayon and weir-flow.
//!
//! ```text
//! cargo run --release -p weir-benches --bin flow_event_windows                  # all variants, 3 runs
//! cargo run --release -p weir-benches --bin flow_event_windows -- --only flow   # one variant (peak RSS)
//! cargo run --release -p weir-benches --bin flow_event_windows -- --events 1000000 --runs 5
//! cargo run --release -p weir-benches --bin flow_event_windows -- --partition-demand 10000
//! ```
//!
//! Fixed 1-minute event-time windows on `timestamp_ms` (`timestamp_ms / 60_000`), the sum of
//! `amount_cents` per (window, customer). The input is `target/bench-inputs/events-{n}.csv`
//! (`$BENCH_INPUTS` to put it elsewhere), written by the Rust port of `gen_corpus.py` if
//! missing, then read into memory once; parsing the lines is part of every variant's work.
//! Each run aggregates it with every variant, interleaved:
//!
//! * `sequential`: one fused iterator over the lines (parse, key), one `FxHashMap`;
//! * `rayon`: `par_iter` over 64 KiB line-aligned chunks, `fold` maps, `reduce` by merging;
//! * `flow`: `Flow::from_enumerable(lines).filter_map(parse).partition(key: customer)
//!   .window(Window::fixed(1 minute, timestamp).allowed_lateness(10 minutes))
//!   .reduce(map per customer).on_trigger(rows of the window when done)`.
//!
//! Every result is checked against the README checksums (5,000,000 events: 1,585,858 groups
//! over 168 windows, grand total 249,964,326,078) and against the sequential sums; any
//! mismatch exits with status 1. It prints events/s per variant (median of the runs), the
//! ratios flow / rayon and flow / sequential, the CPU time and the peak resident memory
//! (`VmHWM`). `--only VARIANT` runs one variant (once, unless `--runs`). `--partition-demand N`
//! sets the `max_demand` of the flow's partitioned layer (weir-flow's default is 10,000).

use std::process::ExitCode;
use std::time::Duration;

use weir_benches::flow_harness::{exit_code, run_interleaved, Computed, Input, Options, Rates};
use weir_benches::flow_shapes::{
    load_events, mib, windows_flow, windows_rayon, windows_sequential, WindowSummary,
};

const VARIANTS: [&str; 3] = ["sequential", "rayon", "flow"];
const USAGE: &str = "usage: flow_event_windows [--only sequential|rayon|flow] [--runs N] [--events N] \
                     [--partition-demand N]";

fn main() -> ExitCode {
    exit_code(run(), USAGE)
}

fn rate(events: u64, time: Duration) -> f64 {
    events as f64 / time.as_secs_f64()
}

fn run() -> Result<bool, String> {
    let options = Options::from_env(&VARIANTS, "events", 5_000_000)?;
    let n = options.size;
    let partition_demand = options.partition_demand;
    let input = Input::load("events", || load_events(n), &options)?;
    let (text, chunks, runtime) = (input.text, &input.chunks, &input.runtime);
    let events = input.lines as u64;

    let readme = (n == 5_000_000).then(WindowSummary::readme_5m);
    let compute = |variant: &str| match variant {
        "sequential" => Ok(Computed::Map(windows_sequential(text))),
        "rayon" => Ok(Computed::Map(windows_rayon(chunks))),
        _ => runtime.block_on(windows_flow(text, partition_demand)).map(Computed::Pairs),
    };
    let Some(measured) = run_interleaved(&options, readme.as_ref(), "sums", compute, |sample, sums| {
        let summary = WindowSummary::of(sums.iter().map(|(k, v)| (*k, *v)));
        println!(
            "run {}  {:<10} {:>8.1} ms  {:>7.1} M events/s  cpu {:>7.1} ms  peak RSS {:>6.1} MiB  groups {}  windows {}  \
             total {}",
            sample.run,
            sample.variant,
            sample.time.as_secs_f64() * 1e3,
            rate(events, sample.time) / 1e6,
            sample.cpu.as_secs_f64() * 1e3,
            mib(sample.hwm),
            summary.groups,
            summary.windows,
            summary.total
        );
        summary
    }) else {
        return Ok(false);
    };

    println!();
    let rates = Rates::print_medians(26, options.runs, events, "events", &options.variants, &measured.times);
    rates.print_flow_ratios(&["flow"], "rayon", 0.8, "sequential");
    rates.print_ratio("rayon", "sequential");
    measured.print_memory_and_checks(&input, &options, readme.is_some(), "--events 5000000");
    Ok(true)
}
