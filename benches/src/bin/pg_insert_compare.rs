//! Which multi-row insert `PostgresWriter` should use: one `INSERT ... SELECT * FROM
//! UNNEST(arrays) ON CONFLICT` per batch (what it does), or binary `COPY` into a temporary
//! table then `INSERT ... SELECT ... ON CONFLICT` (COPY cannot upsert by itself), each batch
//! in one transaction, on the PostgreSQL of `scripts/services.sh`.
//!
//! ```text
//! cargo run --release -p weir-benches --bin pg_insert_compare -- [--rows N] [--batch N] [--runs N]
//! ```
//!
//! Rows are four `int8` columns keyed by the first; both variants write the same rows into
//! an emptied table and the count is checked after each run. URL from `DATABASE_URL`.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use futures::pin_mut;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;
use tokio_postgres::NoTls;
use weir_benches::flow_harness::exit_code;
use weir_benches::flow_shapes::{median, runtime, Args};
use weir_benches::ingest::database_url;
use weir_broadway::BoxError;
use weir_connectors::postgres::PostgresWriter;
use weir_connectors::sql::{ColumnType, Table, Value};

const USAGE: &str = "usage: pg_insert_compare [--rows N] [--batch N] [--runs N]";
const TABLE: &str = "weir_bench_insert";

fn row(id: i64) -> [i64; 4] {
    [id, id % 10_000, 1 + (id * 7919) % 100_000, 1_767_225_600_000 + id]
}

async fn unnest(rows: i64, batch: i64) -> Result<Duration, BoxError> {
    let table = Table::new(TABLE)
        .column("id", ColumnType::BigInt)
        .column("customer", ColumnType::BigInt)
        .column("amount", ColumnType::BigInt)
        .column("ts", ColumnType::BigInt)
        .key(["id"]);
    let writer = PostgresWriter::connect(&database_url(), table).await?;
    writer.truncate().await?;
    let started = Instant::now();
    for start in (0..rows).step_by(usize::try_from(batch)?) {
        let batch: Vec<Vec<Value>> = (start..(start + batch).min(rows))
            .map(|id| row(id).iter().map(|v| Value::BigInt(*v)).collect())
            .collect();
        writer.write_rows(batch).await?;
    }
    let elapsed = started.elapsed();
    let count = writer.count().await?;
    if count != u64::try_from(rows)? {
        return Err(format!("unnest wrote {count} rows of {rows}").into());
    }
    Ok(elapsed)
}

async fn copy(rows: i64, batch: i64) -> Result<Duration, BoxError> {
    let (mut client, connection) = tokio_postgres::connect(&database_url(), NoTls).await?;
    tokio::spawn(connection);
    client.batch_execute(&format!("TRUNCATE {TABLE}")).await?;
    client
        .batch_execute(&format!(
            "CREATE TEMP TABLE staging (LIKE {TABLE} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        ))
        .await?;
    let upsert = format!(
        "INSERT INTO {TABLE} SELECT * FROM staging ON CONFLICT (id) DO UPDATE SET \
         customer = excluded.customer, amount = excluded.amount, ts = excluded.ts"
    );
    let types = [Type::INT8, Type::INT8, Type::INT8, Type::INT8];
    let started = Instant::now();
    for start in (0..rows).step_by(usize::try_from(batch)?) {
        let transaction = client.transaction().await?;
        let sink = transaction.copy_in("COPY staging (id, customer, amount, ts) FROM STDIN BINARY").await?;
        let writer = BinaryCopyInWriter::new(sink, &types);
        pin_mut!(writer);
        for id in start..(start + batch).min(rows) {
            let [a, b, c, d] = row(id);
            writer.as_mut().write(&[&a, &b, &c, &d]).await?;
        }
        writer.finish().await?;
        transaction.execute(&upsert, &[]).await?;
        transaction.commit().await?;
    }
    let elapsed = started.elapsed();
    let count: i64 = client.query_one(&format!("SELECT COUNT(*) FROM {TABLE}"), &[]).await?.get(0);
    if count != rows {
        return Err(format!("copy wrote {count} rows of {rows}").into());
    }
    Ok(elapsed)
}

fn run() -> Result<bool, String> {
    let args = Args::from_env();
    args.only_names(&["rows", "batch", "runs"])?;
    let rows = i64::try_from(args.number("rows", 200_000)?).map_err(|e| e.to_string())?;
    let batch = i64::try_from(args.number("batch", 500)?).map_err(|e| e.to_string())?;
    let runs = args.number("runs", 5)?;
    let runtime = runtime().map_err(|e| e.to_string())?;
    println!(
        "rows {rows}  batch {batch}  runs {runs}  (4 int8 columns, upsert on id, one transaction per batch)"
    );
    let mut times = [Vec::new(), Vec::new()];
    for run in 1..=runs {
        for (i, label) in ["unnest", "copy"].into_iter().enumerate() {
            let elapsed = match i {
                0 => runtime.block_on(unnest(rows, batch)),
                _ => runtime.block_on(copy(rows, batch)),
            }
            .map_err(|e| format!("{label}: {e}"))?;
            println!(
                "run {run}  {label:<7} {:>8.1} ms  {:>9.0} rows/s",
                elapsed.as_secs_f64() * 1e3,
                rows as f64 / elapsed.as_secs_f64()
            );
            times[i].push(elapsed);
        }
    }
    let rate = |t: Duration| rows as f64 / t.as_secs_f64();
    let (u, c) = (median(&times[0]), median(&times[1]));
    println!();
    println!(
        "median  unnest {:.0} rows/s  copy {:.0} rows/s  copy / unnest {:.2}x",
        rate(u),
        rate(c),
        rate(c) / rate(u)
    );
    Ok(true)
}

fn main() -> ExitCode {
    exit_code(run(), USAGE)
}
