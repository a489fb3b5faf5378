//! Kafka source (feature `kafka`, crate `rdkafka`): broadway_kafka for weir.
//!
//! Each producer instance is one consumer in the group [`KafkaOptions::new`] names,
//! subscribed to its topics (`ProducerOptions::concurrency` > 1 means several members of
//! the group in one pipeline). Its consumer runs on a thread of its own; messages carry the
//! record's value as data, the offset as [`AckData::tag`](weir_broadway::AckData) and an
//! ordering group as [`AckData::group`](weir_broadway::AckData); [`KafkaOptions::metadata`]
//! copies topic, partition, offset, key, timestamp or headers into the metadata.
//!
//! ```no_run
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use std::time::Duration;
//! use weir_broadway::{BatchHandler, BatchInfo, BatcherOptions, BoxError, Handler, Message, Pipeline};
//! use weir_broadway::{ProcessorOptions, ProducerOptions};
//! use weir_connectors::kafka::{KafkaOptions, KafkaProducer, OffsetReset};
//!
//! struct Print;
//! impl Handler for Print {
//!     type Data = Vec<u8>;
//!     type Output = String;
//!     async fn handle_message(&self, message: &mut Message<Vec<u8>>) -> Result<String, BoxError> {
//!         Ok(String::from_utf8(message.data().clone())?)
//!     }
//! }
//! impl BatchHandler for Print {
//!     async fn handle_batch(&self, batch: &mut [Message<String>], _: &BatchInfo) -> Result<(), BoxError> {
//!         println!("{} orders", batch.len()); // insert them; the offsets are committed after
//!         Ok(())
//!     }
//! }
//!
//! let options = KafkaOptions::new("127.0.0.1:9092", "order-importer", ["orders"])
//!     .offset_reset_policy(OffsetReset::Earliest);
//! let pipeline = Pipeline::builder("orders", Print)
//!     .producer(KafkaProducer::factory(options)?, ProducerOptions::new())
//!     .processors(ProcessorOptions::new().concurrency(4))
//!     .batcher("default", BatcherOptions::new().batch_size(500).batch_timeout(Duration::from_millis(100)))
//!     .start()
//!     .await?;
//! // ... until shutdown:
//! pipeline.stop().await;
//! # Ok(()) }
//! ```
//!
//! # Ordering
//!
//! By default the messages of one partition go through one processor and one batch
//! processor, in offset order: the producer is [ordered by
//! group](weir_broadway::Producer::ORDERED_BY_GROUP) and a message's group is its
//! partition's id (`partition × number of topics + index of the topic`, small and dense, so
//! partitions spread evenly over the stages). A pipeline's own `partition_by` overrides it.
//! With [`OrderBy::Key`] the group is a hash of the record's key instead (records without a
//! key keep their partition's id): the messages of one key stay in order, and a single busy
//! partition can use every processor. Either way commits stay per partition and contiguous.
//!
//! A processor busy with a message holds back its partitions (or keys) behind it. As in any
//! partitioned pipeline, records fetched for it wait in the producer stage and use up demand
//! the other processors asked for: a message held long enough slows the whole pipeline
//! until it is done. Keep `handle_message` short, or order by key to spread a partition.
//!
//! # Offsets and commits
//!
//! A message's offset is committed only once it and every earlier offset of its partition
//! (that this consumer dispatched) are acknowledged. A failed message counts as
//! acknowledged, as in broadway_kafka: `handle_failed` is where to re-route it (to a
//! dead-letter topic, a table). A message the pipeline *dropped* without handling it
//! ([`Failure::Dropped`](weir_broadway::Failure::Dropped): a stage crashed, or was aborted at
//! the shutdown timeout) is not: the commit of its partition stays below it until the
//! partition changes hands, so its next owner fetches it again. Commits go out together,
//! asynchronously, every [`commit_interval`](KafkaOptions::commit_interval), and
//! synchronously when partitions are revoked and when draining.
//!
//! # Back-pressure and fairness
//!
//! The consumer fetches only what the pipeline asked for and has not received yet: each
//! assigned partition has its own librdkafka queue, polled in turn for a share of that
//! demand, so one busy partition cannot starve the others. Besides the demand, memory holds
//! librdkafka's prefetch per partition, set with [`client_config`](KafkaOptions::client_config)
//! (`queued.max.messages.kbytes`, `queued.min.messages`, `fetch.max.bytes`...).
//!
//! # Rebalances
//!
//! When partitions are revoked, the consumer stops fetching them and drops what it fetched
//! and did not dispatch yet; it waits, at most [`revoke_timeout`](KafkaOptions::revoke_timeout),
//! until every message of theirs in the pipeline (processors, partial batches) is
//! acknowledged; it commits, and lets the rebalance go on. Acknowledgements that arrive
//! later, for a partition it no longer owns, are ignored: the new owner starts from the
//! commit. When the timeout passes first, or the assignment was lost (the group moved on
//! without this member), the new owner gets the uncommitted messages again. Both eager and
//! cooperative (`partition.assignment.strategy` `cooperative-sticky`) protocols work; a new
//! assignment starts from the committed offset, or from the
//! [`offset_reset_policy`](KafkaOptions::offset_reset_policy) with [`BeginOffset::Reset`].
//!
//! # Broker loss and drain
//!
//! librdkafka reconnects to brokers by itself (`reconnect.backoff.ms`); a member evicted
//! while the broker was away rejoins, with a lost assignment as above. A fatal client error
//! ends the consumer: a new one joins after [`backoff`](KafkaOptions::backoff).
//! [`Pipeline::stop`](weir_broadway::Pipeline::stop) stops fetching, finishes what is in
//! flight, commits, and leaves the group before it returns.
//!
//! Delivery is at least once: after a revoke or drain timeout, a lost assignment or a crash,
//! messages come again. Write idempotently (the batch writers upsert by default).
//!
//! # Tested against
//!
//! The tests run against Tansu, a Kafka-compatible broker (`scripts/services.sh kafka`),
//! which differs from Kafka in ways that shape them: its "latest" offset is wrong (the tests
//! use [`OffsetReset::Earliest`] and a fresh topic and group each), it cannot add partitions
//! to a topic (topics are created with their partitions up front), it keeps nothing across
//! restarts, and it holds every group join for half the session timeout (the tests set
//! `session.timeout.ms` to 6000).

mod acker;
mod consumer;
mod fetched;

use std::sync::Arc;
use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::{ClientConfig, Offset};
use weir_broadway::{BoxError, Message, Producer, ProducerContext};

use crate::backoff::Backoff;
use crate::error::Error;
use consumer::Shared;

/// The metadata a producer can copy into messages: `topic` (text), `partition` and
/// `offset` (integers), `key` (bytes, or null), `timestamp` (milliseconds since the epoch,
/// or null) and `headers` (a map of bytes or null).
///
/// # Examples
///
/// ```
/// assert!(weir_connectors::kafka::METADATA.contains(&"key"));
/// ```
pub const METADATA: &[&str] = &["topic", "partition", "offset", "key", "timestamp", "headers"];

/// The client settings the producer sets itself, refused in
/// [`KafkaOptions::client_config`].
const RESERVED: &[&str] = &[
    "bootstrap.servers",
    "metadata.broker.list",
    "group.id",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "auto.offset.reset",
];

/// Where a partition starts when the group has no committed offset for it (or with
/// [`BeginOffset::Reset`]): broadway_kafka's `offset_reset_policy`.
///
/// # Examples
///
/// ```
/// use weir_connectors::kafka::OffsetReset;
///
/// assert_eq!(OffsetReset::default(), OffsetReset::Latest);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OffsetReset {
    /// The oldest record still in the partition.
    Earliest,
    /// Only records produced from now on (the default, as in broadway_kafka).
    #[default]
    Latest,
}

impl OffsetReset {
    fn as_str(self) -> &'static str {
        match self {
            OffsetReset::Earliest => "earliest",
            OffsetReset::Latest => "latest",
        }
    }

    fn offset(self) -> Offset {
        match self {
            OffsetReset::Earliest => Offset::Beginning,
            OffsetReset::Latest => Offset::End,
        }
    }
}

/// Where an assigned partition starts: broadway_kafka's `begin_offset`.
///
/// # Examples
///
/// ```
/// use weir_connectors::kafka::BeginOffset;
///
/// assert_eq!(BeginOffset::default(), BeginOffset::Committed);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BeginOffset {
    /// At the group's committed offset; at the [`OffsetReset`] policy without one.
    #[default]
    Committed,
    /// At the [`OffsetReset`] policy, whatever the group committed, on every assignment
    /// (to replay a topic, or to skip a backlog).
    Reset,
}

/// Which messages must stay in order through the pipeline.
///
/// # Examples
///
/// ```
/// use weir_connectors::kafka::{KafkaOptions, OrderBy};
///
/// // One busy partition of keyed events: each key in order, over every processor.
/// let options = KafkaOptions::new("127.0.0.1:9092", "g", ["events"]).order_by(OrderBy::Key);
/// assert!(options.validate().is_ok());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OrderBy {
    /// The messages of a partition, in offset order (the default).
    #[default]
    Partition,
    /// The messages of a key, in offset order; those of different keys of one partition
    /// run in parallel. Records without a key are ordered by partition.
    Key,
}

/// Options of a Kafka producer.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use weir_connectors::kafka::{BeginOffset, KafkaOptions, OffsetReset};
///
/// let options = KafkaOptions::new("127.0.0.1:9092", "importer", ["orders", "refunds"])
///     .offset_reset_policy(OffsetReset::Earliest)
///     .begin_offset(BeginOffset::Committed)
///     .client_config("session.timeout.ms", "10000")
///     .client_config("fetch.max.bytes", "10485760")
///     .commit_interval(Duration::from_millis(500))
///     .metadata(["partition", "offset", "key"]);
/// assert!(options.validate().is_ok());
/// assert_eq!(
///     KafkaOptions::new("127.0.0.1:9092", "", ["orders"]).validate().unwrap_err().to_string(),
///     "kafka.group_id (\"\") must not be empty"
/// );
/// ```
#[derive(Debug, Clone)]
pub struct KafkaOptions {
    hosts: String,
    group_id: String,
    topics: Vec<String>,
    offset_reset_policy: OffsetReset,
    begin_offset: BeginOffset,
    order_by: OrderBy,
    client_config: Vec<(String, String)>,
    commit_interval: Duration,
    revoke_timeout: Duration,
    metadata: Vec<String>,
    backoff: Backoff,
}

impl KafkaOptions {
    /// Consume `topics` as a member of the consumer group `group_id`, bootstrapping from
    /// `hosts` (`host:port`, comma-separated). Defaults: [`OffsetReset::Latest`],
    /// [`BeginOffset::Committed`], [`OrderBy::Partition`], commits every second, revokes
    /// and drains wait up to 30 s, no metadata, random-exponential backoff from 1 s to 30 s.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_connectors::kafka::KafkaOptions;
    ///
    /// let options = KafkaOptions::new("10.0.0.1:9092,10.0.0.2:9092", "billing", ["invoices"]);
    /// assert!(options.validate().is_ok());
    /// ```
    pub fn new<T: Into<String>>(
        hosts: impl Into<String>,
        group_id: impl Into<String>,
        topics: impl IntoIterator<Item = T>,
    ) -> Self {
        KafkaOptions {
            hosts: hosts.into(),
            group_id: group_id.into(),
            topics: topics.into_iter().map(Into::into).collect(),
            offset_reset_policy: OffsetReset::default(),
            begin_offset: BeginOffset::default(),
            order_by: OrderBy::default(),
            client_config: Vec::new(),
            commit_interval: Duration::from_secs(1),
            revoke_timeout: Duration::from_secs(30),
            metadata: Vec::new(),
            backoff: Backoff::default(),
        }
    }

    /// Where a partition without a committed offset starts (librdkafka's
    /// `auto.offset.reset`).
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_connectors::kafka::{KafkaOptions, OffsetReset};
    ///
    /// let options = KafkaOptions::new("127.0.0.1:9092", "g", ["t"])
    ///     .offset_reset_policy(OffsetReset::Earliest);
    /// assert!(options.validate().is_ok());
    /// ```
    #[must_use]
    pub fn offset_reset_policy(mut self, policy: OffsetReset) -> Self {
        self.offset_reset_policy = policy;
        self
    }

    /// Where an assigned partition starts: the committed offset (default), or the reset
    /// policy.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_connectors::kafka::{BeginOffset, KafkaOptions, OffsetReset};
    ///
    /// // Read the whole topic again, whatever the group committed.
    /// let options = KafkaOptions::new("127.0.0.1:9092", "replay", ["t"])
    ///     .offset_reset_policy(OffsetReset::Earliest)
    ///     .begin_offset(BeginOffset::Reset);
    /// assert!(options.validate().is_ok());
    /// ```
    #[must_use]
    pub fn begin_offset(mut self, begin: BeginOffset) -> Self {
        self.begin_offset = begin;
        self
    }

    /// Which messages stay in order: those of a partition (default) or of a key.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_connectors::kafka::{KafkaOptions, OrderBy};
    ///
    /// let options = KafkaOptions::new("127.0.0.1:9092", "g", ["t"]).order_by(OrderBy::Key);
    /// assert!(options.validate().is_ok());
    /// ```
    #[must_use]
    pub fn order_by(mut self, order: OrderBy) -> Self {
        self.order_by = order;
        self
    }

    /// Sets a librdkafka client or consumer setting (see librdkafka's CONFIGURATION.md):
    /// fetch sizes, timeouts, `client.id`, `partition.assignment.strategy`... The producer
    /// sets `bootstrap.servers`, `group.id`, `auto.offset.reset` and turns automatic commits
    /// off itself: those are refused.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_connectors::kafka::KafkaOptions;
    ///
    /// let options = KafkaOptions::new("127.0.0.1:9092", "g", ["t"])
    ///     .client_config("max.poll.interval.ms", "600000");
    /// assert!(options.validate().is_ok());
    /// let unknown = KafkaOptions::new("127.0.0.1:9092", "g", ["t"]).client_config("no.such.setting", "1");
    /// let error = unknown.validate().unwrap_err().to_string();
    /// assert!(error.starts_with("kafka.client_config (no.such.setting=1) is refused by librdkafka"));
    /// ```
    #[must_use]
    pub fn client_config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.client_config.push((key.into(), value.into()));
        self
    }

    /// How often acknowledged offsets are committed (default 1 s). Revokes and drains
    /// commit at once.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use weir_connectors::kafka::KafkaOptions;
    ///
    /// let options = KafkaOptions::new("127.0.0.1:9092", "g", ["t"])
    ///     .commit_interval(Duration::from_millis(200));
    /// assert!(options.validate().is_ok());
    /// ```
    #[must_use]
    pub fn commit_interval(mut self, interval: Duration) -> Self {
        self.commit_interval = interval;
        self
    }

    /// How long a revoke (and a drain) waits for the messages in flight of the partitions
    /// it gives up (default 30 s); then it commits what is acknowledged, and the next owner
    /// gets the rest again. The group's rebalance waits as long: keep it well below
    /// `max.poll.interval.ms` (librdkafka's default is 300 s).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use weir_connectors::kafka::KafkaOptions;
    ///
    /// let options = KafkaOptions::new("127.0.0.1:9092", "g", ["t"]).revoke_timeout(Duration::from_secs(10));
    /// assert!(options.validate().is_ok());
    /// ```
    #[must_use]
    pub fn revoke_timeout(mut self, timeout: Duration) -> Self {
        self.revoke_timeout = timeout;
        self
    }

    /// Metadata to copy into each message (names from [`METADATA`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_connectors::kafka::KafkaOptions;
    ///
    /// let options = KafkaOptions::new("127.0.0.1:9092", "g", ["t"])
    ///     .metadata(["topic", "partition", "offset"]);
    /// assert!(options.validate().is_ok());
    /// ```
    #[must_use]
    pub fn metadata<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.metadata = names.into_iter().map(Into::into).collect();
        self
    }

    /// How long to wait before a new consumer replaces one that failed.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use weir_connectors::{kafka::KafkaOptions, Backoff};
    ///
    /// let options = KafkaOptions::new("127.0.0.1:9092", "g", ["t"])
    ///     .backoff(Backoff::exponential(Duration::from_millis(100), Duration::from_secs(5)));
    /// assert!(options.validate().is_ok());
    /// ```
    #[must_use]
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Checks the options, the client settings included (librdkafka checks names and
    /// values, without connecting).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`] naming the option, the value and the rule.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_connectors::kafka::KafkaOptions;
    ///
    /// let options = KafkaOptions::new("127.0.0.1:9092", "g", ["t"]).metadata(["offsets"]);
    /// let error = options.validate().unwrap_err();
    /// assert_eq!(
    ///     error.to_string(),
    ///     "kafka.metadata (\"offsets\") must be one of topic, partition, offset, key, timestamp, headers"
    /// );
    /// ```
    pub fn validate(&self) -> Result<(), Error> {
        let host_port = |entry: &str| {
            entry.rsplit_once(':').is_some_and(|(host, port)| {
                !host.is_empty() && port.parse::<u16>().is_ok_and(|port| port > 0)
            })
        };
        if self.hosts.is_empty() || !self.hosts.split(',').all(|entry| host_port(entry.trim())) {
            return Err(Error::invalid(
                "kafka.hosts",
                format!("{:?}", self.hosts),
                "must be host:port, comma-separated",
            ));
        }
        if self.group_id.is_empty() {
            return Err(Error::invalid("kafka.group_id", "\"\"", "must not be empty"));
        }
        if self.topics.is_empty() {
            return Err(Error::invalid("kafka.topics", "[]", "must name at least one topic"));
        }
        let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        for (i, topic) in self.topics.iter().enumerate() {
            if topic.is_empty() || topic.len() > 249 || !topic.chars().all(legal) {
                return Err(Error::invalid(
                    "kafka.topics",
                    format!("{topic:?}"),
                    "must be a topic name: 1 to 249 of a-z, A-Z, 0-9, '.', '_', '-' (no patterns)",
                ));
            }
            if self.topics[..i].contains(topic) {
                return Err(Error::invalid("kafka.topics", format!("{topic:?}"), "must not repeat a topic"));
            }
        }
        if let Some((key, value)) =
            self.client_config.iter().find(|(key, _)| RESERVED.contains(&key.as_str()))
        {
            return Err(Error::invalid(
                "kafka.client_config",
                format!("{key}={value}"),
                "is set by the producer: use KafkaOptions::new and offset_reset_policy",
            ));
        }
        if let Err(error) = self.consumer_config().create_native_config() {
            let (setting, rule) = match error {
                KafkaError::ClientConfig(_, description, key, value) => {
                    (format!("{key}={value}"), description)
                }
                other => (String::new(), other.to_string()),
            };
            return Err(Error::invalid(
                "kafka.client_config",
                setting,
                format!("is refused by librdkafka: {rule}"),
            ));
        }
        if self.commit_interval.is_zero() {
            return Err(Error::invalid("kafka.commit_interval", "0s", "must be greater than 0"));
        }
        if self.revoke_timeout.is_zero() {
            return Err(Error::invalid("kafka.revoke_timeout", "0s", "must be greater than 0"));
        }
        Error::check_names("kafka.metadata", &self.metadata, METADATA)?;
        self.backoff.validate("kafka.backoff")
    }

    /// The librdkafka settings of the consumer.
    fn consumer_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        for (key, value) in &self.client_config {
            config.set(key, value);
        }
        config
            .set("bootstrap.servers", &self.hosts)
            .set("group.id", &self.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", self.offset_reset_policy.as_str());
        config
    }
}

/// The consumer thread's word that fetched records are ready: the [`KafkaProducer`]'s
/// [`Producer::Info`]. Only the producer makes them.
///
/// # Examples
///
/// ```
/// use weir_broadway::Producer;
/// use weir_connectors::kafka::{KafkaProducer, RecordsReady};
///
/// fn info_of<P: Producer<Info = RecordsReady>>() {}
/// info_of::<KafkaProducer>();
/// ```
#[derive(Debug)]
pub struct RecordsReady(());

/// A producer of the records of Kafka topics, as a member of a consumer group
/// (broadway_kafka's producer). See the [module](self) for ordering, commits, rebalances and
/// drain.
///
/// Give [`KafkaProducer::factory`] to [`Builder::producer`](weir_broadway::Builder::producer).
/// The consumer starts with the first demand; messages carry the record's value (empty for
/// a null value).
///
/// # Examples
///
/// ```
/// use weir_broadway::Producer;
/// use weir_connectors::kafka::{KafkaOptions, KafkaProducer};
///
/// let factory = KafkaProducer::factory(KafkaOptions::new("127.0.0.1:9092", "g", ["orders"])).unwrap();
/// let _producer: KafkaProducer = factory(); // nothing connects before the pipeline asks
/// assert!(KafkaProducer::ORDERED_BY_GROUP);
/// ```
pub struct KafkaProducer {
    options: Arc<KafkaOptions>,
    shared: Option<Arc<Shared>>,
}

impl KafkaProducer {
    /// A factory of producers for `options`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`] for invalid options.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_connectors::kafka::{KafkaOptions, KafkaProducer};
    ///
    /// let error = KafkaProducer::factory(KafkaOptions::new("127.0.0.1", "g", ["t"])).err().unwrap();
    /// assert_eq!(error.to_string(), "kafka.hosts (\"127.0.0.1\") must be host:port, comma-separated");
    /// ```
    pub fn factory(
        options: KafkaOptions,
    ) -> Result<impl Fn() -> KafkaProducer + Send + Sync + 'static, Error> {
        options.validate()?;
        let options = Arc::new(options);
        Ok(move || KafkaProducer { options: options.clone(), shared: None })
    }

    /// Starts the consumer thread; the pipeline waits for it (it commits and leaves the
    /// group last).
    fn start(&mut self, ctx: &ProducerContext<'_, RecordsReady>) -> Result<Arc<Shared>, BoxError> {
        let shared = Arc::new(Shared::default());
        let (done, finished) = tokio::sync::oneshot::channel::<()>();
        let (options, thread_shared, sender) = (self.options.clone(), shared.clone(), ctx.sender());
        let name = ctx.name().to_owned();
        std::thread::Builder::new().name(format!("weir-kafka-{}", ctx.index())).spawn(move || {
            consumer::run(options, thread_shared, sender, name);
            drop(done);
        })?;
        ctx.spawn(async move {
            let _thread_ended = finished.await;
        });
        self.shared = Some(shared.clone());
        Ok(shared)
    }
}

impl Drop for KafkaProducer {
    fn drop(&mut self) {
        if let Some(shared) = &self.shared {
            shared.stop();
        }
    }
}

impl Producer for KafkaProducer {
    type Event = Message<Vec<u8>>;
    type Info = RecordsReady;

    const ORDERED_BY_GROUP: bool = true;

    async fn handle_demand(
        &mut self,
        demand: usize,
        ctx: &mut ProducerContext<'_, RecordsReady>,
    ) -> Result<Vec<Message<Vec<u8>>>, BoxError> {
        let shared = match &self.shared {
            Some(shared) if shared.lost() => return Err("kafka: the consumer thread ended".into()),
            Some(shared) => shared.clone(),
            None => self.start(ctx)?,
        };
        let mut fetched = shared.fetched();
        fetched.ask(demand);
        let messages = fetched.take();
        let fetch_more = fetched.room() > 0;
        drop(fetched);
        if fetch_more {
            shared.wake.notify();
        }
        Ok(messages)
    }

    async fn handle_info(
        &mut self,
        _: RecordsReady,
        _: &mut ProducerContext<'_, RecordsReady>,
    ) -> Result<Vec<Message<Vec<u8>>>, BoxError> {
        let Some(shared) = &self.shared else { return Ok(Vec::new()) };
        let mut fetched = shared.fetched();
        fetched.woken();
        Ok(fetched.take())
    }

    async fn prepare_for_draining(
        &mut self,
        _: &mut ProducerContext<'_, RecordsReady>,
    ) -> Result<Vec<Message<Vec<u8>>>, BoxError> {
        if let Some(shared) = &self.shared {
            shared.stop();
        }
        Ok(Vec::new())
    }
}
