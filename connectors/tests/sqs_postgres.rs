//! SQS → pipeline → PostgreSQL on loopback: orders sent to a local SQS server (moto), the
//! SQS producer, and the PostgreSQL batch writer upserting them. Ids are counted at both
//! ends. Both services are needed (`scripts/services.sh`); without them these tests fail,
//! never skip.
#![cfg(all(feature = "sqs", feature = "postgres"))]
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashSet;
use std::time::Duration;

use support::postgres::{connect, drop_table, fresh, read_ids, read_orders, rows_reach, unique};
use support::sqs::{client, counts, delete, options, queue, send, take_all};
use support::{order, orders_table, Order, Store};
use weir_broadway::{BatcherOptions, Message, Pipeline, ProcessorOptions, ProducerOptions};
use weir_connectors::postgres::PostgresWriter;
use weir_connectors::sqs::{SqsOptions, SqsProducer};

/// The order a body (its id as text) names; a body that is not an id becomes order -1,
/// which no assertion expects.
fn to_order(message: Message<String>) -> Message<Order> {
    message.map_data(|body| order(body.parse().unwrap_or(-1)))
}

/// SQS → 2 processors → batches of 50 → PostgreSQL, each write after `delay`.
async fn start(options: SqsOptions, table: &str, delay: Duration) -> Pipeline<Store<PostgresWriter>> {
    let writer = connect(table, orders_table(table)).await;
    Pipeline::builder("sqs-to-postgres", Store::new(writer, delay))
        .producer_with_transformer(SqsProducer::factory(options).unwrap(), to_order, ProducerOptions::new())
        .processors(ProcessorOptions::new().concurrency(2))
        .batcher("default", BatcherOptions::new().batch_size(50).batch_timeout(Duration::from_millis(20)))
        .start()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sent_order_is_one_row_and_the_queue_is_left_empty() {
    const N: u64 = 1_000;
    let table = unique("sqs_all");
    let database = fresh(&table).await;
    let sqs = client();
    let url = queue(&sqs, "e2e-all").await;
    send(&sqs, &url, &(0..N).collect::<Vec<_>>(), None).await;

    let pipeline = start(options(&url), &table, Duration::ZERO).await;
    rows_reach(&database, &table, N as i64, 60).await;
    let report = pipeline.stop().await;
    assert!(report.graceful, "{report:?}");

    assert_eq!(read_orders(&database, &table).await, (0..N as i64).map(order).collect::<Vec<_>>());
    assert_eq!(counts(&sqs, &url).await, (0, 0), "every message deleted before stop returned");
    delete(&sqs, &url).await;
    drop_table(&database, &table).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_mid_stream_deletes_exactly_the_written_orders() {
    const N: u64 = 1_000;
    let table = unique("sqs_stop");
    let database = fresh(&table).await;
    let sqs = client();
    let url = queue(&sqs, "e2e-stop").await;
    send(&sqs, &url, &(0..N).collect::<Vec<_>>(), None).await;

    let options = options(&url).visibility_timeout(2);
    let pipeline = start(options, &table, Duration::from_millis(20)).await;
    rows_reach(&database, &table, 200, 60).await;
    let report = pipeline.stop().await;
    assert!(report.graceful, "{report:?}");

    let written = read_ids(&database, &table).await;
    assert!(written.len() < N as usize, "stopped mid-stream");
    // Receives dropped by the drain come back after the visibility timeout.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let left: Vec<i64> = take_all(&sqs, &url).await.into_iter().map(|id| id as i64).collect();
    let left_set: HashSet<i64> = left.iter().copied().collect();
    assert_eq!(left_set.len(), left.len(), "no message twice in the queue");
    assert!(written.is_disjoint(&left_set), "written and still in the queue: a delete was lost");
    assert_eq!(written.len() + left.len(), N as usize, "every order written or still in the queue");
    delete(&sqs, &url).await;
    drop_table(&database, &table).await;
}
