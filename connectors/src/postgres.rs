//! PostgreSQL batch writer (feature `postgres`): one multi-row insert per batch.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::Mutex;
use tokio_postgres::error::Severity;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls};
use weir_broadway::Message;

use crate::error::Error;
use crate::sql::{ColumnType, OnConflict, Row, Table, Value};

fn db(error: impl std::fmt::Display) -> Error {
    Error::Database { database: "postgres", message: error.to_string() }
}

/// A tokio-postgres error as [`Error::Database`]. Its `Display` is only the kind ("db
/// error", "error connecting to server"): the server's message, or the I/O error, is its
/// source, so the message is built from that (else every failure read "postgres: db error").
fn pg(error: &tokio_postgres::Error) -> Error {
    let message = match (error.as_db_error(), std::error::Error::source(error)) {
        (Some(server), _) => {
            let mut message =
                format!("{}: {} ({})", server.severity(), server.message(), server.code().code());
            if let Some(detail) = server.detail() {
                message.push_str("; ");
                message.push_str(detail);
            }
            message
        }
        (None, Some(source)) => format!("{error}: {source}"),
        (None, None) => error.to_string(),
    };
    Error::Database { database: "postgres", message }
}

/// Whether the connection can serve the next write after `error`: only when the server
/// reported a plain ERROR (its session goes on). After anything else (FATAL, e.g. the
/// backend was terminated; I/O; closed) it is dropped and reopened on the next write.
/// `Client::is_closed` alone is not enough: it turns true only once the connection task
/// has read the end of the stream, which may be after this write returns, so the next
/// write would fail on the dead connection too.
fn keeps_session(error: &tokio_postgres::Error) -> bool {
    error.as_db_error().is_some_and(|server| server.parsed_severity() == Some(Severity::Error))
}

/// The error of a statement, after which the connection is dropped unless its session
/// goes on (`keeps_session`), so the next call reopens it.
fn failed(slot: &mut Option<Client>, error: &tokio_postgres::Error) -> Error {
    if slot.as_ref().is_none_or(Client::is_closed) || !keeps_session(error) {
        *slot = None;
    }
    pg(error)
}

/// A key value, comparable and hashable (floats by their bits), borrowed from its row.
#[derive(PartialEq, Eq, Hash)]
enum KeyPart<'a> {
    Null,
    BigInt(i64),
    Double(u64),
    Text(&'a str),
    Bytes(&'a [u8]),
    Bool(bool),
}

impl<'a> From<&'a Value> for KeyPart<'a> {
    fn from(value: &'a Value) -> Self {
        match value {
            Value::BigInt(i) => KeyPart::BigInt(*i),
            Value::Double(x) => KeyPart::Double(x.to_bits()),
            Value::Text(s) => KeyPart::Text(s),
            Value::Bytes(b) => KeyPart::Bytes(b),
            Value::Bool(b) => KeyPart::Bool(*b),
            _ => KeyPart::Null,
        }
    }
}

/// One column of a batch, as the array `UNNEST` takes.
enum Column {
    BigInt(Vec<Option<i64>>),
    Double(Vec<Option<f64>>),
    Text(Vec<Option<String>>),
    Bytes(Vec<Option<Vec<u8>>>),
    Bool(Vec<Option<bool>>),
}

impl Column {
    fn new(kind: ColumnType, rows: usize) -> Self {
        match kind {
            ColumnType::BigInt => Column::BigInt(Vec::with_capacity(rows)),
            ColumnType::Double => Column::Double(Vec::with_capacity(rows)),
            ColumnType::Text => Column::Text(Vec::with_capacity(rows)),
            ColumnType::Bytes => Column::Bytes(Vec::with_capacity(rows)),
            ColumnType::Bool => Column::Bool(Vec::with_capacity(rows)),
        }
    }

    /// Adds a value; false if it does not fit the column's type.
    fn push(&mut self, value: Value) -> bool {
        match (self, value) {
            (Column::BigInt(c), Value::BigInt(i)) => c.push(Some(i)),
            (Column::Double(c), Value::Double(x)) => c.push(Some(x)),
            #[allow(clippy::cast_precision_loss)] // an integer given for a float column
            (Column::Double(c), Value::BigInt(i)) => c.push(Some(i as f64)),
            (Column::Text(c), Value::Text(s)) => c.push(Some(s)),
            (Column::Bytes(c), Value::Bytes(b)) => c.push(Some(b)),
            (Column::Bool(c), Value::Bool(b)) => c.push(Some(b)),
            (Column::BigInt(c), Value::Null) => c.push(None),
            (Column::Double(c), Value::Null) => c.push(None),
            (Column::Text(c), Value::Null) => c.push(None),
            (Column::Bytes(c), Value::Null) => c.push(None),
            (Column::Bool(c), Value::Null) => c.push(None),
            _ => return false,
        }
        true
    }

    fn as_param(&self) -> &(dyn ToSql + Sync) {
        match self {
            Column::BigInt(c) => c,
            Column::Double(c) => c,
            Column::Text(c) => c,
            Column::Bytes(c) => c,
            Column::Bool(c) => c,
        }
    }
}

/// Writes batches of rows into a PostgreSQL table with one statement per batch
/// (`INSERT ... SELECT * FROM UNNEST($1::int8[], $2::text[], ...) ON CONFLICT ...`), in one
/// transaction: a batch is written whole or not at all, and `handle_batch` returns the error
/// so the batch fails (and is retried per the pipeline's retry policy).
///
/// With an upsert rule, rows repeating a key within one batch are merged first (the last
/// wins), since PostgreSQL refuses to update a row twice in one statement; with an ignore
/// rule the first of them stays. A lost connection is reopened on the next write. No TLS:
/// loopback and private networks.
///
/// # Examples
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), weir_connectors::Error> {
/// use weir_connectors::postgres::PostgresWriter;
/// use weir_connectors::sql::{ColumnType, Table, Value};
///
/// let table = Table::new("orders").column("id", ColumnType::BigInt).column("cents", ColumnType::BigInt).key(["id"]);
/// let writer = PostgresWriter::connect("postgres://postgres@127.0.0.1:5432/test", table).await?;
/// writer.write_rows(vec![vec![Value::BigInt(1), Value::BigInt(100)]]).await?;
/// # Ok(()) }
/// ```
pub struct PostgresWriter {
    url: String,
    client: Mutex<Option<Client>>,
    table: Arc<Table>,
    insert: String,
}

impl std::fmt::Debug for PostgresWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresWriter").field("table", &self.table.name).finish()
    }
}

async fn open(url: &str) -> Result<Client, Error> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.map_err(|e| pg(&e))?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::warn!(%error, "postgres connection ended");
        }
    });
    Ok(client)
}

impl PostgresWriter {
    /// Connects to `url` (`postgres://user@host:port/database`) and creates the table if it
    /// is missing.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`] for an invalid table, [`Error::Database`] when PostgreSQL
    /// cannot be reached or refuses.
    pub async fn connect(url: &str, table: Table) -> Result<Self, Error> {
        table.validate()?;
        let client = open(url).await?;
        client.batch_execute(&table.create_sql(ColumnType::postgres)).await.map_err(|e| pg(&e))?;
        let arrays: Vec<String> = table
            .columns
            .iter()
            .enumerate()
            .map(|(i, (_, kind))| format!("${}::{}[]", i + 1, kind.postgres()))
            .collect();
        let insert = format!(
            "INSERT INTO {} ({}) SELECT * FROM UNNEST({}){}",
            table.name,
            table.column_names(),
            arrays.join(", "),
            table.conflict_sql()
        );
        Ok(PostgresWriter {
            url: url.to_owned(),
            client: Mutex::new(Some(client)),
            table: Arc::new(table),
            insert,
        })
    }

    /// Writes the rows of the messages that have not failed, in one transaction; returns how
    /// many rows it sent.
    ///
    /// # Errors
    ///
    /// [`Error::RowShape`] or [`Error::InvalidOption`] (a value of the wrong type) for a bad
    /// row, [`Error::Database`] when PostgreSQL fails; nothing of the batch is written then.
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
        }
        let rows = self.merge_keys(rows);
        let n = rows.len();
        let mut columns: Vec<Column> =
            self.table.columns.iter().map(|(_, kind)| Column::new(*kind, n)).collect();
        for row in rows {
            for (i, value) in row.into_iter().enumerate() {
                let Some(column) = columns.get_mut(i) else { continue };
                let shown = value.to_string();
                if !column.push(value) {
                    let (name, kind) = &self.table.columns[i];
                    return Err(Error::invalid(
                        "row value",
                        shown,
                        format!("does not fit column {name} ({kind:?})"),
                    ));
                }
            }
        }
        let params: Vec<&(dyn ToSql + Sync)> = columns.iter().map(Column::as_param).collect();
        let mut slot = self.client.lock().await;
        let client = self.connected(&mut slot).await?;
        let result = async {
            let transaction = client.transaction().await?;
            transaction.execute(&self.insert, &params).await?;
            transaction.commit().await
        }
        .await;
        result.map(|_| n).map_err(|error| failed(&mut slot, &error))
    }

    /// The connection, opened (again) if there is none or it was closed.
    async fn connected<'a>(&self, slot: &'a mut Option<Client>) -> Result<&'a mut Client, Error> {
        if slot.as_ref().is_none_or(Client::is_closed) {
            *slot = Some(open(&self.url).await?);
        }
        slot.as_mut().ok_or_else(|| db("no connection"))
    }

    /// Rows with one key once, the last of each (upserts only).
    fn merge_keys(&self, rows: Vec<Vec<Value>>) -> Vec<Vec<Value>> {
        // Only DO UPDATE refuses to touch a row twice in one statement. DO NOTHING takes
        // repeats as they come, keeping the first (as OnConflict::Ignore means, and as the
        // SQLite writer does); merging there made the last one win instead.
        if self.table.on_conflict != OnConflict::Update {
            return rows;
        }
        let key: Vec<usize> = self
            .table
            .key
            .iter()
            .filter_map(|k| self.table.columns.iter().position(|(c, _)| c == k))
            .collect();
        // Keys borrowed from the rows: no text made per row on this path.
        let mut last: HashMap<Vec<KeyPart<'_>>, usize> = HashMap::with_capacity(rows.len());
        for (i, row) in rows.iter().enumerate() {
            last.insert(key.iter().map(|k| KeyPart::from(&row[*k])).collect(), i);
        }
        if last.len() == rows.len() {
            return rows;
        }
        let mut keep: Vec<usize> = last.into_values().collect();
        keep.sort_unstable();
        let mut rows: Vec<Option<Vec<Value>>> = rows.into_iter().map(Some).collect();
        keep.into_iter().filter_map(|i| rows[i].take()).collect()
    }

    /// Deletes every row of the table (for a fresh run of a job).
    ///
    /// # Errors
    ///
    /// [`Error::Database`] when PostgreSQL fails.
    pub async fn truncate(&self) -> Result<(), Error> {
        let mut slot = self.client.lock().await;
        let client = self.connected(&mut slot).await?;
        let result = client.batch_execute(&format!("TRUNCATE {}", self.table.name)).await;
        result.map_err(|error| failed(&mut slot, &error))
    }

    /// The number of rows in the table.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] when PostgreSQL fails.
    pub async fn count(&self) -> Result<u64, Error> {
        let mut slot = self.client.lock().await;
        let client = self.connected(&mut slot).await?;
        let result = client.query_one(&format!("SELECT COUNT(*) FROM {}", self.table.name), &[]).await;
        result
            .map(|row| u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
            .map_err(|error| failed(&mut slot, &error))
    }
}
