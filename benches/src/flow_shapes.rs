//! The `weir-flow` measurements: each computation written three ways on the same input.
//!
//! * **sequential**: one fused iterator on one thread, counting into one hash map;
//! * **rayon**: `par_iter` over line-aligned chunks, `fold` into one map per rayon job, `reduce`
//!   by merging the maps;
//! * **flow**: `weir-flow`, as Flow's documentation writes it (`from_enumerable` of lines, fused
//!   mappers, `partition` by key, `reduce` into a map per stage).
//!
//! The computations:
//!
//! * **word count** over the words corpus ([`count_words_sequential`], [`count_words_rayon`],
//!   [`count_words_flow`], and [`count_words_flow_combined`], which counts per stage before the
//!   partition, like a map-side combiner);
//! * **map/filter/reduce without partition**: the wrapping sum of the squares of the even
//!   numbers of `0..n` ([`sum_even_squares_sequential`], [`sum_even_squares_flow`]...);
//! * **event-window aggregation** over the events corpus: fixed 1-minute windows on
//!   `timestamp_ms`, the sum of `amount_cents` per (window, customer) ([`windows_sequential`],
//!   [`windows_rayon`], [`windows_flow`]). Sequential code and rayon key each event by
//!   `(timestamp_ms / 60_000, customer_id)`; the flow partitions by customer and uses
//!   `Window::fixed` on the timestamp, emitting each window's sums on its final trigger.
//!
//! Inputs are read once into memory and leaked (`&'static str`), so every variant borrows
//! words and lines from the same buffer and none allocates per word: the measurements compare
//! the counting, not the reading. All hash maps use the same hasher (`rustc-hash`'s Fx).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rayon::prelude::*;
use rustc_hash::FxHashMap;
use weir_flow::{emit, Flow, Partition, Trigger, Window, WindowId};

use crate::corpus::{write_events_file, write_words_file, Event};

/// Word → occurrences, borrowing the words from the text.
pub type WordCounts = FxHashMap<&'static str, u64>;

/// (window, customer) → sum of `amount_cents`.
pub type WindowSums = FxHashMap<(u64, u64), u64>;

/// The length of a window, in milliseconds.
pub const WINDOW_MS: u64 = 60_000;

/// The directory the generated inputs go to: `target/bench-inputs/` of the workspace (never
/// committed), or `$BENCH_INPUTS` when set.
pub fn inputs_dir() -> PathBuf {
    match std::env::var_os("BENCH_INPUTS") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let benches = Path::new(env!("CARGO_MANIFEST_DIR"));
            benches.parent().unwrap_or(benches).join("target/bench-inputs")
        }
    }
}

/// Reads `path` into a leaked `&'static str`, first writing it with `generate` if it does
/// not exist (into a temporary file renamed at the end, so an interrupted run leaves no
/// truncated input behind). Returns the text and whether it was generated.
///
/// # Errors
///
/// When generating or reading fails, or the file is not UTF-8.
pub fn load_or_generate(
    path: &Path,
    generate: impl FnOnce(&Path) -> std::io::Result<()>,
) -> std::io::Result<(&'static str, bool)> {
    let generated = !path.exists();
    if generated {
        let partial = path.with_extension("partial");
        generate(&partial)?;
        std::fs::rename(&partial, path)?;
    }
    let text = std::fs::read_to_string(path)?;
    Ok((Box::leak(text.into_boxed_str()), generated))
}

/// The words corpus of `mb` MB (`target/bench-inputs/words-{mb}mb.txt`), generated if missing.
///
/// # Errors
///
/// See [`load_or_generate`].
pub fn load_words(mb: u64) -> std::io::Result<(PathBuf, &'static str, bool)> {
    let path = inputs_dir().join(format!("words-{mb}mb.txt"));
    let (text, generated) = load_or_generate(&path, |p| write_words_file(mb, p).map(drop))?;
    Ok((path, text, generated))
}

/// The events corpus of `n` events (`target/bench-inputs/events-{n}.csv`), generated if missing.
///
/// # Errors
///
/// See [`load_or_generate`].
pub fn load_events(n: u64) -> std::io::Result<(PathBuf, &'static str, bool)> {
    let path = inputs_dir().join(format!("events-{n}.csv"));
    let (text, generated) = load_or_generate(&path, |p| write_events_file(n, p).map(drop))?;
    Ok((path, text, generated))
}

/// Splits `text` into pieces of about `size` bytes that end at line ends.
pub fn line_chunks(text: &'static str, size: usize) -> Vec<&'static str> {
    let mut chunks = Vec::with_capacity(text.len() / size.max(1) + 1);
    let mut rest = text;
    while !rest.is_empty() {
        let cut = match rest.get(size..).and_then(|tail| tail.find('\n')) {
            Some(newline) => size + newline + 1,
            None => rest.len(),
        };
        let (chunk, tail) = rest.split_at(cut);
        chunks.push(chunk);
        rest = tail;
    }
    chunks
}

/// The words of a piece of text, as every variant splits them.
#[inline]
pub fn words(text: &'static str) -> std::str::SplitAsciiWhitespace<'static> {
    text.split_ascii_whitespace()
}

/// Merges `b` into `a` (the smaller into the larger), adding the values of equal keys.
pub fn merge_sums<K: std::hash::Hash + Eq>(a: FxHashMap<K, u64>, b: FxHashMap<K, u64>) -> FxHashMap<K, u64> {
    let (mut big, small) = if a.len() >= b.len() { (a, b) } else { (b, a) };
    for (k, v) in small {
        *big.entry(k).or_insert(0) += v;
    }
    big
}

/// Sets the partition's `max_demand` when given (weir-flow's default, 10,000, otherwise).
pub fn with_demand<T, R>(partition: Partition<T, R>, max_demand: Option<usize>) -> Partition<T, R> {
    match max_demand {
        Some(max_demand) => partition.max_demand(max_demand),
        None => partition,
    }
}

// ---------------------------------------------------------------------------------------------
// Word count

/// What a word count must give; [`WordSummary::README_100MB`] holds the checksums of the
/// 100 MB corpus from `shared/bench-inputs/README.md`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WordSummary {
    /// Words in all.
    pub words: u64,
    /// Distinct words.
    pub distinct: u64,
    /// The most frequent word (the smallest of equals).
    pub top_word: String,
    /// Its count.
    pub top_count: u64,
    /// The sum of the squared counts.
    pub sum_of_squares: u64,
}

impl WordSummary {
    /// The checksums of `gen_corpus words 100`.
    pub fn readme_100mb() -> WordSummary {
        WordSummary {
            words: 22_882_159,
            distinct: 50_000,
            top_word: "ba".into(),
            top_count: 2_008_054,
            sum_of_squares: 6_631_462_947_453,
        }
    }

    /// Summarizes (word, count) pairs, each word once.
    pub fn of<'a>(counts: impl IntoIterator<Item = (&'a str, u64)>) -> WordSummary {
        let mut summary =
            WordSummary { words: 0, distinct: 0, top_word: String::new(), top_count: 0, sum_of_squares: 0 };
        let mut top: Option<(&str, u64)> = None;
        for (word, count) in counts {
            summary.words += count;
            summary.distinct += 1;
            summary.sum_of_squares += count * count;
            if top.is_none_or(|(w, c)| count > c || (count == c && word < w)) {
                top = Some((word, count));
            }
        }
        if let Some((word, count)) = top {
            summary.top_word = word.to_owned();
            summary.top_count = count;
        }
        summary
    }
}

/// Sequential word count: one fused iterator, one map.
pub fn count_words_sequential(text: &'static str) -> WordCounts {
    let mut counts = WordCounts::default();
    for word in words(text) {
        *counts.entry(word).or_insert(0) += 1;
    }
    counts
}

/// rayon word count: `par_iter` over line-aligned chunks, `fold` into a map per job, `reduce`
/// by merging maps.
pub fn count_words_rayon(chunks: &[&'static str]) -> WordCounts {
    chunks
        .par_iter()
        .fold(WordCounts::default, |mut counts, chunk| {
            for word in words(chunk) {
                *counts.entry(word).or_insert(0) += 1;
            }
            counts
        })
        .reduce(WordCounts::default, merge_sums)
}

/// Hand-written per-word partition, the algorithm of [`count_words_flow`] without a library:
/// `threads` threads each split their share of the chunks and route every word by the same
/// hash as `Partition::key`: words of their own partition go straight into their map, the
/// others to the owning thread over a channel in batches of 4096; each thread counts the
/// batches it receives between its chunks and at the end. The plain alternative to a flow
/// whose words cross a partition.
pub fn count_words_channels(chunks: &[&'static str], threads: usize) -> WordCounts {
    use std::hash::BuildHasher;
    use std::sync::mpsc;
    const BATCH: usize = 4096;
    let threads = threads.max(1);
    let route = |word: &str| {
        let h = rustc_hash::FxBuildHasher.hash_one((0x9E37_79B9_7F4A_7C15u64, word));
        ((u128::from(h) * threads as u128) >> 64) as usize
    };
    let (senders, receivers): (Vec<_>, Vec<_>) =
        (0..threads).map(|_| mpsc::channel::<Vec<&'static str>>()).unzip();
    std::thread::scope(|scope| {
        let workers: Vec<_> = receivers
            .into_iter()
            .enumerate()
            .map(|(me, received)| {
                let senders = senders.clone();
                let share = &chunks[chunks.len() * me / threads..chunks.len() * (me + 1) / threads];
                scope.spawn(move || {
                    let mut counts = WordCounts::default();
                    let count = |counts: &mut WordCounts, batch: Vec<&'static str>| {
                        for word in batch {
                            *counts.entry(word).or_insert(0) += 1;
                        }
                    };
                    let mut outgoing: Vec<Vec<&'static str>> =
                        (0..threads).map(|_| Vec::with_capacity(BATCH)).collect();
                    for chunk in share {
                        for word in words(chunk) {
                            let p = route(word);
                            if p == me {
                                *counts.entry(word).or_insert(0) += 1;
                            } else {
                                outgoing[p].push(word);
                                if outgoing[p].len() == BATCH {
                                    let batch =
                                        std::mem::replace(&mut outgoing[p], Vec::with_capacity(BATCH));
                                    // A receiver is gone only if its thread panicked; the scope re-raises that.
                                    let _ = senders[p].send(batch);
                                }
                            }
                        }
                        while let Ok(batch) = received.try_recv() {
                            count(&mut counts, batch);
                        }
                    }
                    for (p, batch) in outgoing.into_iter().enumerate() {
                        if !batch.is_empty() {
                            let _ = senders[p].send(batch);
                        }
                    }
                    drop(senders);
                    for batch in received {
                        count(&mut counts, batch);
                    }
                    counts
                })
            })
            .collect();
        drop(senders);
        workers
            .into_iter()
            .map(|worker| worker.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            .fold(WordCounts::default(), merge_sums)
    })
}

/// weir-flow word count, as Flow writes it: lines → `flat_map` into words → `partition` by
/// word → `reduce` into a map per stage. Every word is an event that crosses the partition.
///
/// # Errors
///
/// When the flow fails.
pub async fn count_words_flow(
    text: &'static str,
    partition_demand: Option<usize>,
) -> Result<Vec<(&'static str, u64)>, weir_flow::Error> {
    Flow::from_enumerable(text.lines())
        .flat_map(words)
        .partition(with_demand(Partition::new().key(|word: &&'static str| *word), partition_demand))
        .reduce(WordCounts::default, |word, mut counts: WordCounts| {
            *counts.entry(word).or_insert(0) += 1;
            counts
        })
        .collect()
        .await
}

/// weir-flow word count with a combiner: each stage of the first layer counts its lines'
/// words into a map (a `reduce` before the `partition`), so only (word, count) pairs, one per
/// distinct word per stage, cross the partition, where a second `reduce` adds them up.
///
/// # Errors
///
/// When the flow fails.
pub async fn count_words_flow_combined(
    text: &'static str,
    partition_demand: Option<usize>,
) -> Result<Vec<(&'static str, u64)>, weir_flow::Error> {
    Flow::from_enumerable(text.lines())
        .flat_map(words)
        .reduce(WordCounts::default, |word, mut counts: WordCounts| {
            *counts.entry(word).or_insert(0) += 1;
            counts
        })
        .partition(with_demand(
            Partition::new().key(|(word, _): &(&'static str, u64)| *word),
            partition_demand,
        ))
        .reduce(WordCounts::default, |(word, n), mut counts: WordCounts| {
            *counts.entry(word).or_insert(0) += n;
            counts
        })
        .collect()
        .await
}

// ---------------------------------------------------------------------------------------------
// map / filter / reduce without partition

/// The map of the map/filter/reduce shape.
#[inline]
pub fn square(x: u64) -> u64 {
    x.wrapping_mul(x)
}

/// The filter of the map/filter/reduce shape.
#[inline]
pub fn is_even(x: &u64) -> bool {
    x % 2 == 0
}

/// The wrapping sum of the squares of the even numbers of `0..n`, as one fused iterator.
pub fn sum_even_squares_sequential(n: u64) -> u64 {
    (0..n).filter(is_even).map(square).fold(0, u64::wrapping_add)
}

/// The same with rayon's `into_par_iter` (for reference).
pub fn sum_even_squares_rayon(n: u64) -> u64 {
    (0..n).into_par_iter().filter(is_even).map(square).reduce(|| 0, u64::wrapping_add)
}

/// The same with weir-flow: `from_enumerable(0..n)`, fused `filter` and `map`, `reduce` per
/// stage (no partition), the stages' sums added at the end.
///
/// # Errors
///
/// When the flow fails.
pub async fn sum_even_squares_flow(n: u64) -> Result<u64, weir_flow::Error> {
    let sums: Vec<u64> = Flow::from_enumerable(0..n)
        .filter(is_even)
        .map(square)
        .reduce(|| 0u64, u64::wrapping_add)
        .emit(emit::State)
        .collect()
        .await?;
    Ok(sums.into_iter().fold(0, u64::wrapping_add))
}

/// The same with one source per part (`from_enumerables`, `parts` ranges read in parallel).
///
/// # Errors
///
/// When the flow fails.
pub async fn sum_even_squares_flow_sources(n: u64, parts: u64) -> Result<u64, weir_flow::Error> {
    let parts = parts.max(1);
    let ranges = (0..parts).map(|i| (n * i / parts)..(n * (i + 1) / parts));
    let sums: Vec<u64> = Flow::from_enumerables(ranges)
        .filter(is_even)
        .map(square)
        .reduce(|| 0u64, u64::wrapping_add)
        .emit(emit::State)
        .collect()
        .await?;
    Ok(sums.into_iter().fold(0, u64::wrapping_add))
}

/// The events map/filter/reduce as one fused iterator: parse each line, keep the events of
/// even customers, square their amounts, sum. Per event it does more work (parsing) than the
/// range shape.
pub fn events_map_reduce_sequential(text: &'static str) -> u64 {
    text.lines()
        .filter_map(Event::parse)
        .filter(|e| e.customer_id % 2 == 0)
        .map(|e| e.amount_cents * e.amount_cents)
        .sum()
}

/// The events map/filter/reduce with rayon over line-aligned chunks.
pub fn events_map_reduce_rayon(chunks: &[&'static str]) -> u64 {
    chunks
        .par_iter()
        .map(|chunk| {
            chunk
                .lines()
                .filter_map(Event::parse)
                .filter(|e| e.customer_id % 2 == 0)
                .map(|e| e.amount_cents * e.amount_cents)
                .sum::<u64>()
        })
        .sum()
}

/// The events map/filter/reduce with weir-flow: `from_enumerable(lines)`, fused `filter_map`
/// (parse), `filter` and `map`, `reduce` per stage (no partition).
///
/// # Errors
///
/// When the flow fails.
pub async fn events_map_reduce_flow(text: &'static str) -> Result<u64, weir_flow::Error> {
    let sums: Vec<u64> = Flow::from_enumerable(text.lines())
        .filter_map(Event::parse)
        .filter(|e: &Event| e.customer_id % 2 == 0)
        .map(|e: Event| e.amount_cents * e.amount_cents)
        .reduce(|| Some(0u64), |x, sum: Option<u64>| sum.map(|s| s + x))
        .collect()
        .await?;
    Ok(sums.into_iter().sum())
}

// ---------------------------------------------------------------------------------------------
// Event-window aggregation

/// What a window aggregation must give; [`WindowSummary::readme_5m`] holds the checksums of
/// the 5,000,000-event corpus from `shared/bench-inputs/README.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSummary {
    /// (window, customer) groups.
    pub groups: u64,
    /// Distinct windows.
    pub windows: u64,
    /// The sum of all groups' sums.
    pub total: u64,
}

impl WindowSummary {
    /// The checksums of `gen_corpus events 5000000`.
    pub fn readme_5m() -> WindowSummary {
        WindowSummary { groups: 1_585_858, windows: 168, total: 249_964_326_078 }
    }

    /// Summarizes ((window, customer), sum) pairs, each group once.
    pub fn of(sums: impl IntoIterator<Item = ((u64, u64), u64)>) -> WindowSummary {
        let mut windows = HashSet::new();
        let mut summary = WindowSummary { groups: 0, windows: 0, total: 0 };
        for ((window, _), sum) in sums {
            summary.groups += 1;
            summary.total += sum;
            windows.insert(window);
        }
        summary.windows = windows.len() as u64;
        summary
    }
}

/// The (window, customer) key and amount of one events line; `None` for a malformed line.
#[inline]
pub fn keyed_amount(line: &str) -> Option<((u64, u64), u64)> {
    let e = Event::parse(line)?;
    Some(((e.timestamp_ms / WINDOW_MS, e.customer_id), e.amount_cents))
}

/// Sequential window sums: one fused iterator over the lines, one map.
pub fn windows_sequential(text: &'static str) -> WindowSums {
    let mut sums = WindowSums::default();
    for (key, amount) in text.lines().filter_map(keyed_amount) {
        *sums.entry(key).or_insert(0) += amount;
    }
    sums
}

/// rayon window sums: `par_iter` over line-aligned chunks, `fold` into a map per job,
/// `reduce` by merging maps.
pub fn windows_rayon(chunks: &[&'static str]) -> WindowSums {
    chunks
        .par_iter()
        .fold(WindowSums::default, |mut sums, chunk| {
            for (key, amount) in chunk.lines().filter_map(keyed_amount) {
                *sums.entry(key).or_insert(0) += amount;
            }
            sums
        })
        .reduce(WindowSums::default, merge_sums)
}

/// How late (in event time) an event may reach its partition in [`windows_flow`]: the
/// stages of the first layer read the lines in interleaved batches, so a partition sees two
/// streams, each in time order, up to a few thousand lines apart. Ten minutes is far more.
pub const WINDOW_LATENESS: Duration = Duration::from_secs(600);

/// weir-flow window sums, with event-time windows: lines → `filter_map` parse into
/// (timestamp, customer, amount) → `partition` by customer → fixed 1-minute windows on the
/// timestamp (allowed lateness [`WINDOW_LATENESS`]) → `reduce` into a map per customer →
/// on the final trigger of each window, one ((minute, customer), sum) per customer.
///
/// # Errors
///
/// When the flow fails.
pub async fn windows_flow(
    text: &'static str,
    partition_demand: Option<usize>,
) -> Result<Vec<((u64, u64), u64)>, weir_flow::Error> {
    type Timed = (u64, u64, u64);
    let window = Window::fixed(Duration::from_millis(WINDOW_MS), |(time, _, _): &Timed| *time)
        .allowed_lateness(WINDOW_LATENESS);
    Flow::from_enumerable(text.lines())
        .filter_map(|line| Event::parse(line).map(|e| (e.timestamp_ms, e.customer_id, e.amount_cents)))
        .partition(with_demand(Partition::new().key(|(_, customer, _): &Timed| *customer), partition_demand))
        .window(window)
        .reduce(FxHashMap::<u64, u64>::default, |(_, customer, amount): Timed, mut sums| {
            *sums.entry(customer).or_insert(0) += amount;
            sums
        })
        .on_trigger(|sums, trigger: &Trigger| match trigger.window {
            WindowId::Fixed { start, .. } if trigger.is_done() => {
                let rows: Vec<_> =
                    sums.iter().map(|(&customer, &sum)| ((start / WINDOW_MS, customer), sum)).collect();
                (rows, sums)
            }
            // The watermark passed the window, but late events may still come.
            _ => (Vec::new(), sums),
        })
        .collect()
        .await
}

// ---------------------------------------------------------------------------------------------
// Measuring

/// Runs `f`, returning its result and how long it took.
pub fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed())
}

/// A field of `/proc/self/status` in KiB (e.g. `VmHWM`, `VmRSS`); 0 where unavailable.
pub fn status_kib(field: &str) -> u64 {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return 0;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// CPU time used so far by the process, threads that have exited included (a variant's
/// scoped threads); zero where the clock is not available.
pub fn cpu_time() -> Duration {
    cpu_time::ProcessTime::try_now().map_or(Duration::ZERO, |t| t.as_duration())
}

/// The command line of the `flow_*` programs: `--only VARIANT`, `--runs N` and named numbers.
#[derive(Debug, Clone)]
pub struct Args {
    args: Vec<String>,
}

impl Args {
    /// The process's arguments.
    pub fn from_env() -> Args {
        Args { args: std::env::args().skip(1).collect() }
    }

    /// The value after `--name`, if given.
    pub fn value(&self, name: &str) -> Option<&str> {
        let flag = format!("--{name}");
        self.args.iter().position(|a| *a == flag).and_then(|i| self.args.get(i + 1)).map(String::as_str)
    }

    /// The number after `--name` (underscores allowed), or `default`.
    ///
    /// # Errors
    ///
    /// When the value is missing or not a number.
    pub fn number(&self, name: &str, default: u64) -> Result<u64, String> {
        let flag = format!("--{name}");
        match self.args.iter().position(|a| *a == flag) {
            None => Ok(default),
            Some(i) => {
                let raw = self.args.get(i + 1).ok_or_else(|| format!("{flag} needs a value"))?;
                raw.replace('_', "").parse().map_err(|e| format!("{flag} {raw:?}: {e}"))
            }
        }
    }

    /// Checks that every argument is one of `--name value` for the given names.
    ///
    /// # Errors
    ///
    /// On an unknown argument.
    pub fn only_names(&self, names: &[&str]) -> Result<(), String> {
        let mut rest = self.args.iter();
        while let Some(arg) = rest.next() {
            match arg.strip_prefix("--") {
                Some(name) if names.contains(&name) => {
                    rest.next();
                }
                _ => return Err(format!("unknown argument {arg:?}")),
            }
        }
        Ok(())
    }
}

/// KiB as MiB.
pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The median of some durations (the upper one of an even count).
///
/// # Panics
///
/// When `times` is empty.
pub fn median(times: &[Duration]) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2]
}

/// A tokio runtime with one worker per core, for the flow variants.
///
/// # Errors
///
/// When the runtime cannot start.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corpus::{write_events, write_words};

    fn leak(bytes: Vec<u8>) -> &'static str {
        Box::leak(String::from_utf8(bytes).expect("ascii").into_boxed_str())
    }

    #[test]
    fn line_chunks_cover_the_text_at_line_ends() {
        let text: &'static str = "a b\ncc d\neee\nf\n";
        for size in [1, 2, 4, 100] {
            let chunks = line_chunks(text, size);
            assert_eq!(chunks.concat(), text);
            assert!(chunks.iter().all(|c| c.ends_with('\n')));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn word_counts_agree() -> Result<(), weir_flow::Error> {
        let mut bytes = Vec::new();
        write_words(1, &mut bytes).expect("writing to a Vec");
        let text = leak(bytes);
        let sequential = count_words_sequential(text);
        assert_eq!(WordSummary::of(sequential.iter().map(|(w, c)| (*w, *c))).words, 228_869);
        assert_eq!(count_words_rayon(&line_chunks(text, 4096)), sequential);
        for threads in [1, 3] {
            assert_eq!(count_words_channels(&line_chunks(text, 4096), threads), sequential);
        }
        let flow: WordCounts = count_words_flow(text, None).await?.into_iter().collect();
        assert_eq!(flow, sequential);
        let flow: WordCounts = count_words_flow(text, Some(100_000)).await?.into_iter().collect();
        assert_eq!(flow, sequential);
        let combined = count_words_flow_combined(text, None).await?;
        assert_eq!(combined.len(), sequential.len(), "each word once");
        assert_eq!(combined.into_iter().collect::<WordCounts>(), sequential);
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sums_of_even_squares_agree() -> Result<(), weir_flow::Error> {
        let n = 100_001;
        let expected =
            (0..n).filter(|x| x % 2 == 0).map(|x: u64| x.wrapping_mul(x)).fold(0, u64::wrapping_add);
        assert_eq!(sum_even_squares_sequential(n), expected);
        assert_eq!(sum_even_squares_rayon(n), expected);
        assert_eq!(sum_even_squares_flow(n).await?, expected);
        assert_eq!(sum_even_squares_flow_sources(n, 3).await?, expected);
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn events_map_reduce_agrees() -> Result<(), weir_flow::Error> {
        let mut bytes = Vec::new();
        write_events(20_000, &mut bytes).expect("writing to a Vec");
        let text = leak(bytes);
        let expected = crate::corpus::events(20_000)
            .filter(|e| e.customer_id % 2 == 0)
            .map(|e| e.amount_cents * e.amount_cents)
            .sum::<u64>();
        assert_eq!(events_map_reduce_sequential(text), expected);
        assert_eq!(events_map_reduce_rayon(&line_chunks(text, 4096)), expected);
        assert_eq!(events_map_reduce_flow(text).await?, expected);
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn window_sums_agree() -> Result<(), weir_flow::Error> {
        let mut bytes = Vec::new();
        write_events(50_000, &mut bytes).expect("writing to a Vec");
        let text = leak(bytes);
        let sequential = windows_sequential(text);
        let summary = WindowSummary::of(sequential.iter().map(|(k, v)| (*k, *v)));
        assert!(summary.windows >= 1 && summary.groups > summary.windows);
        assert_eq!(windows_rayon(&line_chunks(text, 4096)), sequential);
        let flow = windows_flow(text, Some(10_000)).await?;
        assert_eq!(flow.len(), sequential.len(), "each group once");
        assert_eq!(flow.into_iter().collect::<WindowSums>(), sequential);
        Ok(())
    }
}
