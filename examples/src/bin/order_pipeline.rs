//! The GenStage guide's complete example: an order-processing system.
//!
//! - `OrderProducer` receives orders at any time by cast (`new_order`) and queues them until
//!   consumers ask; its buffer is bounded (`buffer_size` 10,000).
//! - Four `OrderConsumer`s (`max_demand` 50) validate each chunk of orders and persist the
//!   valid ones in one batch (`Repo::insert_all`, here an in-memory table).
//! - A [`Supervisor`] with [`Strategy::RestForOne`] runs them, producer first.
//!
//! Unlike the guide's long-running application, this program also shuts down gracefully: it
//! closes the producer, which finishes once its queue is dispatched; the consumers finish
//! after persisting what they received, and the supervisor — whose children are
//! [`Restart::Transient`]: restarted after a crash, not after a normal end — then stops.
//!
//! What to look for: batches persisted by the four consumers in parallel, invalid orders
//! rejected, and every valid order persisted exactly once.
//!
//! ```sh
//! cargo run -p weir-examples --bin order_pipeline
//! ```

use std::collections::{HashMap, VecDeque};
use std::error::Error;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use weir_core::{
    BoxError, Consumer, ConsumerOptions, Context, ExitReason, Producer, ProducerHandle, ProducerOptions,
    Reply, Restart, Strategy, SubscribeOptions, SubscriptionId, Supervisor,
};

/// Orders the program places.
const ORDERS: u64 = 300;
/// Consumers processing in parallel.
const CONSUMERS: usize = 4;

/// An order as placed by the application. Totals are in cents, to stay exact.
#[derive(Debug, Clone)]
struct Order {
    id: u64,
    customer_id: Option<u64>,
    total_cents: i64,
    items: Vec<String>,
}

/// Why an order was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Invalid {
    MissingCustomer,
    InvalidTotal,
}

/// A validated order.
#[derive(Debug, Clone)]
struct ValidOrder {
    order: Order,
    validated_at: SystemTime,
}

/// A row of the `orders` table.
#[derive(Debug, Clone)]
struct OrderRow {
    order_id: u64,
    customer_id: u64,
    total_cents: i64,
    items: usize,
    validated_at: SystemTime,
    inserted_at: SystemTime,
    /// Which consumer inserted it (for the demo's summary).
    inserted_by: usize,
}

/// Stands for the database: an `orders` table and the rejected orders.
#[derive(Debug, Default)]
struct Repo {
    orders: Vec<OrderRow>,
    rejected: HashMap<Invalid, Vec<u64>>,
    batches: usize,
}

impl Repo {
    /// Inserts rows in one batch (the guide's `Repo.insert_all("orders", entries)`).
    fn insert_all(&mut self, rows: Vec<OrderRow>) {
        self.batches += 1;
        self.orders.extend(rows);
    }
}

type SharedRepo = Arc<Mutex<Repo>>;

#[derive(Debug)]
enum OrderMsg {
    NewOrder(Order),
    /// How many consumers are subscribed? (A readiness check.)
    Consumers(Reply<usize>),
    /// Stop accepting orders; finish once the queue is dispatched.
    Close,
}

/// The producer: orders wait in a queue until consumers ask for them.
#[derive(Default)]
struct OrderProducer {
    queue: VecDeque<Order>,
    pending_demand: usize,
    consumers: usize,
    closed: bool,
}

impl OrderProducer {
    fn dispatch(&mut self, ctx: &mut Context<OrderMsg>) -> Vec<Order> {
        let n = self.pending_demand.min(self.queue.len());
        self.pending_demand -= n;
        let orders = self.queue.drain(..n).collect();
        if self.closed && self.queue.is_empty() {
            ctx.finish();
        }
        orders
    }
}

impl Producer for OrderProducer {
    type Event = Order;
    type Message = OrderMsg;

    async fn handle_demand(
        &mut self,
        incoming: usize,
        ctx: &mut Context<OrderMsg>,
    ) -> Result<Vec<Order>, BoxError> {
        self.pending_demand += incoming;
        Ok(self.dispatch(ctx))
    }

    async fn handle_info(
        &mut self,
        message: OrderMsg,
        ctx: &mut Context<OrderMsg>,
    ) -> Result<Vec<Order>, BoxError> {
        match message {
            OrderMsg::NewOrder(order) => self.queue.push_back(order),
            OrderMsg::Consumers(reply) => reply.send(self.consumers),
            OrderMsg::Close => self.closed = true,
        }
        Ok(self.dispatch(ctx))
    }

    async fn handle_subscribe(
        &mut self,
        _consumer: SubscriptionId,
        _ctx: &mut Context<OrderMsg>,
    ) -> Result<(), BoxError> {
        self.consumers += 1;
        Ok(())
    }

    async fn handle_cancel(
        &mut self,
        _consumer: SubscriptionId,
        _reason: &ExitReason,
        _ctx: &mut Context<OrderMsg>,
    ) -> Result<Vec<Order>, BoxError> {
        self.consumers -= 1;
        Ok(Vec::new())
    }
}

/// Places an order, from anywhere in the application (the guide's `new_order/1`).
fn new_order(producer: &ProducerHandle<Order, OrderMsg>, order: Order) -> Result<(), weir_core::Error> {
    producer.cast(OrderMsg::NewOrder(order))
}

/// Validates orders and persists the valid ones in one batch per chunk.
struct OrderConsumer {
    id: usize,
    repo: SharedRepo,
}

impl OrderConsumer {
    fn validate(order: Order) -> Result<ValidOrder, (Invalid, Order)> {
        if order.customer_id.is_none() {
            Err((Invalid::MissingCustomer, order))
        } else if order.total_cents <= 0 {
            Err((Invalid::InvalidTotal, order))
        } else {
            Ok(ValidOrder { order, validated_at: SystemTime::now() })
        }
    }

    async fn persist_batch(&self, orders: Vec<ValidOrder>) -> Result<(), BoxError> {
        if orders.is_empty() {
            return Ok(());
        }
        let now = SystemTime::now();
        let rows: Vec<OrderRow> = orders
            .into_iter()
            .map(|valid| OrderRow {
                order_id: valid.order.id,
                customer_id: valid.order.customer_id.unwrap_or_default(),
                total_cents: valid.order.total_cents,
                items: valid.order.items.len(),
                validated_at: valid.validated_at,
                inserted_at: now,
                inserted_by: self.id,
            })
            .collect();
        // A database round trip.
        tokio::time::sleep(Duration::from_millis(2)).await;
        println!("consumer {}: inserting {} orders", self.id, rows.len());
        self.repo.lock().map_err(|_| "repo lock poisoned")?.insert_all(rows);
        Ok(())
    }
}

impl Consumer for OrderConsumer {
    type Event = Order;
    type Message = ();

    async fn handle_events(
        &mut self,
        orders: Vec<Order>,
        _from: SubscriptionId,
        _ctx: &mut Context,
    ) -> Result<(), BoxError> {
        let mut valid = Vec::new();
        for order in orders {
            match Self::validate(order) {
                Ok(order) => valid.push(order),
                Err((why, order)) => {
                    println!("consumer {}: rejecting order #{} ({why:?})", self.id, order.id);
                    self.repo
                        .lock()
                        .map_err(|_| "repo lock poisoned")?
                        .rejected
                        .entry(why)
                        .or_default()
                        .push(order.id);
                }
            }
        }
        self.persist_batch(valid).await
    }
}

/// The orders the demo places: every 10th has no customer, every 15th a zero total.
fn sample_order(id: u64) -> Order {
    Order {
        id,
        customer_id: (id % 10 != 0).then_some(id % 42 + 1),
        total_cents: if id % 15 == 0 { 0 } else { 990 + id as i64 },
        items: vec!["item_a".to_string(), "item_b".to_string()],
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let repo = SharedRepo::default();

    // The pipeline's supervisor: producer first, then the consumers.
    let mut supervisor = Supervisor::new(Strategy::RestForOne);
    let producer = supervisor.producer(Restart::Transient, || {
        (OrderProducer::default(), ProducerOptions::new().name("orders").buffer_size(10_000))
    })?;
    for id in 1..=CONSUMERS {
        let (producer, repo) = (producer.clone(), repo.clone());
        supervisor.consumer(Restart::Transient, move || {
            let options = ConsumerOptions::new()
                .name(format!("order-consumer-{id}"))
                .subscribe_to(&producer, SubscribeOptions::new().max_demand(50));
            (OrderConsumer { id, repo: repo.clone() }, options)
        })?;
    }
    let pipeline = supervisor.start()?;

    // Readiness: wait until every consumer is subscribed. (A consumer subscribing after the
    // producer finished would find it gone.)
    tokio::time::timeout(Duration::from_secs(1), async {
        while producer.call(OrderMsg::Consumers).await? < CONSUMERS {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Ok::<_, weir_core::Error>(())
    })
    .await
    .map_err(|_| "the consumers did not subscribe within 1 s")??;

    // Anywhere in the application: place orders.
    for id in 1..=ORDERS {
        new_order(&producer, sample_order(id))?;
    }

    // Graceful shutdown: no more orders; the pipeline drains and stops.
    producer.cast(OrderMsg::Close)?;
    let reason = tokio::time::timeout(Duration::from_secs(3), pipeline.wait())
        .await
        .map_err(|_| "the pipeline did not drain within 3 s")?;
    println!("pipeline stopped: {reason}");

    let repo = repo.lock().map_err(|_| "repo lock poisoned")?;
    let all: Vec<Order> = (1..=ORDERS).map(sample_order).collect();
    let mut persisted: Vec<u64> = repo.orders.iter().map(|row| row.order_id).collect();
    persisted.sort_unstable();
    let expected: Vec<u64> =
        all.iter().filter(|o| o.customer_id.is_some() && o.total_cents > 0).map(|o| o.id).collect();
    let rejected: usize = repo.rejected.values().map(Vec::len).sum();
    for id in 1..=CONSUMERS {
        let count = repo.orders.iter().filter(|row| row.inserted_by == id).count();
        println!("consumer {id} persisted {count} orders");
    }
    let reasons: Vec<(Invalid, usize)> = repo.rejected.iter().map(|(why, ids)| (*why, ids.len())).collect();
    println!(
        "{} orders persisted in {} batches; {rejected} rejected: {reasons:?}",
        persisted.len(),
        repo.batches
    );
    assert!(matches!(reason, ExitReason::Normal), "the pipeline ended with {reason}");
    assert_eq!(persisted, expected, "every valid order is persisted exactly once");
    assert_eq!(rejected, all.len() - expected.len(), "every invalid order is rejected");
    assert!(
        repo.orders.iter().all(|row| row.customer_id > 0 && row.total_cents > 0 && row.items == 2),
        "rows carry the order's data"
    );
    assert!(repo.orders.iter().all(|row| row.validated_at <= row.inserted_at), "validated before inserted");
    println!("ok: {} of {ORDERS} orders persisted, {rejected} rejected", persisted.len());
    Ok(())
}
