//! Word count with `weir-flow`: the canonical Flow program.
//!
//! Lines are split into words by the stages of the first layer (fused `flat_map` + `map`),
//! `partition` by word sends each word to one stage of the second layer, where `reduce`
//! counts. Equal words always meet in the same stage, so every count is complete. The result
//! is checked against a sequential count of the same text.
//!
//! The second flow counts with a combiner: each first-layer stage counts its own lines
//! (`reduce` before `partition`), so only one (word, count) pair per word and stage crosses
//! the partition, and a second `reduce` adds them up. For an associative reduction like a
//! count that is rayon's fold/reduce as a flow, and about twice as fast as a partition per word
//! (`benches/RESULTS.md`: 0.82–0.98x rayon against 0.50–0.56x on 100 MB).

use std::collections::HashMap;
use std::error::Error;

use weir_flow::{Flow, Partition};

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let text: Vec<String> = (0..5_000)
        .map(|i| {
            format!(
                "the {} fox jumps over the {} dog",
                ["quick", "slow", "red"][i % 3],
                ["lazy", "happy"][i % 2]
            )
        })
        .collect();

    let counts: HashMap<String, usize> = Flow::from_enumerable(text.clone())
        .flat_map(|line: String| line.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .map(|word| word.to_lowercase())
        .partition(Partition::new().key(|word: &String| word.clone()))
        .reduce(HashMap::new, |word, mut counts: HashMap<String, usize>| {
            *counts.entry(word).or_default() += 1;
            counts
        })
        .collect()
        .await?;

    let combined: HashMap<String, usize> = Flow::from_enumerable(text.clone())
        .flat_map(|line: String| line.split_whitespace().map(str::to_lowercase).collect::<Vec<_>>())
        .reduce(HashMap::new, |word, mut counts: HashMap<String, usize>| {
            *counts.entry(word).or_default() += 1;
            counts
        })
        .partition(Partition::new().key(|(word, _): &(String, usize)| word.clone()))
        .reduce(HashMap::new, |(word, n), mut counts: HashMap<String, usize>| {
            *counts.entry(word).or_default() += n;
            counts
        })
        .collect()
        .await?;

    let mut sequential: HashMap<String, usize> = HashMap::new();
    for word in text.iter().flat_map(|line| line.split_whitespace()) {
        *sequential.entry(word.to_lowercase()).or_default() += 1;
    }
    let mut top: Vec<_> = counts.iter().collect();
    top.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    for (word, count) in top.iter().take(5) {
        println!("{word:>8} {count}");
    }
    assert_eq!(counts, sequential, "the flow counts like a sequential loop");
    assert_eq!(combined, sequential, "so does the flow with a combiner");
    println!("ok: {} distinct words, {} in all", counts.len(), counts.values().sum::<usize>());
    Ok(())
}
