//! The RPC client: many concurrent calls multiplexed over one reply consumer.
//!
//! Replies come back to an exclusive, server-named queue the client consumes on a channel
//! of its own (it disappears with the connection), while requests go out on another channel.
//! Requests are published `mandatory` with publisher confirms: a
//! call to a route without a queue fails at once with [`CallError::NoRoute`]. Each call has
//! a deadline, sent as `expiration`, `x-deadline` and `x-timeout-ms` so the server does not
//! work on a request nobody waits for. Inside a handler, a call's deadline is at the latest
//! the one of the request being handled, without the handler passing it
//! ([`deadline::current`]); a call that would start with less than [`MIN_BUDGET`] fails at
//! once with [`CallError::Timeout`]. When the connection drops, every pending call fails at once
//! with [`CallError::ConnectionLost`]; the client reconnects with the [`Broker`].
//!
//! Every request carries the `user_id` of the broker user the client logged in as
//! ([`Broker::user`]), which servers read as the caller; nothing a caller passes can change
//! it. A request the broker refuses over its `user_id` (which closes the publishing
//! channel) fails at once with [`CallError::UserIdRefused`], and the client opens a new
//! channel for the next call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{oneshot, watch};
use tracing::{debug, warn};

use crate::Contract;
use crate::amqp::broker::Broker;
use crate::amqp::confirm::{ConfirmChannel, OpenError, Wait};
use crate::amqp::publish::Published;
use crate::backoff::Pauses;
use crate::config::Config;
use crate::error::Error;
use crate::observe::metrics::{CALL_OUTCOMES, ClientMetrics};
use crate::wire::deadline::{self, Deadline};
use crate::wire::envelope::{self, Encoding, Limits, RemoteError, Reply};

/// The least time a call inside a handler must have left of its caller's deadline to be
/// sent at all: with less, no server could answer in time, so it fails at once with
/// [`CallError::Timeout`] instead of adding load.
pub const MIN_BUDGET: Duration = Duration::from_millis(10);

/// Why a call did not return a value.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The remote handler answered with an error (`success: false`).
    #[error("{route} answered {}: {}", .error.error_type, .error.message)]
    Remote {
        /// The route called.
        route: String,
        /// The reply's `error` object.
        error: RemoteError,
    },
    /// No reply before the deadline.
    #[error("{route} did not answer within {}ms", .after.as_millis())]
    Timeout {
        /// The route called.
        route: String,
        /// The time waited.
        after: Duration,
    },
    /// No queue is bound for the route: nobody serves it.
    #[error("no queue for route {route}: is the service that serves it running?")]
    NoRoute {
        /// The route called.
        route: String,
    },
    /// The broker connection was lost while the call was pending (or could not be
    /// re-established within the call's deadline).
    #[error("connection to the broker lost during the call to {route}")]
    ConnectionLost {
        /// The route called.
        route: String,
    },
    /// The broker refused the request (publisher nack): it did not take it into the
    /// route's queue, as happens while a quorum queue's leader moves to another node.
    /// The handler did not run on this copy, so the call may be retried.
    #[error(
        "the broker refused the request to {route} (publisher nack, e.g. while the queue's leader moves to another node); the call may be retried"
    )]
    Refused {
        /// The route called.
        route: String,
    },
    /// The broker refused the request because its `user_id` is not the user the
    /// connection logged in as (406 `PRECONDITION_FAILED`, which closed the publishing
    /// channel; the client has opened a new one). The request was not delivered.
    #[error(
        "the broker refused the request to {route}: its user_id does not match the user this connection logged in as ({broker_said})"
    )]
    UserIdRefused {
        /// The route called.
        route: String,
        /// The broker's reason, naming both users.
        broker_said: String,
    },
    /// The encoded request is larger than `MAX_MESSAGE_BYTES`: the broker (whose
    /// `max_message_size` the shipped configuration sets to the same value) would close the
    /// publishing channel over it, and no kit server would accept it. Nothing was sent.
    #[error(
        "request to {route} is {size} bytes, more than MAX_MESSAGE_BYTES ({limit} bytes); nothing was sent"
    )]
    TooLarge {
        /// The route called.
        route: String,
        /// The encoded body's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The request could not be serialized, or the reply could not be understood.
    #[error("{route}: {message}")]
    Codec {
        /// The route called.
        route: String,
        /// What went wrong.
        message: String,
    },
}

impl CallError {
    /// The variant's name (`Remote`, `Timeout`, `NoRoute`, ...), as the `outcome` label
    /// of the call metrics.
    pub fn kind(&self) -> &'static str {
        CALL_OUTCOMES[self.outcome_index()]
    }

    fn outcome_index(&self) -> usize {
        match self {
            Self::Remote { .. } => 1,
            Self::Timeout { .. } => 2,
            Self::NoRoute { .. } => 3,
            Self::ConnectionLost { .. } => 4,
            Self::Refused { .. } => 5,
            Self::TooLarge { .. } => 6,
            Self::Codec { .. } => 7,
            Self::UserIdRefused { .. } => 8,
        }
    }

    /// The remote error's `type`, when the remote handler answered with one.
    pub fn remote_type(&self) -> Option<&str> {
        match self {
            Self::Remote { error, .. } => Some(&error.error_type),
            _ => None,
        }
    }
}

impl crate::wire::reply_error::IntoErrorReply for CallError {
    /// A failed nested call becomes an error of the same type for our own caller; broker
    /// trouble becomes `Unavailable` and a timeout `Timeout`.
    fn into_error_reply(self) -> crate::ErrorReply {
        match self {
            CallError::Remote { error, .. } => {
                crate::ErrorReply::new(error.error_type, error.message).with_args(error.args)
            }
            CallError::Timeout { .. } => crate::ErrorReply::timeout(self.to_string()),
            CallError::NoRoute { .. }
            | CallError::ConnectionLost { .. }
            | CallError::Refused { .. } => crate::ErrorReply::unavailable(self.to_string()),
            CallError::Codec { .. }
            | CallError::TooLarge { .. }
            | CallError::UserIdRefused { .. } => crate::ErrorReply::internal(&self),
        }
    }
}

/// Per-call settings.
#[derive(Debug, Clone, Copy, Default)]
pub struct CallOptions {
    /// How long to wait (default: the client's, from `RPC_TIMEOUT_MS`).
    pub timeout: Option<Duration>,
    /// An absolute deadline. The earliest of this, `timeout` and the deadline of the request
    /// being handled ([`deadline::current`], set by the RPC worker around every handler)
    /// wins, so a nested call never outlives its caller; set this only where that
    /// task-local is not there (a task the handler spawned).
    pub deadline: Option<Deadline>,
}

type Waiter = oneshot::Sender<Result<Vec<u8>, CallError>>;

struct Shared {
    /// Pending calls by correlation id: random 128-bit values, so that nobody who sees
    /// one call (a server it called, a peer on the broker) can guess another's and steer a
    /// reply into it (issue 25.6).
    pending: Mutex<HashMap<u128, (String, Waiter)>>,
    /// The publishing channel and the reply queue's name, set together.
    channel: watch::Sender<Option<(Channel, ShortString)>>,
}

/// Calls RPC routes; cheap to clone, safe to share between tasks.
#[derive(Clone)]
pub struct RpcClient {
    broker: Broker,
    shared: Arc<Shared>,
    /// The `user_id` of every request: the broker user the client logged in as.
    user_id: ShortString,
    /// Where the publishing channel comes from (opened when the reply consumer is, and
    /// again after the broker closed it); calls failing together on a closed channel open
    /// one between them. It does not wait for a reconnect: the reply loop does, because
    /// the channel must be opened on the connection of the reply queue it is paired with.
    publisher: Arc<ConfirmChannel>,
    default_timeout: Duration,
    limits: Limits,
    encoding: Encoding,
    metrics: ClientMetrics,
}

impl std::fmt::Debug for RpcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcClient")
            .field("broker", &self.broker)
            .field("default_timeout", &self.default_timeout)
            .finish_non_exhaustive()
    }
}

impl RpcClient {
    /// Connects its own [`Broker`] to `url` (for tools and tests; services share the
    /// Runner's broker through [`RpcClient::new`]).
    ///
    /// # Errors
    ///
    /// [`Error::Broker`] when the broker cannot be reached within 10 s.
    pub async fn connect(url: &str) -> Result<Self, Error> {
        let broker = Broker::connect(url, "worker-kit rpc client", Duration::from_secs(10)).await?;
        Self::new(&broker, &Config::default()).await
    }

    /// A client on `broker`, with the default timeout and size limits from `config`.
    ///
    /// # Errors
    ///
    /// [`Error::Broker`] when the reply consumer cannot be set up.
    pub async fn new(broker: &Broker, config: &Config) -> Result<Self, Error> {
        let (channel, _) = watch::channel(None);
        let shared = Arc::new(Shared {
            pending: Mutex::new(HashMap::new()),
            channel,
        });
        let client = Self {
            broker: broker.clone(),
            shared,
            user_id: broker.user_id().clone(),
            publisher: Arc::new(ConfirmChannel::new(
                broker.clone(),
                Wait::No,
                "the rpc client's requests",
            )),
            default_timeout: config.rpc_timeout,
            limits: config.limits(),
            encoding: Encoding::Gzip,
            // Recorded only where something serves them (METRICS_ADDR).
            metrics: broker.metrics().client(config.metrics_addr.is_some()),
        };
        let first = client.open().await?;
        tokio::spawn(client.clone().keep_replies_flowing(first));
        Ok(client)
    }

    /// Sends plain JSON instead of gzip (for peers that only read plain JSON).
    #[must_use]
    pub fn plain_json(mut self) -> Self {
        self.encoding = Encoding::Plain;
        self
    }

    /// Requests claim `user` instead of the user the client logged in as: only for showing
    /// that the broker refuses them (`testing::ForgeUserId`, behind the `testing` feature).
    #[cfg(feature = "testing")]
    pub(crate) fn claiming_user_id(mut self, user: &str) -> Self {
        self.user_id = user.into();
        self
    }

    /// Replaces the publishing channel after the broker closed it (a refused `user_id`
    /// closes the channel, not the connection, so the reply consumer stays and no
    /// reconnect would ever replace it). Calls that failed together open one channel
    /// between them; while the connection is down, the reconnect re-opens everything.
    async fn reopen_publisher(&self) {
        let reply_to = match self.shared.channel.borrow().as_ref() {
            Some((c, _)) if c.status().connected() => return,
            Some((_, reply_to)) => reply_to.clone(),
            None => return,
        };
        match self.publisher.channel().await {
            Ok(channel) => {
                self.shared.channel.send_replace(Some((channel, reply_to)));
            }
            // Down: the reply loop pairs a new channel with a new reply queue once it is back.
            Err(OpenError::Down) => {}
            Err(e) => warn!(error = %e, "rpc client could not re-open its publishing channel"),
        }
    }

    /// Opens a channel with confirms and a reply consumer on it.
    async fn open(&self) -> Result<lapin::Consumer, Error> {
        let conn = self
            .broker
            .connection()
            .await
            .ok_or_else(|| Error::Broker {
                message: "broker handle closed".into(),
                source: None,
            })?;
        let err = |what: &'static str| {
            move |e: lapin::Error| Error::Broker {
                message: format!("rpc client: {what}"),
                source: Some(e),
            }
        };
        // On `conn`, which is up now (a new reconnect fails this, and the loop tries again).
        let channel = self.publisher.channel().await.map_err(|e| {
            let (what, source) = e.split();
            Error::Broker {
                message: format!("rpc client: {what}"),
                source,
            }
        })?;
        // Replies come to an exclusive queue consumed on a channel of its own: RabbitMQ
        // then handles publishing and delivering replies in parallel (direct reply-to
        // forces both onto one channel, ~20 % fewer calls/s at 64 in flight here).
        let replies = conn
            .create_channel()
            .await
            .map_err(err("opening the reply channel failed"))?;
        let queue = replies
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(err("declaring the reply queue failed"))?;
        let reply_to = queue.name().clone();
        let consumer = replies
            .basic_consume(
                reply_to.clone(),
                // The broker names the consumer: a tag of ours would tell every peer that
                // lists consumers something about the client.
                ShortString::from(""),
                BasicConsumeOptions {
                    no_ack: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(err("consuming the reply queue failed"))?;
        self.shared.channel.send_replace(Some((channel, reply_to)));
        Ok(consumer)
    }

    /// Routes replies to their callers; when the consumer dies, fails every pending call
    /// and re-opens on the next connection.
    async fn keep_replies_flowing(self, mut consumer: lapin::Consumer) {
        loop {
            while let Some(delivery) = consumer.next().await {
                let Ok(delivery) = delivery else { break };
                if !is_reply(&delivery.properties) {
                    // Anyone may publish to a server-named queue; a server's reply is
                    // marked by its AMQP type (docs/protocol.md).
                    debug!("message on the reply queue that is not marked as a reply; ignored");
                    continue;
                }
                let id = delivery
                    .properties
                    .correlation_id()
                    .as_ref()
                    .and_then(|c| parse_correlation_id(c.as_str()));
                let waiter = id.and_then(|id| self.shared.pending.lock().ok()?.remove(&id));
                match waiter {
                    Some((_, tx)) => {
                        let _ = tx.send(Ok(delivery.data));
                    }
                    None => debug!("reply for a call nobody waits for (timed out?)"),
                }
            }
            self.shared.channel.send_replace(None);
            let lost: Vec<(String, Waiter)> = match self.shared.pending.lock() {
                Ok(mut p) => p.drain().map(|(_, v)| v).collect(),
                Err(_) => Vec::new(),
            };
            if !lost.is_empty() {
                warn!(
                    calls = lost.len(),
                    "reply consumer lost; failing pending calls"
                );
            }
            for (route, tx) in lost {
                let _ = tx.send(Err(CallError::ConnectionLost { route }));
            }
            if self.broker.is_closed() {
                return;
            }
            let pauses = Pauses::default();
            consumer = loop {
                match self.open().await {
                    Ok(c) => break c,
                    Err(e) => {
                        if self.broker.is_closed() {
                            return;
                        }
                        let pause = pauses.next();
                        warn!(error = %e, retry_in_ms = pause.as_millis() as u64, "rpc client could not re-open its reply consumer; retrying");
                        tokio::time::sleep(pause).await;
                    }
                }
            };
        }
    }

    /// Calls contract `C` with the default timeout.
    ///
    /// # Errors
    ///
    /// Any [`CallError`].
    pub async fn call<C: Contract>(&self, request: &C) -> Result<C::Response, CallError> {
        self.call_with(request, CallOptions::default()).await
    }

    /// Calls contract `C` with per-call options.
    ///
    /// # Errors
    ///
    /// Any [`CallError`].
    pub async fn call_with<C: Contract>(
        &self,
        request: &C,
        options: CallOptions,
    ) -> Result<C::Response, CallError> {
        self.call_route(C::ROUTE, request, options).await
    }

    /// Calls `route` with any serializable payload and deserializes the reply's `data`.
    ///
    /// # Errors
    ///
    /// Any [`CallError`].
    pub async fn call_route<T: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        route: &str,
        data: &T,
        options: CallOptions,
    ) -> Result<R, CallError> {
        let raw = self.call_raw(route, data, options).await?;
        crate::handler::extract::parse_payload(raw.get()).map_err(|e| CallError::Codec {
            route: route.to_owned(),
            message: format!("reply does not fit the expected type: {}", e.message),
        })
    }

    /// Calls `route` with a JSON value and returns the reply's `data` as JSON.
    ///
    /// # Errors
    ///
    /// Any [`CallError`].
    pub async fn call_json(
        &self,
        route: &str,
        data: serde_json::Value,
    ) -> Result<serde_json::Value, CallError> {
        self.call_route(route, &data, CallOptions::default()).await
    }

    /// Calls `route` and returns the reply's `data` as raw JSON.
    ///
    /// # Errors
    ///
    /// Any [`CallError`].
    pub async fn call_raw<T: Serialize + ?Sized>(
        &self,
        route: &str,
        data: &T,
        options: CallOptions,
    ) -> Result<Box<serde_json::value::RawValue>, CallError> {
        let started = std::time::Instant::now();
        // Boxed: the call's future is a few KiB, which every move would copy.
        let call = Box::pin(self.call_unmeasured(route, data, options));
        let traced = crate::observe::trace::Traced::send(route);
        let result = traced.run(call).await;
        if let Err(e) = &result {
            traced.failed(e.kind());
        }
        let outcome = result.as_ref().map_or_else(CallError::outcome_index, |_| 0);
        self.metrics.call(route, outcome, started.elapsed());
        result
    }

    async fn call_unmeasured<T: Serialize + ?Sized>(
        &self,
        route: &str,
        data: &T,
        options: CallOptions,
    ) -> Result<Box<serde_json::value::RawValue>, CallError> {
        let own = Deadline::after(options.timeout.unwrap_or(self.default_timeout));
        let inherited = match (options.deadline, deadline::current()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let deadline = inherited.map_or(own, |d| own.min(d));
        let budget = deadline.remaining();
        if inherited.is_some_and(|d| d <= own) && budget < MIN_BUDGET {
            return Err(CallError::Timeout {
                route: route.to_owned(),
                after: Duration::ZERO,
            });
        }
        let body = envelope::encode_request(data, self.encoding).map_err(|e| CallError::Codec {
            route: route.to_owned(),
            message: format!("request cannot be serialized: {e}"),
        })?;
        if body.len() > self.limits.max_message_bytes {
            return Err(CallError::TooLarge {
                route: route.to_owned(),
                size: body.len(),
                limit: self.limits.max_message_bytes,
            });
        }
        // Waiting for a reconnect counts against the call's budget; running out of it
        // before the request is even sent is a broker problem, not a slow server.
        // The channel is nearly always up: take it without arming a timer for the wait.
        let ready = self
            .shared
            .channel
            .borrow()
            .as_ref()
            .filter(|(c, _)| c.status().connected())
            .cloned();
        let channel = match ready {
            Some(ch) => ch,
            None => match tokio::time::timeout(budget, self.channel(route)).await {
                Ok(ch) => ch?,
                Err(_) => {
                    return Err(CallError::ConnectionLost {
                        route: route.to_owned(),
                    });
                }
            },
        };
        let reply = tokio::time::timeout(
            deadline.remaining(),
            self.round_trip(channel, route, body, deadline),
        )
        .await;
        let bytes = match reply {
            Ok(r) => r?,
            Err(_) => {
                return Err(CallError::Timeout {
                    route: route.to_owned(),
                    after: budget,
                });
            }
        };
        match envelope::decode_reply(&bytes, &self.limits) {
            Ok(Reply::Success(raw)) => Ok(raw),
            Ok(Reply::Error(error)) => Err(CallError::Remote {
                route: route.to_owned(),
                error,
            }),
            Err(e) => Err(CallError::Codec {
                route: route.to_owned(),
                message: e.to_string(),
            }),
        }
    }

    async fn round_trip(
        &self,
        (channel, reply_to): (Channel, ShortString),
        route: &str,
        body: Vec<u8>,
        deadline: Deadline,
    ) -> Result<Vec<u8>, CallError> {
        let id = uuid::Uuid::new_v4().as_u128();
        let (tx, rx) = oneshot::channel();
        let guard = PendingGuard {
            shared: &self.shared,
            id,
        };
        if let Ok(mut p) = self.shared.pending.lock() {
            p.insert(id, (route.to_owned(), tx));
        }
        let mut headers = FieldTable::default();
        headers.insert(
            deadline::HEADER.into(),
            AMQPValue::LongLongInt(i64::try_from(deadline.epoch_millis()).unwrap_or(i64::MAX)),
        );
        // At least 1 ms (0 means "deliver now or drop" to RabbitMQ), at most what RabbitMQ
        // accepts (a larger one would close the publishing channel).
        let expiration = deadline::expiration_ms(
            deadline.remaining(),
            Duration::from_millis(deadline::MAX_EXPIRATION_MS),
        );
        headers.insert(
            deadline::TIMEOUT_HEADER.into(),
            AMQPValue::LongLongInt(i64::try_from(expiration).unwrap_or(i64::MAX)),
        );
        crate::observe::trace::inject(&mut headers);
        let mut props = BasicProperties::default()
            .with_reply_to(reply_to)
            .with_correlation_id(correlation_id(id).as_str().into())
            .with_expiration(expiration.to_string().as_str().into())
            .with_delivery_mode(1)
            .with_timestamp(crate::wire::delivery::now_timestamp())
            .with_user_id(self.user_id.clone())
            .with_headers(headers);
        if let Some(ce) = self.encoding.content_encoding() {
            props = props.with_content_encoding(ce.into());
        }
        // Measured before it goes: properties past a frame would close the connection.
        let props = crate::wire::headers::within_frame(props).map_err(|size| CallError::Codec {
            route: route.to_owned(),
            message: format!(
                "the request's properties are {size} bytes encoded, more than one frame holds ({} bytes); nothing was sent",
                crate::wire::headers::MAX_PROPERTIES_BYTES
            ),
        })?;
        let lost = || CallError::ConnectionLost {
            route: route.to_owned(),
        };
        match crate::amqp::publish::to_queue(&channel, route, &body, props).await {
            Ok(Published::Stored) => {}
            Ok(Published::NoQueue) => {
                return Err(CallError::NoRoute {
                    route: route.to_owned(),
                });
            }
            Ok(Published::Refused) => {
                return Err(CallError::Refused {
                    route: route.to_owned(),
                });
            }
            Err(e) => {
                let refusal = crate::amqp::publish::user_id_refusal(&e);
                if !channel.status().connected() {
                    self.reopen_publisher().await;
                }
                return Err(match refusal {
                    Some(broker_said) => CallError::UserIdRefused {
                        route: route.to_owned(),
                        broker_said,
                    },
                    None => lost(),
                });
            }
        }
        let result = rx.await.unwrap_or_else(|_| Err(lost()));
        drop(guard);
        result
    }

    /// The current channel, waiting (within the caller's timeout) for a reconnect; a
    /// channel the broker closed on a live connection is replaced first.
    async fn channel(&self, route: &str) -> Result<(Channel, ShortString), CallError> {
        self.reopen_publisher().await;
        let mut rx = self.shared.channel.subscribe();
        let ch = rx
            .wait_for(|c| c.as_ref().is_some_and(|(c, _)| c.status().connected()))
            .await
            .map_err(|_| CallError::ConnectionLost {
                route: route.to_owned(),
            })?;
        ch.clone().ok_or_else(|| CallError::ConnectionLost {
            route: route.to_owned(),
        })
    }
}

/// The AMQP `type` values a server marks its replies with (`result` when the handler ran,
/// `error` when the request never reached it), as the Python seed's aio-pika does.
fn is_reply(props: &BasicProperties) -> bool {
    matches!(
        props.kind().as_ref().map(ShortString::as_str),
        Some("result" | "error")
    )
}

/// A call's correlation id on the wire: its 128 bits as 32 lowercase hex digits.
fn correlation_id(id: u128) -> String {
    format!("{id:032x}")
}

/// The pending call a reply's correlation id names, when it is one of ours in shape.
fn parse_correlation_id(c: &str) -> Option<u128> {
    if c.len() != 32 {
        return None;
    }
    u128::from_str_radix(c, 16).ok()
}

/// Removes a call from the pending map however the call ends (reply, timeout, error,
/// or the caller dropping the future), so the map never leaks entries.
struct PendingGuard<'a> {
    shared: &'a Shared,
    id: u128,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut p) = self.shared.pending.lock() {
            p.remove(&self.id);
        }
    }
}
