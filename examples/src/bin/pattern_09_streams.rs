//! Pattern 9 of the GenStage guide: stages and streams.
//!
//! [`from_enumerable`] turns an iterator into a producer; [`stream`] consumes a producer as a
//! `futures::Stream`, asking for events only as the stream is polled. Together they connect
//! stages to ordinary stream code — handy in scripts and tests:
//!
//! 1. a producer of 1..=1,000,000, streamed with `max_demand` 100, doubled, and cut after 10
//!    items: `[2, 4, ..., 20]`. Thanks to demand, only about 100 numbers are ever produced;
//! 2. the guide's test recipe: feed a producer-consumer from a fixed list and collect its
//!    output with `stream`, to check what it emits.
//!
//! ```sh
//! cargo run -p weir-examples --bin pattern_09_streams
//! ```

use std::error::Error;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use weir_core::{
    from_enumerable, start_producer, start_producer_consumer, stream, BoxError, Context, ExitReason,
    ProducerConsumer, ProducerConsumerOptions, ProducerOptions, SubscribeOptions, SubscriptionId,
};

/// An order, as the transformer under test sees it.
#[derive(Debug, Clone, PartialEq)]
struct Order {
    id: u64,
    total: i64,
}

/// The stage under test: drops orders with a non-positive total.
struct ValidOrders;

impl ProducerConsumer for ValidOrders {
    type In = Order;
    type Out = Order;
    type Message = ();

    async fn handle_events(
        &mut self,
        orders: Vec<Order>,
        _: SubscriptionId,
        _: &mut Context,
    ) -> Result<Vec<Order>, BoxError> {
        Ok(orders.into_iter().filter(|order| order.total > 0).collect())
    }
}

/// 1. `from_enumerable` + `stream(...).map(...).take(10)`.
async fn first_ten_doubled() -> Result<(), Box<dyn Error>> {
    // Counts how many numbers the iterator is asked for.
    let pulled = Arc::new(AtomicUsize::new(0));
    let counter = pulled.clone();
    let numbers = (1..=1_000_000u64).inspect(move |_| {
        counter.fetch_add(1, Ordering::Relaxed);
    });
    let producer = start_producer(from_enumerable(numbers), ProducerOptions::new())?;
    let doubled: Vec<u64> =
        stream(&producer, SubscribeOptions::new().max_demand(100))?.map(|n| n * 2).take(10).collect().await;
    let pulled = pulled.load(Ordering::Relaxed);
    println!("stream of 1..=1_000_000, doubled, first 10: {doubled:?} ({pulled} numbers produced)");
    assert_eq!(doubled, vec![2, 4, 6, 8, 10, 12, 14, 16, 18, 20]);
    // One demand of 100, maybe a second one, and one number peeked at to see if it is the end.
    assert!(pulled <= 201, "demand bounds production: {pulled} numbers produced for 10 taken");

    // The stream was dropped after 10 items, cancelling its subscription; the producer, far
    // from its end, is still there. Stop it.
    let reason = tokio::time::timeout(Duration::from_secs(1), producer.stop())
        .await
        .map_err(|_| "the producer did not stop")?;
    assert!(matches!(reason, ExitReason::Shutdown), "the producer ended with {reason}");
    Ok(())
}

/// 2. Testing a producer-consumer through a stream.
async fn test_the_transformer() -> Result<(), Box<dyn Error>> {
    let producer = start_producer(
        from_enumerable(vec![
            Order { id: 1, total: 100 },
            Order { id: 2, total: -10 }, // invalid
            Order { id: 3, total: 200 },
        ]),
        ProducerOptions::new(),
    )?;
    let transformer = start_producer_consumer(ValidOrders, ProducerConsumerOptions::new())?;
    // GenStage's `sync_subscribe(transformer, to: producer, max_demand: 10)`.
    transformer.consumer().subscribe_to(&producer, SubscribeOptions::new().max_demand(10)).await?;

    // The stream ends when the transformer finishes, which it does after its producer.
    let results: Vec<Order> = tokio::time::timeout(
        Duration::from_secs(1),
        stream(&transformer, SubscribeOptions::new().max_demand(10))?.collect::<Vec<_>>(),
    )
    .await
    .map_err(|_| "the transformer's stream did not end")?;
    println!("transformer output: {results:?}");
    assert_eq!(results.len(), 2, "the invalid order is filtered out");
    assert_eq!(results.iter().map(|o| o.id).collect::<Vec<_>>(), vec![1, 3]);
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    first_ten_doubled().await?;
    test_the_transformer().await?;
    println!("ok: producers consumed as streams");
    Ok(())
}
