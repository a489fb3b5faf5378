//! An ingestion pipeline with the configuration of `shared/seeds/004` (Broadway's
//! `GSCBatchPipeline`): one producer, 10 processors asking 5 messages at a time, a
//! "persistence" batcher writing batches of 100 (or whatever arrived within 1 s) with 5
//! batch processors.
//!
//! Lines arrive on an in-memory queue; `handle_message` parses them (bad lines fail and are
//! seen by `handle_failed`), `handle_batch` "inserts" each batch into a table. The program
//! stops gracefully on ctrl-c or SIGTERM, or once every line has been acknowledged; then it
//! checks that every line was acknowledged exactly once (as inserted or as failed) and that
//! the table holds exactly the good lines.
//!
//! ```text
//! cargo run -p weir-examples --bin broadway_ingest
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use weir_broadway::memory::MemoryProducer;
use weir_broadway::{
    BatchHandler, BatchInfo, BatcherOptions, BoxError, Handler, Message, Pipeline, ProcessorOptions,
    ProducerOptions,
};

const LINES: usize = 10_000;

/// One parsed line: a sync job's property and its row count.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    property: String,
    rows: u64,
}

/// The pipeline's callbacks and context: the "database" table.
#[derive(Default)]
struct GscBatches {
    table: Mutex<Vec<Row>>,
    batches: AtomicUsize,
    seen_failed: AtomicUsize,
}

impl Handler for GscBatches {
    type Data = String;
    type Output = Row;

    async fn handle_message(&self, message: &mut Message<String>) -> Result<Row, BoxError> {
        let (property, rows) = message.data().split_once(',').ok_or("expected property,rows")?;
        let row = Row { property: property.to_owned(), rows: rows.trim().parse()? };
        message.put_batcher("persistence");
        Ok(row)
    }

    async fn handle_failed(&self, messages: &mut [Message<String>]) {
        for message in messages.iter() {
            tracing::debug!(line = %message.data(), failure = ?message.failure(), "line failed");
        }
        self.seen_failed.fetch_add(messages.len(), Ordering::Relaxed);
    }
}

impl BatchHandler for GscBatches {
    async fn handle_batch(&self, rows: &mut [Message<Row>], info: &BatchInfo) -> Result<(), BoxError> {
        // One "insert_all" per batch.
        let mut table = self.table.lock().map_err(|_| "table lock poisoned")?;
        table.extend(rows.iter().map(|m| m.data().clone()));
        self.batches.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(%info, "inserted");
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();

    let (producer, queue) = MemoryProducer::<String>::queue();
    let pipeline = Pipeline::builder("gsc_batches", GscBatches::default())
        .producer(producer, ProducerOptions::new().concurrency(1))
        .processors(ProcessorOptions::new().concurrency(10).max_demand(5))
        .batcher(
            "persistence",
            BatcherOptions::new().batch_size(100).batch_timeout(Duration::from_secs(1)).concurrency(5),
        )
        .shutdown_timeout(Duration::from_secs(10))
        .start()
        .await?;
    print!("{}", pipeline.topology());

    // Lines trickle in; every 97th is malformed.
    let feeder = queue.clone();
    tokio::spawn(async move {
        for chunk in (0..LINES).collect::<Vec<_>>().chunks(500) {
            feeder.push_all(chunk.iter().map(|i| {
                if i % 97 == 0 {
                    format!("broken line {i}")
                } else {
                    format!("sc-domain:site{}.example,{}", i % 50, i % 1000)
                }
            }));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });

    let acks = queue.acks().clone();
    tokio::select! {
        () = weir_examples::shutdown_signal() => println!("signal: draining"),
        () = acks.wait_for(LINES) => println!("every line acknowledged"),
    }
    let report = pipeline.stop().await;
    println!("stopped: {report:?}");

    let handler = pipeline.handler();
    let table = handler.table.lock().map_err(|_| "table lock poisoned")?;
    let bad = (0..LINES).filter(|i| i % 97 == 0).count();
    println!(
        "acknowledged {} ({} inserted, {} failed), {} rows in {} batches",
        acks.total(),
        acks.successful(),
        acks.failed(),
        table.len(),
        handler.batches.load(Ordering::Relaxed)
    );
    assert!(report.graceful, "the pipeline drained within its shutdown timeout");
    if acks.total() == LINES {
        assert_eq!(acks.failed(), bad, "every malformed line failed");
        assert_eq!(handler.seen_failed.load(Ordering::Relaxed), bad, "handle_failed saw each failure");
        assert_eq!(table.len(), LINES - bad, "every good line was inserted once");
        let mut tags: Vec<u64> = acks.failures().iter().map(|(tag, _)| *tag).collect();
        tags.sort_unstable();
        tags.dedup();
        assert_eq!(tags.len(), bad, "no line failed twice");
    }
    assert_eq!(acks.successful(), table.len(), "a line is acknowledged after its batch is inserted");
    Ok(())
}
