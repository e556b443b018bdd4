//! Publish/subscribe: event subscriptions on the `events` topic exchange.
//!
//! A service subscribes to routing-key patterns (`example.item.*`) with an
//! [`EventWorker`]. Each subscription is a durable queue of the subscribing service,
//! `<service>.events.<pattern>`, bound to the exchange with its pattern: every subscribing
//! service gets every matching event, and the replicas of one service share them. Handlers,
//! extractors, retries and parking are those of work queues (a retry copy goes back to the
//! subscription's own queue, so other subscribers never see it twice).
//!
//! Events are published by the transactional outbox ([`crate::outbox`]); delivery is at
//! least once, so a handler that changes data records the event's id in the same
//! transaction ([`crate::outbox::first_delivery`]).
//!
//! ```
//! use worker_kit::events::{EventMeta, EventWorker};
//! use worker_kit::{ErrorReply, Payload};
//!
//! async fn on_item(event: EventMeta, Payload(item): Payload<serde_json::Value>) -> Result<(), ErrorReply> {
//!     println!("{} {} {item}", event.name, event.aggregate_id);
//!     Ok(())
//! }
//!
//! let worker: EventWorker = EventWorker::new().pattern("example.item.*", on_item);
//! ```

mod admission;
mod processor;

use async_trait::async_trait;
use lapin::types::AMQPValue;

use crate::handler::extract::{FromMessage, Incoming};
use crate::handler::{ContainsPayload, Handler};
use crate::wire::reply_error::ErrorReply;
use crate::worker::{Runnable, Worker, WorkerContext};
use crate::{Error, EventContract};

pub use processor::Subscribe;
pub(crate) use processor::declare_exchange;

/// The topic exchange events are published to (durable).
pub const EXCHANGE: &str = "events";

/// Header carrying the id of the aggregate an event is about.
pub const AGGREGATE_ID_HEADER: &str = "x-aggregate-id";

/// Header carrying the event's commit time in epoch milliseconds (the AMQP `timestamp`
/// has whole seconds only).
pub const OCCURRED_AT_HEADER: &str = "x-occurred-at-ms";

/// Header carrying the event's outbox row number: increasing per aggregate in commit
/// order, so a read model can ignore an event older than what it holds.
pub const SEQ_HEADER: &str = "x-outbox-seq";

/// The queue of `service`'s subscription to `pattern`.
pub fn subscription_queue(service: &str, pattern: &str) -> String {
    format!("{service}.events.{pattern}")
}

/// Subscribes to events: the event kind of [`Worker`].
///
/// ```
/// use worker_kit::events::EventWorker;
/// use worker_kit::{ErrorReply, Payload};
///
/// async fn audit(Payload(event): Payload<serde_json::Value>) -> Result<(), ErrorReply> {
///     Ok(())
/// }
///
/// let worker: EventWorker = EventWorker::new().pattern("#", audit).max_retries(3);
/// ```
pub type EventWorker<S = ()> = Worker<Subscribe, S>;

impl<S: Clone + Send + Sync + 'static> Worker<Subscribe, S> {
    /// Handles events of type `E` (routing key [`EventContract::ROUTING_KEY`]) with
    /// `handler`, which must take `Payload<E>`.
    #[must_use]
    pub fn event<E, H, Args, I>(self, handler: H) -> Self
    where
        E: EventContract,
        H: Handler<Args, S>,
        Args: ContainsPayload<E, I>,
    {
        self.route(E::ROUTING_KEY, handler)
    }

    /// Handles events whose routing key matches the topic `pattern` (`*` one word, `#`
    /// zero or more) with `handler`.
    #[must_use]
    pub fn pattern<H, Args>(self, pattern: &str, handler: H) -> Self
    where
        H: Handler<Args, S>,
    {
        self.route(pattern, handler)
    }

    /// Retries after a handler error before parking (default `QUEUE_MAX_RETRIES`).
    #[must_use]
    pub fn max_retries(mut self, n: u32) -> Self {
        self.kind.max_retries = Some(n);
        self
    }

    /// Binds the subscriptions to `exchange` instead of [`EXCHANGE`] (tests, or a
    /// separate event bus).
    #[must_use]
    pub fn exchange(mut self, exchange: &str) -> Self {
        self.kind.exchange = Some(exchange.into());
        self
    }
}

#[async_trait]
impl Runnable for Worker<Subscribe> {
    fn kind(&self) -> crate::worker::WorkerKind {
        crate::worker::WorkerKind::Events
    }

    fn route_names(&self) -> Vec<String> {
        // Patterns are not queues: keep them apart from route names in the duplicate check.
        self.names()
            .into_iter()
            .map(|p| format!("events:{p}"))
            .collect()
    }

    async fn run(self: Box<Self>, ctx: WorkerContext) -> Result<(), Error> {
        let service = ctx.service.clone();
        let bindings = self
            .names()
            .into_iter()
            .map(|p| (subscription_queue(&service, &p), p))
            .collect();
        let admission = admission::Admission::new(&ctx.config, ctx.broker.user_id().clone());
        for pattern in self.names() {
            tracing::info!(
                subscription = pattern.as_str(),
                admits = admission.describe(&pattern),
                "event subscription: whom it admits events from"
            );
        }
        let queues: Vec<String> = self
            .names()
            .iter()
            .map(|p| subscription_queue(&service, p))
            .collect();
        // Subscription queues are work queues of the kind QUEUE_TYPE names.
        let own = crate::queue::Overrides {
            max_retries: self.kind.max_retries,
            handler_timeout: self.handler_timeout_set(),
            ..crate::queue::Overrides::default()
        };
        let queue = match crate::queue::QueueProcessor::new(&ctx, &queues, own) {
            Ok(queue) => queue,
            Err(e) => {
                // Reported as a failed start, as a refused declaration is.
                let _ = ctx.ready.send(Err(e));
                return Ok(());
            }
        };
        let processor = processor::EventProcessor::new(
            self.kind
                .exchange
                .clone()
                .unwrap_or_else(|| EXCHANGE.into()),
            bindings,
            queue,
            admission,
        );
        self.run_renamed(ctx, processor, |p| subscription_queue(&service, p))
            .await
    }
}

/// What an event handler knows about the event besides its payload: an extractor.
///
/// A message without a `message_id` is not an event: it is refused (and parked) before
/// the handler runs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EventMeta {
    /// The event's unique id (`message_id`): deduplicate by it.
    pub id: uuid::Uuid,
    /// The event's name (AMQP `type`, its routing key when published by the outbox).
    pub name: String,
    /// The entity the event is about (`x-aggregate-id`); empty when absent.
    pub aggregate_id: String,
    /// When the change committed (`x-occurred-at-ms`, else the AMQP `timestamp`).
    pub occurred_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The outbox row number (`x-outbox-seq`): increasing per aggregate in commit order.
    pub seq: Option<i64>,
    /// The subscription queue it arrived on: a handler's identity for deduplication.
    pub subscription: String,
}

impl<S> FromMessage<S> for EventMeta {
    fn from_message(msg: &Incoming, _state: &S) -> Result<Self, ErrorReply> {
        let meta = &msg.meta;
        let id = meta
            .message_id
            .as_deref()
            .and_then(|s| uuid::Uuid::parse_str(s).ok())
            .ok_or_else(|| {
                ErrorReply::bad_request(format!(
                    "an event needs a UUID message_id, got {:?}",
                    meta.message_id
                ))
            })?;
        let millis = match meta.headers.inner().get(OCCURRED_AT_HEADER) {
            Some(AMQPValue::LongLongInt(n)) => Some(*n),
            _ => None,
        };
        let occurred_at = millis
            .and_then(chrono::DateTime::from_timestamp_millis)
            .or_else(|| {
                meta.timestamp
                    .and_then(|s| i64::try_from(s).ok())
                    .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
            });
        Ok(EventMeta {
            id,
            name: meta.message_type.clone().unwrap_or_default(),
            aggregate_id: meta
                .header_str(AGGREGATE_ID_HEADER)
                .unwrap_or_default()
                .to_owned(),
            occurred_at,
            seq: match meta.headers.inner().get(SEQ_HEADER) {
                Some(AMQPValue::LongLongInt(n)) => Some(*n),
                _ => None,
            },
            subscription: msg.route.to_string(),
        })
    }
}
