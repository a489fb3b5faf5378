//! Joining customers and their orders with `Flow::bounded_join`.
//!
//! Both flows are partitioned by customer id into the same stages, so a customer and its
//! orders meet in one stage. A match is emitted as soon as both halves are in; once both
//! inputs end, the outer modes emit what never matched. Both inputs are held in memory, so
//! they must be bounded (for unbounded inputs, see `Flow::window_join`).
//!
//! - [`JoinMode::Inner`]: one row per (customer, order) pair; orders of unknown customers
//!   and customers without orders are left out.
//! - [`JoinMode::LeftOuter`]: the same, plus each customer without orders (with `None`).
//!
//! Each result is checked against a sequential join (a `HashMap` of orders by customer).
//!
//! ```sh
//! cargo run --release -p weir-examples --bin join
//! ```

use std::collections::HashMap;
use std::error::Error;

use weir_examples::random;
use weir_flow::{Flow, JoinMode};

#[derive(Debug, Clone)]
struct Customer {
    id: u32,
    name: String,
}

#[derive(Debug, Clone)]
struct Order {
    id: u64,
    customer_id: u32,
    amount_cents: u64,
}

/// Customers 0..500.
fn customers() -> Vec<Customer> {
    (0..500).map(|id| Customer { id, name: format!("customer-{id:03}") }).collect()
}

/// Orders of customers 0..550, except every 25th customer: so some orders have no customer
/// (ids 500 and up) and some customers have no orders.
fn orders() -> Vec<Order> {
    let mut seed = 99;
    let mut orders = Vec::new();
    while orders.len() < 20_000 {
        let customer_id = (random(&mut seed) % 550) as u32;
        if customer_id % 25 != 0 {
            let amount_cents = 100 + random(&mut seed) % 20_000;
            orders.push(Order { id: orders.len() as u64, customer_id, amount_cents });
        }
    }
    orders
}

/// A row of the join: customer id, name, and the order's id and amount if there is one.
type Row = (u32, String, Option<(u64, u64)>);

fn row(customer: &Customer, order: Option<&Order>) -> Row {
    (customer.id, customer.name.clone(), order.map(|o| (o.id, o.amount_cents)))
}

fn print<'a>(rows: impl IntoIterator<Item = &'a Row>) {
    for (id, name, order) in rows {
        match order {
            Some((order, cents)) => {
                println!("  {id:>3} {name}  order {order:>5}  {:>3}.{:02}", cents / 100, cents % 100)
            }
            None => println!("  {id:>3} {name}  no orders"),
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let (customers, orders) = (customers(), orders());

    // The join function gets `Some` for both sides of a match; in a left outer join, `None`
    // for the order of a customer without orders. (In inner and left joins the customer is
    // always there; right and full outer joins would also give `None` customers.)
    let join = |mode| {
        Flow::bounded_join(
            mode,
            Flow::from_enumerable(customers.clone()),
            Flow::from_enumerable(orders.clone()),
            |c: &Customer| c.id,
            |o: &Order| o.customer_id,
            |c: Option<&Customer>, o: Option<&Order>| c.map(|c| row(c, o)),
        )
        .filter_map(|row| row) // drop the `None` rows (only right/full outer joins make them)
        .collect::<Vec<Row>>()
    };
    let mut inner = join(JoinMode::Inner).await?;
    let mut left = join(JoinMode::LeftOuter).await?;
    inner.sort();
    left.sort();

    // The sequential join: orders by customer, then one row per customer and order.
    let mut by_customer: HashMap<u32, Vec<&Order>> = HashMap::new();
    for order in &orders {
        by_customer.entry(order.customer_id).or_default().push(order);
    }
    let mut expected_inner: Vec<Row> = Vec::new();
    let mut expected_left: Vec<Row> = Vec::new();
    for customer in &customers {
        match by_customer.get(&customer.id) {
            Some(orders) => {
                expected_inner.extend(orders.iter().map(|o| row(customer, Some(o))));
                expected_left.extend(orders.iter().map(|o| row(customer, Some(o))));
            }
            None => expected_left.push(row(customer, None)),
        }
    }
    expected_inner.sort();
    expected_left.sort();

    println!("inner join, first rows:");
    print(inner.iter().take(4));
    println!("left outer join, customers without orders:");
    let without_orders: Vec<&Row> = left.iter().filter(|(_, _, order)| order.is_none()).collect();
    print(without_orders.iter().copied().take(4));

    assert_eq!(inner, expected_inner, "the inner join matches the sequential join");
    assert_eq!(left, expected_left, "the left outer join matches the sequential join");
    let orphans = orders.iter().filter(|o| o.customer_id >= 500).count();
    assert_eq!(inner.len(), orders.len() - orphans, "every order of a known customer, once");
    assert_eq!(without_orders.len(), 20, "customers 0, 25, ..., 475 have no orders");
    println!(
        "ok: inner {} rows ({orphans} orders of unknown customers left out), left outer {} rows \
         ({} customers without orders)",
        inner.len(),
        left.len(),
        without_orders.len()
    );
    Ok(())
}
