//! Telemetry: the stage names of `Pipeline::topology` and `producer_names`, and the metrics
//! counters and histograms, checked against what the test sent with a debugging recorder.
//! One test only: the recorder is global to this test binary.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use weir_broadway::memory::MemoryProducer;
use weir_broadway::{
    BatchHandler, BatchInfo, BatcherOptions, BoxError, Handler, Message, Pipeline, ProcessorOptions,
    ProducerOptions,
};

/// Sends even ids to "sql" and odd ones to "s3"; fails multiples of 13.
struct Route;

impl Handler for Route {
    type Data = u64;
    type Output = u64;

    async fn handle_message(&self, message: &mut Message<u64>) -> Result<u64, BoxError> {
        let id = *message.data();
        if id % 13 == 0 {
            message.fail("unlucky");
        }
        message.put_batcher(if id % 2 == 0 { "sql" } else { "s3" });
        Ok(id)
    }
}

impl BatchHandler for Route {
    async fn handle_batch(&self, _: &mut [Message<u64>], _: &BatchInfo) -> Result<(), BoxError> {
        Ok(())
    }
}

/// One metric of a snapshot: name, labels, value.
type Metric = (String, Vec<(String, String)>, DebugValue);

fn label<'a>(labels: &'a [(String, String)], key: &str) -> &'a str {
    labels.iter().find(|(k, _)| k == key).map_or("", |(_, v)| v.as_str())
}

/// The sum of counter `name` over the metrics whose `key` label starts with `prefix` and
/// whose other labels include `with`.
fn counter(metrics: &[Metric], name: &str, prefix: (&str, &str), with: &[(&str, &str)]) -> u64 {
    metrics
        .iter()
        .filter(|(n, labels, _)| {
            n == name
                && label(labels, prefix.0).starts_with(prefix.1)
                && with.iter().all(|(k, v)| label(labels, k) == *v)
        })
        .map(|(_, _, value)| match value {
            DebugValue::Counter(c) => *c,
            other => panic!("{name} is not a counter: {other:?}"),
        })
        .sum()
}

/// The values recorded in histogram `name` for the metrics whose `key` label is `value`.
fn histogram(metrics: &[Metric], name: &str, (key, value): (&str, &str)) -> Vec<f64> {
    let mut all: Vec<f64> = metrics
        .iter()
        .filter(|(n, labels, _)| n == name && label(labels, key) == value)
        .flat_map(|(_, _, v)| match v {
            DebugValue::Histogram(values) => values.iter().map(|x| x.into_inner()).collect::<Vec<_>>(),
            other => panic!("{name} is not a histogram: {other:?}"),
        })
        .collect();
    all.sort_by(f64::total_cmp);
    all
}

/// The sizes of the batches of `count` messages cut at `size`, in the order a histogram
/// sorts them, and how many closed by size and by timeout.
fn batches(count: u64, size: u64) -> (Vec<f64>, u64, u64) {
    let (full, rest) = (count / size, count % size);
    #[allow(clippy::cast_precision_loss)]
    let mut sizes: Vec<f64> = std::iter::repeat_n(size as f64, full as usize).collect();
    if rest > 0 {
        #[allow(clippy::cast_precision_loss)]
        sizes.insert(0, rest as f64);
    }
    (sizes, full, u64::from(rest > 0))
}

#[tokio::test(start_paused = true)]
async fn topology_names_the_stages_and_metrics_count_what_was_sent() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::set_global_recorder(recorder).unwrap();

    let (producer, queue) = MemoryProducer::<u64>::queue();
    let timeout = Duration::from_millis(500);
    let pipeline = Pipeline::builder("tel", Route)
        .producer(producer, ProducerOptions::new().concurrency(2))
        .processors(ProcessorOptions::new().concurrency(2).max_demand(10))
        .batcher("sql", BatcherOptions::new().batch_size(10).batch_timeout(timeout).concurrency(2))
        .batcher("s3", BatcherOptions::new().batch_size(7).batch_timeout(timeout))
        .start()
        .await
        .unwrap();

    let topology = pipeline.topology();
    assert_eq!(pipeline.producer_names(), ["tel.producer_0", "tel.producer_1"]);
    assert_eq!(topology.producers, pipeline.producer_names());
    assert_eq!(topology.processors, ["tel.processor_0", "tel.processor_1"]);
    assert_eq!(topology.processor_max_demand, 10);
    let names: Vec<(&str, &str, Vec<String>)> = topology
        .batchers
        .iter()
        .map(|b| (b.name.as_str(), b.stage.as_str(), b.batch_processors.clone()))
        .collect();
    assert_eq!(
        names,
        [
            (
                "sql",
                "tel.batcher_sql",
                vec!["tel.batch_processor_sql_0".into(), "tel.batch_processor_sql_1".into()]
            ),
            ("s3", "tel.batcher_s3", vec!["tel.batch_processor_s3_0".into()]),
        ]
    );
    assert_eq!((topology.batchers[0].concurrency, topology.batchers[0].batch_timeout), (2, timeout));
    assert_eq!(topology.batchers[1].batch_size, "7");
    let shown = topology.to_string();
    assert!(shown.contains("producers: tel.producer_0, tel.producer_1"), "{shown}");
    assert!(shown.contains("batcher s3: batch_size 7"), "{shown}");

    // Everything is handled at once; the partial batches close by timeout, then the queue ends.
    let n = 200u64;
    queue.push_all(0..n);
    tokio::time::sleep(timeout * 2).await;
    queue.close();
    tokio::time::timeout(Duration::from_secs(3600), pipeline.wait()).await.unwrap().unwrap();
    let acks = queue.acks();
    let failed = (0..n).filter(|id| id % 13 == 0).count() as u64;
    assert_eq!((acks.successful() as u64, acks.failed() as u64), (n - failed, failed));

    let metrics: Vec<Metric> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let (_, key) = key.into_parts();
            let labels: Vec<_> = key.labels().map(|l| (l.key().to_owned(), l.value().to_owned())).collect();
            (key.name().to_owned(), labels, value)
        })
        .filter(|(_, labels, _)| label(labels, "pipeline") == "tel")
        .collect();

    let stage = |prefix| ("stage", prefix);
    let messages = |prefix| counter(&metrics, "weir_broadway_messages_total", stage(prefix), &[]);
    assert_eq!(messages("tel.producer_"), n, "emitted");
    assert_eq!(messages("tel.processor_"), n, "handled by processors");
    assert_eq!(messages("tel.batch_processor_"), n - failed, "handled by batch processors");
    let failed_in = |prefix| counter(&metrics, "weir_broadway_failed_messages_total", stage(prefix), &[]);
    assert_eq!((failed_in("tel.processor_"), failed_in("tel.batch_processor_")), (failed, 0));
    let acked = |prefix, status| {
        counter(&metrics, "weir_broadway_acked_messages_total", stage(prefix), &[("status", status)])
    };
    assert_eq!((acked("tel.processor_", "successful"), acked("tel.processor_", "failed")), (0, failed));
    assert_eq!(acked("tel.batch_processor_", "successful"), n - failed);
    assert_eq!(acked("tel.batch_processor_", "failed"), 0);

    for (batcher, size, parity) in [("sql", 10, 0), ("s3", 7, 1)] {
        let count = (0..n).filter(|id| id % 2 == parity && id % 13 != 0).count() as u64;
        let (sizes, by_size, by_timeout) = batches(count, size);
        let closed = |trigger| {
            counter(&metrics, "weir_broadway_batches_total", ("batcher", batcher), &[("trigger", trigger)])
        };
        assert_eq!(closed("size"), by_size, "{batcher}");
        assert_eq!(closed("timeout"), by_timeout, "{batcher}");
        assert_eq!((closed("flush"), closed("drain")), (0, 0), "{batcher}");
        assert_eq!(histogram(&metrics, "weir_broadway_batch_size", ("batcher", batcher)), sizes, "{batcher}");
        let timed = metrics
            .iter()
            .filter(|(n, labels, _)| {
                n == "weir_broadway_callback_seconds"
                    && label(labels, "stage").starts_with(&format!("tel.batch_processor_{batcher}_"))
                    && label(labels, "callback") == "handle_batch"
            })
            .map(|(_, _, v)| match v {
                DebugValue::Histogram(values) => values.len(),
                _ => 0,
            })
            .sum::<usize>();
        assert_eq!(timed, sizes.len(), "one callback duration per {batcher} batch");
    }
}
