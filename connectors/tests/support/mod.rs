//! Helpers shared by the SQL writer tests (SQLite and PostgreSQL): messages, the orders and
//! every-column-type tables and their rows, the database error check, and a pipeline
//! handler ([`Store`]) writing orders in batches.

// Each test binary compiles this module and uses only a part of it.
#![allow(dead_code)]

#[cfg(feature = "kafka")]
pub(crate) mod kafka;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
#[cfg(feature = "rabbitmq")]
pub(crate) mod rabbitmq;
#[cfg(feature = "sqs")]
pub(crate) mod sqs;

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use weir_broadway::{BatchHandler, BatchInfo, BoxError, Handler, Message, NoopAcknowledger};
use weir_connectors::sql::{ColumnType, Row, Table, Value};
use weir_connectors::Error;

/// A message carrying `data`, acknowledged to nobody.
pub(crate) fn message<T>(data: T) -> Message<T> {
    Message::new(data, NoopAcknowledger::new(), Default::default())
}

/// Messages carrying `data`, acknowledged to nobody.
pub(crate) fn messages<T>(data: impl IntoIterator<Item = T>) -> Vec<Message<T>> {
    data.into_iter().map(message).collect()
}

/// A row of the orders table.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Order {
    pub(crate) id: i64,
    pub(crate) customer: String,
    pub(crate) cents: i64,
}

impl Order {
    pub(crate) fn new(id: i64, customer: &str, cents: i64) -> Self {
        Order { id, customer: customer.to_owned(), cents }
    }
}

impl Row for Order {
    fn values(&self) -> Vec<Value> {
        vec![self.id.into(), self.customer.as_str().into(), self.cents.into()]
    }
}

/// The orders table `name`: id (the key), customer, cents.
pub(crate) fn orders_table(name: &str) -> Table {
    Table::new(name)
        .column("id", ColumnType::BigInt)
        .column("customer", ColumnType::Text)
        .column("cents", ColumnType::BigInt)
        .key(["id"])
}

/// Asserts that `error` is a database error of `database` whose message contains `contains`.
pub(crate) fn assert_database_error(database: &str, error: &Error, contains: &str) {
    match error {
        Error::Database { database: got, message } => {
            assert_eq!(*got, database);
            assert!(message.contains(contains), "{message:?} should contain {contains:?}");
            assert_eq!(error.to_string(), format!("{database}: {message}"));
        }
        other => panic!("expected Error::Database, got {other:?}"),
    }
}

/// A row of every column type, all but the key nullable.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Everything {
    pub(crate) id: i64,
    pub(crate) big: Option<i64>,
    pub(crate) double: Option<f64>,
    pub(crate) text: Option<String>,
    pub(crate) bytes: Option<Vec<u8>>,
    pub(crate) flag: Option<bool>,
}

impl Row for Everything {
    fn values(&self) -> Vec<Value> {
        vec![
            self.id.into(),
            self.big.into(),
            self.double.into(),
            self.text.clone().into(),
            self.bytes.clone().into(),
            self.flag.into(),
        ]
    }
}

/// The table `name` of [`Everything`].
pub(crate) fn everything_table(name: &str) -> Table {
    Table::new(name)
        .column("id", ColumnType::BigInt)
        .column("big", ColumnType::BigInt)
        .column("double", ColumnType::Double)
        .column("text", ColumnType::Text)
        .column("bytes", ColumnType::Bytes)
        .column("flag", ColumnType::Bool)
        .key(["id"])
}

/// Rows of [`Everything`] at the edges of each type; one has the text `odd_text` (control
/// characters: SQLite keeps a NUL, PostgreSQL refuses it).
pub(crate) fn everything_rows(odd_text: &str) -> Vec<Everything> {
    vec![
        Everything {
            id: 1,
            big: Some(42),
            double: Some(1.5),
            text: Some("hello".into()),
            bytes: Some(vec![1, 2, 3]),
            flag: Some(true),
        },
        Everything {
            id: 2,
            big: Some(i64::MIN),
            double: Some(-0.000_123_456_789),
            text: Some("héllo, wörld ✓ 'quoted' \"double\"; DROP TABLE x; --".into()),
            bytes: Some((0..=255).collect()),
            flag: Some(false),
        },
        Everything {
            id: 3,
            big: Some(i64::MAX),
            double: Some(f64::MAX),
            text: Some(String::new()),
            bytes: Some(Vec::new()),
            flag: Some(true),
        },
        Everything { id: 4, big: None, double: None, text: None, bytes: None, flag: None },
        Everything {
            id: i64::MIN,
            big: Some(0),
            double: Some(f64::MIN_POSITIVE),
            text: Some(odd_text.into()),
            bytes: Some(vec![0; 1000]),
            flag: None,
        },
    ]
}

/// A batch writer a [`Store`] writes with (each test file implements it for its writer).
pub(crate) trait WriteOrders: Send + Sync + 'static {
    /// Writes the rows of `messages` in one transaction; returns how many were written.
    fn write_orders(&self, messages: &[Message<Order>]) -> impl Future<Output = Result<usize, Error>> + Send;
}

/// A pipeline storing orders: `handle_message` passes them on, `handle_batch` writes them.
pub(crate) struct Store<W> {
    pub(crate) writer: W,
    /// Batches whose write failed.
    pub(crate) errors: AtomicUsize,
    /// A pause before each write, to make a run last long enough to disturb it.
    pub(crate) delay: Duration,
}

impl<W> Store<W> {
    pub(crate) fn new(writer: W, delay: Duration) -> Self {
        Store { writer, errors: AtomicUsize::new(0), delay }
    }
}

impl<W: WriteOrders> Handler for Store<W> {
    type Data = Order;
    type Output = Order;

    async fn handle_message(&self, message: &mut Message<Order>) -> Result<Order, BoxError> {
        Ok(message.data().clone())
    }
}

impl<W: WriteOrders> BatchHandler for Store<W> {
    async fn handle_batch(&self, rows: &mut [Message<Order>], _: &BatchInfo) -> Result<(), BoxError> {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        self.writer.write_orders(rows).await.inspect_err(|_| {
            self.errors.fetch_add(1, Ordering::SeqCst);
        })?;
        Ok(())
    }
}

/// Order `i` of a run: one of 17 customers, `10 * i` cents.
pub(crate) fn order(i: i64) -> Order {
    Order::new(i, &format!("customer-{}", i % 17), i * 10)
}
