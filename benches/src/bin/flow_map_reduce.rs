//! map / filter / reduce without a partition: weir-flow against a fused single-thread iterator.
//!
//! ```text
//! cargo run --release -p weir-benches --bin flow_map_reduce                       # both shapes, 5 runs
//! cargo run --release -p weir-benches --bin flow_map_reduce -- --shape range --n 10000000 --runs 3
//! cargo run --release -p weir-benches --bin flow_map_reduce -- --shape events --events 1000000
//! ```
//!
//! Two shapes, each without a partition:
//!
//! * `range`: the wrapping sum of `x * x` over the even `x` of `0..n` (default 50,000,000):
//!   almost no work per number, which the fused iterator vectorizes;
//! * `events`: over the lines of the events corpus (`target/bench-inputs/events-{n}.csv`,
//!   generated if missing, read into memory first): parse each line, keep the events of even
//!   customers, sum the squares of their `amount_cents`.
//!
//! Variants of each: `sequential` (one fused iterator, one thread), `rayon` (for reference),
//! `flow` (`Flow::from_enumerable(..)` with the fused `filter`/`map`, one stage per core
//! reducing into a sum, no partition) and, for `range`, `flow-sources`
//! (`Flow::from_enumerables` of one range per core, so the source is not one producer).
//!
//! Every result is checked against the others; a mismatch exits with status 1. It prints
//! items/s (median of the runs) and the ratios flow / sequential (target >= 0.5x) and flow /
//! rayon.

use std::process::ExitCode;
use std::time::Duration;

use weir_benches::flow_harness::{exit_code, Rates};
use weir_benches::flow_shapes::{
    cpu_time, events_map_reduce_flow, events_map_reduce_rayon, events_map_reduce_sequential, line_chunks,
    load_events, runtime, sum_even_squares_flow, sum_even_squares_flow_sources, sum_even_squares_rayon,
    sum_even_squares_sequential, timed, Args,
};

const USAGE: &str =
    "usage: flow_map_reduce [--shape range|events] [--only sequential|rayon|flow|flow-sources] \
                     [--runs N] [--n N] [--events N]";

fn main() -> ExitCode {
    exit_code(run(), USAGE)
}

/// One way to compute a shape's result.
type Variant<'a> = (&'static str, Box<dyn Fn() -> Result<u64, weir_flow::Error> + 'a>);

/// Runs every variant `runs` times, interleaved, checks they agree, prints the table and the
/// ratios. Returns false on a mismatch.
fn measure(items: u64, unit: &str, variants: &[Variant<'_>], only: Option<&str>, runs: u64) -> bool {
    let variants: Vec<&Variant<'_>> =
        variants.iter().filter(|(name, _)| only.is_none_or(|o| o == *name)).collect();
    let mut expected: Option<u64> = None;
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); variants.len()];
    for run in 1..=runs {
        for (v, (name, compute)) in variants.iter().enumerate() {
            let cpu_before = cpu_time();
            let (result, time) = timed(compute);
            let cpu = cpu_time().saturating_sub(cpu_before);
            let sum = match result {
                Ok(sum) => sum,
                Err(e) => {
                    eprintln!("{name}: the flow failed: {e}");
                    return false;
                }
            };
            println!(
                "run {run}  {name:<13} {:>8.1} ms  {:>8.1} M {unit}/s  cpu {:>7.1} ms  sum {sum}",
                time.as_secs_f64() * 1e3,
                items as f64 / time.as_secs_f64() / 1e6,
                cpu.as_secs_f64() * 1e3,
            );
            match expected {
                None => expected = Some(sum),
                Some(e) if e != sum => {
                    eprintln!("MISMATCH: {name} gives {sum}, {} gave {e}", variants[0].0);
                    return false;
                }
                Some(_) => {}
            }
            times[v].push(time);
        }
    }
    let names: Vec<&str> = variants.iter().map(|(name, _)| *name).collect();
    let rates = Rates::print_medians(24, runs, items, unit, &names, &times);
    rates.print_flow_ratios(&["flow", "flow-sources"], "sequential", 0.5, "rayon");
    println!("checks: every run gives the same sum");
    true
}

fn run() -> Result<bool, String> {
    let args = Args::from_env();
    args.only_names(&["shape", "only", "runs", "n", "events"])?;
    let shape = args.value("shape");
    if shape.is_some_and(|s| s != "range" && s != "events") {
        return Err(format!("unknown shape {shape:?}"));
    }
    let only = args.value("only");
    if only.is_some_and(|o| !["sequential", "rayon", "flow", "flow-sources"].contains(&o)) {
        return Err(format!("unknown variant {only:?}"));
    }
    let runs = args.number("runs", 5)?.max(1);
    let n = std::hint::black_box(args.number("n", 50_000_000)?);
    let n_events = args.number("events", 5_000_000)?;
    let runtime = runtime().map_err(|e| format!("starting tokio: {e}"))?;
    let cores = std::thread::available_parallelism().map(usize::from).unwrap_or(1);
    println!(
        "cores {cores}  tokio workers {}  rayon threads {}  runs {runs}",
        runtime.metrics().num_workers(),
        rayon::current_num_threads(),
    );

    let mut ok = true;
    if shape.is_none_or(|s| s == "range") {
        println!("\nrange: the wrapping sum of x * x over the even x of 0..{n}");
        let variants: Vec<Variant<'_>> = vec![
            ("sequential", Box::new(|| Ok(sum_even_squares_sequential(n)))),
            ("rayon", Box::new(|| Ok(sum_even_squares_rayon(n)))),
            ("flow", Box::new(|| runtime.block_on(sum_even_squares_flow(n)))),
            ("flow-sources", Box::new(|| runtime.block_on(sum_even_squares_flow_sources(n, cores as u64)))),
        ];
        ok &= measure(n, "numbers", &variants, only, runs);
    }
    if shape.is_none_or(|s| s == "events") && only != Some("flow-sources") {
        let (path, text, generated) =
            load_events(n_events).map_err(|e| format!("reading or generating the events corpus: {e}"))?;
        let chunks = line_chunks(text, 64 * 1024);
        let lines = text.lines().count() as u64;
        println!(
            "\nevents: parse, keep even customers, sum amount_cents^2, over {} ({lines} lines{})",
            path.display(),
            if generated { ", generated" } else { "" }
        );
        let variants: Vec<Variant<'_>> = vec![
            ("sequential", Box::new(|| Ok(events_map_reduce_sequential(text)))),
            ("rayon", Box::new(|| Ok(events_map_reduce_rayon(&chunks)))),
            ("flow", Box::new(|| runtime.block_on(events_map_reduce_flow(text)))),
        ];
        ok &= measure(lines, "events", &variants, only, runs);
    }
    Ok(ok)
}
