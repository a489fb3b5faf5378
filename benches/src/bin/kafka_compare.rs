//! Kafka → pipeline → PostgreSQL (or a counter): weir's `KafkaProducer` against the same
//! work hand-written with an rdkafka `StreamConsumer`, in one process, on the services of
//! `scripts/services.sh`.
//!
//! ```text
//! scripts/services.sh kafka postgres
//! cargo run --release -p weir-benches --bin kafka_compare -- [--messages N] [--runs N] \
//!     [--partitions N] [--processors N] [--sink postgres|count|both]
//! ```
//!
//! One topic of `N` (default 200,000) messages of about 200 bytes
//! (`id,customer,amount,timestamp,padding`), spread evenly over `--partitions` (default 4)
//! partitions, is produced once (not timed). Each run reads all of it once per variant and
//! sink, each time as a fresh consumer group from the earliest offset, and is timed from
//! the first record handed to the consuming code (the group join before it is the broker's
//! business: Tansu holds every join for half the session timeout) until every message is
//! written, its offset committed and the consumer has left the group:
//!
//! * weir: `KafkaProducer` (ordered by partition, commits every second and on drain) →
//!   `--processors` processors (default 1; parse into a row) → one batcher (`batch_size`
//!   500, 50 ms) → one batch processor writing with `PostgresWriter` (one `INSERT ... SELECT
//!   FROM UNNEST` upsert per batch), or counting (`--sink count`); then `Pipeline::stop`;
//! * hand-written: one `StreamConsumer`, `chunks_timeout(500, 50 ms)`, parse, the same
//!   insert (or count), then an asynchronous commit of the batch's offsets; a synchronous
//!   commit at the end, then the consumer is dropped (it leaves the group).
//!
//! Both end with the same checks: `N` rows (or `N` counted) and the group's committed
//! offsets at the end of every partition. Addresses come from `KAFKA_BROKERS` and
//! `DATABASE_URL` (loopback defaults).

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message as _, Offset, TopicPartitionList};
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
use weir_connectors::kafka::{KafkaOptions, KafkaProducer, OffsetReset};
use weir_connectors::postgres::PostgresWriter;
use weir_connectors::sql::Row;

const USAGE: &str = "usage: kafka_compare [--messages N] [--runs N] [--partitions N] [--processors N] \
                     [--sink postgres|count|both]";
const TABLE: &str = "weir_bench_kafka";
const BATCH: usize = 500;

fn brokers() -> String {
    std::env::var("KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

/// Where the messages go once parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sink {
    Postgres,
    Count,
}

impl Sink {
    fn label(self) -> &'static str {
        match self {
            Sink::Postgres => "postgres",
            Sink::Count => "count",
        }
    }

    /// A writer with an empty table, for the PostgreSQL sink.
    async fn writer(self) -> Result<Option<PostgresWriter>, BoxError> {
        if self == Sink::Count {
            return Ok(None);
        }
        let writer = PostgresWriter::connect(&database_url(), orders_table(TABLE)).await?;
        writer.truncate().await?;
        Ok(Some(writer))
    }
}

/// One variant's run: the topic, a fresh group, the sink.
struct Run {
    topic: String,
    group: String,
    messages: u64,
    partitions: i32,
    sink: Sink,
}

/// Creates the topic and produces the messages, id `i` to partition `i % partitions`.
async fn fresh_topic(topic: &str, messages: u64, partitions: i32) -> Result<(), BoxError> {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", brokers()).create()?;
    let created = admin
        .create_topics(&[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))], &AdminOptions::new())
        .await?;
    for result in created {
        result.map_err(|(topic, code)| format!("creating {topic}: {code}"))?;
    }
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("linger.ms", "20")
        .set("queue.buffering.max.messages", "2000000")
        .create()?;
    let mut deliveries = Vec::with_capacity(messages as usize);
    for id in 0..messages {
        let body = payload(id);
        let partition = i32::try_from(id % partitions as u64)?;
        let record = FutureRecord::<(), _>::to(topic).partition(partition).payload(&body);
        deliveries.push(producer.send_result(record).map_err(|(error, _)| error)?);
    }
    for delivery in deliveries {
        delivery.await?.map_err(|(error, _)| error)?;
    }
    Ok(())
}

/// What both variants report: messages written, and when the first record reached the
/// consuming code.
#[derive(Default)]
struct Progress {
    written: AtomicU64,
    first: OnceLock<Instant>,
}

impl Progress {
    fn since_first(&self, end: Instant) -> Duration {
        self.first.get().map_or(Duration::ZERO, |first| end.duration_since(*first))
    }
}

struct Ingest {
    writer: Option<PostgresWriter>,
    progress: Arc<Progress>,
}

impl Handler for Ingest {
    type Data = Vec<u8>;
    type Output = Order;

    async fn handle_message(&self, message: &mut Message<Vec<u8>>) -> Result<Order, BoxError> {
        self.progress.first.get_or_init(Instant::now);
        parse(message.data())
    }
}

impl BatchHandler for Ingest {
    async fn handle_batch(&self, rows: &mut [Message<Order>], _: &BatchInfo) -> Result<(), BoxError> {
        let written = match &self.writer {
            Some(writer) => writer.write(rows).await?,
            None => rows.len(),
        };
        self.progress.written.fetch_add(written as u64, Ordering::Relaxed);
        Ok(())
    }
}

async fn weir(run: &Run, processors: usize) -> Result<Duration, BoxError> {
    let progress = Arc::new(Progress::default());
    let ingest = Ingest { writer: run.sink.writer().await?, progress: progress.clone() };
    let options = KafkaOptions::new(brokers(), run.group.as_str(), [run.topic.as_str()])
        .offset_reset_policy(OffsetReset::Earliest)
        .client_config("session.timeout.ms", "6000");
    let pipeline = Pipeline::builder("bench", ingest)
        .producer(KafkaProducer::factory(options)?, ProducerOptions::new())
        .processors(ProcessorOptions::new().concurrency(processors).max_demand(BATCH))
        .batcher("default", BatcherOptions::new().batch_size(BATCH).batch_timeout(Duration::from_millis(50)))
        .start()
        .await?;
    while progress.written.load(Ordering::Relaxed) < run.messages {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let report = pipeline.stop().await;
    let elapsed = progress.since_first(Instant::now());
    if !report.graceful {
        return Err(format!("weir did not drain: {report:?}").into());
    }
    check(run, pipeline.handler().writer.as_ref(), progress.written.load(Ordering::Relaxed)).await?;
    Ok(elapsed)
}

async fn hand(run: &Run) -> Result<Duration, BoxError> {
    let writer = run.sink.writer().await?;
    let progress = Progress::default();
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", &run.group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .create()?;
    consumer.subscribe(&[&run.topic])?;
    let mut next = BTreeMap::new();
    {
        let received = consumer.stream().map(|message| {
            progress.first.get_or_init(Instant::now);
            message
        });
        let batches = received.chunks_timeout(BATCH, Duration::from_millis(50));
        tokio::pin!(batches);
        let mut written = 0;
        while written < run.messages {
            let Some(batch) = batches.next().await else { break };
            let mut rows = Vec::with_capacity(batch.len());
            for message in batch {
                let message = message?;
                next.insert(message.partition(), message.offset() + 1);
                rows.push(parse(message.payload().unwrap_or_default())?.values());
            }
            written += match &writer {
                Some(writer) => writer.write_rows(rows).await?,
                None => rows.len(),
            } as u64;
            consumer.commit(&offsets(&run.topic, &next)?, CommitMode::Async)?;
        }
        progress.written.store(written, Ordering::Relaxed);
    }
    consumer.commit(&offsets(&run.topic, &next)?, CommitMode::Sync)?;
    drop(consumer);
    let elapsed = progress.since_first(Instant::now());
    check(run, writer.as_ref(), progress.written.load(Ordering::Relaxed)).await?;
    Ok(elapsed)
}

/// The offsets to commit: the next of each partition.
fn offsets(topic: &str, next: &BTreeMap<i32, i64>) -> Result<TopicPartitionList, BoxError> {
    let mut tpl = TopicPartitionList::new();
    for (partition, offset) in next {
        tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset))?;
    }
    Ok(tpl)
}

/// `N` rows (or `N` counted), and the group's commits at the end of every partition.
async fn check(run: &Run, writer: Option<&PostgresWriter>, counted: u64) -> Result<(), BoxError> {
    let rows = match writer {
        Some(writer) => writer.count().await?,
        None => counted,
    };
    let (group, topic, partitions) = (run.group.clone(), run.topic.clone(), run.partitions);
    let committed = tokio::task::spawn_blocking(move || -> Result<Vec<i64>, BoxError> {
        let consumer: BaseConsumer =
            ClientConfig::new().set("bootstrap.servers", brokers()).set("group.id", &group).create()?;
        let mut asked = TopicPartitionList::new();
        asked.add_partition_range(&topic, 0, partitions - 1);
        let answer = consumer.committed_offsets(asked, Duration::from_secs(10))?;
        let offsets = (0..partitions)
            .map(|p| match answer.find_partition(&topic, p).map(|e| e.offset()) {
                Some(Offset::Offset(offset)) => offset,
                _ => -1,
            })
            .collect();
        // A partition list that outlives its consumer makes dropping the consumer hang.
        drop(answer);
        Ok(offsets)
    })
    .await??;
    let end = (run.messages / run.partitions as u64) as i64;
    if rows != run.messages || committed.iter().any(|c| *c != end) {
        return Err(format!(
            "expected {} messages and commits at {end}, found {rows} and commits {committed:?}",
            run.messages
        )
        .into());
    }
    Ok(())
}

fn run() -> Result<bool, String> {
    let args = Args::from_env();
    args.only_names(&["messages", "runs", "partitions", "processors", "sink"])?;
    let runs = args.number("runs", 3)?;
    let partitions = i32::try_from(args.number("partitions", 4)?).map_err(|e| e.to_string())?;
    let processors = usize::try_from(args.number("processors", 1)?).map_err(|e| e.to_string())?;
    let messages = args.number("messages", 200_000)? / partitions as u64 * partitions as u64;
    let sinks = match args.value("sink").unwrap_or("both") {
        "postgres" => vec![Sink::Postgres],
        "count" => vec![Sink::Count],
        "both" => vec![Sink::Postgres, Sink::Count],
        other => return Err(format!("--sink {other:?}: postgres, count or both")),
    };
    let runtime = runtime().map_err(|e| e.to_string())?;
    let topic = format!("weir-bench-kafka-{}", std::process::id());
    println!(
        "messages {messages} (≈200 bytes) in {partitions} partitions  processors {processors}  batch {BATCH}  runs {runs}"
    );
    runtime.block_on(fresh_topic(&topic, messages, partitions)).map_err(|e| format!("producing: {e}"))?;
    let mut times: BTreeMap<(&str, usize), Vec<Duration>> = BTreeMap::new();
    for run in 1..=runs {
        for sink in &sinks {
            // Alternate which goes first, so that neither always reads a colder broker.
            let order = if run % 2 == 1 { [0, 1] } else { [1, 0] };
            for i in order {
                let label = ["weir", "hand-written"][i];
                let spec = Run {
                    topic: topic.clone(),
                    group: format!("{topic}-{}-{label}-{run}", sink.label()),
                    messages,
                    partitions,
                    sink: *sink,
                };
                let (elapsed, cpu) = with_cpu(|| match i {
                    0 => runtime.block_on(weir(&spec, processors)),
                    _ => runtime.block_on(hand(&spec)),
                });
                let elapsed = elapsed.map_err(|e| format!("{label} ({}): {e}", sink.label()))?;
                println!(
                    "run {run}  {:<8} {label:<13} {}",
                    sink.label(),
                    run_figures(messages, elapsed, cpu)
                );
                times.entry((sink.label(), i)).or_default().push(elapsed);
            }
        }
    }
    println!();
    for sink in &sinks {
        let (weir, hand) = (&times[&(sink.label(), 0)], &times[&(sink.label(), 1)]);
        println!("median  {:<8} {}", sink.label(), median_line(messages, weir, hand));
    }
    Ok(true)
}

fn main() -> ExitCode {
    exit_code(run(), USAGE)
}
