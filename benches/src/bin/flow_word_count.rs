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
//! * `channels`: the flow's per-word partition written by hand (threads, `mpsc` batches of
//!   4096 words, a thread's own partition counted in place): what that algorithm costs
//!   without a library;
//! * `flow`: `Flow::from_enumerable(lines).flat_map(split).partition(key: word).reduce(map)`;
//! * `flow-combined`: the same with a per-stage `reduce` before the partition (a combiner).
//!
//! Every result is checked against the README checksums (100 MB: 22,882,159 words, 50,000
//! distinct, `ba` 2,008,054 times, sum of squared counts 6,631,462,947,453) and against the
//! sequential counts; any mismatch exits with status 1. It prints words/s per variant (median
//! of the runs), the ratios flow / rayon, flow / sequential and flow / channels, the CPU time
//! and the peak resident memory (`VmHWM`). `--only VARIANT` runs one variant (once, unless `--runs`), so
//! that each variant's peak memory can be read from its own process. `--partition-demand N`
//! sets the `max_demand` of the flows' partitioned layer (weir-flow's default is 10,000).

use std::process::ExitCode;
use std::time::Duration;

use weir_benches::flow_harness::{exit_code, run_interleaved, Computed, Input, Options, Rates};
use weir_benches::flow_shapes::{
    count_words_channels, count_words_flow, count_words_flow_combined, count_words_rayon,
    count_words_sequential, load_words, mib, WordSummary,
};

const VARIANTS: [&str; 5] = ["sequential", "rayon", "channels", "flow", "flow-combined"];
const USAGE: &str =
    "usage: flow_word_count [--only sequential|rayon|channels|flow|flow-combined] [--runs N] [--mb N] \
                     [--partition-demand N]";

fn main() -> ExitCode {
    exit_code(run(), USAGE)
}

fn rate(words: u64, time: Duration) -> f64 {
    words as f64 / time.as_secs_f64()
}

fn run() -> Result<bool, String> {
    let options = Options::from_env(&VARIANTS, "mb", 100)?;
    let mb = options.size;
    let partition_demand = options.partition_demand;
    let input = Input::load("words", || load_words(mb), &options)?;
    let (text, chunks, runtime) = (input.text, &input.chunks, &input.runtime);

    let readme = (mb == 100).then(WordSummary::readme_100mb);
    let compute = |variant: &str| match variant {
        "sequential" => Ok(Computed::Map(count_words_sequential(text))),
        "rayon" => Ok(Computed::Map(count_words_rayon(chunks))),
        "channels" => Ok(Computed::Map(count_words_channels(chunks, runtime.metrics().num_workers()))),
        "flow" => runtime.block_on(count_words_flow(text, partition_demand)).map(Computed::Pairs),
        _ => runtime.block_on(count_words_flow_combined(text, partition_demand)).map(Computed::Pairs),
    };
    let Some(measured) = run_interleaved(&options, readme.as_ref(), "counts", compute, |sample, counts| {
        let summary = WordSummary::of(counts.iter().map(|(w, c)| (*w, *c)));
        println!(
            "run {}  {:<14} {:>8.1} ms  {:>7.1} M words/s  cpu {:>7.1} ms  peak RSS {:>6.1} MiB  words {}  distinct {}  \
             top {:?} {}  sum of squares {}",
            sample.run,
            sample.variant,
            sample.time.as_secs_f64() * 1e3,
            rate(summary.words, sample.time) / 1e6,
            sample.cpu.as_secs_f64() * 1e3,
            mib(sample.hwm),
            summary.words,
            summary.distinct,
            summary.top_word,
            summary.top_count,
            summary.sum_of_squares
        );
        summary
    }) else {
        return Ok(false);
    };
    let words = readme.as_ref().map_or_else(|| text.split_ascii_whitespace().count() as u64, |r| r.words);

    println!();
    let rates = Rates::print_medians(26, options.runs, words, "words", &options.variants, &measured.times);
    rates.print_flow_ratios(&["flow", "flow-combined"], "rayon", 0.8, "sequential");
    rates.print_ratio("rayon", "sequential");
    rates.print_ratio("channels", "rayon");
    rates.print_ratio("flow", "channels");
    measured.print_memory_and_checks(&input, &options, readme.is_some(), "--mb 100");
    Ok(true)
}
