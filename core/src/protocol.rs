//! The messages stages exchange (GenStage's `$gen_producer` / `$gen_consumer` protocol).
//!
//! Every stage has one protocol inbox; a producer reaches its consumers and a consumer its
//! producers through type-erased links to those inboxes, so a stage only needs to know the
//! event type it shares with a peer.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, ExitReason};
use crate::subscription::{PartitionKey, Selector, StageId, SubscribeOptions, SubscriptionId};

/// Answer to a subscription request, sent by the producer.
pub(crate) type SubscribeReply = oneshot::Sender<Result<SubscriptionId, Error>>;

/// What a stage's protocol inbox receives. `In` are the events it consumes, `Out` those it produces.
pub(crate) enum Inbox<In, Out> {
    /// Events from an upstream producer.
    Events { sub: SubscriptionId, events: Vec<In> },
    /// An upstream producer ended the subscription.
    UpstreamDown { sub: SubscriptionId, reason: ExitReason },
    /// A consumer subscribes to this stage.
    Subscribe(Box<SubscribeRequest<Out>>),
    /// A consumer asks for more events.
    Ask { sub: SubscriptionId, demand: usize },
    /// A consumer cancels its subscription.
    DownstreamCancel { sub: SubscriptionId, reason: ExitReason },
    /// Subscribe this stage to a producer (a runtime subscription).
    SubscribeTo {
        sub: SubscriptionId,
        producer: Arc<dyn ProducerLink<In>>,
        options: Box<SubscribeOptions<In>>,
        reply: Option<SubscribeReply>,
    },
    /// Cancel one of this stage's upstream subscriptions.
    CancelUpstream { sub: SubscriptionId, reason: ExitReason },
}

/// A consumer's request to subscribe, as the producer receives it.
pub(crate) struct SubscribeRequest<T> {
    pub(crate) sub: SubscriptionId,
    pub(crate) consumer: StageId,
    pub(crate) link: Arc<dyn ConsumerLink<T>>,
    pub(crate) max_demand: usize,
    pub(crate) partition: Option<PartitionKey>,
    pub(crate) selector: Option<Selector<T>>,
    pub(crate) reply: Option<SubscribeReply>,
}

/// How a consumer reaches a producer of `T`.
pub(crate) trait ProducerLink<T>: Send + Sync {
    /// Sends a subscription request; gives it back if the producer is gone.
    fn subscribe(&self, request: SubscribeRequest<T>) -> Result<(), Box<SubscribeRequest<T>>>;
    /// Asks for `demand` more events; false if the producer is gone.
    fn ask(&self, sub: SubscriptionId, demand: usize) -> bool;
    /// Cancels a subscription.
    fn cancel(&self, sub: SubscriptionId, reason: ExitReason);
}

/// How a producer reaches a consumer of `T`.
pub(crate) trait ConsumerLink<T>: Send + Sync {
    /// Sends events; gives them back if the consumer is gone.
    fn events(&self, sub: SubscriptionId, events: Vec<T>) -> Result<(), Vec<T>>;
    /// Tells the consumer the subscription ended.
    fn down(&self, sub: SubscriptionId, reason: ExitReason);
}

/// How a handle asks a consumer of `T` to subscribe to a producer or cancel.
pub(crate) trait SubscribeLink<T>: Send + Sync {
    fn subscribe_to(
        &self,
        sub: SubscriptionId,
        producer: Arc<dyn ProducerLink<T>>,
        options: SubscribeOptions<T>,
        reply: Option<SubscribeReply>,
    ) -> bool;
    fn cancel(&self, sub: SubscriptionId, reason: ExitReason) -> bool;
}

impl<In: Send + 'static, Out: Send + 'static> ProducerLink<Out> for mpsc::UnboundedSender<Inbox<In, Out>> {
    fn subscribe(&self, request: SubscribeRequest<Out>) -> Result<(), Box<SubscribeRequest<Out>>> {
        self.send(Inbox::Subscribe(Box::new(request))).map_err(|e| match e.0 {
            Inbox::Subscribe(r) => r,
            _ => unreachable!("sent a subscribe message"),
        })
    }

    fn ask(&self, sub: SubscriptionId, demand: usize) -> bool {
        self.send(Inbox::Ask { sub, demand }).is_ok()
    }

    fn cancel(&self, sub: SubscriptionId, reason: ExitReason) {
        let _gone_already = self.send(Inbox::DownstreamCancel { sub, reason });
    }
}

impl<In: Send + 'static, Out: Send + 'static> ConsumerLink<In> for mpsc::UnboundedSender<Inbox<In, Out>> {
    fn events(&self, sub: SubscriptionId, events: Vec<In>) -> Result<(), Vec<In>> {
        self.send(Inbox::Events { sub, events }).map_err(|e| match e.0 {
            Inbox::Events { events, .. } => events,
            _ => unreachable!("sent an events message"),
        })
    }

    fn down(&self, sub: SubscriptionId, reason: ExitReason) {
        let _gone_already = self.send(Inbox::UpstreamDown { sub, reason });
    }
}

impl<In: Send + 'static, Out: Send + 'static> SubscribeLink<In> for mpsc::UnboundedSender<Inbox<In, Out>> {
    fn subscribe_to(
        &self,
        sub: SubscriptionId,
        producer: Arc<dyn ProducerLink<In>>,
        options: SubscribeOptions<In>,
        reply: Option<SubscribeReply>,
    ) -> bool {
        self.send(Inbox::SubscribeTo { sub, producer, options: Box::new(options), reply }).is_ok()
    }

    fn cancel(&self, sub: SubscriptionId, reason: ExitReason) -> bool {
        self.send(Inbox::CancelUpstream { sub, reason }).is_ok()
    }
}
