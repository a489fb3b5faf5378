//! Sources and sinks for [`weir_broadway`] pipelines, each behind a cargo feature.
//!
//! - `sqlite` (default): [`sqlite::SqliteWriter`], batches into an embedded SQLite database.
//! - `postgres`: [`postgres::PostgresWriter`], batches into PostgreSQL (one multi-row
//!   `INSERT ... SELECT FROM UNNEST` per batch).
//! - `rabbitmq`: [`rabbitmq::RabbitMqProducer`], a source consuming a RabbitMQ queue, with
//!   acknowledgements batched per channel.
//! - `sqs`: [`sqs::SqsProducer`], a source receiving from an SQS queue, several receives
//!   in flight, deletes batched, visibility extended while a message is handled.
//! - `kafka`: [`kafka::KafkaProducer`], a source consuming Kafka topics as a consumer group,
//!   in order per partition (or key), committing contiguous acknowledged offsets.
//!
//! The writers make `handle_batch` a one-liner for the common case "insert this batch of rows": a
//! batch is written in one transaction, so it is acknowledged only after its commit; if the
//! write fails, the batch fails (and is retried per the pipeline's
//! [`RetryPolicy`](weir_broadway::RetryPolicy)). Inserts are upserts by default
//! ([`sql::OnConflict`]): at-least-once delivery means a message may come twice.
//!
//! ```
//! # #[cfg(feature = "sqlite")]
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use weir_broadway::memory::MemoryProducer;
//! use weir_broadway::{BatchHandler, BatchInfo, BatcherOptions, BoxError, Handler, Message, Pipeline, ProducerOptions};
//! use weir_connectors::sql::{ColumnType, Row, Table, Value};
//! use weir_connectors::sqlite::SqliteWriter;
//!
//! struct Order(i64, i64);
//! impl Row for Order {
//!     fn values(&self) -> Vec<Value> { vec![self.0.into(), self.1.into()] }
//! }
//!
//! struct Store(SqliteWriter);
//! impl Handler for Store {
//!     type Data = (i64, i64);
//!     type Output = Order;
//!     async fn handle_message(&self, message: &mut Message<(i64, i64)>) -> Result<Order, BoxError> {
//!         let (id, cents) = *message.data();
//!         Ok(Order(id, cents))
//!     }
//! }
//! impl BatchHandler for Store {
//!     async fn handle_batch(&self, rows: &mut [Message<Order>], _: &BatchInfo) -> Result<(), BoxError> {
//!         self.0.write(rows).await?;
//!         Ok(())
//!     }
//! }
//!
//! let table = Table::new("orders").column("id", ColumnType::BigInt).column("cents", ColumnType::BigInt).key(["id"]);
//! let writer = SqliteWriter::in_memory(table)?;
//! let (producer, acks) = MemoryProducer::from_iter((0..1_000).map(|i| (i, i * 10)));
//! let pipeline = Pipeline::builder("orders", Store(writer.clone()))
//!     .producer(producer, ProducerOptions::new())
//!     .batcher("default", BatcherOptions::new().batch_size(100))
//!     .start()
//!     .await?;
//! pipeline.wait().await?;
//! assert_eq!((writer.count().await?, acks.successful()), (1_000, 1_000));
//! # Ok(()) }
//! # #[cfg(not(feature = "sqlite"))]
//! # fn main() {}
//! ```

#[cfg(any(feature = "rabbitmq", feature = "sqs", feature = "kafka"))]
mod ack_actions;
mod backoff;
mod error;
#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "rabbitmq")]
pub mod rabbitmq;
pub mod sql;
#[cfg(feature = "sqlite")]
pub mod sqlite;
#[cfg(feature = "sqs")]
pub mod sqs;

pub use backoff::Backoff;
pub use error::Error;
