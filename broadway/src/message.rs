//! The message: data, metadata, status, where it is batched, and its acknowledgement.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use crate::acknowledger::{Ack, AckData, AckOptions, Acknowledger};
use crate::error::Error;

/// One unit of work flowing through a pipeline, from its producer to its acknowledgement.
///
/// A message carries its acknowledgement (an [`Acknowledger`] and the [`AckData`] it needs):
/// the pipeline acknowledges every message exactly once, as successful or failed. A message
/// dropped without being acknowledged (a callback that let go of it, a stage that crashed)
/// acknowledges itself as failed with [`Failure::Dropped`], so nothing is lost silently.
///
/// # Examples
///
/// ```
/// use weir_broadway::{BatchMode, Message, NoopAcknowledger};
///
/// let mut message = Message::new(b"{\"id\":7}".to_vec(), NoopAcknowledger::new(), Default::default());
/// message.put_batcher("sql");
/// message.put_batch_key("tenant-1");
/// message.put_batch_mode(BatchMode::Flush);
/// assert_eq!(message.batcher(), "sql");
/// assert!(!message.is_failed());
/// message.fail("bad json");
/// assert_eq!(message.failure().unwrap().to_string(), "failed: bad json");
/// ```
pub struct Message<T> {
    data: T,
    pub(crate) envelope: Envelope,
}

/// Everything of a message but its data; kept when `handle_message` turns the data into
/// the pipeline's output.
pub(crate) struct Envelope {
    pub(crate) metadata: Metadata,
    pub(crate) failure: Option<Box<Failure>>,
    pub(crate) batcher: Cow<'static, str>,
    /// The index of `batcher` among the pipeline's batchers, set by the processor.
    pub(crate) batcher_index: usize,
    pub(crate) batch_key: BatchKey,
    pub(crate) batch_mode: BatchMode,
    pub(crate) attempts: u32,
    pub(crate) ack: Ack,
}

impl Envelope {
    /// The envelope of a message that was settled or moved on: it acknowledges nothing.
    pub(crate) fn settled() -> Self {
        Envelope {
            metadata: Metadata::new(),
            failure: None,
            batcher: Cow::Borrowed(DEFAULT_BATCHER),
            batcher_index: 0,
            batch_key: BatchKey::Default,
            batch_mode: BatchMode::Bulk,
            attempts: 0,
            ack: Ack::settled(),
        }
    }
}

impl<T> Message<T> {
    /// A message with `data`, acknowledged by `acknowledger` with `ack_data`.
    pub fn new(data: T, acknowledger: Arc<dyn Acknowledger>, ack_data: AckData) -> Self {
        Message {
            data,
            envelope: Envelope {
                metadata: Metadata::new(),
                failure: None,
                batcher: Cow::Borrowed(DEFAULT_BATCHER),
                batcher_index: 0,
                batch_key: BatchKey::Default,
                batch_mode: BatchMode::Bulk,
                attempts: 0,
                ack: Ack::new(acknowledger, ack_data),
            },
        }
    }

    /// The data.
    pub fn data(&self) -> &T {
        &self.data
    }

    /// The data, to change it in place.
    pub fn data_mut(&mut self) -> &mut T {
        &mut self.data
    }

    /// Replaces the data (Broadway's `update_data` with a value).
    pub fn put_data(&mut self, data: T) {
        self.data = data;
    }

    /// Turns the data into something else, keeping metadata, status and acknowledgement
    /// (Broadway's `update_data`).
    pub fn map_data<U>(self, f: impl FnOnce(T) -> U) -> Message<U> {
        Message { data: f(self.data), envelope: self.envelope }
    }

    /// Builder form of [`put_metadata`](Self::put_metadata).
    #[must_use]
    pub fn with_metadata(mut self, metadata: Metadata) -> Self {
        self.envelope.metadata = metadata;
        self
    }

    /// The metadata the producer attached (delivery tag, headers, offsets...).
    pub fn metadata(&self) -> &Metadata {
        &self.envelope.metadata
    }

    /// The metadata, to change it.
    pub fn metadata_mut(&mut self) -> &mut Metadata {
        &mut self.envelope.metadata
    }

    /// Replaces the metadata.
    pub fn put_metadata(&mut self, metadata: Metadata) {
        self.envelope.metadata = metadata;
    }

    /// Ok, or failed with a reason.
    pub fn status(&self) -> Status<'_> {
        match &self.envelope.failure {
            None => Status::Ok,
            Some(failure) => Status::Failed(failure),
        }
    }

    /// Whether the message has failed.
    pub fn is_failed(&self) -> bool {
        self.envelope.failure.is_some()
    }

    /// Why the message failed, if it did.
    pub fn failure(&self) -> Option<&Failure> {
        self.envelope.failure.as_deref()
    }

    /// Marks the message failed (Broadway's `failed/2`). A failed message skips the
    /// batchers: it goes to `handle_failed` and is acknowledged as failed.
    pub fn fail(&mut self, reason: impl fmt::Display) {
        self.envelope.failure = Some(Box::new(Failure::Failed(reason.to_string())));
    }

    /// Builder form of [`fail`](Self::fail).
    #[must_use]
    pub fn failed(mut self, reason: impl fmt::Display) -> Self {
        self.fail(reason);
        self
    }

    pub(crate) fn set_failure(&mut self, failure: Failure) {
        self.envelope.failure = Some(Box::new(failure));
    }

    pub(crate) fn clear_failure(&mut self) {
        self.envelope.failure = None;
    }

    /// The batcher the message goes to after `handle_message` (default: `"default"`).
    pub fn batcher(&self) -> &str {
        &self.envelope.batcher
    }

    /// Sends the message to the batcher named `batcher` (Broadway's `put_batcher`). A
    /// batcher the pipeline does not have fails the message with
    /// [`Failure::UnknownBatcher`].
    pub fn put_batcher(&mut self, batcher: impl Into<Cow<'static, str>>) {
        self.envelope.batcher = batcher.into();
    }

    /// The batch key: a batcher batches messages of equal keys together.
    pub fn batch_key(&self) -> &BatchKey {
        &self.envelope.batch_key
    }

    /// Sets the batch key (Broadway's `put_batch_key`).
    pub fn put_batch_key(&mut self, key: impl Into<BatchKey>) {
        self.envelope.batch_key = key.into();
    }

    /// Bulk (the default) or flush.
    pub fn batch_mode(&self) -> BatchMode {
        self.envelope.batch_mode
    }

    /// Sets the batch mode (Broadway's `put_batch_mode`): [`BatchMode::Flush`] delivers the
    /// batch holding this message right after it joins.
    pub fn put_batch_mode(&mut self, mode: BatchMode) {
        self.envelope.batch_mode = mode;
    }

    /// How many times `handle_message` (or `handle_batch`) has been tried on this message
    /// in its current stage: 1 on the first try, more under a retry policy.
    pub fn attempts(&self) -> u32 {
        self.envelope.attempts
    }

    /// Changes how the message is acknowledged, e.g. to reject instead of requeue
    /// (Broadway's `configure_ack`). The acknowledger checks the options.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`] when the acknowledger does not support an option, or
    /// [`Error::AlreadyAcknowledged`] after [`ack_immediately`](Self::ack_immediately).
    pub fn configure_ack(&mut self, options: AckOptions) -> Result<(), Error> {
        self.envelope.ack.configure(options)
    }

    /// The acknowledgement data (delivery tag, receipt handle...).
    pub fn ack_data(&self) -> &AckData {
        self.envelope.ack.data()
    }

    /// Acknowledges the message now, as successful or failed per its status (Broadway's
    /// `ack_immediately`); the pipeline will not acknowledge it again.
    pub fn ack_immediately(&mut self) {
        let failure = self.envelope.failure.as_deref().cloned();
        self.envelope.ack.settle_now(failure);
    }

    pub(crate) fn into_parts(self) -> (T, Envelope) {
        (self.data, self.envelope)
    }

    pub(crate) fn from_parts(data: T, envelope: Envelope) -> Self {
        Message { data, envelope }
    }
}

impl<T: fmt::Debug> fmt::Debug for Message<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("data", &self.data)
            .field("metadata", &self.envelope.metadata)
            .field("status", &self.status())
            .field("batcher", &self.envelope.batcher)
            .field("batch_key", &self.envelope.batch_key)
            .field("batch_mode", &self.envelope.batch_mode)
            .field("ack_data", self.envelope.ack.data())
            .finish()
    }
}

/// The name of the batcher messages go to unless `handle_message` says otherwise.
pub const DEFAULT_BATCHER: &str = "default";

/// Whether a message succeeded so far, or failed and why.
///
/// # Examples
///
/// ```
/// use weir_broadway::{Message, NoopAcknowledger, Status};
///
/// let message = Message::new(1, NoopAcknowledger::new(), Default::default()).failed("no");
/// assert!(matches!(message.status(), Status::Failed(f) if f.to_string() == "failed: no"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Status<'a> {
    /// Not failed.
    Ok,
    /// Failed, for this reason.
    Failed(&'a Failure),
}

/// Why a message failed. It is given to the acknowledger with the failed message.
///
/// # Examples
///
/// ```
/// use weir_broadway::Failure;
///
/// let failure = Failure::Panic { callback: "handle_message", message: "boom".into() };
/// assert_eq!(failure.to_string(), "handle_message panicked: boom");
/// assert_eq!(Failure::Dropped.to_string(), "dropped without acknowledgement");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failure {
    /// A callback marked it failed ([`Message::fail`]).
    Failed(String),
    /// A callback returned an error.
    Error {
        /// The callback: `handle_message`, `prepare_messages`, `handle_batch`...
        callback: &'static str,
        /// The error, as text.
        error: String,
    },
    /// A callback panicked.
    Panic {
        /// The callback that panicked.
        callback: &'static str,
        /// The panic message.
        message: String,
    },
    /// `handle_message` sent it to a batcher the pipeline does not have.
    UnknownBatcher {
        /// The batcher asked for.
        batcher: String,
        /// The batchers the pipeline has.
        known: String,
    },
    /// It was dropped without being acknowledged: by a stage that crashed or was aborted
    /// at the end of the shutdown timeout, or by a producer or callback that let go of it.
    Dropped,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Failed(reason) => write!(f, "failed: {reason}"),
            Failure::Error { callback, error } => write!(f, "{callback} returned an error: {error}"),
            Failure::Panic { callback, message } => write!(f, "{callback} panicked: {message}"),
            Failure::UnknownBatcher { batcher, known } => {
                write!(f, "unknown batcher {batcher:?} (the pipeline has {known})")
            }
            Failure::Dropped => write!(f, "dropped without acknowledgement"),
        }
    }
}

/// How a batcher groups messages: messages with equal keys are batched together
/// (Broadway's `batch_key`).
///
/// # Examples
///
/// ```
/// use weir_broadway::BatchKey;
///
/// assert_eq!(BatchKey::from("tenant-1").to_string(), "tenant-1");
/// assert_eq!(BatchKey::from(7u64), BatchKey::Int(7));
/// assert_eq!(BatchKey::default().to_string(), "default");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum BatchKey {
    /// The key of messages that set none.
    #[default]
    Default,
    /// An integer key.
    Int(u64),
    /// A text key.
    Str(Arc<str>),
}

impl fmt::Display for BatchKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BatchKey::Default => write!(f, "default"),
            BatchKey::Int(i) => write!(f, "{i}"),
            BatchKey::Str(s) => write!(f, "{s}"),
        }
    }
}

impl From<u64> for BatchKey {
    fn from(key: u64) -> Self {
        BatchKey::Int(key)
    }
}

impl From<&str> for BatchKey {
    fn from(key: &str) -> Self {
        BatchKey::Str(key.into())
    }
}

impl From<String> for BatchKey {
    fn from(key: String) -> Self {
        BatchKey::Str(key.into())
    }
}

impl From<Arc<str>> for BatchKey {
    fn from(key: Arc<str>) -> Self {
        BatchKey::Str(key)
    }
}

/// Whether a message waits for its batch to fill (bulk) or closes it (flush).
///
/// # Examples
///
/// ```
/// use weir_broadway::BatchMode;
///
/// assert_eq!(BatchMode::default(), BatchMode::Bulk);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BatchMode {
    /// Wait for the batch size or the batch timeout (the default).
    #[default]
    Bulk,
    /// Deliver the batch holding this message right away.
    Flush,
}

/// A value of message metadata.
///
/// # Examples
///
/// ```
/// use weir_broadway::MetadataValue;
///
/// assert_eq!(MetadataValue::from("amq.direct"), MetadataValue::Str("amq.direct".into()));
/// assert_eq!(MetadataValue::from(42u64).as_u64(), Some(42));
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum MetadataValue {
    /// No value.
    Null,
    /// A flag.
    Bool(bool),
    /// A signed integer.
    Int(i64),
    /// An unsigned integer.
    UInt(u64),
    /// A float.
    Float(f64),
    /// Text.
    Str(String),
    /// Bytes.
    Bytes(Vec<u8>),
    /// A list.
    List(Vec<MetadataValue>),
    /// Named values, e.g. message headers.
    Map(Vec<(String, MetadataValue)>),
}

impl MetadataValue {
    /// The text, if this is text.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetadataValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is a non-negative integer.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            MetadataValue::UInt(u) => Some(*u),
            MetadataValue::Int(i) => u64::try_from(*i).ok(),
            _ => None,
        }
    }

    /// The integer, if this is an integer that fits.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            MetadataValue::Int(i) => Some(*i),
            MetadataValue::UInt(u) => i64::try_from(*u).ok(),
            _ => None,
        }
    }

    /// The flag, if this is a flag.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            MetadataValue::Bool(b) => Some(*b),
            _ => None,
        }
    }
}

macro_rules! metadata_from {
    ($($t:ty => $variant:ident $(as $cast:ty)?),* $(,)?) => {$(
        impl From<$t> for MetadataValue {
            fn from(value: $t) -> Self {
                MetadataValue::$variant(value $(as $cast)?)
            }
        }
    )*};
}

metadata_from!(bool => Bool, i64 => Int, i32 => Int as i64, u64 => UInt, u32 => UInt as u64, f64 => Float,
    String => Str, Vec<u8> => Bytes);

impl From<&str> for MetadataValue {
    fn from(value: &str) -> Self {
        MetadataValue::Str(value.to_owned())
    }
}

/// A message's metadata: named values the producer copies from the source (delivery tag,
/// routing key, headers, receipt handle, partition and offset...). Empty metadata does not
/// allocate.
///
/// # Examples
///
/// ```
/// use weir_broadway::Metadata;
///
/// let mut metadata = Metadata::new();
/// metadata.insert("routing_key", "orders.created");
/// metadata.insert("redelivered", false);
/// assert_eq!(metadata.get("routing_key").and_then(|v| v.as_str()), Some("orders.created"));
/// assert_eq!(metadata.len(), 2);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metadata(Vec<(Cow<'static, str>, MetadataValue)>);

impl Metadata {
    /// No metadata.
    pub fn new() -> Self {
        Metadata(Vec::new())
    }

    /// Sets `key` to `value`, replacing a previous value.
    pub fn insert(&mut self, key: impl Into<Cow<'static, str>>, value: impl Into<MetadataValue>) {
        let key = key.into();
        let value = value.into();
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key, value)),
        }
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&MetadataValue> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The entries, in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &MetadataValue)> {
        self.0.iter().map(|(k, v)| (k.as_ref(), v))
    }
}
