//! Per-customer totals per minute, with fixed event-time windows.
//!
//! Order events carry their own time (`timestamp_ms`): they arrive roughly in time order,
//! each up to `JITTER_MS` late. The flow
//!
//! 1. reads them in one stage (so each partition sees its events in the source's order, and
//!    the only disorder is the jitter),
//! 2. `partition`s them by customer, so each customer's orders meet in one stage,
//! 3. splits each stage's events into 1-minute windows of event time
//!    ([`Window::fixed`]), with an [`allowed_lateness`](Window::allowed_lateness) larger
//!    than the jitter, so that no late event is dropped,
//! 4. sums the amounts per customer in each window, and
//! 5. emits `(minute start, customer, total)` rows from `on_trigger` when the window closes
//!    ([`Trigger::is_done`]); `trigger.window` says which minute it is
//!    ([`WindowId::Fixed`]).
//!
//! With allowed lateness a window fires twice: [`Reason::Watermark`] when the watermark (the
//! latest event time the stage saw) passes the window's end, and [`Reason::Done`] when it
//! passes the end plus the lateness. This example emits only on `Done`, so each row is
//! final. The rows are checked against a sequential `BTreeMap` over all events.
//!
//! ```sh
//! cargo run --release -p weir-examples --bin customer_minutes
//! ```
//!
//! [`Reason::Watermark`]: weir_flow::Reason::Watermark
//! [`Reason::Done`]: weir_flow::Reason::Done

use std::collections::BTreeMap;
use std::error::Error;
use std::time::Duration;

use weir_examples::random;
use weir_flow::{Flow, Partition, Trigger, Window, WindowId};

const ORDERS: u64 = 100_000;
const CUSTOMERS: u64 = 40;
/// Orders are 6 ms apart on average: 100,000 orders span 10 minutes.
const SPACING_MS: u64 = 6;
/// How late an order may arrive: its time is up to this much before its place in the stream.
const JITTER_MS: u64 = 20_000;
/// More than the jitter, so no window closes before its last late order arrives.
const ALLOWED_LATENESS: Duration = Duration::from_secs(30);

/// `Hash`, as `partition` requires even when it routes by a key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Order {
    customer: u32,
    amount_cents: u64,
    timestamp_ms: u64,
}

/// Orders in stream order; times increase with the position, minus up to `JITTER_MS`.
fn orders() -> Vec<Order> {
    let mut seed = 2024;
    (0..ORDERS)
        .map(|i| Order {
            customer: (random(&mut seed) % CUSTOMERS) as u32,
            amount_cents: 100 + random(&mut seed) % 10_000,
            timestamp_ms: (JITTER_MS + i * SPACING_MS) - random(&mut seed) % JITTER_MS,
        })
        .collect()
}

/// One customer's orders in one minute.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Total {
    orders: u64,
    cents: u64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let orders = orders();

    let window =
        Window::fixed(Duration::from_secs(60), |o: &Order| o.timestamp_ms).allowed_lateness(ALLOWED_LATENESS);
    // (minute start in ms, customer) -> total.
    let rows: Vec<((u64, u32), Total)> = Flow::from_enumerable(orders.clone())
        .stages(1)
        .partition(Partition::new().key(|o: &Order| o.customer))
        .window(window)
        .reduce(BTreeMap::new, |o: Order, mut totals: BTreeMap<u32, Total>| {
            let total = totals.entry(o.customer).or_default();
            total.orders += 1;
            total.cents += o.amount_cents;
            totals
        })
        .on_trigger(|totals, trigger: &Trigger| {
            if !trigger.is_done() {
                // The watermark passed the minute, but late orders may still come: keep going.
                return (Vec::new(), totals);
            }
            let WindowId::Fixed { start, .. } = trigger.window else {
                unreachable!("fixed windows have fixed ids")
            };
            let rows: Vec<_> = totals.iter().map(|(&customer, &total)| ((start, customer), total)).collect();
            (rows, totals) // the state is dropped after the final trigger
        })
        .collect()
        .await?;

    let mut sequential: BTreeMap<(u64, u32), Total> = BTreeMap::new();
    for o in &orders {
        let minute = o.timestamp_ms - o.timestamp_ms % 60_000;
        let total = sequential.entry((minute, o.customer)).or_default();
        total.orders += 1;
        total.cents += o.amount_cents;
    }

    let counted: u64 = rows.iter().map(|(_, total)| total.orders).sum();
    assert_eq!(counted, ORDERS, "the jitter is within the allowed lateness: no order was dropped");
    let flow: BTreeMap<(u64, u32), Total> = rows.iter().copied().collect();
    assert_eq!(flow.len(), rows.len(), "one row per (minute, customer)");

    println!("minute  customer  orders      total");
    for (&(minute, customer), total) in flow.iter().filter(|((_, customer), _)| *customer < 3).take(9) {
        let (euros, cents) = (total.cents / 100, total.cents % 100);
        println!("{:>6}  {customer:>8}  {:>6}  {euros:>6}.{cents:02}", minute / 60_000, total.orders);
    }
    assert_eq!(flow, sequential, "the windowed totals match a sequential BTreeMap per (minute, customer)");
    println!(
        "ok: {} rows for {} customers over {} minutes; {counted} orders, none dropped",
        flow.len(),
        CUSTOMERS,
        flow.keys().map(|(minute, _)| minute).collect::<std::collections::BTreeSet<_>>().len(),
    );
    Ok(())
}
