//! Memory stays bounded by demand: a producer that could emit without limit feeds a slow
//! consumer, and the events in flight never exceed the consumer's `max_demand`.
//!
//! ```text
//! cargo run --release -p weir-benches --bin core_memory -- [SECONDS [MAX_DEMAND [EVENT_BYTES]]]
//! ```
//!
//! Defaults: 3 seconds, `max_demand` 100 (`min_demand` 50, so chunks of 50), events of
//! 64 KiB. The consumer sleeps 10 ms per chunk (about 5,000 events/s). Every 100 ms the
//! program samples the events produced and consumed, the producer's
//! `estimated_buffered_count()` and the process's resident memory, and checks
//! `produced <= consumed + max_demand`; it exits with status 1 if that ever fails. At the end
//! it prints the peak resident memory (`VmHWM`) against what demand allows.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use weir_core::{
    start_consumer, start_producer, BoxError, Consumer, ConsumerOptions, Context, ExitReason, Producer,
    ProducerOptions, SubscribeOptions, SubscriptionId,
};

/// How long the consumer takes per chunk.
const DELAY_PER_CHUNK: Duration = Duration::from_millis(10);
/// How often the main task samples.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// A payload of `bytes` bytes, every page written so that it counts in resident memory.
fn payload(bytes: usize, seed: u64) -> Vec<u8> {
    vec![(seed % 251) as u8 + 1; bytes]
}

/// Emits as many payloads as asked, forever, as fast as it is asked.
struct Firehose {
    bytes: usize,
    produced: Arc<AtomicU64>,
}

impl Producer for Firehose {
    type Event = Vec<u8>;
    type Message = ();

    async fn handle_demand(&mut self, demand: usize, _ctx: &mut Context) -> Result<Vec<Vec<u8>>, BoxError> {
        let first = self.produced.load(Ordering::Relaxed);
        let events = (0..demand as u64).map(|i| payload(self.bytes, first + i)).collect();
        self.produced.fetch_add(demand as u64, Ordering::Relaxed);
        Ok(events)
    }
}

/// Sleeps on every chunk, then drops it; stops itself once `done` is set.
struct Slow {
    consumed: Arc<AtomicU64>,
    done: Arc<AtomicBool>,
}

impl Consumer for Slow {
    type Event = Vec<u8>;
    type Message = ();

    async fn handle_events(
        &mut self,
        events: Vec<Vec<u8>>,
        _from: SubscriptionId,
        ctx: &mut Context,
    ) -> Result<(), BoxError> {
        tokio::time::sleep(DELAY_PER_CHUNK).await;
        let n = events.len() as u64;
        drop(events);
        self.consumed.fetch_add(n, Ordering::Relaxed);
        if self.done.load(Ordering::Relaxed) {
            ctx.stop(ExitReason::Shutdown);
        }
        Ok(())
    }
}

/// A field of `/proc/self/status` in KiB (e.g. `VmHWM`, `VmRSS`); 0 where unavailable.
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn setting(args: &[String], index: usize, name: &str, default: u64) -> Result<u64, String> {
    match args.get(index) {
        None => Ok(default),
        Some(raw) => match raw.replace('_', "").parse::<u64>() {
            Ok(0) => Err(format!("{name} must be greater than 0")),
            Ok(value) => Ok(value),
            Err(e) => Err(format!("{name}: {raw:?}: {e}")),
        },
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed = (|| -> Result<(u64, usize, usize), String> {
        let seconds = setting(&args, 0, "SECONDS", 3)?;
        let max_demand = setting(&args, 1, "MAX_DEMAND", 100)?;
        let bytes = setting(&args, 2, "EVENT_BYTES", 64 * 1024)?;
        if max_demand < 2 {
            return Err("MAX_DEMAND must be at least 2".into());
        }
        Ok((seconds, max_demand as usize, bytes as usize))
    })();
    let (seconds, max_demand, bytes) = match parsed {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("error: {message}");
            eprintln!("usage: core_memory [SECONDS [MAX_DEMAND [EVENT_BYTES]]]");
            return ExitCode::from(2);
        }
    };
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("building the tokio runtime");
    let workers = runtime.metrics().num_workers();
    runtime.block_on(run(Duration::from_secs(seconds), max_demand, bytes, workers))
}

async fn run(duration: Duration, max_demand: usize, bytes: usize, workers: usize) -> ExitCode {
    let min_demand = max_demand / 2;
    println!(
        "max_demand {max_demand}  min_demand {min_demand}  event {} KiB  consumer sleeps {} ms per chunk \
         of {}  for {} s",
        bytes / 1024,
        DELAY_PER_CHUNK.as_millis(),
        max_demand - min_demand,
        duration.as_secs(),
    );

    let baseline_rss = status_kib("VmRSS");
    let baseline_hwm = status_kib("VmHWM");
    let produced = Arc::new(AtomicU64::new(0));
    let consumed = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let producer = match start_producer(
        Firehose { bytes, produced: produced.clone() },
        ProducerOptions::new().name("firehose"),
    ) {
        Ok(producer) => producer,
        Err(e) => {
            eprintln!("error: starting the producer: {e}");
            return ExitCode::FAILURE;
        }
    };
    let consumer = match start_consumer(
        Slow { consumed: consumed.clone(), done: done.clone() },
        ConsumerOptions::new()
            .name("slow")
            .subscribe_to(&producer, SubscribeOptions::new().max_demand(max_demand).min_demand(min_demand)),
    ) {
        Ok(consumer) => consumer,
        Err(e) => {
            eprintln!("error: starting the consumer: {e}");
            return ExitCode::FAILURE;
        }
    };

    println!();
    println!(
        "{:>7} {:>10} {:>10} {:>10} {:>9} {:>10}",
        "time", "produced", "consumed", "in flight", "buffered", "VmRSS"
    );
    let started = Instant::now();
    let mut violations = 0;
    let mut max_in_flight = 0;
    let mut max_buffered = 0;
    while started.elapsed() < duration {
        tokio::time::sleep(SAMPLE_EVERY).await;
        // Produced first: consumed only grows, so this never overstates what is in flight.
        let p = produced.load(Ordering::Relaxed);
        let c = consumed.load(Ordering::Relaxed);
        let buffered = match producer.estimated_buffered_count().await {
            Ok(buffered) => buffered,
            Err(e) => {
                eprintln!("error: the producer stopped: {e}");
                return ExitCode::FAILURE;
            }
        };
        let in_flight = p.saturating_sub(c);
        max_in_flight = max_in_flight.max(in_flight);
        max_buffered = max_buffered.max(buffered);
        let ok = p <= c + max_demand as u64;
        if !ok {
            violations += 1;
        }
        println!(
            "{:>5.1} s {:>10} {:>10} {:>10} {:>9} {:>6.1} MiB{}",
            started.elapsed().as_secs_f64(),
            p,
            c,
            in_flight,
            buffered,
            mib(status_kib("VmRSS")),
            if ok { "" } else { "  <-- produced > consumed + max_demand" },
        );
    }
    let elapsed = started.elapsed();
    // The consumer stops itself from its callback rather than through `consumer.stop()`: with
    // the runtime's `biased` select, a stage whose protocol inbox always holds an event chunk
    // (as here: the producer answers each ask within the consumer's 10 ms sleep) never reads
    // its mailbox, so a `Stop` sent there would wait forever.
    done.store(true, Ordering::Relaxed);
    let stopped = tokio::time::timeout(Duration::from_secs(5), async {
        consumer.wait().await;
        producer.stop().await
    })
    .await;
    if stopped.is_err() {
        eprintln!("error: the stages did not stop within 5 s");
        return ExitCode::FAILURE;
    }

    let total = produced.load(Ordering::Relaxed);
    let peak = status_kib("VmHWM");
    let allowed_kib = (max_demand * bytes) as u64 / 1024;
    println!();
    println!(
        "produced {total} events ({:.1} MiB) in {:.1} s; at most {max_in_flight} in flight \
         (bound: max_demand = {max_demand}); producer buffer at most {max_buffered}",
        mib(total * bytes as u64 / 1024),
        elapsed.as_secs_f64(),
    );
    println!(
        "resident memory: before the stages {:.1} MiB (peak so far {:.1} MiB); peak (VmHWM) after {:.1} MiB, \
         +{:.1} MiB over the baseline",
        mib(baseline_rss),
        mib(baseline_hwm),
        mib(peak),
        mib(peak.saturating_sub(baseline_rss)),
    );
    let growth = peak.saturating_sub(baseline_rss);
    println!(
        "expectation: at most max_demand x event = {max_demand} x {} KiB = {:.1} MiB of events in flight, \
         whatever the run length; glibc keeps freed payloads in per-thread arenas ({workers} workers), \
         so expect up to about {workers} x {:.1} MiB = {:.1} MiB",
        bytes / 1024,
        mib(allowed_kib),
        mib(allowed_kib),
        mib(allowed_kib * workers as u64),
    );
    println!(
        "measured: peak growth {:.1} MiB = {:.1}x the in-flight bound, while {:.0}x that much was produced",
        mib(growth),
        growth as f64 / allowed_kib.max(1) as f64,
        (total * bytes as u64 / 1024) as f64 / growth.max(1) as f64,
    );
    if violations > 0 {
        eprintln!("FAILED: {violations} samples had produced > consumed + max_demand");
        return ExitCode::FAILURE;
    }
    println!("OK: produced <= consumed + max_demand in every sample");
    ExitCode::SUCCESS
}
