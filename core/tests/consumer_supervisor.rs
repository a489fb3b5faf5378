//! Per-event workers: concurrency bounded by max_demand, everything handled, failures isolated.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use weir_core::{
    from_enumerable, start_consumer_supervisor, start_producer, ConsumerSupervisorOptions, Error, ExitReason,
    ProducerOptions, SubscribeOptions,
};

#[derive(Default)]
struct Gauge {
    running: AtomicUsize,
    peak: AtomicUsize,
    done: AtomicUsize,
}

#[tokio::test(start_paused = true)]
async fn runs_at_most_max_demand_workers_at_once_and_handles_every_event() -> Result<(), Error> {
    let gauge = Arc::new(Gauge::default());
    let jobs = start_producer(from_enumerable(0..200u32), ProducerOptions::new())?;
    let g = gauge.clone();
    let workers = start_consumer_supervisor(
        move |job: u32| {
            let g = g.clone();
            async move {
                let now = g.running.fetch_add(1, Ordering::SeqCst) + 1;
                g.peak.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(10 + u64::from(job % 7))).await;
                g.running.fetch_sub(1, Ordering::SeqCst);
                g.done.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        },
        ConsumerSupervisorOptions::new()
            .subscribe_to(&jobs, SubscribeOptions::new().max_demand(8).min_demand(4)),
    )?;
    let reason = tokio::time::timeout(Duration::from_secs(60), workers.wait()).await.expect("hangs");
    assert!(matches!(reason, ExitReason::Normal), "{reason}");
    assert_eq!(gauge.done.load(Ordering::SeqCst), 200);
    assert_eq!(gauge.peak.load(Ordering::SeqCst), 8, "max_demand is the concurrency limit");
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn failing_and_panicking_workers_do_not_stop_the_others() -> Result<(), Error> {
    let done = Arc::new(AtomicUsize::new(0));
    let jobs = start_producer(from_enumerable(0..50u32), ProducerOptions::new())?;
    let d = done.clone();
    let workers = start_consumer_supervisor(
        move |job: u32| {
            let d = d.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(1)).await;
                match job % 10 {
                    3 => Err("job failed".into()),
                    7 => panic!("job {job} panicked"),
                    _ => {
                        d.fetch_add(1, Ordering::SeqCst);
                        Ok(())
                    }
                }
            }
        },
        ConsumerSupervisorOptions::new().subscribe_to(&jobs, SubscribeOptions::new().max_demand(5)),
    )?;
    let reason = tokio::time::timeout(Duration::from_secs(60), workers.wait()).await.expect("hangs");
    assert!(matches!(reason, ExitReason::Normal), "{reason}");
    assert_eq!(done.load(Ordering::SeqCst), 40);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn stopping_aborts_running_workers() -> Result<(), Error> {
    let finished = Arc::new(AtomicUsize::new(0));
    let jobs = start_producer(from_enumerable(0..10u32), ProducerOptions::new())?;
    let f = finished.clone();
    let workers = start_consumer_supervisor(
        move |_job: u32| {
            let f = f.clone();
            async move {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                f.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        },
        ConsumerSupervisorOptions::new().subscribe_to(&jobs, SubscribeOptions::new().max_demand(4)),
    )?;
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(matches!(workers.stop().await, ExitReason::Shutdown));
    tokio::time::sleep(Duration::from_secs(7200)).await;
    assert_eq!(finished.load(Ordering::SeqCst), 0, "no worker outlives its supervisor");
    Ok(())
}
