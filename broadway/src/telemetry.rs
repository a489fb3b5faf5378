//! Metrics (through the `metrics` facade) and `tracing` spans of a pipeline's stages.
//!
//! Counters and histograms, labelled `pipeline` and `stage` (and `batcher`, `trigger`):
//!
//! | name | what |
//! |---|---|
//! | `weir_broadway_messages_total` | messages a producer emitted or a processor/batch processor handled |
//! | `weir_broadway_failed_messages_total` | messages that failed in a stage |
//! | `weir_broadway_acked_messages_total` (+ `status`: `successful`/`failed`) | acknowledgements a stage made |
//! | `weir_broadway_batches_total` (+ `trigger`) | batches a batcher closed, by what closed them |
//! | `weir_broadway_batch_size` | histogram of batch sizes |
//! | `weir_broadway_callback_seconds` (+ `callback`) | histogram of callback durations per chunk or batch |
//!
//! Handles are registered once per stage, so a recorder costs an atomic add per chunk.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use metrics::{counter, histogram, Counter, Histogram, Label};

use crate::acknowledger::Settlement;
use crate::batch_info::BatchTrigger;
use crate::message::Message;

fn with(labels: &[Label], key: &'static str, value: &'static str) -> Vec<Label> {
    let mut all = labels.to_vec();
    all.push(Label::new(key, value));
    all
}

/// The metric handles of one stage.
#[derive(Clone)]
pub(crate) struct StageMetrics {
    messages: Counter,
    failed: Counter,
    acked_ok: Counter,
    acked_failed: Counter,
    callback: Histogram,
    /// Messages producers emitted and stages have not settled yet, pipeline-wide.
    in_flight: Arc<AtomicI64>,
}

impl StageMetrics {
    pub(crate) fn new(
        pipeline: &Arc<str>,
        stage: &str,
        callback: &'static str,
        in_flight: Arc<AtomicI64>,
    ) -> Self {
        let labels = [Label::new("pipeline", pipeline.to_string()), Label::new("stage", stage.to_owned())];
        StageMetrics {
            messages: counter!("weir_broadway_messages_total", labels.to_vec()),
            failed: counter!("weir_broadway_failed_messages_total", labels.to_vec()),
            acked_ok: counter!("weir_broadway_acked_messages_total", with(&labels, "status", "successful")),
            acked_failed: counter!("weir_broadway_acked_messages_total", with(&labels, "status", "failed")),
            callback: histogram!("weir_broadway_callback_seconds", with(&labels, "callback", callback)),
            in_flight,
        }
    }

    /// A producer emitted `messages`: they count as in flight until they are settled.
    pub(crate) fn emitted<D>(&self, messages: &mut [Message<D>]) {
        self.messages(messages.len());
        let tracked =
            messages.iter_mut().map(|m| m.envelope.ack.track(&self.in_flight)).filter(|t| *t).count();
        self.in_flight.fetch_add(tracked as i64, Ordering::Relaxed);
    }

    pub(crate) fn messages(&self, n: usize) {
        self.messages.increment(n as u64);
    }

    pub(crate) fn failed(&self, n: usize) {
        if n > 0 {
            self.failed.increment(n as u64);
        }
    }

    pub(crate) fn callback(&self, elapsed: Duration) {
        self.callback.record(elapsed.as_secs_f64());
    }

    /// Sends a settlement to its acknowledgers and counts it.
    pub(crate) fn settle(&self, settlement: Settlement) {
        if settlement.successful > 0 {
            self.acked_ok.increment(settlement.successful as u64);
        }
        if settlement.failed > 0 {
            self.acked_failed.increment(settlement.failed as u64);
        }
        // Takes the settled messages off `in_flight`.
        settlement.finish();
    }
}

/// The metric handles of one batcher.
#[derive(Clone)]
pub(crate) struct BatcherMetrics {
    batches: [Counter; 4],
    size: Histogram,
}

impl BatcherMetrics {
    pub(crate) fn new(pipeline: &Arc<str>, batcher: &str) -> Self {
        let labels =
            [Label::new("pipeline", pipeline.to_string()), Label::new("batcher", batcher.to_owned())];
        let by = |trigger: BatchTrigger| {
            counter!("weir_broadway_batches_total", with(&labels, "trigger", trigger.as_str()))
        };
        BatcherMetrics {
            batches: [
                by(BatchTrigger::Size),
                by(BatchTrigger::Timeout),
                by(BatchTrigger::Flush),
                by(BatchTrigger::Drain),
            ],
            size: histogram!("weir_broadway_batch_size", labels.to_vec()),
        }
    }

    pub(crate) fn batch(&self, trigger: BatchTrigger, size: usize) {
        let i = match trigger {
            BatchTrigger::Size => 0,
            BatchTrigger::Timeout => 1,
            BatchTrigger::Flush => 2,
            BatchTrigger::Drain => 3,
        };
        self.batches[i].increment(1);
        #[allow(clippy::cast_precision_loss)] // batch sizes are far below 2^52
        self.size.record(size as f64);
    }
}
