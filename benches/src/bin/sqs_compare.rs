//! SQS → pipeline: weir's `SqsProducer` against the same work hand-written with
//! `aws-sdk-sqs`, in one process, on the local SQS server of `scripts/services.sh` (moto).
//!
//! ```text
//! scripts/services.sh sqs
//! cargo run --release -p weir-benches --bin sqs_compare -- [--messages N] [--runs N]
//! ```
//!
//! Each run sends `N` (default 5,000) messages of about 200 bytes to a fresh queue (not
//! timed), then times one variant from its start until every message is parsed and deleted:
//!
//! * weir: `SqsProducer` (4 receives in flight, 10 messages each, long polls of 1 s) → 1
//!   processor (parse) → a batcher (`batch_size` 10) counting rows → deletes batched by the
//!   producer's acknowledger (`DeleteMessageBatch`, up to 10 per request);
//! * hand-written: 4 tasks, each looping receive (10, long poll 1 s) → parse → one
//!   `DeleteMessageBatch` for what it received.
//!
//! Both end with the same check: the queue is empty (nothing visible, nothing in flight).
//! The server comes from `SQS_ENDPOINT` (default `http://127.0.0.1:9324`).

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, QueueAttributeName, SendMessageBatchRequestEntry};
use aws_sdk_sqs::Client;
use futures::StreamExt;
use weir_benches::flow_harness::exit_code;
use weir_benches::flow_shapes::{runtime, Args};
use weir_benches::ingest::{median_line, parse, payload, run_figures, with_cpu, Order};
use weir_broadway::{
    BatchHandler, BatchInfo, BatcherOptions, BoxError, Handler, Message, Pipeline, ProcessorOptions,
    ProducerOptions,
};
use weir_connectors::sqs::{SqsOptions, SqsProducer};

const USAGE: &str = "usage: sqs_compare [--messages N] [--runs N]";
const QUEUE: &str = "weir-bench-sqs";
/// Receives in flight, in both variants.
const POLLS: usize = 4;
const WAIT_SECONDS: i32 = 1;

fn endpoint() -> String {
    std::env::var("SQS_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:9324".into())
}

fn options(queue_url: &str) -> SqsOptions {
    SqsOptions::new(queue_url)
        .endpoint_url(endpoint())
        .credentials("test", "test")
        .region("us-east-1")
        .receives_in_flight(POLLS)
        .wait_time_seconds(WAIT_SECONDS)
}

/// A fresh queue holding `n` messages; returns its URL.
async fn fresh_queue(client: &Client, n: u64) -> Result<String, BoxError> {
    if let Ok(existing) = client.get_queue_url().queue_name(QUEUE).send().await {
        if let Some(url) = existing.queue_url() {
            client.delete_queue().queue_url(url).send().await?;
        }
    }
    let url =
        client.create_queue().queue_name(QUEUE).send().await?.queue_url().unwrap_or_default().to_owned();
    let ids: Vec<u64> = (0..n).collect();
    let sends = ids.chunks(10).map(|chunk| {
        let entries: Vec<SendMessageBatchRequestEntry> = chunk
            .iter()
            .filter_map(|id| {
                let body = String::from_utf8(payload(*id)).ok()?;
                SendMessageBatchRequestEntry::builder().id(id.to_string()).message_body(body).build().ok()
            })
            .collect();
        client.send_message_batch().queue_url(&url).set_entries(Some(entries)).send()
    });
    let results: Vec<_> = futures::stream::iter(sends).buffer_unordered(8).collect().await;
    for sent in results {
        if !sent?.failed().is_empty() {
            return Err("a send failed".into());
        }
    }
    Ok(url)
}

/// Messages visible and in flight.
async fn left_in_queue(client: &Client, url: &str) -> Result<(u64, u64), BoxError> {
    let output = client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await?;
    let attributes = output.attributes().ok_or("no attributes")?;
    let n = |name: QueueAttributeName| -> Result<u64, BoxError> {
        Ok(attributes.get(&name).ok_or("missing attribute")?.parse()?)
    };
    Ok((
        n(QueueAttributeName::ApproximateNumberOfMessages)?,
        n(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)?,
    ))
}

/// Which ids were parsed: the first time counts in `distinct`, again in `duplicates`.
struct Seen {
    ids: Vec<std::sync::atomic::AtomicBool>,
    distinct: AtomicU64,
    duplicates: AtomicU64,
}

impl Seen {
    fn new(n: u64) -> Self {
        Seen {
            ids: (0..n).map(|_| std::sync::atomic::AtomicBool::new(false)).collect(),
            distinct: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
        }
    }

    fn parsed(&self, order: &Order) {
        let first = usize::try_from(order.0[0])
            .ok()
            .and_then(|id| self.ids.get(id))
            .is_some_and(|seen| !seen.swap(true, Ordering::Relaxed));
        if first {
            self.distinct.fetch_add(1, Ordering::Relaxed);
        } else {
            self.duplicates.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn all(&self) -> bool {
        self.distinct.load(Ordering::Relaxed) == self.ids.len() as u64
    }
}

struct Count {
    seen: Seen,
}

impl Handler for Count {
    type Data = String;
    type Output = Order;

    async fn handle_message(&self, message: &mut Message<String>) -> Result<Order, BoxError> {
        parse(message.data().as_bytes())
    }
}

impl BatchHandler for Count {
    async fn handle_batch(&self, rows: &mut [Message<Order>], _: &BatchInfo) -> Result<(), BoxError> {
        for row in rows.iter() {
            self.seen.parsed(row.data());
        }
        Ok(())
    }
}

async fn weir(url: &str, n: u64) -> Result<(Duration, u64), BoxError> {
    let started = Instant::now();
    let pipeline = Pipeline::builder("bench", Count { seen: Seen::new(n) })
        .producer(SqsProducer::factory(options(url))?, ProducerOptions::new())
        .processors(ProcessorOptions::new().concurrency(1).max_demand(40))
        .batcher("default", BatcherOptions::new().batch_size(10).batch_timeout(Duration::from_millis(10)))
        .start()
        .await?;
    while !pipeline.handler().seen.all() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // Returns once the last deletes are sent.
    let report = pipeline.stop().await;
    let elapsed = started.elapsed();
    if !report.graceful {
        return Err(format!("weir did not drain: {report:?}").into());
    }
    Ok((elapsed, pipeline.handler().seen.duplicates.load(Ordering::Relaxed)))
}

/// One polling loop of the hand-written variant.
async fn poll(client: Client, url: String, seen: Arc<Seen>) -> Result<(), BoxError> {
    while !seen.all() {
        let received = client
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .wait_time_seconds(WAIT_SECONDS)
            .send()
            .await?;
        let messages = received.messages();
        if messages.is_empty() {
            continue;
        }
        let mut entries = Vec::with_capacity(messages.len());
        for (i, message) in messages.iter().enumerate() {
            seen.parsed(&parse(message.body().unwrap_or_default().as_bytes())?);
            let receipt = message.receipt_handle().unwrap_or_default();
            entries.push(
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(receipt)
                    .build()?,
            );
        }
        let deleted = client.delete_message_batch().queue_url(&url).set_entries(Some(entries)).send().await?;
        if !deleted.failed().is_empty() {
            return Err(format!("deletes failed: {:?}", deleted.failed()).into());
        }
    }
    Ok(())
}

async fn hand(client: &Client, url: &str, n: u64) -> Result<(Duration, u64), BoxError> {
    let started = Instant::now();
    let seen = Arc::new(Seen::new(n));
    let polls: Vec<_> =
        (0..POLLS).map(|_| tokio::spawn(poll(client.clone(), url.to_owned(), seen.clone()))).collect();
    for poll in polls {
        poll.await??;
    }
    Ok((started.elapsed(), seen.duplicates.load(Ordering::Relaxed)))
}

fn run() -> Result<bool, String> {
    let args = Args::from_env();
    args.only_names(&["messages", "runs"])?;
    let n = args.number("messages", 5_000)?;
    let runs = args.number("runs", 3)?;
    let runtime = runtime().map_err(|e| e.to_string())?;
    let client = options("http://unused").sdk_client().map_err(|e| e.to_string())?;
    println!(
        "messages {n} (≈200 bytes)  receives in flight {POLLS}  long polls {WAIT_SECONDS} s  runs {runs}"
    );
    let mut times = [Vec::new(), Vec::new()];
    for run in 1..=runs {
        for (i, label) in ["weir", "hand-written"].into_iter().enumerate() {
            let url = runtime.block_on(fresh_queue(&client, n)).map_err(|e| format!("sending: {e}"))?;
            let (result, cpu) = with_cpu(|| match i {
                0 => runtime.block_on(weir(&url, n)),
                _ => runtime.block_on(hand(&client, &url, n)),
            });
            let (elapsed, duplicates) = result.map_err(|e| format!("{label}: {e}"))?;
            let left = runtime.block_on(left_in_queue(&client, &url)).map_err(|e| e.to_string())?;
            if left != (0, 0) {
                return Err(format!("{label}: (visible, in flight) = {left:?} left in the queue"));
            }
            println!("run {run}  {label:<13} {}  received twice {duplicates}", run_figures(n, elapsed, cpu));
            times[i].push(elapsed);
        }
    }
    println!();
    println!("median  {}", median_line(n, &times[0], &times[1]));
    Ok(true)
}

fn main() -> ExitCode {
    exit_code(run(), USAGE)
}
