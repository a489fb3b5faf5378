//! Pattern 6 of the GenStage guide: a consumer supervisor, one worker per event.
//!
//! `JobProducer` receives jobs by cast (the guide's `enqueue/1`) and keeps them in a queue
//! until a consumer asks. [`start_consumer_supervisor`] consumes them, running each job as its
//! own task; the subscription's `max_demand` (50) is the concurrency limit, like a pool.
//! A failing job is logged and does not affect the others (Erlang's `:temporary` children).
//!
//! What to look for: at most 50 jobs running at once, every job done, and the consumer
//! supervisor waiting for its last workers before it stops.
//!
//! ```sh
//! cargo run -p weir-examples --bin pattern_06_consumer_supervisor
//! ```

use std::collections::VecDeque;
use std::error::Error;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing_subscriber::EnvFilter;
use weir_core::{
    start_consumer_supervisor, start_producer, BoxError, ConsumerSupervisorOptions, Context, ExitReason,
    Producer, ProducerOptions, SubscribeOptions,
};

/// Jobs enqueued.
const JOBS: u64 = 300;
/// Concurrency limit: the subscription's `max_demand`.
const MAX_WORKERS: usize = 50;
/// This job fails, to show that a failed worker is only logged.
const FAILING_JOB: u64 = 42;

#[derive(Debug)]
struct Job {
    id: u64,
}

#[derive(Debug)]
enum JobMsg {
    /// Queue a job (the guide's `enqueue/1`).
    Enqueue(Job),
    /// No more jobs: finish once the queue is dispatched.
    Close,
}

/// Queues jobs until they are demanded: the guide's `{queue, pending_demand}` state.
#[derive(Default)]
struct JobProducer {
    queue: VecDeque<Job>,
    pending_demand: usize,
    closed: bool,
}

impl JobProducer {
    fn dispatch_jobs(&mut self, ctx: &mut Context<JobMsg>) -> Vec<Job> {
        let n = self.pending_demand.min(self.queue.len());
        self.pending_demand -= n;
        let jobs = self.queue.drain(..n).collect();
        if self.closed && self.queue.is_empty() {
            ctx.finish();
        }
        jobs
    }
}

impl Producer for JobProducer {
    type Event = Job;
    type Message = JobMsg;

    async fn handle_demand(
        &mut self,
        demand: usize,
        ctx: &mut Context<JobMsg>,
    ) -> Result<Vec<Job>, BoxError> {
        self.pending_demand += demand;
        Ok(self.dispatch_jobs(ctx))
    }

    async fn handle_info(
        &mut self,
        message: JobMsg,
        ctx: &mut Context<JobMsg>,
    ) -> Result<Vec<Job>, BoxError> {
        match message {
            JobMsg::Enqueue(job) => self.queue.push_back(job),
            JobMsg::Close => self.closed = true,
        }
        Ok(self.dispatch_jobs(ctx))
    }
}

/// Counts running and finished workers.
#[derive(Default)]
struct Stats {
    running: AtomicUsize,
    peak: AtomicUsize,
    done: AtomicUsize,
}

/// One job's work: runs as its own task.
async fn job_worker(job: Job, stats: Arc<Stats>) -> Result<(), BoxError> {
    let running = stats.running.fetch_add(1, Ordering::SeqCst) + 1;
    stats.peak.fetch_max(running, Ordering::SeqCst);
    // "Processing": a few milliseconds, varying by job.
    tokio::time::sleep(Duration::from_millis(2 + job.id % 7)).await;
    stats.running.fetch_sub(1, Ordering::SeqCst);
    stats.done.fetch_add(1, Ordering::SeqCst);
    if job.id == FAILING_JOB {
        return Err(format!("job {} failed on purpose", job.id).into());
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    // Shows the consumer supervisor's log of the failed worker.
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")))
        .init();

    let started = Instant::now();
    let producer = start_producer(JobProducer::default(), ProducerOptions::new().name("jobs"))?;
    let stats = Arc::new(Stats::default());
    let worker_stats = stats.clone();
    let workers = start_consumer_supervisor(
        move |job: Job| job_worker(job, worker_stats.clone()),
        ConsumerSupervisorOptions::new()
            .name("job-workers")
            .subscribe_to(&producer, SubscribeOptions::new().max_demand(MAX_WORKERS)),
    )?;

    for id in 1..=JOBS {
        producer.cast(JobMsg::Enqueue(Job { id }))?;
    }
    producer.cast(JobMsg::Close)?;

    // While jobs run, show the pool filling up.
    let mut ticker = tokio::time::interval(Duration::from_millis(10));
    while workers.is_running() && started.elapsed() < Duration::from_secs(3) {
        ticker.tick().await;
        println!(
            "{:>3} ms: {:>2} running, {:>3} done",
            started.elapsed().as_millis(),
            stats.running.load(Ordering::SeqCst),
            stats.done.load(Ordering::SeqCst)
        );
    }
    // The producer finished with its queue; the consumer supervisor waits for its workers.
    let reason = tokio::time::timeout(Duration::from_secs(1), workers.wait())
        .await
        .map_err(|_| "the consumer supervisor did not finish")?;

    let (peak, done) = (stats.peak.load(Ordering::SeqCst), stats.done.load(Ordering::SeqCst));
    println!("consumer supervisor stopped ({reason}): {done} jobs done, at most {peak} at once");
    assert!(matches!(reason, ExitReason::Normal), "the consumer supervisor ended with {reason}");
    assert_eq!(done, JOBS as usize, "every job ran, the failing one included");
    assert!(peak <= MAX_WORKERS, "{peak} workers ran at once, more than max_demand {MAX_WORKERS}");
    assert!(peak > 1, "jobs ran concurrently");
    println!("ok: {JOBS} jobs, at most {peak} concurrent (limit {MAX_WORKERS})");
    Ok(())
}
