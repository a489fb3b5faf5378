//! Pattern 1 of the GenStage guide: the basic pipeline, producer → consumers, supervised.
//!
//! A `NumberProducer` emits consecutive numbers on demand; four `NumberConsumer`s subscribe to
//! it with `max_demand` 10. All five run under a [`Supervisor`] with [`Strategy::RestForOne`],
//! as the guide recommends: when the producer crashes (here on purpose, once), the supervisor
//! restarts it *and every child added after it*, and the restarted consumers subscribe again
//! to the new producer through the same handle.
//!
//! What to look for: chunks of at most 10 events spread over the four consumers, the crash,
//! one restart of all five stages, then numbers flowing again.
//!
//! ```sh
//! cargo run -p weir-examples --bin pattern_01_basic_pipeline
//! ```

use std::collections::HashSet;
use std::error::Error;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing_subscriber::EnvFilter;
use weir_core::{
    BoxError, Consumer, ConsumerOptions, Context, ExitReason, Producer, ProducerOptions, Restart, Strategy,
    SubscribeOptions, SubscriptionId, Supervisor,
};

/// How many consumers share the producer.
const CONSUMERS: usize = 4;
/// Each consumer asks for at most this many events at a time.
const MAX_DEMAND: usize = 10;
/// After the restart, the program lets this many more events through, then stops.
const AFTER_RESTART: usize = 200;

/// What the program can tell the producer.
#[derive(Debug)]
enum ProducerMsg {
    /// Fail, to show what the supervisor does.
    Crash,
}

/// Emits consecutive numbers, exactly as many as asked.
struct NumberProducer {
    /// The next number. It lives outside the stage so that the instance a restart creates
    /// carries on from there (a restarted Erlang process would start over from its argument).
    counter: Arc<AtomicU64>,
}

impl Producer for NumberProducer {
    type Event = u64;
    type Message = ProducerMsg;

    async fn handle_demand(
        &mut self,
        demand: usize,
        _ctx: &mut Context<ProducerMsg>,
    ) -> Result<Vec<u64>, BoxError> {
        // If the counter is 3 and demand is 2, emit [3, 4]; the counter becomes 5.
        let start = self.counter.fetch_add(demand as u64, Ordering::SeqCst);
        Ok((start..start + demand as u64).collect())
    }

    async fn handle_info(
        &mut self,
        message: ProducerMsg,
        _ctx: &mut Context<ProducerMsg>,
    ) -> Result<Vec<u64>, BoxError> {
        match message {
            // An error (or a panic) in any callback fails the stage.
            ProducerMsg::Crash => Err("simulated crash".into()),
        }
    }
}

/// Every chunk handled: `(consumer number, chunk)`.
type Log = Arc<Mutex<Vec<(usize, Vec<u64>)>>>;

/// Handles the numbers it is sent. A consumer emits nothing: `handle_events` returns `()`.
struct NumberConsumer {
    id: usize,
    log: Log,
}

impl Consumer for NumberConsumer {
    type Event = u64;
    type Message = ();

    async fn handle_events(
        &mut self,
        events: Vec<u64>,
        _from: SubscriptionId,
        _ctx: &mut Context,
    ) -> Result<(), BoxError> {
        println!("consumer {}: processing {:?}", self.id, events);
        self.log.lock().expect("log lock poisoned").push((self.id, events));
        // Pretend each chunk takes a moment of work.
        tokio::time::sleep(Duration::from_millis(1)).await;
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    // Shows the library's own logs: the failure and the restart.
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")))
        .init();

    let counter = Arc::new(AtomicU64::new(0));
    let consumer_starts = Arc::new(AtomicUsize::new(0));
    let log: Log = Arc::new(Mutex::new(Vec::new()));

    // rest_for_one: if the producer restarts, the consumers after it restart too (and
    // subscribe again). Children start in the order they are added: the producer first.
    let mut supervisor = Supervisor::new(Strategy::RestForOne);
    let producer = supervisor.producer(Restart::Permanent, {
        let counter = counter.clone();
        move || (NumberProducer { counter: counter.clone() }, ProducerOptions::new().name("numbers"))
    })?;
    for id in 1..=CONSUMERS {
        // The factory runs at every (re)start. The options carry the subscription, like
        // `subscribe_to:` in `init/1`: a restarted consumer subscribes again by itself.
        let (producer, log, starts) = (producer.clone(), log.clone(), consumer_starts.clone());
        supervisor.consumer(Restart::Permanent, move || {
            starts.fetch_add(1, Ordering::SeqCst);
            let options = ConsumerOptions::new()
                .name(format!("consumer-{id}"))
                .subscribe_to(&producer, SubscribeOptions::new().max_demand(MAX_DEMAND));
            (NumberConsumer { id, log: log.clone() }, options)
        })?;
    }
    let running = supervisor.start()?;

    let handled_by = |id: usize| {
        let log = log.lock().expect("log lock poisoned");
        log.iter().filter(|(c, _)| *c == id).map(|(_, chunk)| chunk.len()).sum::<usize>()
    };
    let handled = || (1..=CONSUMERS).map(handled_by).sum::<usize>();

    // Once every consumer is receiving, crash the producer. The handle the supervisor gave us
    // follows the child, so the same `producer` addresses the restarted instance later.
    tokio::time::timeout(Duration::from_secs(2), async {
        while (1..=CONSUMERS).any(|id| handled_by(id) == 0) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .map_err(|_| "not every consumer received events within 2 s")?;
    println!("main: every consumer is receiving; crashing the producer");
    producer.cast(ProducerMsg::Crash)?;

    // Wait for the restarted pipeline to carry AFTER_RESTART more events.
    tokio::time::timeout(Duration::from_secs(2), async {
        while consumer_starts.load(Ordering::SeqCst) < 2 * CONSUMERS {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let target = handled() + AFTER_RESTART;
        while handled() < target {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .map_err(|_| "the pipeline did not recover from the crash within 2 s")?;

    // Stopping the supervisor stops every child, last first.
    let reason = tokio::time::timeout(Duration::from_secs(2), running.stop())
        .await
        .map_err(|_| "the supervisor did not stop within 2 s")?;
    println!("main: supervisor stopped ({reason})");

    // The key facts of the pattern.
    let log = log.lock().expect("log lock poisoned").clone();
    assert!(matches!(reason, ExitReason::Shutdown), "supervisor ended with {reason}");
    assert_eq!(
        consumer_starts.load(Ordering::SeqCst),
        2 * CONSUMERS,
        "rest_for_one restarts each consumer exactly once, along with the producer"
    );
    assert!(log.iter().all(|(_, chunk)| chunk.len() <= MAX_DEMAND), "a consumer got more than max_demand");
    let mut unique = HashSet::new();
    for n in log.iter().flat_map(|(_, chunk)| chunk) {
        assert!(unique.insert(*n), "{n} was delivered twice");
    }
    for id in 1..=CONSUMERS {
        println!("consumer {id} handled {} events", handled_by(id));
    }
    println!("ok: {} distinct events; the producer restarted once, with its consumers", unique.len());
    Ok(())
}
