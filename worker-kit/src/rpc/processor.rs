//! The RPC worker: consumes route queues, runs handlers, publishes replies.

use std::collections::HashSet;
use std::sync::{Arc, Once, Weak};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicPublishOptions, BasicRejectOptions, ExchangeDeclareOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{Channel, Connection, ExchangeKind};
use tracing::{error, warn};

use crate::Contract;
use crate::amqp::Broker;
use crate::amqp::refusal::{NOT_FOUND, amqp_code, refuses_transient_queues};
use crate::config::{Config, RpcQueueDurable};
use crate::error::Error;
use crate::handler::budget::DecodeBudget;
use crate::handler::delivery;
use crate::handler::routes::{BoundHandler, RouteDoc};
use crate::handler::{ContainsPayload, Handler};
use crate::observe::disposition::Disposition;
use crate::rpc::answer::{Answer, AnswerSettings, answer};
use crate::rpc::redeliveries::Redeliveries;
use crate::rpc::reply::{self, ReplyTo};
use crate::wire::headers::oversized_properties;
use crate::worker::consume::Processor;
use crate::worker::{Runnable, Worker, WorkerContext};

/// The dead-letter exchange every RPC route queue names (docs/protocol.md).
pub const RPC_DLX: &str = "rpc.dlx";

/// The RPC kind of [`Worker`]: answers requests with replies.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rpc;

/// Answers RPC requests on its routes.
///
/// ```
/// use std::convert::Infallible;
/// use worker_kit::{Payload, rpc::RpcWorker};
///
/// async fn greet(Payload(name): Payload<String>) -> Result<String, Infallible> {
///     Ok(format!("Hello, {name}!"))
/// }
///
/// let worker: RpcWorker = RpcWorker::new().route("greet", greet);
/// ```
pub type RpcWorker<S = ()> = Worker<Rpc, S>;

impl<S: Clone + Send + Sync + 'static> Worker<Rpc, S> {
    /// Answers contract `C` (route [`Contract::ROUTE`]) with `handler`, which must take
    /// `Payload<C>` and return `Result<C::Response, _>`: a changed contract breaks the
    /// server at compile time, as it does its callers.
    #[must_use]
    pub fn contract<C, H, Args, I>(self, handler: H) -> Self
    where
        C: Contract,
        H: Handler<Args, S, Ok = C::Response>,
        Args: ContainsPayload<C, I>,
    {
        self.route_documented(C::ROUTE, handler, RouteDoc::contract::<C>())
    }

    /// Admits only `callers` to route `route`: broker users, `*` matching any run of
    /// characters (`["greeter", "billing-*"]`). Anyone else, and any request without
    /// `user_id`, is answered `Forbidden` without running the handler. `ROUTE_ALLOW`
    /// replaces the list per deployment. The route must be served by this worker (the
    /// Runner refuses to start otherwise, so a misspelt route cannot stay open).
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use worker_kit::rpc::RpcWorker;
    ///
    /// async fn reset() -> Result<(), Infallible> {
    ///     Ok(())
    /// }
    ///
    /// let worker: RpcWorker = RpcWorker::new()
    ///     .route("admin.reset", reset)
    ///     .allow("admin.reset", ["ops", "billing-*"]);
    /// ```
    #[must_use]
    pub fn allow<I, T>(self, route: &str, callers: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.allow_list(route, crate::access::AllowList::new(callers))
    }

    /// Adds a route declared with `#[rpc(...)]`.
    #[must_use]
    pub fn register(self, route: impl RpcRoute<S>) -> Self {
        route.register(self)
    }
}

#[async_trait]
impl Runnable for Worker<Rpc> {
    fn kind(&self) -> crate::worker::WorkerKind {
        crate::worker::WorkerKind::Rpc
    }

    fn route_names(&self) -> Vec<String> {
        self.names()
    }

    async fn run(self: Box<Self>, ctx: WorkerContext) -> Result<(), Error> {
        let processor = RpcProcessor::new(
            &ctx.config,
            &ctx.budget,
            &ctx.broker,
            ctx.served.clone(),
            self.handler_timeout_or(ctx.config.handler_timeout),
        );
        self.run_with(ctx, processor).await
    }
}

pub(crate) struct RpcProcessor {
    settings: AnswerSettings,
    max_skew: Duration,
    shape: RpcQueueDurable,
    /// The process's connection: route queues are probed and declared on channels of
    /// their own on it (see [`RpcProcessor::declare`]).
    broker: Broker,
    /// Whether the broker behind a connection refuses transient non-exclusive queues,
    /// asked once per connection (see [`RpcProcessor::transient_verdict`]).
    transient: tokio::sync::Mutex<Option<Verdict>>,
    reply_to: ReplyTo,
    /// `RPC_MAX_REDELIVERIES`.
    max_redeliveries: u32,
    redeliveries: Redeliveries,
}

/// What one connection's broker said to a transient non-exclusive queue.
struct Verdict {
    /// The connection it holds for: a reconnect (maybe to another node, maybe to an
    /// upgraded broker) asks again. A `Weak` keeps the allocation, so the pointer cannot be
    /// reused by a later connection while it is held.
    conn: Weak<Connection>,
    /// `None`: accepted; `Some`: the broker's refusal.
    refusal: Option<lapin::Error>,
}

impl RpcProcessor {
    fn new(
        config: &Config,
        budget: &DecodeBudget,
        broker: &Broker,
        served: Arc<HashSet<String>>,
        handler_timeout: Duration,
    ) -> Self {
        Self {
            settings: AnswerSettings {
                limits: config.limits(),
                budget: budget.clone(),
                development: config.is_development(),
                handler_timeout,
            },
            max_skew: config.deadline_max_skew,
            shape: config.rpc_queue_durable,
            broker: broker.clone(),
            transient: tokio::sync::Mutex::new(None),
            reply_to: ReplyTo::new(config.rpc_reply_to.clone(), served),
            max_redeliveries: config.rpc_max_redeliveries,
            redeliveries: Redeliveries::new(),
        }
    }

    /// Declares `route`'s queue: consumed as it is when it exists, else declared in the
    /// shape `RPC_QUEUE_DURABLE` asks for. Every step runs on a channel of its own on
    /// `conn` (a passive declaration of a missing queue closes its channel with 404);
    /// only the one question that can close a whole connection goes to a connection of
    /// its own, once per `conn` ([`RpcProcessor::transient_verdict`]).
    async fn declare_route_queue(
        &self,
        conn: &Arc<Connection>,
        route: &str,
    ) -> Result<(), lapin::Error> {
        let channel = conn.create_channel().await?;
        let passive = channel
            .queue_declare(
                route.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await;
        match passive {
            Ok(_) => {
                close_channel_quietly(&channel).await;
                return Ok(());
            }
            Err(e) if amqp_code(&e) == Some(NOT_FOUND) => {}
            Err(e) => return Err(e),
        }
        if self.shape == RpcQueueDurable::True {
            return declare_rpc_queue(conn, route, true).await;
        }
        let (refusal, declared) = self.transient_verdict(conn, route).await?;
        match refusal {
            None if declared => Ok(()),
            None => declare_rpc_queue(conn, route, false).await,
            Some(e) if self.shape == RpcQueueDurable::Auto => {
                static WARNED: Once = Once::new();
                WARNED.call_once(|| {
                    warn!(
                        broker_said = %e,
                        "the broker refuses transient non-exclusive queues (RabbitMQ 4.3 does by default); RPC route queues are declared durable instead (their messages stay transient). Choose explicitly with RPC_QUEUE_DURABLE=true, or permit the deprecated feature transient_nonexcl_queues on every node and set RPC_QUEUE_DURABLE=false; Python workers sharing these queues must then declare them the same way"
                    );
                });
                declare_rpc_queue(conn, route, true).await
            }
            Some(e) => Err(e),
        }
    }

    /// Whether the broker behind `conn` refuses transient non-exclusive queues (the
    /// refusal), and whether `route`'s queue was declared while asking. The first route
    /// that needs to know asks with its own queue, on a connection of its own (RabbitMQ
    /// 4.3 refuses with a *connection* close, which must not hit the process's
    /// connection); the answer holds for every later route and session on `conn`.
    async fn transient_verdict(
        &self,
        conn: &Arc<Connection>,
        route: &str,
    ) -> Result<(Option<lapin::Error>, bool), lapin::Error> {
        let mut verdict = self.transient.lock().await;
        if let Some(v) = verdict.as_ref()
            && Weak::ptr_eq(&v.conn, &Arc::downgrade(conn))
        {
            return Ok((v.refusal.clone(), false));
        }
        let probe = self
            .broker
            .open_unsupervised("rpc queue declaration")
            .await?;
        let asked = declare_rpc_queue(&probe, route, false).await;
        close_quietly(&probe).await;
        let (refusal, declared) = match asked {
            Ok(()) => (None, true),
            Err(e) if refuses_transient_queues(&e) => (Some(e), false),
            Err(e) => return Err(e),
        };
        *verdict = Some(Verdict {
            conn: Arc::downgrade(conn),
            refusal: refusal.clone(),
        });
        Ok((refusal, declared))
    }
}

/// Declares an RPC route queue on a channel of its own on `conn`: the seed's shape, or
/// durable with the same argument.
async fn declare_rpc_queue(
    conn: &Connection,
    route: &str,
    durable: bool,
) -> Result<(), lapin::Error> {
    let channel = conn.create_channel().await?;
    channel
        .queue_declare(
            route.into(),
            QueueDeclareOptions {
                durable,
                exclusive: false,
                auto_delete: false,
                ..QueueDeclareOptions::default()
            },
            rpc_queue_args(),
        )
        .await?;
    close_channel_quietly(&channel).await;
    Ok(())
}

/// Closes a probe's channel before its connection: closing a connection that still has an
/// open channel makes lapin log a connection error at ERROR, which here means nothing.
async fn close_channel_quietly(channel: &Channel) {
    if channel.status().connected() {
        let _ = channel.close(200, "declared".into()).await;
    }
}

async fn close_quietly(conn: &Connection) {
    if conn.status().connected() {
        let _ = conn.close(200, "declared".into()).await;
    }
}

/// The RPC route queue's arguments: the Python seed's, and the classic type named.
pub(crate) fn rpc_queue_args() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(RPC_DLX.into()),
    );
    // Only a missing queue is declared (an existing one is consumed as it is), and it stays
    // classic whatever the broker's default queue type: a quorum queue would write every
    // request to disk and replicate it.
    crate::queue::classic(&mut args);
    args
}

#[async_trait]
impl Processor for RpcProcessor {
    fn kind(&self) -> crate::worker::WorkerKind {
        crate::worker::WorkerKind::Rpc
    }

    fn requeue_after_panic(&self) -> bool {
        // A request the worker cannot settle must not loop: dead-letter it.
        false
    }

    async fn declare(&self, channel: &Channel, route: &str) -> Result<(), lapin::Error> {
        channel
            .exchange_declare(
                RPC_DLX.into(),
                ExchangeKind::Headers,
                ExchangeDeclareOptions {
                    durable: false,
                    auto_delete: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        // The connection `channel` is on: the RPC worker consumes on the process's own.
        let Some(conn) = self.broker.connection_now() else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                "the broker connection was lost while declaring",
            )
            .into());
        };
        self.declare_route_queue(&conn, route).await
    }

    async fn handle(
        &self,
        channel: &Channel,
        delivery: Delivery,
        route: &Arc<str>,
        handler: BoundHandler,
    ) -> Disposition {
        let meta = delivery::meta_at(
            &delivery,
            route,
            SystemTime::now(),
            self.max_skew,
            self.settings.handler_timeout,
            self.broker.user(),
        );
        let deadline = meta.deadline;
        let request_type = delivery.properties.kind().as_ref().map(ShortString::as_str);
        // A request that keeps coming back is answered and dead-lettered instead of run
        // again: its attempts died with their channel or connection (redeliveries.rs).
        let redeliveries = if delivery.redelivered {
            self.redeliveries
                .count(route, &delivery.properties, &delivery.data)
        } else {
            0
        };
        let dead_letter = redeliveries > self.max_redeliveries;
        let Answer {
            disposition: name,
            amqp_type,
            encoding,
            body,
        } = if let Some(e) = oversized_properties(&delivery.properties) {
            refused_unread(&delivery.data, &e, self.settings.development)
        } else if dead_letter {
            too_often_redelivered(&delivery.data, redeliveries, self.settings.development)
        } else {
            if redeliveries > 0 {
                warn!(
                    redeliveries,
                    max_redeliveries = self.max_redeliveries,
                    "request redelivered after an attempt that never finished; running it again"
                );
            }
            answer(&delivery.data, request_type, meta, &handler, &self.settings).await
        };
        let settle = async |delivery: &Delivery| {
            if dead_letter {
                reject(delivery).await;
            } else {
                ack(delivery).await;
            }
        };
        let props = &delivery.properties;
        let Some(reply_to) = props.reply_to().as_ref().filter(|r| !r.as_str().is_empty()) else {
            warn!(
                outcome = name.as_str(),
                "request has no reply_to; result dropped"
            );
            settle(&delivery).await;
            return name;
        };
        if !self.reply_to.allows(reply_to.as_str()) {
            warn!(
                outcome = name.as_str(),
                reply_to = reply_to.as_str(),
                "reply_to is not a reply queue (amq.gen-*, amq.rabbitmq.reply-to or RPC_REPLY_TO) or is a queue this process serves; result dropped"
            );
            settle(&delivery).await;
            return name;
        }
        let reply_props =
            reply::properties(props, deadline, amqp_type, encoding, self.broker.user_id());
        // No confirm to wait for (the channel is not in confirm mode): the ack below is
        // sent on the same channel after the reply, and AMQP keeps their order.
        let publish = channel.basic_publish(
            ShortString::from(""),
            reply_to.clone(),
            BasicPublishOptions::default(),
            &body,
            reply_props,
        );
        let published = crate::observe::trace::Traced::reply().run(publish).await;
        match published {
            Ok(_not_requested) => settle(&delivery).await,
            Err(e) => {
                error!(error = %e, "publishing the reply failed; rejecting the request");
                reject(&delivery).await;
            }
        }
        name
    }
}

/// The answer to a request redelivered more than `RPC_MAX_REDELIVERIES` times: an error
/// (AMQP type `error`: the handler did not run), after which the request is dead-lettered.
fn too_often_redelivered(body: &[u8], redeliveries: u32, development: bool) -> Answer {
    let e = crate::ErrorReply::new(
        "Redelivered",
        format!(
            "the request came back {redeliveries} times after attempts that never finished (their channel, connection or process died), more than RPC_MAX_REDELIVERIES allows; it was not run again and is dead-lettered to {RPC_DLX}"
        ),
    );
    crate::observe::error_type::note(&e.error_type);
    error!(error_type = %e.error_type, error_message = e.message.as_str(), "request refused");
    let encoding = crate::wire::envelope::Encoding::detect(body);
    Answer {
        disposition: Disposition::Rejected,
        amqp_type: "error",
        encoding,
        body: crate::wire::envelope::encode_error(&e, development, encoding),
    }
}

/// The answer to a request refused before its handler: an error (AMQP type `error`), after
/// which the request is acknowledged like any answered one.
fn refused_unread(body: &[u8], e: &crate::ErrorReply, development: bool) -> Answer {
    crate::observe::error_type::note(&e.error_type);
    warn!(error_type = %e.error_type, error_message = e.message.as_str(), "request refused");
    let encoding = crate::wire::envelope::Encoding::detect(body);
    Answer {
        disposition: Disposition::Rejected,
        amqp_type: "error",
        encoding,
        body: crate::wire::envelope::encode_error(e, development, encoding),
    }
}

async fn ack(delivery: &Delivery) {
    if let Err(e) = delivery.acker.ack(BasicAckOptions::default()).await {
        warn!(error = %e, "ack failed; the broker will redeliver the request");
    }
}

async fn reject(delivery: &Delivery) {
    if let Err(e) = delivery
        .acker
        .reject(BasicRejectOptions { requeue: false })
        .await
    {
        warn!(error = %e, "reject failed");
    }
}

/// A route declared with `#[rpc(...)]`: registers its handler on an [`RpcWorker`].
pub trait RpcRoute<S> {
    /// The route's name (its queue's name).
    fn name(&self) -> &'static str;
    /// Adds the route to `worker`; the macro expands this to `worker.route(name, handler)`
    /// (or `worker.contract::<C, _, _, _>(handler)`), followed by `.allow(name, [...])`
    /// when the attribute has an allow list.
    fn register(self, worker: RpcWorker<S>) -> RpcWorker<S>;
}
