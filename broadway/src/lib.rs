//! Ingestion pipelines with back-pressure and acknowledgements: Broadway for Rust.
//!
//! A [`Pipeline`] runs producers → processors → batchers → batch processors on
//! [`weir_core`] stages. You write a [`Handler`] (`handle_message`, and
//! [`BatchHandler::handle_batch`] when there are batchers); producers bring
//! [`Message`]s that carry their acknowledgement, and the pipeline acknowledges every
//! message exactly once: successful ones after their batch is handled, failed ones (an
//! error, a panic, [`Message::fail`]) as soon as they fail, dropped ones as failed.
//!
//! ```
//! use std::time::Duration;
//! use weir_broadway::memory::MemoryProducer;
//! use weir_broadway::{BatchHandler, BatchInfo, BatcherOptions, BoxError, Handler, Message};
//! use weir_broadway::{Pipeline, ProcessorOptions, ProducerOptions};
//!
//! struct Orders;
//!
//! impl Handler for Orders {
//!     type Data = String;
//!     type Output = (String, u32);
//!     async fn handle_message(&self, message: &mut Message<String>) -> Result<(String, u32), BoxError> {
//!         let (id, cents) = message.data().split_once(',').ok_or("no comma")?;
//!         let row = (id.to_owned(), cents.parse()?);
//!         message.put_batcher("sql");
//!         Ok(row)
//!     }
//! }
//!
//! impl BatchHandler for Orders {
//!     async fn handle_batch(&self, rows: &mut [Message<(String, u32)>], info: &BatchInfo) -> Result<(), BoxError> {
//!         println!("insert {} rows ({info})", rows.len());
//!         Ok(())
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), weir_broadway::Error> {
//!     let lines = vec!["a,100".to_string(), "b,250".into(), "oops".into()];
//!     let (producer, acks) = MemoryProducer::from_iter(lines);
//!     let pipeline = Pipeline::builder("orders", Orders)
//!         .producer(producer, ProducerOptions::new())
//!         .processors(ProcessorOptions::new().concurrency(2).max_demand(10))
//!         .batcher("sql", BatcherOptions::new().batch_size(100).batch_timeout(Duration::from_millis(50)))
//!         .start()
//!         .await?;
//!     pipeline.wait().await?;
//!     assert_eq!((acks.successful(), acks.failed()), (2, 1));
//!     Ok(())
//! }
//! ```
//!
//! Ordering: without `partition_by`, messages are spread over processors as they ask, and
//! no order is promised. With [`ProcessorOptions::partition_by`] (and
//! [`BatcherOptions::partition_by`]), the messages of one partition go through one
//! processor and one batch processor, in order (a retried message comes after the others
//! of its chunk).
//!
//! Telemetry: see the [`telemetry`] module for metric names; stages log with `tracing`.

mod acknowledger;
mod batch_info;
mod config;
mod error;
mod handler;
pub mod memory;
mod message;
mod pipeline;
mod producer;
mod rate_limit;
mod retry;
pub mod telemetry;
pub mod testing;
mod topology;

pub use acknowledger::{AckAction, AckData, AckOptions, Acknowledger, NoopAcknowledger};
pub use batch_info::{BatchInfo, BatchTrigger};
pub use config::{BatchSize, BatcherOptions, ProcessorOptions, ProducerOptions, SizeStep};
pub use error::Error;
pub use handler::{BatchHandler, Handler};
pub use message::{BatchKey, BatchMode, Failure, Message, Metadata, MetadataValue, Status, DEFAULT_BATCHER};
pub use pipeline::{BatcherTopology, Builder, Pipeline, ShutdownReport, Topology};
pub use producer::{InfoSender, Producer, ProducerContext};
pub use rate_limit::RateLimit;
pub use retry::RetryPolicy;
pub use weir_core::BoxError;
