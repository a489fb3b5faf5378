//! What the source benchmarks (`ingest_compare`, `sqs_compare`, `kafka_compare`) share:
//! the ≈200-byte order messages, their parsing into a row, and the process's CPU time.

use std::time::Duration;

use weir_broadway::BoxError;
use weir_connectors::sql::{ColumnType, Row, Table, Value};

use crate::flow_shapes::median;

/// One parsed message.
pub struct Order(pub [i64; 4]);

impl Row for Order {
    fn values(&self) -> Vec<Value> {
        self.0.iter().map(|v| Value::BigInt(*v)).collect()
    }
}

/// Parses a payload into its row: id, customer, amount, timestamp.
pub fn parse(payload: &[u8]) -> Result<Order, BoxError> {
    let text = std::str::from_utf8(payload)?;
    let mut fields = text.split(',');
    let mut order = [0i64; 4];
    for slot in &mut order {
        *slot = fields.next().ok_or("missing field")?.parse()?;
    }
    Ok(Order(order))
}

/// A message of about 200 bytes.
pub fn payload(id: u64) -> Vec<u8> {
    let customer = id % 10_000;
    let amount = 1 + (id * 7919) % 100_000;
    let line = format!("{id},{customer},{amount},{}", 1_767_225_600_000 + id);
    let padding = 200usize.saturating_sub(line.len() + 1);
    format!("{line},{}", "x".repeat(padding)).into_bytes()
}

/// CPU time of the whole process so far (user + system, including threads that ended), from
/// `/proc/self/stat` (clock ticks of 10 ms); zero where unavailable.
pub fn process_cpu() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return Duration::ZERO };
    // Fields after the command name (which is in parentheses): utime and stime are the
    // 12th and 13th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    let ticks = field(11) + field(12);
    Duration::from_millis(ticks * 10)
}

/// The PostgreSQL the benchmarks write to: `DATABASE_URL`, or the loopback default.
pub fn database_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// The table `name` of [`Order`] rows: id (the key), customer, amount, ts.
pub fn orders_table(name: &str) -> Table {
    Table::new(name)
        .column("id", ColumnType::BigInt)
        .column("customer", ColumnType::BigInt)
        .column("amount", ColumnType::BigInt)
        .column("ts", ColumnType::BigInt)
        .key(["id"])
}

/// The summary of a comparison: both medians as rates of `messages` per second, and their
/// ratio (weir / hand-written).
pub fn median_line(messages: u64, weir: &[Duration], hand: &[Duration]) -> String {
    let rate = |t: Duration| messages as f64 / t.as_secs_f64();
    let (w, h) = (rate(median(weir)), rate(median(hand)));
    format!("weir {w:.0} msg/s  hand-written {h:.0} msg/s  ratio {:.2}x", w / h)
}

/// Runs `f`; returns what it returned and the CPU time of this process meanwhile.
pub fn with_cpu<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let before = process_cpu();
    let out = f();
    (out, process_cpu().saturating_sub(before))
}

/// One run's figures: the time, the rate of `messages` per second, this process's CPU time.
pub fn run_figures(messages: u64, elapsed: Duration, cpu: Duration) -> String {
    format!(
        "{:>8.1} ms  {:>8.0} msg/s  cpu of this process {:>7.1} ms",
        elapsed.as_secs_f64() * 1e3,
        messages as f64 / elapsed.as_secs_f64(),
        cpu.as_secs_f64() * 1e3
    )
}
