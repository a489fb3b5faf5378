//! SQLite batch writer (feature `sqlite`, SQLite compiled in): the embedded default.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{params_from_iter, Connection, ToSql};
use weir_broadway::Message;

use crate::error::Error;
use crate::sql::{ColumnType, Row, Table, Value};

fn db(error: impl std::fmt::Display) -> Error {
    Error::Database { database: "sqlite", message: error.to_string() }
}

impl ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::BigInt(i) => ValueRef::Integer(*i),
            Value::Double(x) => ValueRef::Real(*x),
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
            Value::Bytes(b) => ValueRef::Blob(b),
            Value::Bool(b) => ValueRef::Integer(i64::from(*b)),
        }))
    }
}

/// Writes batches of rows into a SQLite table, one transaction per batch, so a batch is
/// written whole or not at all: `handle_batch` returns its error and the batch fails (and
/// is retried per the pipeline's retry policy) without a row of it in the table.
///
/// SQLite runs on a blocking thread (`spawn_blocking`); the database is opened in WAL mode.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), weir_connectors::Error> {
/// use weir_broadway::{Message, NoopAcknowledger};
/// use weir_connectors::sql::{ColumnType, Table, Value};
/// use weir_connectors::sqlite::SqliteWriter;
///
/// let table = Table::new("orders").column("id", ColumnType::BigInt).column("cents", ColumnType::BigInt).key(["id"]);
/// let writer = SqliteWriter::in_memory(table)?;
/// let batch: Vec<Message<Vec<Value>>> = (0..3)
///     .map(|i| Message::new(vec![Value::BigInt(i), Value::BigInt(i * 100)], NoopAcknowledger::new(), Default::default()))
///     .collect();
/// assert_eq!(writer.write(&batch).await?, 3);
/// assert_eq!(writer.write(&batch).await?, 3); // an upsert: the same rows again
/// assert_eq!(writer.count().await?, 3);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SqliteWriter {
    connection: Arc<Mutex<Connection>>,
    table: Arc<Table>,
    insert: Arc<str>,
}

impl std::fmt::Debug for SqliteWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteWriter").field("table", &self.table.name).finish()
    }
}

impl SqliteWriter {
    /// Opens (or creates) the database at `path` and creates the table if it is missing.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`] for an invalid table, [`Error::Database`] when SQLite fails.
    pub fn open(path: impl AsRef<Path>, table: Table) -> Result<Self, Error> {
        let connection = Connection::open(path).map_err(db)?;
        connection.pragma_update(None, "journal_mode", "WAL").map_err(db)?;
        connection.pragma_update(None, "synchronous", "NORMAL").map_err(db)?;
        Self::with_connection(connection, table)
    }

    /// A database in memory (for tests and examples).
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open).
    pub fn in_memory(table: Table) -> Result<Self, Error> {
        Self::with_connection(Connection::open_in_memory().map_err(db)?, table)
    }

    fn with_connection(connection: Connection, table: Table) -> Result<Self, Error> {
        table.validate()?;
        connection.execute_batch(&table.create_sql(ColumnType::sqlite)).map_err(db)?;
        let placeholders: Vec<String> = (1..=table.columns.len()).map(|i| format!("?{i}")).collect();
        let insert = format!(
            "INSERT INTO {} ({}) VALUES ({}){}",
            table.name,
            table.column_names(),
            placeholders.join(", "),
            table.conflict_sql()
        );
        Ok(SqliteWriter {
            connection: Arc::new(Mutex::new(connection)),
            table: Arc::new(table),
            insert: insert.into(),
        })
    }

    /// Writes the rows of the messages that have not failed, in one transaction. Returns
    /// how many rows it wrote (an upserted or ignored row counts).
    ///
    /// # Errors
    ///
    /// [`Error::RowShape`] for a row with the wrong number of values, [`Error::Database`]
    /// when SQLite fails; nothing of the batch is written then.
    pub async fn write<T: Row>(&self, messages: &[Message<T>]) -> Result<usize, Error> {
        self.write_rows(self.table.rows(messages)?).await
    }

    /// Writes rows in one transaction.
    ///
    /// # Errors
    ///
    /// As [`write`](Self::write).
    pub async fn write_rows(&self, rows: Vec<Vec<Value>>) -> Result<usize, Error> {
        for row in &rows {
            self.table.check_shape(row)?;
            // A key of one INTEGER column is SQLite's rowid: a NULL there becomes a fresh
            // rowid despite NOT NULL, writing the row under a made-up key (and a redelivered
            // message twice). Refuse it as SQLite does a NULL in any other key column.
            for (i, (column, _)) in self.table.columns.iter().enumerate() {
                if row[i] == Value::Null && self.table.key.contains(column) {
                    return Err(db(format_args!("NOT NULL constraint failed: {}.{column}", self.table.name)));
                }
            }
        }
        let writer = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut connection = writer.connection.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let transaction = connection.transaction().map_err(db)?;
            {
                let mut insert = transaction.prepare_cached(&writer.insert).map_err(db)?;
                for row in &rows {
                    insert.execute(params_from_iter(row.iter())).map_err(db)?;
                }
            }
            transaction.commit().map_err(db)?;
            Ok(rows.len())
        })
        .await
        .map_err(db)?
    }

    /// The number of rows in the table.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] when SQLite fails.
    pub async fn count(&self) -> Result<u64, Error> {
        let writer = self.clone();
        tokio::task::spawn_blocking(move || {
            let connection = writer.connection.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let sql = format!("SELECT COUNT(*) FROM {}", writer.table.name);
            connection.query_row(&sql, [], |row| row.get::<_, i64>(0)).map_err(db)
        })
        .await
        .map_err(db)?
        .map(|n| u64::try_from(n).unwrap_or(0))
    }
}
