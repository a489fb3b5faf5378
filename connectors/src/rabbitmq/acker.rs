//! Acknowledgements to one RabbitMQ channel, batched: one `basic.ack` with `multiple` for
//! every settled tag below the oldest delivery still in flight.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use lapin::options::{BasicAckOptions, BasicRejectOptions};
use lapin::{Channel, Connection};
use tokio::sync::mpsc;
use weir_broadway::{AckAction, AckData, AckOptions, Acknowledger, Failure};

use crate::error::Error;

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
    /// Delivered and not yet settled.
    outstanding: Mutex<BTreeSet<u64>>,
    commands: mpsc::UnboundedSender<Vec<Command>>,
}

fn supported(option: &'static str, action: AckAction) -> Result<AckAction, Error> {
    match action {
        AckAction::Ack
        | AckAction::Reject
        | AckAction::RejectAndRequeue
        | AckAction::RejectAndRequeueOnce => Ok(action),
        other => Err(Error::invalid(
            option,
            format!("{other:?}"),
            "must be Ack, Reject, RejectAndRequeue or RejectAndRequeueOnce for RabbitMQ",
        )),
    }
}

pub(crate) fn check_action(option: &'static str, action: AckAction) -> Result<(), Error> {
    supported(option, action).map(drop)
}

impl ChannelAcker {
    /// An acknowledger for `channel`; its task closes `connection` once every message
    /// delivered on it is settled (the acknowledger is dropped with the last one).
    pub(crate) fn start(
        connection: Connection,
        channel: Channel,
        on_success: AckAction,
        on_failure: AckAction,
    ) -> Arc<Self> {
        let (commands, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(connection, channel, rx));
        Arc::new(ChannelAcker { on_success, on_failure, outstanding: Mutex::new(BTreeSet::new()), commands })
    }

    /// Tags delivered, before their messages go into the pipeline.
    pub(crate) fn delivered(&self, tags: impl IntoIterator<Item = u64>) {
        self.outstanding.lock().unwrap_or_else(|p| p.into_inner()).extend(tags);
    }

    /// The commands settling these messages: rejections first, one by one; then the
    /// successful ones below the oldest tag still in flight as one `multiple` ack (every
    /// unacknowledged tag under it is settled, and the rejected ones were sent before it),
    /// the others one by one.
    pub(crate) fn commands(&self, successful: &[AckData], failed: &[(AckData, Failure)]) -> Vec<Command> {
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
        for (data, _) in failed {
            settle(data, data.on_failure.unwrap_or(self.on_failure));
        }
        let oldest = {
            let mut outstanding = self.outstanding.lock().unwrap_or_else(|p| p.into_inner());
            for tag in successful.iter().map(|d| d.tag).chain(failed.iter().map(|(d, _)| d.tag)) {
                outstanding.remove(&tag);
            }
            outstanding.first().copied().unwrap_or(u64::MAX)
        };
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
        let commands = self.commands(&successful, &failed);
        if self.commands.send(commands).is_err() {
            tracing::warn!(
                "rabbitmq: acknowledgements after the channel's task ended; the broker redelivers them"
            );
        }
    }

    fn configure(&self, data: &mut AckData, options: AckOptions) -> Result<(), weir_broadway::Error> {
        let invalid = |e: Error| match e {
            Error::InvalidOption { option, value, rule } => {
                weir_broadway::Error::InvalidOption { option, value, rule }
            }
            other => weir_broadway::Error::InvalidOption {
                option: "ack",
                value: other.to_string(),
                rule: String::new(),
            },
        };
        if let Some(action) = options.on_success {
            data.on_success = Some(supported("on_success", action).map_err(invalid)?);
        }
        if let Some(action) = options.on_failure {
            data.on_failure = Some(supported("on_failure", action).map_err(invalid)?);
        }
        Ok(())
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
