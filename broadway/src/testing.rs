//! Helpers for testing pipelines (Broadway's `test_message`, `test_batch`,
//! `CallerAcknowledger`): push data into a running pipeline and await its acknowledgements.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::acknowledger::{AckData, Acknowledger};
use crate::error::Error;
use crate::handler::Handler;
use crate::message::{BatchMode, Failure, Message};
use crate::pipeline::Pipeline;
use crate::producer::{Producer, ProducerContext};
use weir_core::BoxError;

/// An acknowledger that reports every acknowledgement to a channel (Broadway's
/// `CallerAcknowledger`): the test side is a [`TestAcks`].
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use weir_broadway::testing::CallerAcknowledger;
/// use weir_broadway::{AckData, Acknowledger, Failure};
///
/// let (acknowledger, mut acks) = CallerAcknowledger::new(2);
/// acknowledger.ack(vec![AckData::new(1)], vec![(AckData::new(0), Failure::Dropped)]);
/// let all = acks.all().await;
/// assert!(all[0].failure.is_some() && all[1].is_successful());
/// # }
/// ```
#[derive(Debug)]
pub struct CallerAcknowledger(mpsc::UnboundedSender<TestAck>);

impl CallerAcknowledger {
    /// An acknowledger for `expected` messages, and the side that awaits them.
    pub fn new(expected: usize) -> (Arc<Self>, TestAcks) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Arc::new(CallerAcknowledger(tx)), TestAcks { rx, expected, received: Vec::new() })
    }
}

impl Acknowledger for CallerAcknowledger {
    fn ack(&self, successful: Vec<AckData>, failed: Vec<(AckData, Failure)>) {
        for data in successful {
            let _test_gone = self.0.send(TestAck { tag: data.tag, failure: None });
        }
        for (data, failure) in failed {
            let _test_gone = self.0.send(TestAck { tag: data.tag, failure: Some(failure) });
        }
    }
}

/// A producer that produces nothing (Broadway's `DummyProducer`): for pipelines tested
/// with [`Pipeline::test_message`] and [`Pipeline::test_batch`].
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), weir_broadway::Error> {
/// use weir_broadway::testing::DummyProducer;
/// use weir_broadway::{BoxError, Handler, Message, Pipeline, ProducerOptions};
///
/// struct Double;
/// impl Handler for Double {
///     type Data = u32;
///     type Output = u32;
///     async fn handle_message(&self, message: &mut Message<u32>) -> Result<u32, BoxError> {
///         Ok(message.data() * 2)
///     }
/// }
///
/// let pipeline = Pipeline::builder("double", Double)
///     .producer(DummyProducer::<u32>::new, ProducerOptions::new())
///     .start()
///     .await?;
/// assert!(pipeline.test_message(21)?.all().await[0].is_successful());
/// pipeline.stop().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct DummyProducer<T>(std::marker::PhantomData<fn() -> T>);

impl<T> DummyProducer<T> {
    /// A producer of nothing.
    pub fn new() -> Self {
        DummyProducer(std::marker::PhantomData)
    }
}

impl<T> Default for DummyProducer<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Send + 'static> Producer for DummyProducer<T> {
    type Event = Message<T>;
    type Info = ();

    async fn handle_demand(
        &mut self,
        _: usize,
        _: &mut ProducerContext<'_, ()>,
    ) -> Result<Vec<Message<T>>, BoxError> {
        Ok(Vec::new())
    }
}

/// One acknowledgement seen by a test.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TestAck {
    /// The message's tag: its index in the data given to `test_batch` (0 for `test_message`).
    pub tag: u64,
    /// Why it failed, if it did.
    pub failure: Option<Failure>,
}

impl TestAck {
    /// Whether it was acknowledged as successful.
    pub fn is_successful(&self) -> bool {
        self.failure.is_none()
    }
}

/// Awaits the acknowledgements of test messages.
#[derive(Debug)]
pub struct TestAcks {
    rx: mpsc::UnboundedReceiver<TestAck>,
    expected: usize,
    received: Vec<TestAck>,
}

impl TestAcks {
    /// The next acknowledgement, in the order they happen; `None` once all expected ones
    /// were returned.
    pub async fn next(&mut self) -> Option<TestAck> {
        if self.received.len() >= self.expected {
            return None;
        }
        let ack = self.rx.recv().await?;
        self.received.push(ack.clone());
        Some(ack)
    }

    /// Waits for every expected acknowledgement; returns them by tag. A message
    /// acknowledged twice would show as a repeated tag.
    pub async fn all(mut self) -> Vec<TestAck> {
        while self.next().await.is_some() {}
        self.received.sort_by_key(|a| a.tag);
        self.received
    }
}

impl<H: Handler> Pipeline<H> {
    /// Pushes one message with `data` through the pipeline (whatever its producer is) and
    /// returns its acknowledgement to await (Broadway's `test_message`).
    ///
    /// # Errors
    ///
    /// [`Error::NotRunning`] when the pipeline is draining or stopped.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), weir_broadway::Error> {
    /// use weir_broadway::{BoxError, Handler, Message, Pipeline, ProducerOptions, memory::MemoryProducer};
    ///
    /// struct Even;
    /// impl Handler for Even {
    ///     type Data = u32;
    ///     type Output = ();
    ///     async fn handle_message(&self, message: &mut Message<u32>) -> Result<(), BoxError> {
    ///         if message.data() % 2 == 1 { message.fail("odd"); }
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let (producer, _queue) = MemoryProducer::<u32>::queue();
    /// let pipeline = Pipeline::builder("even", Even).producer(producer, ProducerOptions::new()).start().await?;
    /// assert!(pipeline.test_message(2)?.all().await[0].is_successful());
    /// let acks = pipeline.test_batch(vec![1, 2, 3])?.all().await;
    /// assert_eq!(acks.iter().filter(|a| a.is_successful()).count(), 1);
    /// pipeline.stop().await;
    /// # Ok(()) }
    /// ```
    pub fn test_message(&self, data: H::Data) -> Result<TestAcks, Error> {
        self.test_messages(vec![data], BatchMode::Bulk)
    }

    /// Pushes messages with `data` together, the last in flush mode so that the batch it
    /// joins is delivered without waiting for the batch timeout (Broadway's `test_batch`);
    /// returns their acknowledgements, tagged by index. Flush mode closes only the batch
    /// holding the last message: messages `handle_message` sends to another batcher or
    /// batch key wait for their batch's size or timeout.
    ///
    /// # Errors
    ///
    /// [`Error::NotRunning`] when the pipeline is draining or stopped.
    pub fn test_batch(&self, data: Vec<H::Data>) -> Result<TestAcks, Error> {
        self.test_messages(data, BatchMode::Flush)
    }

    fn test_messages(&self, data: Vec<H::Data>, last: BatchMode) -> Result<TestAcks, Error> {
        let (acknowledger, acks) = CallerAcknowledger::new(data.len());
        let acknowledger: Arc<dyn Acknowledger> = acknowledger;
        let n = data.len();
        let messages = data
            .into_iter()
            .zip(0u64..)
            .map(|(data, tag)| {
                let mut message = Message::new(data, acknowledger.clone(), AckData::new(tag));
                if tag + 1 == n as u64 {
                    message.put_batch_mode(last);
                }
                message
            })
            .collect();
        self.push_messages(messages)?;
        Ok(acks)
    }
}
