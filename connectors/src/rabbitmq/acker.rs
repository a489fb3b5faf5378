//! Acknowledgements to one RabbitMQ channel, batched: one `basic.ack` with `multiple` for
//! every settled tag below the oldest delivery still in flight.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use lapin::options::{BasicAckOptions, BasicRejectOptions};
use lapin::{Channel, Connection};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use weir_broadway::{AckAction, AckData, AckOptions, Acknowledger, Failure};

use crate::ack_actions::{self, Allowed};

/// What the ack task sends to the broker, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Command {
    Ack { tag: u64, multiple: bool },
    Reject { tag: u64, requeue: bool },
}

/// The acknowledger of the messages delivered on one channel (one connection attempt).
pub(crate) struct ChannelAcker {
    on_success: AckAction,
    on_failure: AckAction,
    /// Delivered and not yet settled. [`Acknowledger::ack`] holds the lock until its
    /// commands are queued, so that they reach the broker in the order they were computed.
    outstanding: Mutex<BTreeSet<u64>>,
    commands: mpsc::UnboundedSender<Vec<Command>>,
}

/// What `on_success` and `on_failure` may be for RabbitMQ.
pub(crate) const ACTIONS: Allowed = Allowed {
    actions: &[
        AckAction::Ack,
        AckAction::Reject,
        AckAction::RejectAndRequeue,
        AckAction::RejectAndRequeueOnce,
    ],
    rule: "must be Ack, Reject, RejectAndRequeue or RejectAndRequeueOnce for RabbitMQ",
};

impl ChannelAcker {
    /// An acknowledger for `channel`, and its task, which sends the acknowledgements and
    /// closes `connection` once every message delivered on it is settled (the
    /// acknowledger is dropped with the last one).
    pub(crate) fn start(
        connection: Connection,
        channel: Channel,
        on_success: AckAction,
        on_failure: AckAction,
    ) -> (Arc<Self>, JoinHandle<()>) {
        let (commands, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(connection, channel, rx));
        let acker = Arc::new(ChannelAcker {
            on_success,
            on_failure,
            outstanding: Mutex::new(BTreeSet::new()),
            commands,
        });
        (acker, task)
    }

    /// Tags delivered, before their messages go into the pipeline.
    pub(crate) fn delivered(&self, tags: impl IntoIterator<Item = u64>) {
        self.outstanding.lock().unwrap_or_else(|p| p.into_inner()).extend(tags);
    }

    /// The commands settling these messages (see [`commands_locked`](Self::commands_locked)).
    #[cfg(test)]
    pub(crate) fn commands(&self, successful: &[AckData], failed: &[(AckData, Failure)]) -> Vec<Command> {
        self.commands_locked(
            &mut self.outstanding.lock().unwrap_or_else(|p| p.into_inner()),
            successful,
            failed,
        )
    }

    /// The commands settling these messages: rejections first, one by one (dropped
    /// messages are requeued whatever the failure action); then the
    /// successful ones below the oldest tag still in flight as one `multiple` ack (every
    /// unacknowledged tag under it is settled, and the rejected ones were sent before it),
    /// the others one by one. `outstanding` is the locked set of tags in flight.
    fn commands_locked(
        &self,
        outstanding: &mut BTreeSet<u64>,
        successful: &[AckData],
        failed: &[(AckData, Failure)],
    ) -> Vec<Command> {
        let mut acks = Vec::new();
        let mut commands = Vec::new();
        let mut settle = |data: &AckData, action: AckAction| match action {
            AckAction::Ack => acks.push(data.tag),
            AckAction::Reject => commands.push(Command::Reject { tag: data.tag, requeue: false }),
            AckAction::RejectAndRequeueOnce => {
                commands.push(Command::Reject { tag: data.tag, requeue: !data.redelivered });
            }
            _ => commands.push(Command::Reject { tag: data.tag, requeue: true }),
        };
        for data in successful {
            settle(data, data.on_success.unwrap_or(self.on_success));
        }
        for (data, failure) in failed {
            let action = match failure {
                // Nobody handled it: it reached a producer that had stopped (deliveries
                // flushed after `basic.cancel` while draining) or a stage aborted at the
                // shutdown timeout. Like the unacknowledged deliveries of a closed channel,
                // it goes back to the queue: `on_failure` (e.g. Reject) is for messages that
                // failed, and rejecting this one would lose it.
                Failure::Dropped => AckAction::RejectAndRequeue,
                _ => data.on_failure.unwrap_or(self.on_failure),
            };
            settle(data, action);
        }
        for tag in successful.iter().map(|d| d.tag).chain(failed.iter().map(|(d, _)| d.tag)) {
            outstanding.remove(&tag);
        }
        let oldest = outstanding.first().copied().unwrap_or(u64::MAX);
        acks.sort_unstable();
        let below = acks.partition_point(|tag| *tag < oldest);
        if let Some(last) = acks[..below].last() {
            commands.push(Command::Ack { tag: *last, multiple: below > 1 });
        }
        commands.extend(acks[below..].iter().map(|tag| Command::Ack { tag: *tag, multiple: false }));
        commands
    }
}

impl Acknowledger for ChannelAcker {
    fn ack(&self, successful: Vec<AckData>, failed: Vec<(AckData, Failure)>) {
        // Stages settle concurrently (processors reject, batch processors ack). Computing
        // and queueing under one lock keeps the broker's order the computed one: otherwise
        // a `multiple` ack computed later could overtake a rejection (or a single ack) of a
        // tag below it, settling that message as acked and closing the channel on the
        // rejection's unknown delivery tag (406).
        let mut outstanding = self.outstanding.lock().unwrap_or_else(|p| p.into_inner());
        let commands = self.commands_locked(&mut outstanding, &successful, &failed);
        let queued = self.commands.send(commands).is_ok();
        drop(outstanding);
        if !queued {
            tracing::warn!(
                "rabbitmq: acknowledgements after the channel's task ended; the broker redelivers them"
            );
        }
    }

    fn configure(&self, data: &mut AckData, options: AckOptions) -> Result<(), weir_broadway::Error> {
        ack_actions::configure(data, options, &ACTIONS, &ACTIONS)
    }
}

/// Sends the commands in order; when the channel is gone, its messages cannot be settled
/// any more: the broker redelivers them (at least once), which is logged.
async fn run(connection: Connection, channel: Channel, mut commands: mpsc::UnboundedReceiver<Vec<Command>>) {
    let mut unackable = 0usize;
    while let Some(batch) = commands.recv().await {
        for command in batch {
            let sent = match command {
                Command::Ack { tag, multiple } => channel.basic_ack(tag, BasicAckOptions { multiple }).await,
                Command::Reject { tag, requeue } => {
                    channel.basic_reject(tag, BasicRejectOptions { requeue }).await
                }
            };
            if let Err(error) = sent {
                unackable += 1;
                tracing::debug!(%error, ?command, "rabbitmq: could not settle a delivery");
            }
        }
    }
    if unackable > 0 {
        tracing::warn!(
            unackable,
            "rabbitmq: the channel closed before these acknowledgements; the broker redelivers the messages"
        );
    }
    let _already_closed = connection.close(200, "weir: done".into()).await;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeSet;
    use std::sync::Arc;

    use tokio::sync::mpsc;
    use weir_broadway::{AckAction, AckData, AckOptions, Acknowledger, Failure};

    use super::{ChannelAcker, Command};

    impl ChannelAcker {
        /// An acknowledger without a connection: what it would send to the broker arrives
        /// on the receiver (drop it to discard the commands).
        fn for_test(
            on_success: AckAction,
            on_failure: AckAction,
        ) -> (Arc<Self>, mpsc::UnboundedReceiver<Vec<Command>>) {
            let (commands, rx) = mpsc::unbounded_channel();
            let acker = ChannelAcker { on_success, on_failure, outstanding: Default::default(), commands };
            (Arc::new(acker), rx)
        }
    }

    fn ok(tags: impl IntoIterator<Item = u64>) -> Vec<AckData> {
        tags.into_iter().map(AckData::new).collect()
    }

    fn failed(tags: impl IntoIterator<Item = u64>) -> Vec<(AckData, Failure)> {
        tags.into_iter().map(|tag| (AckData::new(tag), Failure::Failed("test".into()))).collect()
    }

    fn ack(tag: u64, multiple: bool) -> Command {
        Command::Ack { tag, multiple }
    }

    fn reject(tag: u64, requeue: bool) -> Command {
        Command::Reject { tag, requeue }
    }

    #[test]
    fn in_order_settlement_is_one_multiple_ack_at_the_last_tag() {
        let (acker, _) = ChannelAcker::for_test(AckAction::Ack, AckAction::RejectAndRequeue);
        acker.delivered(1..=10);
        // Settled in any order within the call: sorted, one ack covers them all.
        assert_eq!(acker.commands(&ok([3, 1, 2, 4, 5, 6, 7, 8, 10, 9]), &[]), vec![ack(10, true)]);
        acker.delivered(11..=12);
        assert_eq!(acker.commands(&ok([11]), &[]), vec![ack(11, false)], "one message: no `multiple`");
        assert_eq!(acker.commands(&ok([12]), &[]), vec![ack(12, false)]);
        assert_eq!(acker.commands(&[], &[]), vec![], "nothing settled, nothing sent");
    }

    #[test]
    fn out_of_order_settlement_acks_above_a_hole_one_by_one() {
        let (acker, _) = ChannelAcker::for_test(AckAction::Ack, AckAction::RejectAndRequeue);
        acker.delivered(1..=10);
        // 4 still in flight: 1..=3 at once, 5 and 6 each on its own.
        assert_eq!(
            acker.commands(&ok([1, 2, 3, 5, 6]), &[]),
            vec![ack(3, true), ack(5, false), ack(6, false)]
        );
        // A hole at the bottom: nothing can be acked with `multiple`.
        assert_eq!(acker.commands(&ok([8, 9]), &[]), vec![ack(8, false), ack(9, false)]);
        // The hole closes: 4 alone is below the oldest in flight (7).
        assert_eq!(acker.commands(&ok([4]), &[]), vec![ack(4, false)]);
        // 7 and 10 close everything: 8 and 9 were acked already, `multiple` skips them.
        assert_eq!(acker.commands(&ok([10, 7]), &[]), vec![ack(10, true)]);
    }

    #[test]
    fn rejections_come_before_the_multiple_ack() {
        let (acker, _) = ChannelAcker::for_test(AckAction::Ack, AckAction::Reject);
        acker.delivered(1..=6);
        assert_eq!(
            acker.commands(&ok([1, 2, 4, 6]), &failed([3, 5])),
            vec![reject(3, false), reject(5, false), ack(6, true)]
        );
        let (acker, _) = ChannelAcker::for_test(AckAction::Ack, AckAction::RejectAndRequeue);
        acker.delivered(1..=4);
        assert_eq!(acker.commands(&ok([1, 3]), &failed([2])), vec![reject(2, true), ack(3, true)]);
        // Only failures: no ack at all.
        assert_eq!(acker.commands(&[], &failed([4])), vec![reject(4, true)]);
    }

    #[test]
    fn reject_and_requeue_once_requeues_only_first_deliveries() {
        let (acker, _) = ChannelAcker::for_test(AckAction::Ack, AckAction::RejectAndRequeueOnce);
        acker.delivered(1..=3);
        let first = (AckData::new(1).with_redelivered(false), Failure::Failed("x".into()));
        let again = (AckData::new(2).with_redelivered(true), Failure::Failed("x".into()));
        assert_eq!(
            acker.commands(&ok([3]), &[first, again]),
            vec![reject(1, true), reject(2, false), ack(3, false)]
        );
    }

    #[test]
    fn dropped_messages_are_requeued_whatever_the_failure_action() {
        for action in [AckAction::Reject, AckAction::RejectAndRequeueOnce, AckAction::RejectAndRequeue] {
            let (acker, _) = ChannelAcker::for_test(AckAction::Ack, action);
            acker.delivered(1..=4);
            let mut configured = AckData::new(2).with_redelivered(true);
            configured.on_failure = Some(AckAction::Reject);
            let dropped = vec![
                (AckData::new(1).with_redelivered(true), Failure::Dropped),
                (configured, Failure::Dropped),
                (AckData::new(3), Failure::Panic { callback: "handle_message", message: "boom".into() }),
            ];
            let failed_3 = match action {
                AckAction::Reject => reject(3, false),
                _ => reject(3, true),
            };
            assert_eq!(
                acker.commands(&ok([4]), &dropped),
                vec![reject(1, true), reject(2, true), failed_3, ack(4, false)],
                "{action:?}"
            );
        }
    }

    #[test]
    fn per_message_actions_override_the_defaults() {
        let (acker, _) = ChannelAcker::for_test(AckAction::Ack, AckAction::RejectAndRequeue);
        acker.delivered(1..=4);
        let mut rejected_on_failure = AckData::new(1);
        acker.configure(&mut rejected_on_failure, AckOptions::new().on_failure(AckAction::Reject)).unwrap();
        assert_eq!(rejected_on_failure.on_failure, Some(AckAction::Reject));
        let mut rejected_on_success = AckData::new(3);
        acker.configure(&mut rejected_on_success, AckOptions::new().on_success(AckAction::Reject)).unwrap();
        let failures = vec![
            (rejected_on_failure, Failure::Failed("x".into())),
            (AckData::new(2), Failure::Failed("x".into())),
        ];
        assert_eq!(
            acker.commands(&[rejected_on_success, AckData::new(4)], &failures),
            vec![reject(3, false), reject(1, false), reject(2, true), ack(4, false)]
        );
    }

    #[test]
    fn configure_refuses_actions_rabbitmq_does_not_have() {
        let (acker, _) = ChannelAcker::for_test(AckAction::Ack, AckAction::RejectAndRequeue);
        let mut data = AckData::new(1);
        let error = acker.configure(&mut data, AckOptions::new().on_failure(AckAction::Noop)).unwrap_err();
        assert_eq!(
            error.to_string(),
            "on_failure (Noop) must be Ack, Reject, RejectAndRequeue or RejectAndRequeueOnce for RabbitMQ"
        );
        let error = acker.configure(&mut data, AckOptions::new().on_success(AckAction::Noop)).unwrap_err();
        assert!(error.to_string().starts_with("on_success (Noop) must be"), "{error}");
        assert_eq!((data.on_success, data.on_failure), (None, None), "left as it was");
    }

    #[test]
    fn ack_queues_the_commands_for_the_channel_task() {
        let (acker, mut rx) = ChannelAcker::for_test(AckAction::Ack, AckAction::Reject);
        acker.delivered(1..=3);
        acker.ack(ok([2]), Vec::new());
        acker.ack(ok([1]), failed([3]));
        assert_eq!(rx.try_recv().unwrap(), vec![ack(2, false)]);
        assert_eq!(rx.try_recv().unwrap(), vec![reject(3, false), ack(1, false)]);
        assert!(rx.try_recv().is_err());
        // Without the channel task the commands are dropped (and logged), never a panic.
        drop(rx);
        acker.delivered([4]);
        acker.ack(ok([4]), Vec::new());
    }

    /// The broker's view of one channel: what it accepts, in the order it gets it.
    #[derive(Default)]
    struct Broker {
        unacked: BTreeSet<u64>,
        acked: BTreeSet<u64>,
        rejected: BTreeSet<u64>,
    }

    impl Broker {
        /// Applies a command; Err is what RabbitMQ answers by closing the channel
        /// (406 PRECONDITION_FAILED - unknown delivery tag).
        fn apply(&mut self, command: Command) -> Result<(), String> {
            let tag = match command {
                Command::Ack { tag, .. } | Command::Reject { tag, .. } => tag,
            };
            if !self.unacked.contains(&tag) {
                return Err(format!("{command:?}: unknown delivery tag {tag}"));
            }
            match command {
                Command::Ack { multiple: true, .. } => {
                    let rest = self.unacked.split_off(&(tag + 1));
                    self.acked.extend(std::mem::replace(&mut self.unacked, rest));
                }
                Command::Ack { .. } => {
                    self.unacked.remove(&tag);
                    self.acked.insert(tag);
                }
                Command::Reject { .. } => {
                    self.unacked.remove(&tag);
                    self.rejected.insert(tag);
                }
            }
            Ok(())
        }
    }

    /// Several stages settle messages of one channel at once (processors reject, batch
    /// processors ack): the commands must reach the broker in an order it accepts, and a
    /// `multiple` ack must never settle a message another stage is rejecting.
    #[test]
    fn concurrent_settlements_reach_the_broker_in_a_consistent_order() {
        const TAGS: u64 = 600;
        const THREADS: u64 = 4;
        for round in 0..200 {
            let (acker, mut rx) = ChannelAcker::for_test(AckAction::Ack, AckAction::Reject);
            acker.delivered(1..=TAGS);
            let is_failed = |tag: u64| tag % 5 == 0;
            std::thread::scope(|scope| {
                for thread in 0..THREADS {
                    let acker = &acker;
                    scope.spawn(move || {
                        let mine: Vec<u64> = (1..=TAGS).filter(|tag| tag % THREADS == thread).collect();
                        for chunk in mine.chunks(3) {
                            let (bad, good): (Vec<u64>, Vec<u64>) =
                                chunk.iter().partition(|t| is_failed(**t));
                            acker.ack(ok(good), failed(bad));
                        }
                    });
                }
            });
            let mut broker = Broker { unacked: (1..=TAGS).collect(), ..Broker::default() };
            while let Ok(batch) = rx.try_recv() {
                for command in batch {
                    broker.apply(command).unwrap_or_else(|e| panic!("round {round}: {e}"));
                }
            }
            assert!(broker.unacked.is_empty(), "round {round}: left unacknowledged: {:?}", broker.unacked);
            let expected: BTreeSet<u64> = (1..=TAGS).filter(|t| is_failed(*t)).collect();
            assert_eq!(broker.rejected, expected, "round {round}");
        }
    }
}
