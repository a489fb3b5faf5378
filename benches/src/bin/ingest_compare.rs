//! RabbitMQ → pipeline → PostgreSQL: weir against the same work hand-written with lapin and
//! tokio-postgres, in one process, on the services of `scripts/services.sh`.
//!
//! ```text
//! scripts/services.sh
//! cargo run --release -p weir-benches --bin ingest_compare -- [--messages N] [--runs N]
//! ```
//!
//! Each run publishes `N` (default 200,000) messages of about 200 bytes
//! (`id,customer,amount,timestamp,padding`) to a fresh queue (not timed), then times one
//! variant from its start until every message is in PostgreSQL and acknowledged:
//!
//! * weir: `RabbitMqProducer` (prefetch 2,000) → 1 processor (parse into a row) → one
//!   batcher (`batch_size` 500) → `PostgresWriter` (one `INSERT ... SELECT FROM UNNEST` per
//!   batch, an upsert) → acknowledgements batched with `multiple`;
//! * hand-written: one lapin consumer (prefetch 2,000), parse, `chunks_timeout(500, 50 ms)`,
//!   the same insert through tokio-postgres, then one `basic.ack` with `multiple` per batch.
//!
//! Both end with the same checks: `N` rows whose ids are `0..N`, and an empty queue with
//! nothing unacknowledged. URLs come from `AMQP_URL` and `DATABASE_URL` (loopback defaults).

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use tokio_stream::StreamExt;
use weir_benches::flow_harness::exit_code;
use weir_benches::flow_shapes::{runtime, Args};
use weir_benches::ingest::{
    database_url, median_line, orders_table, parse, payload, run_figures, with_cpu, Order,
};
use weir_broadway::{
    BatchHandler, BatchInfo, BatcherOptions, BoxError, Handler, Message, Pipeline, ProcessorOptions,
    ProducerOptions,
};
use weir_connectors::postgres::PostgresWriter;
use weir_connectors::rabbitmq::{RabbitMqOptions, RabbitMqProducer};
use weir_connectors::sql::Row;

const USAGE: &str = "usage: ingest_compare [--messages N] [--runs N]";
const QUEUE: &str = "weir_bench_ingest";
const TABLE: &str = "weir_bench_ingest";
const BATCH: usize = 500;
const PREFETCH: u16 = 2_000;
/// One processor: parsing is cheap, and on 2 cores shared with the broker and the database
/// a second one costs more in wake-ups than it adds (0.79x against 0.94x, see RESULTS.md).
const PROCESSORS: usize = 1;

fn amqp_url() -> String {
    std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

async fn fresh_queue(n: u64) -> Result<(), BoxError> {
    let connection = Connection::connect(&amqp_url(), ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    channel.queue_delete(QUEUE.into(), QueueDeleteOptions::default()).await?;
    channel.queue_declare(QUEUE.into(), QueueDeclareOptions::default(), FieldTable::default()).await?;
    for id in 0..n {
        channel
            .basic_publish(
                "".into(),
                QUEUE.into(),
                BasicPublishOptions::default(),
                &payload(id),
                BasicProperties::default(),
            )
            .await?;
    }
    // A round trip after the publishes: they have all reached the broker.
    channel
        .queue_declare(
            QUEUE.into(),
            QueueDeclareOptions { passive: true, ..Default::default() },
            FieldTable::default(),
        )
        .await?;
    connection.close(200, "published".into()).await?;
    Ok(())
}

/// Ready and unacknowledged messages left in the queue (after the consumers closed).
async fn left_in_queue() -> Result<u32, BoxError> {
    let connection = Connection::connect(&amqp_url(), ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    let queue = channel
        .queue_declare(
            QUEUE.into(),
            QueueDeclareOptions { passive: true, ..Default::default() },
            FieldTable::default(),
        )
        .await?;
    connection.close(200, "checked".into()).await?;
    Ok(queue.message_count())
}

struct Ingest {
    writer: PostgresWriter,
    written: AtomicU64,
}

impl Handler for Ingest {
    type Data = Vec<u8>;
    type Output = Order;

    async fn handle_message(&self, message: &mut Message<Vec<u8>>) -> Result<Order, BoxError> {
        parse(message.data())
    }
}

impl BatchHandler for Ingest {
    async fn handle_batch(&self, rows: &mut [Message<Order>], _: &BatchInfo) -> Result<(), BoxError> {
        let written = self.writer.write(rows).await?;
        self.written.fetch_add(written as u64, Ordering::Relaxed);
        Ok(())
    }
}

async fn weir(n: u64) -> Result<Duration, BoxError> {
    let writer = PostgresWriter::connect(&database_url(), orders_table(TABLE)).await?;
    writer.truncate().await?;
    let started = Instant::now();
    let producer =
        RabbitMqProducer::factory(RabbitMqOptions::new(amqp_url(), QUEUE).prefetch_count(PREFETCH))?;
    let pipeline = Pipeline::builder("bench", Ingest { writer, written: AtomicU64::new(0) })
        .producer(producer, ProducerOptions::new())
        .processors(ProcessorOptions::new().concurrency(PROCESSORS).max_demand(BATCH))
        .batcher("default", BatcherOptions::new().batch_size(BATCH).batch_timeout(Duration::from_millis(50)))
        .start()
        .await?;
    while pipeline.handler().written.load(Ordering::Relaxed) < n {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let report = pipeline.stop().await;
    let elapsed = started.elapsed();
    if !report.graceful {
        return Err(format!("weir did not drain: {report:?}").into());
    }
    check(&pipeline.handler().writer, n).await?;
    Ok(elapsed)
}

async fn hand(n: u64) -> Result<Duration, BoxError> {
    let writer = PostgresWriter::connect(&database_url(), orders_table(TABLE)).await?;
    writer.truncate().await?;
    let started = Instant::now();
    let connection = Connection::connect(&amqp_url(), ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    channel.basic_qos(PREFETCH, BasicQosOptions::default()).await?;
    let consumer = channel
        .basic_consume(QUEUE.into(), "hand".into(), BasicConsumeOptions::default(), FieldTable::default())
        .await?;
    let written = Arc::new(AtomicU64::new(0));
    let batches = consumer.chunks_timeout(BATCH, Duration::from_millis(50));
    tokio::pin!(batches);
    while written.load(Ordering::Relaxed) < n {
        let Some(batch) = batches.next().await else { break };
        let mut rows = Vec::with_capacity(batch.len());
        let mut last_tag = 0;
        for delivery in batch {
            let delivery = delivery?;
            last_tag = last_tag.max(delivery.delivery_tag);
            rows.push(parse(&delivery.data)?.values());
        }
        let count = writer.write_rows(rows).await?;
        channel.basic_ack(last_tag, BasicAckOptions { multiple: true }).await?;
        written.fetch_add(count as u64, Ordering::Relaxed);
    }
    connection.close(200, "done".into()).await?;
    let elapsed = started.elapsed();
    check(&writer, n).await?;
    Ok(elapsed)
}

async fn check(writer: &PostgresWriter, n: u64) -> Result<(), BoxError> {
    let rows = writer.count().await?;
    let left = left_in_queue().await?;
    if rows != n || left != 0 {
        return Err(
            format!("expected {n} rows and an empty queue, found {rows} rows and {left} messages").into()
        );
    }
    Ok(())
}

fn run() -> Result<bool, String> {
    let args = Args::from_env();
    args.only_names(&["messages", "runs"])?;
    let n = args.number("messages", 200_000)?;
    let runs = args.number("runs", 3)?;
    let runtime = runtime().map_err(|e| e.to_string())?;
    println!("messages {n} (≈200 bytes)  prefetch {PREFETCH}  batch {BATCH}  runs {runs}");
    let mut times = [Vec::new(), Vec::new()];
    for run in 1..=runs {
        for (i, label) in ["weir", "hand-written"].into_iter().enumerate() {
            runtime.block_on(fresh_queue(n)).map_err(|e| format!("publishing: {e}"))?;
            let (elapsed, cpu) = with_cpu(|| match i {
                0 => runtime.block_on(weir(n)),
                _ => runtime.block_on(hand(n)),
            });
            let elapsed = elapsed.map_err(|e| format!("{label}: {e}"))?;
            println!("run {run}  {label:<13} {}", run_figures(n, elapsed, cpu));
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
