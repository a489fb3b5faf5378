//! weir-broadway against the same ingestion pipeline hand-written with tokio, in one process.
//!
//! ```text
//! cargo run --release -p weir-benches --bin broadway_compare -- [--messages N] [--runs N] [--max-demand N]
//! ```
//!
//! Both pipelines take `N` (default 2,000,000) small messages (`u64`s, each with an
//! acknowledgement id) from memory, map each (`x * 2 + 1`), batch them by 100 (1 s timeout),
//! sum every batch, and count acknowledgements per batch:
//!
//! * weir: a `MemoryProducer` → 2 processors (`handle_message` maps) → one batcher
//!   (`batch_size` 100) → one batch processor (`handle_batch` sums) → `MemoryAcks` counts.
//!   Processors keep Broadway's default `max_demand` (10) unless `--max-demand`.
//! * hand-written: a source task → bounded mpsc → a map task → bounded mpsc →
//!   `chunks_timeout(100, 1 s)` → the batch handler (sums, then adds the batch's length to
//!   an ack counter).
//!
//! Runs alternate; medians are reported with the ratio weir / hand-written (messages per
//! second). Every run checks the sum and that every message was acknowledged exactly once
//! (weir: acknowledged successfully, none failed). The process counts heap allocations
//! (`stats_alloc`): the line "allocations per message" is weir's total during its runs
//! divided by its messages — chunks and batches allocate, messages must not.

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
    let max_demand = match args.value("max-demand") {
        Some(_) => Some(usize::try_from(args.number("max-demand", 10)?).map_err(|e| e.to_string())?),
        None => None,
    };
    let runtime = runtime().map_err(|e| e.to_string())?;
    let expected = Outcome { sum: (0..messages).map(map).fold(0, u64::wrapping_add), acked: messages };
    println!(
        "messages {messages}  processors 2  max_demand {}  batch_size {BATCH_SIZE}  runs {runs}  cores {}",
        max_demand.map_or("10 (default)".to_string(), |d| d.to_string()),
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    let mut weir_times = Vec::new();
    let mut hand_times = Vec::new();
    let mut weir_allocations = 0usize;
    let mut ok = true;
    for run in 1..=runs {
        for variant in ["weir", "hand-written"] {
            let region = Region::new(GLOBAL);
            let cpu_before = cpu_time();
            let started = Instant::now();
            let outcome = match variant {
                "weir" => runtime.block_on(weir(messages, max_demand))?,
                _ => runtime.block_on(hand(messages))?,
            };
            let elapsed = started.elapsed();
            let cpu = cpu_time().saturating_sub(cpu_before);
            let allocations = region.change().allocations;
            println!(
                "run {run:>2}  {variant:<13} {:>8.1} ms  {:>6.2} M msg/s  cpu {:>7.1} ms  allocations {allocations:>9}  acked {}",
                elapsed.as_secs_f64() * 1e3,
                rate(messages, elapsed),
                cpu.as_secs_f64() * 1e3,
                outcome.acked
            );
            if outcome != expected {
                eprintln!("MISMATCH: {variant} got {outcome:?}, expected {expected:?}");
                ok = false;
            }
            match variant {
                "weir" => {
                    weir_times.push(elapsed);
                    weir_allocations += allocations;
                }
                _ => hand_times.push(elapsed),
            }
        }
    }
    let (w, h) = (median(&weir_times), median(&hand_times));
    println!();
    println!(
        "median  weir {:.1} ms ({:.2} M msg/s)  hand-written {:.1} ms ({:.2} M msg/s)  ratio {:.2}x",
        w.as_secs_f64() * 1e3,
        rate(messages, w),
        h.as_secs_f64() * 1e3,
        rate(messages, h),
        rate(messages, w) / rate(messages, h)
    );
    println!(
        "allocations per message (weir, whole pipeline incl. chunks and batches): {:.3}",
        weir_allocations as f64 / (messages * runs) as f64
    );
    Ok(ok)
}

fn main() -> ExitCode {
    exit_code(run(), USAGE)
}
