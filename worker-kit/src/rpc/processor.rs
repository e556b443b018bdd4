//! The RPC worker: consumes route queues, runs handlers, publishes replies.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicPublishOptions, BasicRejectOptions, ExchangeDeclareOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, ExchangeKind};
use tracing::{error, warn};

use crate::Contract;
use crate::amqp::consume::{Disposition, Processor};
use crate::config::Config;
use crate::error::Error;
use crate::handler::routes::{BoundHandler, RpcRoute};
use crate::handler::{ContainsPayload, Handler};
use crate::rpc::answer::{Answer, AnswerSettings, answer};
use crate::wire::delivery;
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
/// let worker = RpcWorker::new().route("greet", greet);
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
        self.route(C::ROUTE, handler)
    }

    /// Adds a route declared with `#[rpc(...)]`.
    #[must_use]
    pub fn register(self, route: impl RpcRoute<S>) -> Self {
        route.register(self)
    }
}

#[async_trait]
impl<S: Clone + Send + Sync + 'static> Runnable for Worker<Rpc, S> {
    fn kind(&self) -> &'static str {
        "rpc"
    }

    fn route_names(&self) -> Vec<String> {
        self.names()
    }

    async fn run(self: Box<Self>, ctx: WorkerContext) -> Result<(), Error> {
        let processor = RpcProcessor::new(&ctx.config);
        self.run_with(ctx, processor).await
    }
}

pub(crate) struct RpcProcessor {
    settings: AnswerSettings,
    max_skew: Duration,
}

impl RpcProcessor {
    fn new(config: &Config) -> Self {
        Self {
            settings: AnswerSettings {
                limits: config.limits(),
                development: config.is_development(),
            },
            max_skew: config.deadline_max_skew,
        }
    }
}

/// The RPC route queue's arguments, exactly as the Python seed declares them.
pub(crate) fn rpc_queue_args() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(RPC_DLX.into()),
    );
    args
}

#[async_trait]
impl Processor for RpcProcessor {
    fn kind(&self) -> &'static str {
        "rpc"
    }

    /// Replies go out without confirms (protocol v2): the ack that follows on the same
    /// channel is ordered after the reply, so the broker has routed the reply before it
    /// drops the request, and a confirm round trip would only add latency and broker CPU.
    fn confirms(&self) -> bool {
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
        channel
            .queue_declare(
                route.into(),
                QueueDeclareOptions {
                    durable: false,
                    exclusive: false,
                    auto_delete: false,
                    ..QueueDeclareOptions::default()
                },
                rpc_queue_args(),
            )
            .await?;
        Ok(())
    }

    async fn handle(
        &self,
        channel: &Channel,
        delivery: Delivery,
        route: &Arc<str>,
        handler: BoundHandler,
    ) -> Disposition {
        let meta = delivery::meta_at(&delivery, route, SystemTime::now(), self.max_skew);
        let Answer {
            disposition: name,
            amqp_type,
            encoding,
            body,
        } = answer(&delivery.data, meta, &handler, self.settings).await;
        let props = &delivery.properties;
        let Some(reply_to) = props.reply_to().as_ref().filter(|r| !r.as_str().is_empty()) else {
            warn!(
                outcome = name.as_str(),
                "request has no reply_to; result dropped"
            );
            ack(&delivery).await;
            return name;
        };
        let mut reply_props = BasicProperties::default()
            .with_delivery_mode(props.delivery_mode().unwrap_or(1))
            .with_timestamp(delivery::now_timestamp())
            .with_type(ShortString::from(amqp_type));
        if let Some(c) = props.correlation_id() {
            reply_props = reply_props.with_correlation_id(c.clone());
        }
        if let Some(ce) = encoding.content_encoding() {
            reply_props = reply_props.with_content_encoding(ce.into());
        }
        if let Some(tp) = props
            .headers()
            .as_ref()
            .and_then(|h| h.inner().get("traceparent"))
        {
            let mut h = FieldTable::default();
            h.insert("traceparent".into(), tp.clone());
            reply_props = reply_props.with_headers(h);
        }
        // No confirm to wait for (the channel is not in confirm mode): the ack below is
        // sent on the same channel after the reply, and AMQP keeps their order.
        let published = channel
            .basic_publish(
                ShortString::from(""),
                reply_to.clone(),
                BasicPublishOptions::default(),
                &body,
                reply_props,
            )
            .await;
        match published {
            Ok(_not_requested) => ack(&delivery).await,
            Err(e) => {
                error!(error = %e, "publishing the reply failed; rejecting the request");
                reject(&delivery).await;
            }
        }
        name
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
