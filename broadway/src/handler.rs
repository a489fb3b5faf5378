//! The user's callbacks: [`Handler`] for processors, [`BatchHandler`] for batch processors.

use std::future::Future;

use weir_core::BoxError;

use crate::batch_info::BatchInfo;
use crate::message::Message;

/// What a pipeline does with each message (Broadway's callback module). Only
/// [`handle_message`](Handler::handle_message) is required.
///
/// The handler is shared by every processor and batch processor (it is the pipeline's
/// context: put connection pools and settings in it), so callbacks take `&self`.
///
/// `handle_message` turns a message's data into the pipeline's output; the message's
/// metadata, batcher, batch key and acknowledgement carry over. Returning `Err`, calling
/// [`Message::fail`] or panicking fails that message only: it skips the batchers, may be
/// retried (see [`RetryPolicy`](crate::RetryPolicy)), then goes to
/// [`handle_failed`](Handler::handle_failed) and is acknowledged as failed.
///
/// # Examples
///
/// ```
/// use weir_broadway::{BoxError, Handler, Message};
///
/// struct Parse;
///
/// impl Handler for Parse {
///     type Data = String;
///     type Output = u64;
///
///     async fn handle_message(&self, message: &mut Message<String>) -> Result<u64, BoxError> {
///         message.put_batcher("sum");
///         Ok(message.data().trim().parse()?)
///     }
/// }
/// ```
pub trait Handler: Send + Sync + 'static {
    /// The data producers send.
    type Data: Send + 'static;
    /// What `handle_message` makes of it; batchers batch it.
    type Output: Send + 'static;

    /// Handles one message: returns its output, and may set its batcher, batch key and
    /// batch mode, or fail it.
    fn handle_message(
        &self,
        message: &mut Message<Self::Data>,
    ) -> impl Future<Output = Result<Self::Output, BoxError>> + Send;

    /// Sees a whole chunk before `handle_message` is called on each of its messages, e.g. to
    /// load what they need in one query (Broadway's `prepare_messages`). An error or a panic
    /// fails the chunk's messages.
    fn prepare_messages(
        &self,
        messages: &mut [Message<Self::Data>],
    ) -> impl Future<Output = Result<(), BoxError>> + Send {
        let _ = messages;
        async { Ok(()) }
    }

    /// Sees the messages that failed in a processor, after any retries, before they are
    /// acknowledged as failed: log them, or change how they are acknowledged with
    /// [`Message::configure_ack`]. It is the dead-letter hook of a [`RetryPolicy`](crate::RetryPolicy).
    fn handle_failed(&self, messages: &mut [Message<Self::Data>]) -> impl Future<Output = ()> + Send {
        let _ = messages;
        async {}
    }
}

/// The batch callbacks, needed by a pipeline with batchers (Broadway's `handle_batch`).
///
/// `handle_batch` gets every message of a batch (of one batcher, one batch key and, with
/// `partition_by`, one partition) and settles them together: returning `Ok` acknowledges
/// the messages it did not [`fail`](Message::fail) as successful; returning `Err` or
/// panicking fails the whole batch. Failed messages may be retried (the batch is handled
/// again with only them), then go to [`handle_failed_batch`](BatchHandler::handle_failed_batch).
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use weir_broadway::{BatchHandler, BatchInfo, BoxError, Handler, Message};
///
/// #[derive(Default)]
/// struct Sum(AtomicU64);
///
/// impl Handler for Sum {
///     type Data = u64;
///     type Output = u64;
///     async fn handle_message(&self, message: &mut Message<u64>) -> Result<u64, BoxError> {
///         Ok(*message.data())
///     }
/// }
///
/// impl BatchHandler for Sum {
///     async fn handle_batch(&self, messages: &mut [Message<u64>], info: &BatchInfo) -> Result<(), BoxError> {
///         assert_eq!(messages.len(), info.size);
///         self.0.fetch_add(messages.iter().map(|m| m.data()).sum(), Ordering::Relaxed);
///         Ok(())
///     }
/// }
/// ```
pub trait BatchHandler: Handler {
    /// Handles one batch.
    fn handle_batch(
        &self,
        messages: &mut [Message<Self::Output>],
        info: &BatchInfo,
    ) -> impl Future<Output = Result<(), BoxError>> + Send;

    /// Sees the messages of a batch that failed, after any retries, before they are
    /// acknowledged as failed.
    fn handle_failed_batch(
        &self,
        messages: &mut [Message<Self::Output>],
        info: &BatchInfo,
    ) -> impl Future<Output = ()> + Send {
        let _ = (messages, info);
        async {}
    }
}
