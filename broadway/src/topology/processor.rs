//! Processors: run `prepare_messages` and `handle_message` on each chunk, retry and settle
//! failures, and pass outputs on to the batchers (or acknowledge them when there are none).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::{FutureExt, StreamExt};
use rustc_hash::FxHashMap;
use tracing::Instrument;
use weir_core::{
    panic_message, AskMode, BoxError, Consumer, Context, ExitReason, Peer, ProducerConsumer, SubscriptionId,
};

use crate::acknowledger::Settlement;
use crate::config::PartitionFn;
use crate::handler::Handler;
use crate::message::{Envelope, Failure, Message};
use crate::retry::RetryPolicy;
use crate::telemetry::StageMetrics;
use crate::topology::Finishing;

/// What every processor of a pipeline shares.
pub(crate) struct ProcessorShared<H: Handler> {
    pub(crate) handler: Arc<H>,
    /// The batchers' names, by index; empty when the pipeline has none.
    pub(crate) batchers: Vec<Arc<str>>,
    pub(crate) retry: Option<RetryPolicy>,
    pub(crate) message_concurrency: usize,
    pub(crate) partition_by: Option<PartitionFn<H::Data>>,
}

/// One processor: a producer-consumer when the pipeline has batchers, a consumer otherwise.
pub(crate) struct Processor<H: Handler> {
    shared: Arc<ProcessorShared<H>>,
    metrics: StageMetrics,
    finishing: Finishing,
}

impl<H: Handler> Processor<H> {
    pub(crate) fn new(shared: Arc<ProcessorShared<H>>, metrics: StageMetrics) -> Self {
        Processor { shared, metrics, finishing: Finishing::default() }
    }

    /// Runs the callbacks on a chunk. Failed messages are settled here; the outputs are
    /// returned (and settled here too when there are no batchers).
    async fn process(&self, mut messages: Vec<Message<H::Data>>) -> Vec<Message<H::Output>> {
        let shared = &*self.shared;
        let handler = &*shared.handler;
        self.metrics.messages(messages.len());
        let prepared = AssertUnwindSafe(handler.prepare_messages(&mut messages)).catch_unwind().await;
        if let Some(failure) = callback_failure("prepare_messages", prepared) {
            for message in &mut messages {
                message.set_failure(failure.clone());
            }
        }
        let mut outputs = Vec::with_capacity(messages.len());
        let mut failed = Vec::new();
        if shared.message_concurrency == 1 {
            // The common case, in place: a handled message's envelope moves to its output and
            // leaves a settled husk behind; what stays in `messages` are the failed ones.
            for message in &mut messages {
                if let Some(output) = self.handle_one(message).await {
                    let envelope = std::mem::replace(&mut message.envelope, Envelope::settled());
                    outputs.push(Message::from_parts(output, envelope));
                }
            }
            messages.retain(Message::is_failed);
            failed = messages;
        } else {
            // Rare paths are boxed: the chunk's future stays small, and it is moved once per chunk.
            for (message, output) in Box::pin(self.handle_all(messages)).await {
                split(message, output, &mut outputs, &mut failed);
            }
        }
        if let Some(policy) = shared.retry {
            if !failed.is_empty() {
                failed = Box::pin(self.retry(policy, failed, &mut outputs)).await;
            }
        }
        let mut settlement = Settlement::new();
        if !failed.is_empty() {
            self.metrics.failed(failed.len());
            let seen = Box::pin(AssertUnwindSafe(handler.handle_failed(&mut failed)).catch_unwind()).await;
            if let Err(panic) = seen {
                tracing::error!("handle_failed panicked: {}", panic_message(&*panic));
            }
            for message in &mut failed {
                let failure = message.failure().cloned();
                settlement.add(&mut message.envelope.ack, failure);
            }
        }
        if shared.batchers.is_empty() {
            for message in &mut outputs {
                settlement.add(&mut message.envelope.ack, None);
            }
            outputs.clear();
        }
        self.metrics.settle(settlement);
        outputs
    }

    /// Runs `handle_message` on every message that has not failed, `message_concurrency` at
    /// a time (one partition's messages one after the other). Results keep the input order.
    async fn handle_all(
        &self,
        messages: Vec<Message<H::Data>>,
    ) -> Vec<(Message<H::Data>, Option<H::Output>)> {
        let shared = &*self.shared;
        if shared.message_concurrency == 1 || messages.len() == 1 {
            let mut results = Vec::with_capacity(messages.len());
            for mut message in messages {
                let output = self.handle_one(&mut message).await;
                results.push((message, output));
            }
            return results;
        }
        let n = shared.message_concurrency;
        match &shared.partition_by {
            None => {
                futures::stream::iter(messages.into_iter().map(|mut message| async move {
                    let output = self.handle_one(&mut message).await;
                    (message, output)
                }))
                .buffered(n)
                .collect()
                .await
            }
            Some(hash) => {
                // One sequence per partition, partitions side by side; then back in order.
                let mut groups: FxHashMap<u64, Vec<(usize, Message<H::Data>)>> = FxHashMap::default();
                for (i, message) in messages.into_iter().enumerate() {
                    groups.entry(hash(&message)).or_default().push((i, message));
                }
                let runs = groups.into_values().map(|group| async move {
                    let mut done = Vec::with_capacity(group.len());
                    for (i, mut message) in group {
                        let output = self.handle_one(&mut message).await;
                        done.push((i, message, output));
                    }
                    done
                });
                let mut results: Vec<_> =
                    futures::stream::iter(runs).buffer_unordered(n).collect::<Vec<_>>().await;
                let mut flat: Vec<_> = results.drain(..).flatten().collect();
                flat.sort_unstable_by_key(|(i, _, _)| *i);
                flat.into_iter().map(|(_, message, output)| (message, output)).collect()
            }
        }
    }

    /// One try of `handle_message`; `None` (with the message failed) if it failed.
    async fn handle_one(&self, message: &mut Message<H::Data>) -> Option<H::Output> {
        if message.is_failed() {
            return None;
        }
        message.envelope.attempts += 1;
        let result = AssertUnwindSafe(self.shared.handler.handle_message(message)).catch_unwind().await;
        let output = match result {
            Ok(Ok(output)) => output,
            other => {
                if let Some(failure) = callback_failure("handle_message", other.map(|r| r.map(drop))) {
                    message.set_failure(failure);
                }
                return None;
            }
        };
        if message.is_failed() {
            return None;
        }
        let batchers = &self.shared.batchers;
        if !batchers.is_empty() {
            match batchers.iter().position(|b| **b == *message.batcher()) {
                Some(index) => message.envelope.batcher_index = index,
                None => {
                    message.set_failure(Failure::UnknownBatcher {
                        batcher: message.batcher().to_owned(),
                        known: batchers.iter().map(|b| format!("{b:?}")).collect::<Vec<_>>().join(", "),
                    });
                    return None;
                }
            }
        }
        Some(output)
    }

    /// Tries failed messages again per `policy`; returns those that still failed.
    async fn retry(
        &self,
        policy: RetryPolicy,
        mut failed: Vec<Message<H::Data>>,
        outputs: &mut Vec<Message<H::Output>>,
    ) -> Vec<Message<H::Data>> {
        let mut round = 1;
        loop {
            let (again, exhausted): (Vec<_>, Vec<_>) =
                failed.into_iter().partition(|m| m.attempts() > 0 && policy.again(m));
            failed = exhausted;
            if again.is_empty() {
                return failed;
            }
            tokio::time::sleep(policy.delay(round)).await;
            round += 1;
            let again = again
                .into_iter()
                .map(|mut m| {
                    m.clear_failure();
                    m
                })
                .collect();
            for (message, output) in self.handle_all(again).await {
                split(message, output, outputs, &mut failed);
            }
        }
    }

    fn subscribed(&mut self, peer: &Peer) {
        if let Peer::Producer(_) = peer {
            self.finishing.subscribed();
        }
    }

    fn cancelled<M>(&mut self, peer: &Peer, ctx: &mut Context<M>) {
        if let Peer::Producer(_) = peer {
            self.finishing.cancelled(ctx);
        }
    }
}

fn split<D, O>(
    message: Message<D>,
    output: Option<O>,
    outputs: &mut Vec<Message<O>>,
    failed: &mut Vec<Message<D>>,
) {
    match output {
        Some(output) => {
            let (_, envelope) = message.into_parts();
            outputs.push(Message::from_parts(output, envelope));
        }
        None => failed.push(message),
    }
}

/// The failure of a callback that returned an error or panicked.
pub(crate) fn callback_failure(
    callback: &'static str,
    result: Result<Result<(), BoxError>, Box<dyn std::any::Any + Send>>,
) -> Option<Failure> {
    match result {
        Ok(Ok(())) => None,
        Ok(Err(error)) => Some(Failure::Error { callback, error: error.to_string() }),
        Err(panic) => Some(Failure::Panic { callback, message: panic_message(&*panic) }),
    }
}

/// Told by the pipeline when every producer is gone for good.
pub(crate) enum ProcessorInfo {
    ProducersDone,
}

impl<H: Handler> ProducerConsumer for Processor<H> {
    type In = Message<H::Data>;
    type Out = Message<H::Output>;
    type Message = ProcessorInfo;

    async fn handle_events(
        &mut self,
        events: Vec<Message<H::Data>>,
        _: SubscriptionId,
        ctx: &mut Context<ProcessorInfo>,
    ) -> Result<Vec<Message<H::Output>>, BoxError> {
        let span = tracing::debug_span!("handle_messages", stage = ctx.name(), size = events.len());
        Ok(self.process(events).instrument(span).await)
    }

    async fn handle_subscribe(
        &mut self,
        peer: Peer,
        _: &mut Context<ProcessorInfo>,
    ) -> Result<AskMode, BoxError> {
        self.subscribed(&peer);
        Ok(AskMode::Automatic)
    }

    async fn handle_cancel(
        &mut self,
        peer: Peer,
        _: &ExitReason,
        ctx: &mut Context<ProcessorInfo>,
    ) -> Result<Vec<Message<H::Output>>, BoxError> {
        self.cancelled(&peer, ctx);
        Ok(Vec::new())
    }

    async fn handle_info(
        &mut self,
        ProcessorInfo::ProducersDone: ProcessorInfo,
        ctx: &mut Context<ProcessorInfo>,
    ) -> Result<Vec<Message<H::Output>>, BoxError> {
        self.finishing.upstream_done(ctx);
        Ok(Vec::new())
    }
}

/// A processor of a pipeline without batchers: it acknowledges after `handle_message`.
pub(crate) struct LastProcessor<H: Handler>(pub(crate) Processor<H>);

impl<H: Handler> Consumer for LastProcessor<H> {
    type Event = Message<H::Data>;
    type Message = ProcessorInfo;

    async fn handle_events(
        &mut self,
        events: Vec<Message<H::Data>>,
        _: SubscriptionId,
        ctx: &mut Context<ProcessorInfo>,
    ) -> Result<(), BoxError> {
        let span = tracing::debug_span!("handle_messages", stage = ctx.name(), size = events.len());
        self.0.process(events).instrument(span).await;
        Ok(())
    }

    async fn handle_subscribe(
        &mut self,
        _: SubscriptionId,
        _: &mut Context<ProcessorInfo>,
    ) -> Result<AskMode, BoxError> {
        self.0.finishing.subscribed();
        Ok(AskMode::Automatic)
    }

    async fn handle_cancel(
        &mut self,
        _: SubscriptionId,
        _: &ExitReason,
        ctx: &mut Context<ProcessorInfo>,
    ) -> Result<(), BoxError> {
        self.0.finishing.cancelled(ctx);
        Ok(())
    }

    async fn handle_info(
        &mut self,
        ProcessorInfo::ProducersDone: ProcessorInfo,
        ctx: &mut Context<ProcessorInfo>,
    ) -> Result<(), BoxError> {
        self.0.finishing.upstream_done(ctx);
        Ok(())
    }
}
