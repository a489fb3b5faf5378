//! Demand-driven stages with back-pressure: GenStage for Rust.
//!
//! A pipeline is made of stages: [`Producer`]s emit events, [`Consumer`]s handle them, and
//! [`ProducerConsumer`]s do both. Consumers *ask* producers for events (`max_demand` at most,
//! asking again when outstanding demand falls to `min_demand`), so no stage is ever sent
//! more than it can take. Each stage is a tokio task; events travel in `Vec` chunks.
//!
//! ```
//! use weir_core::{
//!     from_enumerable, start_consumer, start_producer, BoxError, Consumer, ConsumerOptions,
//!     Context, ExitReason, ProducerOptions, SubscribeOptions, SubscriptionId,
//! };
//!
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use std::sync::Arc;
//!
//! struct Sum(Arc<AtomicU64>);
//!
//! impl Consumer for Sum {
//!     type Event = u64;
//!     type Message = ();
//!     async fn handle_events(&mut self, events: Vec<u64>, _: SubscriptionId, _: &mut Context) -> Result<(), BoxError> {
//!         self.0.fetch_add(events.iter().sum::<u64>(), Ordering::Relaxed);
//!         Ok(())
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), weir_core::Error> {
//!     let numbers = start_producer(from_enumerable(1..=1000u64), ProducerOptions::new())?;
//!     let total = Arc::new(AtomicU64::new(0));
//!     let sum = start_consumer(Sum(total.clone()), ConsumerOptions::new()
//!         .subscribe_to(&numbers, SubscribeOptions::new().max_demand(100)))?;
//!     // The producer finishes when the range ends; the consumer follows.
//!     assert!(matches!(sum.wait().await, ExitReason::Normal));
//!     assert_eq!(total.load(Ordering::Relaxed), 500_500);
//!     Ok(())
//! }
//! ```
//!
//! See `ARCHITECTURE.md` in the repository for the demand protocol and the task tree.

mod buffer;
mod consumer;
mod consumer_supervisor;
mod demand;
pub mod dispatcher;
mod error;
mod from_enumerable;
mod handle;
mod into_stream;
mod producer;
mod producer_consumer;
mod protocol;
mod runtime;
mod stage;
mod subscription;
mod supervisor;

pub use buffer::{BufferKeep, BufferSize};
pub use consumer::{start_consumer, Consumer, ConsumerOptions};
pub use consumer_supervisor::{start_consumer_supervisor, ConsumerSupervisorOptions, WorkerDone};
pub use demand::DemandMode;
pub use error::{panic_message, BoxError, Error, ExitReason};
pub use from_enumerable::{from_enumerable, from_stream, FromEnumerable, FromStream, StreamFed};
pub use handle::{
    AsProducer, ConsumerHandle, ConsumerRef, ProducerConsumerHandle, ProducerHandle, ProducerRef,
};
pub use into_stream::{stream, stream_all, ConsumerStream};
pub use producer::{start_producer, Producer, ProducerOptions};
pub use producer_consumer::{start_producer_consumer, ProducerConsumer, ProducerConsumerOptions};
pub use runtime::Peer;
pub use stage::{AnyStageRef, Context, Reply, StageRef};
pub use subscription::{
    AskMode, CancelMode, PartitionKey, Selector, StageId, SubscribeOptions, SubscriptionId,
};
pub use supervisor::{Restart, Strategy, Supervisor, SupervisorHandle};
