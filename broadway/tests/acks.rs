//! Acknowledgements: every message is acknowledged exactly once, successful ones after
//! their batch was handled, failed ones with why they failed, grouped per acknowledger.
//!
//! The tests feed messages whose acknowledger records every tag it is given, and check the
//! tags against the ids sent: each id once, no duplicates, the right failure. They run on
//! tokio's paused clock, except the large run, which runs on several threads.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::within;
use tokio::time::{sleep, timeout, Instant};
use weir_broadway::memory::MemoryProducer;
use weir_broadway::{
    AckAction, AckData, AckOptions, Acknowledger, BatchHandler, BatchInfo, BatchTrigger, BatcherOptions,
    BoxError, Error, Failure, Handler, Message, NoopAcknowledger, Pipeline, ProcessorOptions, Producer,
    ProducerContext, ProducerOptions,
};

/// What the handler does with a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Act {
    Ok,
    /// `handle_message` returns an error.
    Err,
    /// `handle_message` panics.
    Panic,
    /// `handle_message` returns an error, then `handle_failed` panics.
    FailedPanics,
    /// `handle_message` calls `Message::fail`.
    Fail,
    /// `handle_message` acknowledges it at once.
    AckNow,
    /// `handle_message` acknowledges it at once, then returns an error.
    AckNowThenErr,
    /// `handle_message` swaps it for a new message and drops it.
    Replace,
    /// `prepare_messages` returns an error.
    PrepareErr,
    /// `prepare_messages` panics.
    PreparePanic,
    /// `handle_batch` returns an error.
    BatchErr,
    /// `handle_batch` panics.
    BatchPanic,
    /// `handle_batch` calls `Message::fail` on it only.
    BatchFail,
    /// `handle_batch` acknowledges it at once, then returns an error.
    BatchAckNowThenErr,
    /// `handle_batch` never returns.
    BatchHang,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Job {
    id: u64,
    act: Act,
}

/// Jobs with ids 0, 1, 2... doing `acts`.
fn jobs(acts: &[Act]) -> Vec<Job> {
    acts.iter().zip(0..).map(|(&act, id)| Job { id, act }).collect()
}

/// Records every acknowledgement, call by call.
#[derive(Debug, Default)]
struct Acks {
    calls: Mutex<Vec<(Vec<AckData>, Vec<(AckData, Failure)>)>>,
}

impl Acknowledger for Acks {
    fn ack(&self, successful: Vec<AckData>, failed: Vec<(AckData, Failure)>) {
        self.calls.lock().unwrap().push((successful, failed));
    }
}

impl Acks {
    fn calls(&self) -> Vec<(Vec<AckData>, Vec<(AckData, Failure)>)> {
        self.calls.lock().unwrap().clone()
    }

    /// Tags acknowledged as successful, sorted.
    fn successful(&self) -> Vec<u64> {
        let mut tags: Vec<u64> = self.calls().iter().flat_map(|(ok, _)| ok.iter().map(|d| d.tag)).collect();
        tags.sort_unstable();
        tags
    }

    /// Failed messages' data and failures, by tag.
    fn failed(&self) -> Vec<(AckData, Failure)> {
        let mut failed: Vec<_> = self.calls().into_iter().flat_map(|(_, failed)| failed).collect();
        failed.sort_by_key(|(data, _)| data.tag);
        failed
    }

    fn failures(&self) -> Vec<(u64, Failure)> {
        self.failed().into_iter().map(|(data, failure)| (data.tag, failure)).collect()
    }

    /// Every tag acknowledged, sorted: a message acknowledged twice shows twice.
    fn tags(&self) -> Vec<u64> {
        let mut tags = self.successful();
        tags.extend(self.failed().iter().map(|(data, _)| data.tag));
        tags.sort_unstable();
        tags
    }

    fn total(&self) -> usize {
        self.calls().iter().map(|(ok, failed)| ok.len() + failed.len()).sum()
    }

    /// Waits until `n` messages were acknowledged.
    async fn wait_for(&self, n: usize) {
        within(async {
            while self.total() < n {
                sleep(Duration::from_millis(1)).await;
            }
        })
        .await;
    }
}

fn messages(acks: &Arc<Acks>, jobs: Vec<Job>) -> Vec<Message<Job>> {
    jobs.into_iter().map(|job| Message::new(job, acks.clone(), AckData::new(job.id))).collect()
}

fn error(callback: &'static str, error: &str) -> Failure {
    Failure::Error { callback, error: error.into() }
}

fn panic(callback: &'static str, message: &str) -> Failure {
    Failure::Panic { callback, message: message.into() }
}

/// Does what each job says, and records what its callbacks saw.
#[derive(Default)]
struct Jobs {
    /// The test's acknowledger, to look at from the callbacks.
    acks: Arc<Acks>,
    /// Ids `handle_message` ran on, and whether each was acknowledged already.
    handled: Mutex<Vec<(u64, bool)>>,
    /// Each batch's ids, and how many messages were acknowledged when it was handled.
    batches: Mutex<Vec<(Vec<u64>, usize)>>,
    /// What `handle_failed` saw, and whether `configure_ack` worked.
    failed: Mutex<Vec<(u64, Failure, bool)>>,
    /// What `handle_failed_batch` saw.
    failed_batches: Mutex<Vec<(Vec<u64>, BatchInfo)>>,
    /// What `configure_ack` said after `ack_immediately`.
    configured_after_ack: Mutex<Vec<String>>,
}

impl Jobs {
    fn new(acks: &Arc<Acks>) -> Self {
        Jobs { acks: acks.clone(), ..Jobs::default() }
    }

    fn handled(&self) -> Vec<(u64, bool)> {
        self.handled.lock().unwrap().clone()
    }

    fn batches(&self) -> Vec<(Vec<u64>, usize)> {
        self.batches.lock().unwrap().clone()
    }

    fn failed(&self) -> Vec<(u64, Failure, bool)> {
        let mut failed = self.failed.lock().unwrap().clone();
        failed.sort_by_key(|(id, _, _)| *id);
        failed
    }

    fn failed_batches(&self) -> Vec<(Vec<u64>, BatchInfo)> {
        self.failed_batches.lock().unwrap().clone()
    }

    fn ack_now(&self, message: &mut Message<Job>) {
        message.ack_immediately();
        let again = message.configure_ack(AckOptions::new().on_failure(AckAction::Reject));
        self.configured_after_ack.lock().unwrap().push(format!("{again:?}"));
    }
}

impl Handler for Jobs {
    type Data = Job;
    type Output = Job;

    async fn prepare_messages(&self, messages: &mut [Message<Job>]) -> Result<(), BoxError> {
        if messages.iter().any(|m| m.data().act == Act::PreparePanic) {
            panic!("prepare panicked");
        }
        if messages.iter().any(|m| m.data().act == Act::PrepareErr) {
            return Err("prepare failed".into());
        }
        Ok(())
    }

    async fn handle_message(&self, message: &mut Message<Job>) -> Result<Job, BoxError> {
        let job = *message.data();
        let acked = self.acks.tags().contains(&job.id);
        self.handled.lock().unwrap().push((job.id, acked));
        match job.act {
            Act::Err | Act::FailedPanics => return Err(format!("error {}", job.id).into()),
            Act::Panic => panic!("panic {}", job.id),
            Act::Fail => message.fail(format!("failed {}", job.id)),
            Act::AckNow => self.ack_now(message),
            Act::AckNowThenErr => {
                self.ack_now(message);
                return Err("too late".into());
            }
            Act::Replace => {
                let replacement = Message::new(job, NoopAcknowledger::new(), AckData::new(job.id));
                drop(std::mem::replace(message, replacement));
            }
            _ => {}
        }
        Ok(job)
    }

    async fn handle_failed(&self, messages: &mut [Message<Job>]) {
        for message in messages.iter_mut() {
            let configured = message.configure_ack(AckOptions::new().on_failure(AckAction::Reject)).is_ok();
            let failure = message.failure().unwrap().clone();
            self.failed.lock().unwrap().push((message.data().id, failure, configured));
        }
        if messages.iter().any(|m| m.data().act == Act::FailedPanics) {
            panic!("handle_failed panicked");
        }
    }
}

impl BatchHandler for Jobs {
    async fn handle_batch(&self, messages: &mut [Message<Job>], _: &BatchInfo) -> Result<(), BoxError> {
        let ids = messages.iter().map(|m| m.data().id).collect();
        self.batches.lock().unwrap().push((ids, self.acks.total()));
        let mut error = None;
        for message in messages.iter_mut() {
            match message.data().act {
                Act::BatchFail => message.fail("not this one"),
                Act::BatchErr => error = Some("batch error"),
                Act::BatchPanic => panic!("batch panicked"),
                Act::BatchAckNowThenErr => {
                    self.ack_now(message);
                    error = Some("batch too late");
                }
                Act::BatchHang => std::future::pending::<()>().await,
                _ => {}
            }
        }
        error.map_or(Ok(()), |error| Err(error.into()))
    }

    async fn handle_failed_batch(&self, messages: &mut [Message<Job>], info: &BatchInfo) {
        for message in messages.iter_mut() {
            // Fails for messages acknowledged already (ack_immediately).
            let _configured =
                message.configure_ack(AckOptions::new().on_failure(AckAction::RejectAndRequeue));
        }
        let ids = messages.iter().map(|m| m.data().id).collect();
        self.failed_batches.lock().unwrap().push((ids, info.clone()));
    }
}

/// A pipeline of one processor (chunks keep their order) fed by `push_messages`, with one
/// batcher "default" when `batcher` is given.
async fn start(handler: Jobs, batcher: Option<BatcherOptions<Job>>) -> Pipeline<Jobs> {
    let (producer, _queue) = MemoryProducer::queue();
    let mut builder = Pipeline::builder("acks", handler)
        .producer(producer, ProducerOptions::new())
        .processors(ProcessorOptions::new().concurrency(1));
    if let Some(options) = batcher {
        builder = builder.batcher("default", options);
    }
    builder.start().await.unwrap()
}

fn batches_of(size: usize) -> Option<BatcherOptions<Job>> {
    Some(BatcherOptions::new().batch_size(size).batch_timeout(Duration::from_secs(60)))
}

#[tokio::test(start_paused = true)]
async fn successful_messages_are_acknowledged_after_their_batch_was_handled() {
    let acks = Arc::new(Acks::default());
    let pipeline = start(Jobs::new(&acks), batches_of(5)).await;
    pipeline.push_messages(messages(&acks, jobs(&[Act::Ok; 12]))).unwrap();
    sleep(Duration::from_secs(1)).await;

    // Batch n was handled before anything of it was acknowledged, after the previous ones.
    let seen = pipeline.handler().batches();
    assert_eq!(seen, vec![(vec![0, 1, 2, 3, 4], 0), (vec![5, 6, 7, 8, 9], 5)]);
    assert_eq!(acks.successful(), (0..10).collect::<Vec<_>>());
    assert_eq!(pipeline.in_flight(), 2, "the last two wait for their batch");

    assert!(pipeline.stop().await.graceful);
    assert_eq!(pipeline.handler().batches()[2], (vec![10, 11], 10));
    assert_eq!(acks.successful(), (0..12).collect::<Vec<_>>());
    assert!(acks.failed().is_empty());
    assert!(pipeline.handler().handled().iter().all(|(_, acked)| !acked));
    assert_eq!(pipeline.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn without_batchers_messages_are_acknowledged_after_handle_message() {
    let acks = Arc::new(Acks::default());
    let pipeline = start(Jobs::new(&acks), None).await;
    pipeline.push_messages(messages(&acks, jobs(&[Act::Ok, Act::Fail, Act::Ok, Act::Ok]))).unwrap();
    acks.wait_for(4).await;

    let handled = pipeline.handler().handled();
    assert_eq!(handled, vec![(0, false), (1, false), (2, false), (3, false)]);
    assert_eq!(acks.successful(), vec![0, 2, 3]);
    assert_eq!(acks.failures(), vec![(1, Failure::Failed("failed 1".into()))]);
    assert!(pipeline.stop().await.graceful);
    assert_eq!(acks.total(), 4);
}

#[tokio::test(start_paused = true)]
async fn a_failing_message_fails_alone_with_its_reason() {
    let acks = Arc::new(Acks::default());
    let pipeline = start(Jobs::new(&acks), batches_of(3)).await;
    let acts = [Act::Ok, Act::Err, Act::Panic, Act::Fail, Act::Ok, Act::Ok];
    pipeline.push_messages(messages(&acks, jobs(&acts))).unwrap();
    acks.wait_for(6).await;

    let expected = vec![
        (1, error("handle_message", "error 1")),
        (2, panic("handle_message", "panic 2")),
        (3, Failure::Failed("failed 3".into())),
    ];
    assert_eq!(acks.failures(), expected);
    assert_eq!(acks.successful(), vec![0, 4, 5]);
    // Failed messages skip the batchers, and go to handle_failed...
    assert_eq!(pipeline.handler().batches(), vec![(vec![0, 4, 5], 3)]);
    let seen: Vec<_> = pipeline.handler().failed().into_iter().map(|(id, f, _)| (id, f)).collect();
    assert_eq!(seen, expected);
    // ...which changed how they are acknowledged.
    for (data, _) in acks.failed() {
        assert_eq!((data.on_failure, data.on_success), (Some(AckAction::Reject), None), "{data:?}");
    }
    assert_eq!(acks.failed()[0].1.to_string(), "handle_message returned an error: error 1");
    assert_eq!(acks.failed()[1].1.to_string(), "handle_message panicked: panic 2");
    pipeline.stop().await;
    assert_eq!(acks.tags(), (0..6).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn prepare_messages_failing_fails_its_whole_chunk() {
    let acks = Arc::new(Acks::default());
    let pipeline = start(Jobs::new(&acks), batches_of(10)).await;
    let failures = |acks: Vec<weir_broadway::testing::TestAck>| -> Vec<_> {
        acks.into_iter().map(|a| (a.tag, a.failure)).collect()
    };

    let erred = within(pipeline.test_batch(jobs(&[Act::Ok, Act::PrepareErr, Act::Ok])).unwrap().all()).await;
    let failure = error("prepare_messages", "prepare failed");
    assert_eq!(
        failures(erred),
        vec![(0, Some(failure.clone())), (1, Some(failure.clone())), (2, Some(failure))]
    );
    assert!(pipeline.handler().handled().is_empty(), "handle_message ran after prepare_messages failed");

    let panicked = within(pipeline.test_batch(jobs(&[Act::PreparePanic, Act::Ok])).unwrap().all()).await;
    let failure = panic("prepare_messages", "prepare panicked");
    assert_eq!(failures(panicked), vec![(0, Some(failure.clone())), (1, Some(failure))]);
    assert_eq!(pipeline.handler().failed().len(), 5, "handle_failed saw every failed message");

    // The next chunk is not affected.
    let fine = within(pipeline.test_batch(jobs(&[Act::Ok, Act::Ok])).unwrap().all()).await;
    assert_eq!(failures(fine), vec![(0, None), (1, None)]);
    assert!(pipeline.stop().await.graceful);
}

#[tokio::test(start_paused = true)]
async fn handle_batch_failing_fails_only_its_batch() {
    let acks = Arc::new(Acks::default());
    let pipeline = start(Jobs::new(&acks), batches_of(2)).await;
    let acts = [Act::Ok, Act::Ok, Act::BatchErr, Act::Ok, Act::Ok, Act::Ok, Act::Ok, Act::BatchPanic];
    pipeline.push_messages(messages(&acks, jobs(&acts))).unwrap();
    acks.wait_for(8).await;

    let erred = error("handle_batch", "batch error");
    let panicked = panic("handle_batch", "batch panicked");
    assert_eq!(acks.failures(), vec![(2, erred.clone()), (3, erred), (6, panicked.clone()), (7, panicked)]);
    assert_eq!(acks.successful(), vec![0, 1, 4, 5]);
    // handle_failed_batch saw both failed batches and changed how they are acknowledged.
    let info = BatchInfo::new("default", Default::default(), None, 2, BatchTrigger::Size);
    assert_eq!(pipeline.handler().failed_batches(), vec![(vec![2, 3], info.clone()), (vec![6, 7], info)]);
    assert!(acks.failed().iter().all(|(data, _)| data.on_failure == Some(AckAction::RejectAndRequeue)));
    assert!(pipeline.handler().failed().is_empty(), "handle_failed is for processors' failures");
    pipeline.stop().await;
    assert_eq!(acks.tags(), (0..8).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn handle_batch_failing_one_message_fails_just_that_one() {
    let acks = Arc::new(Acks::default());
    let pipeline = start(Jobs::new(&acks), batches_of(4)).await;
    let acts = [Act::Ok, Act::BatchFail, Act::Ok, Act::BatchFail];
    pipeline.push_messages(messages(&acks, jobs(&acts))).unwrap();
    acks.wait_for(4).await;

    let failed = Failure::Failed("not this one".into());
    assert_eq!(acks.failures(), vec![(1, failed.clone()), (3, failed)]);
    assert_eq!(acks.successful(), vec![0, 2]);
    let seen: Vec<_> = pipeline.handler().failed_batches().into_iter().map(|(ids, _)| ids).collect();
    assert_eq!(seen, vec![vec![1, 3]]);
    // One batch, one acknowledgement call with both outcomes.
    assert_eq!(acks.calls().len(), 1);
    pipeline.stop().await;
}

#[tokio::test(start_paused = true)]
async fn ack_immediately_acknowledges_once() {
    let acks = Arc::new(Acks::default());
    let pipeline = start(Jobs::new(&acks), batches_of(3)).await;
    let acts = [Act::AckNow, Act::AckNowThenErr, Act::Ok, Act::BatchAckNowThenErr];
    pipeline.push_messages(messages(&acks, jobs(&acts))).unwrap();
    acks.wait_for(4).await;
    sleep(Duration::from_secs(1)).await;

    // 0 and 1 were acknowledged in handle_message, before the batch of 0, 2, 3.
    assert_eq!(pipeline.handler().batches(), vec![(vec![0, 2, 3], 2)]);
    // 1 failed after it was acknowledged, 0 and 3 were in a batch that failed after: only
    // 2 is acknowledged as failed, and nothing twice.
    assert_eq!(acks.successful(), vec![0, 1, 3]);
    assert_eq!(acks.failures(), vec![(2, error("handle_batch", "batch too late"))]);
    assert_eq!(acks.tags(), vec![0, 1, 2, 3]);
    let configured = pipeline.handler().configured_after_ack.lock().unwrap().clone();
    assert_eq!(configured, vec!["Err(AlreadyAcknowledged)"; 3]);
    // handle_failed still sees the message that failed after ack_immediately.
    let failed = pipeline.handler().failed();
    assert_eq!(failed, vec![(1, error("handle_message", "too late"), false)]);
    assert!(pipeline.stop().await.graceful);
    assert_eq!(pipeline.in_flight(), 0);
    assert_eq!(acks.tags(), vec![0, 1, 2, 3]);
}

#[tokio::test(start_paused = true)]
async fn a_message_dropped_without_acknowledgement_is_acknowledged_as_dropped() {
    let acks = Arc::new(Acks::default());
    drop(Message::new(7u8, acks.clone(), AckData::new(7)));
    assert_eq!(acks.failures(), vec![(7, Failure::Dropped)]);

    // A callback that lets go of a message.
    let acks = Arc::new(Acks::default());
    let pipeline = start(Jobs::new(&acks), batches_of(3)).await;
    pipeline.push_messages(messages(&acks, jobs(&[Act::Ok, Act::Replace, Act::Ok]))).unwrap();
    acks.wait_for(3).await;
    sleep(Duration::from_secs(1)).await;
    assert_eq!(acks.failures(), vec![(1, Failure::Dropped)]);
    assert_eq!(acks.successful(), vec![0, 2]);
    // Its replacement went on, to the replacement's acknowledger.
    assert_eq!(pipeline.handler().batches(), vec![(vec![0, 1, 2], 1)]);
    assert!(pipeline.stop().await.graceful);
    assert_eq!(acks.total(), 3);
}

#[tokio::test(start_paused = true)]
async fn messages_of_a_stage_aborted_at_the_shutdown_timeout_are_acknowledged_as_dropped() {
    let acks = Arc::new(Acks::default());
    let (producer, _queue) = MemoryProducer::queue();
    let pipeline = Pipeline::builder("acks", Jobs::new(&acks))
        .producer(producer, ProducerOptions::new())
        .processors(ProcessorOptions::new().concurrency(1))
        .batcher("default", BatcherOptions::new().batch_size(3))
        .shutdown_timeout(Duration::from_secs(5))
        .start()
        .await
        .unwrap();
    pipeline.push_messages(messages(&acks, jobs(&[Act::Ok, Act::BatchHang, Act::Ok, Act::Ok]))).unwrap();
    sleep(Duration::from_millis(10)).await;
    assert_eq!(pipeline.handler().batches().len(), 1, "the first batch hangs");

    let report = pipeline.stop().await;
    assert!(!report.graceful);
    assert_eq!(report.elapsed, Duration::from_secs(5));
    assert_eq!(report.abandoned, 4);
    assert_eq!(acks.failures(), (0..4).map(|tag| (tag, Failure::Dropped)).collect::<Vec<_>>());
    assert!(!pipeline.is_running());
}

#[tokio::test(start_paused = true)]
async fn a_panic_in_handle_failed_does_not_stop_the_acknowledgements() {
    let acks = Arc::new(Acks::default());
    let pipeline = start(Jobs::new(&acks), None).await;
    pipeline.push_messages(messages(&acks, jobs(&[Act::Ok, Act::FailedPanics, Act::Err, Act::Ok]))).unwrap();
    acks.wait_for(4).await;

    let expected = vec![(1, error("handle_message", "error 1")), (2, error("handle_message", "error 2"))];
    assert_eq!(acks.failures(), expected);
    assert_eq!(acks.successful(), vec![0, 3]);
    let seen: Vec<_> =
        pipeline.handler().failed().into_iter().map(|(id, _, configured)| (id, configured)).collect();
    assert_eq!(seen, vec![(1, true), (2, true)]);
    // What handle_failed configured before it panicked still holds.
    assert!(acks.failed().iter().all(|(data, _)| data.on_failure == Some(AckAction::Reject)));

    // The processor goes on.
    pipeline.push_messages(messages(&acks, vec![Job { id: 4, act: Act::Ok }])).unwrap();
    acks.wait_for(5).await;
    assert!(pipeline.stop().await.graceful);
    assert_eq!(acks.tags(), (0..5).collect::<Vec<_>>());
}

/// An acknowledger that panics.
struct Panicky;

impl Acknowledger for Panicky {
    fn ack(&self, _: Vec<AckData>, _: Vec<(AckData, Failure)>) {
        panic!("acknowledger panicked");
    }
}

#[tokio::test(start_paused = true)]
async fn a_panicking_acknowledger_does_not_stop_the_pipeline() {
    // Not even when a message drops itself.
    drop(Message::new((), Arc::new(Panicky), AckData::new(0)));

    let acks = Arc::new(Acks::default());
    let pipeline = start(Jobs::new(&acks), batches_of(3)).await;
    let mut batch = messages(&acks, jobs(&[Act::Ok, Act::Ok]));
    batch.insert(1, Message::new(Job { id: 9, act: Act::Ok }, Arc::new(Panicky), AckData::new(9)));
    pipeline.push_messages(batch).unwrap();
    acks.wait_for(2).await;
    assert_eq!(acks.successful(), vec![0, 1]);

    pipeline.push_messages(messages(&acks, vec![Job { id: 2, act: Act::Ok }])).unwrap();
    assert!(pipeline.stop().await.graceful);
    assert_eq!(acks.successful(), vec![0, 1, 2]);
    assert_eq!(
        pipeline.handler().batches().iter().map(|(ids, _)| ids.clone()).collect::<Vec<_>>(),
        vec![vec![0, 9, 1], vec![2]]
    );
}

#[tokio::test(start_paused = true)]
async fn each_acknowledger_gets_only_its_messages() {
    let (left, right) = (Arc::new(Acks::default()), Arc::new(Acks::default()));
    let pipeline = start(Jobs::new(&left), batches_of(10)).await;
    let mut acts = [Act::Ok; 10];
    acts[3] = Act::BatchFail;
    acts[4] = Act::BatchFail;
    let mixed = jobs(&acts)
        .into_iter()
        .map(|job| {
            let acks = if job.id % 2 == 0 { &left } else { &right };
            Message::new(job, acks.clone(), AckData::new(job.id))
        })
        .collect();
    pipeline.push_messages(mixed).unwrap();
    left.wait_for(5).await;
    right.wait_for(5).await;

    // One batch: one call per acknowledger, with its successful and failed messages.
    let tags = |data: &[AckData]| data.iter().map(|d| d.tag).collect::<Vec<_>>();
    let failed = Failure::Failed("not this one".into());
    let left_calls = left.calls();
    assert_eq!(left_calls.len(), 1);
    assert_eq!(tags(&left_calls[0].0), vec![0, 2, 6, 8]);
    assert_eq!(left.failures(), vec![(4, failed.clone())]);
    let right_calls = right.calls();
    assert_eq!(right_calls.len(), 1);
    assert_eq!(tags(&right_calls[0].0), vec![1, 5, 7, 9]);
    assert_eq!(right.failures(), vec![(3, failed)]);
    pipeline.stop().await;
}

#[tokio::test(start_paused = true)]
async fn test_message_and_test_batch_return_their_acknowledgements() {
    let acks = Arc::new(Acks::default());
    let pipeline = start(Jobs::new(&acks), batches_of(10)).await;
    let started = Instant::now();

    let mut one = pipeline.test_message(Job { id: 40, act: Act::Ok }).unwrap();
    let ack = within(one.next()).await.unwrap();
    assert_eq!((ack.tag, ack.is_successful()), (0, true));
    assert!(within(one.next()).await.is_none());
    // Not in flush mode: it waited for the batch timeout.
    assert_eq!(started.elapsed(), Duration::from_secs(60));

    let failed = within(pipeline.test_message(Job { id: 41, act: Act::Err }).unwrap().all()).await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].failure, Some(error("handle_message", "error 41")));

    // test_batch flushes its batch: no waiting for the timeout.
    let started = Instant::now();
    let acts = [Act::Ok, Act::Fail, Act::Ok, Act::BatchFail];
    let all = within(pipeline.test_batch(jobs(&acts)).unwrap().all()).await;
    assert_eq!(started.elapsed(), Duration::ZERO);
    let outcomes: Vec<_> = all.iter().map(|a| (a.tag, a.failure.clone())).collect();
    assert_eq!(
        outcomes,
        vec![
            (0, None),
            (1, Some(Failure::Failed("failed 1".into()))),
            (2, None),
            (3, Some(Failure::Failed("not this one".into()))),
        ]
    );
    assert_eq!(pipeline.handler().batches().last().unwrap().0, vec![0, 2, 3]);
    assert!(pipeline.stop().await.graceful);
}

#[tokio::test(start_paused = true)]
async fn pushing_after_stop_fails_with_not_running() {
    let acks = Arc::new(Acks::default());
    let pipeline = start(Jobs::new(&acks), batches_of(10)).await;
    pipeline.push_messages(messages(&acks, jobs(&[Act::Ok; 2]))).unwrap();
    assert!(pipeline.stop().await.graceful);
    assert_eq!(acks.successful(), vec![0, 1]);

    let late = messages(&acks, vec![Job { id: 2, act: Act::Ok }, Job { id: 3, act: Act::Ok }]);
    assert!(matches!(pipeline.push_messages(late), Err(Error::NotRunning)));
    // The messages it refused are acknowledged as failed, not lost.
    assert_eq!(acks.failures(), vec![(2, Failure::Dropped), (3, Failure::Dropped)]);
    assert!(matches!(pipeline.test_message(Job { id: 4, act: Act::Ok }), Err(Error::NotRunning)));
    assert!(matches!(pipeline.test_batch(jobs(&[Act::Ok])), Err(Error::NotRunning)));
    assert_eq!(pipeline.push_messages(Vec::new()).unwrap_err().to_string(), "pipeline is not running");
}

#[tokio::test(start_paused = true)]
async fn a_memory_producer_pipeline_ends_by_itself_with_every_message_acknowledged() {
    let input = (0..1_000).map(|id| Job { id, act: if id % 10 == 0 { Act::Fail } else { Act::Ok } });
    let (producer, memory_acks) = MemoryProducer::from_iter(input);
    let pipeline = Pipeline::builder("memory", Jobs::default())
        .producer(producer, ProducerOptions::new().concurrency(2))
        .processors(ProcessorOptions::new().concurrency(3))
        .batcher("default", BatcherOptions::new().batch_size(7))
        .start()
        .await
        .unwrap();
    within(pipeline.wait()).await.unwrap();

    assert!(!pipeline.is_running());
    assert_eq!((memory_acks.successful(), memory_acks.failed()), (900, 100));
    let mut failures = memory_acks.failures();
    failures.sort_by_key(|(tag, _)| *tag);
    let expected: Vec<_> =
        (0..100).map(|i| (i * 10, Failure::Failed(format!("failed {}", i * 10)))).collect();
    assert_eq!(failures, expected);
    let batched: usize = pipeline.handler().batches().iter().map(|(ids, _)| ids.len()).sum();
    assert_eq!(batched, 900);
    assert_eq!(pipeline.in_flight(), 0);
}

/// Emits jobs `0..end`, shared by every producer instance, acknowledged to `acks`.
struct Ids {
    next: Arc<AtomicU64>,
    end: u64,
    acks: Arc<Acks>,
}

impl Producer for Ids {
    type Event = Message<Job>;
    type Info = ();

    async fn handle_demand(
        &mut self,
        demand: usize,
        ctx: &mut ProducerContext<'_, ()>,
    ) -> Result<Vec<Message<Job>>, BoxError> {
        let mut out = Vec::with_capacity(demand);
        while out.len() < demand {
            let id = self.next.fetch_add(1, Ordering::Relaxed);
            if id >= self.end {
                ctx.finish();
                break;
            }
            let act = match id % 1_000 {
                7 => Act::Err,
                500 => Act::BatchFail,
                _ => Act::Ok,
            };
            out.push(Message::new(Job { id, act }, self.acks.clone(), AckData::new(id)));
        }
        Ok(out)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_large_run_acknowledges_every_id_exactly_once() {
    const N: u64 = 20_000;
    let acks = Arc::new(Acks::default());
    let next = Arc::new(AtomicU64::new(0));
    let factory = {
        let acks = acks.clone();
        move || Ids { next: next.clone(), end: N, acks: acks.clone() }
    };
    // Jobs::default(): the callbacks need not look at 20,000 acknowledgements.
    let pipeline = Pipeline::builder("large", Jobs::default())
        .producer(factory, ProducerOptions::new().concurrency(2))
        .processors(ProcessorOptions::new().concurrency(4))
        .batcher("default", BatcherOptions::new().batch_size(100).concurrency(2))
        .start()
        .await
        .unwrap();
    timeout(Duration::from_secs(120), pipeline.wait()).await.expect("the pipeline ended").unwrap();

    assert_eq!(acks.tags(), (0..N).collect::<Vec<_>>(), "every id acknowledged exactly once");
    let expected: Vec<_> = (0..N)
        .filter_map(|id| match id % 1_000 {
            7 => Some((id, error("handle_message", &format!("error {id}")))),
            500 => Some((id, Failure::Failed("not this one".into()))),
            _ => None,
        })
        .collect();
    assert_eq!(acks.failures(), expected);
    let batches = pipeline.handler().batches();
    assert!(batches.iter().all(|(ids, _)| ids.len() <= 100));
    assert_eq!(batches.iter().map(|(ids, _)| ids.len()).sum::<usize>(), 20_000 - 20);
    assert_eq!(pipeline.in_flight(), 0);
}
