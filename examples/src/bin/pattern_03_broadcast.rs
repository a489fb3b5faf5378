//! Pattern 3 of the GenStage guide: [`BroadcastDispatcher`], one producer → N consumers that
//! all receive every event (fan-out).
//!
//! `EventBroadcaster` is fed with `sync_notify`, a [`StageRef::call`] that returns only once
//! the notification has been dispatched. Two consumers subscribe: `EmailNotifier` with a
//! *selector* (it only wants email notifications) and `AuditLogger` without one (it wants
//! everything).
//!
//! As the guide warns, the first events could reach the first subscriber before the second
//! one subscribed. So the broadcaster starts in [`DemandMode::Accumulate`], and the program
//! switches it to [`DemandMode::Forward`] once both consumers are subscribed.
//!
//! What to look for: the audit log holds every notification, the email notifier exactly the
//! email ones, both in the same order.
//!
//! ```sh
//! cargo run -p weir-examples --bin pattern_03_broadcast
//! ```

use std::collections::VecDeque;
use std::error::Error;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use weir_core::dispatcher::BroadcastDispatcher;
use weir_core::{
    start_consumer, start_producer, BoxError, Consumer, ConsumerOptions, Context, DemandMode, ExitReason,
    Producer, ProducerOptions, Reply, StageRef, SubscribeOptions, SubscriptionId,
};

/// How many notifications the program sends.
const NOTIFICATIONS: u64 = 30;

/// Where a notification goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Channel {
    Email,
    Sms,
    Push,
}

/// The events: broadcast events must be `Clone`, each consumer gets its own copy.
#[derive(Debug, Clone)]
struct Notification {
    id: u64,
    channel: Channel,
}

/// The broadcaster's messages.
#[derive(Debug)]
enum BroadcasterMsg {
    /// Dispatch this notification, then answer.
    Notify(Notification, Reply<()>),
    /// How many consumers are subscribed?
    Subscribers(Reply<usize>),
    /// No more notifications: stop once the queue is dispatched.
    Close,
}

/// Queues notifications and emits them as consumers ask: the guide's `{queue, pending_demand}`.
#[derive(Default)]
struct EventBroadcaster {
    /// Notifications not yet dispatched, with the caller waiting for each.
    queue: VecDeque<(Reply<()>, Notification)>,
    /// Demand received and not yet served.
    pending_demand: usize,
    subscribers: usize,
    closed: bool,
}

impl EventBroadcaster {
    /// Emits as many queued notifications as there is demand for, answering their callers.
    fn dispatch_events(&mut self, ctx: &mut Context<BroadcasterMsg>) -> Vec<Notification> {
        let mut events = Vec::new();
        while self.pending_demand > 0 {
            let Some((reply, event)) = self.queue.pop_front() else { break };
            reply.send(());
            events.push(event);
            self.pending_demand -= 1;
        }
        if self.closed && self.queue.is_empty() {
            ctx.finish();
        }
        events
    }
}

impl Producer for EventBroadcaster {
    type Event = Notification;
    type Message = BroadcasterMsg;

    async fn handle_demand(
        &mut self,
        demand: usize,
        ctx: &mut Context<BroadcasterMsg>,
    ) -> Result<Vec<Notification>, BoxError> {
        self.pending_demand += demand;
        Ok(self.dispatch_events(ctx))
    }

    async fn handle_info(
        &mut self,
        message: BroadcasterMsg,
        ctx: &mut Context<BroadcasterMsg>,
    ) -> Result<Vec<Notification>, BoxError> {
        match message {
            BroadcasterMsg::Notify(event, reply) => self.queue.push_back((reply, event)),
            BroadcasterMsg::Subscribers(reply) => reply.send(self.subscribers),
            BroadcasterMsg::Close => self.closed = true,
        }
        Ok(self.dispatch_events(ctx))
    }

    async fn handle_subscribe(
        &mut self,
        _consumer: SubscriptionId,
        _ctx: &mut Context<BroadcasterMsg>,
    ) -> Result<(), BoxError> {
        self.subscribers += 1;
        Ok(())
    }
}

/// Sends a notification and returns once it was dispatched (the guide's `sync_notify`).
async fn sync_notify(
    broadcaster: &StageRef<BroadcasterMsg>,
    event: Notification,
) -> Result<(), Box<dyn Error>> {
    let dispatched = broadcaster.call(|reply| BroadcasterMsg::Notify(event, reply));
    tokio::time::timeout(Duration::from_secs(1), dispatched).await.map_err(|_| "sync_notify timed out")??;
    Ok(())
}

/// Records the ids of the notifications a consumer received.
type Received = Arc<Mutex<Vec<u64>>>;

/// Sends the emails: subscribed with a selector, it only ever sees email notifications.
struct EmailNotifier {
    sent: Received,
}

impl Consumer for EmailNotifier {
    type Event = Notification;
    type Message = ();

    async fn handle_events(
        &mut self,
        events: Vec<Notification>,
        _: SubscriptionId,
        _: &mut Context,
    ) -> Result<(), BoxError> {
        for event in events {
            println!("email: sending notification #{} ({:?})", event.id, event.channel);
            self.sent.lock().map_err(|_| "lock poisoned")?.push(event.id);
        }
        Ok(())
    }
}

/// Logs every notification for the audit trail.
struct AuditLogger {
    logged: Received,
}

impl Consumer for AuditLogger {
    type Event = Notification;
    type Message = ();

    async fn handle_events(
        &mut self,
        events: Vec<Notification>,
        _: SubscriptionId,
        _: &mut Context,
    ) -> Result<(), BoxError> {
        for event in events {
            println!("[AUDIT] #{} {:?}", event.id, event.channel);
            self.logged.lock().map_err(|_| "lock poisoned")?.push(event.id);
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    // Accumulate demand until every consumer has subscribed.
    let broadcaster = start_producer(
        EventBroadcaster::default(),
        ProducerOptions::new()
            .name("broadcaster")
            .dispatcher(BroadcastDispatcher::new())
            .demand(DemandMode::Accumulate),
    )?;

    let sent = Received::default();
    let emails = start_consumer(
        EmailNotifier { sent: sent.clone() },
        ConsumerOptions::new().name("email").subscribe_to(
            &broadcaster,
            SubscribeOptions::new()
                .max_demand(10)
                .selector(|event: &Notification| event.channel == Channel::Email),
        ),
    )?;
    let logged = Received::default();
    let audit = start_consumer(
        AuditLogger { logged: logged.clone() },
        ConsumerOptions::new()
            .name("audit")
            .subscribe_to(&broadcaster, SubscribeOptions::new().max_demand(10)),
    )?;

    // Once both consumers are subscribed, let demand through (GenStage's `demand(stage, :forward)`).
    tokio::time::timeout(Duration::from_secs(1), async {
        while broadcaster.call(BroadcasterMsg::Subscribers).await? < 2 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Ok::<_, weir_core::Error>(())
    })
    .await
    .map_err(|_| "the consumers did not subscribe within 1 s")??;
    println!(
        "main: demand mode was {:?}; both consumers subscribed, forwarding",
        broadcaster.demand_mode().await?
    );
    broadcaster.set_demand_mode(DemandMode::Forward)?;

    let channels = [Channel::Email, Channel::Sms, Channel::Push];
    let all: Vec<Notification> =
        (1..=NOTIFICATIONS).map(|id| Notification { id, channel: channels[(id % 3) as usize] }).collect();
    for event in all.clone() {
        sync_notify(broadcaster.stage(), event).await?;
    }

    // Close the broadcaster; the consumers finish after handling everything they were sent.
    broadcaster.cast(BroadcasterMsg::Close)?;
    for (name, consumer) in [("email", emails.stage()), ("audit", audit.stage())] {
        let reason = tokio::time::timeout(Duration::from_secs(2), consumer.wait())
            .await
            .map_err(|_| format!("the {name} consumer did not finish within 2 s"))?;
        assert!(matches!(reason, ExitReason::Normal), "the {name} consumer ended with {reason}");
    }

    let logged = logged.lock().map_err(|_| "lock poisoned")?.clone();
    let sent = sent.lock().map_err(|_| "lock poisoned")?.clone();
    let all_ids: Vec<u64> = all.iter().map(|e| e.id).collect();
    let email_ids: Vec<u64> = all.iter().filter(|e| e.channel == Channel::Email).map(|e| e.id).collect();
    assert_eq!(logged, all_ids, "the audit logger (no selector) saw every notification, in order");
    assert_eq!(sent, email_ids, "the email notifier (selector) saw exactly the email notifications");
    println!("ok: audit saw {} notifications, email saw {}", logged.len(), sent.len());
    Ok(())
}
