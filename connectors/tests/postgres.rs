//! Integration tests of the PostgreSQL batch writer against a real server (`DATABASE_URL`,
//! default `postgres://postgres@127.0.0.1:5432/test`; `scripts/services.sh postgres` starts
//! one). They fail, never skip, when the server cannot be reached.
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use support::postgres::{connect, count, drop_table, fresh, kill, read_ids, read_orders, unique, url};
use support::{
    assert_database_error, everything_rows, everything_table, messages, order, orders_table, Everything,
    Order, Store,
};
use tokio_postgres::Client;
use weir_broadway::memory::MemoryProducer;
use weir_broadway::{BatcherOptions, Pipeline, ProcessorOptions, ProducerOptions, RetryPolicy};
use weir_connectors::postgres::PostgresWriter;
use weir_connectors::sql::{ColumnType, OnConflict, Table, Value};
use weir_connectors::Error;

#[tokio::test]
async fn a_failing_row_writes_nothing_of_its_batch() {
    let name = unique("failing_row");
    let client = fresh(&name).await;
    let writer = connect(&name, orders_table(&name).on_conflict(OnConflict::Fail)).await;
    writer.write(&messages([Order::new(1, "ann", 100), Order::new(2, "bob", 200)])).await.unwrap();

    // New rows around a key already in the table.
    let batch = messages(
        (10..15)
            .map(|id| Order::new(id, "new", id))
            .chain([Order::new(2, "again", 999)])
            .chain((16..20).map(|id| Order::new(id, "new", id))),
    );
    let before = count(&client, &name).await;
    let error = writer.write(&batch).await.unwrap_err();
    assert_database_error("postgres", &error, "duplicate key value violates unique constraint");
    // The server's message, code and detail, not just "db error".
    assert!(error.to_string().ends_with("(23505); Key (id)=(2) already exists."), "{error}");
    assert_eq!(count(&client, &name).await, before);
    assert_eq!(read_orders(&client, &name).await, vec![Order::new(1, "ann", 100), Order::new(2, "bob", 200)]);

    // A key twice within one batch fails it whole too (no merge with OnConflict::Fail).
    let batch = messages([Order::new(30, "a", 1), Order::new(31, "b", 2), Order::new(30, "c", 3)]);
    assert_database_error("postgres", &writer.write(&batch).await.unwrap_err(), "duplicate key");
    assert_eq!(count(&client, &name).await, before);

    // A value the server refuses (a NUL in text) fails the batch on the server side.
    let batch = messages([Order::new(40, "fine", 1), Order::new(41, "nul\u{0}here", 2)]);
    assert_database_error("postgres", &writer.write(&batch).await.unwrap_err(), "invalid byte sequence");
    assert_eq!(count(&client, &name).await, before);

    // The writer goes on: the next good batch goes in.
    assert_eq!(writer.write(&messages([Order::new(3, "cy", 300)])).await.unwrap(), 1);
    assert_eq!(count(&client, &name).await, 3);
    drop_table(&client, &name).await;
}

#[tokio::test]
async fn a_value_of_the_wrong_type_writes_nothing_of_its_batch() {
    let name = unique("wrong_type");
    let client = fresh(&name).await;
    let writer = connect(&name, everything_table(&name)).await;
    writer.write(&messages(everything_rows("line\nbreak\ttab")[..1].to_vec())).await.unwrap();
    let before = count(&client, &name).await;

    let good = || vec![Value::from(100), 1.into(), 1.5.into(), "t".into(), vec![1u8].into(), true.into()];
    let cases: Vec<(usize, Value, String)> = vec![
        (1, Value::Double(1.5), "row value (1.5) does not fit column big (BigInt)".into()),
        (1, Value::from("7"), r#"row value ("7") does not fit column big (BigInt)"#.into()),
        (3, Value::from(7), "row value (7) does not fit column text (Text)".into()),
        (3, Value::from(vec![1u8, 2]), "row value (2 bytes) does not fit column text (Text)".into()),
        (4, Value::from("bytes"), r#"row value ("bytes") does not fit column bytes (Bytes)"#.into()),
        (5, Value::from(1), "row value (1) does not fit column flag (Bool)".into()),
        (5, Value::from("true"), r#"row value ("true") does not fit column flag (Bool)"#.into()),
        (2, Value::from(true), "row value (true) does not fit column double (Double)".into()),
        (0, Value::from("1"), r#"row value ("1") does not fit column id (BigInt)"#.into()),
    ];
    for (column, value, expected) in cases {
        let mut bad = good();
        bad[0] = Value::from(200);
        bad[column] = value;
        let mut last = good();
        last[0] = Value::from(300);
        let error = writer.write_rows(vec![good(), bad, last]).await.unwrap_err();
        assert!(matches!(error, Error::InvalidOption { option: "row value", .. }), "{error:?}");
        assert_eq!(error.to_string(), expected);
        assert_eq!(count(&client, &name).await, before);
    }

    // An integer for a float column is fine: it becomes a float.
    let mut row = good();
    row[2] = Value::from(3);
    writer.write_rows(vec![row]).await.unwrap();
    let double: f64 =
        client.query_one(&format!("SELECT double FROM {name} WHERE id = 100"), &[]).await.unwrap().get(0);
    assert_eq!(double, 3.0);
    drop_table(&client, &name).await;
}

#[tokio::test]
async fn a_null_key_fails_its_batch() {
    let name = unique("null_key");
    let client = fresh(&name).await;
    let writer = connect(&name, orders_table(&name)).await;
    let rows = vec![vec![1.into(), "ann".into(), 100.into()], vec![Value::Null, "nobody".into(), 1.into()]];
    assert_database_error(
        "postgres",
        &writer.write_rows(rows).await.unwrap_err(),
        "null value in column \"id\"",
    );
    assert_eq!(count(&client, &name).await, 0);
    drop_table(&client, &name).await;
}

#[tokio::test]
async fn a_row_of_the_wrong_shape_fails_before_writing() {
    let name = unique("row_shape");
    let client = fresh(&name).await;
    let writer = connect(&name, orders_table(&name)).await;

    let batch =
        messages([vec![Value::from(1), "ann".into(), 100.into()], vec![Value::from(2), "bob".into()]]);
    let error = writer.write(&batch).await.unwrap_err();
    assert!(matches!(error, Error::RowShape { expected: 3, got: 2, .. }), "{error:?}");
    assert_eq!(error.to_string(), format!("row has 2 values, table {name} has 3 columns"));
    assert_eq!(count(&client, &name).await, 0);

    // write_rows checks the shape too: a short row is neither padded with NULLs nor a panic.
    let rows = vec![vec![Value::from(1), "ann".into(), 100.into()], vec![Value::from(2), "bob".into()]];
    let error = writer.write_rows(rows).await.unwrap_err();
    assert!(matches!(error, Error::RowShape { expected: 3, got: 2, .. }), "{error:?}");
    let error = writer.write_rows(vec![vec![]]).await.unwrap_err();
    assert!(matches!(error, Error::RowShape { expected: 3, got: 0, .. }), "{error:?}");
    let rows = vec![vec![Value::from(1), "ann".into(), 100.into(), 7.into()]];
    let error = writer.write_rows(rows).await.unwrap_err();
    assert!(matches!(error, Error::RowShape { expected: 3, got: 4, .. }), "{error:?}");
    assert_eq!(error.to_string(), format!("row has 4 values, table {name} has 3 columns"));
    assert_eq!(count(&client, &name).await, 0);
    drop_table(&client, &name).await;
}

#[tokio::test]
async fn upserts_write_each_row_once_with_the_new_values() {
    let name = unique("upsert");
    let client = fresh(&name).await;
    let writer = connect(&name, orders_table(&name).on_conflict(OnConflict::Update)).await;
    let first: Vec<Order> = (0..50).map(|id| Order::new(id, "first", id)).collect();
    assert_eq!(writer.write(&messages(first.clone())).await.unwrap(), 50);
    assert_eq!(writer.write(&messages(first.clone())).await.unwrap(), 50);
    assert_eq!(read_orders(&client, &name).await, first);

    let second: Vec<Order> = (25..75).map(|id| Order::new(id, "second", id * 100)).collect();
    assert_eq!(writer.write(&messages(second.clone())).await.unwrap(), 50);
    let expected: Vec<Order> = first[..25].iter().cloned().chain(second).collect();
    assert_eq!(read_orders(&client, &name).await, expected);
    assert_eq!(writer.count().await.unwrap(), 75);
    drop_table(&client, &name).await;
}

#[tokio::test]
async fn duplicate_keys_in_one_batch_are_merged_last_wins() {
    let name = unique("dup_update");
    let client = fresh(&name).await;
    let writer = connect(&name, orders_table(&name)).await;
    let batch = messages([
        Order::new(1, "a", 1),
        Order::new(2, "b", 2),
        Order::new(1, "c", 3),
        Order::new(1, "d", 4),
    ]);
    // Merged before sending: two rows sent.
    assert_eq!(writer.write(&batch).await.unwrap(), 2);
    assert_eq!(read_orders(&client, &name).await, vec![Order::new(1, "d", 4), Order::new(2, "b", 2)]);

    // A key of two columns: rows repeating both are merged, the others are not.
    let pair = unique("dup_pair");
    let _ = fresh(&pair).await;
    let table = Table::new(&pair)
        .column("a", ColumnType::BigInt)
        .column("b", ColumnType::Text)
        .column("v", ColumnType::BigInt)
        .key(["a", "b"]);
    let pair_writer = connect(&pair, table).await;
    let rows = vec![
        vec![Value::from(1), "x".into(), 1.into()],
        vec![Value::from(1), "y".into(), 2.into()],
        vec![Value::from(1), "x".into(), 3.into()],
        vec![Value::from(2), "x".into(), 4.into()],
    ];
    assert_eq!(pair_writer.write_rows(rows).await.unwrap(), 3);
    let stored: Vec<(i64, String, i64)> = client
        .query(&format!("SELECT a, b, v FROM {pair} ORDER BY a, b"), &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(stored, vec![(1, "x".into(), 3), (1, "y".into(), 2), (2, "x".into(), 4)]);
    drop_table(&client, &name).await;
    drop_table(&client, &pair).await;
}

#[tokio::test]
async fn ignore_keeps_the_first_values() {
    let name = unique("ignore");
    let client = fresh(&name).await;
    let writer = connect(&name, orders_table(&name).on_conflict(OnConflict::Ignore)).await;
    writer.write(&messages([Order::new(1, "first", 1), Order::new(2, "first", 2)])).await.unwrap();
    writer.write(&messages([Order::new(1, "second", 10), Order::new(3, "second", 30)])).await.unwrap();
    assert_eq!(
        read_orders(&client, &name).await,
        vec![Order::new(1, "first", 1), Order::new(2, "first", 2), Order::new(3, "second", 30)]
    );
    // Within one batch too: the first of a key stays, as with SQLite.
    writer.write(&messages([Order::new(4, "first", 4), Order::new(4, "second", 40)])).await.unwrap();
    assert_eq!(read_orders(&client, &name).await[3], Order::new(4, "first", 4));
    drop_table(&client, &name).await;
}

#[tokio::test]
async fn failed_messages_are_skipped() {
    let name = unique("failed_skipped");
    let client = fresh(&name).await;
    let writer = connect(&name, orders_table(&name)).await;
    let mut batch = messages((0..10).map(|id| Order::new(id, "x", id)));
    for message in batch.iter_mut().filter(|m| m.data().id % 3 == 0) {
        message.fail("bad order");
    }
    assert_eq!(writer.write(&batch).await.unwrap(), 6);
    let ids: Vec<i64> = read_orders(&client, &name).await.into_iter().map(|o| o.id).collect();
    assert_eq!(ids, vec![1, 2, 4, 5, 7, 8]);

    // A failed message's row is not checked: a bad shape there does not matter.
    let mut batch = messages([vec![Value::from(100), "ok".into(), 1.into()], vec![Value::from(101)]]);
    batch[1].fail("broken");
    assert_eq!(writer.write(&batch).await.unwrap(), 1);

    // Only failed messages, or none: nothing to write, and no error.
    let mut batch = messages([Order::new(200, "x", 1)]);
    batch[0].fail("no");
    assert_eq!(writer.write(&batch).await.unwrap(), 0);
    assert_eq!(writer.write::<Order>(&[]).await.unwrap(), 0);
    assert_eq!(writer.count().await.unwrap(), 7);
    drop_table(&client, &name).await;
}

async fn read_everything(client: &Client, table: &str) -> Vec<Everything> {
    client
        .query(&format!("SELECT id, big, double, text, bytes, flag FROM {table} ORDER BY id"), &[])
        .await
        .unwrap()
        .iter()
        .map(|row| Everything {
            id: row.get(0),
            big: row.get(1),
            double: row.get(2),
            text: row.get(3),
            bytes: row.get(4),
            flag: row.get(5),
        })
        .collect()
}

#[tokio::test]
async fn every_column_type_and_null_round_trips() {
    let name = unique("round_trip");
    let client = fresh(&name).await;
    let writer = connect(&name, everything_table(&name)).await;
    let rows = everything_rows("line\nbreak\ttab");
    assert_eq!(writer.write(&messages(rows.clone())).await.unwrap(), rows.len());
    let mut expected = rows;
    expected.sort_by_key(|row| row.id);
    assert_eq!(read_everything(&client, &name).await, expected);

    // The columns have the types of ColumnType::postgres.
    let types: Vec<(String, String)> = client
        .query(
            "SELECT column_name::text, data_type::text FROM information_schema.columns \
             WHERE table_name = $1 ORDER BY ordinal_position",
            &[&name],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let expected_types = [
        ("id", "bigint"),
        ("big", "bigint"),
        ("double", "double precision"),
        ("text", "text"),
        ("bytes", "bytea"),
        ("flag", "boolean"),
    ];
    assert_eq!(types, expected_types.map(|(c, t)| (c.to_owned(), t.to_owned())).to_vec());

    // Values as `Vec<Value>` rows too, through every `From`.
    writer
        .write_rows(vec![vec![
            Value::from(10i32),
            Value::from(7u32),
            Value::from(2.25),
            Value::from(String::from("owned")),
            Value::from(vec![9u8]),
            Value::from(false),
        ]])
        .await
        .unwrap();
    let row = &read_everything(&client, &name).await[5];
    assert_eq!(
        *row,
        Everything {
            id: 10,
            big: Some(7),
            double: Some(2.25),
            text: Some("owned".into()),
            bytes: Some(vec![9]),
            flag: Some(false)
        }
    );

    // Upserting NULLs over values.
    writer
        .write(&messages([Everything {
            id: 1,
            big: None,
            double: None,
            text: None,
            bytes: None,
            flag: None,
        }]))
        .await
        .unwrap();
    assert_eq!(
        read_everything(&client, &name).await[1],
        Everything { id: 1, big: None, double: None, text: None, bytes: None, flag: None }
    );
    drop_table(&client, &name).await;
}

#[tokio::test]
async fn an_invalid_table_is_refused_before_connecting() {
    let id = || Table::new("t").column("id", ColumnType::BigInt);
    let cases: Vec<(Table, &str)> = vec![
        (
            Table::new("bad name").column("id", ColumnType::BigInt).key(["id"]),
            r#"table.name ("bad name") must be a plain SQL identifier"#,
        ),
        (Table::new("t").key(["id"]), "table.columns (none) must name at least one column"),
        (
            id().column("a-b", ColumnType::Text).key(["id"]),
            r#"table.column ("a-b") must be a plain SQL identifier"#,
        ),
        (id().column("id", ColumnType::Text).key(["id"]), r#"table.column ("id") must not repeat a column"#),
        (id().key(["nope"]), r#"table.key ("nope") must be one of the table's columns"#),
        (id(), "table.key (none) is needed for on_conflict Update (or use OnConflict::Fail)"),
        (
            id().on_conflict(OnConflict::Ignore),
            "table.key (none) is needed for on_conflict Ignore (or use OnConflict::Fail)",
        ),
    ];
    for (table, expected) in cases {
        // The table is checked first: not even an unreachable server is tried.
        let error =
            PostgresWriter::connect("postgres://postgres@127.0.0.1:1/test", table.clone()).await.unwrap_err();
        assert!(matches!(error, Error::InvalidOption { .. }), "{error:?}");
        assert_eq!(error.to_string(), expected);
        let error = PostgresWriter::connect(&url(), table).await.unwrap_err();
        assert_eq!(error.to_string(), expected);
    }
}

#[tokio::test]
async fn an_unreachable_server_is_a_database_error() {
    let error =
        PostgresWriter::connect("postgres://postgres@127.0.0.1:1/test", orders_table("t")).await.unwrap_err();
    assert_database_error("postgres", &error, "error connecting to server: ");
}

#[tokio::test]
async fn a_table_without_key_appends_rows() {
    let name = unique("no_key");
    let client = fresh(&name).await;
    let table = Table::new(&name).column("v", ColumnType::BigInt).on_conflict(OnConflict::Fail);
    let writer = connect(&name, table).await;
    let batch = messages([vec![Value::from(1)], vec![Value::from(1)]]);
    writer.write(&batch).await.unwrap();
    writer.write(&batch).await.unwrap();
    assert_eq!(writer.count().await.unwrap(), 4);
    drop_table(&client, &name).await;
}

#[tokio::test]
async fn the_writer_reconnects_after_its_connection_is_killed() {
    let name = unique("reconnect");
    let client = fresh(&name).await;
    let writer = connect(&name, orders_table(&name)).await;
    writer.write(&messages([Order::new(0, "before", 0)])).await.unwrap();
    let mut written = HashSet::from([0]);
    for round in 1..=10 {
        assert!(kill(&client, &name).await >= 1, "round {round}: no connection of the writer");
        // The next write may fail (the connection died under it) or succeed (the writer saw
        // it die and reconnected first)...
        let id = round * 10;
        match writer.write(&messages([Order::new(id, "maybe", id)])).await {
            Ok(1) => {
                written.insert(id);
            }
            Ok(n) => panic!("round {round}: wrote {n} rows"),
            Err(error) => assert!(matches!(error, Error::Database { .. }), "round {round}: {error:?}"),
        }
        // ...and the one after succeeds, on a new connection.
        let id = round * 10 + 1;
        writer.write(&messages([Order::new(id, "after", id)])).await.unwrap_or_else(|error| {
            panic!("round {round}: the write after a killed connection failed: {error}")
        });
        written.insert(id);
    }
    // Every write that said Ok has its row.
    let stored = read_ids(&client, &name).await;
    assert!(stored.is_superset(&written), "missing {:?}", written.difference(&stored).collect::<Vec<_>>());
    // count() reconnects too.
    assert!(kill(&client, &name).await >= 1);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(writer.count().await.unwrap(), stored.len() as u64);
    drop_table(&client, &name).await;
}

/// Waits until `done` holds, failing the test with `what` after a few seconds.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_writes_every_order_once() {
    const N: i64 = 5_000;
    let name = unique("pipeline");
    let client = fresh(&name).await;
    let writer = connect(&name, orders_table(&name)).await;
    let (producer, acks) = MemoryProducer::from_iter((0..N).map(order));
    let pipeline = Pipeline::builder("postgres-orders", Store::new(writer, Duration::ZERO))
        .producer(producer, ProducerOptions::new())
        .processors(ProcessorOptions::new().concurrency(2).max_demand(50))
        .batcher("default", BatcherOptions::new().batch_size(100).concurrency(2))
        .start()
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(30), pipeline.wait()).await.unwrap().unwrap();

    assert_eq!((acks.successful(), acks.failed()), (N as usize, 0));
    assert_eq!(pipeline.handler().writer.count().await.unwrap(), N as u64);
    assert_eq!(read_orders(&client, &name).await, (0..N).map(order).collect::<Vec<_>>());
    assert_eq!(pipeline.handler().errors.load(Ordering::SeqCst), 0);
    drop_table(&client, &name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_failing_during_an_outage_are_retried() {
    const N: i64 = 5_000;
    let name = unique("outage");
    let client = fresh(&name).await;
    let writer = connect(&name, orders_table(&name)).await;
    let (producer, acks) = MemoryProducer::from_iter((0..N).map(order));
    let pipeline = Pipeline::builder("postgres-outage", Store::new(writer, Duration::from_millis(5)))
        .producer(producer, ProducerOptions::new())
        .processors(ProcessorOptions::new().concurrency(2))
        .batcher("default", BatcherOptions::new().batch_size(100))
        .retry(RetryPolicy::new(10).backoff(Duration::from_millis(50), Duration::from_millis(500)))
        .start()
        .await
        .unwrap();

    // The table goes away mid-run: batches fail, and are retried once it is back.
    tokio::time::timeout(Duration::from_secs(10), acks.wait_for(1_000)).await.unwrap();
    client.batch_execute(&format!("ALTER TABLE {name} RENAME TO {name}_away")).await.unwrap();
    let handler = pipeline.handler().clone();
    until("no batch failed while the table was away", || handler.errors.load(Ordering::SeqCst) >= 2).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    client.batch_execute(&format!("ALTER TABLE {name}_away RENAME TO {name}")).await.unwrap();

    tokio::time::timeout(Duration::from_secs(30), pipeline.wait()).await.unwrap().unwrap();
    assert_eq!((acks.successful(), acks.failed()), (N as usize, 0));
    assert_eq!(read_ids(&client, &name).await, (0..N).collect());
    assert_eq!(count(&client, &name).await, N);
    drop_table(&client, &name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_message_is_acknowledged_without_its_row() {
    const N: i64 = 3_000;
    let name = unique("no_ack_without_row");
    let client = fresh(&name).await;
    let writer = connect(&name, orders_table(&name)).await;
    let (producer, acks) = MemoryProducer::from_iter((0..N).map(order));
    // Two tries only: batches failing during the outage fail for good.
    let pipeline = Pipeline::builder("postgres-give-up", Store::new(writer, Duration::from_millis(5)))
        .producer(producer, ProducerOptions::new())
        .batcher("default", BatcherOptions::new().batch_size(100))
        .retry(RetryPolicy::new(2).backoff(Duration::from_millis(5), Duration::from_millis(10)))
        .start()
        .await
        .unwrap();

    tokio::time::timeout(Duration::from_secs(10), acks.wait_for(500)).await.unwrap();
    client.batch_execute(&format!("ALTER TABLE {name} RENAME TO {name}_away")).await.unwrap();
    until("no batch failed for good while the table was away", || acks.failed() >= 200).await;
    client.batch_execute(&format!("ALTER TABLE {name}_away RENAME TO {name}")).await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), pipeline.wait()).await.unwrap().unwrap();

    assert_eq!(acks.total(), N as usize);
    let failed: HashSet<i64> =
        acks.failures().into_iter().map(|(tag, _)| i64::try_from(tag).unwrap()).collect();
    assert_eq!(failed.len(), acks.failed());
    let acknowledged: HashSet<i64> = (0..N).filter(|id| !failed.contains(id)).collect();
    // Exactly the successfully acknowledged orders are in the table: a failed batch wrote
    // nothing, a successful one everything.
    assert_eq!(read_ids(&client, &name).await, acknowledged);
    assert!(acks.successful() > 0 && acks.failed() > 0);
    drop_table(&client, &name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_survives_its_connection_being_killed() {
    const N: i64 = 5_000;
    let name = unique("killed");
    let client = fresh(&name).await;
    let writer = connect(&name, orders_table(&name)).await;
    let (producer, acks) = MemoryProducer::from_iter((0..N).map(order));
    let pipeline = Pipeline::builder("postgres-killed", Store::new(writer, Duration::from_millis(2)))
        .producer(producer, ProducerOptions::new())
        .processors(ProcessorOptions::new().concurrency(2))
        .batcher("default", BatcherOptions::new().batch_size(100).concurrency(2))
        .retry(RetryPolicy::new(10).backoff(Duration::from_millis(50), Duration::from_millis(500)))
        .start()
        .await
        .unwrap();

    // Kill the writer's connection a few times mid-run; it reconnects on the next write.
    let mut kills = 0;
    for at in [1_000, 2_000, 3_000, 4_000] {
        tokio::time::timeout(Duration::from_secs(10), acks.wait_for(at)).await.unwrap();
        kills += kill(&client, &name).await;
    }
    tokio::time::timeout(Duration::from_secs(30), pipeline.wait()).await.unwrap().unwrap();
    assert!(kills >= 1, "no connection to kill");
    assert_eq!((acks.successful(), acks.failed()), (N as usize, 0));
    assert_eq!(read_ids(&client, &name).await, (0..N).collect());
    assert_eq!(count(&client, &name).await, N);
    drop_table(&client, &name).await;
}
