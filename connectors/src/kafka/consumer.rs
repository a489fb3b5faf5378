//! The consumer thread of one producer: a librdkafka `BaseConsumer` in the group, polled
//! from a thread of its own because its rebalance callbacks run inside `poll` and a revoke
//! blocks there until the revoked partitions' messages in flight are acknowledged.
//!
//! Each assigned partition gets its own queue (`split_partition_queue`): the thread polls a
//! partition only while the pipeline's demand is not covered, taking turns, so librdkafka's
//! per-partition prefetch is the only buffer besides the demand, and a busy partition cannot
//! crowd out the others. The consumer's own queue then carries only events (rebalances,
//! commit results, errors); every queue wakes the thread when it turns non-empty.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::base_consumer::PartitionQueue;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Message as _, Offset, TopicPartitionList};
use weir_broadway::{InfoSender, Metadata, MetadataValue};

use super::acker::{PartitionAcker, Wake};
use super::fetched::{Fetched, Record};
use super::{BeginOffset, KafkaOptions, OrderBy, RecordsReady};

/// What the producer and its consumer thread share.
#[derive(Default)]
pub(crate) struct Shared {
    fetched: Mutex<Fetched>,
    pub(crate) wake: Arc<Wake>,
    stop: AtomicBool,
    /// The consumer thread has ended.
    ended: AtomicBool,
}

impl Shared {
    pub(crate) fn fetched(&self) -> MutexGuard<'_, Fetched> {
        self.fetched.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drain: stop fetching, finish what is in flight, commit, leave the group.
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.fetched().stop();
        self.wake.notify();
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// The consumer thread ended without being stopped (it panicked).
    pub(crate) fn lost(&self) -> bool {
        self.ended.load(Ordering::SeqCst) && !self.stopping()
    }
}

/// Marks the consumer thread ended, however it ends.
struct Ended<'a>(&'a Shared);

impl Drop for Ended<'_> {
    fn drop(&mut self) {
        self.0.ended.store(true, Ordering::SeqCst);
    }
}

/// The most records taken from one partition queue at a time, so that one wake-up does not
/// hold the fetched records back from the producer for long.
const MAX_TURN: usize = 500;

/// An assigned partition: its queue and its acknowledger for this assignment.
struct Slot {
    acker: Arc<PartitionAcker>,
    /// The partition's dense id: `partition × topics + topic index`.
    id: u64,
    queue: PartitionQueue<KafkaContext>,
}

/// The consumer's context: librdkafka calls it back from `poll`, on the consumer thread.
struct KafkaContext {
    options: Arc<KafkaOptions>,
    shared: Arc<Shared>,
    name: String,
    /// The consumer itself, to split the queues of assigned partitions.
    consumer: OnceLock<Weak<BaseConsumer<KafkaContext>>>,
    /// Owned by the consumer thread; a mutex only because librdkafka's callbacks get `&self`.
    /// Each slot's queue holds the consumer: cleared before the consumer is dropped.
    slots: Mutex<Vec<Slot>>,
    /// The session got partitions: it worked, the backoff starts over.
    assigned_once: AtomicBool,
}

impl KafkaContext {
    fn slots(&self) -> MutexGuard<'_, Vec<Slot>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Splits off the queues of partitions about to be assigned, before the assignment:
    /// then librdkafka never forwards their records to the consumer's queue.
    fn assigning(&self, tpl: &TopicPartitionList) {
        let Some(consumer) = self.consumer.get().and_then(Weak::upgrade) else {
            return;
        };
        let topics = &self.options.topics;
        for element in tpl.elements() {
            let Some(index) = topics.iter().position(|topic| topic == element.topic()) else {
                continue;
            };
            let partition = element.partition();
            let Some(mut queue) = consumer.split_partition_queue(element.topic(), partition) else {
                tracing::warn!(
                    producer = %self.name,
                    topic = element.topic(),
                    partition,
                    "kafka: no queue for an assigned partition"
                );
                continue;
            };
            let wake = self.shared.wake.clone();
            queue.set_nonempty_callback(move || wake.notify());
            let acker = Arc::new(PartitionAcker::new(
                Arc::from(element.topic()),
                partition,
                self.shared.wake.clone(),
            ));
            let id = u64::try_from(partition).unwrap_or_default() * topics.len() as u64 + index as u64;
            self.shared.fetched().add(acker.clone());
            self.slots().push(Slot { acker, id, queue });
        }
        if tpl.count() > 0 {
            self.assigned_once.store(true, Ordering::Relaxed);
        }
        tracing::info!(producer = %self.name, partitions = tpl.count(), "kafka: partitions assigned");
    }

    /// Gives partitions up: drops what was fetched and not dispatched, waits (at most
    /// `revoke_timeout`) for their messages in flight, commits, and ignores what is
    /// acknowledged later. `lost` (a lost assignment: the group moved on already, a failed
    /// rebalance) skips the wait and the commit.
    fn revoked(&self, consumer: &BaseConsumer<KafkaContext>, tpl: &TopicPartitionList, lost: bool) {
        let keys: Vec<(String, i32)> =
            tpl.elements().iter().map(|e| (e.topic().to_owned(), e.partition())).collect();
        let gone = |acker: &PartitionAcker| {
            keys.iter().any(|(topic, partition)| **topic == *acker.topic && *partition == acker.partition)
        };
        let ackers = self.shared.fetched().remove(gone);
        self.slots().retain(|slot| !gone(&slot.acker));
        let timeout = if lost { None } else { Some(self.options.revoke_timeout) };
        give_up(consumer, &self.shared.wake, &ackers, timeout, &self.name, "revoke");
        tracing::info!(producer = %self.name, partitions = ackers.len(), lost, "kafka: partitions revoked");
    }
}

/// Gives partitions up: waits (at most `timeout`) until `ackers` have no message in flight,
/// commits their acknowledged offsets synchronously, and releases them, so that later
/// acknowledgements are ignored. Without a timeout (a lost assignment: the group moved on),
/// only releases them.
fn give_up(
    consumer: &BaseConsumer<KafkaContext>,
    wake: &Wake,
    ackers: &[Arc<PartitionAcker>],
    timeout: Option<Duration>,
    name: &str,
    why: &str,
) {
    if let Some(timeout) = timeout {
        for acker in ackers {
            acker.watch();
        }
        let deadline = Instant::now() + timeout;
        if !wake.wait_until(deadline, || ackers.iter().all(|a| a.in_flight() == 0)) {
            let in_flight: usize = ackers.iter().map(|a| a.in_flight()).sum();
            tracing::warn!(
                producer = %name,
                in_flight,
                ?timeout,
                "kafka: {why}: messages still in flight after the timeout; committing what is acknowledged, \
                 the partitions' next owner gets the rest again"
            );
        }
        commit(consumer, ackers, CommitMode::Sync, name);
        // The wait took the wake-up the consumer loop may need.
        wake.notify();
    }
    for acker in ackers {
        acker.release();
    }
}

/// Commits what `ackers` acknowledged since their last commit, in one request.
fn commit(
    consumer: &BaseConsumer<KafkaContext>,
    ackers: &[Arc<PartitionAcker>],
    mode: CommitMode,
    name: &str,
) {
    let mut tpl = TopicPartitionList::new();
    let mut sent = Vec::new();
    for acker in ackers {
        if let Some(offset) = acker.to_commit() {
            if tpl.add_partition_offset(&acker.topic, acker.partition, Offset::Offset(offset)).is_ok() {
                sent.push((acker, offset));
            }
        }
    }
    if sent.is_empty() {
        return;
    }
    if let Err(error) = consumer.commit(&tpl, mode) {
        tracing::warn!(
            producer = %name,
            %error,
            "kafka: commit failed; it goes again with the next one (or the partitions' next owner \
             gets the messages again)"
        );
        for (acker, offset) in sent {
            acker.commit_failed(offset);
        }
    }
}

impl ClientContext for KafkaContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(producer = %self.name, facility, "librdkafka: {message}");
            }
            RDKafkaLogLevel::Warning => {
                tracing::warn!(producer = %self.name, facility, "librdkafka: {message}")
            }
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(producer = %self.name, facility, "librdkafka: {message}");
            }
            RDKafkaLogLevel::Debug => {
                tracing::debug!(producer = %self.name, facility, "librdkafka: {message}")
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(producer = %self.name, %error, reason, "kafka: client error");
    }
}

impl ConsumerContext for KafkaContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<KafkaContext>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(consumer.rebalance_protocol(), RebalanceProtocol::Cooperative);
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                if self.options.begin_offset == BeginOffset::Reset {
                    let reset = self.options.offset_reset_policy.offset();
                    if let Err(error) = tpl.set_all_offsets(reset) {
                        tracing::warn!(
                            producer = %self.name,
                            %error,
                            "kafka: cannot reset the assigned offsets"
                        );
                    }
                }
                self.assigning(tpl);
                let assigned =
                    if cooperative { consumer.incremental_assign(tpl) } else { consumer.assign(tpl) };
                if let Err(error) = assigned {
                    tracing::warn!(producer = %self.name, %error, "kafka: assignment failed");
                    self.revoked(consumer, tpl, true);
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                self.revoked(consumer, tpl, consumer.assignment_lost());
                let unassigned =
                    if cooperative { consumer.incremental_unassign(tpl) } else { consumer.unassign() };
                if let Err(error) = unassigned {
                    tracing::warn!(producer = %self.name, %error, "kafka: unassignment failed");
                }
            }
            other => {
                tracing::warn!(
                    producer = %self.name,
                    error = ?other,
                    "kafka: rebalance failed; giving every partition up"
                );
                let all = self.shared.fetched().ackers();
                let mut every = TopicPartitionList::new();
                for acker in &all {
                    every.add_partition(&acker.topic, acker.partition);
                }
                self.revoked(consumer, &every, true);
                drop(every);
                if let Err(error) = consumer.unassign() {
                    tracing::warn!(producer = %self.name, %error, "kafka: unassignment failed");
                }
            }
        }
        // `poll` returns after a rebalance without telling whether more is queued.
        self.shared.wake.notify();
    }

    fn commit_callback(&self, result: rdkafka::error::KafkaResult<()>, offsets: &TopicPartitionList) {
        if let Err(error) = result {
            tracing::warn!(producer = %self.name, %error, "kafka: commit failed; it goes again next time");
            let ackers = self.shared.fetched().ackers();
            for element in offsets.elements() {
                let Offset::Offset(offset) = element.offset() else { continue };
                if let Some(acker) =
                    ackers.iter().find(|a| *a.topic == *element.topic() && a.partition == element.partition())
                {
                    acker.commit_failed(offset);
                }
            }
        }
        // As after a rebalance: `poll` returned without telling whether more is queued.
        self.shared.wake.notify();
    }
}

/// Why a session ended before it was stopped.
#[derive(Debug)]
enum Failed {
    Kafka(KafkaError),
    /// A record arrived on the consumer's queue: its partition's queue was not split off
    /// before the assignment. Its offset would be skipped: start over from the commit.
    Stray {
        topic: String,
        partition: i32,
        offset: i64,
    },
}

impl fmt::Display for Failed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failed::Kafka(error) => write!(f, "{error}"),
            Failed::Stray { topic, partition, offset } => {
                write!(f, "record {topic}/{partition}@{offset} outside its partition's queue")
            }
        }
    }
}

impl From<KafkaError> for Failed {
    fn from(error: KafkaError) -> Self {
        Failed::Kafka(error)
    }
}

/// Runs sessions until stopped: a session that fails (the consumer cannot be created, a
/// fatal error) is replaced after a backoff. librdkafka reconnects to brokers by itself.
pub(crate) fn run(
    options: Arc<KafkaOptions>,
    shared: Arc<Shared>,
    deliver: InfoSender<RecordsReady>,
    name: String,
) {
    let _ended = Ended(&shared);
    let mut failures = 0;
    while !shared.stopping() {
        match session(&options, &shared, &deliver, &name) {
            Ok(()) => break,
            Err((error, assigned)) => {
                failures = if assigned { 1 } else { failures + 1 };
                let delay = options.backoff.delay(failures);
                tracing::warn!(
                    producer = %name,
                    %error,
                    ?delay,
                    "kafka: consumer failed; starting a new one"
                );
                let deadline = Instant::now() + delay;
                shared.wake.wait_until(deadline, || shared.stopping());
            }
        }
    }
    tracing::debug!(producer = %name, "kafka: consumer thread done");
}

/// One consumer in the group, until stopped (`Ok`) or failed (with whether it got
/// partitions before: then the backoff starts over).
fn session(
    options: &Arc<KafkaOptions>,
    shared: &Arc<Shared>,
    deliver: &InfoSender<RecordsReady>,
    name: &str,
) -> Result<(), (Failed, bool)> {
    let context = KafkaContext {
        options: options.clone(),
        shared: shared.clone(),
        name: name.to_owned(),
        consumer: OnceLock::new(),
        slots: Mutex::new(Vec::new()),
        assigned_once: AtomicBool::new(false),
    };
    let mut consumer: BaseConsumer<KafkaContext> =
        options.consumer_config().create_with_context(context).map_err(|e| (e.into(), false))?;
    let wake = shared.wake.clone();
    consumer.set_nonempty_callback(move || wake.notify());
    let consumer = Arc::new(consumer);
    let _first = consumer.context().consumer.set(Arc::downgrade(&consumer));
    let topics: Vec<&str> = options.topics.iter().map(String::as_str).collect();
    let served = match consumer.subscribe(&topics) {
        Ok(()) => serve(&consumer, options, shared, deliver, name),
        Err(error) => Err(error.into()),
    };
    if served.is_err() {
        // Nothing more can be committed through this consumer: its partitions' messages in
        // flight are acknowledged to nobody, and their next owner gets them again.
        let ackers = shared.fetched().remove(|_| true);
        give_up(&consumer, &shared.wake, &ackers, None, name, "failure");
    }
    let assigned = consumer.context().assigned_once.load(Ordering::Relaxed);
    // The partition queues hold the consumer: the last reference goes here, and dropping it
    // closes the consumer (the final revoke, then it leaves the group).
    consumer.context().slots().clear();
    drop(consumer);
    served.map_err(|error| (error, assigned))
}

/// Polls until stopped: events, then records up to the demand, then commits when due.
fn serve(
    consumer: &Arc<BaseConsumer<KafkaContext>>,
    options: &KafkaOptions,
    shared: &Shared,
    deliver: &InfoSender<RecordsReady>,
    name: &str,
) -> Result<(), Failed> {
    let mut next_commit = Instant::now() + options.commit_interval;
    let mut turn = 0;
    loop {
        poll_events(consumer, name)?;
        if shared.stopping() {
            drain(consumer, options, shared, name);
            return Ok(());
        }
        if fill(consumer, options, shared, &mut turn) && deliver.send(RecordsReady(())).is_err() {
            // The producer is gone without draining (it crashed): drain all the same.
            shared.stop();
            continue;
        }
        let now = Instant::now();
        if now >= next_commit {
            commit(consumer, &shared.fetched().ackers(), CommitMode::Async, name);
            next_commit = now + options.commit_interval;
        }
        shared.wake.wait(next_commit.saturating_duration_since(Instant::now()));
    }
}

/// Serves what the consumer's own queue holds: rebalances and commit results (through the
/// context), errors. Err on a fatal error, or a record there.
fn poll_events(consumer: &BaseConsumer<KafkaContext>, name: &str) -> Result<(), Failed> {
    while let Some(polled) = consumer.poll(Duration::ZERO) {
        match polled {
            Ok(message) => {
                return Err(Failed::Stray {
                    topic: message.topic().to_owned(),
                    partition: message.partition(),
                    offset: message.offset(),
                })
            }
            Err(error @ KafkaError::MessageConsumptionFatal(_)) => return Err(error.into()),
            Err(error) => {
                tracing::warn!(producer = %name, %error, "kafka: consumer error");
            }
        }
    }
    Ok(())
}

/// Polls the partition queues, each in turn, for up to the demand not yet covered; returns
/// whether the producer must be woken.
fn fill(
    consumer: &BaseConsumer<KafkaContext>,
    options: &KafkaOptions,
    shared: &Shared,
    turn: &mut usize,
) -> bool {
    let mut room = shared.fetched().room();
    let slots = consumer.context().slots();
    let n = slots.len();
    let mut notify = false;
    while room > 0 && n > 0 {
        let share = room.div_ceil(n).min(MAX_TURN);
        let mut got = 0;
        for k in 0..n {
            let slot = &slots[(*turn + k) % n];
            let mut records = Vec::new();
            while records.len() < share.min(room - got) {
                match slot.queue.poll(Duration::ZERO) {
                    Some(Ok(message)) => records.push(record(options, slot.id, &message)),
                    Some(Err(error)) => {
                        tracing::warn!(
                            topic = %slot.acker.topic,
                            partition = slot.acker.partition,
                            %error,
                            "kafka: fetch error"
                        );
                        break;
                    }
                    None => break,
                }
            }
            if !records.is_empty() {
                got += records.len();
                notify |= shared.fetched().push(&slot.acker, records);
            }
            if got >= room {
                break;
            }
        }
        *turn = (*turn + 1) % n;
        if got == 0 {
            break;
        }
        room = shared.fetched().room();
    }
    notify
}

/// Drain: no more fetching (the records not dispatched were dropped by `Shared::stop`);
/// waits for the messages in flight and commits. The consumer then closes: it leaves the
/// group, and its final revoke finds nothing left to wait for.
fn drain(consumer: &BaseConsumer<KafkaContext>, options: &KafkaOptions, shared: &Shared, name: &str) {
    let ackers = shared.fetched().remove(|_| true);
    give_up(consumer, &shared.wake, &ackers, Some(options.revoke_timeout), name, "drain");
}

/// The message's group: its partition's id, or its key's hash with [`OrderBy::Key`].
fn group(options: &KafkaOptions, id: u64, key: Option<&[u8]>) -> u64 {
    match (options.order_by, key) {
        (OrderBy::Key, Some(key)) => {
            let mut hasher = std::hash::DefaultHasher::new();
            key.hash(&mut hasher);
            hasher.finish()
        }
        _ => id,
    }
}

fn record(options: &KafkaOptions, id: u64, message: &BorrowedMessage<'_>) -> Record {
    let metadata = if options.metadata.is_empty() { Metadata::new() } else { metadata(options, message) };
    Record {
        offset: message.offset(),
        payload: message.payload().map(<[u8]>::to_vec).unwrap_or_default(),
        group: group(options, id, message.key()),
        metadata,
    }
}

fn bytes(value: Option<&[u8]>) -> MetadataValue {
    value.map_or(MetadataValue::Null, |v| MetadataValue::Bytes(v.to_vec()))
}

/// The requested metadata of a record.
fn metadata(options: &KafkaOptions, message: &BorrowedMessage<'_>) -> Metadata {
    let mut metadata = Metadata::new();
    for name in &options.metadata {
        let value = match name.as_str() {
            "topic" => MetadataValue::Str(message.topic().to_owned()),
            "partition" => MetadataValue::Int(i64::from(message.partition())),
            "offset" => MetadataValue::Int(message.offset()),
            "key" => bytes(message.key()),
            "timestamp" => message.timestamp().to_millis().map_or(MetadataValue::Null, MetadataValue::Int),
            "headers" => MetadataValue::Map(
                message
                    .headers()
                    .map(|headers| headers.iter().map(|h| (h.key.to_owned(), bytes(h.value))).collect())
                    .unwrap_or_default(),
            ),
            _ => continue,
        };
        metadata.insert(name.clone(), value);
    }
    metadata
}
