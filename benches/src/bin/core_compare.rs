//! Compares weir with hand-written tokio pipelines, in one process and one run.
//!
//! ```text
//! cargo run --release -p weir-benches --bin core_compare -- [EVENTS [MAX_DEMAND [RUNS]]]
//! ```
//!
//! Defaults: 10,000,000 events, `max_demand` 1000 (so chunks of 500), 11 runs (one pipeline
//! run takes only tens of milliseconds, so single runs are noisy; the median is stable). The
//! same values can come from `BENCH_EVENTS`, `BENCH_MAX_DEMAND` and `BENCH_RUNS`; arguments
//! win. `BENCH_WORKERS` sets the number of tokio worker threads (default: one per core) and
//! `BENCH_CAPACITY` the capacity of the hand-written channels in chunks (default: `max_demand`
//! events' worth, 2 chunks).
//!
//! Per run it also prints the CPU time of all threads and how often tokio's workers parked,
//! which tell per-event overhead apart from cross-thread wake-ups.
//!
//! Each run executes, interleaved, weir and the hand-written pipeline for both shapes
//! (producer → consumer, producer → map → consumer). Every run's checksum is compared with
//! the expected one; any mismatch exits with status 1. The median run of each is reported,
//! with the best as well, and the ratio weir / hand-written of events per second.

use std::process::ExitCode;
use std::time::Duration;

use weir_benches::{Implementation, Outcome, Params, Shape};

fn setting(args: &[String], index: usize, env: &str, default: u64) -> Result<u64, String> {
    let raw = match args.get(index) {
        Some(arg) => arg.clone(),
        None => match std::env::var(env) {
            Ok(value) => value,
            Err(_) => return Ok(default),
        },
    };
    let value: u64 =
        raw.replace('_', "").parse().map_err(|e| format!("{env} / argument {index}: {raw:?}: {e}"))?;
    if value == 0 {
        return Err(format!("{env} / argument {index} must be greater than 0"));
    }
    Ok(value)
}

fn events_per_second(events: u64, elapsed: Duration) -> f64 {
    events as f64 / elapsed.as_secs_f64()
}

fn millions(rate: f64) -> String {
    format!("{:.1} M/s", rate / 1e6)
}

/// CPU time used so far by all the process's threads (from `/proc/self/task/*/schedstat`;
/// zero where that is not available).
fn cpu_time() -> Duration {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    let nanos: u64 = tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok())
        .filter_map(|stat| stat.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    Duration::from_nanos(nanos)
}

/// How many times the runtime's workers went to sleep so far.
fn parks(runtime: &tokio::runtime::Runtime) -> u64 {
    let metrics = runtime.metrics();
    (0..metrics.num_workers()).map(|w| metrics.worker_park_count(w)).sum()
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed = (|| -> Result<(Params, usize), String> {
        let events = setting(&args, 0, "BENCH_EVENTS", 10_000_000)?;
        let max_demand = setting(&args, 1, "BENCH_MAX_DEMAND", 1000)?;
        let runs = setting(&args, 2, "BENCH_RUNS", 11)?;
        if max_demand < 2 {
            return Err("max_demand must be at least 2".into());
        }
        let mut params = Params::new(events, max_demand as usize);
        if std::env::var_os("BENCH_CAPACITY").is_some() {
            params.capacity = setting(&[], 0, "BENCH_CAPACITY", 0)? as usize;
        }
        Ok((params, runs as usize))
    })();
    let (params, runs) = match parsed {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("error: {message}");
            eprintln!("usage: core_compare [EVENTS [MAX_DEMAND [RUNS]]]");
            return ExitCode::from(2);
        }
    };

    let mut builder = tokio::runtime::Builder::new_multi_thread();
    match std::env::var("BENCH_WORKERS").map(|w| w.parse::<usize>()) {
        Ok(Ok(workers)) if workers > 0 => {
            builder.worker_threads(workers);
        }
        Err(_) => {}
        Ok(_) => {
            eprintln!("error: BENCH_WORKERS must be a number greater than 0");
            return ExitCode::from(2);
        }
    }
    let runtime = builder.enable_all().build().expect("building the tokio runtime");
    let workers = runtime.metrics().num_workers();
    println!(
        "events {}  max_demand {}  min_demand {}  chunk {}  channel capacity {} chunks  runs {}  \
         tokio workers {}  cores {}",
        params.events,
        params.max_demand,
        params.min_demand(),
        params.chunk(),
        params.capacity,
        runs,
        workers,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
    );

    let implementations = [Implementation::Weir, Implementation::Hand];
    // times[shape][implementation]
    let mut times = vec![vec![Vec::with_capacity(runs); implementations.len()]; Shape::ALL.len()];
    let expected: Vec<Outcome> = Shape::ALL.iter().map(|shape| shape.expected(params)).collect();
    let mut failed = false;
    for run in 1..=runs {
        for (s, shape) in Shape::ALL.into_iter().enumerate() {
            let expected = expected[s];
            let mut outcomes: Vec<Outcome> = Vec::new();
            for (i, implementation) in implementations.into_iter().enumerate() {
                let parks_before = parks(&runtime);
                let cpu_before = cpu_time();
                let result = runtime.block_on(implementation.run_timed(shape, params));
                let cpu = cpu_time().saturating_sub(cpu_before);
                let worker_parks = parks(&runtime) - parks_before;
                let (outcome, elapsed) = match result {
                    Ok(done) => done,
                    Err(e) => {
                        eprintln!("run {run}: {} {}: {e}", implementation.label(), shape.label());
                        return ExitCode::FAILURE;
                    }
                };
                println!(
                    "run {run:>2}  {:<28} {:<13} {:>6.1} ms  {:>10}  cpu {:>5.1} ms  worker parks {:>5}  \
                     events {}  checksum {}",
                    shape.label(),
                    implementation.label(),
                    elapsed.as_secs_f64() * 1e3,
                    millions(events_per_second(outcome.events, elapsed)),
                    cpu.as_secs_f64() * 1e3,
                    worker_parks,
                    outcome.events,
                    outcome.checksum,
                );
                if outcome != expected {
                    eprintln!(
                        "MISMATCH: {} {} got {outcome:?}, expected {expected:?}",
                        implementation.label(),
                        shape.label()
                    );
                    failed = true;
                }
                outcomes.push(outcome);
                times[s][i].push(elapsed);
            }
            if outcomes.windows(2).any(|w| w[0] != w[1]) {
                eprintln!("MISMATCH between implementations for {}: {outcomes:?}", shape.label());
                failed = true;
            }
        }
    }
    if failed {
        eprintln!("checksum mismatch: results are not comparable");
        return ExitCode::FAILURE;
    }

    println!();
    println!(
        "{:<28} {:>14} {:>14} {:>14} {:>14} {:>8}",
        "shape (median of runs)", "weir", "hand-written", "weir best", "hand best", "ratio"
    );
    for (s, shape) in Shape::ALL.into_iter().enumerate() {
        let best: Vec<f64> = times[s]
            .iter()
            .map(|t| events_per_second(params.events, *t.iter().min().expect("at least one run")))
            .collect();
        let medians: Vec<f64> =
            times[s].iter_mut().map(|t| events_per_second(params.events, median(t))).collect();
        println!(
            "{:<28} {:>14} {:>14} {:>14} {:>14} {:>7.2}x",
            shape.label(),
            millions(medians[0]),
            millions(medians[1]),
            millions(best[0]),
            millions(best[1]),
            medians[0] / medians[1],
        );
    }
    println!("ratio = weir events/s / hand-written events/s (medians); target >= 0.5x");
    ExitCode::SUCCESS
}
