//! Producer restarts: a producer whose callback errs or panics is restarted (the factory
//! is called again) while the other producers go on; the messages it held are acknowledged
//! as failed, not lost; one that crashes too often stays down and the pipeline goes on.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::Tally;
use weir_broadway::{
    AckData, BoxError, Error, Failure, Handler, Message, Pipeline, ProcessorOptions, Producer,
    ProducerContext, ProducerOptions, RateLimit,
};

/// When producers crash.
#[derive(Clone, Copy)]
enum Crash {
    /// The first instance of slot 0 errs in its second `handle_demand`.
    ErrOnce,
    /// The first instance of slot 1 panics in its first `handle_demand`.
    PanicOnce,
    /// Every instance of slot 0 errs in its first `handle_demand`.
    Always,
    /// Every instance of slot 0 errs (in `handle_info`) this long after its first demand.
    Every(Duration),
    /// The first instance of slot 0 emits 20 more messages than asked in its first
    /// `handle_demand` (the stage buffers them), and errs this long after.
    Overflow(Duration),
}

/// What every producer instance shares: the ids, the plan, and what happened.
struct Plan {
    crash: Crash,
    next: AtomicU64,
    end: u64,
    made: AtomicUsize,
    crashed_once: AtomicBool,
    /// The slot of each instance (by creation number).
    slots: Mutex<BTreeMap<usize, usize>>,
    /// The ids each slot emitted.
    emitted: Mutex<BTreeMap<usize, Vec<u64>>>,
    tally: Arc<Tally>,
}

impl Plan {
    fn new(crash: Crash, end: u64) -> Arc<Self> {
        Arc::new(Plan {
            crash,
            next: AtomicU64::new(0),
            end,
            made: AtomicUsize::new(0),
            crashed_once: AtomicBool::new(false),
            slots: Mutex::default(),
            emitted: Mutex::default(),
            tally: Arc::default(),
        })
    }

    fn factory(self: &Arc<Self>) -> impl Fn() -> Crashy + Send + Sync + 'static {
        let plan = self.clone();
        move || Crashy { instance: plan.made.fetch_add(1, Ordering::SeqCst), demands: 0, plan: plan.clone() }
    }

    /// How many instances ran in `slot`.
    fn instances(&self, slot: usize) -> usize {
        self.slots.lock().unwrap().values().filter(|s| **s == slot).count()
    }

    fn emitted_by(&self, slot: usize) -> BTreeSet<u64> {
        self.emitted.lock().unwrap().get(&slot).into_iter().flatten().copied().collect()
    }
}

/// A producer of the plan's ids that crashes as planned.
struct Crashy {
    plan: Arc<Plan>,
    instance: usize,
    demands: usize,
}

impl Producer for Crashy {
    type Event = Message<u64>;
    type Info = ();

    async fn handle_demand(
        &mut self,
        demand: usize,
        ctx: &mut ProducerContext<'_, ()>,
    ) -> Result<Vec<Message<u64>>, BoxError> {
        let plan = &*self.plan;
        let slot = ctx.index();
        plan.slots.lock().unwrap().insert(self.instance, slot);
        self.demands += 1;
        match plan.crash {
            Crash::ErrOnce
                if slot == 0 && self.demands == 2 && !plan.crashed_once.swap(true, Ordering::SeqCst) =>
            {
                return Err("injected error".into());
            }
            Crash::PanicOnce if slot == 1 && !plan.crashed_once.swap(true, Ordering::SeqCst) => {
                panic!("injected panic");
            }
            Crash::Always if slot == 0 => return Err("injected error".into()),
            Crash::Every(after) if slot == 0 && self.demands == 1 => ctx.send_after((), after),
            _ => {}
        }
        let demand = match plan.crash {
            Crash::Overflow(after) if slot == 0 && !plan.crashed_once.swap(true, Ordering::SeqCst) => {
                ctx.send_after((), after);
                demand + 20
            }
            _ => demand,
        };
        let first = plan.next.fetch_add(demand as u64, Ordering::SeqCst).min(plan.end);
        let last = (first + demand as u64).min(plan.end);
        if last == plan.end {
            ctx.finish();
        }
        plan.emitted.lock().unwrap().entry(slot).or_default().extend(first..last);
        Ok((first..last).map(|id| Message::new(id, plan.tally.clone(), AckData::new(id))).collect())
    }

    async fn handle_info(
        &mut self,
        (): (),
        _: &mut ProducerContext<'_, ()>,
    ) -> Result<Vec<Message<u64>>, BoxError> {
        Err("injected crash".into())
    }
}

/// Records the ids handled, taking this long for each.
#[derive(Default)]
struct Recorder(Mutex<Vec<u64>>, Duration);

impl Handler for Recorder {
    type Data = u64;
    type Output = ();

    async fn handle_message(&self, message: &mut Message<u64>) -> Result<(), BoxError> {
        tokio::time::sleep(self.1).await;
        self.0.lock().unwrap().push(*message.data());
        Ok(())
    }
}

/// Runs the plan with two producers and `options`, taking `delay` for each message;
/// returns the ids handled, sorted, and what `wait` said.
async fn run(plan: &Arc<Plan>, options: ProducerOptions, delay: Duration) -> (Vec<u64>, Result<(), Error>) {
    let pipeline = Pipeline::builder("restart", Recorder(Mutex::default(), delay))
        .producer(plan.factory(), options.concurrency(2))
        .processors(ProcessorOptions::new().concurrency(2).max_demand(5))
        .start()
        .await
        .unwrap();
    let waited = tokio::time::timeout(Duration::from_secs(3600), pipeline.wait()).await.unwrap();
    assert_eq!(pipeline.in_flight(), 0, "every message emitted was settled");
    let mut handled = pipeline.handler().0.lock().unwrap().clone();
    handled.sort_unstable();
    (handled, waited)
}

#[tokio::test(start_paused = true)]
async fn a_crashed_producer_is_restarted_and_the_other_goes_on() {
    for (crash, slot) in [(Crash::ErrOnce, 0), (Crash::PanicOnce, 1)] {
        let n = 200;
        let plan = Plan::new(crash, n);
        let (handled, waited) = run(&plan, ProducerOptions::new(), Duration::ZERO).await;
        waited.unwrap();
        assert_eq!(plan.made.load(Ordering::SeqCst), 3, "the factory made a new instance");
        assert_eq!((plan.instances(slot), plan.instances(1 - slot)), (2, 1), "only slot {slot} restarted");
        assert!(!plan.emitted_by(slot).is_empty() && !plan.emitted_by(1 - slot).is_empty());
        assert_eq!(handled, (0..n).collect::<Vec<_>>(), "messages kept flowing");
        assert!(plan.tally.failed_once_each(n).is_empty(), "nothing was held, nothing failed");
    }
}

#[tokio::test(start_paused = true)]
async fn messages_a_crashed_producer_held_are_acknowledged_as_failed() {
    // Rate-limited producers hold what they emit over the limit. Slot 0 crashes 1.5 s after
    // each start, each crash alone within max_restarts' window: it is restarted every time.
    let n = 80;
    let plan = Plan::new(Crash::Every(Duration::from_millis(1500)), n);
    let options = ProducerOptions::new()
        .rate_limit(RateLimit::new(10, Duration::from_secs(1)))
        .max_restarts(1, Duration::from_secs(1));
    let (handled, waited) = run(&plan, options, Duration::ZERO).await;
    waited.unwrap();

    assert!(plan.instances(0) >= 3, "restarted more than max_restarts times in all: {}", plan.instances(0));
    assert_eq!(plan.instances(1), 1);
    let failed = plan.tally.failed_once_each(n);
    assert!(!failed.is_empty(), "slot 0 held messages when it crashed");
    assert!(failed.values().all(|f| *f == Failure::Dropped), "{failed:?}");
    let failed: BTreeSet<u64> = failed.into_keys().collect();
    let expected: BTreeSet<u64> =
        plan.emitted_by(0).into_iter().filter(|id| handled.binary_search(id).is_err()).collect();
    assert_eq!(failed, expected, "exactly what slot 0 emitted and nobody handled failed");
    let all: BTreeSet<u64> = handled.iter().copied().chain(failed).collect();
    assert_eq!(all.len() as u64, n, "nothing was lost");
}

#[tokio::test(start_paused = true)]
async fn a_producer_that_crashes_too_often_stays_down_and_the_pipeline_goes_on() {
    let n = 100;
    let plan = Plan::new(Crash::Always, n);
    let (handled, waited) =
        run(&plan, ProducerOptions::new().max_restarts(2, Duration::from_secs(60)), Duration::ZERO).await;
    // The pipeline ran to its end, and says which stage stayed down.
    assert!(
        matches!(&waited, Err(Error::StageFailed { stage, .. }) if stage == "restart.producer_0"),
        "{waited:?}"
    );
    assert_eq!(plan.instances(0), 3, "started once and restarted twice");
    assert_eq!(plan.made.load(Ordering::SeqCst), 4);
    assert!(plan.emitted_by(0).is_empty());
    assert_eq!(plan.emitted_by(1), (0..n).collect(), "slot 1 produced everything");
    assert_eq!(handled, (0..n).collect::<Vec<_>>());
    assert!(plan.tally.failed_once_each(n).is_empty());
}

#[tokio::test(start_paused = true)]
async fn messages_emitted_but_not_dispatched_when_a_producer_crashes_are_acknowledged_as_failed() {
    // Slot 0 emits 20 more than its processors asked for, then crashes while they are busy:
    // the 20 were still in its stage.
    let n = 100;
    let plan = Plan::new(Crash::Overflow(Duration::from_millis(50)), n);
    let (handled, waited) = run(&plan, ProducerOptions::new(), Duration::from_millis(100)).await;
    waited.unwrap();

    assert_eq!((plan.instances(0), plan.instances(1)), (2, 1));
    let failed = plan.tally.failed_once_each(n);
    assert_eq!(failed.len(), 20, "the 20 undispatched messages: {failed:?}");
    assert!(failed.values().all(|f| *f == Failure::Dropped), "{failed:?}");
    let failed: BTreeSet<u64> = failed.into_keys().collect();
    assert!(failed.is_subset(&plan.emitted_by(0)));
    let all: BTreeSet<u64> = handled.iter().copied().chain(failed).collect();
    assert_eq!((all.len() as u64, handled.len() as u64), (n, n - 20), "nothing lost, nothing twice");
}
