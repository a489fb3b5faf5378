//! Flows give what the same computation gives sequentially (order aside).

use std::collections::HashMap;

use proptest::prelude::*;
use weir_flow::{Error, Flow, Partition};

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mappers_fuse_and_give_the_sequential_result() -> Result<(), Error> {
    let got: Vec<u64> = Flow::from_enumerable(0..1000u64)
        .map(|x| x * 3)
        .filter(|x| x % 2 == 0)
        .reject(|x| x % 5 == 0)
        .filter_map(|x| (x < 2500).then_some(x + 1))
        .flat_map(|x| [x, x])
        .inspect(|_| {})
        .collect()
        .await?;
    let expected: Vec<u64> = (0..1000u64)
        .map(|x| x * 3)
        .filter(|x| x % 2 == 0)
        .filter(|x| x % 5 != 0)
        .filter_map(|x| (x < 2500).then_some(x + 1))
        .flat_map(|x| [x, x])
        .collect();
    assert_eq!(sorted(got), sorted(expected));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_by_key_then_reduce_counts_like_a_hash_map() -> Result<(), Error> {
    let words: Vec<String> = (0..2000).map(|i| format!("w{}", (i * 7919) % 37)).collect();
    let got: HashMap<String, usize> = Flow::from_enumerable(words.clone())
        .partition(Partition::new().stages(3).key(|w: &String| w.clone()))
        .reduce(HashMap::new, |w, mut acc: HashMap<String, usize>| {
            *acc.entry(w).or_default() += 1;
            acc
        })
        .collect()
        .await?;
    let mut expected: HashMap<String, usize> = HashMap::new();
    for w in words {
        *expected.entry(w).or_default() += 1;
    }
    assert_eq!(got, expected);
    Ok(())
}

/// Events that are not `Hash` (a float inside) partition by a key that is; each key's
/// events meet in one stage, so each stage's per-key totals are the whole totals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_without_hash_partition_by_a_key() -> Result<(), Error> {
    #[derive(Debug, Clone, Copy, PartialEq)]
    struct Order {
        customer: u32,
        amount: f64,
    }
    let orders: Vec<Order> =
        (0..3000).map(|i| Order { customer: i % 23, amount: f64::from(i % 7) * 0.5 }).collect();
    let per_stage: Vec<HashMap<u32, f64>> = Flow::from_enumerable(orders.clone())
        .partition(Partition::new().stages(3).key(|o: &Order| o.customer))
        .reduce(HashMap::new, |o: Order, mut totals: HashMap<u32, f64>| {
            *totals.entry(o.customer).or_default() += o.amount;
            totals
        })
        .emit(weir_flow::emit::State)
        .collect()
        .await?;
    assert_eq!(per_stage.len(), 3);
    let mut seen = HashMap::new();
    for (stage, totals) in per_stage.iter().enumerate() {
        for (customer, total) in totals {
            assert_eq!(seen.insert(*customer, stage), None, "customer {customer} in two stages");
            let expected: f64 = orders.iter().filter(|o| o.customer == *customer).map(|o| o.amount).sum();
            assert!((total - expected).abs() < 1e-9, "customer {customer}: {total} != {expected}");
        }
    }
    assert_eq!(seen.len(), 23);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_alone_keeps_every_event() -> Result<(), Error> {
    let got: Vec<u64> = Flow::from_enumerable(0..2000u64)
        .partition(Partition::new().stages(3).key(|x: &u64| *x))
        .collect()
        .await?;
    assert_eq!(sorted(got), (0..2000).collect::<Vec<_>>());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reduce_without_partition_reduces_per_stage() -> Result<(), Error> {
    let got: Vec<u64> = Flow::from_enumerable(0..2000u64)
        .stages(2)
        .reduce(|| vec![0u64], |x, acc: Vec<u64>| vec![acc[0] + x])
        .collect()
        .await?;
    assert_eq!(got.iter().sum::<u64>(), (0..2000).sum::<u64>());
    Ok(())
}

#[tokio::test]
async fn a_reducing_layer_pulls_large_batches_unless_max_demand_is_chosen() -> Result<(), Error> {
    // `map_batch` sees each batch a stage pulls from the iterator.
    let batches = |flow: Flow<u32>| {
        flow.stages(1)
            .map_batch(|chunk: Vec<u32>| vec![chunk.len()])
            .reduce(Vec::new, |n, mut sizes: Vec<usize>| {
                sizes.push(n);
                sizes
            })
            .emit(weir_flow::emit::State)
            .collect::<Vec<Vec<usize>>>()
    };
    // By default a reducing layer pulls at least 4096 items at a time (it emits per window).
    assert_eq!(batches(Flow::from_enumerable(0..10_000u32)).await?, vec![vec![4096, 4096, 1808]]);
    // A chosen max_demand is kept to: coarse items (say, large text chunks) spread over stages.
    assert_eq!(batches(Flow::from_enumerable(0..10u32).max_demand(4)).await?, vec![vec![2, 2, 2, 2, 2]]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_sources_are_read_in_parallel_and_all_consumed() -> Result<(), Error> {
    let got: Vec<u32> =
        Flow::from_enumerables(vec![0..100u32, 100..250, 250..251]).map(|x| x + 1).collect().await?;
    assert_eq!(sorted(got), (1..=251).collect::<Vec<_>>());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_stream_and_from_stages_feed_a_flow() -> Result<(), Error> {
    use futures::StreamExt;
    let source = futures::stream::iter(0..300u32).then(|x| async move { x * 2 });
    let got: Vec<u32> = Flow::from_stream(source).collect().await?;
    assert_eq!(sorted(got), (0..300).map(|x| x * 2).collect::<Vec<_>>());

    let producer =
        weir_core::start_producer(weir_core::from_enumerable(0..50u32), weir_core::ProducerOptions::new())?;
    let got: Vec<u32> = Flow::from_stages([producer]).stages(1).collect().await?;
    assert_eq!(got, (0..50).collect::<Vec<_>>(), "one stage keeps the order");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_function_fails_the_flow_instead_of_hanging() {
    let result = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        Flow::from_enumerable(0..1000u32)
            .map(|x| if x == 500 { panic!("bad event {x}") } else { x })
            .partition(Partition::new().stages(2))
            .collect::<Vec<_>>(),
    )
    .await
    .expect("the flow hangs");
    match result {
        Err(Error::Failed(reason)) => {
            let message = reason.to_string();
            assert!(message.contains("map panicked: bad event 500"), "names the operation: {message}");
        }
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[tokio::test]
async fn zero_stages_is_an_error_naming_the_option() {
    let err = Flow::from_enumerable(0..3u8).partition(Partition::new().stages(0)).run().await.unwrap_err();
    assert_eq!(err.to_string(), "stages (0) must be greater than 0");
}

#[test]
fn collect_blocking_runs_from_synchronous_code() -> Result<(), Error> {
    let got: Vec<u8> = Flow::from_enumerable(0..10u8).map(|x| x * 2).collect_blocking()?;
    assert_eq!(sorted(got), (0..10).map(|x| x * 2).collect::<Vec<_>>());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn mappers_match_the_iterator_chain(
        items in proptest::collection::vec(0u32..1000, 0..500),
        stages in 1usize..4,
        max_demand in 1usize..40,
    ) {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let got: Vec<(u32, u32)> = runtime.block_on(
            Flow::from_enumerables([items.clone(), items.clone()])
                .stages(stages)
                .max_demand(max_demand)
                .flat_map(|x| [x, x / 2])
                .filter(|x| x % 3 != 0)
                .map(|x| (x % 7, x))
                .map_values(|v| v + 1)
                .collect(),
        ).expect("flow");
        let expected: Vec<(u32, u32)> = items.iter().chain(items.iter())
            .flat_map(|&x| [x, x / 2])
            .filter(|x| x % 3 != 0)
            .map(|x| (x % 7, x + 1))
            .collect();
        prop_assert_eq!(sorted(got), sorted(expected));
    }

    #[test]
    fn partition_and_reduce_match_the_sequential_sum_per_key(
        items in proptest::collection::vec((0u8..20, 0u32..1000), 0..400),
        stages in 1usize..4,
        max_demand in 1usize..50,
    ) {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let got: HashMap<u8, u64> = runtime.block_on(
            Flow::from_enumerable(items.clone())
                .max_demand(max_demand)
                .partition(Partition::new().stages(stages).max_demand(max_demand).key(|(k, _): &(u8, u32)| *k))
                .reduce(HashMap::new, |(k, v), mut acc: HashMap<u8, u64>| {
                    *acc.entry(k).or_default() += u64::from(v);
                    acc
                })
                .collect(),
        ).expect("flow");
        let mut expected: HashMap<u8, u64> = HashMap::new();
        for (k, v) in items {
            *expected.entry(k).or_default() += u64::from(v);
        }
        prop_assert_eq!(got, expected);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn group_by_key_and_take_sort_match_sequential_code(
        items in proptest::collection::vec((0u8..10, 0u32..100), 0..300),
        n in 0usize..20,
        stages in 1usize..4,
    ) {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let groups: Vec<(u8, Vec<u32>)> = runtime.block_on(
            Flow::from_enumerable(items.clone())
                .partition(Partition::new().stages(stages).key(|(k, _): &(u8, u32)| *k))
                .group_by_key()
                .collect(),
        ).expect("flow");
        let mut expected: HashMap<u8, Vec<u32>> = HashMap::new();
        for (k, v) in items.clone() {
            expected.entry(k).or_default().push(v);
        }
        let got: HashMap<u8, Vec<u32>> = groups.into_iter().map(|(k, vs)| (k, sorted(vs))).collect();
        let expected: HashMap<u8, Vec<u32>> = expected.into_iter().map(|(k, vs)| (k, sorted(vs))).collect();
        prop_assert_eq!(got, expected);

        let top: Vec<Vec<(u8, u32)>> = runtime.block_on(
            Flow::from_enumerable(items.clone()).stages(stages).take_sort(n, |a, b| b.cmp(a)).collect(),
        ).expect("flow");
        let mut all = items;
        all.sort_by(|a, b| b.cmp(a));
        all.truncate(n);
        prop_assert_eq!(top, vec![all]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_or_dropping_a_flow_stops_its_stages() -> Result<(), Error> {
    use futures::StreamExt;
    let endless = |_: ()| {
        weir_core::start_producer(
            weir_core::from_enumerable(0..u64::MAX),
            weir_core::ProducerOptions::new().demand(weir_core::DemandMode::Accumulate),
        )
    };
    let source = endless(())?;
    let task = Flow::from_stages([source.clone()]).map(|x| x + 1).start().await?;
    task.stop().await;
    tokio::time::timeout(std::time::Duration::from_secs(10), source.wait())
        .await
        .expect("the source keeps running");

    let source = endless(())?;
    let mut results = Flow::from_stages([source.clone()]).into_stream().await?;
    assert!(results.next().await.is_some());
    drop(results);
    tokio::time::timeout(std::time::Duration::from_secs(10), source.wait())
        .await
        .expect("the source keeps running");
    Ok(())
}
