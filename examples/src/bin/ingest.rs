//! The main job: order events → a weir pipeline → a database, losing nothing.
//!
//! ```text
//! cargo run --release -p weir-examples --bin ingest                          # embedded: memory → SQLite
//! cargo run --release -p weir-examples --bin ingest -- --orders 1000000
//! cargo run --release -p weir-examples --bin ingest -- \
//!     --amqp-url amqp://guest:guest@127.0.0.1:5672/%2f --postgres-url postgres://postgres@127.0.0.1:5432/test
//! ```
//!
//! It generates `--orders` order events (`id,customer_id,amount_cents,timestamp_ms`; every
//! 997th is malformed). Embedded (the default, nothing to install): they come from memory
//! and go into `target/ingest.sqlite`. With `--amqp-url` (or `AMQP_URL`) they are published
//! to a RabbitMQ queue first and consumed from it; with `--postgres-url` (or
//! `DATABASE_URL`) they are written to PostgreSQL. Processors parse and validate (malformed
//! ones fail, and with RabbitMQ are rejected); a batcher writes batches of 500 rows per
//! transaction, as upserts. A progress bar shows throughput; at the end the program checks
//! that every order was acknowledged exactly once and that the table holds exactly the valid
//! ones, and exits non-zero if not. It stops gracefully on ctrl-c or SIGTERM.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use weir_broadway::memory::MemoryProducer;
use weir_broadway::{
    AckAction, BatchHandler, BatchInfo, BatcherOptions, BoxError, Failure, Handler, Message, Pipeline,
    ProcessorOptions, ProducerOptions, RetryPolicy,
};
use weir_connectors::postgres::PostgresWriter;
use weir_connectors::rabbitmq::{Declare, RabbitMqOptions, RabbitMqProducer};
use weir_connectors::sql::{ColumnType, Row, Table, Value};
use weir_connectors::sqlite::SqliteWriter;

/// A valid order.
struct Order {
    id: i64,
    customer_id: i64,
    amount_cents: i64,
    timestamp_ms: i64,
}

impl Row for Order {
    fn values(&self) -> Vec<Value> {
        vec![self.id.into(), self.customer_id.into(), self.amount_cents.into(), self.timestamp_ms.into()]
    }
}

fn table(name: &str) -> Table {
    Table::new(name)
        .column("id", ColumnType::BigInt)
        .column("customer_id", ColumnType::BigInt)
        .column("amount_cents", ColumnType::BigInt)
        .column("timestamp_ms", ColumnType::BigInt)
        .key(["id"])
}

/// Where batches go.
enum Sink {
    Sqlite(SqliteWriter),
    Postgres(Box<PostgresWriter>),
}

impl Sink {
    async fn write(&self, rows: &[Message<Order>]) -> Result<usize, weir_connectors::Error> {
        match self {
            Sink::Sqlite(w) => w.write(rows).await,
            Sink::Postgres(w) => w.write(rows).await,
        }
    }

    async fn count(&self) -> Result<u64, weir_connectors::Error> {
        match self {
            Sink::Sqlite(w) => w.count().await,
            Sink::Postgres(w) => w.count().await,
        }
    }
}

struct Ingest {
    sink: Sink,
    written: AtomicU64,
    progress: ProgressBar,
}

impl Handler for Ingest {
    type Data = Vec<u8>;
    type Output = Order;

    async fn handle_message(&self, message: &mut Message<Vec<u8>>) -> Result<Order, BoxError> {
        let line = std::str::from_utf8(message.data())?;
        let fields: Vec<i64> = line.split(',').map(str::parse).collect::<Result<_, _>>()?;
        let [id, customer_id, amount_cents, timestamp_ms] = fields[..] else {
            return Err(format!("expected 4 fields: {line:?}").into());
        };
        if amount_cents <= 0 {
            return Err(format!("order {id}: amount must be positive").into());
        }
        message.put_batcher("db");
        Ok(Order { id, customer_id, amount_cents, timestamp_ms })
    }

    async fn handle_failed(&self, messages: &mut [Message<Vec<u8>>]) {
        // Malformed orders will not get better: reject them rather than requeue.
        for message in messages.iter_mut() {
            let _noop_for_memory =
                message.configure_ack(weir_broadway::AckOptions::new().on_failure(AckAction::Reject));
        }
        self.progress.inc(messages.len() as u64);
    }
}

impl BatchHandler for Ingest {
    async fn handle_batch(&self, rows: &mut [Message<Order>], _: &BatchInfo) -> Result<(), BoxError> {
        let written = self.sink.write(rows).await?;
        self.written.fetch_add(written as u64, Ordering::Relaxed);
        self.progress.inc(rows.len() as u64);
        Ok(())
    }
}

/// The order lines: `id,customer_id,amount_cents,timestamp_ms`, every 997th malformed.
fn orders(n: u64) -> impl Iterator<Item = Vec<u8>> {
    let mut seed = 2026;
    let mut t = 1_767_225_600_000u64;
    (1..=n).map(move |id| {
        let customer = 1 + weir_examples::random(&mut seed) % 10_000;
        let amount = 1 + weir_examples::random(&mut seed) % 100_000;
        t += 1 + weir_examples::random(&mut seed) % 3;
        if id % 997 == 0 {
            format!("{id},{customer},-{amount},{t}").into_bytes()
        } else {
            format!("{id},{customer},{amount},{t}").into_bytes()
        }
    })
}

struct Args {
    orders: u64,
    amqp_url: Option<String>,
    postgres_url: Option<String>,
}

fn args() -> Result<Args, String> {
    let mut args = Args {
        orders: 100_000,
        amqp_url: std::env::var("AMQP_URL").ok(),
        postgres_url: std::env::var("DATABASE_URL").ok(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--orders" => {
                args.orders = value.replace('_', "").parse().map_err(|e| format!("--orders: {e}"))?
            }
            "--amqp-url" => args.amqp_url = Some(value),
            "--postgres-url" => args.postgres_url = Some(value),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

async fn publish(url: &str, queue: &str, n: u64) -> Result<(), BoxError> {
    use lapin::options::{BasicPublishOptions, QueueDeclareOptions, QueuePurgeOptions};
    let connection = lapin::Connection::connect(url, lapin::ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions { durable: true, ..Default::default() },
            Default::default(),
        )
        .await?;
    channel.queue_purge(queue.into(), QueuePurgeOptions::default()).await?;
    for order in orders(n) {
        // Not waiting for each confirmation: the channel keeps them in order.
        channel
            .basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions::default(),
                &order,
                Default::default(),
            )
            .await?;
    }
    connection.close(200, "published".into()).await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    let args = args()
        .map_err(|e| format!("{e}\nusage: ingest [--orders N] [--amqp-url URL] [--postgres-url URL]"))?;
    let n = args.orders;
    let invalid = n / 997;
    let table_name = "weir_orders";

    let sink = match &args.postgres_url {
        Some(url) => {
            let writer = PostgresWriter::connect(url, table(table_name)).await?;
            writer.truncate().await?;
            println!("sink: PostgreSQL table {table_name}");
            Sink::Postgres(Box::new(writer))
        }
        None => {
            std::fs::create_dir_all("target")?;
            let path = "target/ingest.sqlite";
            let _fresh = std::fs::remove_file(path);
            println!("sink: SQLite {path}, table {table_name}");
            Sink::Sqlite(SqliteWriter::open(path, table(table_name))?)
        }
    };
    let progress = ProgressBar::new(n);
    progress.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} orders  {per_sec}  eta {eta}")
            .map_err(|e| e.to_string())?,
    );
    let handler = Ingest { sink, written: AtomicU64::new(0), progress: progress.clone() };
    let builder = Pipeline::builder("ingest", handler)
        .processors(ProcessorOptions::new().max_demand(100))
        .batcher("db", BatcherOptions::new().batch_size(500).batch_timeout(Duration::from_millis(200)))
        // Database errors are retried; a malformed order would fail again, so it is not.
        .retry(
            RetryPolicy::new(5)
                .backoff(Duration::from_millis(100), Duration::from_secs(2))
                .retry_if(|failure| matches!(failure, Failure::Error { callback: "handle_batch", .. })),
        )
        .shutdown_timeout(Duration::from_secs(30));

    let started = Instant::now();
    let (pipeline, acked): (Pipeline<Ingest>, Arc<dyn Fn() -> (usize, usize) + Send + Sync>) =
        match &args.amqp_url {
            Some(url) => {
                let queue = "weir_orders";
                print!("publishing {n} orders to RabbitMQ queue {queue}... ");
                publish(url, queue, n).await?;
                println!("done");
                let options = RabbitMqOptions::new(url.clone(), queue)
                    .declare(Declare { durable: true, ..Declare::default() })
                    .prefetch_count(2_000);
                let pipeline = builder
                    .producer(RabbitMqProducer::factory(options)?, ProducerOptions::new().concurrency(2))
                    .start()
                    .await?;
                // The broker's acknowledgements are not visible here: count what the batches and
                // handle_failed settled.
                let handler = pipeline.handler().clone();
                let settled = Arc::new(move || (handler.progress.position() as usize, 0));
                (pipeline, settled)
            }
            None => {
                let (producer, acks) = MemoryProducer::from_iter(orders(n));
                let pipeline = builder.producer(producer, ProducerOptions::new()).start().await?;
                (pipeline, Arc::new(move || (acks.successful(), acks.failed())))
            }
        };
    let done = async {
        while progress.position() < n {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::select! {
        () = weir_examples::shutdown_signal() => println!("signal: draining"),
        () = done => {}
    }
    let report = pipeline.stop().await;
    // Read before the bar closes (`finish` would move it to its end).
    let completed = progress.position() == n;
    progress.abandon();
    let elapsed = started.elapsed();

    let handler = pipeline.handler();
    let rows = handler.sink.count().await?;
    let (ok, failed) = acked();
    println!(
        "{n} orders in {:.2} s ({:.0}/s): {rows} rows in the table, {} written, acknowledged {ok} ok + {failed} failed; shutdown {report:?}",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
        handler.written.load(Ordering::Relaxed),
    );
    // Whether it ran to the end or was interrupted: a row for every order acknowledged as
    // successful, and none for any other (the batch is acknowledged after its commit).
    if args.amqp_url.is_none() && rows != ok as u64 {
        return Err(format!("{rows} rows but {ok} orders acknowledged as written").into());
    }
    if completed {
        let valid = n - invalid;
        if rows != valid {
            return Err(format!("expected {valid} rows, found {rows}: lost or duplicated").into());
        }
        if args.amqp_url.is_none() && (ok as u64, failed as u64) != (valid, invalid) {
            return Err(format!("expected {valid} + {invalid} acknowledgements, got {ok} + {failed}").into());
        }
        println!("ok: every order acknowledged once; the table holds exactly the {valid} valid ones");
    }
    Ok(())
}
