//! Pattern 4 of the GenStage guide: [`PartitionDispatcher`], routing each event to the one
//! consumer of its partition.
//!
//! Three producers, each with exactly one consumer per partition:
//!
//! 1. named partitions `odd` / `even`, with a hash function that names the partition;
//! 2. four partitions `0..4` chosen by the hash of the event (GenStage's default `phash2`);
//! 3. the guide's `OrderProducer`, fed by casts, with a partition per shipping type
//!    (`standard`, `express`, `international`) and a hash that *drops* low-priority orders.
//!
//! What to look for: each consumer only sees events of its own partition, together they see
//! every event (except the dropped ones), and each stream stays in order.
//!
//! ```sh
//! cargo run -p weir-examples --bin pattern_04_partition
//! ```

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, VecDeque};
use std::error::Error;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use weir_core::dispatcher::PartitionDispatcher;
use weir_core::{
    from_enumerable, start_consumer, start_producer, AsProducer, BoxError, Consumer, ConsumerHandle,
    ConsumerOptions, Context, ExitReason, PartitionKey, Producer, ProducerOptions, SubscribeOptions,
    SubscriptionId,
};

/// What each partition's consumer received, by partition.
type Seen<T> = Arc<Mutex<BTreeMap<String, Vec<T>>>>;

/// The one consumer of a partition: records what it gets under its partition's name.
struct PartitionConsumer<T> {
    partition: String,
    seen: Seen<T>,
}

impl<T: std::fmt::Debug + Send + 'static> Consumer for PartitionConsumer<T> {
    type Event = T;
    type Message = ();

    async fn handle_events(
        &mut self,
        events: Vec<T>,
        _: SubscriptionId,
        _: &mut Context,
    ) -> Result<(), BoxError> {
        println!("[{}] {} events: {:?}", self.partition, events.len(), events);
        self.seen
            .lock()
            .map_err(|_| "lock poisoned")?
            .entry(self.partition.clone())
            .or_default()
            .extend(events);
        Ok(())
    }
}

/// Starts one consumer per partition of `producer`; returns them to wait on.
fn consume_partitions<T: std::fmt::Debug + Send + 'static>(
    producer: &impl AsProducer<T>,
    partitions: &[PartitionKey],
    seen: &Seen<T>,
) -> Result<Vec<ConsumerHandle<T>>, weir_core::Error> {
    partitions
        .iter()
        .map(|key| {
            let name = key.to_string().trim_matches('"').to_string();
            let consumer = PartitionConsumer { partition: name.clone(), seen: seen.clone() };
            // A consumer MUST name its partition; a second consumer on it would be refused.
            let options = SubscribeOptions::new().partition(key.clone()).max_demand(20);
            start_consumer(consumer, ConsumerOptions::new().name(name).subscribe_to(producer, options))
        })
        .collect()
}

/// Waits for every consumer to finish normally.
async fn finished<T>(consumers: &[ConsumerHandle<T>]) -> Result<(), Box<dyn Error>> {
    for consumer in consumers {
        let reason = tokio::time::timeout(Duration::from_secs(2), consumer.wait())
            .await
            .map_err(|_| "a partition consumer did not finish within 2 s")?;
        assert!(matches!(reason, ExitReason::Normal), "a partition consumer ended with {reason}");
    }
    Ok(())
}

/// 1. Named partitions with a hash that returns the partition's name.
async fn odd_even() -> Result<(), Box<dyn Error>> {
    println!("--- odd / even ---");
    let dispatcher = PartitionDispatcher::named(["odd", "even"], |n: u64| {
        // Returns the event (it could rewrite it) and its partition.
        Some((n, if n % 2 == 0 { "even" } else { "odd" }))
    })?;
    let numbers = start_producer(from_enumerable(1..=100u64), ProducerOptions::new().dispatcher(dispatcher))?;
    let seen = Seen::default();
    let consumers = consume_partitions(&numbers, &["odd".into(), "even".into()], &seen)?;
    finished(&consumers).await?;

    let seen = seen.lock().map_err(|_| "lock poisoned")?;
    let odd: Vec<u64> = (1..=100).filter(|n| n % 2 == 1).collect();
    let even: Vec<u64> = (1..=100).filter(|n| n % 2 == 0).collect();
    assert_eq!(seen.get("odd"), Some(&odd), "the odd consumer saw exactly the odd numbers, in order");
    assert_eq!(seen.get("even"), Some(&even), "the even consumer saw exactly the even numbers, in order");
    Ok(())
}

/// The partition `PartitionDispatcher::hashed(4)` picks: the event's hash modulo 4.
fn partition_of(n: u64) -> usize {
    let mut hasher = DefaultHasher::new();
    n.hash(&mut hasher);
    (hasher.finish() % 4) as usize
}

/// 2. Partitions `0..4` picked by the hash of the event.
async fn hashed() -> Result<(), Box<dyn Error>> {
    println!("--- hashed into 4 partitions ---");
    let numbers = start_producer(
        from_enumerable(0..200u64),
        ProducerOptions::new().dispatcher(PartitionDispatcher::hashed(4)?),
    )?;
    let seen = Seen::default();
    let keys: Vec<PartitionKey> = (0..4).map(PartitionKey::from).collect();
    let consumers = consume_partitions(&numbers, &keys, &seen)?;
    finished(&consumers).await?;

    let seen = seen.lock().map_err(|_| "lock poisoned")?;
    for p in 0..4 {
        let expected: Vec<u64> = (0..200).filter(|&n| partition_of(n) == p).collect();
        let got = seen.get(&p.to_string()).cloned().unwrap_or_default();
        println!("partition {p}: {} events", got.len());
        assert_eq!(got, expected, "partition {p} saw exactly its events, in order");
    }
    Ok(())
}

/// How fast an order must ship: the partitions of the order producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shipping {
    Standard,
    Express,
    International,
}

impl Shipping {
    fn name(self) -> &'static str {
        match self {
            Shipping::Standard => "standard",
            Shipping::Express => "express",
            Shipping::International => "international",
        }
    }
}

/// Low-priority orders are dropped by the hash function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Priority {
    Low,
    Normal,
}

#[derive(Debug, Clone)]
struct Order {
    id: u64,
    shipping: Shipping,
    priority: Priority,
}

#[derive(Debug)]
enum OrderMsg {
    /// A new order (the guide's `new_order/1`).
    NewOrder(Order),
    /// No more orders: finish once every queued order is dispatched.
    Close,
}

/// The guide's `OrderProducer`: orders arrive by cast and wait in a queue until demanded.
#[derive(Default)]
struct OrderProducer {
    queue: VecDeque<Order>,
    pending_demand: usize,
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
        demand: usize,
        ctx: &mut Context<OrderMsg>,
    ) -> Result<Vec<Order>, BoxError> {
        self.pending_demand += demand;
        Ok(self.dispatch(ctx))
    }

    async fn handle_info(
        &mut self,
        message: OrderMsg,
        ctx: &mut Context<OrderMsg>,
    ) -> Result<Vec<Order>, BoxError> {
        match message {
            OrderMsg::NewOrder(order) => self.queue.push_back(order),
            OrderMsg::Close => self.closed = true,
        }
        Ok(self.dispatch(ctx))
    }
}

/// 3. The guide's order producer: named partitions and a hash that drops events.
async fn orders() -> Result<(), Box<dyn Error>> {
    println!("--- orders by shipping type, low priority dropped ---");
    let dispatcher = PartitionDispatcher::named(["standard", "express", "international"], |order: Order| {
        match order.priority {
            // `None`: the event is discarded, it goes to no partition.
            Priority::Low => None,
            Priority::Normal => {
                let partition = order.shipping.name();
                Some((order, partition))
            }
        }
    })?;
    let producer = start_producer(OrderProducer::default(), ProducerOptions::new().dispatcher(dispatcher))?;
    let seen = Seen::default();
    let keys: Vec<PartitionKey> = ["standard", "express", "international"].map(PartitionKey::from).to_vec();
    let consumers = consume_partitions(&producer, &keys, &seen)?;

    let shippings = [Shipping::Standard, Shipping::Express, Shipping::International];
    let all: Vec<Order> = (1..=60u64)
        .map(|id| Order {
            id,
            shipping: shippings[(id % 3) as usize],
            priority: if id % 5 == 0 { Priority::Low } else { Priority::Normal },
        })
        .collect();
    for order in all.clone() {
        producer.cast(OrderMsg::NewOrder(order))?;
    }
    producer.cast(OrderMsg::Close)?;
    finished(&consumers).await?;

    let seen = seen.lock().map_err(|_| "lock poisoned")?;
    for shipping in shippings {
        let expected: Vec<u64> = all
            .iter()
            .filter(|o| o.shipping == shipping && o.priority == Priority::Normal)
            .map(|o| o.id)
            .collect();
        let got: Vec<u64> =
            seen.get(shipping.name()).map(|v| v.iter().map(|o| o.id).collect()).unwrap_or_default();
        assert_eq!(got, expected, "the {} consumer saw exactly its normal-priority orders", shipping.name());
    }
    let low = seen.values().flatten().filter(|o| o.priority == Priority::Low).count();
    assert_eq!(low, 0, "low-priority orders are dropped by the hash");
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    odd_even().await?;
    hashed().await?;
    orders().await?;
    println!("ok: every partition consumer saw exactly its partition's events");
    Ok(())
}
