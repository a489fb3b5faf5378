//! Restarts of processors, batchers and batch processors. Callbacks' errors and panics fail
//! messages, not stages, so these stages are crashed by user code that panics outside the
//! callbacks: a `batch_size` function (it runs in the batcher), and values whose `Drop`
//! panics (a processor drops a message's data after `handle_message`, a batch processor its
//! outputs after `handle_batch`). A crashed stage is restarted and rewired, what it held is
//! acknowledged as `Failure::Dropped`, and everything else flows. A stage that crashes more
//! than 3 times in 5 s stays down and `wait` names it, without hanging: the pipeline goes on
//! when others of its kind take its messages, and stops when nothing else would.
//!
//! Every message is acknowledged to a recording acknowledger, by id, and the tests check
//! that each id was acknowledged exactly once (or, once a pipeline stopped, is still in the
//! source that nobody read any more). Panics print to stderr: that is expected.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::{lock, Tally};
use tokio::sync::watch;
use tokio::time::{sleep, timeout, Instant};
use weir_broadway::{
    AckData, Acknowledger, BatchHandler, BatchInfo, BatchSize, BatcherOptions, BoxError, Error, Handler,
    Message, Pipeline, ProcessorOptions, Producer, ProducerContext, ProducerOptions, SizeStep,
};

/// A value that panics when it is dropped, once, if it carries an armed fuse: a destructor
/// that fails (a flush to a closed file, say). Not while the thread is panicking already.
struct Bomb {
    id: u64,
    fuse: Option<Arc<AtomicBool>>,
}

impl Drop for Bomb {
    fn drop(&mut self) {
        if let Some(fuse) = &self.fuse {
            if !std::thread::panicking() && fuse.swap(false, Ordering::SeqCst) {
                panic!("dropping bomb {} went off", self.id);
            }
        }
    }
}

/// Armed fuses by id; a fuse that is no longer armed went off.
#[derive(Default)]
struct Fuses(BTreeMap<u64, Arc<AtomicBool>>);

impl Fuses {
    fn new(ids: impl IntoIterator<Item = u64>) -> Self {
        Fuses(ids.into_iter().map(|id| (id, Arc::new(AtomicBool::new(true)))).collect())
    }

    fn bomb(&self, id: u64) -> Bomb {
        Bomb { id, fuse: self.0.get(&id).cloned() }
    }

    fn went_off(&self) -> BTreeSet<u64> {
        self.0.iter().filter(|(_, fuse)| !fuse.load(Ordering::SeqCst)).map(|(id, _)| *id).collect()
    }
}

/// The callbacks: pass each id on (arming the outputs of `output_fuses`), and record the
/// chunks processors saw and the batches `handle_batch` handled.
#[derive(Default)]
struct Recorder {
    /// `handle_message` makes outputs of these ids with their fuse: they go off when the
    /// batch processor drops them, after `handle_batch`.
    output_fuses: Fuses,
    /// `handle_message` of these ids takes `slow`.
    slow_messages: BTreeSet<u64>,
    /// `handle_batch` of a batch holding one of these ids takes `slow`.
    slow_batches: BTreeSet<u64>,
    slow: Duration,
    /// Every `handle_batch` takes this long.
    work: Duration,
    chunks: Mutex<Vec<Vec<u64>>>,
    batches: Mutex<Vec<Vec<u64>>>,
    running: AtomicUsize,
    most_running: AtomicUsize,
}

impl Recorder {
    fn chunks(&self) -> Vec<Vec<u64>> {
        lock(&self.chunks).clone()
    }

    fn batches(&self) -> Vec<Vec<u64>> {
        lock(&self.batches).clone()
    }

    /// Every id `handle_batch` handled (and returned `Ok` for).
    fn batched(&self) -> BTreeSet<u64> {
        self.batches().into_iter().flatten().collect()
    }

    /// Every id a processor received in a chunk.
    fn prepared(&self) -> BTreeSet<u64> {
        self.chunks().into_iter().flatten().collect()
    }
}

impl Handler for Recorder {
    type Data = Bomb;
    type Output = Bomb;

    async fn prepare_messages(&self, messages: &mut [Message<Bomb>]) -> Result<(), BoxError> {
        lock(&self.chunks).push(messages.iter().map(|m| m.data().id).collect());
        Ok(())
    }

    async fn handle_message(&self, message: &mut Message<Bomb>) -> Result<Bomb, BoxError> {
        let id = message.data().id;
        if self.slow_messages.contains(&id) {
            sleep(self.slow).await;
        }
        Ok(self.output_fuses.bomb(id))
    }
}

impl BatchHandler for Recorder {
    async fn handle_batch(&self, messages: &mut [Message<Bomb>], _: &BatchInfo) -> Result<(), BoxError> {
        let ids: Vec<u64> = messages.iter().map(|m| m.data().id).collect();
        let slow = ids.iter().any(|id| self.slow_batches.contains(id));
        lock(&self.batches).push(ids);
        let running = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_running.fetch_max(running, Ordering::SeqCst);
        if slow {
            sleep(self.slow).await;
        }
        if self.work.is_zero() {
            tokio::task::yield_now().await;
        } else {
            sleep(self.work).await;
        }
        self.running.fetch_sub(1, Ordering::SeqCst);
        Ok(())
    }
}

/// A size function closing batches of `size` messages that panics on the ids of `targets`
/// (once each), recording the batch that was open then.
struct Probe {
    size: u64,
    targets: Mutex<BTreeSet<u64>>,
    /// The ids of the open batch (batches close by size only in these tests).
    open: Mutex<Vec<u64>>,
    /// At each panic: the open batch, with the id it panicked on last.
    crashed: Mutex<Vec<Vec<u64>>>,
    seen: AtomicUsize,
}

impl Probe {
    fn new(size: u64, targets: impl IntoIterator<Item = u64>) -> Arc<Self> {
        Arc::new(Probe {
            size,
            targets: Mutex::new(targets.into_iter().collect()),
            open: Mutex::default(),
            crashed: Mutex::default(),
            seen: AtomicUsize::new(0),
        })
    }

    fn batch_size(self: &Arc<Self>) -> BatchSize<Bomb> {
        let probe = self.clone();
        BatchSize::by(0, move |message: &Message<Bomb>, acc| probe.step(message.data().id, acc))
    }

    fn step(&self, id: u64, acc: u64) -> SizeStep {
        self.seen.fetch_add(1, Ordering::SeqCst);
        if lock(&self.targets).remove(&id) {
            let mut open = std::mem::take(&mut *lock(&self.open));
            open.push(id);
            lock(&self.crashed).push(open);
            panic!("batch size function panicked on message {id}");
        }
        let mut open = lock(&self.open);
        if acc + 1 >= self.size {
            open.clear();
            SizeStep::Emit
        } else {
            open.push(id);
            SizeStep::Cont(acc + 1)
        }
    }

    fn crashed(&self) -> Vec<Vec<u64>> {
        lock(&self.crashed).clone()
    }
}

/// What the test pushes, taken by the producer as processors ask (so nothing is lost on
/// the way in); closed and empty, the producer finishes. What a stopped pipeline never took
/// stays here.
struct Source {
    queue: Mutex<VecDeque<Message<Bomb>>>,
    closed: AtomicBool,
    /// Bumped on every push and on close, so a producer waiting for more sees them.
    changed: watch::Sender<u64>,
}

impl Source {
    fn new() -> Arc<Self> {
        Arc::new(Source {
            queue: Mutex::default(),
            closed: AtomicBool::new(false),
            changed: watch::Sender::new(0),
        })
    }

    fn push(&self, messages: impl IntoIterator<Item = Message<Bomb>>) {
        lock(&self.queue).extend(messages);
        self.changed.send_modify(|v| *v += 1);
    }

    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.changed.send_modify(|v| *v += 1);
    }

    fn left(&self) -> BTreeSet<u64> {
        lock(&self.queue).iter().map(|m| m.data().id).collect()
    }
}

/// The producer over a [`Source`].
struct Feed {
    source: Arc<Source>,
    demand: usize,
    waiting: bool,
}

impl Feed {
    fn serve(&mut self, ctx: &mut ProducerContext<'_, ()>) -> Vec<Message<Bomb>> {
        // Subscribed before looking: a push after the look wakes the waiter.
        let mut changed = self.source.changed.subscribe();
        let mut queue = lock(&self.source.queue);
        let n = self.demand.min(queue.len());
        let messages: Vec<_> = queue.drain(..n).collect();
        let done = queue.is_empty() && self.source.closed.load(Ordering::SeqCst);
        drop(queue);
        self.demand -= n;
        if done {
            ctx.finish();
        } else if self.demand > 0 && !self.waiting {
            self.waiting = true;
            let sender = ctx.sender();
            tokio::spawn(async move {
                let _source_gone = changed.changed().await;
                let _producer_stopped = sender.send(());
            });
        }
        messages
    }
}

impl Producer for Feed {
    type Event = Message<Bomb>;
    type Info = ();

    async fn handle_demand(
        &mut self,
        demand: usize,
        ctx: &mut ProducerContext<'_, ()>,
    ) -> Result<Vec<Message<Bomb>>, BoxError> {
        self.demand += demand;
        Ok(self.serve(ctx))
    }

    async fn handle_info(
        &mut self,
        (): (),
        ctx: &mut ProducerContext<'_, ()>,
    ) -> Result<Vec<Message<Bomb>>, BoxError> {
        self.waiting = false;
        Ok(self.serve(ctx))
    }
}

/// A running pipeline fed by pushes of tallied messages.
struct Run {
    pipeline: Pipeline<Recorder>,
    source: Arc<Source>,
    tally: Arc<Tally>,
}

impl Run {
    async fn start(
        name: &str,
        handler: Recorder,
        processors: ProcessorOptions<Bomb>,
        batcher: BatcherOptions<Bomb>,
    ) -> Run {
        let source = Source::new();
        let feed = source.clone();
        let pipeline = Pipeline::builder(name, handler)
            .producer(
                move || Feed { source: feed.clone(), demand: 0, waiting: false },
                ProducerOptions::new(),
            )
            .processors(processors)
            .batcher("default", batcher)
            .start()
            .await
            .unwrap();
        Run { pipeline, source, tally: Arc::default() }
    }

    fn handler(&self) -> &Recorder {
        self.pipeline.handler()
    }

    /// Pushes the messages of `ids` to the source, their data armed per `fuses`.
    fn push(&self, ids: impl IntoIterator<Item = u64>, fuses: &Fuses) {
        let acknowledger: Arc<dyn Acknowledger> = self.tally.clone();
        self.source.push(
            ids.into_iter().map(|id| Message::new(fuses.bomb(id), acknowledger.clone(), AckData::new(id))),
        );
    }

    /// Closes the source and waits for the pipeline to stop, failing instead of hanging
    /// (the timeout is free on the paused clock).
    async fn finish(&self) -> Result<(), Error> {
        self.source.close();
        let waited = timeout(Duration::from_secs(3600), self.pipeline.wait()).await;
        let waited = waited.expect("wait() hung: the pipeline never stopped");
        assert_eq!(self.pipeline.in_flight(), 0, "every message emitted was settled");
        assert!(!self.pipeline.is_running());
        waited
    }

    /// [`Tally::check`] of a pipeline that read its whole source.
    fn check(&self, n: u64) -> (BTreeSet<u64>, BTreeSet<u64>) {
        assert_eq!(self.source.left(), set([]), "the pipeline read everything");
        self.tally.once_each_but(n, &set([]))
    }

    /// [`Tally::check`] of a pipeline that stopped: also what it left in the source.
    fn check_stopped(&self, n: u64) -> (BTreeSet<u64>, BTreeSet<u64>, BTreeSet<u64>) {
        let left = self.source.left();
        let (ok, failed) = self.tally.once_each_but(n, &left);
        (ok, failed, left)
    }
}

/// Waits on the paused clock until `done`, failing after a minute of it.
async fn until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        sleep(Duration::from_millis(1)).await;
    }
}

fn set(ids: impl IntoIterator<Item = u64>) -> BTreeSet<u64> {
    ids.into_iter().collect()
}

const HOUR: Duration = Duration::from_secs(3600);

#[tokio::test(start_paused = true)]
async fn a_batcher_whose_size_function_panics_is_restarted_and_its_batch_processors_resubscribed() {
    let none = Fuses::default();
    let probe = Probe::new(5, [12]);
    let handler = Recorder { work: Duration::from_millis(100), ..Recorder::default() };
    let run = Run::start(
        "batcher_crash",
        handler,
        ProcessorOptions::new().concurrency(2).max_demand(4),
        BatcherOptions::new().batch_size(probe.batch_size()).batch_timeout(HOUR).concurrency(2),
    )
    .await;

    // Two full batches are handled; two messages wait in the open batch.
    run.push(0..12, &none);
    until("two batches are handled and two messages wait", || {
        run.tally.len() == 10 && probe.seen.load(Ordering::SeqCst) == 12
    })
    .await;
    assert_eq!(run.tally.failed(), set([]));

    // The size function panics on 12: the batcher crashes with the open batch and 12.
    run.push([12], &none);
    until("the crashed batcher's messages are acknowledged", || run.tally.len() == 13).await;
    let crashed = probe.crashed();
    assert_eq!(crashed.len(), 1);
    assert_eq!(crashed[0].len(), 3, "two open and the one it panicked on: {crashed:?}");
    assert_eq!(run.tally.failed(), set(crashed[0].clone()), "exactly what the batcher held failed");

    // The restarted batcher batches what comes next, for both batch processors again.
    run.handler().most_running.store(0, Ordering::SeqCst);
    let before = run.handler().batches().len();
    run.push(13..33, &none);
    run.finish().await.unwrap();

    let (ok, failed) = run.check(33);
    assert_eq!(failed, set(crashed[0].clone()));
    assert_eq!(ok, &set(0..33) - &failed);
    assert_eq!(ok, run.handler().batched(), "the successful ones are exactly those handle_batch handled");
    let after: BTreeSet<u64> = run.handler().batches()[before..].iter().flatten().copied().collect();
    assert_eq!(after, set(13..33), "the restarted batcher batched everything after the crash");
    assert!(run.handler().batches()[before..].iter().all(|b| b.len() == 5));
    assert_eq!(
        run.handler().most_running.load(Ordering::SeqCst),
        2,
        "both batch processors were subscribed to the restarted batcher"
    );
}

#[tokio::test(start_paused = true)]
async fn a_processor_whose_data_panics_when_dropped_is_restarted_and_rewired() {
    // One processor: what comes after the crash flows only if the restarted processor
    // subscribed to the producer and the batcher to it.
    let fuses = Fuses::new([12]);
    let run = Run::start(
        "processor_crash",
        Recorder::default(),
        ProcessorOptions::new().concurrency(1).max_demand(5),
        BatcherOptions::new().batch_size(5).batch_timeout(HOUR),
    )
    .await;

    run.push(0..10, &fuses);
    until("two batches are handled", || run.tally.len() == 10).await;

    // 12's data panics when the processor drops it, after handle_message: the processor
    // crashes with its chunk's outputs not yet handed on.
    run.push(10..15, &fuses);
    until("the crashed processor's messages are acknowledged", || run.tally.failed().contains(&12)).await;
    assert_eq!(fuses.went_off(), set([12]));

    run.push(15..30, &fuses);
    run.finish().await.unwrap();

    let (ok, failed) = run.check(30);
    let chunks = run.handler().chunks();
    let crashed = chunks.iter().find(|c| c.contains(&12)).unwrap();
    assert!(set(crashed.clone()).is_subset(&set(10..15)), "{chunks:?}");
    // What failed: the crashed chunk, and any chunk queued behind it (never seen).
    let unseen = &set(0..30) - &run.handler().prepared();
    assert_eq!(failed, &set(crashed.clone()) | &unseen, "chunks: {chunks:?}");
    assert!(failed.is_subset(&set(10..15)), "{failed:?}");
    assert_eq!(ok, run.handler().batched(), "the successful ones are exactly those handle_batch handled");
    assert!(set(15..30).is_subset(&ok), "the restarted processor was rewired both ways");
    assert!(set(0..10).is_subset(&ok));
    assert_eq!(chunks.iter().filter(|c| c.contains(&12)).count(), 1, "nothing was handled twice");
}

#[tokio::test(start_paused = true)]
async fn a_batch_processor_whose_outputs_panic_when_dropped_is_restarted_and_resubscribed() {
    // One batch processor, 100 ms per batch: while it handles the batch holding 12, the
    // next batch waits in it.
    let none = Fuses::default();
    let handler =
        Recorder { output_fuses: Fuses::new([12]), work: Duration::from_millis(100), ..Recorder::default() };
    let run = Run::start(
        "batch_processor_crash",
        handler,
        ProcessorOptions::new().concurrency(1).max_demand(10),
        BatcherOptions::new().batch_size(5).batch_timeout(HOUR),
    )
    .await;

    run.push(0..10, &none);
    until("two batches are handled", || run.tally.len() == 10).await;

    // 12's output panics when the batch processor drops it after handle_batch succeeded:
    // that batch is acknowledged as handled, the batch behind it as dropped.
    run.push(10..20, &none);
    until("both batches are acknowledged", || run.tally.len() == 20).await;
    assert_eq!(run.handler().output_fuses.went_off(), set([12]));

    run.push(20..30, &none);
    run.finish().await.unwrap();

    let (ok, failed) = run.check(30);
    let batches = run.handler().batches();
    let crashed = batches.iter().find(|b| b.contains(&12)).unwrap();
    assert!(set(crashed.clone()).is_subset(&ok), "handle_batch succeeded on the crashed batch: {batches:?}");
    assert_eq!(ok, run.handler().batched(), "the successful ones are exactly those handle_batch handled");
    assert_eq!(failed, &set(10..20) - &set(crashed.clone()), "the batch queued behind it was dropped");
    assert_eq!(failed.len(), 5);
    assert!(set(20..30).is_subset(&ok), "the restarted batch processor was resubscribed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_stage_crashing_under_load_loses_and_duplicates_nothing() {
    // Real concurrency: 4 processors, 2 batch processors, thousands of messages, and each
    // kind of stage crashing while messages flow everywhere, within the restart intensity
    // (3 processor crashes in all, 1 batcher crash, 2 batch processor crashes).
    let n = 4000;
    let data_fuses = Fuses::new([500, 1700, 3100]);
    let handler = Recorder { output_fuses: Fuses::new([900, 2600]), ..Recorder::default() };
    let probe = Probe::new(20, [2200]);
    let run = Run::start(
        "chaos",
        handler,
        ProcessorOptions::new().concurrency(4).max_demand(10),
        BatcherOptions::new()
            .batch_size(probe.batch_size())
            .batch_timeout(Duration::from_millis(20))
            .concurrency(2),
    )
    .await;
    for start in (0..n).step_by(100) {
        run.push(start..start + 100, &data_fuses);
        tokio::task::yield_now().await;
    }
    let waited = timeout(Duration::from_secs(60), run.finish()).await.expect("no hang (real time)");
    waited.unwrap();

    let (ok, failed) = run.check(n);
    assert_eq!(ok, run.handler().batched(), "the successful ones are exactly those handle_batch handled");
    assert!(failed.contains(&2200), "the message the size function panicked on was dropped");
    assert!(failed.contains(&500) && failed.contains(&1700) && failed.contains(&3100));
    assert_eq!(probe.crashed().len(), 1, "the size function panicked once");
    let handled: Vec<u64> = run.handler().chunks().into_iter().flatten().collect();
    assert_eq!(handled.len(), set(handled.clone()).len(), "no message was handled twice");
    // Every panicking value went off (in its stage, or where a crashed stage dropped it: a
    // stopped stage's task may still be dropping what it held when `wait` returns).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while data_fuses.went_off().len() < 3 || run.handler().output_fuses.went_off().len() < 2 {
        assert!(std::time::Instant::now() < deadline, "{:?}", data_fuses.went_off());
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_processor_that_crashes_too_often_stays_down_and_the_other_goes_on() {
    // Processors ask for one message at a time. One of them is busy with message 0 for a
    // minute, so the other gets the bombs, one at a time: it crashes 4 times within 5 s.
    let fuses = Fuses::new(1..5);
    let handler = Recorder { slow_messages: set([0]), slow: Duration::from_secs(60), ..Recorder::default() };
    let run = Run::start(
        "processor_down",
        handler,
        ProcessorOptions::new().concurrency(2).max_demand(1),
        BatcherOptions::new().batch_size(5).batch_timeout(Duration::from_secs(1)),
    )
    .await;
    run.push([0], &fuses);
    until("a processor is busy with 0", || run.handler().chunks().len() == 1).await;
    let started = Instant::now();
    for bomb in 1..5 {
        run.push([bomb], &fuses);
        until("the bomb went off", || run.tally.failed().contains(&bomb)).await;
    }
    assert!(started.elapsed() < Duration::from_secs(5), "4 crashes within 5 s");
    assert_eq!(fuses.went_off(), set(1..5));

    // The busy processor takes everything else: the pipeline goes on, and reports the
    // processor that stayed down when it ends.
    run.push(5..20, &fuses);
    let waited = run.finish().await;
    let stage = match &waited {
        Err(Error::StageFailed { stage, .. }) => stage.clone(),
        other => panic!("wait: {other:?}"),
    };
    assert!(stage == "processor_down.processor_0" || stage == "processor_down.processor_1", "{stage}");
    let (ok, failed) = run.check(20);
    assert_eq!(failed, set(1..5), "each bomb's chunk was itself");
    assert_eq!(ok, run.handler().batched());
}

#[tokio::test(start_paused = true)]
async fn a_lone_processor_that_crashes_too_often_stops_the_pipeline() {
    // One processor, one message at a time; 0..3 wait in the batcher's open batch. When the
    // processor stays down, nothing can reach the batcher any more and what comes next would
    // wait in the producer forever: the pipeline stops, and what it held is dropped.
    let fuses = Fuses::new(3..7);
    let run = Run::start(
        "lone_processor_down",
        Recorder::default(),
        ProcessorOptions::new().concurrency(1).max_demand(1),
        BatcherOptions::new().batch_size(5).batch_timeout(HOUR),
    )
    .await;
    run.push(0..3, &fuses);
    until("0..3 are handled", || run.handler().chunks().len() == 3).await;
    for bomb in 3..7 {
        run.push([bomb], &fuses);
        until("the bomb went off", || run.tally.failed().contains(&bomb)).await;
    }
    run.push(7..20, &fuses);
    let waited = run.finish().await;
    assert!(
        matches!(&waited, Err(Error::StageFailed { stage, .. }) if stage == "lone_processor_down.processor_0"),
        "{waited:?}"
    );
    let (ok, failed, left) = run.check_stopped(20);
    assert_eq!(ok, set([]), "no batch was complete");
    assert!(set(0..7).is_subset(&failed), "{failed:?}");
    assert_eq!(&failed | &left, set(0..20));
    assert_eq!(fuses.went_off(), set(3..7));
}

#[tokio::test(start_paused = true)]
async fn a_partitioned_processor_that_crashes_too_often_stops_the_pipeline() {
    // Processors partitioned by parity: processor_0 takes the even ids, and crashes on 0, 2,
    // 4 and 6. The even messages after would wait for it in the producer forever: the
    // pipeline stops.
    let fuses = Fuses::new([0, 2, 4, 6]);
    let run = Run::start(
        "partitioned_processor_down",
        Recorder::default(),
        ProcessorOptions::new()
            .concurrency(2)
            .max_demand(1)
            .partition_by(|m: &Message<Bomb>| m.data().id % 2),
        BatcherOptions::new().batch_size(1),
    )
    .await;
    for bomb in [0, 2, 4, 6] {
        run.push([bomb + 1], &fuses);
        until("the odd one is handled", || run.tally.len() == bomb as usize + 1).await;
        run.push([bomb], &fuses);
        until("the bomb went off", || run.tally.failed().contains(&bomb)).await;
    }
    run.push(8..20, &fuses);
    let waited = run.finish().await;
    assert!(
        matches!(&waited, Err(Error::StageFailed { stage, .. }) if stage == "partitioned_processor_down.processor_0"),
        "{waited:?}"
    );
    let (ok, failed, left) = run.check_stopped(20);
    assert!(set([1, 3, 5, 7]).is_subset(&ok), "{ok:?}");
    assert!(ok.iter().all(|id| id % 2 == 1), "no even message was handled: {ok:?}");
    assert!(set([0, 2, 4, 6]).is_subset(&failed));
    assert_eq!(&(&ok | &failed) | &left, set(0..20));
    assert_eq!(ok, run.handler().batched());
}

#[tokio::test(start_paused = true)]
async fn a_batcher_that_crashes_too_often_stops_the_pipeline() {
    // The size function panics on 3, 4, 5 and 6, one at a time. When the batcher stays down,
    // what the processors make has nowhere to go (they would stop asking, and the producer
    // would hold the rest forever): the pipeline stops.
    let none = Fuses::default();
    let probe = Probe::new(5, [3, 4, 5, 6]);
    let run = Run::start(
        "batcher_down",
        Recorder::default(),
        ProcessorOptions::new().concurrency(2).max_demand(4),
        BatcherOptions::new().batch_size(probe.batch_size()).batch_timeout(HOUR).concurrency(2),
    )
    .await;
    run.push(0..3, &none);
    until("three messages wait in the open batch", || probe.seen.load(Ordering::SeqCst) == 3).await;
    let started = Instant::now();
    for target in 3..7 {
        run.push([target], &none);
        until("the batcher crashed", || run.tally.failed().contains(&target)).await;
    }
    assert!(started.elapsed() < Duration::from_secs(5), "4 crashes within 5 s");
    assert_eq!(probe.crashed(), vec![vec![0, 1, 2, 3], vec![4], vec![5], vec![6]]);

    run.push(7..20, &none);
    let waited = run.finish().await;
    assert!(
        matches!(&waited, Err(Error::StageFailed { stage, .. }) if stage == "batcher_down.batcher_default"),
        "{waited:?}"
    );
    let (ok, failed, left) = run.check_stopped(20);
    assert_eq!(ok, set([]));
    assert!(set(0..7).is_subset(&failed));
    assert_eq!(&failed | &left, set(0..20));
}

#[tokio::test(start_paused = true)]
async fn a_batch_processor_that_crashes_too_often_stays_down_and_the_other_goes_on() {
    // Batches of one. One batch processor is busy with batch 0 for a minute; the other has
    // the most demand, so it gets the bombs, one at a time: it crashes 4 times within 5 s.
    let none = Fuses::default();
    let handler = Recorder {
        output_fuses: Fuses::new(1..5),
        slow_batches: set([0]),
        slow: Duration::from_secs(60),
        ..Recorder::default()
    };
    let run = Run::start(
        "batch_processor_down",
        handler,
        ProcessorOptions::new().concurrency(1).max_demand(1),
        BatcherOptions::new().batch_size(1).concurrency(2),
    )
    .await;
    run.push([0], &none);
    until("a batch processor is busy with 0", || run.handler().batches().len() == 1).await;
    let started = Instant::now();
    for bomb in 1..5 {
        run.push([bomb], &none);
        // handle_batch succeeded: the crashed batch is acknowledged as successful.
        until("the bomb went off", || run.tally.len() == bomb as usize).await;
    }
    assert!(started.elapsed() < Duration::from_secs(5), "4 crashes within 5 s");
    assert_eq!(run.handler().output_fuses.went_off(), set(1..5));

    // The busy batch processor takes everything else.
    run.push(5..20, &none);
    let waited = run.finish().await;
    let stage = match &waited {
        Err(Error::StageFailed { stage, .. }) => stage.clone(),
        other => panic!("wait: {other:?}"),
    };
    assert!(
        stage == "batch_processor_down.batch_processor_default_0"
            || stage == "batch_processor_down.batch_processor_default_1",
        "{stage}"
    );
    let (ok, failed) = run.check(20);
    assert_eq!(failed, set([]), "handle_batch succeeded on every batch");
    assert_eq!(ok, run.handler().batched());
}

#[tokio::test(start_paused = true)]
async fn a_lone_batch_processor_that_crashes_too_often_stops_the_pipeline() {
    // Batches of one, one batch processor, crashing after each of the batches 0..4. When it
    // stays down, the batcher could deliver nothing more: the pipeline stops.
    let none = Fuses::default();
    let handler = Recorder { output_fuses: Fuses::new(0..4), ..Recorder::default() };
    let run = Run::start(
        "lone_batch_processor_down",
        handler,
        ProcessorOptions::new().concurrency(1).max_demand(1),
        BatcherOptions::new().batch_size(1),
    )
    .await;
    let started = Instant::now();
    for bomb in 0..4 {
        run.push([bomb], &none);
        until("the bomb went off", || run.tally.len() == bomb as usize + 1).await;
    }
    assert!(started.elapsed() < Duration::from_secs(5), "4 crashes within 5 s");
    run.push(4..20, &none);
    let waited = run.finish().await;
    assert!(
        matches!(&waited, Err(Error::StageFailed { stage, .. }) if stage == "lone_batch_processor_down.batch_processor_default_0"),
        "{waited:?}"
    );
    let (ok, failed, left) = run.check_stopped(20);
    assert_eq!(ok, set(0..4), "the crashed batches were handled");
    assert_eq!(ok, run.handler().batched());
    assert_eq!(&failed | &left, set(4..20));
}
