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
//! * `flow`: weir-flow has no windows yet, so this uses what exists:
//!   `Flow::from_enumerable(lines).filter_map(parse into ((window, customer), amount))
//!   .partition(key: (window, customer)).reduce(map)`, a global window over composite keys.
//!
//! Every result is checked against the README checksums (5,000,000 events: 1,585,858 groups
//! over 168 windows, grand total 249,964,326,078) and against the sequential sums; any
//! mismatch exits with status 1. It prints events/s per variant (median of the runs), the
//! ratios flow / rayon and flow / sequential, the CPU time and the peak resident memory
//! (`VmHWM`). `--only VARIANT` runs one variant (once, unless `--runs`). `--partition-demand N`
//! sets the `max_demand` of the flow's partitioned layer (weir-flow's default is 1000).

use std::process::ExitCode;
use std::time::Duration;

use weir_benches::flow_shapes::{
    cpu_time, line_chunks, load_events, median, mib, runtime, status_kib, timed, windows_flow, windows_rayon,
    windows_sequential, Args, WindowSummary, WindowSums,
};

const VARIANTS: [&str; 3] = ["sequential", "rayon", "flow"];
const USAGE: &str = "usage: flow_event_windows [--only sequential|rayon|flow] [--runs N] [--events N] \
                     [--partition-demand N]";

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(message) => {
            eprintln!("error: {message}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// What a variant returns: sequential and rayon build the map, the flow collects
/// ((window, customer), sum) pairs (made a map outside the timing, for the checks).
enum Summed {
    Map(WindowSums),
    Pairs(Vec<((u64, u64), u64)>),
}

fn rate(events: u64, time: Duration) -> f64 {
    events as f64 / time.as_secs_f64()
}

fn run() -> Result<bool, String> {
    let args = Args::from_env();
    args.only_names(&["only", "runs", "partition-demand", "events"])?;
    let only = args.value("only");
    if let Some(only) = only {
        if !VARIANTS.contains(&only) {
            return Err(format!("unknown variant {only:?}"));
        }
    }
    let runs = args.number("runs", if only.is_some() { 1 } else { 3 })?.max(1);
    let n = args.number("events", 5_000_000)?;
    let partition_demand = match args.number("partition-demand", 0)? {
        0 => None,
        demand => Some(demand as usize),
    };
    let variants: Vec<&str> = VARIANTS.into_iter().filter(|v| only.is_none_or(|o| o == *v)).collect();

    let (loaded, load) = timed(|| load_events(n));
    let (path, text, generated) =
        loaded.map_err(|e| format!("reading or generating the events corpus: {e}"))?;
    let chunks = line_chunks(text, 64 * 1024);
    let lines = text.lines().count();
    let runtime = runtime().map_err(|e| format!("starting tokio: {e}"))?;
    let workers = runtime.metrics().num_workers();
    println!(
        "input {} ({:.1} MB, {} lines, {} chunks of ~64 KiB) {} in {:.2} s",
        path.display(),
        text.len() as f64 / 1e6,
        lines,
        chunks.len(),
        if generated { "generated and read" } else { "read" },
        load.as_secs_f64()
    );
    println!(
        "cores {}  tokio workers {}  rayon threads {}  runs {}  variants {}  partition max_demand {}",
        std::thread::available_parallelism().map(usize::from).unwrap_or(0),
        workers,
        rayon::current_num_threads(),
        runs,
        variants.join(", "),
        partition_demand.map_or_else(|| "default (1000)".to_owned(), |d| d.to_string())
    );
    let hwm_loaded = status_kib("VmHWM");
    println!("peak RSS after reading the input: {:.1} MiB", mib(hwm_loaded));

    let readme = (n == 5_000_000).then(WindowSummary::readme_5m);
    let mut reference: Option<WindowSums> = None;
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); variants.len()];
    let mut ok = true;
    let mut hwm_computed = 0;
    for run in 1..=runs {
        for (v, variant) in variants.iter().enumerate() {
            let cpu_before = cpu_time();
            let (summed, time) = match *variant {
                "sequential" => timed(|| Ok(Summed::Map(windows_sequential(text)))),
                "rayon" => timed(|| Ok(Summed::Map(windows_rayon(&chunks)))),
                _ => timed(|| runtime.block_on(windows_flow(text, partition_demand)).map(Summed::Pairs)),
            };
            let cpu = cpu_time().saturating_sub(cpu_before);
            // Before the checks build anything: the peak of the computations so far.
            let hwm = status_kib("VmHWM");
            hwm_computed = hwm_computed.max(hwm);
            let sums = match summed {
                Ok(Summed::Map(sums)) => sums,
                Ok(Summed::Pairs(pairs)) => pairs.into_iter().collect(),
                Err(e) => {
                    eprintln!("{variant}: the flow failed: {e}");
                    return Ok(false);
                }
            };
            let summary = WindowSummary::of(sums.iter().map(|(k, v)| (*k, *v)));
            println!(
                "run {run}  {variant:<10} {:>8.1} ms  {:>7.1} M events/s  cpu {:>7.1} ms  peak RSS {:>6.1} MiB  groups {}  windows {}  \
                 total {}",
                time.as_secs_f64() * 1e3,
                rate(lines as u64, time) / 1e6,
                cpu.as_secs_f64() * 1e3,
                mib(hwm),
                summary.groups,
                summary.windows,
                summary.total
            );
            if let Some(expected) = &readme {
                if summary != *expected {
                    eprintln!("MISMATCH: {variant} gives {summary:?}, the README says {expected:?}");
                    ok = false;
                }
            }
            match &reference {
                None => reference = Some(sums),
                Some(reference) if *reference != sums => {
                    eprintln!("MISMATCH: {variant} sums differ from {}'s", variants[0]);
                    ok = false;
                }
                Some(_) => {}
            }
            times[v].push(time);
        }
    }
    if !ok {
        eprintln!("checksum mismatch: results are not comparable");
        return Ok(false);
    }
    let events = lines as u64;

    println!();
    println!(
        "{:<26} {:>10} {:>14} {:>10}",
        format!("variant (median of {runs})"),
        "time",
        "events/s",
        "best"
    );
    let mut rates = Vec::new();
    for (v, variant) in variants.iter().enumerate() {
        let best = times[v].iter().min().copied().unwrap_or_default();
        let med = median(&times[v]);
        rates.push((*variant, rate(events, med)));
        println!(
            "{variant:<26} {:>7.1} ms {:>10.1} M/s {:>7.1} ms",
            med.as_secs_f64() * 1e3,
            rate(events, med) / 1e6,
            best.as_secs_f64() * 1e3
        );
    }
    let rate_of = |name: &str| rates.iter().find(|(v, _)| *v == name).map(|(_, r)| *r);
    for flow in ["flow"] {
        let Some(flow_rate) = rate_of(flow) else { continue };
        if let Some(rayon) = rate_of("rayon") {
            let ratio = flow_rate / rayon;
            let verdict = if ratio >= 0.8 { "met" } else { "MISSED" };
            println!("{flow} / rayon      = {ratio:.2}x  (target >= 0.8x: {verdict})");
        }
        if let Some(sequential) = rate_of("sequential") {
            println!("{flow} / sequential = {:.2}x", flow_rate / sequential);
        }
    }
    if let (Some(rayon), Some(sequential)) = (rate_of("rayon"), rate_of("sequential")) {
        println!("rayon / sequential = {:.2}x", rayon / sequential);
    }
    println!(
        "peak RSS (VmHWM): {:.1} MiB after reading the input, {:.1} MiB after the computations \
         (+{:.1} MiB), {:.1} MiB with the checks ({})",
        mib(hwm_loaded),
        mib(hwm_computed),
        mib(hwm_computed.saturating_sub(hwm_loaded)),
        mib(status_kib("VmHWM")),
        variants.join(", ")
    );
    if readme.is_some() {
        println!("checks: every run matches the README checksums and the other variants");
    } else {
        println!("checks: every run matches the other variants (README checksums are for --events 5000000)");
    }
    Ok(true)
}
