//! SQS helpers of the connector tests: the local server's endpoint, a client of the test's
//! own, fresh queues (with a dead-letter queue), sending ids, and what is left in a queue.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_sqs::types::{QueueAttributeName, SendMessageBatchRequestEntry};
use aws_sdk_sqs::Client;
use weir_connectors::sqs::SqsOptions;

/// The SQS server (`SQS_ENDPOINT`, default `http://127.0.0.1:9324`, moto started by
/// `scripts/services.sh sqs`).
pub(crate) fn endpoint() -> String {
    std::env::var("SQS_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:9324".to_owned())
}

/// Options for `queue_url` on the local server, with test credentials; the rest default
/// (long polls of 20 s included: stopping must not wait for one).
pub(crate) fn options(queue_url: &str) -> SqsOptions {
    SqsOptions::new(queue_url).endpoint_url(endpoint()).credentials("test", "test").region("us-east-1")
}

/// A client of the test's own.
pub(crate) fn client() -> Client {
    options("http://127.0.0.1/unused").sdk_client().unwrap()
}

/// A name unique to the test and the process (`.fifo` appended for FIFO queues).
pub(crate) fn queue_name(test: &str) -> String {
    format!("weir-{test}-{}", std::process::id())
}

/// Creates (afresh) the queue `name` with `attributes`; returns its URL.
pub(crate) async fn create(
    client: &Client,
    name: &str,
    attributes: &[(QueueAttributeName, String)],
) -> String {
    if let Ok(existing) = client.get_queue_url().queue_name(name).send().await {
        if let Some(url) = existing.queue_url() {
            client.delete_queue().queue_url(url).send().await.unwrap();
        }
    }
    let attributes: HashMap<QueueAttributeName, String> = attributes.iter().cloned().collect();
    let created =
        client.create_queue().queue_name(name).set_attributes(Some(attributes)).send().await.unwrap_or_else(
            |e| {
                panic!(
                    "SQS is needed at {} (scripts/services.sh sqs): {}",
                    endpoint(),
                    aws_sdk_sqs::error::DisplayErrorContext(e)
                )
            },
        );
    created.queue_url().unwrap().to_owned()
}

/// A fresh standard queue named for `test`; returns its URL.
pub(crate) async fn queue(client: &Client, test: &str) -> String {
    create(client, &queue_name(test), &[]).await
}

/// A fresh queue named for `test` whose messages move to a fresh dead-letter queue after
/// `max_receives` receives; returns both URLs.
pub(crate) async fn queue_with_dead_letters(
    client: &Client,
    test: &str,
    max_receives: u32,
) -> (String, String) {
    let dead = create(client, &queue_name(&format!("{test}-dead")), &[]).await;
    let arn = client
        .get_queue_attributes()
        .queue_url(&dead)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone();
    let policy = format!(r#"{{"deadLetterTargetArn":"{arn}","maxReceiveCount":"{max_receives}"}}"#);
    let url = create(client, &queue_name(test), &[(QueueAttributeName::RedrivePolicy, policy)]).await;
    (url, dead)
}

/// Sends `ids` as text bodies, 10 per request; `group` gives FIFO messages their group.
pub(crate) async fn send(
    client: &Client,
    queue_url: &str,
    ids: &[u64],
    group: Option<&dyn Fn(u64) -> String>,
) {
    for chunk in ids.chunks(10) {
        let entries = chunk.iter().map(|id| {
            let mut entry =
                SendMessageBatchRequestEntry::builder().id(format!("e{id}")).message_body(id.to_string());
            if let Some(group) = group {
                entry = entry.message_group_id(group(*id)).message_deduplication_id(format!("d{id}"));
            }
            entry.build().unwrap()
        });
        let sent = client
            .send_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries.collect()))
            .send()
            .await
            .unwrap();
        assert!(sent.failed().is_empty(), "{:?}", sent.failed());
    }
}

/// Messages (visible, in flight) in `queue_url`.
pub(crate) async fn counts(client: &Client, queue_url: &str) -> (u64, u64) {
    let attributes = client
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap();
    let attributes = attributes.attributes().unwrap();
    let n = |name| attributes[&name].parse::<u64>().unwrap();
    (
        n(QueueAttributeName::ApproximateNumberOfMessages),
        n(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    )
}

/// Receives (and deletes) every visible message of `queue_url`; returns their ids.
pub(crate) async fn take_all(client: &Client, queue_url: &str) -> Vec<u64> {
    let mut ids = Vec::new();
    loop {
        let received = client
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(0)
            .send()
            .await
            .unwrap();
        let messages = received.messages();
        if messages.is_empty() {
            return ids;
        }
        for message in messages {
            ids.push(message.body().unwrap().parse().unwrap());
            client
                .delete_message()
                .queue_url(queue_url)
                .receipt_handle(message.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
}

/// Deletes `queue_url` (at the end of a test that passed).
pub(crate) async fn delete(client: &Client, queue_url: &str) {
    client.delete_queue().queue_url(queue_url).send().await.unwrap();
}

/// Waits (at most `within`) until `queue_url` holds nothing, visible or in flight.
pub(crate) async fn empty_within(client: &Client, queue_url: &str, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let counts = counts(client, queue_url).await;
        if counts == (0, 0) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{queue_url}: (visible, in flight) = {counts:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
