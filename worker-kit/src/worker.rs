//! The consume loop shared by the RPC and work-queue workers: channel setup, consuming,
//! recovering from a lost connection or a cancelled consumer, and draining on shutdown.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::stream::{self, SelectAll, StreamExt};
use lapin::message::Delivery;
use lapin::options::{
    BasicCancelOptions, BasicConsumeOptions, BasicQosOptions, ConfirmSelectOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::Error;
use crate::broker::Broker;
use crate::config::{Config, PausePolicy};
use crate::handler::{Handler, boxed};
use crate::routes::{BoundHandler, RouteTable};

/// What the Runner hands each worker.
#[derive(Clone)]
pub struct WorkerContext {
    pub(crate) broker: Broker,
    pub(crate) config: Arc<Config>,
    pub(crate) shutdown: CancellationToken,
    pub(crate) ready: mpsc::UnboundedSender<Result<String, Error>>,
    pub(crate) paused: watch::Receiver<bool>,
    pub(crate) service: Arc<str>,
}

impl std::fmt::Debug for WorkerContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerContext")
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

mod sealed {
    pub trait Sealed {}
}

/// A worker the [`Runner`](crate::runner::Runner) can drive: an
/// [`RpcWorker`](crate::rpc::RpcWorker) or a [`QueueWorker`](crate::queue::QueueWorker).
#[async_trait]
pub trait Runnable: sealed::Sealed + Send + 'static {
    /// `rpc` or `queue`, for logs.
    fn kind(&self) -> &'static str;
    /// The names of the routes registered (duplicates included, so they can be reported).
    fn route_names(&self) -> Vec<String>;
    /// Runs until shutdown is requested and in-flight messages are drained.
    #[doc(hidden)]
    async fn run(self: Box<Self>, ctx: WorkerContext) -> Result<(), Error>;
}

impl<K, S> sealed::Sealed for Worker<K, S> {}

/// Routes and their shared state; `K` says what kind of worker it is: [`Rpc`](crate::rpc::Rpc)
/// ([`RpcWorker`](crate::rpc::RpcWorker)) or [`Queue`](crate::queue::Queue)
/// ([`QueueWorker`](crate::queue::QueueWorker)).
pub struct Worker<K, S = ()> {
    pub(crate) kind: K,
    state: S,
    routes: RouteTable<S>,
    prefetch: Option<u16>,
}

impl<K: std::fmt::Debug, S> std::fmt::Debug for Worker<K, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("kind", &self.kind)
            .field("prefetch", &self.prefetch)
            .finish_non_exhaustive()
    }
}

impl<K: Default> Worker<K, ()> {
    /// A worker without shared state.
    pub fn new() -> Self {
        Self::with_state(())
    }
}

impl<K: Default> Default for Worker<K, ()> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Default, S: Clone + Send + Sync + 'static> Worker<K, S> {
    /// A worker whose handlers can take `State<S>`.
    pub fn with_state(state: S) -> Self {
        Self {
            kind: K::default(),
            state,
            routes: RouteTable::default(),
            prefetch: None,
        }
    }
}

impl<K, S: Clone + Send + Sync + 'static> Worker<K, S> {
    /// Serves route `name` with `handler`.
    #[must_use]
    pub fn route<H, Args>(mut self, name: &str, handler: H) -> Self
    where
        H: Handler<Args, S>,
    {
        self.routes.add(name, boxed(handler));
        self
    }

    /// Unacknowledged deliveries this worker holds at once (default `AMQP_PREFETCH`).
    #[must_use]
    pub fn prefetch(mut self, n: u16) -> Self {
        self.prefetch = Some(n.max(1));
        self
    }

    pub(crate) fn names(&self) -> Vec<String> {
        self.routes.names()
    }

    /// Runs the consume loop with `processor` (what a worker kind does per message).
    pub(crate) async fn run_with<P: Processor>(
        self,
        ctx: WorkerContext,
        processor: P,
    ) -> Result<(), Error> {
        if let Some(d) = self.routes.duplicates().first() {
            return Err(Error::DuplicateRoute(d.clone()));
        }
        let prefetch = self.prefetch.unwrap_or(ctx.config.prefetch);
        let routes = self.routes.bind(self.state);
        run(ctx, Arc::new(processor), routes, prefetch).await
    }
}

/// The parts that differ between RPC and work-queue workers.
#[async_trait]
pub(crate) trait Processor: Send + Sync + 'static {
    fn kind(&self) -> &'static str;
    /// Declares what `route` needs (its queue, exchanges, parking queue).
    async fn declare(&self, channel: &Channel, route: &str) -> Result<(), lapin::Error>;
    /// Handles one delivery to the end (reply/ack/retry/park); returns the outcome's
    /// name for the message's log span.
    async fn handle(
        &self,
        channel: &Channel,
        delivery: Delivery,
        route: &Arc<str>,
        handler: BoundHandler,
    ) -> &'static str;
}

// Deliveries are the hot path; boxing them to shrink the rare `Ended` would cost an
// allocation per message.
#[allow(clippy::large_enum_variant)]
enum Event {
    Delivery(Arc<str>, Result<Delivery, lapin::Error>),
    Ended(Arc<str>),
}

type Events = SelectAll<stream::BoxStream<'static, Event>>;

struct Live {
    channel: Channel,
    events: Events,
    tags: Vec<String>,
}

/// Runs the consume loop for `routes` until `ctx.shutdown`, then drains.
pub(crate) async fn run<P: Processor>(
    ctx: WorkerContext,
    processor: Arc<P>,
    routes: Vec<(Arc<str>, BoundHandler)>,
    prefetch: u16,
) -> Result<(), Error> {
    let kind = processor.kind();
    let mut pausable = match ctx.config.pause_on_db_outage {
        PausePolicy::Off => false,
        PausePolicy::Queue => kind == "queue",
        PausePolicy::All => true,
    };
    let mut paused_rx = ctx.paused.clone();
    let tracker = TaskTracker::new();
    let mut announced = false;
    let mut last_channel: Option<Channel> = None;
    let mut failures = 0u32;
    'connect: loop {
        let conn = tokio::select! {
            () = ctx.shutdown.cancelled() => break 'connect,
            c = ctx.broker.connection() => match c {
                Some(c) => c,
                None => break 'connect,
            },
        };
        let mut live = match setup(&ctx, &conn, processor.as_ref(), &routes, prefetch).await {
            Ok(live) => live,
            Err(e) => {
                if !announced {
                    let _ = ctx.ready.send(Err(e));
                    return Ok(());
                }
                failures += 1;
                let delay = Duration::from_millis(200 * u64::from(failures.min(25)));
                warn!(worker = kind, error = %e, retry_in_ms = delay.as_millis() as u64, "could not resume consuming");
                tokio::select! {
                    () = ctx.shutdown.cancelled() => break 'connect,
                    () = tokio::time::sleep(delay) => continue 'connect,
                }
            }
        };
        failures = 0;
        if announced {
            info!(worker = kind, routes = routes.len(), "consuming again");
        } else {
            announced = true;
            let names: Vec<&str> = routes.iter().map(|(n, _)| &**n).collect();
            let _ = ctx
                .ready
                .send(Ok(format!("{kind} worker consuming {}", names.join(", "))));
        }
        let handler_for = |route: &str| {
            routes
                .iter()
                .find(|(n, _)| &**n == route)
                .map(|(_, h)| h.clone())
        };
        // Consumers cancelled because a database is down; deliveries already prefetched
        // keep flowing until their streams end.
        let mut paused = false;
        loop {
            let want_pause = pausable && *paused_rx.borrow();
            if want_pause != paused {
                if want_pause {
                    warn!(
                        worker = kind,
                        "a database is unreachable; pausing consumption until it answers"
                    );
                    cancel_all(&live.channel, &live.tags, kind).await;
                    live.tags.clear();
                } else {
                    info!(
                        worker = kind,
                        "databases answer again; resuming consumption"
                    );
                    for (route, _) in &routes {
                        match consume_one(&live.channel, processor.as_ref(), route, &ctx.service)
                            .await
                        {
                            Ok((tag, s)) => {
                                live.tags.push(tag);
                                live.events.push(s);
                            }
                            Err(e) => {
                                warn!(worker = kind, error = %e, "could not resume; re-creating the channel");
                                continue 'connect;
                            }
                        }
                    }
                }
                paused = want_pause;
            }
            tokio::select! {
                biased;
                () = ctx.shutdown.cancelled() => {
                    cancel_all(&live.channel, &live.tags, kind).await;
                    last_channel = Some(live.channel);
                    break 'connect;
                }
                changed = paused_rx.changed(), if pausable => {
                    if changed.is_err() {
                        // No health loop (no databases to watch): nothing will pause us.
                        pausable = false;
                    }
                }
                ev = live.events.next(), if !live.events.is_empty() => match ev {
                    Some(Event::Delivery(route, Ok(delivery))) => {
                        if let Some(h) = handler_for(&route) {
                            tracker.spawn(instrumented(processor.clone(), live.channel.clone(), delivery, route, h));
                        }
                    }
                    Some(Event::Delivery(route, Err(e))) => {
                        warn!(worker = kind, %route, error = %e, "consumer failed; re-establishing");
                        continue 'connect;
                    }
                    Some(Event::Ended(route)) => {
                        if paused || ctx.shutdown.is_cancelled() {
                            continue;
                        }
                        if !live.channel.status().connected() || !conn.status().connected() {
                            continue 'connect;
                        }
                        warn!(worker = kind, %route, "consumer cancelled by the broker (queue deleted?); redeclaring and consuming again");
                        match consume_one(&live.channel, processor.as_ref(), &route, &ctx.service).await {
                            Ok((tag, s)) => {
                                live.tags.push(tag);
                                live.events.push(s);
                            }
                            Err(e) => {
                                error!(worker = kind, %route, error = %e, "could not consume again; re-creating the channel");
                                continue 'connect;
                            }
                        }
                    }
                    None => {}
                },
                // Nothing to consume (paused, every stream ended): only a resume, a
                // shutdown or a lost channel moves us on.
                () = tokio::time::sleep(Duration::from_millis(500)), if live.events.is_empty() => {
                    if !live.channel.status().connected() {
                        continue 'connect;
                    }
                    if !paused {
                        continue 'connect;
                    }
                }
            }
        }
    }
    drain(&ctx, kind, &tracker).await;
    if let Some(ch) = last_channel.filter(|c| c.status().connected()) {
        let _ = ch.close(200, "worker stopped".into()).await;
    }
    Ok(())
}

/// Handles one delivery inside a span carrying its route, correlation id, outcome and
/// duration.
async fn instrumented<P: Processor>(
    processor: Arc<P>,
    channel: Channel,
    delivery: Delivery,
    route: Arc<str>,
    handler: BoundHandler,
) {
    let span = info_span!(
        "message",
        worker = processor.kind(),
        %route,
        correlation_id = crate::delivery::correlation_id(&delivery.properties).unwrap_or(""),
        outcome = tracing::field::Empty,
        duration_ms = tracing::field::Empty,
    );
    async move {
        let started = Instant::now();
        let outcome = processor.handle(&channel, delivery, &route, handler).await;
        let span = tracing::Span::current();
        span.record("outcome", outcome);
        span.record("duration_ms", started.elapsed().as_secs_f64() * 1000.0);
        debug!("done");
    }
    .instrument(span)
    .await;
}

/// Cancels the consumers `tags` (stops new deliveries; prefetched ones still arrive).
async fn cancel_all(channel: &Channel, tags: &[String], kind: &str) {
    for tag in tags {
        if let Err(e) = channel
            .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
            .await
        {
            warn!(worker = kind, error = %e, "cancelling consumer failed");
        }
    }
}

async fn drain(ctx: &WorkerContext, kind: &str, tracker: &TaskTracker) {
    tracker.close();
    if tracker.is_empty() {
        return;
    }
    let in_flight = tracker.len();
    info!(worker = kind, in_flight, "draining in-flight messages");
    if tokio::time::timeout(ctx.config.drain_timeout, tracker.wait())
        .await
        .is_err()
    {
        warn!(
            worker = kind,
            unfinished = tracker.len(),
            drain_timeout_ms = ctx.config.drain_timeout.as_millis() as u64,
            "drain deadline passed; unfinished messages stay unacknowledged and the broker redelivers them"
        );
    }
}

async fn setup<P: Processor>(
    ctx: &WorkerContext,
    conn: &Connection,
    processor: &P,
    routes: &[(Arc<str>, BoundHandler)],
    prefetch: u16,
) -> Result<Live, Error> {
    let broker_err = |what: String| {
        move |e: lapin::Error| Error::Broker {
            message: what,
            source: Some(e),
        }
    };
    let channel = conn
        .create_channel()
        .await
        .map_err(broker_err("opening a channel failed".into()))?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(broker_err("enabling publisher confirms failed".into()))?;
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await
        .map_err(broker_err(format!("setting prefetch {prefetch} failed")))?;
    let mut events: Events = SelectAll::new();
    let mut tags = Vec::with_capacity(routes.len());
    for (route, _) in routes {
        let (tag, s) = consume_one(&channel, processor, route, &ctx.service).await?;
        tags.push(tag);
        events.push(s);
    }
    Ok(Live {
        channel,
        events,
        tags,
    })
}

async fn consume_one<P: Processor>(
    channel: &Channel,
    processor: &P,
    route: &Arc<str>,
    service: &str,
) -> Result<(String, stream::BoxStream<'static, Event>), Error> {
    processor.declare(channel, route).await.map_err(|e| {
        let hint = if e.to_string().contains("PRECONDITION_FAILED") {
            " (a queue of that name already exists with other flags or arguments; PROTOCOL.md fixes them: delete the queue or fix whoever declared it)"
        } else {
            ""
        };
        Error::Broker {
            message: format!("declaring route `{route}` failed{hint}"),
            source: Some(e),
        }
    })?;
    let tag = format!("{service}.{route}.{}", uuid::Uuid::new_v4().simple());
    let consumer = channel
        .basic_consume(
            route.as_ref().into(),
            tag.as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| Error::Broker {
            message: format!("consuming route `{route}` failed"),
            source: Some(e),
        })?;
    let r1 = route.clone();
    let r2 = route.clone();
    let s = consumer
        .map(move |d| Event::Delivery(r1.clone(), d))
        .chain(stream::once(async move { Event::Ended(r2) }))
        .boxed();
    Ok((tag, s))
}
