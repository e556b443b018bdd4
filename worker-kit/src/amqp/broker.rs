//! The process's AMQP connections (one that publishes, one that only consumes), kept alive.
//!
//! [`Broker`] owns the connection. The first connect is retried with exponential backoff
//! and jitter until `AMQP_CONNECT_TIMEOUT_MS`, each attempt time-boxed by what is left of
//! it (a host that drops packets would otherwise hold one attempt for the OS's TCP
//! timeout, and one that accepts and says nothing, forever); closing is time-boxed by it
//! too, so a half-open socket cannot hang a shutdown. After that a supervisor task notices a lost
//! connection, reconnects with backoff (for as long as the process runs) and publishes
//! the new connection to every worker and client, which then re-create their channels,
//! redeclare their topology and resume consuming.
//!
//! Consumers that only acknowledge (work queues, event subscriptions) get a second
//! connection, [`Broker::consuming`]: RabbitMQ blocks every connection that publishes while
//! a memory or disk alarm lasts, and a blocked connection's acks wait with its publishes.
//! On a connection that never publishes, those consumers keep finishing and acking what
//! they hold. Everything that publishes (clients, RPC servers' replies, retry and parked
//! copies, the outbox relay) stays on the first.
//!
//! With several node URLs (the nodes of a RabbitMQ cluster, `AMQP_URL` as a list) each
//! attempt takes the next node; the backoff delay comes only after a whole round over the
//! nodes failed, so losing one node costs a reconnect to the next, not a wait.

use std::sync::Arc;
use std::time::Duration;

use backon::BackoffBuilder;
use futures::StreamExt;
use lapin::{Connection, ConnectionProperties, Event};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::endpoints::{Endpoint, Endpoints};
use super::tls::AmqpTls;
use crate::Error;
use crate::backoff::backoff;
use crate::config::{AmqpUrl, Config};
use crate::observe::Metrics;
use crate::observe::link::Link;

/// A handle to the process's broker connection; cheap to clone.
#[derive(Clone)]
pub struct Broker {
    inner: Arc<Inner>,
}

struct Inner {
    endpoints: Endpoints,
    shown_url: String,
    /// The node of the current (or last) connection, password hidden.
    node: std::sync::Mutex<String>,
    name: String,
    /// The user the URL logs in as: the `user_id` of everything the process publishes.
    user: lapin::types::ShortString,
    /// `AMQP_CONNECT_TIMEOUT_MS`: the budget of the first connect, of each reconnect
    /// attempt and of the close.
    time_limit: Duration,
    current: watch::Sender<Option<Arc<Connection>>>,
    closed: CancellationToken,
    /// `AMQP_URL` as parsed when it was read, to open the consuming connection.
    url: AmqpUrl,
    /// The TLS files `url`'s `amqps://` nodes connect with, for the consuming connection.
    tls: AmqpTls,
    /// The consume-only connection, opened by the first [`Broker::consuming`].
    consuming: tokio::sync::OnceCell<Broker>,
    /// The process's metrics: this connection's, and those of every worker, client and
    /// pool that uses it (shared with the consume-only sibling).
    metrics: Metrics,
    /// Which of the process's connections this is: its metric label and its traces'
    /// `server.address`.
    role: Link,
    /// `MAX_MESSAGE_BYTES`: the largest body a publisher on this connection sends (the
    /// default unless the connection was opened with [`Broker::connect_configured`]).
    max_message_bytes: usize,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("url", &self.inner.shown_url)
            .field("name", &self.inner.name)
            .finish_non_exhaustive()
    }
}

impl Broker {
    /// Connects to `url`, retrying with exponential backoff and jitter for up to
    /// `give_up_after`. `name` shows in the RabbitMQ management UI.
    ///
    /// `url` may list several nodes of one cluster, comma-separated (`AMQP_URL`'s list
    /// form): they are tried in an order shuffled per process, and later reconnects move on
    /// to the next node.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when `url` is not a list of AMQP URLs; [`Error::Broker`] saying
    /// where it tried to connect (passwords hidden), how long it tried, and the last
    /// failure.
    pub async fn connect(url: &str, name: &str, give_up_after: Duration) -> Result<Self, Error> {
        Self::connect_with_tls(url, &AmqpTls::default(), name, give_up_after).await
    }

    /// As [`Broker::connect`], with the CA and client certificate files that `amqps://`
    /// URLs connect with (`AMQP_TLS_*`, [`Config::amqp_tls`](crate::Config::amqp_tls)).
    ///
    /// # Errors
    ///
    /// As [`Broker::connect`]; [`Error::Config`] also when a TLS file cannot be used.
    pub async fn connect_with_tls(
        url: &str,
        tls: &AmqpTls,
        name: &str,
        give_up_after: Duration,
    ) -> Result<Self, Error> {
        Self::connect_to(&url.parse()?, tls, name, give_up_after).await
    }

    /// As [`Broker::connect_with_tls`], to an `AMQP_URL` already parsed
    /// ([`Config::amqp_url`](crate::Config::amqp_url)), with the default
    /// `MAX_MESSAGE_BYTES` for the publishers made from this handle.
    ///
    /// # Errors
    ///
    /// As [`Broker::connect_with_tls`].
    pub async fn connect_to(
        url: &AmqpUrl,
        tls: &AmqpTls,
        name: &str,
        give_up_after: Duration,
    ) -> Result<Self, Error> {
        let max_message_bytes = crate::wire::envelope::Limits::default().max_message_bytes;
        Self::connect_as(
            url,
            tls,
            name,
            give_up_after,
            Metrics::new(),
            Link::Main,
            max_message_bytes,
        )
        .await
    }

    /// Connects as `config` says: `AMQP_URL`, the `AMQP_TLS_*` files,
    /// `AMQP_CONNECT_TIMEOUT_MS`, and `MAX_MESSAGE_BYTES` for every publisher made from
    /// this handle ([`QueuePublisher::new`](crate::queue::QueuePublisher::new)). What
    /// `runner::main` hands a service in [`Setup::broker`](crate::Setup::broker).
    ///
    /// # Errors
    ///
    /// As [`Broker::connect_with_tls`].
    pub async fn connect_configured(config: &Config, name: &str) -> Result<Self, Error> {
        Self::connect_as(
            &config.amqp_url,
            &config.amqp_tls(),
            name,
            config.connect_timeout,
            Metrics::new(),
            Link::Main,
            config.max_message_bytes,
        )
        .await
    }

    /// As [`Broker::connect_with_tls`], reporting into `metrics` as connection `role`.
    async fn connect_as(
        url: &AmqpUrl,
        tls: &AmqpTls,
        name: &str,
        give_up_after: Duration,
        metrics: Metrics,
        role: Link,
        max_message_bytes: usize,
    ) -> Result<Self, Error> {
        let endpoints = Endpoints::with_tls(url, tls)?;
        let shown_url = endpoints.shown();
        let started = tokio::time::Instant::now();
        let mut delays = backoff().build();
        let mut attempts = 0u32;
        let (conn, node) = loop {
            attempts += 1;
            let node = endpoints.next();
            // What is left of the budget, shared among the nodes so that one silent node
            // cannot use it all.
            let left = give_up_after.saturating_sub(started.elapsed());
            let share = give_up_after / u32::try_from(endpoints.len()).unwrap_or(u32::MAX);
            let error = match open(node, name, left.min(share).max(MIN_ATTEMPT)).await {
                Ok(conn) => {
                    crate::observe::trace::connected(role, &node.host, node.port);
                    break (conn, node.shown.clone());
                }
                Err(e) => e,
            };
            let delay = round_delay(attempts, &endpoints, &mut delays);
            if started.elapsed() + delay > give_up_after {
                let (detail, source) = match error {
                    Attempt::Failed(e) => (String::new(), Some(e)),
                    Attempt::TimedOut(after) => (
                        format!(
                            "; the last attempt got no answer within {} ms",
                            after.as_millis()
                        ),
                        None,
                    ),
                };
                return Err(Error::Broker {
                    message: format!(
                        "could not connect to {shown_url} after {attempts} attempts over {:.1}s (AMQP_CONNECT_TIMEOUT_MS={}){detail}; is RabbitMQ running and is AMQP_URL right?",
                        started.elapsed().as_secs_f64(),
                        give_up_after.as_millis()
                    ),
                    source,
                });
            }
            warn!(url = %node.shown, attempt = attempts, error = %error, retry_in_ms = delay.as_millis() as u64, "broker not reachable yet");
            tokio::time::sleep(delay).await;
        };
        info!(url = %node, "connected to broker");
        let (current, _) = watch::channel(None);
        let broker = Broker {
            inner: Arc::new(Inner {
                user: endpoints.user().into(),
                endpoints,
                shown_url,
                node: std::sync::Mutex::new(node),
                name: name.to_owned(),
                time_limit: give_up_after,
                current,
                closed: CancellationToken::new(),
                url: url.clone(),
                tls: tls.clone(),
                consuming: tokio::sync::OnceCell::new(),
                metrics,
                role,
                max_message_bytes,
            }),
        };
        broker.install(conn);
        Ok(broker)
    }

    /// A handle to the broker of `config` that has no connection and never opens one:
    /// for unit tests of what runs while the broker is away.
    #[cfg(test)]
    pub(crate) fn offline(config: &Config) -> Self {
        let endpoints = Endpoints::with_tls(&config.amqp_url, &config.amqp_tls())
            .expect("the default AMQP_URL is valid");
        let (current, _) = watch::channel(None);
        Broker {
            inner: Arc::new(Inner {
                user: endpoints.user().into(),
                shown_url: endpoints.shown(),
                endpoints,
                node: std::sync::Mutex::new(String::new()),
                name: "offline".to_owned(),
                time_limit: config.connect_timeout,
                current,
                closed: CancellationToken::new(),
                url: config.amqp_url.clone(),
                tls: config.amqp_tls(),
                consuming: tokio::sync::OnceCell::new(),
                metrics: Metrics::new(),
                role: Link::Main,
                max_message_bytes: config.max_message_bytes,
            }),
        }
    }

    /// The broker URL (every node's, comma-separated, when there are several) with
    /// passwords hidden, for messages.
    pub fn shown_url(&self) -> &str {
        &self.inner.shown_url
    }

    /// The broker user this process logs in as (from the URL; `guest` when it names none).
    /// The broker refuses a message whose `user_id` is not this user, so it is the
    /// identity the process's messages carry and the one its peers can trust.
    pub fn user(&self) -> &str {
        self.inner.user.as_str()
    }

    /// The largest body a publisher on this connection sends (`MAX_MESSAGE_BYTES` when
    /// opened with [`Broker::connect_configured`], else its default).
    pub fn max_message_bytes(&self) -> usize {
        self.inner.max_message_bytes
    }

    /// [`Broker::user`] as the `user_id` property.
    pub(crate) fn user_id(&self) -> &lapin::types::ShortString {
        &self.inner.user
    }

    /// The node of the current connection (the last one while reconnecting), password
    /// hidden: which cluster node this process is on.
    pub fn node(&self) -> String {
        self.inner
            .node
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The metrics of the process that uses this connection.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Makes `conn` current and starts watching it for failure.
    fn install(&self, conn: Connection) {
        let events = conn.events_listener();
        self.inner.current.send_replace(Some(Arc::new(conn)));
        self.inner.metrics.broker_up(self.inner.role.label(), true);
        let this = self.clone();
        tokio::spawn(async move { this.supervise(events).await });
    }

    /// Waits until the current connection fails, then reconnects and installs the new one.
    async fn supervise(self, mut events: impl futures::Stream<Item = Event> + Unpin) {
        loop {
            tokio::select! {
                () = self.inner.closed.cancelled() => return,
                ev = events.next() => match ev {
                    Some(Event::Error(e)) if !self.is_connected() => {
                        warn!(url = %self.node(), error = %e, "broker connection lost; reconnecting");
                        break;
                    }
                    Some(_) => {}
                    None => {
                        if self.is_connected() {
                            // No more events but still connected should not happen; keep the
                            // status as the source of truth and poll it.
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            continue;
                        }
                        warn!(url = %self.node(), "broker connection closed; reconnecting");
                        break;
                    }
                }
            }
        }
        self.inner.current.send_replace(None);
        self.inner.metrics.broker_up(self.inner.role.label(), false);
        let mut delays = backoff().build();
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            // The endpoint after the lost one: with several nodes, another node first.
            let node = self.inner.endpoints.next();
            let attempt = tokio::select! {
                () = self.inner.closed.cancelled() => return,
                r = open(node, &self.inner.name, self.inner.time_limit) => r,
            };
            match attempt {
                Ok(conn) => {
                    info!(url = %node.shown, attempts, "reconnected to broker");
                    self.set_node(node);
                    crate::observe::trace::connected(self.inner.role, &node.host, node.port);
                    self.inner
                        .metrics
                        .broker_reconnected(self.inner.role.label());
                    self.install(conn);
                    return;
                }
                Err(e) => {
                    let delay = round_delay(attempts, &self.inner.endpoints, &mut delays);
                    warn!(url = %node.shown, attempt = attempts, error = %e, "reconnect failed");
                    tokio::select! {
                        () = self.inner.closed.cancelled() => return,
                        () = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    fn set_node(&self, node: &Endpoint) {
        node.shown.clone_into(
            &mut self
                .inner
                .node
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
    }

    /// Whether this connection, and the consume-only one when it was opened, are up now.
    pub fn all_connected(&self) -> bool {
        self.is_connected()
            && self
                .inner
                .consuming
                .get()
                .is_none_or(|sibling| sibling.is_connected())
    }

    /// Whether the connection is up right now.
    pub fn is_connected(&self) -> bool {
        self.inner
            .current
            .borrow()
            .as_ref()
            .is_some_and(|c| c.status().connected())
    }

    /// The current connection, waiting for a reconnect when there is none. `None` once the
    /// broker handle is closed.
    pub async fn connection(&self) -> Option<Arc<Connection>> {
        let mut rx = self.inner.current.subscribe();
        let closed = self.inner.closed.clone();
        tokio::select! {
            () = closed.cancelled() => None,
            r = rx.wait_for(|c| c.as_ref().is_some_and(|c| c.status().connected())) => {
                r.ok().and_then(|c| c.clone())
            }
        }
    }

    /// The current connection, if it is up right now (no waiting).
    pub fn connection_now(&self) -> Option<Arc<Connection>> {
        self.inner
            .current
            .borrow()
            .as_ref()
            .filter(|c| c.status().connected())
            .cloned()
    }

    /// The process's consume-only connection (opened on first use, with this one's URL, TLS
    /// files and time limits, and reconnected on its own): for consumers that never publish, so that
    /// a resource alarm, which blocks publishing connections, does not hold up their acks.
    /// Closed by [`Broker::close`].
    ///
    /// # Errors
    ///
    /// As [`Broker::connect`] when the connection cannot be opened within
    /// `AMQP_CONNECT_TIMEOUT_MS` (a later call tries again); [`Error::Broker`] once this
    /// handle is closed.
    pub async fn consuming(&self) -> Result<Broker, Error> {
        let closed = || Error::Broker {
            message: "the broker handle is closed".into(),
            source: None,
        };
        if self.is_closed() {
            return Err(closed());
        }
        let name = format!("{} (consume)", self.inner.name);
        let sibling = self
            .inner
            .consuming
            .get_or_try_init(|| {
                Broker::connect_as(
                    &self.inner.url,
                    &self.inner.tls,
                    &name,
                    self.inner.time_limit,
                    self.inner.metrics.clone(),
                    Link::Consume,
                    self.inner.max_message_bytes,
                )
            })
            .await?;
        if self.is_closed() {
            // Closed while it was opening: close it too, as `close` could not.
            sibling.close().await;
            return Err(closed());
        }
        Ok(sibling.clone())
    }

    /// Closes the connection and stops reconnecting. Channels still open are closed by the
    /// broker, which requeues their unacknowledged deliveries. Waits at most
    /// `AMQP_CONNECT_TIMEOUT_MS` for the broker's answer: a peer that went silent does not
    /// hold up a shutdown (the socket is dropped instead, which the broker treats alike).
    pub async fn close(&self) {
        self.inner.closed.cancel();
        if let Some(sibling) = self.inner.consuming.get() {
            Box::pin(sibling.close()).await;
        }
        let conn = self.inner.current.send_replace(None);
        self.inner.metrics.broker_up(self.inner.role.label(), false);
        if let Some(conn) = conn.filter(|c| c.status().connected()) {
            match tokio::time::timeout(
                self.inner.time_limit,
                conn.close(200, "shutting down".into()),
            )
            .await
            {
                Ok(Ok(())) => {}
                Ok(Err(e)) => warn!(error = %e, "closing the broker connection failed"),
                Err(_) => warn!(
                    timeout_ms = self.inner.time_limit.as_millis() as u64,
                    "the broker did not answer the close in time; dropping the connection"
                ),
            }
        }
    }

    /// Opens a connection of its own with this broker's settings, which nobody supervises:
    /// for a short exchange that may make the broker close the connection (the RPC worker's
    /// queue-shape probe), so that the process's own connection never takes the hit.
    pub(crate) async fn open_unsupervised(
        &self,
        purpose: &str,
    ) -> Result<Connection, lapin::Error> {
        let name = format!("{} ({purpose})", self.inner.name);
        // Any node of a cluster will do; one that is down is skipped.
        let mut last = None;
        for _ in 0..self.inner.endpoints.len() {
            match open(self.inner.endpoints.next(), &name, self.inner.time_limit).await {
                Ok(conn) => return Ok(conn),
                Err(e) => last = Some(e.into_lapin()),
            }
        }
        // The list is never empty, so `last` is set; the fallback only satisfies the types.
        Err(last.unwrap_or_else(|| lapin::ErrorKind::ChannelsLimitReached.into()))
    }

    /// Whether [`Broker::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.is_cancelled()
    }
}

/// Readiness follows both connections.
impl crate::observe::health::Connections for Broker {
    fn all_connected(&self) -> bool {
        Broker::all_connected(self)
    }
}

/// The pause after failed attempt number `attempts`: none while other nodes of this round
/// are left to try, the next backoff step once every node failed.
fn round_delay(
    attempts: u32,
    endpoints: &Endpoints,
    delays: &mut impl Iterator<Item = Duration>,
) -> Duration {
    if (attempts as usize).is_multiple_of(endpoints.len()) {
        delays.next().unwrap_or(Duration::from_secs(5))
    } else {
        Duration::ZERO
    }
}

/// The shortest time one connect attempt is given, even when the budget is nearly spent.
const MIN_ATTEMPT: Duration = Duration::from_millis(250);

/// Why one connect attempt failed.
#[derive(Debug)]
enum Attempt {
    /// The broker (or the network) said no.
    Failed(lapin::Error),
    /// Nothing answered within the attempt's time.
    TimedOut(Duration),
}

impl Attempt {
    /// As a lapin error (a time-out becomes an I/O `TimedOut`).
    fn into_lapin(self) -> lapin::Error {
        match self {
            Self::Failed(e) => e,
            Self::TimedOut(after) => std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {} ms", after.as_millis()),
            )
            .into(),
        }
    }
}

impl std::fmt::Display for Attempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Failed(e) => e.fmt(f),
            Self::TimedOut(after) => write!(f, "no answer within {} ms", after.as_millis()),
        }
    }
}

/// One connect attempt (TCP, TLS and the AMQP handshake) of at most `limit`.
async fn open(node: &Endpoint, name: &str, limit: Duration) -> Result<Connection, Attempt> {
    let props = ConnectionProperties::default().with_connection_name(name.into());
    let runtime = lapin::runtime::default_runtime().map_err(Attempt::Failed)?;
    // An `amqp://` URL ignores the TLS settings; an `amqps://` one never falls back to
    // plaintext: a failed handshake fails the attempt.
    let connect =
        Connection::connect_with_config(&node.url, props, (*node.tls_config).clone(), runtime);
    match tokio::time::timeout(limit, connect).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) if node.tls => Err(Attempt::Failed(super::tls::explain(e))),
        Ok(Err(e)) => Err(Attempt::Failed(e)),
        Err(_) => Err(Attempt::TimedOut(limit)),
    }
}
