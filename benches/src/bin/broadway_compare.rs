//! weir-broadway against the same ingestion pipeline hand-written with tokio, in one process.
//!
//! ```text
//! cargo run --release -p weir-benches --bin broadway_compare -- [--messages N] [--runs N] [--max-demand N]
//! ```
//!
//! Without `--max-demand` it measures two weir configurations, each against the same
//! hand-written runs: processors with Broadway's default `max_demand` (10: chunks of 5
//! messages between stages) and with `max_demand` 100 (the batch size).
//!
//! Both pipelines take `N` (default 2,000,000) small messages (`u64`s, each with an
//! acknowledgement id) from memory, map each (`x * 2 + 1`), batch them by 100 (1 s timeout),
//! sum every batch, and count acknowledgements per batch:
//!
//! * weir: a `MemoryProducer` → 2 processors (`handle_message` maps) → one batcher
//!   (`batch_size` 100) → one batch processor (`handle_batch` sums) → `MemoryAcks` counts.
//!   Processors use `max_demand` 10 (Broadway's default) and 100, or `--max-demand`.
//! * hand-written: a source task → bounded mpsc → a map task → bounded mpsc →
//!   `chunks_timeout(100, 1 s)` → the batch handler (sums, then adds the batch's length to
//!   an ack counter).
//!
//! Runs alternate; medians are reported with the ratio weir / hand-written (messages per
//! second). Every run checks the sum and that every message was acknowledged exactly once
//! (weir: acknowledged successfully, none failed). The process counts heap allocations
//! (`stats_alloc`): "allocations/message" is each variant's total during its runs divided
//! by its messages. weir allocates per chunk and per batch, not per message: the figure
//! falls tenfold when chunks grow tenfold.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use weir_benches::flow_harness::exit_code;
use weir_benches::flow_shapes::{cpu_time, median, runtime, Args};
use weir_broadway::memory::MemoryProducer;
use weir_broadway::{
    BatchHandler, BatchInfo, BatcherOptions, BoxError, Handler, Message, Pipeline, ProcessorOptions,
    ProducerOptions,
};

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

const USAGE: &str = "usage: broadway_compare [--messages N] [--runs N] [--max-demand N]";
const BATCH_SIZE: usize = 100;
const BATCH_TIMEOUT: Duration = Duration::from_secs(1);

/// The per-message work of both pipelines.
fn map(x: u64) -> u64 {
    x.wrapping_mul(2).wrapping_add(1)
}

/// Sums what batches it is given.
#[derive(Default)]
struct Sum(AtomicU64);

impl Handler for Sum {
    type Data = u64;
    type Output = u64;

    async fn handle_message(&self, message: &mut Message<u64>) -> Result<u64, BoxError> {
        Ok(map(*message.data()))
    }
}

impl BatchHandler for Sum {
    async fn handle_batch(&self, messages: &mut [Message<u64>], _: &BatchInfo) -> Result<(), BoxError> {
        let sum = messages.iter().fold(0u64, |acc, m| acc.wrapping_add(*m.data()));
        self.0.fetch_add(sum, Ordering::Relaxed);
        Ok(())
    }
}

/// What a run produced: the wrapping sum of mapped values and the acknowledged count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Outcome {
    sum: u64,
    acked: u64,
}

async fn weir(messages: u64, max_demand: Option<usize>) -> Result<Outcome, String> {
    // `None` keeps the processors' default `max_demand`.
    let (producer, acks) = MemoryProducer::from_iter(0..messages);
    let mut processors = ProcessorOptions::new().concurrency(2);
    if let Some(max_demand) = max_demand {
        processors = processors.max_demand(max_demand);
    }
    let pipeline = Pipeline::builder("bench", Sum::default())
        .producer(producer, ProducerOptions::new())
        .processors(processors)
        .batcher("default", BatcherOptions::new().batch_size(BATCH_SIZE).batch_timeout(BATCH_TIMEOUT))
        .start()
        .await
        .map_err(|e| e.to_string())?;
    pipeline.wait().await.map_err(|e| e.to_string())?;
    if acks.failed() > 0 {
        return Err(format!("{} messages failed: {:?}", acks.failed(), acks.failures().first()));
    }
    Ok(Outcome { sum: pipeline.handler().0.load(Ordering::Relaxed), acked: acks.successful() as u64 })
}

/// A message of the hand-written pipeline: its value and its acknowledgement id.
struct Item {
    value: u64,
    id: u64,
}

async fn hand(messages: u64) -> Result<Outcome, String> {
    let (source_tx, mut source_rx) = tokio::sync::mpsc::channel::<Item>(1024);
    let (mapped_tx, mapped_rx) = tokio::sync::mpsc::channel::<Item>(1024);
    let source = tokio::spawn(async move {
        for id in 0..messages {
            if source_tx.send(Item { value: id, id }).await.is_err() {
                break;
            }
        }
    });
    let mapper = tokio::spawn(async move {
        while let Some(mut item) = source_rx.recv().await {
            item.value = map(item.value);
            if mapped_tx.send(item).await.is_err() {
                break;
            }
        }
    });
    let acked = Arc::new(AtomicU64::new(0));
    let ids = Arc::new(AtomicU64::new(0));
    let batches = ReceiverStream::new(mapped_rx).chunks_timeout(BATCH_SIZE, BATCH_TIMEOUT);
    tokio::pin!(batches);
    let mut sum = 0u64;
    while let Some(batch) = batches.next().await {
        sum = batch.iter().fold(sum, |acc, item| acc.wrapping_add(item.value));
        // The ack: count the batch and keep its ids' checksum.
        ids.fetch_add(batch.iter().fold(0u64, |acc, item| acc.wrapping_add(item.id)), Ordering::Relaxed);
        acked.fetch_add(batch.len() as u64, Ordering::Relaxed);
    }
    source.await.map_err(|e| e.to_string())?;
    mapper.await.map_err(|e| e.to_string())?;
    let expected_ids = (0..messages).fold(0u64, u64::wrapping_add);
    if ids.load(Ordering::Relaxed) != expected_ids {
        return Err("hand-written pipeline acknowledged the wrong ids".into());
    }
    Ok(Outcome { sum, acked: acked.load(Ordering::Relaxed) })
}

fn rate(messages: u64, elapsed: Duration) -> f64 {
    messages as f64 / elapsed.as_secs_f64() / 1e6
}

fn run() -> Result<bool, String> {
    let args = Args::from_env();
    args.only_names(&["messages", "runs", "max-demand"])?;
    let messages = args.number("messages", 2_000_000)?;
    let runs = args.number("runs", 7)?;
    let demands: Vec<usize> = match args.value("max-demand") {
        Some(_) => vec![usize::try_from(args.number("max-demand", 10)?).map_err(|e| e.to_string())?],
        None => vec![10, 100],
    };
    let runtime = runtime().map_err(|e| e.to_string())?;
    let expected = Outcome { sum: (0..messages).map(map).fold(0, u64::wrapping_add), acked: messages };
    println!(
        "messages {messages}  processors 2  batch_size {BATCH_SIZE}  runs {runs}  cores {}",
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    // One row per weir configuration, then the hand-written pipeline.
    let labels: Vec<String> = demands.iter().map(|d| format!("weir max_demand {d}")).collect();
    let mut times = vec![Vec::new(); demands.len() + 1];
    let mut allocations = vec![0usize; demands.len() + 1];
    let mut ok = true;
    for run in 1..=runs {
        for variant in 0..=demands.len() {
            let label = labels.get(variant).map_or("hand-written", String::as_str);
            let region = Region::new(GLOBAL);
            let cpu_before = cpu_time();
            let started = Instant::now();
            let outcome = match demands.get(variant) {
                Some(max_demand) => runtime.block_on(weir(messages, Some(*max_demand)))?,
                None => runtime.block_on(hand(messages))?,
            };
            let elapsed = started.elapsed();
            let cpu = cpu_time().saturating_sub(cpu_before);
            let allocated = region.change().allocations;
            println!(
                "run {run:>2}  {label:<20} {:>8.1} ms  {:>6.2} M msg/s  cpu {:>7.1} ms  allocations {allocated:>9}  acked {}",
                elapsed.as_secs_f64() * 1e3,
                rate(messages, elapsed),
                cpu.as_secs_f64() * 1e3,
                outcome.acked
            );
            if outcome != expected {
                eprintln!("MISMATCH: {label} got {outcome:?}, expected {expected:?}");
                ok = false;
            }
            times[variant].push(elapsed);
            allocations[variant] += allocated;
        }
    }
    let hand = median(&times[demands.len()]);
    println!();
    println!(
        "{:<20} {:>10} {:>12} {:>22} {:>8}",
        "median of runs", "time", "rate", "allocations/message", "ratio"
    );
    for (variant, label) in labels.iter().map(String::as_str).chain(["hand-written"]).enumerate() {
        let t = median(&times[variant]);
        println!(
            "{label:<20} {:>7.1} ms {:>6.2} M/s {:>22.3} {:>7.2}x",
            t.as_secs_f64() * 1e3,
            rate(messages, t),
            allocations[variant] as f64 / (messages * runs) as f64,
            rate(messages, t) / rate(messages, hand)
        );
    }
    Ok(ok)
}

fn main() -> ExitCode {
    exit_code(run(), USAGE)
}
