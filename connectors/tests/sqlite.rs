//! Integration tests of the SQLite batch writer: one transaction per batch, upserts, failed
//! messages, every column type, table validation, and whole pipelines.
#![cfg(feature = "sqlite")]
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use support::{
    assert_database_error, everything_rows, everything_table, messages, order, orders_table, Everything,
    Order, Store, WriteOrders,
};
use weir_broadway::memory::MemoryProducer;
use weir_broadway::{BatcherOptions, Message, Pipeline, ProcessorOptions, ProducerOptions, RetryPolicy};
use weir_connectors::sql::{ColumnType, OnConflict, Table, Value};
use weir_connectors::sqlite::SqliteWriter;
use weir_connectors::Error;

impl WriteOrders for SqliteWriter {
    async fn write_orders(&self, messages: &[Message<Order>]) -> Result<usize, Error> {
        self.write(messages).await
    }
}

/// A database file of its own for one test, removed (with its WAL files) when dropped.
struct TempDb {
    path: PathBuf,
}

impl TempDb {
    fn new(test: &str) -> Self {
        let path = std::env::temp_dir().join(format!("weir_connectors_{test}_{}.db", std::process::id()));
        let db = TempDb { path };
        db.remove();
        db
    }

    fn path(&self) -> &Path {
        &self.path
    }

    /// A second connection, to read back what the writer wrote.
    fn connect(&self) -> Connection {
        Connection::open(&self.path).unwrap()
    }

    fn remove(&self) {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut path = self.path.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        self.remove();
    }
}

/// A table name unique to the test and the process.
fn table_name(test: &str) -> String {
    format!("{test}_{}", std::process::id())
}

/// The orders in the table, by id.
fn read_orders(connection: &Connection, table: &str) -> Vec<Order> {
    let mut statement =
        connection.prepare(&format!("SELECT id, customer, cents FROM {table} ORDER BY id")).unwrap();
    statement
        .query_map([], |row| Ok(Order { id: row.get(0)?, customer: row.get(1)?, cents: row.get(2)? }))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn count(connection: &Connection, table: &str) -> i64 {
    connection.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |row| row.get(0)).unwrap()
}

#[tokio::test]
async fn a_failing_row_writes_nothing_of_its_batch() {
    let db = TempDb::new("failing_row");
    let name = table_name("failing_row");
    let writer = SqliteWriter::open(db.path(), orders_table(&name).on_conflict(OnConflict::Fail)).unwrap();
    let seed = messages([Order::new(1, "ann", 100), Order::new(2, "bob", 200)]);
    assert_eq!(writer.write(&seed).await.unwrap(), 2);

    // Rows 10..15 are new, then id 2 is already in the table, then 16..20 are new again.
    let batch = messages(
        (10..15)
            .map(|id| Order::new(id, "new", id))
            .chain([Order::new(2, "again", 999)])
            .chain((16..20).map(|id| Order::new(id, "new", id))),
    );
    let reader = db.connect();
    let before = count(&reader, &name);
    let error = writer.write(&batch).await.unwrap_err();
    assert_database_error("sqlite", &error, "UNIQUE constraint failed");
    assert_eq!(count(&reader, &name), before);
    assert_eq!(writer.count().await.unwrap(), 2);
    assert_eq!(read_orders(&reader, &name), vec![Order::new(1, "ann", 100), Order::new(2, "bob", 200)]);

    // A key repeated within one batch fails it whole too.
    let batch = messages([Order::new(30, "a", 1), Order::new(31, "b", 2), Order::new(30, "c", 3)]);
    assert_database_error("sqlite", &writer.write(&batch).await.unwrap_err(), "UNIQUE constraint failed");
    assert_eq!(count(&reader, &name), before);

    // The writer is still usable: the next good batch goes in.
    assert_eq!(writer.write(&messages([Order::new(3, "cy", 300)])).await.unwrap(), 1);
    assert_eq!(count(&reader, &name), 3);
}

#[tokio::test]
async fn a_value_of_the_wrong_type_writes_nothing_of_its_batch() {
    let db = TempDb::new("wrong_type");
    let name = table_name("wrong_type");
    let writer = SqliteWriter::open(db.path(), orders_table(&name)).unwrap();
    writer.write_rows(vec![vec![1.into(), "ann".into(), 100.into()]]).await.unwrap();
    let reader = db.connect();
    let before = count(&reader, &name);

    // Text for the integer key (a rowid): SQLite refuses it.
    let rows = vec![
        vec![2.into(), "bob".into(), 200.into()],
        vec!["not a number".into(), "cy".into(), 300.into()],
        vec![4.into(), "dee".into(), 400.into()],
    ];
    assert_database_error("sqlite", &writer.write_rows(rows).await.unwrap_err(), "datatype mismatch");
    assert_eq!(count(&reader, &name), before);
    assert_eq!(read_orders(&reader, &name), vec![Order::new(1, "ann", 100)]);
}

#[tokio::test]
async fn a_null_key_fails_its_batch() {
    let db = TempDb::new("null_key");
    let name = table_name("null_key");
    let writer = SqliteWriter::open(db.path(), orders_table(&name)).unwrap();
    let reader = db.connect();
    let rows = vec![vec![1.into(), "ann".into(), 100.into()], vec![Value::Null, "nobody".into(), 1.into()]];
    let error = writer.write_rows(rows).await.unwrap_err();
    assert_database_error("sqlite", &error, "NOT NULL constraint failed");
    assert_eq!(error.to_string(), format!("sqlite: NOT NULL constraint failed: {name}.id"));
    assert_eq!(count(&reader, &name), 0);

    // Also with a key that is not a rowid (two columns): NOT NULL holds.
    let name2 = table_name("null_key_pair");
    let pair = Table::new(&name2)
        .column("a", ColumnType::BigInt)
        .column("b", ColumnType::Text)
        .column("v", ColumnType::BigInt)
        .key(["a", "b"]);
    let writer2 = SqliteWriter::open(db.path(), pair).unwrap();
    let rows = vec![vec![1.into(), "x".into(), 1.into()], vec![2.into(), Value::Null, 2.into()]];
    assert_database_error(
        "sqlite",
        &writer2.write_rows(rows).await.unwrap_err(),
        "NOT NULL constraint failed",
    );
    assert_eq!(count(&reader, &name2), 0);
}

#[tokio::test]
async fn a_row_of_the_wrong_shape_fails_before_writing() {
    let db = TempDb::new("row_shape");
    let name = table_name("row_shape");
    let writer = SqliteWriter::open(db.path(), orders_table(&name)).unwrap();
    let reader = db.connect();

    let batch =
        messages([vec![Value::from(1), "ann".into(), 100.into()], vec![Value::from(2), "bob".into()]]);
    let error = writer.write(&batch).await.unwrap_err();
    assert!(matches!(error, Error::RowShape { expected: 3, got: 2, .. }), "{error:?}");
    assert_eq!(error.to_string(), format!("row has 2 values, table {name} has 3 columns"));
    assert_eq!(count(&reader, &name), 0);

    // write_rows checks the shape too ("as write").
    let rows = vec![
        vec![Value::from(1), "ann".into(), 100.into()],
        vec![2.into(), "bob".into(), 1.into(), 2.into()],
    ];
    let error = writer.write_rows(rows).await.unwrap_err();
    assert!(matches!(error, Error::RowShape { expected: 3, got: 4, .. }), "{error:?}");
    assert_eq!(error.to_string(), format!("row has 4 values, table {name} has 3 columns"));
    let error = writer.write_rows(vec![vec![]]).await.unwrap_err();
    assert!(matches!(error, Error::RowShape { expected: 3, got: 0, .. }), "{error:?}");
    assert_eq!(count(&reader, &name), 0);
}

#[tokio::test]
async fn upserts_write_each_row_once_with_the_new_values() {
    let db = TempDb::new("upsert");
    let name = table_name("upsert");
    let writer = SqliteWriter::open(db.path(), orders_table(&name).on_conflict(OnConflict::Update)).unwrap();
    let reader = db.connect();
    let first: Vec<Order> = (0..50).map(|id| Order::new(id, "first", id)).collect();
    assert_eq!(writer.write(&messages(first.clone())).await.unwrap(), 50);
    // The same batch again (a redelivery): still 50 rows.
    assert_eq!(writer.write(&messages(first.clone())).await.unwrap(), 50);
    assert_eq!(read_orders(&reader, &name), first);

    // Now with new values, and a few new ids.
    let second: Vec<Order> = (25..75).map(|id| Order::new(id, "second", id * 100)).collect();
    assert_eq!(writer.write(&messages(second.clone())).await.unwrap(), 50);
    let expected: Vec<Order> = first[..25].iter().cloned().chain(second).collect();
    assert_eq!(read_orders(&reader, &name), expected);
    assert_eq!(writer.count().await.unwrap(), 75);
}

#[tokio::test]
async fn duplicate_keys_in_one_batch_last_wins_with_update() {
    let db = TempDb::new("dup_update");
    let name = table_name("dup_update");
    let writer = SqliteWriter::open(db.path(), orders_table(&name)).unwrap();
    let batch = messages([
        Order::new(1, "a", 1),
        Order::new(2, "b", 2),
        Order::new(1, "c", 3),
        Order::new(1, "d", 4),
    ]);
    writer.write(&batch).await.unwrap();
    assert_eq!(read_orders(&db.connect(), &name), vec![Order::new(1, "d", 4), Order::new(2, "b", 2)]);
}

#[tokio::test]
async fn ignore_keeps_the_first_values() {
    let db = TempDb::new("ignore");
    let name = table_name("ignore");
    let writer = SqliteWriter::open(db.path(), orders_table(&name).on_conflict(OnConflict::Ignore)).unwrap();
    let reader = db.connect();
    writer.write(&messages([Order::new(1, "first", 1), Order::new(2, "first", 2)])).await.unwrap();
    writer.write(&messages([Order::new(1, "second", 10), Order::new(3, "second", 30)])).await.unwrap();
    assert_eq!(
        read_orders(&reader, &name),
        vec![Order::new(1, "first", 1), Order::new(2, "first", 2), Order::new(3, "second", 30)]
    );
    // Within one batch too: the first of a key stays.
    writer.write(&messages([Order::new(4, "first", 4), Order::new(4, "second", 40)])).await.unwrap();
    assert_eq!(read_orders(&reader, &name)[3], Order::new(4, "first", 4));
}

#[tokio::test]
async fn failed_messages_are_skipped() {
    let db = TempDb::new("failed_skipped");
    let name = table_name("failed_skipped");
    let writer = SqliteWriter::open(db.path(), orders_table(&name)).unwrap();
    let mut batch = messages((0..10).map(|id| Order::new(id, "x", id)));
    for message in batch.iter_mut().filter(|m| m.data().id % 3 == 0) {
        message.fail("bad order");
    }
    assert_eq!(writer.write(&batch).await.unwrap(), 6);
    let ids: Vec<i64> = read_orders(&db.connect(), &name).into_iter().map(|o| o.id).collect();
    assert_eq!(ids, vec![1, 2, 4, 5, 7, 8]);

    // A failed message's row is not even checked: a bad shape there does not matter.
    let mut batch = messages([vec![Value::from(100), "ok".into(), 1.into()], vec![Value::from(101)]]);
    batch[1].fail("broken");
    assert_eq!(writer.write(&batch).await.unwrap(), 1);

    // Only failed messages: nothing to write.
    let mut batch = messages([Order::new(200, "x", 1)]);
    batch[0].fail("no");
    assert_eq!(writer.write(&batch).await.unwrap(), 0);
    assert_eq!(writer.write::<Order>(&[]).await.unwrap(), 0);
    assert_eq!(writer.count().await.unwrap(), 7);
}

fn read_everything(connection: &Connection, table: &str) -> Vec<Everything> {
    let mut statement = connection
        .prepare(&format!("SELECT id, big, double, text, bytes, flag FROM {table} ORDER BY id"))
        .unwrap();
    statement
        .query_map([], |row| {
            Ok(Everything {
                id: row.get(0)?,
                big: row.get(1)?,
                double: row.get(2)?,
                text: row.get(3)?,
                bytes: row.get(4)?,
                flag: row.get(5)?,
            })
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[tokio::test]
async fn every_column_type_and_null_round_trips() {
    let db = TempDb::new("round_trip");
    let name = table_name("round_trip");
    let writer = SqliteWriter::open(db.path(), everything_table(&name)).unwrap();
    let rows = everything_rows("line\nbreak\ttab\u{0}nul");
    assert_eq!(writer.write(&messages(rows.clone())).await.unwrap(), rows.len());
    let reader = db.connect();
    let mut expected = rows;
    expected.sort_by_key(|row| row.id);
    assert_eq!(read_everything(&reader, &name), expected);

    // Stored with the column's type, NULLs as NULL.
    let types: Vec<(String, String, String, String, String)> = reader
        .prepare(&format!(
            "SELECT typeof(big), typeof(double), typeof(text), typeof(bytes), typeof(flag) FROM {name} WHERE id = 1 OR id = 4 ORDER BY id"
        ))
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let owned = |t: [&str; 5]| (t[0].into(), t[1].into(), t[2].into(), t[3].into(), t[4].into());
    assert_eq!(
        types,
        vec![
            owned(["integer", "real", "text", "blob", "integer"]),
            owned(["null", "null", "null", "null", "null"])
        ]
    );

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
    let row = &read_everything(&reader, &name)[5];
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
}

#[tokio::test]
async fn the_table_survives_reopening() {
    let db = TempDb::new("reopen");
    let name = table_name("reopen");
    {
        let writer = SqliteWriter::open(db.path(), orders_table(&name)).unwrap();
        writer.write(&messages([Order::new(1, "ann", 100)])).await.unwrap();
    }
    // CREATE TABLE IF NOT EXISTS: opening again keeps the rows.
    let writer = SqliteWriter::open(db.path(), orders_table(&name)).unwrap();
    assert_eq!(writer.count().await.unwrap(), 1);
    writer.write(&messages([Order::new(2, "bob", 200)])).await.unwrap();
    assert_eq!(read_orders(&db.connect(), &name).len(), 2);
}

#[test]
fn table_validation_names_the_option_and_the_rule() {
    let id = || Table::new("t").column("id", ColumnType::BigInt);
    let cases: Vec<(Table, &str)> = vec![
        (
            Table::new("bad name").column("id", ColumnType::BigInt).key(["id"]),
            r#"table.name ("bad name") must be a plain SQL identifier"#,
        ),
        (
            Table::new("").column("id", ColumnType::BigInt).key(["id"]),
            r#"table.name ("") must be a plain SQL identifier"#,
        ),
        (
            Table::new("1orders").column("id", ColumnType::BigInt).key(["id"]),
            r#"table.name ("1orders") must be a plain SQL identifier"#,
        ),
        (
            Table::new("t;drop").column("id", ColumnType::BigInt).key(["id"]),
            r#"table.name ("t;drop") must be a plain SQL identifier"#,
        ),
        (
            Table::new("tablé").column("id", ColumnType::BigInt).key(["id"]),
            r#"table.name ("tablé") must be a plain SQL identifier"#,
        ),
        (Table::new("t").key(["id"]), "table.columns (none) must name at least one column"),
        (Table::new("t"), "table.columns (none) must name at least one column"),
        (
            id().column("a-b", ColumnType::Text).key(["id"]),
            r#"table.column ("a-b") must be a plain SQL identifier"#,
        ),
        (
            id().column("", ColumnType::Text).key(["id"]),
            r#"table.column ("") must be a plain SQL identifier"#,
        ),
        (id().column("id", ColumnType::Text).key(["id"]), r#"table.column ("id") must not repeat a column"#),
        (id().key(["nope"]), r#"table.key ("nope") must be one of the table's columns"#),
        (id().key(["id", "Id"]), r#"table.key ("Id") must be one of the table's columns"#),
        (id(), "table.key (none) is needed for on_conflict Update (or use OnConflict::Fail)"),
        (
            id().on_conflict(OnConflict::Update),
            "table.key (none) is needed for on_conflict Update (or use OnConflict::Fail)",
        ),
        (
            id().on_conflict(OnConflict::Ignore),
            "table.key (none) is needed for on_conflict Ignore (or use OnConflict::Fail)",
        ),
    ];
    for (table, expected) in cases {
        let error = table.validate().unwrap_err();
        assert!(matches!(error, Error::InvalidOption { .. }), "{error:?}");
        assert_eq!(error.to_string(), expected);
        // The writer refuses the table with the same error.
        let error = SqliteWriter::in_memory(table).unwrap_err();
        assert!(matches!(error, Error::InvalidOption { .. }), "{error:?}");
        assert_eq!(error.to_string(), expected);
    }
    // Valid: no key with OnConflict::Fail, underscores and digits.
    id().on_conflict(OnConflict::Fail).validate().unwrap();
    Table::new("_orders_2024").column("_c1", ColumnType::Bool).key(["_c1"]).validate().unwrap();
}

#[tokio::test]
async fn a_table_without_key_appends_rows() {
    let name = table_name("no_key");
    let table = Table::new(&name).column("v", ColumnType::BigInt).on_conflict(OnConflict::Fail);
    let writer = SqliteWriter::in_memory(table).unwrap();
    let batch = messages([vec![Value::from(1)], vec![Value::from(1)]]);
    writer.write(&batch).await.unwrap();
    writer.write(&batch).await.unwrap();
    assert_eq!(writer.count().await.unwrap(), 4);
}

#[tokio::test]
async fn a_missing_directory_is_a_database_error() {
    let path = std::env::temp_dir().join(format!("weir_no_such_dir_{}", std::process::id())).join("x.db");
    let error = SqliteWriter::open(&path, orders_table("t")).unwrap_err();
    assert_database_error("sqlite", &error, "unable to open database file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_writes_every_order_once() {
    const N: i64 = 5_000;
    let db = TempDb::new("pipeline");
    let name = table_name("pipeline");
    let writer = SqliteWriter::open(db.path(), orders_table(&name)).unwrap();
    let (producer, acks) = MemoryProducer::from_iter((0..N).map(order));
    let pipeline = Pipeline::builder("sqlite-orders", Store::new(writer.clone(), Duration::ZERO))
        .producer(producer, ProducerOptions::new())
        .processors(ProcessorOptions::new().concurrency(2).max_demand(50))
        .batcher("default", BatcherOptions::new().batch_size(100).concurrency(2))
        .start()
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(30), pipeline.wait()).await.unwrap().unwrap();

    assert_eq!((acks.successful(), acks.failed()), (N as usize, 0));
    assert_eq!(writer.count().await.unwrap(), N as u64);
    let stored = read_orders(&db.connect(), &name);
    assert_eq!(stored, (0..N).map(order).collect::<Vec<_>>());
    assert_eq!(pipeline.handler().errors.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_failing_while_the_table_is_away_are_retried() {
    const N: i64 = 5_000;
    let db = TempDb::new("away");
    let name = table_name("away");
    let writer = SqliteWriter::open(db.path(), orders_table(&name)).unwrap();
    let (producer, acks) = MemoryProducer::from_iter((0..N).map(order));
    let pipeline = Pipeline::builder("sqlite-locked", Store::new(writer.clone(), Duration::from_millis(5)))
        .producer(producer, ProducerOptions::new())
        .processors(ProcessorOptions::new().concurrency(2))
        .batcher("default", BatcherOptions::new().batch_size(100))
        .retry(RetryPolicy::new(10).backoff(Duration::from_millis(50), Duration::from_millis(500)))
        .start()
        .await
        .unwrap();

    // Another connection renames the table away mid-run (a lock would only make the writer
    // wait: rusqlite's busy timeout): the writer's batches fail ("no such table"), then are
    // retried once the table is back.
    tokio::time::timeout(Duration::from_secs(10), acks.wait_for(1_000)).await.unwrap();
    let other = db.connect();
    other.execute_batch(&format!("ALTER TABLE {name} RENAME TO {name}_away")).unwrap();
    let handler = pipeline.handler().clone();
    let deadline = Instant::now() + Duration::from_secs(5);
    while handler.errors.load(Ordering::SeqCst) < 2 {
        assert!(Instant::now() < deadline, "no batch failed while the table was away");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    other.execute_batch(&format!("ALTER TABLE {name}_away RENAME TO {name}")).unwrap();

    tokio::time::timeout(Duration::from_secs(30), pipeline.wait()).await.unwrap().unwrap();
    assert_eq!((acks.successful(), acks.failed()), (N as usize, 0));
    let ids: HashSet<i64> = read_orders(&other, &name).into_iter().map(|o| o.id).collect();
    assert_eq!(ids, (0..N).collect());
    assert!(handler.errors.load(Ordering::SeqCst) >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_message_is_acknowledged_without_its_row() {
    const N: i64 = 3_000;
    let db = TempDb::new("no_ack_without_row");
    let name = table_name("no_ack_without_row");
    let writer = SqliteWriter::open(db.path(), orders_table(&name)).unwrap();
    let (producer, acks) = MemoryProducer::from_iter((0..N).map(order));
    // Two tries only: batches failing while the table is away fail for good.
    let pipeline = Pipeline::builder("sqlite-give-up", Store::new(writer.clone(), Duration::from_millis(5)))
        .producer(producer, ProducerOptions::new())
        .batcher("default", BatcherOptions::new().batch_size(100))
        .retry(RetryPolicy::new(2).backoff(Duration::from_millis(5), Duration::from_millis(10)))
        .start()
        .await
        .unwrap();

    tokio::time::timeout(Duration::from_secs(10), acks.wait_for(500)).await.unwrap();
    let other = db.connect();
    other.execute_batch(&format!("ALTER TABLE {name} RENAME TO {name}_away")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while acks.failed() < 200 {
        assert!(Instant::now() < deadline, "no batch failed for good while the table was away");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    other.execute_batch(&format!("ALTER TABLE {name}_away RENAME TO {name}")).unwrap();
    tokio::time::timeout(Duration::from_secs(30), pipeline.wait()).await.unwrap().unwrap();

    assert_eq!(acks.total(), N as usize);
    let failed: HashSet<i64> =
        acks.failures().into_iter().map(|(tag, _)| i64::try_from(tag).unwrap()).collect();
    assert_eq!(failed.len(), acks.failed());
    let acknowledged: HashSet<i64> = (0..N).filter(|id| !failed.contains(id)).collect();
    let stored: HashSet<i64> = read_orders(&other, &name).into_iter().map(|o| o.id).collect();
    // Exactly the successfully acknowledged orders are in the table: a failed batch wrote
    // nothing, a successful one everything.
    assert_eq!(stored, acknowledged);
    assert!(acks.successful() > 0 && acks.failed() > 0);
}
