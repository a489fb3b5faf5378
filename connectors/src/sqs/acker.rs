//! Acknowledgements to SQS, batched: deletes and visibility changes go out up to 10 per
//! request, several requests at once; the same task extends the visibility timeout of the
//! messages still in the pipeline (the lease heartbeat).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use aws_sdk_sqs::types::{
    BatchResultErrorEntry, ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry,
};
use aws_sdk_sqs::Client;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use weir_broadway::{AckAction, AckData, AckOptions, Acknowledger, Failure};

use crate::ack_actions::{self, Allowed};

/// What `on_success` may be for SQS.
pub(super) const ON_SUCCESS: Allowed =
    Allowed { actions: &[AckAction::Ack, AckAction::Noop], rule: "must be one of Ack, Noop for SQS" };
/// What `on_failure` may be for SQS.
pub(super) const ON_FAILURE: Allowed = Allowed {
    actions: &[AckAction::Noop, AckAction::Ack, AckAction::RejectAndRequeue],
    rule: "must be one of Noop, Ack, RejectAndRequeue for SQS",
};

/// Entries per batch request (SQS's limit).
const BATCH: usize = 10;
/// Batch requests in flight at once.
const REQUESTS_IN_FLIGHT: usize = 8;
/// Tries of a batch request that failed as a whole (not entry by entry).
const TRIES: u32 = 3;

/// A received message still in the pipeline.
struct Lease {
    message_id: Box<str>,
    receipt: Box<str>,
    /// When its visibility timeout was last set (received or extended).
    renewed: Instant,
}

/// The messages in the pipeline, by tag: the acknowledger removes them, the heartbeat
/// extends them. Not the acknowledger itself, so the task does not keep it alive.
#[derive(Default)]
pub(super) struct Leases(Mutex<HashMap<u64, Lease>>);

impl Leases {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Lease>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A message received now, before it goes into the pipeline.
    pub(super) fn received(&self, tag: u64, message_id: &str, receipt: &str) {
        let lease = Lease { message_id: message_id.into(), receipt: receipt.into(), renewed: Instant::now() };
        self.lock().insert(tag, lease);
    }
}

/// One entry of a batch request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    pub(super) message_id: Box<str>,
    pub(super) receipt: Box<str>,
}

/// What a settled message asks of SQS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Command {
    Delete(Entry),
    /// Visible again now.
    Release(Entry),
}

/// The acknowledger of one producer's messages.
pub(super) struct SqsAcker {
    on_success: AckAction,
    on_failure: AckAction,
    leases: Arc<Leases>,
    commands: mpsc::UnboundedSender<Vec<Command>>,
}

impl SqsAcker {
    /// The acknowledger, and its task: it sends the commands, extends leases every quarter
    /// of `heartbeat` (the visibility timeout) when given, and ends once the acknowledger is
    /// dropped (with the last message) and everything is sent.
    pub(super) fn start(
        client: Client,
        queue_url: String,
        on_success: AckAction,
        on_failure: AckAction,
        heartbeat: Option<Duration>,
    ) -> (Arc<Self>, Arc<Leases>, JoinHandle<()>) {
        let (commands, rx) = mpsc::unbounded_channel();
        let leases = Arc::new(Leases::default());
        let task = tokio::spawn(run(client, queue_url, leases.clone(), rx, heartbeat));
        let acker = Arc::new(SqsAcker { on_success, on_failure, leases: leases.clone(), commands });
        (acker, leases, task)
    }

    /// The commands settling these messages.
    fn commands(&self, successful: &[AckData], failed: &[(AckData, Failure)]) -> Vec<Command> {
        let mut leases = self.leases.lock();
        let mut command = |data: &AckData, action: AckAction| {
            let lease = leases.remove(&data.tag)?;
            let entry = Entry { message_id: lease.message_id, receipt: lease.receipt };
            match action {
                AckAction::Ack => Some(Command::Delete(entry)),
                AckAction::RejectAndRequeue => Some(Command::Release(entry)),
                _ => None,
            }
        };
        let mut commands = Vec::new();
        for data in successful {
            commands.extend(command(data, data.on_success.unwrap_or(self.on_success)));
        }
        for (data, failure) in failed {
            let action = match failure {
                // Nobody handled it (a stopped producer, an aborted stage): it goes back now,
                // not after the visibility timeout, and is never deleted unhandled.
                Failure::Dropped => AckAction::RejectAndRequeue,
                _ => data.on_failure.unwrap_or(self.on_failure),
            };
            commands.extend(command(data, action));
        }
        commands
    }
}

impl Acknowledger for SqsAcker {
    fn ack(&self, successful: Vec<AckData>, failed: Vec<(AckData, Failure)>) {
        let commands = self.commands(&successful, &failed);
        if !commands.is_empty() && self.commands.send(commands).is_err() {
            tracing::warn!("sqs: acknowledgements after the producer's task ended; the messages come back");
        }
    }

    fn configure(&self, data: &mut AckData, options: AckOptions) -> Result<(), weir_broadway::Error> {
        ack_actions::configure(data, options, &ON_SUCCESS, &ON_FAILURE)
    }
}

/// Sends commands as they come (what arrived meanwhile goes in the same requests) and
/// renews leases, until the acknowledger is gone.
async fn run(
    client: Client,
    queue_url: String,
    leases: Arc<Leases>,
    mut commands: mpsc::UnboundedReceiver<Vec<Command>>,
    heartbeat: Option<Duration>,
) {
    let mut ticks = heartbeat.map(|timeout| {
        let mut ticks = tokio::time::interval((timeout / 4).max(Duration::from_millis(250)));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks
    });
    loop {
        tokio::select! {
            next = commands.recv() => {
                let Some(mut all) = next else { break };
                while let Ok(more) = commands.try_recv() {
                    all.extend(more);
                }
                send(&client, &queue_url, all).await;
            }
            () = tick(ticks.as_mut()) => {
                if let Some(timeout) = heartbeat {
                    renew(&client, &queue_url, &leases, timeout).await;
                }
            }
        }
    }
}

/// The next heartbeat; never without one.
async fn tick(ticks: Option<&mut tokio::time::Interval>) {
    match ticks {
        Some(ticks) => {
            ticks.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Sends deletes and releases in batches of [`BATCH`], [`REQUESTS_IN_FLIGHT`] at once.
async fn send(client: &Client, queue_url: &str, commands: Vec<Command>) {
    let (mut deletes, mut releases) = (Vec::new(), Vec::new());
    for command in commands {
        match command {
            Command::Delete(entry) => deletes.push(entry),
            Command::Release(entry) => releases.push(entry),
        }
    }
    let requests = deletes
        .chunks(BATCH)
        .map(|chunk| (Kind::Delete, chunk))
        .chain(releases.chunks(BATCH).map(|chunk| (Kind::Visibility(0), chunk)));
    futures::stream::iter(requests)
        .for_each_concurrent(REQUESTS_IN_FLIGHT, |(kind, chunk)| batch(client, queue_url, kind, chunk))
        .await;
}

/// Extends the leases renewed more than half a visibility timeout ago.
async fn renew(client: &Client, queue_url: &str, leases: &Leases, timeout: Duration) {
    let now = Instant::now();
    let due: Vec<Entry> = leases
        .lock()
        .values_mut()
        .filter(|lease| now.duration_since(lease.renewed) >= timeout / 2)
        .map(|lease| {
            lease.renewed = now;
            Entry { message_id: lease.message_id.clone(), receipt: lease.receipt.clone() }
        })
        .collect();
    let seconds = i32::try_from(timeout.as_secs()).unwrap_or(i32::MAX);
    futures::stream::iter(due.chunks(BATCH))
        .for_each_concurrent(REQUESTS_IN_FLIGHT, |chunk| {
            batch(client, queue_url, Kind::Visibility(seconds), chunk)
        })
        .await;
}

/// A batch request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Delete,
    /// Change the visibility timeout to this many seconds.
    Visibility(i32),
}

/// One batch request, tried up to [`TRIES`] times when it fails as a whole; entries the
/// queue refuses are reported one by one.
async fn batch(client: &Client, queue_url: &str, kind: Kind, entries: &[Entry]) {
    // Entry ids only need to be unique within the request.
    let mut failed: Vec<BatchResultErrorEntry> = Vec::new();
    let mut error = None;
    for attempt in 1..=TRIES {
        let result = match kind {
            Kind::Delete => {
                let entries = entries.iter().enumerate().filter_map(|(i, entry)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(&*entry.receipt)
                        .build()
                        .ok()
                });
                client
                    .delete_message_batch()
                    .queue_url(queue_url)
                    .set_entries(Some(entries.collect()))
                    .send()
                    .await
                    .map(|output| output.failed().to_vec())
                    .map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(e).to_string())
            }
            Kind::Visibility(seconds) => {
                let entries = entries.iter().enumerate().filter_map(|(i, entry)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(&*entry.receipt)
                        .visibility_timeout(seconds)
                        .build()
                        .ok()
                });
                client
                    .change_message_visibility_batch()
                    .queue_url(queue_url)
                    .set_entries(Some(entries.collect()))
                    .send()
                    .await
                    .map(|output| output.failed().to_vec())
                    .map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(e).to_string())
            }
        };
        match result {
            Ok(refused) => {
                failed = refused;
                error = None;
                break;
            }
            Err(e) => {
                error = Some(e);
                if attempt < TRIES {
                    tokio::time::sleep(Duration::from_millis(100) * attempt).await;
                }
            }
        }
    }
    let what = match kind {
        Kind::Delete => "delete",
        Kind::Visibility(_) => "change the visibility of",
    };
    if let Some(error) = error {
        for entry in entries {
            report(kind, what, &entry.message_id, "RequestFailed", &error);
        }
        return;
    }
    for refused in failed {
        let entry = refused.id().parse::<usize>().ok().and_then(|i| entries.get(i));
        let message_id = entry.map_or("?", |e| &e.message_id);
        report(kind, what, message_id, refused.code(), refused.message().unwrap_or(""));
    }
}

/// Reports, per message, an entry SQS did not take.
fn report(kind: Kind, what: &str, message_id: &str, code: &str, error: &str) {
    match kind {
        // A heartbeat racing the message's delete, or a message already released: harmless.
        Kind::Visibility(_) => tracing::debug!(message_id, code, error, "sqs: could not {what} a message"),
        Kind::Delete => tracing::warn!(
            message_id,
            code,
            error,
            "sqs: could not {what} a message; it comes back after its visibility timeout"
        ),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn acker(on_success: AckAction, on_failure: AckAction) -> Arc<SqsAcker> {
        let (commands, _rx) = mpsc::unbounded_channel();
        let acker = SqsAcker { on_success, on_failure, leases: Arc::new(Leases::default()), commands };
        for tag in 0..6 {
            acker.leases.received(tag, &format!("m{tag}"), &format!("r{tag}"));
        }
        Arc::new(acker)
    }

    fn entry(tag: u64) -> Entry {
        Entry { message_id: format!("m{tag}").into(), receipt: format!("r{tag}").into() }
    }

    #[test]
    fn actions_become_deletes_and_releases_and_settle_the_lease() {
        let acker = acker(AckAction::Ack, AckAction::Noop);
        let mut noop = AckData::new(1);
        acker.configure(&mut noop, AckOptions::new().on_success(AckAction::Noop)).unwrap();
        let mut delete = AckData::new(3);
        acker.configure(&mut delete, AckOptions::new().on_failure(AckAction::Ack)).unwrap();
        let commands = acker.commands(
            &[AckData::new(0), noop],
            &[
                (AckData::new(2), Failure::Failed("no".into())),
                (delete, Failure::Failed("no".into())),
                (AckData::new(4), Failure::Dropped),
            ],
        );
        assert_eq!(
            commands,
            [Command::Delete(entry(0)), Command::Delete(entry(3)), Command::Release(entry(4))]
        );
        let left: Vec<u64> = acker.leases.lock().keys().copied().collect();
        assert_eq!(left, [5], "settled messages are no longer leased");
        assert!(acker.commands(&[AckData::new(0)], &[]).is_empty(), "a tag is settled once");
    }

    #[test]
    fn actions_sqs_does_not_have_are_refused() {
        let acker = acker(AckAction::Ack, AckAction::Noop);
        let mut data = AckData::new(0);
        let error = acker.configure(&mut data, AckOptions::new().on_failure(AckAction::Reject)).unwrap_err();
        assert_eq!(
            error.to_string(),
            "on_failure (Reject) must be one of Noop, Ack, RejectAndRequeue for SQS"
        );
        let error = acker.configure(&mut data, AckOptions::new().on_success(AckAction::RejectAndRequeue));
        assert!(error.is_err());
        assert_eq!((data.on_success, data.on_failure), (None, None));
    }
}
