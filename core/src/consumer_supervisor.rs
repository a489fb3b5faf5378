//! Per-event workers: a consumer that runs one task per event (GenStage's `ConsumerSupervisor`).

use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;
use tokio::task::JoinSet;

use crate::consumer::ConsumerOptions;
use crate::error::{BoxError, Error, ExitReason};
use crate::handle::{ConsumerHandle, ConsumerRef};
use crate::producer::ProducerOptions;
use crate::runtime::{self, Behaviour, Emit, Kind, Never, Peer};
use crate::stage::Context;
use crate::subscription::{AskMode, SubscriptionId};

/// Options of a consumer supervisor: those of a consumer.
///
/// Each subscription's `max_demand` is its concurrency limit: at most that many workers run
/// for it at once. As workers finish, it asks for more once outstanding events fall to
/// `min_demand`.
pub type ConsumerSupervisorOptions<T> = ConsumerOptions<T>;

/// A worker finished: sent by its task back to the consumer supervisor.
pub struct WorkerDone {
    subscription: SubscriptionId,
    failure: Option<String>,
}

/// Starts a consumer that runs `worker` as its own task for each event, with each
/// subscription's `max_demand` as the concurrency limit.
///
/// A worker that fails or panics is logged and counts as done (Erlang's `:temporary`
/// children). When its producers finish, the consumer supervisor waits for its running
/// workers, then stops; when it stops otherwise, running workers are aborted.
///
/// # Errors
///
/// [`Error::InvalidOption`] for invalid subscription options, [`Error::NoRuntime`] outside a
/// tokio runtime.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), weir_core::Error> {
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use weir_core::{from_enumerable, start_consumer_supervisor, start_producer,
///     ConsumerSupervisorOptions, ProducerOptions, SubscribeOptions};
///
/// let done = Arc::new(AtomicUsize::new(0));
/// let jobs = start_producer(from_enumerable(0..100u32), ProducerOptions::new())?;
/// let counter = done.clone();
/// let workers = start_consumer_supervisor(
///     move |_job: u32| {
///         let counter = counter.clone();
///         async move {
///             counter.fetch_add(1, Ordering::Relaxed);
///             Ok(())
///         }
///     },
///     ConsumerSupervisorOptions::new().subscribe_to(&jobs, SubscribeOptions::new().max_demand(10)),
/// )?;
/// workers.wait().await;
/// assert_eq!(done.load(Ordering::Relaxed), 100);
/// # Ok(()) }
/// ```
pub fn start_consumer_supervisor<T, F, Fut>(
    worker: F,
    options: ConsumerSupervisorOptions<T>,
) -> Result<ConsumerHandle<T, WorkerDone>, Error>
where
    T: Send + 'static,
    F: Fn(T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
{
    let pool = Pool {
        worker: Arc::new(worker),
        workers: JoinSet::new(),
        running: 0,
        outstanding: HashMap::new(),
        _events: PhantomData,
    };
    let setup = ProducerOptions::<Never>::new().setup;
    let spawned = runtime::spawn(pool, options.name, setup, options.subscriptions)?;
    Ok(ConsumerHandle { stage: spawned.stage, consumer: ConsumerRef::new(Arc::new(spawned.inbox)) })
}

struct Pool<F, T> {
    worker: Arc<F>,
    workers: JoinSet<()>,
    /// Workers that have not reported back (a finished task may not be reaped yet).
    running: usize,
    /// Per subscription: events asked for and not yet finished by a worker.
    outstanding: HashMap<SubscriptionId, usize>,
    _events: PhantomData<fn(T)>,
}

impl<T, F, Fut> Behaviour for Pool<F, T>
where
    T: Send + 'static,
    F: Fn(T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
{
    type In = T;
    type Out = Never;
    type Message = WorkerDone;
    const KIND: Kind = Kind::Consumer;

    async fn demand(&mut self, _demand: usize, _ctx: &mut Context<WorkerDone>) -> Emit<Never> {
        Ok(Vec::new())
    }

    async fn events(
        &mut self,
        events: Vec<T>,
        from: SubscriptionId,
        ctx: &mut Context<WorkerDone>,
    ) -> Emit<Never> {
        for event in events {
            self.running += 1;
            let work = (self.worker)(event);
            let me = ctx.me().clone();
            self.workers.spawn(async move {
                let failure = match AssertUnwindSafe(work).catch_unwind().await {
                    Ok(Ok(())) => None,
                    Ok(Err(error)) => Some(error.to_string()),
                    Err(panic) => Some(format!("worker panicked: {}", crate::error::panic_message(&*panic))),
                };
                let _supervisor_gone = me.cast(WorkerDone { subscription: from, failure });
            });
        }
        Ok(Vec::new())
    }

    async fn info(&mut self, done: WorkerDone, ctx: &mut Context<WorkerDone>) -> Emit<Never> {
        self.running -= 1;
        while self.workers.try_join_next().is_some() {}
        if let Some(failure) = done.failure {
            tracing::error!(stage = ctx.name(), %failure, "worker failed");
        }
        let sub = done.subscription;
        if let (Some(outstanding), Some((max, min))) =
            (self.outstanding.get_mut(&sub), ctx.subscription_demand(sub))
        {
            *outstanding -= 1;
            if *outstanding <= min {
                ctx.ask(sub, max - *outstanding);
                *outstanding = max;
            }
        }
        Ok(Vec::new())
    }

    async fn subscribe(&mut self, peer: Peer, ctx: &mut Context<WorkerDone>) -> Result<AskMode, BoxError> {
        if let Peer::Producer(sub) = peer {
            let (max, _) = ctx.subscription_demand(sub).unwrap_or((1, 0));
            self.outstanding.insert(sub, max);
            ctx.ask(sub, max);
        }
        Ok(AskMode::Manual)
    }

    async fn cancel(
        &mut self,
        peer: Peer,
        _reason: &ExitReason,
        _ctx: &mut Context<WorkerDone>,
    ) -> Emit<Never> {
        if let Peer::Producer(sub) = peer {
            self.outstanding.remove(&sub);
        }
        Ok(Vec::new())
    }

    fn discarded(&mut self, _discarded: usize, _buffered: usize) -> bool {
        true
    }

    fn busy(&self) -> bool {
        self.running > 0
    }

    async fn terminate(&mut self, _reason: &ExitReason) {
        self.workers.abort_all();
    }
}
