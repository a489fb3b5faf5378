//! SQS source (feature `sqs`, crate `aws-sdk-sqs`): broadway_sqs for weir.
//!
//! Each producer instance runs one poller: up to [`receives_in_flight`] `ReceiveMessage`
//! calls at once (SQS throughput is bound by request round trips), each asking for the
//! smaller of [`max_number_of_messages`] and the demand not yet asked for, so what is
//! received never exceeds what the pipeline asked for. After an empty receive its slot
//! waits [`receive_interval`] before asking again.
//!
//! Acknowledgement: on success the message is deleted (default) or left alone; on failure
//! it is left alone (default: it comes back after its visibility timeout, and the queue's
//! redrive policy moves it to a dead-letter queue after its maximum receive count), deleted
//! ([`AckAction::Ack`]), or made visible again at once ([`AckAction::RejectAndRequeue`]);
//! per message through [`Message::configure_ack`](weir_broadway::Message::configure_ack).
//! Deletes and visibility changes go out in batches of up to 10 per request
//! (`DeleteMessageBatch`, `ChangeMessageVisibilityBatch`), several requests at once; an
//! entry the queue refuses is reported per message (a `tracing` warning naming the message
//! id and the error code): that message comes back after its visibility timeout.
//!
//! Lease heartbeat: while a message is in the pipeline, its visibility timeout is extended
//! each time half of it has passed, so a long handler does not see its message delivered a
//! second time (broadway_sqs lacks it). Turn it off with [`visibility_heartbeat`].
//!
//! Drain: polling stops at once, including a long poll in flight (its request is dropped;
//! messages SQS had already picked for it come back after their visibility timeout); what
//! is in the pipeline is finished and deleted before [`Pipeline::stop`] returns.
//!
//! FIFO queues (a URL ending in `.fifo`): the message group id is requested and copied into
//! the metadata as `message_group_id`, and each message's [`AckData::group`] is a hash of
//! it. To keep each group's order through several processors, partition by it:
//! `ProcessorOptions::new().partition_by(sqs::message_group)` (and the same on the batcher).
//!
//! Tested against moto's SQS server, which has one gap found: a long poll on a FIFO queue
//! whose groups all have messages in flight waits its full time even when a delete frees a
//! group meanwhile (the FIFO test uses 1 s polls).
//!
//! [`receives_in_flight`]: SqsOptions::receives_in_flight
//! [`max_number_of_messages`]: SqsOptions::max_number_of_messages
//! [`receive_interval`]: SqsOptions::receive_interval
//! [`visibility_heartbeat`]: SqsOptions::visibility_heartbeat
//! [`Pipeline::stop`]: weir_broadway::Pipeline::stop
//! [`AckData::group`]: weir_broadway::AckData::group

mod acker;
mod client;
mod poller;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use weir_broadway::{AckAction, BoxError, Message, Producer, ProducerContext};

use crate::backoff::Backoff;
use crate::error::Error;

pub use aws_sdk_sqs::Client;

/// The message system attributes a producer can request (SQS's names).
///
/// # Examples
///
/// ```
/// use weir_connectors::sqs::{SqsOptions, ATTRIBUTES};
///
/// assert!(ATTRIBUTES.contains(&"SentTimestamp"));
/// let options = SqsOptions::new("http://127.0.0.1:9324/000000000000/q").attribute_names(["SenderId"]);
/// assert!(options.validate().is_ok());
/// ```
pub const ATTRIBUTES: &[&str] = &[
    "All",
    "ApproximateFirstReceiveTimestamp",
    "ApproximateReceiveCount",
    "AWSTraceHeader",
    "DeadLetterQueueSourceArn",
    "MessageDeduplicationId",
    "MessageGroupId",
    "SenderId",
    "SentTimestamp",
    "SequenceNumber",
];

/// Options of an SQS producer.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use weir_broadway::AckAction;
/// use weir_connectors::sqs::SqsOptions;
///
/// let options = SqsOptions::new("http://127.0.0.1:9324/000000000000/orders")
///     .endpoint_url("http://127.0.0.1:9324")
///     .credentials("test", "test")
///     .max_number_of_messages(10)
///     .wait_time_seconds(20)
///     .visibility_timeout(30)
///     .attribute_names(["SentTimestamp"])
///     .message_attribute_names(["All"])
///     .on_failure(AckAction::RejectAndRequeue);
/// assert!(options.validate().is_ok());
/// assert_eq!(
///     options.max_number_of_messages(11).validate().unwrap_err().to_string(),
///     "sqs.max_number_of_messages (11) must be between 1 and 10"
/// );
/// ```
#[derive(Debug, Clone)]
pub struct SqsOptions {
    queue_url: String,
    endpoint_url: Option<String>,
    region: Option<String>,
    /// The SDK's type: its `Debug` does not show the secret.
    credentials: Option<aws_sdk_sqs::config::Credentials>,
    client: Option<Client>,
    max_number_of_messages: i32,
    wait_time_seconds: i32,
    visibility_timeout: Option<i32>,
    attribute_names: Vec<String>,
    message_attribute_names: Vec<String>,
    receive_interval: Option<Duration>,
    receives_in_flight: usize,
    on_success: AckAction,
    on_failure: AckAction,
    visibility_heartbeat: bool,
    backoff: Backoff,
}

impl SqsOptions {
    /// Receive from the queue at `queue_url`. Defaults: up to 10 messages per receive, long
    /// polls of 20 s, the queue's visibility timeout, 4 receives in flight, no wait after
    /// an empty long poll (see [`receive_interval`](Self::receive_interval)), delete on
    /// success, nothing on failure, the lease heartbeat on;
    /// the region from `AWS_REGION` (or `AWS_DEFAULT_REGION`, else `us-east-1`) and the
    /// credentials from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` /
    /// `AWS_SESSION_TOKEN`, unless set here or a [`client`](Self::client) is given.
    pub fn new(queue_url: impl Into<String>) -> Self {
        SqsOptions {
            queue_url: queue_url.into(),
            endpoint_url: None,
            region: None,
            credentials: None,
            client: None,
            max_number_of_messages: 10,
            wait_time_seconds: 20,
            visibility_timeout: None,
            attribute_names: Vec::new(),
            message_attribute_names: Vec::new(),
            receive_interval: None,
            receives_in_flight: 4,
            on_success: AckAction::Ack,
            on_failure: AckAction::Noop,
            visibility_heartbeat: true,
            backoff: Backoff::default(),
        }
    }

    /// The endpoint to send requests to instead of AWS's (a local server).
    #[must_use]
    pub fn endpoint_url(mut self, url: impl Into<String>) -> Self {
        self.endpoint_url = Some(url.into());
        self
    }

    /// The AWS region.
    #[must_use]
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Static credentials (access key id and secret).
    #[must_use]
    pub fn credentials(mut self, access_key_id: impl Into<String>, secret: impl Into<String>) -> Self {
        let credentials =
            aws_sdk_sqs::config::Credentials::new(access_key_id.into(), secret.into(), None, None, "weir");
        self.credentials = Some(credentials);
        self
    }

    /// A client configured elsewhere (e.g. by `aws-config` for profiles, SSO or instance
    /// roles); then `endpoint_url`, `region` and `credentials` are not used.
    #[must_use]
    pub fn client(mut self, client: Client) -> Self {
        self.client = Some(client);
        self
    }

    /// Messages asked for per receive at most (1–10; default 10).
    #[must_use]
    pub fn max_number_of_messages(mut self, n: i32) -> Self {
        self.max_number_of_messages = n;
        self
    }

    /// How long a receive waits for messages (long polling, 0–20 s; default 20).
    #[must_use]
    pub fn wait_time_seconds(mut self, seconds: i32) -> Self {
        self.wait_time_seconds = seconds;
        self
    }

    /// The visibility timeout of received messages (0–43,200 s; default: the queue's).
    #[must_use]
    pub fn visibility_timeout(mut self, seconds: i32) -> Self {
        self.visibility_timeout = Some(seconds);
        self
    }

    /// Message system attributes to copy into the metadata (names from [`ATTRIBUTES`];
    /// `All` for all), under `attributes`. `ApproximateReceiveCount` is always requested
    /// (it says whether a message is redelivered), and `MessageGroupId` for FIFO queues.
    #[must_use]
    pub fn attribute_names<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.attribute_names = names.into_iter().map(Into::into).collect();
        self
    }

    /// Message attributes to copy into the metadata (names, `prefix.*`, or `All`), under
    /// `message_attributes`.
    #[must_use]
    pub fn message_attribute_names<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.message_attribute_names = names.into_iter().map(Into::into).collect();
        self
    }

    /// How long a receive slot waits after a receive that returned nothing. Default: no
    /// wait after a long poll (it waited already); 5 s (Broadway's default) when
    /// `wait_time_seconds` is 0, so that an empty queue is not polled in a busy loop.
    #[must_use]
    pub fn receive_interval(mut self, interval: Duration) -> Self {
        self.receive_interval = Some(interval);
        self
    }

    /// The wait after an empty receive (see [`receive_interval`](Self::receive_interval)).
    fn empty_receive_wait(&self) -> Duration {
        self.receive_interval.unwrap_or(if self.wait_time_seconds > 0 {
            Duration::ZERO
        } else {
            Duration::from_secs(5)
        })
    }

    /// `ReceiveMessage` calls in flight at once per producer (default 4).
    #[must_use]
    pub fn receives_in_flight(mut self, n: usize) -> Self {
        self.receives_in_flight = n;
        self
    }

    /// How successful messages are acknowledged: [`AckAction::Ack`] (delete, the default)
    /// or [`AckAction::Noop`].
    #[must_use]
    pub fn on_success(mut self, action: AckAction) -> Self {
        self.on_success = action;
        self
    }

    /// How failed messages are acknowledged: [`AckAction::Noop`] (the default: visible
    /// again after the visibility timeout), [`AckAction::Ack`] (delete) or
    /// [`AckAction::RejectAndRequeue`] (visible again now). Messages the pipeline dropped
    /// without handling them are made visible again now whatever this says.
    #[must_use]
    pub fn on_failure(mut self, action: AckAction) -> Self {
        self.on_failure = action;
        self
    }

    /// Whether to extend the visibility timeout of messages still in the pipeline when
    /// half of it has passed (default true).
    #[must_use]
    pub fn visibility_heartbeat(mut self, on: bool) -> Self {
        self.visibility_heartbeat = on;
        self
    }

    /// How long to wait before receiving again after a failed receive.
    #[must_use]
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The SDK client these options make (or the one given): the producer's, e.g. to send
    /// to the queue with the same settings.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`] when no credentials are given, in the environment or by a
    /// client.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_connectors::sqs::SqsOptions;
    ///
    /// let options = SqsOptions::new("http://127.0.0.1:9324/000000000000/orders")
    ///     .endpoint_url("http://127.0.0.1:9324")
    ///     .credentials("test", "test");
    /// let client = options.sdk_client().unwrap();
    /// assert_eq!(client.config().region().map(|r| r.as_ref()), Some("us-east-1"));
    /// ```
    pub fn sdk_client(&self) -> Result<Client, Error> {
        client::build(self)
    }

    /// Whether the queue is a FIFO queue (its name ends in `.fifo`).
    fn fifo(&self) -> bool {
        self.queue_url.ends_with(".fifo")
    }

    /// Checks the options.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`] naming the option and the value.
    pub fn validate(&self) -> Result<(), Error> {
        let http = |url: &str| url.starts_with("http://") || url.starts_with("https://");
        if !http(&self.queue_url) {
            return Err(Error::invalid(
                "sqs.queue_url",
                format!("{:?}", self.queue_url),
                "must be an http:// or https:// URL",
            ));
        }
        if let Some(url) = self.endpoint_url.as_deref().filter(|url| !http(url)) {
            return Err(Error::invalid(
                "sqs.endpoint_url",
                format!("{url:?}"),
                "must be an http:// or https:// URL",
            ));
        }
        if !(1..=10).contains(&self.max_number_of_messages) {
            return Err(Error::invalid(
                "sqs.max_number_of_messages",
                self.max_number_of_messages,
                "must be between 1 and 10",
            ));
        }
        if !(0..=20).contains(&self.wait_time_seconds) {
            return Err(Error::invalid(
                "sqs.wait_time_seconds",
                self.wait_time_seconds,
                "must be between 0 and 20",
            ));
        }
        if let Some(timeout) = self.visibility_timeout.filter(|t| !(0..=43_200).contains(t)) {
            return Err(Error::invalid("sqs.visibility_timeout", timeout, "must be between 0 and 43200"));
        }
        Error::check_names("sqs.attribute_names", &self.attribute_names, ATTRIBUTES)?;
        if let Some(empty) = self.message_attribute_names.iter().find(|name| name.is_empty()) {
            return Err(Error::invalid(
                "sqs.message_attribute_names",
                format!("{empty:?}"),
                "must not be empty",
            ));
        }
        if self.receives_in_flight == 0 {
            return Err(Error::invalid("sqs.receives_in_flight", 0, "must be greater than 0"));
        }
        acker::ON_SUCCESS.check("sqs.on_success", self.on_success)?;
        acker::ON_FAILURE.check("sqs.on_failure", self.on_failure)?;
        self.backoff.validate("sqs.backoff")
    }
}

/// What the poller hands the producer.
pub enum Incoming {
    /// Received messages.
    Messages(Vec<Message<String>>),
}

/// A producer of the messages of an SQS queue (broadway_sqs's producer).
///
/// Give [`SqsProducer::factory`] to [`Builder::producer`](weir_broadway::Builder::producer).
/// The message data is the body.
///
/// # Examples
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use weir_broadway::{BoxError, Handler, Message, Pipeline, ProducerOptions};
/// use weir_connectors::sqs::{SqsOptions, SqsProducer};
///
/// struct Print;
/// impl Handler for Print {
///     type Data = String;
///     type Output = ();
///     async fn handle_message(&self, message: &mut Message<String>) -> Result<(), BoxError> {
///         println!("{}", message.data());
///         Ok(())
///     }
/// }
///
/// let options = SqsOptions::new("https://sqs.eu-west-1.amazonaws.com/123456789012/orders");
/// let pipeline = Pipeline::builder("orders", Print)
///     .producer(SqsProducer::factory(options)?, ProducerOptions::new())
///     .start()
///     .await?;
/// pipeline.stop().await;
/// # Ok(()) }
/// ```
pub struct SqsProducer {
    options: Arc<SqsOptions>,
    client: Client,
    /// Demand for the poller; `None` until the first demand starts it.
    demand: Option<mpsc::UnboundedSender<usize>>,
    stop: Option<watch::Sender<bool>>,
}

impl SqsProducer {
    /// A factory of producers for `options`; the producers share one client.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`] for invalid options, or when no credentials are given, in
    /// the environment or by a client.
    pub fn factory(options: SqsOptions) -> Result<impl Fn() -> SqsProducer + Send + Sync + 'static, Error> {
        options.validate()?;
        let client = options.sdk_client()?;
        let options = Arc::new(options);
        Ok(move || SqsProducer { options: options.clone(), client: client.clone(), demand: None, stop: None })
    }
}

impl Drop for SqsProducer {
    fn drop(&mut self) {
        if let Some(stop) = &self.stop {
            let _task_gone = stop.send(true);
        }
    }
}

impl Producer for SqsProducer {
    type Event = Message<String>;
    type Info = Incoming;

    async fn handle_demand(
        &mut self,
        demand: usize,
        ctx: &mut ProducerContext<'_, Incoming>,
    ) -> Result<Vec<Message<String>>, BoxError> {
        let sender = match &self.demand {
            Some(sender) => sender,
            None => {
                let (demand, demanded) = mpsc::unbounded_channel();
                let (stop, stopped) = watch::channel(false);
                let deliver = ctx.sender();
                // The pipeline waits for the poller, and it for the last deletes.
                ctx.spawn(poller::run(
                    self.options.clone(),
                    self.client.clone(),
                    demanded,
                    stopped,
                    move |messages| deliver.send(Incoming::Messages(messages)).is_ok(),
                ));
                self.stop = Some(stop);
                self.demand.insert(demand)
            }
        };
        let _poller_stopped = sender.send(demand);
        Ok(Vec::new())
    }

    async fn handle_info(
        &mut self,
        Incoming::Messages(messages): Incoming,
        _: &mut ProducerContext<'_, Incoming>,
    ) -> Result<Vec<Message<String>>, BoxError> {
        Ok(messages)
    }

    async fn prepare_for_draining(
        &mut self,
        _: &mut ProducerContext<'_, Incoming>,
    ) -> Result<Vec<Message<String>>, BoxError> {
        if let Some(stop) = &self.stop {
            let _task_gone = stop.send(true);
        }
        Ok(Vec::new())
    }
}

/// A partition function keeping the order of each FIFO message group: give it to
/// `ProcessorOptions::partition_by` and `BatcherOptions::partition_by`.
///
/// # Examples
///
/// ```
/// use weir_broadway::{BatcherOptions, ProcessorOptions};
/// use weir_connectors::sqs;
///
/// let processors = ProcessorOptions::<String>::new().concurrency(4).partition_by(sqs::message_group);
/// let batcher = BatcherOptions::<String>::new().partition_by(sqs::message_group);
/// # let _ = (processors, batcher);
/// ```
pub fn message_group<D>(message: &Message<D>) -> u64 {
    message.ack_data().group
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::SqsOptions;

    #[test]
    fn an_empty_queue_is_not_polled_in_a_busy_loop() {
        let options = SqsOptions::new("http://127.0.0.1:9324/000000000000/q");
        assert_eq!(options.empty_receive_wait(), Duration::ZERO, "the long poll waited");
        let short = options.clone().wait_time_seconds(0);
        assert_eq!(short.empty_receive_wait(), Duration::from_secs(5), "Broadway's default");
        let chosen = short.receive_interval(Duration::from_millis(200));
        assert_eq!(chosen.empty_receive_wait(), Duration::from_millis(200));
    }
}
