//! Criterion bench: weir against hand-written tokio pipelines, both shapes, 1,000,000 events.
//!
//! ```text
//! cargo bench -p weir-benches --bench core
//! ```
//!
//! One group, `core`, with `weir/…` and `hand-written/…` entries for each shape, so criterion
//! reports both side by side (throughput in events). `max_demand` 1000, chunks of 500.

use criterion::{criterion_main, BenchmarkId, Criterion, Throughput};
use weir_benches::{Implementation, Params, Shape};

const EVENTS: u64 = 1_000_000;
const MAX_DEMAND: usize = 1000;

fn shape_id(shape: Shape) -> &'static str {
    match shape {
        Shape::Direct => "producer-consumer",
        Shape::Map => "producer-map-consumer",
    }
}

fn core(c: &mut Criterion) {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("building the tokio runtime");
    let params = Params::new(EVENTS, MAX_DEMAND);
    let mut group = c.benchmark_group("core");
    group.throughput(Throughput::Elements(EVENTS));
    // A weir run of 1M events takes 1-3 ms: 50 samples fit criterion's default 5 s.
    group.sample_size(50);
    for shape in Shape::ALL {
        let expected = shape.expected(params);
        for implementation in [Implementation::Weir, Implementation::Hand] {
            group.bench_function(BenchmarkId::new(implementation.label(), shape_id(shape)), |b| {
                b.iter(|| {
                    let (outcome, _) = runtime
                        .block_on(implementation.run_timed(shape, params))
                        .expect("pipeline run failed");
                    assert_eq!(outcome, expected, "checksum mismatch");
                    outcome
                });
            });
        }
    }
    group.finish();
}

/// The bench group (what `criterion_group!` would generate, with a doc comment).
fn benches() {
    let mut criterion = Criterion::default().configure_from_args();
    core(&mut criterion);
}

criterion_main!(benches);
