//! The work-queue worker: ack on `Ok`, bounded retries on `Err`, parking when retries are
//! exhausted or the body cannot be decoded. Nothing is lost and nothing loops.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use lapin::message::Delivery;
use lapin::options::BasicAckOptions;
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection};
use tracing::{error, info, warn};

use super::declare::{
    QueueType, check_retries, delay_queue_args, durable_queue, names_classic, parking_queue,
    parking_queue_args, refuses_queue_type, route_queue_args, without_queue_type,
};
use super::retry_delay::{Delays, RetryDelay, delay_queue};
use crate::TaskContract;
use crate::access::{ORIGINAL_USER_HEADER, original_user_header};
use crate::amqp::Broker;
use crate::amqp::confirm::{ConfirmChannel, Wait};
use crate::amqp::publish::Published;
use crate::backoff::Pauses;
use crate::error::Error;
use crate::handler::budget::DecodeBudget;
use crate::handler::delivery;
use crate::handler::routes::{BoundHandler, RouteDoc};
use crate::handler::{ContainsPayload, Handler};
use crate::observe::disposition::Disposition;
use crate::queue::work::{WorkSettings, Worked, work};
use crate::wire::delivery::RETRY_COUNT_HEADER;
use crate::wire::envelope::Limits;
use crate::wire::headers::{
    MAX_ERROR_MESSAGE_BYTES, MAX_PROPERTIES_BYTES, capped, fits_frame, oversized_properties,
};
use crate::wire::reply_error::ErrorReply;
use crate::worker::consume::{Processor, requeue, requeue_after_a_pause};
use crate::worker::{Runnable, Worker, WorkerContext};

/// How long a queue's typed declaration is tried on the publishing connection before it goes
/// to the consuming channel without that probe.
const PROBE_TIME_LIMIT: Duration = Duration::from_secs(5);

/// The work-queue kind of [`Worker`]: acks on `Ok`, retries and parks on `Err`.
#[derive(Debug, Clone, Default)]
pub struct Queue {
    max_retries: Option<u32>,
    /// Routes whose queue type differs from `QUEUE_TYPE`.
    queue_types: Vec<(String, QueueType)>,
    /// Routes whose retry delay differs from `QUEUE_RETRY_DELAY_MS` and
    /// `QUEUE_RETRY_MAX_DELAY_MS`.
    retry_delays: Vec<(String, RetryDelay)>,
}

impl Queue {
    /// The retries set with [`QueueWorker::max_retries`], if any.
    #[cfg(feature = "testing")]
    pub(crate) fn max_retries_set(&self) -> Option<u32> {
        self.max_retries
    }
}

/// Works messages off durable queues.
///
/// ```
/// use worker_kit::{ErrorReply, Payload, queue::QueueWorker};
///
/// async fn resize(Payload(path): Payload<String>) -> Result<(), ErrorReply> {
///     if path.is_empty() {
///         return Err(ErrorReply::bad_request("empty path"));
///     }
///     Ok(())
/// }
///
/// let worker: QueueWorker = QueueWorker::new().route("images.resize", resize);
/// ```
pub type QueueWorker<S = ()> = Worker<Queue, S>;

impl<S: Clone + Send + Sync + 'static> Worker<Queue, S> {
    /// Works task contract `T` (route [`TaskContract::ROUTE`]) with `handler`, which must
    /// take `Payload<T>`.
    #[must_use]
    pub fn task<T, H, Args, I>(self, handler: H) -> Self
    where
        T: TaskContract,
        H: Handler<Args, S>,
        Args: ContainsPayload<T, I>,
    {
        self.route_documented(T::ROUTE, handler, RouteDoc::task::<T>())
    }

    /// Admits only `callers` to route `route` (see
    /// [`RpcWorker::allow`](crate::rpc::RpcWorker::allow)); a message from anyone else, or
    /// without `user_id`, is parked with `x-error-type: Forbidden`, never retried.
    #[must_use]
    pub fn allow<I, T>(self, route: &str, callers: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.allow_list(route, crate::access::AllowList::new(callers))
    }

    /// Adds a route declared with `#[task(...)]`.
    #[must_use]
    pub fn register(self, route: impl TaskRoute<S>) -> Self {
        route.register(self)
    }

    /// Retries after a handler error before parking (default `QUEUE_MAX_RETRIES`).
    #[must_use]
    pub fn max_retries(mut self, n: u32) -> Self {
        self.kind.max_retries = Some(n);
        self
    }

    /// Retries route `route`'s failed messages after `first`, each next retry after twice
    /// the previous wait, at most `max` (instead of `QUEUE_RETRY_DELAY_MS` and
    /// `QUEUE_RETRY_MAX_DELAY_MS`); `first` zero retries at once. The waits are spent in the
    /// broker, in the route's delay queues ([`RetryDelay`]).
    #[must_use]
    pub fn retry_delay(mut self, route: &str, first: Duration, max: Duration) -> Self {
        self.kind.retry_delays.retain(|(r, _)| r != route);
        self.kind
            .retry_delays
            .push((route.to_owned(), RetryDelay::new(first, max)));
        self
    }

    /// Declares route `route`'s queue and parking queue as `kind` instead of `QUEUE_TYPE`
    /// (e.g. [`QueueType::Quorum`] for a route that must survive a broker node). A queue's
    /// type cannot change once it exists; see [`QueueType`].
    #[must_use]
    pub fn queue_type(mut self, route: &str, kind: QueueType) -> Self {
        self.kind.queue_types.retain(|(r, _)| r != route);
        self.kind.queue_types.push((route.to_owned(), kind));
        self
    }
}

#[async_trait]
impl Runnable for Worker<Queue> {
    fn kind(&self) -> crate::worker::WorkerKind {
        crate::worker::WorkerKind::Queue
    }

    fn route_names(&self) -> Vec<String> {
        self.names()
    }

    async fn run(self: Box<Self>, ctx: WorkerContext) -> Result<(), Error> {
        let own = Overrides {
            max_retries: self.kind.max_retries,
            handler_timeout: self.handler_timeout_set(),
            queue_types: self.kind.queue_types.clone(),
            retry_delays: self.kind.retry_delays.clone(),
        };
        match QueueProcessor::new(&ctx, &self.names(), own) {
            Ok(processor) => self.run_with(ctx, processor).await,
            Err(e) => {
                // Reported as a failed start, as a refused declaration is.
                let _ = ctx.ready.send(Err(e));
                Ok(())
            }
        }
    }
}

/// What a work-queue or event worker sets for itself over the process's settings
/// (`QUEUE_MAX_RETRIES`, `HANDLER_TIMEOUT_MS`, `QUEUE_TYPE`, `QUEUE_RETRY_*`).
#[derive(Debug, Default)]
pub(crate) struct Overrides {
    pub(crate) max_retries: Option<u32>,
    pub(crate) handler_timeout: Option<Duration>,
    /// Queues whose type differs from `QUEUE_TYPE`.
    pub(crate) queue_types: Vec<(String, QueueType)>,
    /// Queues whose retry delay differs from `QUEUE_RETRY_DELAY_MS` and
    /// `QUEUE_RETRY_MAX_DELAY_MS`.
    pub(crate) retry_delays: Vec<(String, RetryDelay)>,
}

/// The work-queue disposition (ack, retry, park), also used by event subscriptions.
pub(crate) struct QueueProcessor {
    pub(crate) limits: Limits,
    /// The process's memory for decoded bodies (`DECODE_BUDGET_BYTES`).
    pub(crate) budget: DecodeBudget,
    pub(crate) max_retries: u32,
    pub(crate) default_type: QueueType,
    pub(crate) queue_types: Vec<(String, QueueType)>,
    /// How long each route's retries wait.
    pub(crate) delays: Delays,
    /// `HANDLER_TIMEOUT_MS` or the worker's own limit.
    pub(crate) handler_timeout: Duration,
    /// Where retry and parked copies are published.
    pub(crate) copies: ConfirmChannel,
    /// The broker user this process logs in as: the `user_id` of its copies, and the one
    /// sender whose `x-original-user-id` is believed.
    pub(crate) own_user: ShortString,
    /// The pause before a message whose copy could not be stored goes back to its queue:
    /// it grows with each such failure in a row (the broker would hand the message straight
    /// back, and the copy would fail again), and starts over once a copy is stored.
    pub(crate) requeues: Pauses,
}

/// The consume-only connection ([`Broker::consuming`]), waiting for it while it cannot be
/// opened; `None` once the broker handle is closed.
pub(crate) async fn consuming_connection(broker: &Broker) -> Option<Arc<Connection>> {
    let pauses = Pauses::default();
    loop {
        match broker.consuming().await {
            Ok(sibling) => return sibling.connection().await,
            Err(_) if broker.is_closed() => return None,
            Err(e) => {
                warn!(error = %e, "the consuming connection could not be opened; trying again");
                tokio::time::sleep(pauses.next()).await;
            }
        }
    }
}

impl QueueProcessor {
    /// The processor of a worker that consumes `queues` (a queue worker's routes, or an
    /// event worker's subscription queues), with `own` over the process's settings.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when a queue's settings cannot be honoured: retries that reach a
    /// quorum queue's delivery limit (the broker would park messages the kit still meant
    /// to retry), or retry delays the broker cannot wait. Nothing is declared then.
    pub(crate) fn new(
        ctx: &WorkerContext,
        queues: &[String],
        own: Overrides,
    ) -> Result<Self, Error> {
        let processor = QueueProcessor {
            limits: ctx.config.limits(),
            budget: ctx.budget.clone(),
            max_retries: own.max_retries.unwrap_or(ctx.config.max_retries),
            default_type: ctx.config.queue_type,
            queue_types: own.queue_types,
            delays: Delays::from_config(&ctx.config).with_routes(own.retry_delays),
            handler_timeout: own.handler_timeout.unwrap_or(ctx.config.handler_timeout),
            copies: ConfirmChannel::new(ctx.broker.clone(), Wait::No, "retry and parked copies"),
            own_user: ctx.broker.user_id().clone(),
            requeues: Pauses::default(),
        };
        for queue in queues {
            check_retries(processor.queue_type(queue), queue, processor.max_retries)
                .and_then(|()| processor.delays.for_route(queue).check(queue))
                .map_err(Error::Config)?;
        }
        if let Some(warning) = crate::amqp::consumer_timeout::check(
            queues,
            processor.handler_timeout,
            ctx.config.broker_consumer_timeout,
        ) {
            warn!("{warning}");
        }
        Ok(processor)
    }

    /// What [`work`] needs of this processor.
    fn work_settings(&self) -> WorkSettings {
        WorkSettings {
            limits: self.limits,
            budget: self.budget.clone(),
            max_retries: self.max_retries,
            handler_timeout: self.handler_timeout,
        }
    }
    /// Declares `queue` with `args` on `channel`.
    ///
    /// A classic declaration names its type, which a queue that exists already with another
    /// type refuses (e.g. one a broker whose default queue type is quorum made from a
    /// declaration without it). A refusal closes the channel it came on, so the typed
    /// declaration is tried first on a channel of its own on the publishing connection;
    /// when it is refused for the type, the queue is declared without it and used as it
    /// is, with a warning that says what to do.
    async fn declare_queue(
        &self,
        channel: &Channel,
        queue: &str,
        mut args: FieldTable,
    ) -> Result<(), lapin::Error> {
        if names_classic(&args)
            && let Some(conn) = self.copies.broker().connection_now()
        {
            // A resource alarm blocks the publishing connection (its methods wait): then the
            // typed declaration goes straight to `channel`, as it would without a probe, and
            // the probe's channel stays open until that connection is replaced.
            let probed = tokio::time::timeout(PROBE_TIME_LIMIT, async {
                let probe = conn.create_channel().await?;
                let declared = probe
                    .queue_declare(queue.into(), durable_queue(), args.clone())
                    .await;
                if declared.is_ok() {
                    let _ = probe.close(200, "declared".into()).await;
                }
                declared.map(|_| ())
            })
            .await;
            match probed {
                Ok(Ok(())) | Err(_) => {}
                Ok(Err(e)) if refuses_queue_type(&e) => {
                    warn!(
                        queue,
                        broker_said = %e,
                        "the queue exists with another type than the classic one the kit declares (made under a broker's default queue type, or by another worker); it is used as it is. To make it classic, drain and delete it (a queue's type cannot change); to keep it, declare the route with that type (QUEUE_TYPE or QueueWorker::queue_type)"
                    );
                    args = without_queue_type(&args);
                }
                Ok(Err(e)) => return Err(e),
            }
        }
        channel
            .queue_declare(queue.into(), durable_queue(), args)
            .await?;
        Ok(())
    }

    /// The arguments `route`'s parking queue is declared with.
    fn parking_args(&self, route: &str) -> FieldTable {
        parking_queue_args(self.queue_type(route))
    }

    fn queue_type(&self, route: &str) -> QueueType {
        self.queue_types
            .iter()
            .find(|(r, _)| r == route)
            .map_or(self.default_type, |(_, t)| *t)
    }

    /// Stores the retry or parked copy `next` asks for on `out` (a confirm-mode channel
    /// of the publishing connection).
    async fn store_copy(
        &self,
        out: &Channel,
        delivery: &Delivery,
        from: &CopyFrom<'_>,
        route: &Arc<str>,
        next: Worked,
    ) -> (Disposition, Result<(), String>) {
        match next {
            Worked::Acked => (Disposition::Ok, Ok(())),
            Worked::Retried { retry_count: n } => {
                let ours = [(RETRY_COUNT_HEADER, AMQPValue::LongLongInt(i64::from(n)))];
                // The copy waits in a delay queue that sends it back to the route when its
                // time is up; the delay queue is declared when first needed (a route that
                // never fails has none).
                let (to, declare) = match self.delays.for_route(route).pick_ms(n) {
                    None => (route.to_string(), None),
                    Some(ms) => (
                        delay_queue(route, ms),
                        Some(delay_queue_args(self.queue_type(route), route, ms)),
                    ),
                };
                match republish(out, delivery, from, &to, &ours, declare).await {
                    Ok(()) => (Disposition::Retried, Ok(())),
                    Err(problem) if !out.status().connected() => {
                        (Disposition::Retried, Err(problem))
                    }
                    Err(problem) => {
                        // Whatever made the copy fail would make the next one fail too:
                        // keep the body where nothing is retried.
                        let e = ErrorReply::new(
                            "Internal",
                            format!("the retry copy could not be stored: {problem}"),
                        );
                        (
                            Disposition::Parked,
                            park_bare(out, delivery, from, route, &e, self.parking_args(route))
                                .await,
                        )
                    }
                }
            }
            Worked::Parked(e) => {
                let ours = park_headers(route, &e);
                let parked = match republish(
                    out,
                    delivery,
                    from,
                    &parking_queue(route),
                    &ours,
                    Some(self.parking_args(route)),
                )
                .await
                {
                    Err(problem) if out.status().connected() => {
                        warn!(%problem, "parking with the original headers failed; parking the body with the kit's headers only");
                        park_bare(out, delivery, from, route, &e, self.parking_args(route)).await
                    }
                    other => other,
                };
                (Disposition::Parked, parked)
            }
        }
    }
}

#[async_trait]
impl Processor for QueueProcessor {
    fn kind(&self) -> crate::worker::WorkerKind {
        crate::worker::WorkerKind::Queue
    }

    async fn connection(&self, broker: &Broker) -> Option<Arc<Connection>> {
        consuming_connection(broker).await
    }

    fn link(&self) -> crate::observe::trace::Link {
        crate::observe::trace::Link::Consume
    }

    fn requeue_after_panic(&self) -> bool {
        // Redelivered, it counts as an attempt (and is parked once they run out).
        true
    }

    async fn declare(&self, channel: &Channel, route: &str) -> Result<(), lapin::Error> {
        let kind = self.queue_type(route);
        // The parking queue first: a quorum route queue dead-letters into it.
        self.declare_queue(channel, &parking_queue(route), parking_queue_args(kind))
            .await?;
        self.declare_queue(channel, route, route_queue_args(kind, route))
            .await
    }

    /// A fresh copy at the end of its queue, then the original acked: the copy is not
    /// marked redelivered, so the next worker does not count an attempt that never ran. A
    /// redelivered original (an earlier attempt did not finish) goes back as it is, and so
    /// does one whose copy cannot be stored.
    async fn give_back(&self, delivery: Delivery, route: &Arc<str>) {
        if delivery.redelivered {
            return requeue(&delivery).await;
        }
        let meta = delivery::meta(
            &delivery,
            route,
            self.handler_timeout,
            self.own_user.as_str(),
        );
        let from = CopyFrom {
            user_id: &self.own_user,
            original_user: original_user_header(&meta.caller),
        };
        let stored = match self.copies.channel().await {
            Ok(out) => republish(&out, &delivery, &from, route, &[], None).await,
            Err(problem) => Err(problem.to_string()),
        };
        match stored {
            Ok(()) => {
                if let Err(e) = delivery.acker.ack(BasicAckOptions::default()).await {
                    warn!(error = %e, "ack of a given-back delivery failed; the broker redelivers it too");
                }
            }
            Err(problem) => {
                warn!(%problem, "could not give back an unstarted delivery as a fresh copy; returning it to its queue (it counts as an attempt)");
                requeue(&delivery).await;
            }
        }
    }

    async fn handle(
        &self,
        _consumed_on: &Channel,
        delivery: Delivery,
        route: &Arc<str>,
        handler: BoundHandler,
    ) -> Disposition {
        let meta = delivery::meta(
            &delivery,
            route,
            self.handler_timeout,
            self.own_user.as_str(),
        );
        let from = CopyFrom {
            user_id: &self.own_user,
            original_user: original_user_header(&meta.caller),
        };
        let next = if let Some(e) = oversized_properties(&delivery.properties) {
            // Before anything else: a retry copy could not carry these headers either.
            error!(
                error_message = e.message.as_str(),
                "work message refused; parking it"
            );
            crate::observe::error_type::note(&e.error_type);
            Worked::Parked(e)
        } else {
            work(&delivery.data, meta, &handler, &self.work_settings()).await
        };
        let (name, republished) = match next {
            Worked::Acked => (Disposition::Ok, Ok(())),
            // The copy goes out on the publishing connection; this one only acknowledges.
            Worked::Retried { .. } | Worked::Parked(_) => match self.copies.channel().await {
                Err(problem) => (Disposition::Requeued, Err(problem.to_string())),
                Ok(out) => self.store_copy(&out, &delivery, &from, route, next).await,
            },
        };
        match republished {
            Ok(()) => {
                if !matches!(name, Disposition::Ok) {
                    self.requeues.reset();
                }
                if let Err(e) = delivery.acker.ack(BasicAckOptions::default()).await {
                    warn!(error = %e, "ack failed; the broker will redeliver the message");
                }
                name
            }
            Err(problem) => {
                // The copy is not safely stored: keep the original instead of losing it.
                requeue_after_a_pause(&self.requeues, &delivery, &problem).await;
                Disposition::Requeued
            }
        }
    }
}

/// The headers a parked copy gets: why and where from. The message may quote the
/// caller's input (serde echoes a bad value whole), so it is capped.
fn park_headers(route: &str, e: &ErrorReply) -> [(&'static str, AMQPValue); 3] {
    [
        (
            "x-error-type",
            AMQPValue::LongString(e.error_type.as_ref().into()),
        ),
        (
            "x-error-message",
            AMQPValue::LongString(capped(&e.message, MAX_ERROR_MESSAGE_BYTES).into()),
        ),
        ("x-original-route", AMQPValue::LongString(route.into())),
    ]
}

/// Who a copy is from: the consuming service's own user (the copy's `user_id`, which the
/// broker checks against the publishing connection) and the original's sender.
struct CopyFrom<'a> {
    user_id: &'a ShortString,
    /// [`ORIGINAL_USER_HEADER`]'s value, `None` for an anonymous original.
    original_user: Option<AMQPValue>,
}

impl CopyFrom<'_> {
    /// `headers` with the original sender set, or removed for an anonymous original:
    /// whatever the sender wrote there itself must not be vouched for by the copy's
    /// `user_id`.
    /// The sender's routing headers are left out whatever they hold (see
    /// [`ROUTING_HEADERS`](crate::wire::headers::ROUTING_HEADERS)).
    fn stamp(&self, headers: FieldTable) -> FieldTable {
        let mut map = crate::wire::headers::without_routing_headers(headers.inner().clone());
        match &self.original_user {
            Some(user) => {
                map.insert(ORIGINAL_USER_HEADER.into(), user.clone());
            }
            None => {
                map.remove(ORIGINAL_USER_HEADER);
            }
        }
        FieldTable::from(map)
    }
}

/// Header set on a copy whose original headers were left out (they would not have fit
/// one frame with the kit's, or the copy with them could not be stored).
pub const HEADERS_DROPPED_HEADER: &str = "x-original-headers-dropped";

/// The delivery's properties for a persistent copy: its headers plus `ours` (replacing
/// same-named ones), or `ours` alone when both would not fit one frame — a frame too
/// large closes the whole connection, and the message would come back to do it again.
fn copy_properties(
    delivery: &Delivery,
    from: &CopyFrom<'_>,
    ours: &[(&str, AMQPValue)],
) -> BasicProperties {
    let mut headers = delivery.properties.headers().clone().unwrap_or_default();
    for (k, v) in ours {
        headers.insert((*k).into(), v.clone());
    }
    let props = copied(&delivery.properties, from.stamp(headers), from.user_id);
    if fits_frame(&props) {
        return props;
    }
    warn!(
        max_bytes = MAX_PROPERTIES_BYTES,
        "the message's headers and the kit's would not fit one frame; the copy keeps the kit's only"
    );
    bare_properties(delivery, from, ours)
}

/// The delivery's properties with `ours` (and the original sender) as the only headers.
fn bare_properties(
    delivery: &Delivery,
    from: &CopyFrom<'_>,
    ours: &[(&str, AMQPValue)],
) -> BasicProperties {
    let mut headers = FieldTable::default();
    for (k, v) in ours {
        headers.insert((*k).into(), v.clone());
    }
    headers.insert(HEADERS_DROPPED_HEADER.into(), AMQPValue::Boolean(true));
    copied(&delivery.properties, from.stamp(headers), from.user_id)
}

/// Parks the body with the kit's headers only: the last resort when a copy with the
/// original headers could not be stored.
async fn park_bare(
    channel: &Channel,
    delivery: &Delivery,
    from: &CopyFrom<'_>,
    route: &str,
    e: &ErrorReply,
    parking_args: FieldTable,
) -> Result<(), String> {
    let props = bare_properties(delivery, from, &park_headers(route, e));
    publish_copy(
        channel,
        delivery,
        &parking_queue(route),
        props,
        Some(parking_args),
    )
    .await
}

/// Publishes a persistent copy of `delivery` (same body and properties, `ours` added to
/// its headers) to `queue` and waits for the confirm.
async fn republish(
    channel: &Channel,
    delivery: &Delivery,
    from: &CopyFrom<'_>,
    queue: &str,
    ours: &[(&str, AMQPValue)],
    redeclare: Option<FieldTable>,
) -> Result<(), String> {
    let props = copy_properties(delivery, from, ours);
    publish_copy(channel, delivery, queue, props, redeclare).await
}

/// Publishes `props` and the body of `delivery` to `queue` and waits for the confirm.
/// When the broker has no such queue and `redeclare` holds its arguments (a delay queue
/// used for the first time, or a parking queue someone deleted), it is declared and the
/// copy published once more; otherwise the failed message would be requeued and fail
/// again in a hot loop.
async fn publish_copy(
    channel: &Channel,
    delivery: &Delivery,
    queue: &str,
    props: BasicProperties,
    redeclare: Option<FieldTable>,
) -> Result<(), String> {
    let publish = || crate::amqp::publish::to_queue(channel, queue, &delivery.data, props.clone());
    let mut published = publish().await;
    if let (Ok(Published::NoQueue), Some(args)) = (&published, redeclare) {
        info!(
            queue,
            "declaring the queue a copy goes to (a delay queue's first use, or a parking queue someone deleted)"
        );
        channel
            .queue_declare(queue.into(), durable_queue(), args)
            .await
            .map_err(|e| format!("declaring {queue} again failed: {e}"))?;
        published = publish().await;
    }
    match published {
        Ok(Published::Stored) => Ok(()),
        Ok(Published::NoQueue) => Err(format!("queue {queue} does not exist")),
        Ok(Published::Refused) => Err(format!("broker refused the copy for {queue}")),
        Err(e) => Err(e.to_string()),
    }
}

/// The properties of a retry or parked copy: the original's, persistent, with `headers`,
/// without `expiration` (a parked message must stay until someone looks at it), and with
/// the worker's own `user_id` instead of the original's (the broker checks it against the
/// user of the connection that publishes the copy; the original sender travels in
/// [`ORIGINAL_USER_HEADER`]).
fn copied(
    original: &BasicProperties,
    headers: FieldTable,
    user_id: &ShortString,
) -> BasicProperties {
    let mut props = BasicProperties::default()
        .with_headers(headers)
        .with_delivery_mode(2)
        .with_user_id(user_id.clone());
    if let Some(v) = original.content_type() {
        props = props.with_content_type(v.clone());
    }
    if let Some(v) = original.content_encoding() {
        props = props.with_content_encoding(v.clone());
    }
    if let Some(v) = original.priority() {
        props = props.with_priority(*v);
    }
    if let Some(v) = original.correlation_id() {
        props = props.with_correlation_id(v.clone());
    }
    if let Some(v) = original.reply_to() {
        props = props.with_reply_to(v.clone());
    }
    if let Some(v) = original.message_id() {
        props = props.with_message_id(v.clone());
    }
    if let Some(v) = original.timestamp() {
        props = props.with_timestamp(*v);
    }
    if let Some(v) = original.kind() {
        props = props.with_type(v.clone());
    }
    if let Some(v) = original.app_id() {
        props = props.with_app_id(v.clone());
    }
    if let Some(v) = original.cluster_id() {
        props = props.with_cluster_id(v.clone());
    }
    props
}

/// A route declared with `#[task(...)]`: registers its handler on a [`QueueWorker`].
pub trait TaskRoute<S> {
    /// The route's name (its queue's name).
    fn name(&self) -> &'static str;
    /// Adds the route to `worker`; the macro expands this to `worker.route(name, handler)`,
    /// followed by `.allow(name, [...])` when the attribute has an allow list.
    fn register(self, worker: QueueWorker<S>) -> QueueWorker<S>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::Caller;

    #[test]
    fn copies_carry_the_original_sender_only_when_verified() {
        let mut forged = FieldTable::default();
        forged.insert(
            ORIGINAL_USER_HEADER.into(),
            AMQPValue::LongString("billing".into()),
        );
        let own: ShortString = "example".into();
        let anonymous = CopyFrom {
            user_id: &own,
            original_user: original_user_header(&Caller::anonymous()),
        };
        assert!(
            !anonymous
                .stamp(forged.clone())
                .contains_key(ORIGINAL_USER_HEADER),
            "an anonymous sender's own header must not survive into a copy the service vouches for"
        );
        let greeter = CopyFrom {
            user_id: &own,
            original_user: original_user_header(&Caller::verified("greeter")),
        };
        assert_eq!(
            greeter.stamp(forged).inner().get(ORIGINAL_USER_HEADER),
            Some(&AMQPValue::LongString("greeter".into()))
        );
    }

    #[test]
    fn copies_drop_expiration_take_the_workers_user_id_and_keep_the_rest() {
        let original = BasicProperties::default()
            .with_expiration("60000".into())
            .with_user_id("caller".into())
            .with_correlation_id("c1".into())
            .with_content_encoding("gzip".into())
            .with_message_id("m1".into())
            .with_delivery_mode(1);
        let copy = copied(&original, FieldTable::default(), &"worker".into());
        assert_eq!(copy.expiration(), &None);
        assert_eq!(
            copy.user_id().as_ref().map(ShortString::as_str),
            Some("worker")
        );
        assert_eq!(copy.delivery_mode(), &Some(2));
        assert_eq!(copy.correlation_id(), original.correlation_id());
        assert_eq!(copy.content_encoding(), original.content_encoding());
        assert_eq!(copy.message_id(), original.message_id());
    }
}
