//! Shutdown: `Pipeline::stop` drains (producers' `prepare_for_draining`, in-flight messages
//! processed, partial batches delivered, everything acknowledged); after the shutdown
//! timeout it aborts and acknowledges what is left as dropped; closing a `MemoryQueue`
//! ends a pipeline by itself.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::Tally;
use weir_broadway::memory::MemoryProducer;
use weir_broadway::{
    AckData, BatchHandler, BatchInfo, BatchTrigger, BatcherOptions, BoxError, Error, Failure, Handler,
    Message, Pipeline, ProcessorOptions, Producer, ProducerContext, ProducerOptions, RetryPolicy,
};

/// Emits ids from a counter shared by every producer, without end; counts its
/// `prepare_for_draining` calls, which emit two last messages.
struct Endless {
    next: Arc<AtomicU64>,
    drained: Arc<AtomicUsize>,
    tally: Arc<Tally>,
}

impl Endless {
    fn emit(&self, n: usize) -> Vec<Message<u64>> {
        let first = self.next.fetch_add(n as u64, Ordering::SeqCst);
        (first..first + n as u64).map(|id| Message::new(id, self.tally.clone(), AckData::new(id))).collect()
    }
}

impl Producer for Endless {
    type Event = Message<u64>;
    type Info = ();

    async fn handle_demand(
        &mut self,
        demand: usize,
        _: &mut ProducerContext<'_, ()>,
    ) -> Result<Vec<Message<u64>>, BoxError> {
        Ok(self.emit(demand))
    }

    async fn prepare_for_draining(
        &mut self,
        _: &mut ProducerContext<'_, ()>,
    ) -> Result<Vec<Message<u64>>, BoxError> {
        self.drained.fetch_add(1, Ordering::SeqCst);
        Ok(self.emit(2))
    }
}

/// The ids emitted so far, the `prepare_for_draining` calls, the acknowledgements, and a
/// factory of `Endless` producers sharing them.
#[allow(clippy::type_complexity)]
fn endless() -> (Arc<AtomicU64>, Arc<AtomicUsize>, Arc<Tally>, impl Fn() -> Endless + Send + Sync + 'static) {
    let (next, drained, tally) =
        (Arc::new(AtomicU64::new(0)), Arc::new(AtomicUsize::new(0)), Arc::new(Tally::default()));
    let factory = {
        let (next, drained, tally) = (next.clone(), drained.clone(), tally.clone());
        move || Endless { next: next.clone(), drained: drained.clone(), tally: tally.clone() }
    };
    (next, drained, tally, factory)
}

/// How a test handler behaves.
#[derive(Clone, Copy, Default, PartialEq)]
enum Mode {
    /// `handle_message` takes 100 ms.
    #[default]
    Slow,
    /// `handle_message` never returns.
    StuckInMessage,
    /// `handle_batch` never returns.
    StuckInBatch,
    /// `handle_batch` fails the even ids.
    FailEvenInBatch,
    /// `handle_batch` fails the even ids; `handle_failed_batch` never returns.
    FailEvenThenStuck,
}

/// Records the ids handled and the batches (trigger, ids).
#[derive(Default)]
struct Recorder {
    mode: Mode,
    handled: Mutex<Vec<u64>>,
    batches: Mutex<Vec<(BatchTrigger, Vec<u64>)>>,
}

impl Handler for Recorder {
    type Data = u64;
    type Output = u64;

    async fn handle_message(&self, message: &mut Message<u64>) -> Result<u64, BoxError> {
        match self.mode {
            Mode::Slow => tokio::time::sleep(Duration::from_millis(100)).await,
            Mode::StuckInMessage => std::future::pending::<()>().await,
            Mode::StuckInBatch | Mode::FailEvenInBatch | Mode::FailEvenThenStuck => {}
        }
        self.handled.lock().unwrap().push(*message.data());
        Ok(*message.data())
    }
}

impl BatchHandler for Recorder {
    async fn handle_batch(&self, messages: &mut [Message<u64>], info: &BatchInfo) -> Result<(), BoxError> {
        if self.mode == Mode::StuckInBatch {
            std::future::pending::<()>().await;
        }
        self.batches.lock().unwrap().push((info.trigger, messages.iter().map(|m| *m.data()).collect()));
        if matches!(self.mode, Mode::FailEvenInBatch | Mode::FailEvenThenStuck) {
            messages.iter_mut().filter(|m| m.data() % 2 == 0).for_each(|m| m.fail("even"));
        }
        Ok(())
    }

    async fn handle_failed_batch(&self, _: &mut [Message<u64>], _: &BatchInfo) {
        if self.mode == Mode::FailEvenThenStuck {
            std::future::pending::<()>().await;
        }
    }
}

/// A batcher that only a drain (or a queue's end) closes before 10,000 messages.
fn big_batches() -> BatcherOptions<u64> {
    BatcherOptions::new().batch_size(10_000).batch_timeout(Duration::from_secs(3600))
}

#[tokio::test(start_paused = true)]
async fn stop_drains_in_flight_messages_and_partial_batches() {
    let (next, drained, tally, factory) = endless();
    let pipeline = Pipeline::builder("draining", Recorder::default())
        .producer(factory, ProducerOptions::new().concurrency(2))
        .processors(ProcessorOptions::new().concurrency(2).max_demand(10))
        .batcher("default", big_batches())
        .start()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(pipeline.in_flight() > 0, "messages are in flight when it stops");

    let report = pipeline.stop().await;
    assert!(report.graceful, "{report:?}");
    assert_eq!((report.abandoned, report.error.as_deref()), (0, None));
    assert!(!pipeline.is_running());
    assert_eq!(drained.load(Ordering::SeqCst), 2, "each producer was told to drain");

    let emitted = next.load(Ordering::SeqCst);
    assert!(emitted >= 4, "the drain's own messages are among them");
    let acks = tally.once_each(emitted);
    assert!(acks.values().all(Option::is_none), "all successful: {acks:?}");
    let handler = pipeline.handler();
    let mut handled = handler.handled.lock().unwrap().clone();
    handled.sort_unstable();
    assert_eq!(handled, (0..emitted).collect::<Vec<_>>());
    // The batch was still open: the drain delivered it.
    let batches = handler.batches.lock().unwrap().clone();
    assert_eq!(batches.len(), 1, "{batches:?}");
    assert_eq!((batches[0].0, batches[0].1.len() as u64), (BatchTrigger::Drain, emitted));
    assert_eq!(pipeline.in_flight(), 0);

    let late = Message::new(u64::MAX, tally.clone(), AckData::new(u64::MAX));
    assert!(matches!(pipeline.push_messages(vec![late]), Err(Error::NotRunning)));
}

#[tokio::test(start_paused = true)]
async fn after_the_shutdown_timeout_what_is_left_is_acknowledged_as_dropped() {
    for mode in [Mode::StuckInMessage, Mode::StuckInBatch] {
        let (next, _, tally, factory) = endless();
        let timeout = Duration::from_secs(5);
        let pipeline = Pipeline::builder("stuck", Recorder { mode, ..Recorder::default() })
            .producer(factory, ProducerOptions::new().concurrency(2))
            .processors(ProcessorOptions::new().concurrency(2).max_demand(4))
            .batcher("default", BatcherOptions::new().batch_size(3))
            .shutdown_timeout(timeout)
            .start()
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;

        let report = pipeline.stop().await;
        assert!(!report.graceful, "{report:?}");
        assert!(report.elapsed >= timeout, "{report:?}");
        let emitted = next.load(Ordering::SeqCst);
        assert!(report.abandoned > 0);
        assert_eq!(report.abandoned as u64, emitted, "nothing was settled before the timeout");
        assert!(!pipeline.is_running());
        let acks = tally.once_each(emitted);
        assert!(acks.values().all(|f| *f == Some(Failure::Dropped)), "all dropped: {acks:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_batch_aborted_after_handle_batch_still_acknowledges_its_successful_messages() {
    // Aborted while waiting to retry the failed messages, or in `handle_failed_batch`.
    let backoff = Duration::from_secs(3600);
    let retry = RetryPolicy::new(2).backoff(backoff, backoff);
    for (mode, retry) in [(Mode::FailEvenInBatch, Some(retry)), (Mode::FailEvenThenStuck, None)] {
        let (next, _, tally, factory) = endless();
        let mut builder = Pipeline::builder("aborted", Recorder { mode, ..Recorder::default() })
            .producer(factory, ProducerOptions::new())
            .processors(ProcessorOptions::new().concurrency(1).max_demand(4))
            .batcher("default", BatcherOptions::new().batch_size(4))
            .shutdown_timeout(Duration::from_secs(5));
        if let Some(retry) = retry {
            builder = builder.retry(retry);
        }
        let pipeline = builder.start().await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let report = pipeline.stop().await;
        assert!(!report.graceful, "{report:?}");

        // The batch processor was stuck after its first batch: its odd ids had succeeded,
        // everything else was abandoned.
        let batches = pipeline.handler().batches.lock().unwrap().clone();
        assert_eq!(batches.len(), 1, "{batches:?}");
        let acks = tally.once_each(next.load(Ordering::SeqCst));
        for (id, failure) in acks {
            if batches[0].1.contains(&id) && id % 2 == 1 {
                assert_eq!(failure, None, "id {id} succeeded in handle_batch");
            } else {
                assert_eq!(failure, Some(Failure::Dropped), "id {id}");
            }
        }
        if retry.is_some() {
            // Acknowledged before the backoff, so not abandoned.
            assert_eq!(report.abandoned as u64, next.load(Ordering::SeqCst) - 2);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn closing_a_memory_queue_ends_the_pipeline() {
    let (producer, queue) = MemoryProducer::<u64>::queue();
    let pipeline = Pipeline::builder("queue", Recorder::default())
        .producer(producer, ProducerOptions::new().concurrency(2))
        .processors(ProcessorOptions::new().concurrency(2).max_demand(10))
        .batcher("default", BatcherOptions::new().batch_size(30).batch_timeout(Duration::from_secs(3600)))
        .start()
        .await
        .unwrap();
    queue.push_all(0..60);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(pipeline.is_running(), "an open queue keeps the pipeline running");
    queue.push_all(60..100);
    queue.close();
    tokio::time::timeout(Duration::from_secs(3600), pipeline.wait()).await.unwrap().unwrap();

    assert!(!pipeline.is_running());
    let acks = queue.acks();
    assert_eq!((acks.successful(), acks.failed()), (100, 0));
    let batches = pipeline.handler().batches.lock().unwrap().clone();
    let mut ids: Vec<u64> = batches.iter().flat_map(|(_, ids)| ids.clone()).collect();
    ids.sort_unstable();
    assert_eq!(ids, (0..100).collect::<Vec<_>>(), "every item handled once");
    let shapes: Vec<(BatchTrigger, usize)> = batches.iter().map(|(t, ids)| (*t, ids.len())).collect();
    assert_eq!(
        shapes,
        [
            (BatchTrigger::Size, 30),
            (BatchTrigger::Size, 30),
            (BatchTrigger::Size, 30),
            (BatchTrigger::Drain, 10)
        ]
    );
}

/// Spawns, on its first demand, a task the pipeline waits for: after this producer is told
/// to drain, the task takes a second (as sending a broker the last acknowledgements can),
/// then records that it ended.
struct WithTask {
    stopping: Option<tokio::sync::oneshot::Sender<()>>,
    ended: Arc<Mutex<Option<tokio::time::Instant>>>,
}

impl Producer for WithTask {
    type Event = Message<u64>;
    type Info = ();

    async fn handle_demand(
        &mut self,
        _: usize,
        ctx: &mut ProducerContext<'_, ()>,
    ) -> Result<Vec<Message<u64>>, BoxError> {
        if self.stopping.is_none() {
            let (stopping, stopped) = tokio::sync::oneshot::channel();
            self.stopping = Some(stopping);
            let ended = self.ended.clone();
            ctx.spawn(async move {
                let _dropped_or_drained = stopped.await;
                tokio::time::sleep(Duration::from_secs(1)).await;
                *ended.lock().unwrap() = Some(tokio::time::Instant::now());
            });
        }
        Ok(Vec::new())
    }

    async fn prepare_for_draining(
        &mut self,
        _: &mut ProducerContext<'_, ()>,
    ) -> Result<Vec<Message<u64>>, BoxError> {
        self.stopping.take();
        Ok(Vec::new())
    }
}

#[tokio::test(start_paused = true)]
async fn stop_and_wait_return_after_the_tasks_producers_spawned() {
    let ended = Arc::new(Mutex::new(None));
    let factory = {
        let ended = ended.clone();
        move || WithTask { stopping: None, ended: ended.clone() }
    };
    let pipeline = Pipeline::builder("tasks", Recorder::default())
        .producer(factory, ProducerOptions::new())
        .start()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let report = pipeline.stop().await;
    assert!(report.graceful, "{report:?}");
    assert!(ended.lock().unwrap().is_some(), "stop returned before the producer's task ended");
    assert!(report.elapsed >= Duration::from_secs(1), "{report:?}");
    pipeline.wait().await.unwrap();
}
