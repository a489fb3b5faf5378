//! The job most users come for, end to end on loopback: orders published to RabbitMQ, a
//! pipeline with the RabbitMQ producer, and the PostgreSQL batch writer upserting them.
//! Every test counts ids at both ends: rows in the table, messages left in the queue, and
//! what the broker says is unacknowledged. Both services are needed (`scripts/services.sh`);
//! without them these tests fail, never skip.
#![cfg(all(feature = "rabbitmq", feature = "postgres"))]
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use support::postgres::{connect, count, drop_table, fresh, read_ids, read_orders, rows_reach, unique};
use support::rabbitmq::{close_connections_of, delete, queue_with, settled, stats, take_all, url};
use support::{order, orders_table, Order, Store};
use tokio_postgres::Client;
use weir_broadway::{BatcherOptions, Message, Pipeline, ProcessorOptions, ProducerOptions, RetryPolicy};
use weir_connectors::postgres::PostgresWriter;
use weir_connectors::rabbitmq::{RabbitMqOptions, RabbitMqProducer};
use weir_connectors::Backoff;

type Ingest = Pipeline<Store<PostgresWriter>>;

/// The order a message's body (its id as text) names; a body that is not an id becomes
/// order -1, which no assertion expects.
fn to_order(message: Message<Vec<u8>>) -> Message<Order> {
    message
        .map_data(|body| order(std::str::from_utf8(&body).ok().and_then(|id| id.parse().ok()).unwrap_or(-1)))
}

/// Publishes orders `0..n` to a fresh queue and makes a fresh table, both named for `test`.
async fn setup(test: &str, n: u64) -> (String, String, Client) {
    let table = unique(test);
    let client = fresh(&table).await;
    let queue = queue_with(test, 0..n).await;
    (queue, table, client)
}

/// RabbitMQ → 2 processors → batches of 100 → PostgreSQL, each write after `delay`;
/// failed messages are requeued (the producer's default), reconnects are quick.
async fn start(queue: &str, table: &str, delay: Duration, retry: RetryPolicy) -> Ingest {
    let options = RabbitMqOptions::new(url(), queue)
        .prefetch_count(500)
        .backoff(Backoff::exponential(Duration::from_millis(50), Duration::from_millis(200)));
    let writer = connect(table, orders_table(table)).await;
    Pipeline::builder("rabbit-to-postgres", Store::new(writer, delay))
        .producer_with_transformer(
            RabbitMqProducer::factory(options).unwrap(),
            to_order,
            ProducerOptions::new(),
        )
        .processors(ProcessorOptions::new().concurrency(2).max_demand(50))
        .batcher("default", BatcherOptions::new().batch_size(100).batch_timeout(Duration::from_millis(20)))
        .retry(retry)
        .start()
        .await
        .unwrap()
}

/// Messages the broker no longer holds (acknowledged or rejected): published minus ready
/// minus unacknowledged.
async fn settled_by_broker(queue: &str, published: u64) -> u64 {
    let stats = stats(queue).await;
    published - stats.ready - stats.unacked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_published_order_is_one_row_and_the_queue_is_left_empty() {
    const N: u64 = 5_000;
    let (queue, table, client) = setup("e2e_all", N).await;
    let pipeline = start(&queue, &table, Duration::ZERO, RetryPolicy::new(1)).await;
    rows_reach(&client, &table, N as i64, 60).await;
    let report = pipeline.stop().await;
    assert!(report.graceful, "{report:?}");

    assert_eq!(read_orders(&client, &table).await, (0..N as i64).map(order).collect::<Vec<_>>());
    assert_eq!(pipeline.handler().errors.load(Ordering::SeqCst), 0);
    assert_eq!(settled(&queue).await, 0, "nothing ready, nothing unacknowledged");
    delete(&queue).await;
    drop_table(&client, &table).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_closing_the_connection_mid_stream_loses_nothing_and_duplicates_no_row() {
    const N: u64 = 5_000;
    let (queue, table, client) = setup("e2e_closed", N).await;
    // Slow writes keep messages in flight when the connection goes: their acknowledgements
    // cannot be sent, the broker redelivers them, and the upsert writes each row once.
    let pipeline = start(&queue, &table, Duration::from_millis(5), RetryPolicy::new(1)).await;
    let mut closed = 0;
    for rows in [1_000, 3_000] {
        rows_reach(&client, &table, rows, 60).await;
        closed += close_connections_of(&queue).await;
    }
    assert!(closed >= 1, "no connection to close");
    rows_reach(&client, &table, N as i64, 60).await;
    let report = pipeline.stop().await;
    assert!(report.graceful, "{report:?}");

    assert_eq!(read_ids(&client, &table).await, (0..N as i64).collect::<HashSet<_>>());
    assert_eq!(count(&client, &table).await, N as i64, "each order once");
    assert_eq!(settled(&queue).await, 0, "nothing ready, nothing unacknowledged");
    delete(&queue).await;
    drop_table(&client, &table).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_mid_stream_acknowledges_exactly_the_written_rows() {
    const N: u64 = 5_000;
    let (queue, table, client) = setup("e2e_stop", N).await;
    let pipeline = start(&queue, &table, Duration::from_millis(5), RetryPolicy::new(1)).await;
    rows_reach(&client, &table, 1_000, 60).await;
    let report = pipeline.stop().await;
    assert!(report.graceful, "{report:?}");

    let written = read_ids(&client, &table).await;
    assert!(written.len() < N as usize, "stopped mid-stream");
    let left_count = settled(&queue).await;
    let left: Vec<i64> = take_all(&queue).await.into_iter().map(|id| id as i64).collect();
    assert_eq!(left.len() as u64, left_count);
    let left: HashSet<i64> = left.into_iter().collect();
    assert_eq!(left.len() as u64, left_count, "no message twice in the queue");
    assert!(written.is_disjoint(&left), "written and still in the queue: acknowledgements lost");
    assert_eq!(written.len() + left.len(), N as usize, "every order written or still in the queue");
    delete(&queue).await;
    drop_table(&client, &table).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_fails_batches_which_come_back_and_nothing_is_acked_without_its_row() {
    const N: u64 = 5_000;
    let (queue, table, client) = setup("e2e_outage", N).await;
    // Two tries per batch: batches failing during the outage fail for good, and their
    // messages are requeued by the broker (the producer's `on_failure`) and come back.
    let retry = RetryPolicy::new(2).backoff(Duration::from_millis(20), Duration::from_millis(50));
    let pipeline = start(&queue, &table, Duration::from_millis(5), retry).await;
    rows_reach(&client, &table, 1_000, 60).await;

    client.batch_execute(&format!("ALTER TABLE {table} RENAME TO {table}_away")).await.unwrap();
    let handler = pipeline.handler().clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while handler.errors.load(Ordering::SeqCst) < 5 {
        assert!(tokio::time::Instant::now() < deadline, "no batch failed while the table was away");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Acknowledgements follow commits: what the broker has settled is at most what the
    // table holds (read in that order, both only grow).
    for _ in 0..3 {
        let acked = settled_by_broker(&queue, N).await;
        let rows = count(&client, &format!("{table}_away")).await;
        assert!(acked <= rows as u64, "{acked} messages settled, {rows} rows");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    client.batch_execute(&format!("ALTER TABLE {table}_away RENAME TO {table}")).await.unwrap();

    rows_reach(&client, &table, N as i64, 60).await;
    let report = pipeline.stop().await;
    assert!(report.graceful, "{report:?}");
    assert_eq!(read_ids(&client, &table).await, (0..N as i64).collect::<HashSet<_>>());
    assert_eq!(count(&client, &table).await, N as i64, "each order once");
    assert_eq!(settled(&queue).await, 0, "nothing ready, nothing unacknowledged");
    delete(&queue).await;
    drop_table(&client, &table).await;
}
