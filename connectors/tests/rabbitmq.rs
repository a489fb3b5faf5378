//! The RabbitMQ producer against the broker on loopback (`AMQP_URL`, default
//! `amqp://guest:guest@127.0.0.1:5672/%2f`; `scripts/services.sh` starts it). Without a
//! broker these tests fail: they never skip.
#![cfg(feature = "rabbitmq")]
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use lapin::options::{BasicPublishOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use weir_broadway::{
    AckAction, BatchHandler, BatchInfo, BatcherOptions, BoxError, Handler, Message, Pipeline,
    ProcessorOptions, ProducerOptions,
};
use weir_connectors::rabbitmq::{Declare, RabbitMqOptions, RabbitMqProducer};

fn url() -> String {
    std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// A fresh queue holding `ids` as text messages; returns its name.
async fn queue_with(test: &str, ids: impl IntoIterator<Item = u64>) -> String {
    let queue = format!("weir-{test}-{}", std::process::id());
    let connection = Connection::connect(&url(), ConnectionProperties::default()).await.unwrap();
    let channel = connection.create_channel().await.unwrap();
    channel.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()).await.unwrap();
    channel
        .queue_declare(queue.as_str().into(), QueueDeclareOptions::default(), FieldTable::default())
        .await
        .unwrap();
    for id in ids {
        channel
            .basic_publish(
                "".into(),
                queue.as_str().into(),
                BasicPublishOptions::default(),
                id.to_string().as_bytes(),
                BasicProperties::default().with_message_id(format!("m{id}").into()),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }
    connection.close(200, "published".into()).await.unwrap();
    queue
}

/// Messages ready in `queue` (unacknowledged ones come back when their channel closes).
async fn ready(queue: &str) -> u32 {
    let connection = Connection::connect(&url(), ConnectionProperties::default()).await.unwrap();
    let channel = connection.create_channel().await.unwrap();
    let declared = channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions { passive: true, ..Default::default() },
            FieldTable::default(),
        )
        .await
        .unwrap();
    connection.close(200, "checked".into()).await.unwrap();
    declared.message_count()
}

/// Parses ids; fails those listed; records what each batch held.
#[derive(Default)]
struct Ids {
    fail: Vec<u64>,
    handled: Mutex<BTreeMap<u64, usize>>,
}

impl Handler for Ids {
    type Data = Vec<u8>;
    type Output = u64;

    async fn handle_message(&self, message: &mut Message<Vec<u8>>) -> Result<u64, BoxError> {
        let id: u64 = std::str::from_utf8(message.data())?.parse()?;
        if self.fail.contains(&id) {
            message.fail("listed");
        }
        Ok(id)
    }
}

impl BatchHandler for Ids {
    async fn handle_batch(&self, messages: &mut [Message<u64>], _: &BatchInfo) -> Result<(), BoxError> {
        let mut handled = self.handled.lock().unwrap();
        for message in messages.iter() {
            *handled.entry(*message.data()).or_default() += 1;
        }
        Ok(())
    }
}

async fn run_until(pipeline: &Pipeline<Ids>, n: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while pipeline.handler().handled.lock().unwrap().len() < n {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {n} messages");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_is_handled_once_and_acknowledged() {
    let n = 2_000;
    let queue = queue_with("all", 0..n).await;
    let producer =
        RabbitMqProducer::factory(RabbitMqOptions::new(url(), queue.clone()).prefetch_count(200)).unwrap();
    let pipeline = Pipeline::builder("rabbit", Ids::default())
        .producer(producer, ProducerOptions::new().concurrency(2))
        .processors(ProcessorOptions::new().concurrency(2).max_demand(50))
        .batcher("default", BatcherOptions::new().batch_size(100).batch_timeout(Duration::from_millis(50)))
        .start()
        .await
        .unwrap();
    run_until(&pipeline, n as usize).await;
    let report = pipeline.stop().await;
    assert!(report.graceful, "{report:?}");
    let handled = pipeline.handler().handled.lock().unwrap().clone();
    assert_eq!(handled.keys().copied().collect::<Vec<_>>(), (0..n).collect::<Vec<_>>());
    assert!(handled.values().all(|c| *c == 1), "each handled once");
    assert_eq!(ready(&queue).await, 0, "nothing left, nothing unacknowledged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_messages_are_rejected_or_requeued_per_policy() {
    for (action, expect_left) in [(AckAction::Reject, 0), (AckAction::RejectAndRequeue, 3)] {
        let queue = queue_with(&format!("fail-{action:?}"), 0..100).await;
        let options =
            RabbitMqOptions::new(url(), queue.clone()).on_failure(action).declare(Declare::default());
        let handler = Ids { fail: vec![3, 50, 99], ..Ids::default() };
        let pipeline = Pipeline::builder("rabbit", handler)
            .producer(RabbitMqProducer::factory(options).unwrap(), ProducerOptions::new())
            .batcher("default", BatcherOptions::new().batch_size(10).batch_timeout(Duration::from_millis(20)))
            .start()
            .await
            .unwrap();
        run_until(&pipeline, 97).await;
        // A requeued message comes back (and fails again): stop, then count what is left.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let report = pipeline.stop().await;
        assert!(report.graceful);
        assert_eq!(ready(&queue).await, expect_left, "{action:?}");
    }
}
