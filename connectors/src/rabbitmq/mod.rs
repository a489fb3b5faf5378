//! RabbitMQ source (feature `rabbitmq`, crate `lapin`): broadway_rabbitmq for weir.
//!
//! Each producer instance has its own connection and channel consuming the queue
//! (`ProducerOptions::concurrency` > 1 means several channels on one queue). The broker
//! pushes up to `prefetch_count` unacknowledged messages per channel: that is the
//! back-pressure. Size it to cover what the pipeline holds at once, about
//! `processors × max_demand + batchers × (batch_size + max_demand)` divided by the number
//! of producers, or batches wait for messages the broker will not send.

mod acker;

use std::sync::Arc;

use futures::{FutureExt, StreamExt};
use lapin::options::{
    BasicCancelOptions, BasicConsumeOptions, BasicQosOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ConnectionProperties};
use tokio::sync::watch;
use weir_broadway::{
    AckAction, AckData, BoxError, Message, Metadata, MetadataValue, Producer, ProducerContext,
};

use crate::backoff::Backoff;
use crate::error::Error;
use acker::{ChannelAcker, ACTIONS};

/// The metadata a producer can copy into messages.
pub const METADATA: &[&str] = &[
    "delivery_tag",
    "redelivered",
    "exchange",
    "routing_key",
    "headers",
    "content_type",
    "content_encoding",
    "correlation_id",
    "message_id",
    "timestamp",
    "type",
    "app_id",
    "reply_to",
];

/// The queue declaration applied on every (re)connect.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Declare {
    /// Survives broker restarts.
    pub durable: bool,
    /// Deleted when its last consumer goes.
    pub auto_delete: bool,
    /// Only for this connection.
    pub exclusive: bool,
    /// Only check that it exists.
    pub passive: bool,
    /// `x-` arguments, e.g. `x-dead-letter-exchange`, `x-queue-type`.
    pub arguments: Vec<(String, MetadataValue)>,
}

/// Options of a RabbitMQ producer.
///
/// # Examples
///
/// ```
/// use weir_broadway::AckAction;
/// use weir_connectors::rabbitmq::{Declare, RabbitMqOptions};
///
/// let options = RabbitMqOptions::new("amqp://guest:guest@127.0.0.1:5672/%2f", "orders")
///     .declare(Declare { durable: true, ..Declare::default() })
///     .bind("events", "orders.#")
///     .prefetch_count(100)
///     .on_failure(AckAction::RejectAndRequeueOnce)
///     .metadata(["routing_key", "headers"]);
/// assert!(options.validate().is_ok());
/// assert_eq!(
///     RabbitMqOptions::new("amqp://127.0.0.1", "q").prefetch_count(0).validate().unwrap_err().to_string(),
///     "rabbitmq.prefetch_count (0) must be greater than 0"
/// );
/// ```
#[derive(Debug, Clone)]
pub struct RabbitMqOptions {
    url: String,
    queue: String,
    declare: Option<Declare>,
    bindings: Vec<(String, String)>,
    prefetch_count: u16,
    on_success: AckAction,
    on_failure: AckAction,
    metadata: Vec<String>,
    backoff: Backoff,
    receive_window: std::time::Duration,
}

impl RabbitMqOptions {
    /// Consume `queue` at `url` (`amqp://user:password@host:port/vhost`). Defaults: no
    /// declaration, `prefetch_count` 50, ack on success, reject and requeue on failure,
    /// no metadata, random-exponential backoff from 1 s to 30 s.
    pub fn new(url: impl Into<String>, queue: impl Into<String>) -> Self {
        RabbitMqOptions {
            url: url.into(),
            queue: queue.into(),
            declare: None,
            bindings: Vec::new(),
            prefetch_count: 50,
            on_success: AckAction::Ack,
            on_failure: AckAction::RejectAndRequeue,
            metadata: Vec::new(),
            backoff: Backoff::default(),
            receive_window: std::time::Duration::from_millis(1),
        }
    }

    /// How long the consumer gathers deliveries into one chunk after the first (default
    /// 1 ms): fewer, larger chunks through the pipeline for at most this much latency.
    /// Zero hands on what is ready at once.
    #[must_use]
    pub fn receive_window(mut self, window: std::time::Duration) -> Self {
        self.receive_window = window;
        self
    }

    /// Declares the queue on every (re)connect.
    #[must_use]
    pub fn declare(mut self, declare: Declare) -> Self {
        self.declare = Some(declare);
        self
    }

    /// Binds the queue to `exchange` with `routing_key` on every (re)connect.
    #[must_use]
    pub fn bind(mut self, exchange: impl Into<String>, routing_key: impl Into<String>) -> Self {
        self.bindings.push((exchange.into(), routing_key.into()));
        self
    }

    /// Unacknowledged messages the broker sends each channel at most.
    #[must_use]
    pub fn prefetch_count(mut self, prefetch_count: u16) -> Self {
        self.prefetch_count = prefetch_count;
        self
    }

    /// How successful messages are acknowledged (default [`AckAction::Ack`]).
    #[must_use]
    pub fn on_success(mut self, action: AckAction) -> Self {
        self.on_success = action;
        self
    }

    /// How failed messages are acknowledged (default [`AckAction::RejectAndRequeue`]).
    /// Messages the pipeline dropped without handling them
    /// ([`Failure::Dropped`](weir_broadway::Failure::Dropped): they reached a producer that
    /// had stopped, or were aborted at the shutdown timeout) are requeued whatever this says.
    #[must_use]
    pub fn on_failure(mut self, action: AckAction) -> Self {
        self.on_failure = action;
        self
    }

    /// Metadata to copy into each message (names from [`METADATA`]).
    #[must_use]
    pub fn metadata<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.metadata = names.into_iter().map(Into::into).collect();
        self
    }

    /// How long to wait before reconnecting.
    #[must_use]
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Checks the options.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`] naming the option and the value.
    pub fn validate(&self) -> Result<(), Error> {
        if !self.url.starts_with("amqp://") {
            return Err(Error::invalid("rabbitmq.url", format!("{:?}", self.url), "must start with amqp://"));
        }
        if self.queue.is_empty() {
            return Err(Error::invalid("rabbitmq.queue", "\"\"", "must not be empty"));
        }
        if self.prefetch_count == 0 {
            return Err(Error::invalid("rabbitmq.prefetch_count", 0, "must be greater than 0"));
        }
        ACTIONS.check("rabbitmq.on_success", self.on_success)?;
        ACTIONS.check("rabbitmq.on_failure", self.on_failure)?;
        Error::check_names("rabbitmq.metadata", &self.metadata, METADATA)?;
        self.backoff.validate("rabbitmq.backoff")
    }
}

/// What the consuming task hands the producer.
pub enum Incoming {
    /// Deliveries, as messages.
    Messages(Vec<Message<Vec<u8>>>),
}

/// A producer of the messages of a RabbitMQ queue (broadway_rabbitmq's producer).
///
/// Give [`RabbitMqProducer::factory`] to
/// [`Builder::producer`](weir_broadway::Builder::producer). It reconnects with backoff when
/// the connection or channel drops or the broker cancels the consumer; messages delivered
/// on a dead channel cannot be acknowledged any more and are redelivered by the broker. On
/// drain it cancels its consumer (`basic.cancel`); what is in flight is finished and
/// acknowledged, then the connection closes.
pub struct RabbitMqProducer {
    options: Arc<RabbitMqOptions>,
    stop: Option<watch::Sender<bool>>,
}

impl RabbitMqProducer {
    /// A factory of producers for `options`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`] for invalid options.
    pub fn factory(
        options: RabbitMqOptions,
    ) -> Result<impl Fn() -> RabbitMqProducer + Send + Sync + 'static, Error> {
        options.validate()?;
        let options = Arc::new(options);
        Ok(move || RabbitMqProducer { options: options.clone(), stop: None })
    }
}

impl Drop for RabbitMqProducer {
    fn drop(&mut self) {
        if let Some(stop) = &self.stop {
            let _task_gone = stop.send(true);
        }
    }
}

impl Producer for RabbitMqProducer {
    type Event = Message<Vec<u8>>;
    type Info = Incoming;

    async fn handle_demand(
        &mut self,
        _: usize,
        ctx: &mut ProducerContext<'_, Incoming>,
    ) -> Result<Vec<Message<Vec<u8>>>, BoxError> {
        // The broker pushes up to prefetch_count messages: demand only starts the consumer.
        if self.stop.is_none() {
            let (stop, stopped) = watch::channel(false);
            self.stop = Some(stop);
            let sender = ctx.sender();
            let options = self.options.clone();
            let name = ctx.name().to_owned();
            // The pipeline waits for this task, and it for its channels' last
            // acknowledgements: they reach the broker before `Pipeline::stop` returns.
            ctx.spawn(consume(options, name, stopped, move |messages| {
                sender.send(Incoming::Messages(messages)).is_ok()
            }));
        }
        Ok(Vec::new())
    }

    async fn handle_info(
        &mut self,
        Incoming::Messages(messages): Incoming,
        _: &mut ProducerContext<'_, Incoming>,
    ) -> Result<Vec<Message<Vec<u8>>>, BoxError> {
        Ok(messages)
    }

    async fn prepare_for_draining(
        &mut self,
        _: &mut ProducerContext<'_, Incoming>,
    ) -> Result<Vec<Message<Vec<u8>>>, BoxError> {
        if let Some(stop) = &self.stop {
            let _task_gone = stop.send(true);
        }
        Ok(Vec::new())
    }
}

/// How a consuming session ended.
enum Ended {
    Stopped,
    Cancelled,
}

/// Connects, consumes, and reconnects with backoff until stopped; then waits until the
/// acknowledgements of every channel it opened are sent and the connections closed.
async fn consume(
    options: Arc<RabbitMqOptions>,
    name: String,
    mut stop: watch::Receiver<bool>,
    deliver: impl Fn(Vec<Message<Vec<u8>>>) -> bool,
) {
    let mut ackers = Vec::new();
    let mut failures = 0;
    while !*stop.borrow() {
        let session = session(&options, &name, &mut stop, &deliver, &mut failures, &mut ackers).await;
        let reason = match session {
            Ok(Ended::Stopped) => break,
            Ok(Ended::Cancelled) => "the broker cancelled the consumer".to_owned(),
            Err(error) => error.to_string(),
        };
        failures += 1;
        let delay = options.backoff.delay(failures);
        tracing::warn!(producer = %name, %reason, ?delay, "rabbitmq: reconnecting");
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = stop.changed() => break,
        }
    }
    for acker in ackers {
        let _panicked_or_aborted = acker.await;
    }
}

fn field_value(value: &MetadataValue) -> AMQPValue {
    match value {
        MetadataValue::Bool(b) => AMQPValue::Boolean(*b),
        MetadataValue::Int(i) => AMQPValue::LongLongInt(*i),
        MetadataValue::UInt(u) => AMQPValue::LongLongInt(i64::try_from(*u).unwrap_or(i64::MAX)),
        MetadataValue::Float(x) => AMQPValue::Double(*x),
        MetadataValue::Str(s) => AMQPValue::LongString(s.as_str().into()),
        MetadataValue::Bytes(b) => AMQPValue::ByteArray(b.clone().into()),
        _ => AMQPValue::Void,
    }
}

fn metadata_value(value: &AMQPValue) -> MetadataValue {
    match value {
        AMQPValue::Boolean(b) => MetadataValue::Bool(*b),
        AMQPValue::ShortShortInt(i) => MetadataValue::Int(i64::from(*i)),
        AMQPValue::ShortShortUInt(u) => MetadataValue::UInt(u64::from(*u)),
        AMQPValue::ShortInt(i) => MetadataValue::Int(i64::from(*i)),
        AMQPValue::ShortUInt(u) => MetadataValue::UInt(u64::from(*u)),
        AMQPValue::LongInt(i) => MetadataValue::Int(i64::from(*i)),
        AMQPValue::LongUInt(u) => MetadataValue::UInt(u64::from(*u)),
        AMQPValue::LongLongInt(i) => MetadataValue::Int(*i),
        AMQPValue::Float(x) => MetadataValue::Float(f64::from(*x)),
        AMQPValue::Double(x) => MetadataValue::Float(*x),
        AMQPValue::ShortString(s) => MetadataValue::Str(s.to_string()),
        AMQPValue::LongString(s) => MetadataValue::Str(s.to_string()),
        AMQPValue::Timestamp(t) => MetadataValue::UInt(*t),
        AMQPValue::ByteArray(b) => MetadataValue::Bytes(b.as_slice().to_vec()),
        AMQPValue::FieldArray(a) => MetadataValue::List(a.as_slice().iter().map(metadata_value).collect()),
        AMQPValue::FieldTable(t) => {
            MetadataValue::Map(t.inner().iter().map(|(k, v)| (k.to_string(), metadata_value(v))).collect())
        }
        _ => MetadataValue::Null,
    }
}

fn text(value: &Option<lapin::types::ShortString>) -> MetadataValue {
    value.as_ref().map_or(MetadataValue::Null, |s| MetadataValue::Str(s.to_string()))
}

/// The requested metadata of a delivery.
fn metadata(names: &[String], delivery: &lapin::message::Delivery) -> Metadata {
    let mut metadata = Metadata::new();
    let p = &delivery.properties;
    for name in names {
        let value = match name.as_str() {
            "delivery_tag" => MetadataValue::UInt(delivery.delivery_tag),
            "redelivered" => MetadataValue::Bool(delivery.redelivered),
            "exchange" => MetadataValue::Str(delivery.exchange.to_string()),
            "routing_key" => MetadataValue::Str(delivery.routing_key.to_string()),
            "headers" => p.headers().as_ref().map_or(MetadataValue::Null, |h| {
                MetadataValue::Map(
                    h.inner().iter().map(|(k, v)| (k.to_string(), metadata_value(v))).collect(),
                )
            }),
            "content_type" => text(p.content_type()),
            "content_encoding" => text(p.content_encoding()),
            "correlation_id" => text(p.correlation_id()),
            "message_id" => text(p.message_id()),
            "timestamp" => p.timestamp().map_or(MetadataValue::Null, MetadataValue::UInt),
            "type" => text(p.kind()),
            "app_id" => text(p.app_id()),
            "reply_to" => text(p.reply_to()),
            _ => continue,
        };
        metadata.insert(name.clone(), value);
    }
    metadata
}

/// One connection: declare, bind, qos, consume until stopped, cancelled or broken.
async fn session(
    options: &RabbitMqOptions,
    name: &str,
    stop: &mut watch::Receiver<bool>,
    deliver: &impl Fn(Vec<Message<Vec<u8>>>) -> bool,
    failures: &mut u32,
    ackers: &mut Vec<tokio::task::JoinHandle<()>>,
) -> Result<Ended, lapin::Error> {
    let connection = Connection::connect(&options.url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    if let Some(declare) = &options.declare {
        let mut arguments = FieldTable::default();
        for (key, value) in &declare.arguments {
            arguments.insert(key.as_str().into(), field_value(value));
        }
        let declare_options = QueueDeclareOptions {
            passive: declare.passive,
            durable: declare.durable,
            exclusive: declare.exclusive,
            auto_delete: declare.auto_delete,
            nowait: false,
        };
        channel.queue_declare(options.queue.as_str().into(), declare_options, arguments).await?;
    }
    for (exchange, routing_key) in &options.bindings {
        channel
            .queue_bind(
                options.queue.as_str().into(),
                exchange.as_str().into(),
                routing_key.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    channel.basic_qos(options.prefetch_count, BasicQosOptions::default()).await?;
    let tag = format!("{name}-{}", std::process::id());
    let mut consumer = channel
        .basic_consume(
            options.queue.as_str().into(),
            tag.as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    *failures = 0;
    let (acker, task) =
        ChannelAcker::start(connection, channel.clone(), options.on_success, options.on_failure);
    ackers.push(task);
    let acknowledger: Arc<dyn weir_broadway::Acknowledger> = acker.clone();
    let to_message = |delivery: lapin::message::Delivery| {
        let metadata = if options.metadata.is_empty() {
            Metadata::new()
        } else {
            metadata(&options.metadata, &delivery)
        };
        let data = AckData::new(delivery.delivery_tag).with_redelivered(delivery.redelivered);
        Message::new(delivery.data, acknowledger.clone(), data).with_metadata(metadata)
    };
    loop {
        tokio::select! {
            next = consumer.next() => {
                let Some(first) = next else { return Ok(Ended::Cancelled) };
                // What arrives within the receive window goes in the same chunk: the broker
                // streams deliveries one by one, and a chunk per delivery would cost every
                // stage a round per message.
                let window_end = tokio::time::Instant::now() + options.receive_window;
                let mut deliveries = vec![first?];
                while deliveries.len() < usize::from(options.prefetch_count) {
                    let next = match consumer.next().now_or_never() {
                        Some(ready) => Ok(ready),
                        None => tokio::time::timeout_at(window_end, consumer.next()).await,
                    };
                    match next {
                        Ok(Some(Ok(delivery))) => deliveries.push(delivery),
                        Ok(Some(Err(error))) => {
                            deliver_all(&acker, deliveries, &to_message, deliver);
                            return Err(error);
                        }
                        Ok(None) => {
                            deliver_all(&acker, deliveries, &to_message, deliver);
                            return Ok(Ended::Cancelled);
                        }
                        Err(_window_over) => break,
                    }
                }
                if !deliver_all(&acker, deliveries, &to_message, deliver) {
                    return Ok(Ended::Stopped);
                }
            }
            _ = stop.changed() => {
                // Drain: no new deliveries; those already sent to us still go in.
                let _channel_gone = channel.basic_cancel(tag.as_str().into(), BasicCancelOptions::default()).await;
                while let Some(Some(Ok(delivery))) = consumer.next().now_or_never() {
                    deliver_all(&acker, vec![delivery], &to_message, deliver);
                }
                return Ok(Ended::Stopped);
            }
        }
    }
}

/// Registers the tags, then hands the messages to the producer; false if it is gone (the
/// messages are then dropped, and the acknowledger requeues dropped messages).
fn deliver_all(
    acker: &ChannelAcker,
    deliveries: Vec<lapin::message::Delivery>,
    to_message: &impl Fn(lapin::message::Delivery) -> Message<Vec<u8>>,
    deliver: &impl Fn(Vec<Message<Vec<u8>>>) -> bool,
) -> bool {
    acker.delivered(deliveries.iter().map(|d| d.delivery_tag));
    deliver(deliveries.into_iter().map(to_message).collect())
}
