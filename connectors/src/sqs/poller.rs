//! The poller of one producer: receives as the demand allows, several receives in flight,
//! and hands the messages to the producer.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::operation::receive_message::ReceiveMessageOutput;
use aws_sdk_sqs::types::{MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName};
use aws_sdk_sqs::Client;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use tokio::sync::{mpsc, watch};
use weir_broadway::{AckData, Acknowledger, Message, Metadata, MetadataValue};

use super::acker::{Leases, SqsAcker};
use super::SqsOptions;

/// Receives until stopped (or the producer is gone), then drops the receives in flight and
/// waits until the acknowledgements of every message it handed on are sent.
pub(super) async fn run(
    options: Arc<SqsOptions>,
    client: Client,
    mut demanded: mpsc::UnboundedReceiver<usize>,
    mut stop: watch::Receiver<bool>,
    deliver: impl Fn(Vec<Message<String>>) -> bool + Send,
) {
    let heartbeat =
        if options.visibility_heartbeat { visibility_timeout(&options, &client).await } else { None };
    let (acker, leases, acker_task) = SqsAcker::start(
        client.clone(),
        options.queue_url.clone(),
        options.on_success,
        options.on_failure,
        heartbeat,
    );
    let acknowledger: Arc<dyn Acknowledger> = acker;
    let mut converter = Converter { options: &options, leases: &leases, acknowledger, next_tag: 0 };
    let max = usize::try_from(options.max_number_of_messages).unwrap_or(1);
    let mut pending = 0usize;
    let mut failures = 0u32;
    let mut receives = FuturesUnordered::new();
    let mut resting = FuturesUnordered::new();
    while !*stop.borrow() {
        while receives.len() + resting.len() < options.receives_in_flight && pending > 0 {
            let asked = pending.min(max);
            pending -= asked;
            receives.push(receive(&client, &options, asked));
        }
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            more = demanded.recv() => match more {
                Some(n) => pending += n,
                None => break,
            },
            Some((asked, result)) = receives.next() => match result {
                Ok(output) => {
                    failures = 0;
                    let messages = output.messages.unwrap_or_default();
                    pending += asked.saturating_sub(messages.len());
                    if messages.is_empty() {
                        let wait = options.empty_receive_wait();
                        if !wait.is_zero() {
                            resting.push(tokio::time::sleep(wait));
                        }
                    } else if !deliver(messages.into_iter().map(|m| converter.message(m)).collect()) {
                        break;
                    }
                }
                Err(error) => {
                    pending += asked;
                    failures += 1;
                    let delay = options.backoff.delay(failures);
                    tracing::warn!(%error, ?delay, "sqs: receive failed; receiving again after a backoff");
                    resting.push(tokio::time::sleep(delay));
                }
            },
            Some(()) = resting.next() => {}
        }
    }
    // Prompt drain: a long poll in flight is dropped (what SQS picked for it comes back after
    // its visibility timeout).
    drop(receives);
    drop(converter);
    let _panicked = acker_task.await;
}

/// The visibility timeout the heartbeat keeps: the option, or the queue's.
async fn visibility_timeout(options: &SqsOptions, client: &Client) -> Option<Duration> {
    let seconds = match options.visibility_timeout {
        Some(seconds) => seconds,
        None => {
            let attributes = client
                .get_queue_attributes()
                .queue_url(&options.queue_url)
                .attribute_names(QueueAttributeName::VisibilityTimeout)
                .send()
                .await;
            let seconds = attributes.ok().and_then(|output| {
                output.attributes()?.get(&QueueAttributeName::VisibilityTimeout)?.parse::<i32>().ok()
            });
            let Some(seconds) = seconds else {
                tracing::warn!("sqs: could not read the queue's visibility timeout; no lease heartbeat");
                return None;
            };
            seconds
        }
    };
    // Below 2 s there is no half-timeout to renew at in time.
    (seconds >= 2).then(|| Duration::from_secs(u64::try_from(seconds).unwrap_or(0)))
}

/// One `ReceiveMessage` call asking for `asked` messages; returns `asked` with the result.
async fn receive(
    client: &Client,
    options: &SqsOptions,
    asked: usize,
) -> (usize, Result<ReceiveMessageOutput, String>) {
    let mut request = client
        .receive_message()
        .queue_url(&options.queue_url)
        .max_number_of_messages(i32::try_from(asked).unwrap_or(10))
        .wait_time_seconds(options.wait_time_seconds)
        .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
        .set_message_attribute_names(
            (!options.message_attribute_names.is_empty()).then(|| options.message_attribute_names.clone()),
        );
    if options.fifo() {
        request = request.message_system_attribute_names(MessageSystemAttributeName::MessageGroupId);
    }
    for name in &options.attribute_names {
        request = request.message_system_attribute_names(MessageSystemAttributeName::from(name.as_str()));
    }
    if let Some(seconds) = options.visibility_timeout {
        request = request.visibility_timeout(seconds);
    }
    let result = request.send().await.map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(e).to_string());
    (asked, result)
}

/// Turns received SQS messages into pipeline messages, leased.
struct Converter<'a> {
    options: &'a SqsOptions,
    leases: &'a Leases,
    acknowledger: Arc<dyn Acknowledger>,
    next_tag: u64,
}

impl Converter<'_> {
    fn message(&mut self, received: aws_sdk_sqs::types::Message) -> Message<String> {
        let tag = self.next_tag;
        self.next_tag += 1;
        let message_id = received.message_id.unwrap_or_default();
        let receipt = received.receipt_handle.unwrap_or_default();
        let attributes = received.attributes.unwrap_or_default();
        let receive_count = attributes
            .get(&MessageSystemAttributeName::ApproximateReceiveCount)
            .and_then(|count| count.parse::<u64>().ok())
            .unwrap_or(1);
        let group = attributes.get(&MessageSystemAttributeName::MessageGroupId);
        let mut metadata = Metadata::new();
        metadata.insert("message_id", message_id.as_str());
        metadata.insert("receipt_handle", receipt.as_str());
        if let Some(md5) = received.md5_of_body {
            metadata.insert("md5_of_body", md5);
        }
        if let Some(group) = group {
            metadata.insert("message_group_id", group.as_str());
        }
        if !self.options.attribute_names.is_empty() {
            let all = self.options.attribute_names.iter().any(|name| name == "All");
            let mut copied: Vec<(String, MetadataValue)> = attributes
                .iter()
                .filter(|(name, _)| all || self.options.attribute_names.iter().any(|n| n == name.as_str()))
                .map(|(name, value)| (name.as_str().to_owned(), MetadataValue::Str(value.clone())))
                .collect();
            copied.sort_by(|a, b| a.0.cmp(&b.0));
            metadata.insert("attributes", MetadataValue::Map(copied));
        }
        if let Some(values) =
            received.message_attributes.filter(|_| !self.options.message_attribute_names.is_empty())
        {
            let mut copied: Vec<(String, MetadataValue)> =
                values.into_iter().map(|(name, value)| (name, attribute_value(value))).collect();
            copied.sort_by(|a, b| a.0.cmp(&b.0));
            metadata.insert("message_attributes", MetadataValue::Map(copied));
        }
        let mut data = AckData::new(tag).with_handle(receipt.as_str()).with_redelivered(receive_count > 1);
        if let Some(group) = group {
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            group.hash(&mut hasher);
            data = data.with_group(hasher.finish());
        }
        self.leases.received(tag, &message_id, &receipt);
        Message::new(received.body.unwrap_or_default(), self.acknowledger.clone(), data)
            .with_metadata(metadata)
    }
}

/// A message attribute as metadata: its text, or its bytes.
fn attribute_value(value: MessageAttributeValue) -> MetadataValue {
    match (value.string_value, value.binary_value) {
        (Some(text), _) => MetadataValue::Str(text),
        (None, Some(bytes)) => MetadataValue::Bytes(bytes.into_inner()),
        (None, None) => MetadataValue::Null,
    }
}
