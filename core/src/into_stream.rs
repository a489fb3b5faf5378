//! Consuming producers as a `futures::Stream` (GenStage's `stream`).

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use futures::Stream;
use tokio::sync::mpsc;

use crate::demand::{Chunk, DemandState};
use crate::error::{Error, ExitReason};
use crate::handle::AsProducer;
use crate::protocol::{Inbox, ProducerLink, SubscribeRequest};
use crate::runtime::Never;
use crate::subscription::{StageId, SubscribeOptions, SubscriptionId};

/// The events of one or more producers as a `futures::Stream`, with demand-driven
/// back-pressure: it asks for more only as items are taken.
///
/// The stream ends when every producer has finished. Dropping it cancels its subscriptions.
/// If a producer failed, [`failure`](Self::failure) tells why.
pub struct ConsumerStream<T> {
    inbox: mpsc::UnboundedReceiver<Inbox<T, Never>>,
    subscriptions: HashMap<SubscriptionId, (Arc<dyn ProducerLink<T>>, DemandState)>,
    chunks: VecDeque<(SubscriptionId, Chunk<T>)>,
    current: std::vec::IntoIter<T>,
    ask_after_current: Option<(SubscriptionId, usize)>,
    failure: Option<ExitReason>,
}

/// Consumes `producer` as a stream (GenStage's `stream/2`).
///
/// # Errors
///
/// [`Error::InvalidOption`] for bad demand options, [`Error::StageStopped`] if the producer
/// is not running.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), weir_core::Error> {
/// use futures::StreamExt;
/// use weir_core::{from_enumerable, start_producer, stream, ProducerOptions, SubscribeOptions};
///
/// let producer = start_producer(from_enumerable(0..3u8), ProducerOptions::new())?;
/// let items: Vec<u8> = stream(&producer, SubscribeOptions::new())?.collect().await;
/// assert_eq!(items, vec![0, 1, 2]);
/// # Ok(()) }
/// ```
pub fn stream<T: Send + 'static>(
    producer: &impl AsProducer<T>,
    options: SubscribeOptions<T>,
) -> Result<ConsumerStream<T>, Error> {
    stream_all([(producer, options)])
}

/// Consumes several producers as one stream, interleaving their events as they arrive.
///
/// # Errors
///
/// [`Error::InvalidOption`] for bad demand options, [`Error::StageStopped`] if a producer
/// is not running.
pub fn stream_all<'a, T: Send + 'static, P: AsProducer<T> + 'a>(
    producers: impl IntoIterator<Item = (&'a P, SubscribeOptions<T>)>,
) -> Result<ConsumerStream<T>, Error> {
    let (tx, rx) = mpsc::unbounded_channel::<Inbox<T, Never>>();
    let consumer = StageId::new();
    let mut stream = ConsumerStream {
        inbox: rx,
        subscriptions: HashMap::new(),
        chunks: VecDeque::new(),
        current: Vec::new().into_iter(),
        ask_after_current: None,
        failure: None,
    };
    // On an error, dropping `stream` cancels the subscriptions made so far.
    for (producer, options) in producers {
        options.validate()?;
        let (max, min) = options.demand();
        let link = producer.as_producer().link();
        let sub = SubscriptionId::new();
        let request = SubscribeRequest {
            sub,
            consumer,
            link: Arc::new(tx.clone()),
            max_demand: max,
            partition: options.partition,
            selector: options.selector,
            reply: None,
        };
        if link.subscribe(request).is_err() {
            return Err(Error::StageStopped);
        }
        let mut demand = DemandState::new(max, min);
        link.ask(sub, demand.initial_ask());
        stream.subscriptions.insert(sub, (link, demand));
    }
    Ok(stream)
}

// Nothing is pinned in place: items are only moved out.
impl<T> Unpin for ConsumerStream<T> {}

impl<T> ConsumerStream<T> {
    /// Why the stream ended early, if a producer failed.
    pub fn failure(&self) -> Option<&ExitReason> {
        self.failure.as_ref()
    }
}

impl<T> Stream for ConsumerStream<T> {
    type Item = T;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<T>> {
        let this = self.get_mut();
        loop {
            if let Some(item) = this.current.next() {
                return Poll::Ready(Some(item));
            }
            if let Some((sub, demand)) = this.ask_after_current.take() {
                if let Some((link, _)) = this.subscriptions.get(&sub) {
                    link.ask(sub, demand);
                }
            }
            if let Some((sub, chunk)) = this.chunks.pop_front() {
                this.current = chunk.events.into_iter();
                this.ask_after_current = (chunk.ask_after > 0).then_some((sub, chunk.ask_after));
                continue;
            }
            if this.subscriptions.is_empty() {
                return Poll::Ready(None);
            }
            match this.inbox.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Ready(Some(Inbox::Events { sub, events })) => {
                    if let Some((_, demand)) = this.subscriptions.get_mut(&sub) {
                        let (chunks, _excess) = demand.receive(events);
                        this.chunks.extend(chunks.into_iter().map(|c| (sub, c)));
                    }
                }
                Poll::Ready(Some(Inbox::UpstreamDown { sub, reason })) => {
                    this.subscriptions.remove(&sub);
                    if reason.is_failure() {
                        tracing::error!(%reason, "producer of a stream failed");
                        this.failure = Some(reason);
                        for (sub, (link, _)) in this.subscriptions.drain() {
                            link.cancel(sub, ExitReason::Normal);
                        }
                    }
                }
                Poll::Ready(Some(_)) => {}
            }
        }
    }
}

impl<T> Drop for ConsumerStream<T> {
    fn drop(&mut self) {
        for (sub, (link, _)) in self.subscriptions.drain() {
            link.cancel(sub, ExitReason::Normal);
        }
    }
}
