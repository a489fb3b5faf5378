//! PostgreSQL helpers of the connector tests: the server's URL, a client of the test's
//! own, fresh tables, reading rows back, and killing a writer's connections.

use std::collections::HashSet;

use tokio_postgres::{Client, NoTls};
use weir_broadway::Message;
use weir_connectors::postgres::PostgresWriter;
use weir_connectors::sql::Table;
use weir_connectors::Error;

use super::{Order, WriteOrders};

impl WriteOrders for PostgresWriter {
    async fn write_orders(&self, messages: &[Message<Order>]) -> Result<usize, Error> {
        self.write(messages).await
    }
}

pub(crate) fn url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// The URL with an `application_name`, so a test can find (and kill) its writer's
/// connections in `pg_stat_activity` without touching other tests'.
pub(crate) fn writer_url(application: &str) -> String {
    let url = url();
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}application_name={application}")
}

/// A table (and application) name unique to the test and the process.
pub(crate) fn unique(test: &str) -> String {
    format!("weir_{test}_{}", std::process::id())
}

/// A connection of the test's own, to look at and disturb what the writer does.
pub(crate) async fn client() -> Client {
    let (client, connection) = tokio_postgres::connect(&url(), NoTls).await.unwrap_or_else(|error| {
        panic!("PostgreSQL is needed at {} (scripts/services.sh postgres): {error}", url())
    });
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// The test's connection, with its table (and a renamed-away copy) dropped if an earlier
/// run left them.
pub(crate) async fn fresh(name: &str) -> Client {
    let client = client().await;
    client
        .batch_execute(&format!("DROP TABLE IF EXISTS {name}; DROP TABLE IF EXISTS {name}_away"))
        .await
        .unwrap();
    client
}

pub(crate) async fn drop_table(client: &Client, name: &str) {
    client
        .batch_execute(&format!("DROP TABLE IF EXISTS {name}; DROP TABLE IF EXISTS {name}_away"))
        .await
        .unwrap();
}

pub(crate) async fn connect(name: &str, table: Table) -> PostgresWriter {
    PostgresWriter::connect(&writer_url(name), table).await.unwrap()
}

pub(crate) async fn count(client: &Client, table: &str) -> i64 {
    client.query_one(&format!("SELECT COUNT(*) FROM {table}"), &[]).await.unwrap().get(0)
}

/// Kills the connections of the writer with this application name; returns how many.
pub(crate) async fn kill(client: &Client, application: &str) -> usize {
    client
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = $1 AND pid <> pg_backend_pid()",
            &[&application],
        )
        .await
        .unwrap()
        .len()
}

pub(crate) async fn read_orders(client: &Client, table: &str) -> Vec<Order> {
    client
        .query(&format!("SELECT id, customer, cents FROM {table} ORDER BY id"), &[])
        .await
        .unwrap()
        .iter()
        .map(|row| Order { id: row.get(0), customer: row.get(1), cents: row.get(2) })
        .collect()
}

pub(crate) async fn read_ids(client: &Client, table: &str) -> HashSet<i64> {
    client
        .query(&format!("SELECT id FROM {table}"), &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// Waits (at most `seconds`) until `table` holds `rows` rows.
pub(crate) async fn rows_reach(client: &Client, table: &str, rows: i64, seconds: u64) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(seconds);
    loop {
        let now = count(client, table).await;
        if now >= rows {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{table}: {now} rows after {seconds} s, waiting for {rows}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
