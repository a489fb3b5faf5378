//! Supervision: restart strategies, re-subscription after restarts, restart intensity.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use weir_core::{
    BoxError, Consumer, ConsumerOptions, Context, Error, ExitReason, Producer, ProducerHandle,
    ProducerOptions, Restart, Strategy, SubscribeOptions, SubscriptionId, Supervisor,
};

/// Emits numbers from a counter shared by all its instances, up to `end`; fails once at `fail_at`.
struct Numbers {
    next: Arc<AtomicU64>,
    end: u64,
    fail_at: Option<(u64, Arc<AtomicBool>)>,
}

impl Producer for Numbers {
    type Event = u64;
    type Message = ();

    async fn handle_demand(&mut self, demand: usize, ctx: &mut Context) -> Result<Vec<u64>, BoxError> {
        let start = self.next.load(Ordering::SeqCst);
        if let Some((at, failed)) = &self.fail_at {
            if start >= *at && !failed.swap(true, Ordering::SeqCst) {
                return Err("producer failed on purpose".into());
            }
        }
        let end = (start + demand as u64).min(self.end);
        self.next.store(end, Ordering::SeqCst);
        if end == self.end {
            ctx.finish();
        }
        Ok((start..end).collect())
    }
}

/// A producer that fails whenever asked.
struct AlwaysFails;

impl Producer for AlwaysFails {
    type Event = u64;
    type Message = ();

    async fn handle_demand(&mut self, _demand: usize, _ctx: &mut Context) -> Result<Vec<u64>, BoxError> {
        Err("always fails".into())
    }
}

/// Records the events it sees.
struct Collect(Arc<Mutex<Vec<u64>>>);

impl Consumer for Collect {
    type Event = u64;
    type Message = ();

    async fn handle_events(
        &mut self,
        events: Vec<u64>,
        _: SubscriptionId,
        _: &mut Context,
    ) -> Result<(), BoxError> {
        self.0.lock().map_err(|_| "poisoned")?.extend(events);
        Ok(())
    }
}

fn collector(
    supervisor: &mut Supervisor,
    producer: &ProducerHandle<u64>,
    seen: &Arc<Mutex<Vec<u64>>>,
    starts: &Arc<AtomicUsize>,
) -> Result<(), Error> {
    let (producer, seen, starts) = (producer.clone(), seen.clone(), starts.clone());
    supervisor.consumer(Restart::Transient, move || {
        starts.fetch_add(1, Ordering::SeqCst);
        let options = ConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new().max_demand(10));
        (Collect(seen.clone()), options)
    })?;
    Ok(())
}

async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), f).await.expect("timed out: the pipeline hangs")
}

#[tokio::test]
async fn one_for_one_restarts_a_failed_producer_and_its_consumer_resubscribes() -> Result<(), Error> {
    let next = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicBool::new(false));
    let mut supervisor = Supervisor::new(Strategy::OneForOne);
    let producer = supervisor.producer(Restart::Transient, {
        let (next, failed) = (next.clone(), failed.clone());
        move || {
            let numbers = Numbers { next: next.clone(), end: 200, fail_at: Some((50, failed.clone())) };
            (numbers, ProducerOptions::new())
        }
    })?;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let consumer_starts = Arc::new(AtomicUsize::new(0));
    collector(&mut supervisor, &producer, &seen, &consumer_starts)?;
    let running = supervisor.start()?;

    let reason = within(running.wait()).await;
    assert!(!reason.is_failure(), "supervisor ended with {reason}");
    assert!(failed.load(Ordering::SeqCst), "the producer never failed");
    // The consumer stopped with its producer (permanent subscription) and was restarted.
    assert_eq!(consumer_starts.load(Ordering::SeqCst), 2);
    let mut seen = seen.lock().map(|v| v.clone()).unwrap_or_default();
    seen.sort_unstable();
    assert_eq!(seen, (0..200).collect::<Vec<_>>(), "every event exactly once");
    Ok(())
}

#[tokio::test]
async fn rest_for_one_restarts_the_children_after_the_failed_one() -> Result<(), Error> {
    let first_starts = Arc::new(AtomicUsize::new(0));
    let next = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicBool::new(false));
    let mut supervisor = Supervisor::new(Strategy::RestForOne);
    // An unrelated producer before the failing one: rest-for-one leaves it alone.
    let before = supervisor.producer(Restart::Permanent, {
        let first_starts = first_starts.clone();
        move || {
            first_starts.fetch_add(1, Ordering::SeqCst);
            (
                Numbers { next: Arc::new(AtomicU64::new(0)), end: u64::MAX, fail_at: None },
                ProducerOptions::new(),
            )
        }
    })?;
    let producer = supervisor.producer(Restart::Transient, {
        let (next, failed) = (next.clone(), failed.clone());
        move || {
            let numbers = Numbers { next: next.clone(), end: 100, fail_at: Some((30, failed.clone())) };
            (numbers, ProducerOptions::new())
        }
    })?;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let consumer_starts = Arc::new(AtomicUsize::new(0));
    collector(&mut supervisor, &producer, &seen, &consumer_starts)?;
    let running = supervisor.start()?;

    within(async {
        while seen.lock().map(|v| v.len()).unwrap_or_default() < 100 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(consumer_starts.load(Ordering::SeqCst), 2);
    assert_eq!(first_starts.load(Ordering::SeqCst), 1);
    assert!(before.is_running());
    assert!(matches!(within(running.stop()).await, ExitReason::Shutdown));
    assert!(!before.is_running(), "stopping the supervisor stops its children");
    Ok(())
}

#[tokio::test]
async fn one_for_all_restarts_every_child() -> Result<(), Error> {
    let starts = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicBool::new(false));
    let mut supervisor = Supervisor::new(Strategy::OneForAll);
    let steady = supervisor.producer(Restart::Permanent, {
        let starts = starts.clone();
        move || {
            starts.fetch_add(1, Ordering::SeqCst);
            (
                Numbers { next: Arc::new(AtomicU64::new(0)), end: u64::MAX, fail_at: None },
                ProducerOptions::new(),
            )
        }
    })?;
    let flaky = supervisor.producer(Restart::Permanent, {
        let failed = failed.clone();
        move || {
            let numbers = Numbers {
                next: Arc::new(AtomicU64::new(0)),
                end: u64::MAX,
                fail_at: Some((0, failed.clone())),
            };
            (numbers, ProducerOptions::new())
        }
    })?;
    let running = supervisor.start()?;
    // Asking the flaky producer makes it fail once.
    let events = weir_core::stream(&flaky, SubscribeOptions::new().max_demand(5))?;
    within(async {
        while starts.load(Ordering::SeqCst) < 2 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(steady.is_running());
    drop(events);
    within(running.stop()).await;
    Ok(())
}

#[tokio::test]
async fn exceeding_the_restart_intensity_stops_the_supervisor_with_an_error() -> Result<(), Error> {
    let mut supervisor =
        Supervisor::new(Strategy::OneForOne).max_restarts(2).max_seconds(Duration::from_secs(60));
    let starts = Arc::new(AtomicUsize::new(0));
    let producer = supervisor.producer(Restart::Permanent, {
        let starts = starts.clone();
        move || {
            starts.fetch_add(1, Ordering::SeqCst);
            (AlwaysFails, ProducerOptions::new())
        }
    })?;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let consumer_starts = Arc::new(AtomicUsize::new(0));
    let (p, s, c) = (producer.clone(), seen.clone(), consumer_starts.clone());
    supervisor.consumer(Restart::Permanent, move || {
        c.fetch_add(1, Ordering::SeqCst);
        (Collect(s.clone()), ConsumerOptions::new().subscribe_to(&p, SubscribeOptions::new()))
    })?;
    let running = supervisor.start()?;
    let reason = within(running.wait()).await;
    match reason {
        ExitReason::Failed(error) => {
            assert!(matches!(*error, Error::RestartIntensity { max_restarts: 2, .. }), "{error}");
        }
        other => panic!("expected a failure, got {other}"),
    }
    assert!(starts.load(Ordering::SeqCst) >= 2);
    assert!(!producer.is_running(), "children are stopped with the supervisor");
    Ok(())
}

#[tokio::test]
async fn temporary_children_are_not_restarted() -> Result<(), Error> {
    let mut supervisor = Supervisor::new(Strategy::OneForOne);
    let starts = Arc::new(AtomicUsize::new(0));
    let producer = supervisor.producer(Restart::Temporary, {
        let starts = starts.clone();
        move || {
            starts.fetch_add(1, Ordering::SeqCst);
            (AlwaysFails, ProducerOptions::new())
        }
    })?;
    let running = supervisor.start()?;
    let events = weir_core::stream(&producer, SubscribeOptions::new())?;
    let reason = within(running.wait()).await;
    assert!(!reason.is_failure(), "nothing left to supervise: {reason}");
    assert_eq!(starts.load(Ordering::SeqCst), 1);
    drop(events);
    Ok(())
}

/// Never returns from `handle_events`.
struct Stuck;

impl Consumer for Stuck {
    type Event = u64;
    type Message = ();

    async fn handle_events(
        &mut self,
        _: Vec<u64>,
        _: SubscriptionId,
        _: &mut Context,
    ) -> Result<(), BoxError> {
        std::future::pending::<()>().await;
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_child_that_does_not_stop_in_time_is_aborted() -> Result<(), Error> {
    let mut supervisor = Supervisor::new(Strategy::OneForOne).shutdown_timeout(Duration::from_secs(2));
    let producer = supervisor.producer(Restart::Permanent, || {
        (Numbers { next: Arc::new(AtomicU64::new(0)), end: u64::MAX, fail_at: None }, ProducerOptions::new())
    })?;
    let p = producer.clone();
    let stuck = supervisor.consumer(Restart::Permanent, move || {
        (Stuck, ConsumerOptions::new().subscribe_to(&p, SubscribeOptions::new()))
    })?;
    let running = supervisor.start()?;
    tokio::time::sleep(Duration::from_millis(10)).await;
    let started = tokio::time::Instant::now();
    within(running.stop()).await;
    assert!(started.elapsed() >= Duration::from_secs(2), "it waited for the shutdown timeout");
    assert!(!stuck.is_running());
    assert!(!producer.is_running());
    Ok(())
}
