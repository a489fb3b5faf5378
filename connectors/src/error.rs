//! Errors of `weir-connectors`.

/// Errors of connectors: invalid options, and what the source or sink reported.
///
/// # Examples
///
/// ```
/// use weir_connectors::sql::{ColumnType, Table};
///
/// let err = Table::new("orders").validate().unwrap_err();
/// assert_eq!(err.to_string(), "table.columns (none) must name at least one column");
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An option has a value outside its valid range.
    #[error("{option} ({value}) {rule}")]
    InvalidOption {
        /// The option, as `section.option`.
        option: &'static str,
        /// The rejected value.
        value: String,
        /// The rule the value breaks.
        rule: String,
    },
    /// A row did not have one value per column.
    #[error("row has {got} values, table {table} has {expected} columns")]
    RowShape {
        /// The table.
        table: String,
        /// Its columns.
        expected: usize,
        /// The row's values.
        got: usize,
    },
    /// The database reported an error (the batch was not written).
    #[error("{database}: {message}")]
    Database {
        /// `sqlite` or `postgres`.
        database: &'static str,
        /// What it said.
        message: String,
    },
}

impl Error {
    pub(crate) fn invalid(
        option: &'static str,
        value: impl std::fmt::Display,
        rule: impl Into<String>,
    ) -> Self {
        Error::InvalidOption { option, value: value.to_string(), rule: rule.into() }
    }

    /// Checks that each of `names` (metadata, attributes...) is one of `known`.
    #[cfg(any(feature = "rabbitmq", feature = "sqs", feature = "kafka"))]
    pub(crate) fn check_names(option: &'static str, names: &[String], known: &[&str]) -> Result<(), Self> {
        match names.iter().find(|name| !known.contains(&name.as_str())) {
            Some(unknown) => Err(Error::invalid(
                option,
                format!("{unknown:?}"),
                format!("must be one of {}", known.join(", ")),
            )),
            None => Ok(()),
        }
    }
}
