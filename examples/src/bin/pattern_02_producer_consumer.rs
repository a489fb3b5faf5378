//! Pattern 2 of the GenStage guide: a pipeline with a transformation,
//! producer → producer-consumer → consumer.
//!
//! `DataSource` reads records "from a database" on demand, `DataTransformer` (a
//! [`ProducerConsumer`]) upper-cases them and filters out the invalid ones, and `DataSink`
//! persists what is left. Demand flows backwards: the sink asks the transformer for at most 50,
//! the transformer asks the source for at most 100, and the transformer only works while the
//! sink has room.
//!
//! What to look for: the transformer emitting fewer records than it receives (filtering is
//! allowed), every valid record reaching the sink in order, and the whole pipeline finishing
//! by itself when the source runs out.
//!
//! The guide's anti-pattern note applies: make a stage for a runtime need (concurrency,
//! back-pressure), not for each logical step; several steps can live in one stage.
//!
//! ```sh
//! cargo run -p weir-examples --bin pattern_02_producer_consumer
//! ```

use std::error::Error;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use weir_core::{
    start_consumer, start_producer, start_producer_consumer, BoxError, Consumer, ConsumerOptions, Context,
    ExitReason, Producer, ProducerConsumer, ProducerConsumerOptions, ProducerOptions, SubscribeOptions,
    SubscriptionId,
};

/// Rows in the pretend database table.
const ROWS: u64 = 500;
/// Every row whose id is a multiple of this has empty data, and is filtered out.
const BAD_EVERY: u64 = 7;

/// One record on its way through the pipeline.
#[derive(Debug, Clone)]
struct Record {
    id: u64,
    raw_data: String,
    processed_data: Option<String>,
}

/// Reads rows on demand from a pretend table of [`ROWS`] rows, then finishes.
struct DataSource {
    next_id: u64,
}

impl DataSource {
    fn fetch_from_database(&mut self, count: usize) -> Vec<Record> {
        let end = (self.next_id + count as u64).min(ROWS + 1);
        let rows = (self.next_id..end)
            .map(|id| Record {
                id,
                raw_data: if id % BAD_EVERY == 0 { String::new() } else { format!("data_{id}") },
                processed_data: None,
            })
            .collect();
        self.next_id = end;
        rows
    }
}

impl Producer for DataSource {
    type Event = Record;
    type Message = ();

    async fn handle_demand(&mut self, demand: usize, ctx: &mut Context) -> Result<Vec<Record>, BoxError> {
        let events = self.fetch_from_database(demand);
        if self.next_id > ROWS {
            // Done: the stage stops once these last events are dispatched, and the stages
            // downstream finish after handling them.
            ctx.finish();
        }
        Ok(events)
    }
}

/// Turns raw records into processed ones and drops the invalid ones.
struct DataTransformer;

impl DataTransformer {
    fn transform(mut record: Record) -> Record {
        record.processed_data = Some(record.raw_data.to_uppercase());
        record
    }

    fn is_valid(record: &Record) -> bool {
        record.processed_data.as_ref().is_some_and(|data| !data.is_empty())
    }
}

impl ProducerConsumer for DataTransformer {
    type In = Record;
    type Out = Record;
    type Message = ();

    async fn handle_events(
        &mut self,
        events: Vec<Record>,
        _from: SubscriptionId,
        _ctx: &mut Context,
    ) -> Result<Vec<Record>, BoxError> {
        let received = events.len();
        // A producer-consumer MAY emit fewer events than it received.
        let transformed: Vec<Record> =
            events.into_iter().map(Self::transform).filter(Self::is_valid).collect();
        println!("transformer: {received} in, {} out", transformed.len());
        Ok(transformed)
    }
}

/// Persists records (here: into a shared vector standing for the database).
struct DataSink {
    persisted: Arc<Mutex<Vec<Record>>>,
}

impl Consumer for DataSink {
    type Event = Record;
    type Message = ();

    async fn handle_events(
        &mut self,
        events: Vec<Record>,
        _from: SubscriptionId,
        _ctx: &mut Context,
    ) -> Result<(), BoxError> {
        if let (Some(first), Some(last)) = (events.first(), events.last()) {
            println!(
                "sink: persisting {} records, #{} ({:?}) .. #{}",
                events.len(),
                first.id,
                first.processed_data,
                last.id
            );
        }
        self.persisted.lock().map_err(|_| "database lock poisoned")?.extend(events);
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let source = start_producer(DataSource { next_id: 1 }, ProducerOptions::new().name("source"))?;

    // A producer-consumer's buffer is unbounded by default (GenStage's `buffer_size:
    // :infinity`); the guide's checklist says to set it explicitly.
    let transformer = start_producer_consumer(
        DataTransformer,
        ProducerConsumerOptions::new()
            .name("transformer")
            .buffer_size(1_000)
            .subscribe_to(&source, SubscribeOptions::new().max_demand(100)),
    )?;

    let persisted = Arc::new(Mutex::new(Vec::new()));
    let sink = start_consumer(
        DataSink { persisted: persisted.clone() },
        ConsumerOptions::new()
            .name("sink")
            .subscribe_to(&transformer, SubscribeOptions::new().max_demand(50)),
    )?;

    // The source finishes when the table is exhausted; the transformer and the sink follow.
    let reason = tokio::time::timeout(Duration::from_secs(3), sink.wait())
        .await
        .map_err(|_| "the pipeline did not finish within 3 s")?;
    println!("sink stopped: {reason}");

    let persisted = persisted.lock().map_err(|_| "database lock poisoned")?.clone();
    let expected: Vec<u64> = (1..=ROWS).filter(|id| id % BAD_EVERY != 0).collect();
    let ids: Vec<u64> = persisted.iter().map(|r| r.id).collect();
    assert!(matches!(reason, ExitReason::Normal), "the sink ended with {reason}");
    for (name, stage_reason) in [("source", source.wait().await), ("transformer", transformer.wait().await)] {
        assert!(matches!(stage_reason, ExitReason::Normal), "the {name} ended with {stage_reason}");
    }
    assert_eq!(ids, expected, "every valid record arrives, once, in order; invalid ones are dropped");
    for record in &persisted {
        assert_eq!(record.processed_data.as_deref(), Some(record.raw_data.to_uppercase().as_str()));
    }
    println!(
        "ok: {} of {ROWS} records persisted, {} filtered out",
        persisted.len(),
        ROWS as usize - persisted.len()
    );
    Ok(())
}
