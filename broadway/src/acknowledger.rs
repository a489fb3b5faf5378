//! Acknowledgement: the [`Acknowledger`] a producer gives its messages, the per-message
//! token that settles itself as failed when dropped, and the grouping of acknowledgements.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use weir_core::panic_message;

use crate::error::Error;
use crate::message::Failure;

/// Acknowledges messages to their source (ack a delivery, delete an SQS message, commit an
/// offset...).
///
/// The pipeline calls [`ack`](Acknowledger::ack) once per group of messages settled
/// together (a batch, or a processor's chunk), with the successful and the failed
/// messages of this acknowledger in the order they were received. Every message reaches
/// `ack` exactly once. `ack` runs on the pipeline's tasks: do slow I/O on a task of your
/// own (send the data to it) rather than block.
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use weir_broadway::{AckData, Acknowledger, Failure};
///
/// #[derive(Default)]
/// struct Count { ok: AtomicUsize, failed: AtomicUsize }
///
/// impl Acknowledger for Count {
///     fn ack(&self, successful: Vec<AckData>, failed: Vec<(AckData, Failure)>) {
///         self.ok.fetch_add(successful.len(), Ordering::Relaxed);
///         self.failed.fetch_add(failed.len(), Ordering::Relaxed);
///     }
/// }
/// ```
pub trait Acknowledger: Send + Sync + 'static {
    /// Settles `successful` and `failed` messages (with why each failed).
    fn ack(&self, successful: Vec<AckData>, failed: Vec<(AckData, Failure)>);

    /// Changes how one message will be acknowledged ([`crate::Message::configure_ack`]).
    /// The default stores the actions in the message's [`AckData`]; an acknowledger that
    /// supports only some actions checks them here.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`] naming the option and the action it does not support.
    fn configure(&self, data: &mut AckData, options: AckOptions) -> Result<(), Error> {
        if let Some(action) = options.on_success {
            data.on_success = Some(action);
        }
        if let Some(action) = options.on_failure {
            data.on_failure = Some(action);
        }
        Ok(())
    }
}

/// What an acknowledger needs of one message, set by its producer: a tag (delivery tag,
/// offset, id), a group (channel, partition), a handle (receipt handle), the redelivery
/// flag, and per-message actions set through [`crate::Message::configure_ack`].
///
/// # Examples
///
/// ```
/// use weir_broadway::{AckAction, AckData};
///
/// let data = AckData::new(42).with_group(3).with_handle("receipt-1");
/// assert_eq!((data.tag, data.group, data.handle.as_deref()), (42, 3, Some("receipt-1")));
/// assert_eq!(data.on_failure, None);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AckData {
    /// The source's id of the message: delivery tag, offset, test id.
    pub tag: u64,
    /// What the tag is relative to: channel, partition.
    pub group: u64,
    /// A textual handle, e.g. an SQS receipt handle.
    pub handle: Option<Box<str>>,
    /// Whether the source delivered it before.
    pub redelivered: bool,
    /// How to acknowledge it if it succeeds, instead of the producer's default.
    pub on_success: Option<AckAction>,
    /// How to acknowledge it if it fails, instead of the producer's default.
    pub on_failure: Option<AckAction>,
}

impl AckData {
    /// Data with `tag`.
    pub fn new(tag: u64) -> Self {
        AckData { tag, ..AckData::default() }
    }

    /// With `group`.
    #[must_use]
    pub fn with_group(mut self, group: u64) -> Self {
        self.group = group;
        self
    }

    /// With `handle`.
    #[must_use]
    pub fn with_handle(mut self, handle: impl Into<Box<str>>) -> Self {
        self.handle = Some(handle.into());
        self
    }

    /// With the redelivery flag.
    #[must_use]
    pub fn with_redelivered(mut self, redelivered: bool) -> Self {
        self.redelivered = redelivered;
        self
    }
}

/// How a source is told a message is done. Each connector documents which it supports.
///
/// # Examples
///
/// ```
/// use weir_broadway::AckAction;
///
/// assert_ne!(AckAction::Ack, AckAction::RejectAndRequeueOnce);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AckAction {
    /// Done: ack (RabbitMQ), delete (SQS), commit (Kafka).
    Ack,
    /// Tell the source nothing (SQS: the message comes back after its visibility timeout).
    Noop,
    /// Reject without requeueing (dead-letter it where the source can).
    Reject,
    /// Reject and requeue: the source delivers it again.
    RejectAndRequeue,
    /// Requeue only if the message was not redelivered already; reject otherwise.
    RejectAndRequeueOnce,
}

/// Per-message acknowledgement options for [`crate::Message::configure_ack`].
///
/// # Examples
///
/// ```
/// use weir_broadway::{AckAction, AckOptions, Message, NoopAcknowledger};
///
/// let mut message = Message::new((), NoopAcknowledger::new(), Default::default());
/// message.configure_ack(AckOptions::new().on_failure(AckAction::Reject)).unwrap();
/// assert_eq!(message.ack_data().on_failure, Some(AckAction::Reject));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AckOptions {
    /// The action on success, if set.
    pub on_success: Option<AckAction>,
    /// The action on failure, if set.
    pub on_failure: Option<AckAction>,
}

impl AckOptions {
    /// No change.
    pub fn new() -> Self {
        AckOptions::default()
    }

    /// Acknowledge with `action` on success.
    #[must_use]
    pub fn on_success(mut self, action: AckAction) -> Self {
        self.on_success = Some(action);
        self
    }

    /// Acknowledge with `action` on failure.
    #[must_use]
    pub fn on_failure(mut self, action: AckAction) -> Self {
        self.on_failure = Some(action);
        self
    }
}

/// An acknowledger that does nothing (Broadway's `NoopAcknowledger`), for messages whose
/// source needs no acknowledgement.
///
/// # Examples
///
/// ```
/// use weir_broadway::{Message, NoopAcknowledger};
///
/// let message = Message::new("hello", NoopAcknowledger::new(), Default::default());
/// assert_eq!(*message.data(), "hello");
/// ```
#[derive(Debug, Default)]
pub struct NoopAcknowledger;

impl NoopAcknowledger {
    /// A shared no-op acknowledger.
    #[allow(clippy::new_ret_no_self)] // messages take it shared and type-erased
    pub fn new() -> Arc<dyn Acknowledger> {
        Arc::new(NoopAcknowledger)
    }
}

impl Acknowledger for NoopAcknowledger {
    fn ack(&self, _: Vec<AckData>, _: Vec<(AckData, Failure)>) {}
}

/// A message's acknowledgement: settled once, by the pipeline or, if the message is
/// dropped first, by itself as [`Failure::Dropped`].
pub(crate) struct Ack {
    acknowledger: Option<Arc<dyn Acknowledger>>,
    data: AckData,
    /// The pipeline's count of messages in flight, once a producer stage emitted the
    /// message: settling it takes it off, whichever way it is settled. Kept here rather
    /// than counted by the stages, so that a message dropped with a stage (a crashed
    /// producer's buffer) is taken off too.
    in_flight: Option<Arc<AtomicI64>>,
}

impl Ack {
    pub(crate) fn new(acknowledger: Arc<dyn Acknowledger>, data: AckData) -> Self {
        Ack { acknowledger: Some(acknowledger), data, in_flight: None }
    }

    /// Counts the message in `in_flight` (which the caller increments) until it is settled;
    /// false if it is counted or settled already.
    pub(crate) fn track(&mut self, in_flight: &Arc<AtomicI64>) -> bool {
        if self.acknowledger.is_none() || self.in_flight.is_some() {
            return false;
        }
        self.in_flight = Some(in_flight.clone());
        true
    }

    /// An acknowledgement with nothing left to settle.
    pub(crate) fn settled() -> Self {
        Ack { acknowledger: None, data: AckData::default(), in_flight: None }
    }

    pub(crate) fn data(&self) -> &AckData {
        &self.data
    }

    pub(crate) fn configure(&mut self, options: AckOptions) -> Result<(), Error> {
        match &self.acknowledger {
            Some(acknowledger) => acknowledger.configure(&mut self.data, options),
            None => Err(Error::AlreadyAcknowledged),
        }
    }

    pub(crate) fn settle_now(&mut self, failure: Option<Failure>) {
        if let Some(acknowledger) = self.acknowledger.take() {
            let data = std::mem::take(&mut self.data);
            let (ok, failed) = match failure {
                None => (vec![data], Vec::new()),
                Some(failure) => (Vec::new(), vec![(data, failure)]),
            };
            call_ack(&*acknowledger, ok, failed);
        }
        if let Some(in_flight) = self.in_flight.take() {
            in_flight.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Ack {
    fn drop(&mut self) {
        self.settle_now(Some(Failure::Dropped));
    }
}

fn call_ack(acknowledger: &dyn Acknowledger, ok: Vec<AckData>, failed: Vec<(AckData, Failure)>) {
    let (ok_count, failed_count) = (ok.len(), failed.len());
    // A panicking acknowledger must not take the stage (or, in `Drop`, the process) down.
    if let Err(panic) = catch_unwind(AssertUnwindSafe(|| acknowledger.ack(ok, failed))) {
        tracing::error!(
            successful = ok_count,
            failed = failed_count,
            "acknowledger panicked: {}",
            panic_message(&*panic)
        );
    }
}

struct Group {
    acknowledger: Arc<dyn Acknowledger>,
    successful: Vec<AckData>,
    failed: Vec<(AckData, Failure)>,
}

/// Collects acknowledgements, grouped per acknowledger in arrival order, and sends each
/// group in one `ack` call.
#[derive(Default)]
pub(crate) struct Settlement {
    groups: Vec<Group>,
    pub(crate) successful: usize,
    pub(crate) failed: usize,
    /// The in-flight count of the tracked messages added, and how many they are.
    in_flight: Option<(Arc<AtomicI64>, i64)>,
}

impl Settlement {
    pub(crate) fn new() -> Self {
        Settlement::default()
    }

    /// Takes `ack` over: it will be acknowledged as successful, or as failed with `failure`.
    pub(crate) fn add(&mut self, ack: &mut Ack, failure: Option<Failure>) {
        let Some(acknowledger) = ack.acknowledger.take() else {
            return;
        };
        if let Some(in_flight) = ack.in_flight.take() {
            self.in_flight.get_or_insert((in_flight, 0)).1 += 1;
        }
        let data = std::mem::take(&mut ack.data);
        // Messages of one chunk nearly always share their acknowledger: look at the last
        // group first. Compare data pointers only (vtables may differ across crates).
        let same =
            |g: &Group| Arc::as_ptr(&g.acknowledger).cast::<()>() == Arc::as_ptr(&acknowledger).cast::<()>();
        let index = match self.groups.iter().rposition(same) {
            Some(i) => i,
            None => {
                self.groups.push(Group { acknowledger, successful: Vec::new(), failed: Vec::new() });
                self.groups.len() - 1
            }
        };
        let group = &mut self.groups[index];
        match failure {
            None => {
                self.successful += 1;
                group.successful.push(data);
            }
            Some(failure) => {
                self.failed += 1;
                group.failed.push((data, failure));
            }
        }
    }

    /// Sends every group to its acknowledger.
    pub(crate) fn finish(mut self) {
        self.send();
    }

    fn send(&mut self) {
        for group in self.groups.drain(..) {
            call_ack(&*group.acknowledger, group.successful, group.failed);
        }
        if let Some((in_flight, settled)) = self.in_flight.take() {
            in_flight.fetch_sub(settled, Ordering::Relaxed);
        }
    }
}

/// A settlement dropped before `finish` (its stage aborted while a callback ran, at the
/// shutdown timeout) still sends what it holds: the acknowledgements were taken out of
/// their messages already, so nothing else would send them.
impl Drop for Settlement {
    fn drop(&mut self) {
        self.send();
    }
}
