//! Producers from iterators and streams (GenStage's `from_enumerable`).

use std::iter::Peekable;

use futures::{FutureExt, Stream, StreamExt};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use crate::error::BoxError;
use crate::producer::Producer;
use crate::stage::Context;

/// A producer of the items of an iterator; it finishes when the iterator ends.
///
/// Built by [`from_enumerable`].
pub struct FromEnumerable<I: Iterator> {
    iter: Peekable<I>,
}

/// A producer of the items of an iterator (GenStage's `from_enumerable`): it emits as many
/// items as asked and finishes when the iterator ends, so its consumers finish too.
///
/// The iterator runs inside the stage: keep each `next()` cheap, or use [`from_stream`].
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), weir_core::Error> {
/// use futures::StreamExt;
/// use weir_core::{from_enumerable, start_producer, stream, ProducerOptions, SubscribeOptions};
///
/// let producer = start_producer(from_enumerable(1..=1000u64), ProducerOptions::new())?;
/// let doubled: Vec<u64> = stream(&producer, SubscribeOptions::new().max_demand(100))?
///     .map(|x| x * 2)
///     .take(10)
///     .collect()
///     .await;
/// assert_eq!(doubled, vec![2, 4, 6, 8, 10, 12, 14, 16, 18, 20]);
/// # Ok(()) }
/// ```
#[doc(alias = "from_iter")]
pub fn from_enumerable<I>(items: I) -> FromEnumerable<I::IntoIter>
where
    I: IntoIterator,
    I::IntoIter: Send + 'static,
    I::Item: Send + 'static,
{
    FromEnumerable { iter: items.into_iter().peekable() }
}

impl<I> Producer for FromEnumerable<I>
where
    I: Iterator + Send + 'static,
    I::Item: Send + 'static,
{
    type Event = I::Item;
    type Message = ();

    async fn handle_demand(&mut self, demand: usize, ctx: &mut Context) -> Result<Vec<I::Item>, BoxError> {
        let events: Vec<I::Item> = self.iter.by_ref().take(demand).collect();
        if self.iter.peek().is_none() {
            ctx.finish();
        }
        Ok(events)
    }
}

/// A producer of the items of a `futures::Stream`; it finishes when the stream ends.
///
/// Built by [`from_stream`].
pub struct FromStream<S: Stream> {
    stream: Option<S>,
    wants: Option<mpsc::UnboundedSender<usize>>,
    feeder: Option<AbortHandle>,
}

/// What the task polling a [`FromStream`]'s stream sends back to it.
pub struct StreamFed<T>(Fed<T>);

enum Fed<T> {
    Items(Vec<T>),
    Done,
}

/// A producer of the items of a `futures::Stream`. The stream is polled by a task of its
/// own, only as far as consumers asked, so a slow stream never blocks the stage; items that
/// are ready together travel as one chunk.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), weir_core::Error> {
/// use futures::StreamExt;
/// use weir_core::{from_stream, start_producer, stream, ProducerOptions, SubscribeOptions};
///
/// let source = futures::stream::iter(0..5u32).then(|x| async move { x * 10 });
/// let producer = start_producer(from_stream(source), ProducerOptions::new())?;
/// let out: Vec<u32> = stream(&producer, SubscribeOptions::new())?.collect().await;
/// assert_eq!(out, vec![0, 10, 20, 30, 40]);
/// # Ok(()) }
/// ```
pub fn from_stream<S>(stream: S) -> FromStream<S>
where
    S: Stream + Send + 'static,
    S::Item: Send + 'static,
{
    FromStream { stream: Some(stream), wants: None, feeder: None }
}

impl<S: Stream> Drop for FromStream<S> {
    fn drop(&mut self) {
        if let Some(feeder) = &self.feeder {
            feeder.abort();
        }
    }
}

impl<S> Producer for FromStream<S>
where
    S: Stream + Send + 'static,
    S::Item: Send + 'static,
{
    type Event = S::Item;
    type Message = StreamFed<S::Item>;

    async fn handle_demand(
        &mut self,
        demand: usize,
        ctx: &mut Context<Self::Message>,
    ) -> Result<Vec<S::Item>, BoxError> {
        if let Some(stream) = self.stream.take() {
            let (tx, rx) = mpsc::unbounded_channel();
            let me = ctx.me().clone();
            let task = tokio::spawn(feed(Box::pin(stream), rx, move |fed| me.cast(StreamFed(fed)).is_ok()));
            self.feeder = Some(task.abort_handle());
            self.wants = Some(tx);
        }
        if let Some(wants) = &self.wants {
            let _feeder_done = wants.send(demand);
        }
        Ok(Vec::new())
    }

    async fn handle_info(
        &mut self,
        message: Self::Message,
        ctx: &mut Context<Self::Message>,
    ) -> Result<Vec<S::Item>, BoxError> {
        match message.0 {
            Fed::Items(items) => Ok(items),
            Fed::Done => {
                ctx.finish();
                Ok(Vec::new())
            }
        }
    }
}

/// Polls `stream` for as many items as wanted, sending them back in ready-together chunks.
async fn feed<S: Stream + Unpin>(
    mut stream: S,
    mut wants: mpsc::UnboundedReceiver<usize>,
    send: impl Fn(Fed<S::Item>) -> bool,
) {
    let mut want = 0usize;
    loop {
        while let Ok(more) = wants.try_recv() {
            want += more;
        }
        if want == 0 {
            match wants.recv().await {
                Some(more) => want += more,
                None => return,
            }
            continue;
        }
        let Some(first) = stream.next().await else {
            send(Fed::Done);
            return;
        };
        let mut batch = vec![first];
        want -= 1;
        let mut ended = false;
        while want > 0 {
            match stream.next().now_or_never() {
                Some(Some(item)) => {
                    batch.push(item);
                    want -= 1;
                }
                Some(None) => {
                    ended = true;
                    break;
                }
                None => break,
            }
        }
        if !send(Fed::Items(batch)) {
            return;
        }
        if ended {
            send(Fed::Done);
            return;
        }
    }
}
