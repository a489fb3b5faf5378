//! Word count on the 100 MB words corpus: sequential, rayon and weir-flow, in one process.
//!
//! ```text
//! cargo run --release -p weir-benches --bin flow_word_count                     # all variants, 3 runs
//! cargo run --release -p weir-benches --bin flow_word_count -- --only flow      # one variant (peak RSS)
//! cargo run --release -p weir-benches --bin flow_word_count -- --mb 10 --runs 5
//! cargo run --release -p weir-benches --bin flow_word_count -- --partition-demand 100000
//! ```
//!
//! The input is `target/bench-inputs/words-{mb}mb.txt` (`$BENCH_INPUTS` to put it elsewhere),
//! written by the Rust port of `gen_corpus.py` if missing, then read into memory once. Each run
//! counts it with every variant, interleaved:
//!
//! * `sequential`: one fused iterator over the words, one `FxHashMap<&str, u64>`;
//! * `rayon`: `par_iter` over 64 KiB line-aligned chunks, `fold` maps, `reduce` by merging;
//! * `flow`: `Flow::from_enumerable(lines).flat_map(split).partition(key: word).reduce(map)`;
//! * `flow-combined`: the same with a per-stage `reduce` before the partition (a combiner).
//!
//! Every result is checked against the README checksums (100 MB: 22,882,159 words, 50,000
//! distinct, `ba` 2,008,054 times, sum of squared counts 6,631,462,947,453) and against the
//! sequential counts; any mismatch exits with status 1. It prints words/s per variant (median
//! of the runs), the ratios flow / rayon and flow / sequential, the CPU time and the peak
//! resident memory (`VmHWM`). `--only VARIANT` runs one variant (once, unless `--runs`), so
//! that each variant's peak memory can be read from its own process. `--partition-demand N`
//! sets the `max_demand` of the flows' partitioned layer (weir-flow's default is 1000).

use std::process::ExitCode;
use std::time::Duration;

use weir_benches::flow_shapes::{
    count_words_flow, count_words_flow_combined, count_words_rayon, count_words_sequential, cpu_time,
    line_chunks, load_words, median, mib, runtime, status_kib, timed, Args, WordCounts, WordSummary,
};

const VARIANTS: [&str; 4] = ["sequential", "rayon", "flow", "flow-combined"];
const USAGE: &str =
    "usage: flow_word_count [--only sequential|rayon|flow|flow-combined] [--runs N] [--mb N] \
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

/// What a variant returns: sequential and rayon build the map, a flow collects (word, count)
/// pairs (made a map outside the timing, for the checks).
enum Counted {
    Map(WordCounts),
    Pairs(Vec<(&'static str, u64)>),
}

fn rate(words: u64, time: Duration) -> f64 {
    words as f64 / time.as_secs_f64()
}

fn run() -> Result<bool, String> {
    let args = Args::from_env();
    args.only_names(&["only", "runs", "partition-demand", "mb"])?;
    let only = args.value("only");
    if let Some(only) = only {
        if !VARIANTS.contains(&only) {
            return Err(format!("unknown variant {only:?}"));
        }
    }
    let runs = args.number("runs", if only.is_some() { 1 } else { 3 })?.max(1);
    let mb = args.number("mb", 100)?;
    let partition_demand = match args.number("partition-demand", 0)? {
        0 => None,
        demand => Some(demand as usize),
    };
    let variants: Vec<&str> = VARIANTS.into_iter().filter(|v| only.is_none_or(|o| o == *v)).collect();

    let (loaded, load) = timed(|| load_words(mb));
    let (path, text, generated) =
        loaded.map_err(|e| format!("reading or generating the words corpus: {e}"))?;
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

    let readme = (mb == 100).then(WordSummary::readme_100mb);
    let mut reference: Option<WordCounts> = None;
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); variants.len()];
    let mut ok = true;
    let mut hwm_computed = 0;
    for run in 1..=runs {
        for (v, variant) in variants.iter().enumerate() {
            let cpu_before = cpu_time();
            let (counted, time) = match *variant {
                "sequential" => timed(|| Ok(Counted::Map(count_words_sequential(text)))),
                "rayon" => timed(|| Ok(Counted::Map(count_words_rayon(&chunks)))),
                "flow" => {
                    timed(|| runtime.block_on(count_words_flow(text, partition_demand)).map(Counted::Pairs))
                }
                _ => timed(|| {
                    runtime.block_on(count_words_flow_combined(text, partition_demand)).map(Counted::Pairs)
                }),
            };
            let cpu = cpu_time().saturating_sub(cpu_before);
            // Before the checks build anything: the peak of the computations so far.
            let hwm = status_kib("VmHWM");
            hwm_computed = hwm_computed.max(hwm);
            let counts = match counted {
                Ok(Counted::Map(counts)) => counts,
                Ok(Counted::Pairs(pairs)) => pairs.into_iter().collect(),
                Err(e) => {
                    eprintln!("{variant}: the flow failed: {e}");
                    return Ok(false);
                }
            };
            let summary = WordSummary::of(counts.iter().map(|(w, c)| (*w, *c)));
            println!(
                "run {run}  {variant:<14} {:>8.1} ms  {:>7.1} M words/s  cpu {:>7.1} ms  peak RSS {:>6.1} MiB  words {}  distinct {}  \
                 top {:?} {}  sum of squares {}",
                time.as_secs_f64() * 1e3,
                rate(summary.words, time) / 1e6,
                cpu.as_secs_f64() * 1e3,
                mib(hwm),
                summary.words,
                summary.distinct,
                summary.top_word,
                summary.top_count,
                summary.sum_of_squares
            );
            if let Some(expected) = &readme {
                if summary != *expected {
                    eprintln!("MISMATCH: {variant} gives {summary:?}, the README says {expected:?}");
                    ok = false;
                }
            }
            match &reference {
                None => reference = Some(counts),
                Some(reference) if *reference != counts => {
                    eprintln!("MISMATCH: {variant} counts differ from {}'s", variants[0]);
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
    let words = readme.as_ref().map_or_else(|| text.split_ascii_whitespace().count() as u64, |r| r.words);

    println!();
    println!("{:<26} {:>10} {:>14} {:>10}", format!("variant (median of {runs})"), "time", "words/s", "best");
    let mut rates = Vec::new();
    for (v, variant) in variants.iter().enumerate() {
        let best = times[v].iter().min().copied().unwrap_or_default();
        let med = median(&times[v]);
        rates.push((*variant, rate(words, med)));
        println!(
            "{variant:<26} {:>7.1} ms {:>10.1} M/s {:>7.1} ms",
            med.as_secs_f64() * 1e3,
            rate(words, med) / 1e6,
            best.as_secs_f64() * 1e3
        );
    }
    let rate_of = |name: &str| rates.iter().find(|(v, _)| *v == name).map(|(_, r)| *r);
    for flow in ["flow", "flow-combined"] {
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
        println!("checks: every run matches the other variants (README checksums are for --mb 100)");
    }
    Ok(true)
}
