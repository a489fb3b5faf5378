//! Pattern 10 of the GenStage guide: controlling demand with accumulate / forward.
//!
//! `DatabaseProducer` starts in [`DemandMode::Accumulate`]: consumers may subscribe and ask,
//! but their demand is held — `handle_demand` is not called — until the mode is switched to
//! [`DemandMode::Forward`] (GenStage's `demand(stage, :forward)`). Here the switch happens once
//! a simulated database connection is ready; [`StageRef::demand_mode`](weir_core::StageRef::demand_mode)
//! reads the mode (GenStage's `demand(stage)`).
//!
//! What to look for: no `handle_demand` call and no event while connecting, then one
//! `handle_demand` with all the accumulated demand, and every row delivered.
//!
//! ```sh
//! cargo run -p weir-examples --bin pattern_10_accumulate_forward
//! ```

use std::error::Error;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use weir_core::{
    start_consumer, start_producer, BoxError, Consumer, ConsumerOptions, Context, DemandMode, ExitReason,
    Producer, ProducerOptions, SubscribeOptions, SubscriptionId,
};

/// Rows in the pretend table.
const ROWS: u64 = 100;
/// Each consumer's `max_demand`.
const MAX_DEMAND: usize = 10;

/// Reads rows once connected. It is only asked for rows after the switch to forward.
struct DatabaseProducer {
    next_row: u64,
    /// Set by the simulated connection, for the checks.
    connected: Arc<AtomicBool>,
    /// Every demand `handle_demand` received, for the checks.
    demands: Arc<Mutex<Vec<usize>>>,
    /// Consumers subscribed so far.
    subscribed: Arc<AtomicUsize>,
}

impl Producer for DatabaseProducer {
    type Event = u64;
    type Message = ();

    async fn handle_demand(&mut self, demand: usize, ctx: &mut Context) -> Result<Vec<u64>, BoxError> {
        // Only called in forward mode, so only once connected.
        if !self.connected.load(Ordering::SeqCst) {
            return Err("asked for rows before the database was connected".into());
        }
        println!("producer: handle_demand({demand}) in {:?} mode", ctx.demand_mode());
        if ctx.demand_mode() != DemandMode::Forward {
            return Err("handle_demand called while accumulating".into());
        }
        self.demands.lock().map_err(|_| "lock poisoned")?.push(demand);
        let end = (self.next_row + demand as u64).min(ROWS);
        let rows = (self.next_row..end).collect();
        self.next_row = end;
        if end == ROWS {
            ctx.finish();
        }
        Ok(rows)
    }

    async fn handle_subscribe(
        &mut self,
        _consumer: SubscriptionId,
        _ctx: &mut Context,
    ) -> Result<(), BoxError> {
        // Subscriptions are accepted in accumulate mode too; only demand is held.
        self.subscribed.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// Records the rows it receives.
struct Rows(Arc<Mutex<Vec<u64>>>);

impl Consumer for Rows {
    type Event = u64;
    type Message = ();

    async fn handle_events(
        &mut self,
        rows: Vec<u64>,
        _: SubscriptionId,
        _: &mut Context,
    ) -> Result<(), BoxError> {
        self.0.lock().map_err(|_| "lock poisoned")?.extend(rows);
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let connected = Arc::new(AtomicBool::new(false));
    let demands = Arc::new(Mutex::new(Vec::new()));
    let subscribed = Arc::new(AtomicUsize::new(0));
    let db = DatabaseProducer {
        next_row: 0,
        connected: connected.clone(),
        demands: demands.clone(),
        subscribed: subscribed.clone(),
    };
    // Accumulate: hold the consumers' demand.
    let producer =
        start_producer(db, ProducerOptions::new().name("database").demand(DemandMode::Accumulate))?;

    // Two consumers subscribe and ask for MAX_DEMAND rows each, right away.
    let received: Vec<Arc<Mutex<Vec<u64>>>> = (0..2).map(|_| Arc::default()).collect();
    let mut consumers = Vec::new();
    for rows in &received {
        let options =
            ConsumerOptions::new().subscribe_to(&producer, SubscribeOptions::new().max_demand(MAX_DEMAND));
        consumers.push(start_consumer(Rows(rows.clone()), options)?);
    }

    // "Connecting to the database": meanwhile the demand accumulates.
    let mode = producer.demand_mode().await?;
    println!("main: demand mode {mode:?}, connecting...");
    assert_eq!(mode, DemandMode::Accumulate);
    tokio::time::sleep(Duration::from_millis(50)).await;
    tokio::time::timeout(Duration::from_secs(1), async {
        while subscribed.load(Ordering::SeqCst) < consumers.len() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .map_err(|_| "the consumers did not subscribe within 1 s")?;
    let early: usize = received.iter().map(|r| r.lock().map(|r| r.len()).unwrap_or_default()).sum();
    assert_eq!(early, 0, "no row is emitted while accumulating");
    assert!(
        demands.lock().map_err(|_| "lock poisoned")?.is_empty(),
        "handle_demand is not called while accumulating"
    );

    // Connected: let the demand through (GenStage's `demand(stage, :forward)`).
    connected.store(true, Ordering::SeqCst);
    // (Querying `demand_mode()` now would race with the producer, which may already have
    // served every row and stopped: it reports its mode from `handle_demand` instead.)
    producer.set_demand_mode(DemandMode::Forward)?;
    println!("main: connected, demand mode set to Forward");

    // The producer finishes after the last row; its consumers follow.
    for consumer in &consumers {
        let reason = tokio::time::timeout(Duration::from_secs(2), consumer.wait())
            .await
            .map_err(|_| "a consumer did not finish within 2 s")?;
        assert!(matches!(reason, ExitReason::Normal), "a consumer ended with {reason}");
    }

    let demands = demands.lock().map_err(|_| "lock poisoned")?.clone();
    let mut all: Vec<u64> =
        received.iter().flat_map(|r| r.lock().map(|r| r.clone()).unwrap_or_default()).collect();
    all.sort_unstable();
    println!("producer demands: {demands:?}");
    assert_eq!(
        demands.first(),
        Some(&(2 * MAX_DEMAND)),
        "the first handle_demand gets everything the two consumers asked for while accumulating"
    );
    assert_eq!(all, (0..ROWS).collect::<Vec<_>>(), "every row was delivered exactly once");
    println!("ok: demand held until connected, then {ROWS} rows delivered");
    Ok(())
}
