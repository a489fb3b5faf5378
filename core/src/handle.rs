//! Handles to started stages: how consumers find producers and subscribe to them.

use std::ops::Deref;
use std::sync::Arc;

use tokio::sync::oneshot;

use crate::error::{Error, ExitReason};
use crate::protocol::{ProducerLink, SubscribeLink};
use crate::stage::{Slot, StageRef};
use crate::subscription::{SubscribeOptions, SubscriptionId};

/// Where consumers of `T` subscribe: a producer or producer-consumer.
///
/// Cheap to clone. One given out by a [`Supervisor`](crate::Supervisor) follows the child
/// across restarts, so consumers re-subscribe to the new instance.
pub struct ProducerRef<T> {
    link: Arc<Slot<Arc<dyn ProducerLink<T>>>>,
}

impl<T> Clone for ProducerRef<T> {
    fn clone(&self) -> Self {
        ProducerRef { link: self.link.clone() }
    }
}

impl<T> std::fmt::Debug for ProducerRef<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProducerRef")
    }
}

impl<T> ProducerRef<T> {
    pub(crate) fn new(link: Arc<dyn ProducerLink<T>>) -> Self {
        ProducerRef { link: Slot::new(link) }
    }

    pub(crate) fn link(&self) -> Arc<dyn ProducerLink<T>> {
        self.link.get()
    }

    pub(crate) fn rebind(&self, to: &ProducerRef<T>) {
        self.link.set(to.link.get());
    }
}

/// Anything consumers of `T` can subscribe to.
pub trait AsProducer<T> {
    /// The producer.
    fn as_producer(&self) -> &ProducerRef<T>;
}

impl<T> AsProducer<T> for ProducerRef<T> {
    fn as_producer(&self) -> &ProducerRef<T> {
        self
    }
}

/// A consumer of `T` (a consumer or producer-consumer): subscribe it to producers at runtime.
pub struct ConsumerRef<T> {
    link: Arc<Slot<Arc<dyn SubscribeLink<T>>>>,
}

impl<T> Clone for ConsumerRef<T> {
    fn clone(&self) -> Self {
        ConsumerRef { link: self.link.clone() }
    }
}

impl<T> std::fmt::Debug for ConsumerRef<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConsumerRef")
    }
}

impl<T: Send + 'static> ConsumerRef<T> {
    pub(crate) fn new(link: Arc<dyn SubscribeLink<T>>) -> Self {
        ConsumerRef { link: Slot::new(link) }
    }

    pub(crate) fn rebind(&self, to: &ConsumerRef<T>) {
        self.link.set(to.link.get());
    }

    /// Subscribes to `producer` and waits until the producer accepts (GenStage's `sync_subscribe`).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`] for bad demand options; the producer's refusal
    /// ([`Error::PartitionTaken`], [`Error::UnknownPartition`], [`Error::AlreadySubscribed`]...);
    /// [`Error::StageStopped`] if either stage is not running. A refused or failed subscription
    /// also ends per its cancel mode: a permanent one stops the consumer.
    pub async fn subscribe_to(
        &self,
        producer: &impl AsProducer<T>,
        options: SubscribeOptions<T>,
    ) -> Result<SubscriptionId, Error> {
        options.validate()?;
        let (tx, rx) = oneshot::channel();
        let sub = SubscriptionId::new();
        if !self.link.get().subscribe_to(sub, producer.as_producer().link(), options, Some(tx)) {
            return Err(Error::StageStopped);
        }
        rx.await.map_err(|_| Error::StageStopped)?
    }

    /// Subscribes to `producer` without waiting for it to accept (GenStage's `async_subscribe`).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`] for bad demand options, [`Error::StageStopped`] if the consumer
    /// is not running. A refusal by the producer ends the subscription per its cancel mode.
    pub fn async_subscribe(
        &self,
        producer: &impl AsProducer<T>,
        options: SubscribeOptions<T>,
    ) -> Result<SubscriptionId, Error> {
        options.validate()?;
        let sub = SubscriptionId::new();
        if !self.link.get().subscribe_to(sub, producer.as_producer().link(), options, None) {
            return Err(Error::StageStopped);
        }
        Ok(sub)
    }

    /// Cancels a subscription of this consumer (GenStage's `cancel/2`).
    ///
    /// # Errors
    ///
    /// [`Error::StageStopped`] if the consumer is not running.
    pub fn cancel(&self, subscription: SubscriptionId) -> Result<(), Error> {
        if self.link.get().cancel(subscription, ExitReason::Normal) {
            Ok(())
        } else {
            Err(Error::StageStopped)
        }
    }
}

/// A started producer. Derefs to its [`StageRef`].
pub struct ProducerHandle<T, M = ()> {
    pub(crate) stage: StageRef<M>,
    pub(crate) producer: ProducerRef<T>,
}

/// A started producer-consumer. Derefs to its [`StageRef`].
pub struct ProducerConsumerHandle<I, O, M = ()> {
    pub(crate) stage: StageRef<M>,
    pub(crate) producer: ProducerRef<O>,
    pub(crate) consumer: ConsumerRef<I>,
}

/// A started consumer. Derefs to its [`StageRef`].
pub struct ConsumerHandle<T, M = ()> {
    pub(crate) stage: StageRef<M>,
    pub(crate) consumer: ConsumerRef<T>,
}

macro_rules! handle_common {
    ($name:ident <$($g:ident),*>) => {
        impl<$($g),*, M> Deref for $name<$($g),*, M> {
            type Target = StageRef<M>;
            fn deref(&self) -> &StageRef<M> {
                &self.stage
            }
        }

        impl<$($g),*, M> $name<$($g),*, M> {
            /// The stage's handle for messages and lifecycle.
            pub fn stage(&self) -> &StageRef<M> {
                &self.stage
            }
        }
    };
}

handle_common!(ProducerHandle<T>);
handle_common!(ProducerConsumerHandle<I, O>);
handle_common!(ConsumerHandle<T>);

impl<T, M> Clone for ProducerHandle<T, M> {
    fn clone(&self) -> Self {
        ProducerHandle { stage: self.stage.clone(), producer: self.producer.clone() }
    }
}

impl<T, M> ProducerHandle<T, M> {
    /// Where consumers subscribe.
    pub fn producer(&self) -> &ProducerRef<T> {
        &self.producer
    }
}

impl<I, O, M> Clone for ProducerConsumerHandle<I, O, M> {
    fn clone(&self) -> Self {
        ProducerConsumerHandle {
            stage: self.stage.clone(),
            producer: self.producer.clone(),
            consumer: self.consumer.clone(),
        }
    }
}

impl<I, O, M> ProducerConsumerHandle<I, O, M> {
    /// Where consumers subscribe.
    pub fn producer(&self) -> &ProducerRef<O> {
        &self.producer
    }

    /// Subscribe this stage to producers.
    pub fn consumer(&self) -> &ConsumerRef<I> {
        &self.consumer
    }
}

impl<T, M> Clone for ConsumerHandle<T, M> {
    fn clone(&self) -> Self {
        ConsumerHandle { stage: self.stage.clone(), consumer: self.consumer.clone() }
    }
}

impl<T, M> ConsumerHandle<T, M> {
    /// Subscribe this stage to producers.
    pub fn consumer(&self) -> &ConsumerRef<T> {
        &self.consumer
    }
}

impl<T, M> AsProducer<T> for ProducerHandle<T, M> {
    fn as_producer(&self) -> &ProducerRef<T> {
        &self.producer
    }
}

impl<I, O, M> AsProducer<O> for ProducerConsumerHandle<I, O, M> {
    fn as_producer(&self) -> &ProducerRef<O> {
        &self.producer
    }
}
