//! What the `flow_*` programs share: the exit status, the common command line, loading the
//! input, the interleaved run loop (time, CPU, peak RSS, checks) and the summary lines.
//!
//! Each program keeps what is specific to it: its variants, its per-run line and its checks.

use std::fmt::Debug;
use std::hash::Hash;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use rustc_hash::FxHashMap;
use tokio::runtime::Runtime;

use crate::flow_shapes::{cpu_time, line_chunks, median, mib, runtime, status_kib, timed, Args};

/// The exit status of a program whose `run` gives `Ok(true)` when every check passed,
/// `Ok(false)` on a failure already reported (status 1), or a usage error (status 2, printed
/// with `usage`).
pub fn exit_code(result: Result<bool, String>, usage: &str) -> ExitCode {
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(message) => {
            eprintln!("error: {message}\n{usage}");
            ExitCode::from(2)
        }
    }
}

/// The command line shared by the programs that read one corpus: `--only VARIANT`, `--runs N`,
/// `--partition-demand N` and one number for the input's size (`--mb N`, `--events N`).
#[derive(Debug, Clone)]
pub struct Options {
    /// The variants to run, in order.
    pub variants: Vec<&'static str>,
    /// Runs of every variant (1 with `--only`, 3 otherwise, unless `--runs`).
    pub runs: u64,
    /// The input's size.
    pub size: u64,
    /// The `max_demand` of the flows' partitioned layer (`None`: weir-flow's default).
    pub partition_demand: Option<usize>,
}

impl Options {
    /// Parses the process's arguments; `all` are the program's variants, `size_flag` names the
    /// input's size (without `--`) and `default_size` is its default.
    ///
    /// # Errors
    ///
    /// On an unknown argument or variant, or a value that is not a number.
    pub fn from_env(all: &[&'static str], size_flag: &str, default_size: u64) -> Result<Options, String> {
        let args = Args::from_env();
        args.only_names(&["only", "runs", "partition-demand", size_flag])?;
        let only = args.value("only");
        if let Some(only) = only {
            if !all.contains(&only) {
                return Err(format!("unknown variant {only:?}"));
            }
        }
        let runs = args.number("runs", if only.is_some() { 1 } else { 3 })?.max(1);
        let size = args.number(size_flag, default_size)?;
        let partition_demand = match args.number("partition-demand", 0)? {
            0 => None,
            demand => Some(demand as usize),
        };
        let variants = all.iter().copied().filter(|v| only.is_none_or(|o| o == *v)).collect();
        Ok(Options { variants, runs, size, partition_demand })
    }
}

/// A corpus read into memory, with the runtime the flows run on.
#[derive(Debug)]
pub struct Input {
    /// The whole text.
    pub text: &'static str,
    /// The text in line-aligned chunks of about 64 KiB, for rayon.
    pub chunks: Vec<&'static str>,
    /// Lines of the text.
    pub lines: usize,
    /// The tokio runtime for the flows.
    pub runtime: Runtime,
    /// The peak resident memory (`VmHWM`, KiB) once the input is read.
    pub hwm_loaded: u64,
}

impl Input {
    /// Reads the `corpus` with `load` (one of the `load_*` of [`crate::flow_shapes`]), starts
    /// the runtime and prints the input, the machine, the options and the peak RSS so far.
    ///
    /// # Errors
    ///
    /// When the corpus cannot be read or generated, or tokio does not start.
    pub fn load(
        corpus: &str,
        load: impl FnOnce() -> std::io::Result<(PathBuf, &'static str, bool)>,
        options: &Options,
    ) -> Result<Input, String> {
        let (loaded, load_time) = timed(load);
        let (path, text, generated) =
            loaded.map_err(|e| format!("reading or generating the {corpus} corpus: {e}"))?;
        let chunks = line_chunks(text, 64 * 1024);
        let lines = text.lines().count();
        let runtime = runtime().map_err(|e| format!("starting tokio: {e}"))?;
        println!(
            "input {} ({:.1} MB, {} lines, {} chunks of ~64 KiB) {} in {:.2} s",
            path.display(),
            text.len() as f64 / 1e6,
            lines,
            chunks.len(),
            if generated { "generated and read" } else { "read" },
            load_time.as_secs_f64()
        );
        println!(
            "cores {}  tokio workers {}  rayon threads {}  runs {}  variants {}  partition max_demand {}",
            std::thread::available_parallelism().map(usize::from).unwrap_or(0),
            runtime.metrics().num_workers(),
            rayon::current_num_threads(),
            options.runs,
            options.variants.join(", "),
            options.partition_demand.map_or_else(|| "default (10,000)".to_owned(), |d| d.to_string())
        );
        let hwm_loaded = status_kib("VmHWM");
        println!("peak RSS after reading the input: {:.1} MiB", mib(hwm_loaded));
        Ok(Input { text, chunks, lines, runtime, hwm_loaded })
    }
}

/// What a variant returns: sequential and rayon build the map, a flow collects (key, value)
/// pairs (made a map outside the timing, for the checks).
#[derive(Debug)]
pub enum Computed<K, V> {
    /// A map built by the variant.
    Map(FxHashMap<K, V>),
    /// The pairs a flow collected, each key once.
    Pairs(Vec<(K, V)>),
}

/// One run of one variant, as measured.
#[derive(Debug, Clone, Copy)]
pub struct Sample<'a> {
    /// The run, from 1.
    pub run: u64,
    /// The variant.
    pub variant: &'a str,
    /// Wall-clock time.
    pub time: Duration,
    /// CPU time of all the process's threads.
    pub cpu: Duration,
    /// The peak resident memory (`VmHWM`, KiB) right after the computation.
    pub hwm: u64,
}

/// What the interleaved runs measured.
#[derive(Debug, Clone)]
pub struct Measured {
    /// The times of each variant (in the order of [`Options::variants`]), one per run.
    pub times: Vec<Vec<Duration>>,
    /// The peak resident memory (`VmHWM`, KiB) after the computations, before the checks.
    pub hwm_computed: u64,
}

/// Runs every variant `options.runs` times, interleaved: times each `compute`, reads the CPU
/// time and the peak RSS, then has `report` print the run's line and summarize the result.
/// Each summary is checked against `readme` (when given) and each map against the first
/// variant's (`what` names the maps in the message, e.g. "counts").
///
/// Returns `None` when a flow failed or a check did not pass (both reported on stderr).
pub fn run_interleaved<K: Hash + Eq, V: PartialEq, S: PartialEq + Debug>(
    options: &Options,
    readme: Option<&S>,
    what: &str,
    mut compute: impl FnMut(&str) -> Result<Computed<K, V>, weir_flow::Error>,
    mut report: impl FnMut(&Sample<'_>, &FxHashMap<K, V>) -> S,
) -> Option<Measured> {
    let variants = &options.variants;
    let mut reference: Option<FxHashMap<K, V>> = None;
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); variants.len()];
    let mut ok = true;
    let mut hwm_computed = 0;
    for run in 1..=options.runs {
        for (v, variant) in variants.iter().enumerate() {
            let cpu_before = cpu_time();
            let (computed, time) = timed(|| compute(variant));
            let cpu = cpu_time().saturating_sub(cpu_before);
            // Before the checks build anything: the peak of the computations so far.
            let hwm = status_kib("VmHWM");
            hwm_computed = hwm_computed.max(hwm);
            let map = match computed {
                Ok(Computed::Map(map)) => map,
                Ok(Computed::Pairs(pairs)) => pairs.into_iter().collect(),
                Err(e) => {
                    eprintln!("{variant}: the flow failed: {e}");
                    return None;
                }
            };
            let summary = report(&Sample { run, variant, time, cpu, hwm }, &map);
            if let Some(expected) = readme {
                if summary != *expected {
                    eprintln!("MISMATCH: {variant} gives {summary:?}, the README says {expected:?}");
                    ok = false;
                }
            }
            match &reference {
                None => reference = Some(map),
                Some(reference) if *reference != map => {
                    eprintln!("MISMATCH: {variant} {what} differ from {}'s", variants[0]);
                    ok = false;
                }
                Some(_) => {}
            }
            times[v].push(time);
        }
    }
    if !ok {
        eprintln!("checksum mismatch: results are not comparable");
        return None;
    }
    Some(Measured { times, hwm_computed })
}

impl Measured {
    /// Prints the peak RSS line and the checks line; `readme_for` names the input size the
    /// README checksums are for (e.g. "--mb 100"), `readme_checked` whether they were checked.
    pub fn print_memory_and_checks(
        &self,
        input: &Input,
        options: &Options,
        readme_checked: bool,
        readme_for: &str,
    ) {
        println!(
            "peak RSS (VmHWM): {:.1} MiB after reading the input, {:.1} MiB after the computations \
             (+{:.1} MiB), {:.1} MiB with the checks ({})",
            mib(input.hwm_loaded),
            mib(self.hwm_computed),
            mib(self.hwm_computed.saturating_sub(input.hwm_loaded)),
            mib(status_kib("VmHWM")),
            options.variants.join(", ")
        );
        if readme_checked {
            println!("checks: every run matches the README checksums and the other variants");
        } else {
            println!("checks: every run matches the other variants (README checksums are for {readme_for})");
        }
    }
}

/// Items per second of each variant at its median time, for the ratio lines.
#[derive(Debug, Clone)]
pub struct Rates<'a>(Vec<(&'a str, f64)>);

impl<'a> Rates<'a> {
    /// Prints the table of median and best times of `variants` (`times` in the same order) over
    /// `runs` runs of `items` items each (`unit`: what the items are), the first column
    /// `label_width` wide; returns the median rates.
    pub fn print_medians(
        label_width: usize,
        runs: u64,
        items: u64,
        unit: &str,
        variants: &[&'a str],
        times: &[Vec<Duration>],
    ) -> Rates<'a> {
        println!(
            "{:<label_width$} {:>10} {:>14} {:>10}",
            format!("variant (median of {runs})"),
            "time",
            format!("{unit}/s"),
            "best"
        );
        let mut rates = Vec::new();
        for (variant, times) in variants.iter().zip(times) {
            let med = median(times);
            let best = times.iter().min().copied().unwrap_or_default();
            let rate = items as f64 / med.as_secs_f64();
            rates.push((*variant, rate));
            println!(
                "{variant:<label_width$} {:>7.1} ms {:>10.1} M/s {:>7.1} ms",
                med.as_secs_f64() * 1e3,
                rate / 1e6,
                best.as_secs_f64() * 1e3
            );
        }
        Rates(rates)
    }

    /// The median rate of `variant`, if it ran.
    pub fn of(&self, variant: &str) -> Option<f64> {
        self.0.iter().find(|(v, _)| *v == variant).map(|(_, r)| *r)
    }

    /// Prints `a / b = ratio` when both ran.
    pub fn print_ratio(&self, a: &str, b: &str) {
        if let (Some(a_rate), Some(b_rate)) = (self.of(a), self.of(b)) {
            println!("{a} / {b:<10} = {:.2}x", a_rate / b_rate);
        }
    }

    /// For each of `flows` that ran: its ratio to `targeted` against `target` (met or MISSED),
    /// then its ratio to `other`.
    pub fn print_flow_ratios(&self, flows: &[&str], targeted: &str, target: f64, other: &str) {
        for flow in flows {
            let Some(flow_rate) = self.of(flow) else { continue };
            if let Some(base) = self.of(targeted) {
                let ratio = flow_rate / base;
                let verdict = if ratio >= target { "met" } else { "MISSED" };
                println!("{flow} / {targeted:<10} = {ratio:.2}x  (target >= {target}x: {verdict})");
            }
            self.print_ratio(flow, other);
        }
    }
}
