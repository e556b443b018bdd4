//! The consume loop shared by the RPC and work-queue workers: channel setup, consuming,
//! recovering from a lost connection or a cancelled consumer, and draining on shutdown.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::stream::{self, SelectAll, StreamExt};
use lapin::message::Delivery;
use lapin::options::BasicNackOptions;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, error, info, warn};

use super::handoff::{WorkerContext, WorkerKind};
use super::link::{BrokerLink, LapinLink};
pub(crate) use super::processor::{Processor, requeue, requeue_after_a_pause};
use crate::Error;
use crate::amqp::consumer_timeout::ConsumerLoss;
use crate::backoff::Pauses;
use crate::config::PausePolicy;
use crate::handler::routes::BoundHandler;
use crate::observe::disposition::Disposition;
use crate::observe::health::WorkerHealth;
use crate::observe::metrics::RouteMetrics;
use crate::observe::trace::Traced;

/// A route as the loop serves it: its queue's name, its handler, its metrics.
type Served = (Arc<str>, BoundHandler, Arc<RouteMetrics>);

// Deliveries are the hot path; boxing them to shrink the rare `Ended` would cost an
// allocation per message.
#[allow(clippy::large_enum_variant)]
enum ConsumerEvent {
    Delivery(Arc<str>, Result<Delivery, lapin::Error>),
    /// A consumer's stream ended: its route and its consumer tag (a consumer cancelled by
    /// a pause may end after the resume started a new one on the same route).
    Ended(Arc<str>, Arc<str>),
}

type Events = SelectAll<stream::BoxStream<'static, ConsumerEvent>>;

/// Why a consuming session ended.
enum SessionEnd {
    /// Shutdown was requested: drain, then stop.
    Shutdown,
    /// The channel or connection failed: open a new session (after a reconnect).
    Reconnect,
}

/// One channel consuming every route of a worker, from open to its end: what the loop
/// does when the databases go away (`pause`) and come back (`resume`), and when the broker
/// cancels a consumer (`on_ended`).
struct Session<'a, L: BrokerLink, P: Processor<L::Channel>> {
    kind: WorkerKind,
    link: &'a L,
    channel: L::Channel,
    events: Events,
    tags: Vec<String>,
    paused: bool,
    /// Deliveries received but never started (the stop came first): given back at the end.
    unstarted: Vec<(Arc<str>, Delivery)>,
    /// Whether any delivery came on this session (a session that fails before one did
    /// makes the next reopen wait longer).
    received: bool,
    processor: &'a P,
    routes: &'a [Served],
    service: &'a str,
}

impl<'a, L: BrokerLink, P: Processor<L::Channel>> Session<'a, L, P> {
    /// Opens a channel with `prefetch` per consumer and consumes every route.
    async fn open(
        ctx: &'a WorkerContext,
        link: &'a L,
        conn: &L::Connection,
        processor: &'a P,
        routes: &'a [Served],
        prefetch: u16,
    ) -> Result<Self, Error> {
        let channel = link.open(conn, prefetch).await?;
        let mut session = Session {
            kind: processor.kind(),
            link,
            channel,
            events: SelectAll::new(),
            tags: Vec::with_capacity(routes.len()),
            paused: false,
            unstarted: Vec::new(),
            received: false,
            processor,
            routes,
            service: &ctx.service,
        };
        for (route, _, _) in routes {
            session.consume(route).await?;
        }
        Ok(session)
    }

    async fn consume(&mut self, route: &Arc<str>) -> Result<(), Error> {
        let (tag, s) = consume_one(
            self.link,
            &self.channel,
            self.processor,
            route,
            self.service,
        )
        .await?;
        self.tags.push(tag);
        self.events.push(s);
        Ok(())
    }

    /// Cancels every consumer (a database is down). Deliveries already prefetched keep
    /// flowing until their streams end.
    async fn pause(&mut self) {
        warn!(
            worker = %self.kind,
            "a database is unreachable; pausing consumption until it answers"
        );
        cancel_all(self.link, &self.channel, &self.tags, self.kind).await;
        self.tags.clear();
        self.paused = true;
    }

    /// Consumes every route again after a pause.
    async fn resume(&mut self) -> Result<(), Error> {
        info!(
            worker = %self.kind,
            "databases answer again; resuming consumption"
        );
        self.paused = false;
        for (route, _, _) in self.routes {
            self.consume(route).await?;
        }
        Ok(())
    }

    /// A consumer's stream ended: expected while paused or stopping, and for a consumer
    /// that is no longer current (cancelled by a pause, ending after the resume: consuming
    /// again would leave two consumers on the route); a lost channel means a new session;
    /// otherwise the broker cancelled it (queue deleted) and the route is redeclared and
    /// consumed again.
    async fn on_ended(
        &mut self,
        route: &Arc<str>,
        tag: &str,
        conn: &L::Connection,
        stopping: bool,
    ) -> Result<(), SessionEnd> {
        let Some(current) = self.tags.iter().position(|t| t == tag) else {
            debug!(worker = %self.kind, %route, tag, "a cancelled consumer ended");
            return Ok(());
        };
        if self.paused || stopping {
            return Ok(());
        }
        self.tags.swap_remove(current);
        if !self.link.channel_up(&self.channel) || !self.link.connection_up(conn) {
            return Err(SessionEnd::Reconnect);
        }
        // The broker cancels a consumer (basic.cancel) when its queue is deleted. A consumer
        // timeout closes the channel instead, which ends the stream with an error
        // (`report_lost_consumer`), so the two are not mistaken for each other in the logs.
        warn!(worker = %self.kind, %route, "consumer cancelled by the broker: its queue was deleted; redeclaring and consuming again");
        self.consume(route).await.map_err(|e| {
            error!(worker = %self.kind, %route, error = %e, "could not consume again; re-creating the channel");
            SessionEnd::Reconnect
        })
    }

    fn handler_for(&self, route: &str) -> Option<(BoundHandler, Arc<RouteMetrics>)> {
        self.routes
            .iter()
            .find(|(n, _, _)| &**n == route)
            .map(|(_, h, m)| (h.clone(), m.clone()))
    }
}

/// The handlers a worker runs: at most `limit` at once (per worker, whatever its number
/// of routes), each abortable once the drain deadline passes.
struct InFlight {
    tracker: TaskTracker,
    limit: Arc<Semaphore>,
    abort: CancellationToken,
    /// `worker_kit_worker_in_flight`: up when a handler starts, down when it ends.
    gauge: prometheus_client::metrics::gauge::Gauge,
}

impl InFlight {
    fn new(limit: u16, gauge: prometheus_client::metrics::gauge::Gauge) -> Self {
        Self {
            tracker: TaskTracker::new(),
            limit: Arc::new(Semaphore::new(usize::from(limit.max(1)))),
            abort: CancellationToken::new(),
            gauge,
        }
    }

    /// Waits for a free slot (`None` when `shutdown` comes first: the delivery stays
    /// unacknowledged and goes back to its queue when the channel closes).
    async fn slot(&self, shutdown: &CancellationToken) -> Option<OwnedSemaphorePermit> {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => None,
            p = self.limit.clone().acquire_owned() => p.ok(),
        }
    }

    fn spawn(&self, slot: OwnedSemaphorePermit, work: impl Future<Output = ()> + Send + 'static) {
        let abort = self.abort.clone();
        let running = Running::new(self.gauge.clone());
        self.tracker.spawn(async move {
            let _slot = slot;
            let _running = running;
            tokio::select! {
                () = abort.cancelled() => {}
                () = work => {}
            }
        });
    }

    /// Waits up to `deadline` for the handlers to finish, then aborts the rest (dropping
    /// a handler's future stops it; its message stays unacknowledged and is redelivered)
    /// and waits until they are gone.
    async fn drain(&self, kind: WorkerKind, deadline: Duration) {
        self.tracker.close();
        if self.tracker.is_empty() {
            return;
        }
        info!(
            worker = %kind,
            in_flight = self.tracker.len(),
            "draining in-flight messages"
        );
        if tokio::time::timeout(deadline, self.tracker.wait())
            .await
            .is_err()
        {
            warn!(
                worker = %kind,
                aborted = self.tracker.len(),
                drain_timeout_ms = deadline.as_millis() as u64,
                "drain deadline passed; aborting the handlers still running (the broker redelivers their messages)"
            );
            self.abort.cancel();
            self.tracker.wait().await;
        }
    }
}

/// One running handler in the in-flight gauge, however its task ends (finished, aborted
/// or panicked).
struct Running(prometheus_client::metrics::gauge::Gauge);

impl Running {
    fn new(gauge: prometheus_client::metrics::gauge::Gauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// How many deliveries a worker takes: `prefetch` per route from the broker, `concurrency`
/// handlers at once across its routes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Intake {
    pub(crate) prefetch: u16,
    pub(crate) concurrency: u16,
}

/// Runs the consume loop for `routes` until `ctx.shutdown`, then gives back what never
/// started and drains what did.
pub(crate) async fn run<P: Processor>(
    ctx: WorkerContext,
    processor: Arc<P>,
    routes: Vec<(Arc<str>, BoundHandler)>,
    intake: Intake,
) -> Result<(), Error> {
    let link = LapinLink {
        broker: ctx.broker.clone(),
        processor: processor.clone(),
    };
    run_on(&link, ctx, processor, routes, intake).await
}

/// [`run`] on the broker as `link` shows it.
pub(crate) async fn run_on<L: BrokerLink, P: Processor<L::Channel>>(
    link: &L,
    ctx: WorkerContext,
    processor: Arc<P>,
    routes: Vec<(Arc<str>, BoundHandler)>,
    intake: Intake,
) -> Result<(), Error> {
    let kind = processor.kind();
    let pausable = match ctx.config.pause_on_db_outage {
        PausePolicy::Off => false,
        // Event subscriptions write to the database like work queues do.
        PausePolicy::Queue => kind != WorkerKind::Rpc,
        PausePolicy::All => true,
    };
    let metrics = ctx.broker.metrics();
    // Without METRICS_ADDR nobody reads the per-message metrics: skip recording them.
    let record = ctx.config.metrics_addr.is_some();
    let worker_name = routes.first().map_or("", |(n, _)| &**n).to_owned();
    let health = ctx.health.worker(
        &worker_name,
        metrics.worker(&worker_name, kind.as_str(), intake.concurrency),
    );
    let in_flight = InFlight::new(intake.concurrency, health.metrics.in_flight.clone());
    let routes: Vec<Served> = routes
        .into_iter()
        .map(|(name, h)| {
            let m = Arc::new(metrics.route(&name, kind.as_str(), record));
            (name, h, m)
        })
        .collect();
    let mut serving = Serving {
        ctx: &ctx,
        link,
        processor: &processor,
        in_flight: &in_flight,
        health: &health,
        paused_rx: ctx.paused.clone(),
        pausable,
    };
    let started = tokio::time::Instant::now();
    let mut announced = false;
    let mut last_channel: Option<L::Channel> = None;
    // Reopening a session waits a growing pause after each one that failed (or ended
    // before anything came on it), so a consumer that fails at once does not spin.
    let reopens = Pauses::default();
    loop {
        let conn = tokio::select! {
            () = ctx.shutdown.cancelled() => break,
            c = link.connection() => match c {
                Some(c) => c,
                None => break,
            },
        };
        let mut session = match Session::open(
            &ctx,
            link,
            &conn,
            processor.as_ref(),
            &routes,
            intake.prefetch,
        )
        .await
        {
            Ok(session) => session,
            Err(e) => {
                // Before ready, a lost connection is retried like a first connect (within
                // `AMQP_CONNECT_TIMEOUT_MS`); anything else fails the start.
                let retry = announced
                    || (!link.connection_up(&conn)
                        && started.elapsed() < ctx.config.connect_timeout);
                if !retry {
                    let _ = ctx.ready.send(Err(e));
                    return Ok(());
                }
                let delay = reopens.next();
                warn!(worker = %kind, error = %e, retry_in_ms = delay.as_millis() as u64, "could not start consuming; trying again");
                tokio::select! {
                    () = ctx.shutdown.cancelled() => break,
                    () = tokio::time::sleep(delay) => continue,
                }
            }
        };
        if announced {
            info!(worker = %kind, routes = routes.len(), "consuming again");
        } else {
            announced = true;
            let names: Vec<&str> = routes.iter().map(|(n, _, _)| &**n).collect();
            let _ = ctx
                .ready
                .send(Ok(format!("{kind} worker consuming {}", names.join(", "))));
        }
        health.consuming(true);
        let end = serving.serve(&conn, &mut session).await;
        health.consuming(false);
        match end {
            SessionEnd::Shutdown => {
                cancel_all(link, &session.channel, &session.tags, kind).await;
                give_back_unstarted(&mut session, ctx.config.connect_timeout).await;
                last_channel = Some(session.channel);
                break;
            }
            SessionEnd::Reconnect => {
                if session.received {
                    reopens.reset();
                }
                let delay = reopens.next();
                debug!(
                    worker = %kind,
                    retry_in_ms = delay.as_millis() as u64,
                    "pausing before the session is reopened"
                );
                tokio::select! {
                    () = ctx.shutdown.cancelled() => break,
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
    in_flight.drain(kind, ctx.config.drain_timeout).await;
    if let Some(ch) = last_channel {
        link.close(&ch, ctx.config.connect_timeout).await;
    }
    Ok(())
}

/// At a stop, after the consumers were cancelled: every delivery the session received
/// and never started (the one waiting for a slot, and the rest of the buffer, which keeps
/// arriving until each consumer's stream ends) goes back through
/// [`Processor::give_back`], so that it costs no attempt. Bounded by `limit`; what is left
/// then goes back to its queue when the channel closes.
async fn give_back_unstarted<L: BrokerLink, P: Processor<L::Channel>>(
    session: &mut Session<'_, L, P>,
    limit: Duration,
) {
    let processor = session.processor;
    let mut unstarted = std::mem::take(&mut session.unstarted);
    let events = &mut session.events;
    let given = tokio::time::timeout(limit, async move {
        loop {
            for (route, delivery) in unstarted.drain(..) {
                processor.give_back(delivery, &route).await;
            }
            match events.next().await {
                Some(ConsumerEvent::Delivery(route, Ok(delivery))) => {
                    unstarted.push((route, delivery));
                }
                Some(ConsumerEvent::Delivery(_, Err(_))) | None => return,
                Some(ConsumerEvent::Ended(..)) => {}
            }
        }
    })
    .await;
    if given.is_err() {
        warn!(
            worker = %processor.kind(),
            timeout_ms = limit.as_millis() as u64,
            "could not give back every unstarted delivery in time; the rest return to their queues when the channel closes"
        );
    }
}

/// What a worker's sessions share: its context, processor and running handlers, its
/// readiness, and whether a database outage pauses it (`pausable` turns false when no
/// health loop runs: then nothing will).
struct Serving<'a, L: BrokerLink, P: Processor<L::Channel>> {
    ctx: &'a WorkerContext,
    link: &'a L,
    processor: &'a Arc<P>,
    in_flight: &'a InFlight,
    health: &'a WorkerHealth,
    paused_rx: tokio::sync::watch::Receiver<bool>,
    pausable: bool,
}

impl<L: BrokerLink, P: Processor<L::Channel>> Serving<'_, L, P> {
    /// Dispatches the session's deliveries until shutdown or a failed channel.
    async fn serve(&mut self, conn: &L::Connection, session: &mut Session<'_, L, P>) -> SessionEnd {
        let kind = session.kind;
        loop {
            let want_pause = self.pausable && *self.paused_rx.borrow();
            if want_pause && !session.paused {
                self.health.consuming(false);
                session.pause().await;
            } else if !want_pause && session.paused {
                if let Err(e) = session.resume().await {
                    warn!(worker = %kind, error = %e, "could not resume; re-creating the channel");
                    return SessionEnd::Reconnect;
                }
                self.health.consuming(true);
            }
            tokio::select! {
                biased;
                () = self.ctx.shutdown.cancelled() => return SessionEnd::Shutdown,
                changed = self.paused_rx.changed(), if self.pausable => {
                    if changed.is_err() {
                        // No health loop (no databases to watch): nothing will pause us.
                        self.pausable = false;
                    }
                }
                ev = session.events.next(), if !session.events.is_empty() => match ev {
                    Some(ConsumerEvent::Delivery(route, Ok(delivery))) => {
                        let Some((handler, metrics)) = session.handler_for(&route) else { continue };
                        metrics.received();
                        session.received = true;
                        // The worker's bound: wait here, with the delivery (and the rest of
                        // the prefetch) held in the broker-side buffer, until a handler ends.
                        let Some(slot) = self.in_flight.slot(&self.ctx.shutdown).await else {
                            session.unstarted.push((route, delivery));
                            return SessionEnd::Shutdown;
                        };
                        // Boxed here, once: the delivery's future is a few KiB, and every move
                        // on its way into the task (argument, `select!`, the task cell) would
                        // otherwise copy all of it.
                        self.in_flight.spawn(
                            slot,
                            Box::pin(instrumented(self.processor.clone(), session.channel.clone(), delivery, (route, handler, metrics))),
                        );
                    }
                    Some(ConsumerEvent::Delivery(route, Err(e))) => {
                        report_lost_consumer(kind, &route, &e);
                        return SessionEnd::Reconnect;
                    }
                    Some(ConsumerEvent::Ended(route, tag)) => {
                        if let Err(end) = session.on_ended(&route, &tag, conn, self.ctx.shutdown.is_cancelled()).await {
                            return end;
                        }
                    }
                    None => {}
                },
                // Nothing to consume (paused, every stream ended): only a resume, a shutdown
                // or a lost channel moves us on.
                () = tokio::time::sleep(Duration::from_millis(500)), if session.events.is_empty() => {
                    if !self.link.channel_up(&session.channel) || !session.paused {
                        return SessionEnd::Reconnect;
                    }
                }
            }
        }
    }
}

/// Handles one delivery inside a span carrying its route, correlation id, outcome and
/// duration. A panic in the processor itself (handler panics are already failures) still
/// settles the delivery, so its prefetch slot is not held until the channel closes.
async fn instrumented<C: Send + Sync + 'static, P: Processor<C>>(
    processor: Arc<P>,
    channel: C,
    delivery: Delivery,
    (route, handler, metrics): Served,
) {
    let correlation_id = crate::wire::delivery::correlation_id(&delivery.properties).unwrap_or("");
    let span =
        crate::observe::trace::process_span(processor.kind().as_str(), &route, correlation_id);
    let traced = Traced::process(
        &route,
        correlation_id,
        delivery.properties.headers().as_ref(),
        processor.link(),
    );
    let marks = &traced;
    let work = async move {
        let started = Instant::now();
        let acker = delivery.acker.clone();
        let (handled, error_type) = crate::observe::error_type::capture(
            AssertUnwindSafe(processor.handle(&channel, delivery, &route, handler)).catch_unwind(),
        )
        .await;
        let outcome = match handled {
            Ok(outcome) => outcome,
            Err(_) => {
                error!("panic while settling the message; returning it to the broker");
                // Used already when the panic came after the settlement: then a no-op.
                let requeue = processor.requeue_after_panic();
                let _ = acker
                    .nack(BasicNackOptions {
                        multiple: false,
                        requeue,
                    })
                    .await;
                Disposition::Requeued
            }
        };
        let elapsed = started.elapsed();
        metrics.settled(outcome, elapsed, error_type.as_deref());
        let span = tracing::Span::current();
        if let Some(t) = &error_type {
            marks.failed(t);
        }
        span.record("outcome", outcome.as_str());
        span.record("duration_ms", elapsed.as_secs_f64() * 1000.0);
        debug!("done");
    };
    traced.run(work.instrument(span)).await;
}

/// Logs why a consumer's stream ended with `e`: the broker's consumer timeout (a handler held
/// a delivery too long; an operator must act) or another failure of the channel.
fn report_lost_consumer(kind: WorkerKind, route: &str, e: &lapin::Error) {
    match ConsumerLoss::of_error(e) {
        ConsumerLoss::AckTimeout { timeout_ms } => error!(
            worker = %kind,
            %route,
            error = %e,
            broker_consumer_timeout_ms = timeout_ms,
            "the broker closed the channel: a delivery stayed unacknowledged past its consumer timeout, and every message in flight on the channel goes back to its queue (on a quorum route each return counts towards the delivery limit); raise consumer_timeout on every broker node above the handler limit and set BROKER_CONSUMER_TIMEOUT_MS to match, or lower HANDLER_TIMEOUT_MS; re-establishing"
        ),
        ConsumerLoss::ChannelFailed => {
            warn!(worker = %kind, %route, error = %e, "consumer failed; re-establishing");
        }
    }
}

/// Cancels the consumers `tags` (stops new deliveries; prefetched ones still arrive).
async fn cancel_all<L: BrokerLink>(
    link: &L,
    channel: &L::Channel,
    tags: &[String],
    kind: WorkerKind,
) {
    for tag in tags {
        if let Err(e) = link.cancel(channel, tag).await {
            warn!(worker = %kind, error = %e, "cancelling consumer failed");
        }
    }
}

/// Declares `route` and consumes it: its consumer tag, and its events (the deliveries,
/// then [`ConsumerEvent::Ended`] with that tag).
async fn consume_one<L: BrokerLink, P: Processor<L::Channel>>(
    link: &L,
    channel: &L::Channel,
    processor: &P,
    route: &Arc<str>,
    service: &str,
) -> Result<(String, stream::BoxStream<'static, ConsumerEvent>), Error> {
    processor.declare(channel, route).await.map_err(|e| {
        let hint = if e.to_string().contains("PRECONDITION_FAILED") {
            " (a queue of that name already exists with other flags or arguments; docs/protocol.md fixes them: delete the queue or fix whoever declared it)"
        } else if crate::amqp::refusal::refuses_transient_queues(&e) {
            " (the broker refuses transient non-exclusive queues, as RabbitMQ 4.3 does by default: set RPC_QUEUE_DURABLE=auto or true, or permit the deprecated feature transient_nonexcl_queues on every node)"
        } else {
            ""
        };
        Error::Broker {
            message: format!("declaring route `{route}` failed{hint}"),
            source: Some(e),
        }
    })?;
    let tag = format!("{service}.{route}.{}", uuid::Uuid::new_v4().simple());
    let consumer = link
        .consume(channel, route, &tag)
        .await
        .map_err(|e| Error::Broker {
            message: format!("consuming route `{route}` failed"),
            source: Some(e),
        })?;
    let r1 = route.clone();
    let r2 = route.clone();
    let ended_tag: Arc<str> = Arc::from(tag.as_str());
    let s = consumer
        .map(move |d| ConsumerEvent::Delivery(r1.clone(), d))
        .chain(stream::once(
            async move { ConsumerEvent::Ended(r2, ended_tag) },
        ))
        .boxed();
    Ok((tag, s))
}
