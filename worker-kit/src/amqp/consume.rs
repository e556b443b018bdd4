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
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::Error;
use crate::config::PausePolicy;
use crate::handler::routes::BoundHandler;
use crate::worker::WorkerContext;

/// The parts that differ between RPC and work-queue workers.
#[async_trait]
pub(crate) trait Processor: Send + Sync + 'static {
    fn kind(&self) -> &'static str;
    /// Whether the consuming channel needs publisher confirms (work queues store retry and
    /// parked copies with confirms; RPC replies go out without, protocol v2).
    fn confirms(&self) -> bool;
    /// Declares what `route` needs (its queue, exchanges, parking queue).
    async fn declare(&self, channel: &Channel, route: &str) -> Result<(), lapin::Error>;
    /// Handles one delivery to the end (reply/ack/retry/park) and says how it was settled.
    async fn handle(
        &self,
        channel: &Channel,
        delivery: Delivery,
        route: &Arc<str>,
        handler: BoundHandler,
    ) -> Disposition;
}

/// How a delivery was settled: the `outcome` field of its log span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Disposition {
    /// The handler succeeded: replied (RPC) or acked (work queue).
    Ok,
    /// RPC: the handler returned an error, which was replied.
    Error,
    /// RPC: the request never reached the handler (undecodable, wrong payload); an error
    /// was replied.
    Rejected,
    /// Work queue: a copy with a higher retry count was stored, the original acked.
    Retried,
    /// Work queue: a copy was stored in the parking queue, the original acked.
    Parked,
    /// Work queue: the copy could not be stored, so the original went back to its queue.
    Requeued,
}

impl Disposition {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Error => "error",
            Self::Rejected => "rejected",
            Self::Retried => "retried",
            Self::Parked => "parked",
            Self::Requeued => "requeued",
        }
    }
}

// Deliveries are the hot path; boxing them to shrink the rare `Ended` would cost an
// allocation per message.
#[allow(clippy::large_enum_variant)]
enum ConsumerEvent {
    Delivery(Arc<str>, Result<Delivery, lapin::Error>),
    Ended(Arc<str>),
}

type Events = SelectAll<stream::BoxStream<'static, ConsumerEvent>>;

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
        // Event subscriptions write to the database like work queues do.
        PausePolicy::Queue => kind != "rpc",
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
                    Some(ConsumerEvent::Delivery(route, Ok(delivery))) => {
                        if let Some(h) = handler_for(&route) {
                            tracker.spawn(instrumented(processor.clone(), live.channel.clone(), delivery, route, h));
                        }
                    }
                    Some(ConsumerEvent::Delivery(route, Err(e))) => {
                        warn!(worker = kind, %route, error = %e, "consumer failed; re-establishing");
                        continue 'connect;
                    }
                    Some(ConsumerEvent::Ended(route)) => {
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
        correlation_id = crate::wire::delivery::correlation_id(&delivery.properties).unwrap_or(""),
        outcome = tracing::field::Empty,
        duration_ms = tracing::field::Empty,
    );
    async move {
        let started = Instant::now();
        let outcome = processor.handle(&channel, delivery, &route, handler).await;
        let span = tracing::Span::current();
        span.record("outcome", outcome.as_str());
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
    if processor.confirms() {
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(broker_err("enabling publisher confirms failed".into()))?;
    }
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
) -> Result<(String, stream::BoxStream<'static, ConsumerEvent>), Error> {
    processor.declare(channel, route).await.map_err(|e| {
        let hint = if e.to_string().contains("PRECONDITION_FAILED") {
            " (a queue of that name already exists with other flags or arguments; docs/protocol.md fixes them: delete the queue or fix whoever declared it)"
        } else if crate::rpc::refuses_transient_queues(&e) {
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
        .map(move |d| ConsumerEvent::Delivery(r1.clone(), d))
        .chain(stream::once(async move { ConsumerEvent::Ended(r2) }))
        .boxed();
    Ok((tag, s))
}
