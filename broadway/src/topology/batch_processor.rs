//! Batch processors: run `handle_batch`, retry failed messages, and acknowledge.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;
use tracing::Instrument;
use weir_core::{panic_message, AskMode, BoxError, Consumer, Context, ExitReason, SubscriptionId};

use crate::acknowledger::Settlement;
use crate::handler::BatchHandler;
use crate::message::Message;
use crate::retry::RetryPolicy;
use crate::telemetry::StageMetrics;
use crate::topology::batcher::Batch;
use crate::topology::processor::callback_failure;
use crate::topology::Finishing;

/// One batch processor of a batcher. It finishes after its batcher ends normally; when the
/// batcher crashes, it waits for the restarted one to subscribe it again.
pub(crate) struct BatchProcessor<H: BatchHandler> {
    handler: Arc<H>,
    retry: Option<RetryPolicy>,
    metrics: StageMetrics,
    finishing: Finishing,
}

impl<H: BatchHandler> BatchProcessor<H> {
    pub(crate) fn new(handler: Arc<H>, retry: Option<RetryPolicy>, metrics: StageMetrics) -> Self {
        BatchProcessor { handler, retry, metrics, finishing: Finishing::default() }
    }

    async fn handle(&self, batch: Batch<H::Output>) {
        let Batch { mut messages, mut info } = batch;
        let started = std::time::Instant::now();
        self.metrics.messages(messages.len());
        let mut settlement = Settlement::new();
        let mut round = 1;
        let mut given_up = Vec::new();
        // `attempts` counts the tries in the current stage: the processor's tries of
        // `handle_message` must not count against `handle_batch`'s retry budget.
        for message in &mut messages {
            message.envelope.attempts = 0;
        }
        loop {
            for message in &mut messages {
                message.envelope.attempts += 1;
            }
            let result =
                AssertUnwindSafe(self.handler.handle_batch(&mut messages, &info)).catch_unwind().await;
            if let Some(failure) = callback_failure("handle_batch", result) {
                for message in &mut messages {
                    message.set_failure(failure.clone());
                }
            }
            // Settle the successful ones where they are; keep the failed ones (no copies).
            for message in messages.iter_mut().filter(|m| !m.is_failed()) {
                settlement.add(&mut message.envelope.ack, None);
            }
            messages.retain(Message::is_failed);
            // Failures the policy does not retry are final now.
            if let Some(policy) = &self.retry {
                let (again, done): (Vec<_>, Vec<_>) = messages.into_iter().partition(|m| policy.again(m));
                messages = again;
                given_up.extend(done);
            }
            let retry = self.retry.filter(|_| !messages.is_empty());
            let Some(policy) = retry else { break };
            // Acknowledge the successful ones before the backoff: they need not wait for the
            // retries, and a stage aborted during the backoff (shutdown timeout) would
            // otherwise lose their acknowledgements, taken out of their messages already.
            self.metrics.settle(std::mem::take(&mut settlement));
            tokio::time::sleep(policy.delay(round)).await;
            round += 1;
            for message in &mut messages {
                message.clear_failure();
            }
            info.size = messages.len();
        }
        self.metrics.callback(started.elapsed());
        messages.append(&mut given_up);
        if !messages.is_empty() {
            self.metrics.failed(messages.len());
            info.size = messages.len();
            let seen =
                AssertUnwindSafe(self.handler.handle_failed_batch(&mut messages, &info)).catch_unwind().await;
            if let Err(panic) = seen {
                tracing::error!(batcher = %info.batcher, "handle_failed_batch panicked: {}", panic_message(&*panic));
            }
            for message in &mut messages {
                let failure = message.failure().cloned();
                settlement.add(&mut message.envelope.ack, failure);
            }
        }
        self.metrics.settle(settlement);
    }
}

impl<H: BatchHandler> Consumer for BatchProcessor<H> {
    type Event = Batch<H::Output>;
    type Message = ();

    async fn handle_events(
        &mut self,
        batches: Vec<Batch<H::Output>>,
        _: SubscriptionId,
        _: &mut Context,
    ) -> Result<(), BoxError> {
        for batch in batches {
            let span =
                tracing::debug_span!("handle_batch", batcher = %batch.info.batcher, size = batch.info.size);
            self.handle(batch).instrument(span).await;
        }
        Ok(())
    }

    async fn handle_subscribe(&mut self, _: SubscriptionId, _: &mut Context) -> Result<AskMode, BoxError> {
        self.finishing.subscribed();
        Ok(AskMode::Automatic)
    }

    async fn handle_cancel(
        &mut self,
        _: SubscriptionId,
        reason: &ExitReason,
        ctx: &mut Context,
    ) -> Result<(), BoxError> {
        if !reason.is_failure() {
            self.finishing.upstream_done = true;
        }
        self.finishing.cancelled(ctx);
        Ok(())
    }
}
