//! Top-N with `take_sort`: the largest orders, and the most frequent words.
//!
//! [`Flow::take_sort`] keeps the first `n` events in a given order: each stage keeps its own
//! top `n` while the events stream through, then one stage merges those lists into one
//! sorted `Vec`. Only `n` events per stage are ever held, never the whole input.
//!
//! - The 10 largest of 200,000 generated orders, by amount (ties broken by id, so the order
//!   is total and the result exact).
//! - The 10 most frequent words of a generated text: `partition` by word and count, then
//!   `take_sort` over the `(word, count)` pairs the counting layer emits.
//!
//! Both are checked against sequential code (sort, then take) and printed.
//!
//! ```sh
//! cargo run --release -p weir-examples --bin top_n
//! ```

use std::cmp::Reverse;
use std::collections::HashMap;
use std::error::Error;

use weir_examples::random;
use weir_flow::{Flow, Partition};

/// An order; amounts in cents.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Order {
    id: u64,
    customer: u32,
    amount_cents: u64,
}

fn orders(n: u64) -> Vec<Order> {
    let mut seed = 42;
    (0..n)
        .map(|id| Order {
            id,
            customer: (random(&mut seed) % 1_000) as u32,
            // From 1.00 to 1000.00: with 200,000 orders, equal amounts occur.
            amount_cents: 100 + random(&mut seed) % 99_901,
        })
        .collect()
}

fn text(lines: usize) -> Vec<String> {
    const WORDS: [&str; 12] =
        ["flow", "stage", "event", "demand", "window", "key", "join", "merge", "sort", "take", "map", "sum"];
    let mut seed = 7;
    (0..lines)
        .map(|_| {
            // Skewed choice: a word's frequency depends on its position in WORDS.
            let words: Vec<&str> = (0..8)
                .map(|_| {
                    let a = random(&mut seed) % WORDS.len() as u64;
                    let b = random(&mut seed) % WORDS.len() as u64;
                    WORDS[a.min(b) as usize]
                })
                .collect();
            words.join(" ")
        })
        .collect()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    // 1. The 10 largest orders. `take_sort` emits one sorted Vec, at the end of the input.
    let all_orders = orders(200_000);
    let by_amount_desc = |a: &Order, b: &Order| b.amount_cents.cmp(&a.amount_cents).then(a.id.cmp(&b.id));
    let top: Vec<Vec<Order>> =
        Flow::from_enumerable(all_orders.clone()).take_sort(10, by_amount_desc).collect().await?;
    assert_eq!(top.len(), 1, "take_sort emits one Vec");
    let top = &top[0];

    let mut sequential = all_orders;
    sequential.sort_by(by_amount_desc);
    sequential.truncate(10);
    println!("the 10 largest of 200,000 orders:");
    for order in top {
        let (euros, cents) = (order.amount_cents / 100, order.amount_cents % 100);
        println!("  order {:>6}  customer {:>3}  {euros:>4}.{cents:02}", order.id, order.customer);
    }
    assert_eq!(*top, sequential, "take_sort gives the first 10 of the sorted orders");

    // 2. The 10 most frequent words: count per word after a partition, then take_sort the
    // (word, count) pairs. `.flow()` closes the counting layer with its default emission
    // (the items of its HashMap) so that take_sort can follow.
    let lines = text(20_000);
    let by_count_desc = |a: &(String, usize), b: &(String, usize)| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0));
    let top_words: Vec<Vec<(String, usize)>> = Flow::from_enumerable(lines.clone())
        .flat_map(|line: String| line.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .partition(Partition::new().key(|word: &String| word.clone()))
        .reduce(HashMap::new, |word, mut counts: HashMap<String, usize>| {
            *counts.entry(word).or_default() += 1;
            counts
        })
        .flow()
        .take_sort(10, by_count_desc)
        .collect()
        .await?;
    assert_eq!(top_words.len(), 1, "take_sort emits one Vec");
    let top_words = &top_words[0];

    let mut counts: HashMap<String, usize> = HashMap::new();
    for word in lines.iter().flat_map(|line| line.split_whitespace()) {
        *counts.entry(word.to_owned()).or_default() += 1;
    }
    let mut sequential: Vec<(String, usize)> = counts.into_iter().collect();
    sequential.sort_by_key(|(word, count)| (Reverse(*count), word.clone()));
    sequential.truncate(10);
    println!("the 10 most frequent words:");
    for (word, count) in top_words {
        println!("  {word:>7} {count}");
    }
    assert_eq!(
        *top_words, sequential,
        "take_sort after a partitioned count gives the 10 most frequent words"
    );

    println!("ok: both top-10 lists match sequential sort + take");
    Ok(())
}
