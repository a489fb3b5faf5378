//! What the database batch writers share: the table a batch goes to, its columns, how a
//! row gives its values, and what to do on a key conflict (upserts, since at-least-once
//! delivery means a message can come twice).

use std::fmt;

use crate::error::Error;

/// The type of a column.
///
/// # Examples
///
/// ```
/// use weir_connectors::sql::ColumnType;
///
/// assert_eq!(ColumnType::BigInt.postgres(), "int8");
/// assert_eq!(ColumnType::Text.sqlite(), "TEXT");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ColumnType {
    /// A 64-bit integer.
    BigInt,
    /// A 64-bit float.
    Double,
    /// Text.
    Text,
    /// Bytes.
    Bytes,
    /// A boolean.
    Bool,
}

impl ColumnType {
    /// The PostgreSQL type.
    pub fn postgres(self) -> &'static str {
        match self {
            ColumnType::BigInt => "int8",
            ColumnType::Double => "float8",
            ColumnType::Text => "text",
            ColumnType::Bytes => "bytea",
            ColumnType::Bool => "bool",
        }
    }

    /// The SQLite type.
    pub fn sqlite(self) -> &'static str {
        match self {
            ColumnType::BigInt | ColumnType::Bool => "INTEGER",
            ColumnType::Double => "REAL",
            ColumnType::Text => "TEXT",
            ColumnType::Bytes => "BLOB",
        }
    }
}

/// One value of a row.
///
/// # Examples
///
/// ```
/// use weir_connectors::sql::Value;
///
/// assert_eq!(Value::from(7i64), Value::BigInt(7));
/// assert_eq!(Value::from(None::<String>), Value::Null);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Value {
    /// SQL `NULL`.
    Null,
    /// A 64-bit integer.
    BigInt(i64),
    /// A 64-bit float.
    Double(f64),
    /// Text.
    Text(String),
    /// Bytes.
    Bytes(Vec<u8>),
    /// A boolean.
    Bool(bool),
}

macro_rules! value_from {
    ($($t:ty => $variant:ident $(as $cast:ty)?),* $(,)?) => {$(
        impl From<$t> for Value {
            fn from(value: $t) -> Self {
                Value::$variant(value $(as $cast)?)
            }
        }
    )*};
}

value_from!(i64 => BigInt, i32 => BigInt as i64, u32 => BigInt as i64, f64 => Double, String => Text,
    Vec<u8> => Bytes, bool => Bool);

impl From<&str> for Value {
    fn from(value: &str) -> Self {
        Value::Text(value.to_owned())
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(value: Option<T>) -> Self {
        value.map_or(Value::Null, Into::into)
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => write!(f, "NULL"),
            Value::BigInt(i) => write!(f, "{i}"),
            Value::Double(x) => write!(f, "{x}"),
            Value::Text(s) => write!(f, "{s:?}"),
            Value::Bytes(b) => write!(f, "{} bytes", b.len()),
            Value::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// A value that becomes one row: its values, in the table's column order.
///
/// # Examples
///
/// ```
/// use weir_connectors::sql::{Row, Value};
///
/// struct Order { id: i64, customer: String, cents: i64 }
///
/// impl Row for Order {
///     fn values(&self) -> Vec<Value> {
///         vec![self.id.into(), self.customer.as_str().into(), self.cents.into()]
///     }
/// }
/// ```
pub trait Row {
    /// The row's values.
    fn values(&self) -> Vec<Value>;
}

impl Row for Vec<Value> {
    fn values(&self) -> Vec<Value> {
        self.clone()
    }
}

/// What an insert does when a row's key is already in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnConflict {
    /// Update the row's other columns (an upsert, the default): a message delivered twice
    /// writes the same row twice, and the table holds it once.
    #[default]
    Update,
    /// Keep the row in the table, drop the new one.
    Ignore,
    /// Fail the batch.
    Fail,
}

/// The table a writer inserts into: name, columns, key, conflict rule.
///
/// # Examples
///
/// ```
/// use weir_connectors::sql::{ColumnType, OnConflict, Table};
///
/// let orders = Table::new("orders")
///     .column("id", ColumnType::BigInt)
///     .column("customer", ColumnType::Text)
///     .column("cents", ColumnType::BigInt)
///     .key(["id"])
///     .on_conflict(OnConflict::Update);
/// assert!(orders.validate().is_ok());
/// assert_eq!(
///     orders.create_sql(ColumnType::sqlite),
///     "CREATE TABLE IF NOT EXISTS orders (id INTEGER NOT NULL, customer TEXT, cents INTEGER, PRIMARY KEY (id))"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub(crate) name: String,
    pub(crate) columns: Vec<(String, ColumnType)>,
    pub(crate) key: Vec<String>,
    pub(crate) on_conflict: OnConflict,
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Table {
    /// A table named `name`, with no columns yet.
    pub fn new(name: impl Into<String>) -> Self {
        Table { name: name.into(), columns: Vec::new(), key: Vec::new(), on_conflict: OnConflict::Update }
    }

    /// Adds a column.
    #[must_use]
    pub fn column(mut self, name: impl Into<String>, kind: ColumnType) -> Self {
        self.columns.push((name.into(), kind));
        self
    }

    /// The key columns (the primary key when the writer creates the table).
    #[must_use]
    pub fn key<S: Into<String>>(mut self, columns: impl IntoIterator<Item = S>) -> Self {
        self.key = columns.into_iter().map(Into::into).collect();
        self
    }

    /// What to do when a key is already there (default: update).
    #[must_use]
    pub fn on_conflict(mut self, rule: OnConflict) -> Self {
        self.on_conflict = rule;
        self
    }

    /// The table's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Checks names and key.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`] naming the option and the value: a name that is not a plain
    /// SQL identifier, no column, a key column that is not a column, an upsert or ignore
    /// without a key.
    pub fn validate(&self) -> Result<(), Error> {
        if !is_identifier(&self.name) {
            return Err(Error::invalid(
                "table.name",
                format!("{:?}", self.name),
                "must be a plain SQL identifier",
            ));
        }
        if self.columns.is_empty() {
            return Err(Error::invalid("table.columns", "none", "must name at least one column"));
        }
        for (i, (column, _)) in self.columns.iter().enumerate() {
            if !is_identifier(column) {
                return Err(Error::invalid(
                    "table.column",
                    format!("{column:?}"),
                    "must be a plain SQL identifier",
                ));
            }
            if self.columns[..i].iter().any(|(other, _)| other == column) {
                return Err(Error::invalid(
                    "table.column",
                    format!("{column:?}"),
                    "must not repeat a column",
                ));
            }
        }
        if let Some(missing) = self.key.iter().find(|k| !self.columns.iter().any(|(c, _)| c == *k)) {
            return Err(Error::invalid(
                "table.key",
                format!("{missing:?}"),
                "must be one of the table's columns",
            ));
        }
        if self.key.is_empty() && self.on_conflict != OnConflict::Fail {
            return Err(Error::invalid(
                "table.key",
                "none",
                format!("is needed for on_conflict {:?} (or use OnConflict::Fail)", self.on_conflict),
            ));
        }
        Ok(())
    }

    /// `CREATE TABLE IF NOT EXISTS`, with the key as primary key; `types` maps each column
    /// type to the database's (see [`ColumnType::postgres`], [`ColumnType::sqlite`]).
    pub fn create_sql(&self, types: impl Fn(ColumnType) -> &'static str) -> String {
        let mut columns: Vec<String> = self
            .columns
            .iter()
            .map(|(name, kind)| {
                let not_null = if self.key.contains(name) { " NOT NULL" } else { "" };
                format!("{name} {}{not_null}", types(*kind))
            })
            .collect();
        if !self.key.is_empty() {
            columns.push(format!("PRIMARY KEY ({})", self.key.join(", ")));
        }
        format!("CREATE TABLE IF NOT EXISTS {} ({})", self.name, columns.join(", "))
    }

    /// The `ON CONFLICT` clause of an insert (empty for [`OnConflict::Fail`]).
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) fn conflict_sql(&self) -> String {
        match self.on_conflict {
            OnConflict::Fail => String::new(),
            OnConflict::Ignore => format!(" ON CONFLICT ({}) DO NOTHING", self.key.join(", ")),
            OnConflict::Update => {
                let updates: Vec<String> = self
                    .columns
                    .iter()
                    .filter(|(c, _)| !self.key.contains(c))
                    .map(|(c, _)| format!("{c} = excluded.{c}"))
                    .collect();
                if updates.is_empty() {
                    format!(" ON CONFLICT ({}) DO NOTHING", self.key.join(", "))
                } else {
                    format!(" ON CONFLICT ({}) DO UPDATE SET {}", self.key.join(", "), updates.join(", "))
                }
            }
        }
    }

    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) fn column_names(&self) -> String {
        self.columns.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>().join(", ")
    }

    /// The rows of the messages that have not failed, checked against the columns.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) fn rows<T: Row>(
        &self,
        messages: &[weir_broadway::Message<T>],
    ) -> Result<Vec<Vec<Value>>, Error> {
        messages
            .iter()
            .filter(|m| !m.is_failed())
            .map(|m| {
                let values = m.data().values();
                self.check_shape(&values)?;
                Ok(values)
            })
            .collect()
    }

    /// [`Error::RowShape`] unless the row has one value per column. The writers'
    /// `write_rows` check it too: rows given directly skip [`rows`](Self::rows), and a short
    /// row would otherwise index past its end (PostgreSQL's key merge) or leave its column
    /// arrays of unequal lengths (UNNEST pads them with NULLs: a misaligned row written).
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) fn check_shape(&self, values: &[Value]) -> Result<(), Error> {
        if values.len() == self.columns.len() {
            Ok(())
        } else {
            Err(Error::RowShape { table: self.name.clone(), expected: self.columns.len(), got: values.len() })
        }
    }
}
