//! Settings from the environment (and a `.env` file when present; the environment wins).
//!
//! Every variable has a default that works against a local RabbitMQ, so a service starts
//! with no configuration at all in development. A malformed value is reported as one line
//! that names the variable, says what is wrong and shows a good value.

pub(crate) mod amqp_url;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::Error;

/// Whether internals (error source chains) may reach callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Error replies carry the error's source chain in `trace`.
    Development,
    /// Error replies never carry internals.
    Production,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable, coloured when writing to a terminal.
    Pretty,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Which workers stop consuming while a registered database does not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PausePolicy {
    /// Keep consuming; handlers answer `Unavailable` (RPC) or retry and park (queues).
    Off,
    /// Work-queue workers pause (messages wait in their durable queues instead of burning
    /// through retries); RPC workers keep answering `Unavailable` quickly.
    Queue,
    /// Every worker pauses.
    All,
}

/// Which shape an RPC worker declares a missing route queue in (`RPC_QUEUE_DURABLE`).
///
/// An existing queue is consumed as it is, whoever declared it, whatever this says: a Rust
/// and a Python worker can then share a queue. See docs/protocol.md, "Queues and routing".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RpcQueueDurable {
    /// The seed's shape (transient); durable when the broker refuses transient
    /// non-exclusive queues (RabbitMQ 4.3 by default), with a warning.
    Auto,
    /// Always the seed's transient shape; a broker that refuses it stops the worker.
    False,
    /// Always durable (the messages stay transient).
    True,
}

/// Which broker users an event subscription admits events from (`EVENT_PUBLISHERS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventPublishers {
    /// The user named by the event's first segment (`example.item.created` from `example`),
    /// unless `ROUTE_ALLOW` lists others for the subscribed name.
    Owner,
    /// Every user: for deployments where all services share one broker user, which then
    /// cannot tell one publisher from another anyway.
    Any,
}

/// The type of a work-queue route's queue (and of its parking queue).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueueType {
    /// A classic durable queue without arguments: exactly what the Python seed declares,
    /// and the right choice on a single broker node.
    #[default]
    Classic,
    /// A quorum queue: replicated over the cluster's nodes (Raft), survives the loss of a
    /// minority of them. The broker's own delivery limit is set above the kit's retry count
    /// as a safety net, and what it catches is dead-lettered (at least once) to the route's
    /// parking queue.
    Quorum,
}

impl QueueType {
    /// The value `QUEUE_TYPE` takes for this type.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Classic => "classic",
            Self::Quorum => "quorum",
        }
    }
}

/// What a route without an allow list does with a message that has no `user_id`
/// (`RPC_ANONYMOUS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Anonymous {
    /// Admit it: the default, so Python seed peers (which send no `user_id`) keep working
    /// in a mixed fleet.
    #[default]
    Allow,
    /// Refuse it with `Forbidden`.
    Deny,
}

/// The callers a route admits: broker user names, where `*` matches any run of characters
/// (`billing-*`). An empty list admits nobody. A list never admits a message without
/// `user_id`: anyone can leave it out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    patterns: Vec<String>,
}

impl AllowList {
    /// A list of caller patterns.
    pub fn new<I, T>(callers: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        Self {
            patterns: callers.into_iter().map(Into::into).collect(),
        }
    }

    /// The patterns, as given.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }
}

/// The kit's settings. Build it with [`Config::from_env`]; tests may start from
/// [`Config::default`] and change fields. Its `Debug` shows `amqp_url` with passwords
/// hidden.
#[derive(Clone)]
#[non_exhaustive]
pub struct Config {
    /// `AMQP_URL`: the broker to connect to, or a comma-separated list of the nodes of one
    /// RabbitMQ cluster (tried in a shuffled order; a reconnect moves on to the next node).
    /// Treat it as a secret: it may hold passwords.
    pub amqp_url: String,
    /// `AMQP_TLS_CA_FILE`: PEM file of the CA that signed the broker's certificate, for
    /// `amqps://` URLs (trusted besides the system's store).
    pub amqp_tls_ca_file: Option<PathBuf>,
    /// `AMQP_TLS_CERT_FILE`: PEM client certificate presented to an `amqps://` broker that
    /// asks for one; needs `amqp_tls_key_file`.
    pub amqp_tls_cert_file: Option<PathBuf>,
    /// `AMQP_TLS_KEY_FILE`: PEM private key of `amqp_tls_cert_file` (a path; the key is
    /// read at connect time).
    pub amqp_tls_key_file: Option<PathBuf>,
    /// `AMQP_PREFETCH`: the broker delivers at most this many unacknowledged messages to
    /// each of a worker's routes (`basic.qos` per consumer: the broker-side buffer, and so
    /// the most handlers one route runs at once). Kept small: what is buffered but not
    /// started is given back at a stop.
    pub prefetch: u16,
    /// `WORKER_CONCURRENCY`: the most handlers a worker runs at once across all its
    /// routes; deliveries beyond that wait in the routes' buffers (`prefetch`).
    pub worker_concurrency: u16,
    /// `AMQP_CONNECT_TIMEOUT_MS`: how long the first connection is retried before giving up.
    pub connect_timeout: Duration,
    /// `RPC_TIMEOUT_MS`: default timeout of an [`RpcClient`](crate::rpc::RpcClient) call.
    pub rpc_timeout: Duration,
    /// `DRAIN_TIMEOUT_MS`: how long shutdown waits for in-flight handlers; those still
    /// running then are aborted (their messages are redelivered).
    pub drain_timeout: Duration,
    /// `HANDLER_TIMEOUT_MS`: the longest a handler may run: every work-queue message, and
    /// every RPC request that carries no deadline of its own. A handler that overruns is
    /// stopped and answered (RPC) or counted as a failed attempt (work queue) with a
    /// `Timeout` error.
    pub handler_timeout: Duration,
    /// `BROKER_CONSUMER_TIMEOUT_MS`: the broker's delivery acknowledgement timeout
    /// (RabbitMQ's node setting `consumer_timeout`, 30 minutes unless configured; zero when
    /// the broker has none). No AMQP method or management endpoint reports it, so the
    /// deployment states it, and a worker warns at start when its handlers may hold a
    /// delivery that long (the broker would close the channel and redeliver).
    pub broker_consumer_timeout: Duration,
    /// `QUEUE_MAX_RETRIES`: how often a failed work-queue message is retried before parking.
    pub max_retries: u32,
    /// `QUEUE_RETRY_DELAY_MS`: how long a failed work-queue message waits in the broker
    /// before its first retry (each next wait doubles, up to `retry_max_delay`); 0 retries
    /// at once.
    pub retry_delay: Duration,
    /// `QUEUE_RETRY_MAX_DELAY_MS`: the longest wait before a retry.
    pub retry_max_delay: Duration,
    /// `RPC_MAX_REDELIVERIES`: how often an RPC request may come back `redelivered` (its
    /// earlier attempt died with its channel, connection or process) before it is answered
    /// with a `Redelivered` error and dead-lettered to `rpc.dlx` instead of run again.
    /// Default 3: one or two redeliveries are what a broker restart or a network blip costs
    /// an innocent request; a third in a row is a request that kills what handles it.
    pub rpc_max_redeliveries: u32,
    /// `QUEUE_TYPE`: `classic` (default) or `quorum`, for the work-queue routes that do not
    /// choose their own ([`QueueWorker::queue_type`](crate::queue::QueueWorker)). RPC
    /// request queues are always classic.
    pub queue_type: QueueType,
    /// `MAX_MESSAGE_BYTES`: largest message body accepted off the wire.
    pub max_message_bytes: usize,
    /// `MAX_DECODED_BYTES`: largest body after gunzip (guards against gzip bombs).
    pub max_decoded_bytes: usize,
    /// `DECODE_BUDGET_BYTES`: the memory the process lets the bodies it has decoded take at
    /// once, each priced before it is decoded at its text twice and 64 bytes a JSON value
    /// (more for arrays and objects: what it costs parsed as a `serde_json::Value`). A body that does not fit waits for
    /// the others to be done (until its deadline or the handler's limit), one priced above
    /// the whole budget is refused; bodies priced at most 64 KiB are never held back.
    pub decode_budget_bytes: usize,
    /// `MODE`: `development` or `production`.
    pub mode: Mode,
    /// `LOG_FORMAT`: `pretty` or `json`.
    pub log_format: LogFormat,
    /// `PAUSE_ON_DB_OUTAGE`: `off`, `queue` or `all`.
    pub pause_on_db_outage: PausePolicy,
    /// `DB_HEALTH_INTERVAL_MS`: how often the Runner checks its databases while any worker
    /// may pause.
    pub db_health_interval: Duration,
    /// `DEADLINE_MAX_SKEW_MS`: how far a request's `x-deadline` may lie beyond its
    /// `x-timeout-ms` before the caller's clock is taken to be off and the relative budget
    /// alone counts.
    pub deadline_max_skew: Duration,
    /// `RPC_QUEUE_DURABLE`: `auto`, `false` or `true`.
    pub rpc_queue_durable: RpcQueueDurable,
    /// `RPC_REPLY_TO`: comma-separated patterns (`*` matches any run of characters) of
    /// queues that replies may go to besides the server-named `amq.gen-*` and direct
    /// reply-to `amq.rabbitmq.reply-to*`, for callers that name their reply queues. A
    /// queue this process serves is never replied to.
    pub rpc_reply_to: Vec<String>,
    /// `RPC_ANONYMOUS`: `allow` (default) or `deny` messages without `user_id` on the RPC
    /// and work-queue routes that have no allow list (a route with a list never admits
    /// them).
    pub rpc_anonymous: Anonymous,
    /// `EVENT_PUBLISHERS`: `owner` (default) or `any`.
    pub event_publishers: EventPublishers,
    /// `ROUTE_ALLOW`: per-deployment allow lists, each replacing the list its route was
    /// registered with (`route=caller,caller;route=caller`, `*` matching any run of
    /// characters; `route=` admits nobody).
    pub route_allow: Vec<(String, AllowList)>,
    /// `METRICS_ADDR`: where the process serves `/metrics`, `/livez` and `/readyz` over
    /// HTTP (e.g. `0.0.0.0:9090`; port `0` picks a free one). `None` (unset or empty):
    /// no listener.
    pub metrics_addr: Option<std::net::SocketAddr>,
}

/// Written by hand: `amqp_url` may hold passwords, and a derived `Debug` would print them
/// wherever a `Config` (or a `Setup` holding one) is logged.
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown: Vec<String> = self.amqp_url.split(',').map(crate::redact::url).collect();
        f.debug_struct("Config")
            .field("amqp_url", &shown.join(","))
            .field("amqp_tls_ca_file", &self.amqp_tls_ca_file)
            .field("amqp_tls_cert_file", &self.amqp_tls_cert_file)
            .field("amqp_tls_key_file", &self.amqp_tls_key_file)
            .field("prefetch", &self.prefetch)
            .field("worker_concurrency", &self.worker_concurrency)
            .field("connect_timeout", &self.connect_timeout)
            .field("rpc_timeout", &self.rpc_timeout)
            .field("drain_timeout", &self.drain_timeout)
            .field("broker_consumer_timeout", &self.broker_consumer_timeout)
            .field("max_retries", &self.max_retries)
            .field("retry_delay", &self.retry_delay)
            .field("retry_max_delay", &self.retry_max_delay)
            .field("rpc_max_redeliveries", &self.rpc_max_redeliveries)
            .field("queue_type", &self.queue_type)
            .field("max_message_bytes", &self.max_message_bytes)
            .field("max_decoded_bytes", &self.max_decoded_bytes)
            .field("decode_budget_bytes", &self.decode_budget_bytes)
            .field("mode", &self.mode)
            .field("log_format", &self.log_format)
            .field("pause_on_db_outage", &self.pause_on_db_outage)
            .field("db_health_interval", &self.db_health_interval)
            .field("deadline_max_skew", &self.deadline_max_skew)
            .field("rpc_queue_durable", &self.rpc_queue_durable)
            .field("rpc_reply_to", &self.rpc_reply_to)
            .field("rpc_anonymous", &self.rpc_anonymous)
            .field("event_publishers", &self.event_publishers)
            .field("route_allow", &self.route_allow)
            .field("metrics_addr", &self.metrics_addr)
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            amqp_url: DEFAULT_AMQP_URL.to_owned(),
            amqp_tls_ca_file: None,
            amqp_tls_cert_file: None,
            amqp_tls_key_file: None,
            prefetch: 16,
            worker_concurrency: 64,
            connect_timeout: Duration::from_secs(30),
            rpc_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(30),
            handler_timeout: Duration::from_secs(60),
            // RabbitMQ's own default (since 3.8.15).
            broker_consumer_timeout: Duration::from_secs(30 * 60),
            max_retries: 3,
            // Long enough that three retries (5 + 10 + 20 s) outlast a dependency's restart
            // or a database failover, short enough that one failure delays little (README).
            retry_delay: Duration::from_secs(5),
            retry_max_delay: Duration::from_secs(300),
            rpc_max_redeliveries: 3,
            queue_type: QueueType::Classic,
            max_message_bytes: 8 * 1024 * 1024,
            max_decoded_bytes: 8 * 1024 * 1024,
            // Half the 256 MiB memory limit of deploy/ (README, "Sizing the decode budget").
            decode_budget_bytes: 128 * 1024 * 1024,
            mode: Mode::Production,
            log_format: LogFormat::Pretty,
            pause_on_db_outage: PausePolicy::Queue,
            db_health_interval: Duration::from_secs(1),
            deadline_max_skew: crate::wire::deadline::DEFAULT_MAX_SKEW,
            rpc_queue_durable: RpcQueueDurable::Auto,
            rpc_reply_to: Vec::new(),
            rpc_anonymous: Anonymous::Allow,
            event_publishers: EventPublishers::Owner,
            route_allow: Vec::new(),
            metrics_addr: None,
        }
    }
}

/// The broker URL used when `AMQP_URL` is not set: the local RabbitMQ's guest account.
pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// The variables as read, numbers parsed; converted into [`Config`] with per-variable checks.
#[derive(Default)]
struct Raw {
    amqp_url: Option<String>,
    amqp_tls_ca_file: Option<String>,
    amqp_tls_cert_file: Option<String>,
    amqp_tls_key_file: Option<String>,
    amqp_prefetch: Option<u16>,
    worker_concurrency: Option<u16>,
    amqp_connect_timeout_ms: Option<u64>,
    rpc_timeout_ms: Option<u64>,
    drain_timeout_ms: Option<u64>,
    handler_timeout_ms: Option<u64>,
    broker_consumer_timeout_ms: Option<u64>,
    queue_max_retries: Option<u32>,
    queue_retry_delay_ms: Option<u64>,
    queue_retry_max_delay_ms: Option<u64>,
    rpc_max_redeliveries: Option<u32>,
    queue_type: Option<String>,
    max_message_bytes: Option<usize>,
    max_decoded_bytes: Option<usize>,
    decode_budget_bytes: Option<usize>,
    mode: Option<String>,
    log_format: Option<String>,
    pause_on_db_outage: Option<String>,
    db_health_interval_ms: Option<u64>,
    deadline_max_skew_ms: Option<u64>,
    rpc_queue_durable: Option<String>,
    rpc_reply_to: Option<String>,
    rpc_anonymous: Option<String>,
    event_publishers: Option<String>,
    route_allow: Option<String>,
    metrics_addr: Option<String>,
}

impl Raw {
    /// Reads each variable by its name; a number that does not parse is reported naming the
    /// variable, its value and a good one.
    fn read(vars: &HashMap<String, String>) -> Result<Self, Error> {
        let text = |name: &str| vars.get(name).cloned();
        Ok(Self {
            amqp_url: text("AMQP_URL"),
            amqp_tls_ca_file: text("AMQP_TLS_CA_FILE"),
            amqp_tls_cert_file: text("AMQP_TLS_CERT_FILE"),
            amqp_tls_key_file: text("AMQP_TLS_KEY_FILE"),
            amqp_prefetch: number(vars, "AMQP_PREFETCH")?,
            worker_concurrency: number(vars, "WORKER_CONCURRENCY")?,
            amqp_connect_timeout_ms: number(vars, "AMQP_CONNECT_TIMEOUT_MS")?,
            rpc_timeout_ms: number(vars, "RPC_TIMEOUT_MS")?,
            drain_timeout_ms: number(vars, "DRAIN_TIMEOUT_MS")?,
            handler_timeout_ms: number(vars, "HANDLER_TIMEOUT_MS")?,
            broker_consumer_timeout_ms: number(vars, "BROKER_CONSUMER_TIMEOUT_MS")?,
            queue_max_retries: number(vars, "QUEUE_MAX_RETRIES")?,
            queue_retry_delay_ms: number(vars, "QUEUE_RETRY_DELAY_MS")?,
            queue_retry_max_delay_ms: number(vars, "QUEUE_RETRY_MAX_DELAY_MS")?,
            rpc_max_redeliveries: number(vars, "RPC_MAX_REDELIVERIES")?,
            queue_type: text("QUEUE_TYPE"),
            max_message_bytes: number(vars, "MAX_MESSAGE_BYTES")?,
            max_decoded_bytes: number(vars, "MAX_DECODED_BYTES")?,
            decode_budget_bytes: number(vars, "DECODE_BUDGET_BYTES")?,
            mode: text("MODE"),
            log_format: text("LOG_FORMAT"),
            pause_on_db_outage: text("PAUSE_ON_DB_OUTAGE"),
            db_health_interval_ms: number(vars, "DB_HEALTH_INTERVAL_MS")?,
            deadline_max_skew_ms: number(vars, "DEADLINE_MAX_SKEW_MS")?,
            rpc_queue_durable: text("RPC_QUEUE_DURABLE"),
            rpc_reply_to: text("RPC_REPLY_TO"),
            rpc_anonymous: text("RPC_ANONYMOUS"),
            event_publishers: text("EVENT_PUBLISHERS"),
            route_allow: text("ROUTE_ALLOW"),
            metrics_addr: text("METRICS_ADDR"),
        })
    }
}

/// Variable `name` as a whole number of type `T` (its range included: `AMQP_PREFETCH=70000`
/// does not fit a `u16`).
fn number<T: std::str::FromStr>(
    vars: &HashMap<String, String>,
    name: &str,
) -> Result<Option<T>, Error> {
    let Some(value) = vars.get(name) else {
        return Ok(None);
    };
    value.parse().map(Some).map_err(|_| {
        let problem = match name {
            "AMQP_PREFETCH" | "WORKER_CONCURRENCY" => "expected a whole number from 1 to 65535",
            "QUEUE_MAX_RETRIES" => "expected a whole number (0 parks at the first failure)",
            "RPC_MAX_REDELIVERIES" => {
                "expected a whole number (0 refuses a request at its first redelivery)"
            }
            n if n.ends_with("_MS") => "expected a whole number of milliseconds",
            n if n.ends_with("_BYTES") => "expected a whole number of bytes",
            _ => "malformed value",
        };
        bad(name, value, problem)
    })
}

/// A good value for each variable, quoted in error messages.
const EXAMPLES: &[(&str, &str)] = &[
    ("AMQP_URL", DEFAULT_AMQP_URL),
    ("AMQP_TLS_CA_FILE", "/etc/rabbitmq/ca.pem"),
    ("AMQP_TLS_CERT_FILE", "/etc/service/client.pem"),
    ("AMQP_TLS_KEY_FILE", "/etc/service/client.key"),
    ("AMQP_PREFETCH", "16"),
    ("WORKER_CONCURRENCY", "64"),
    ("AMQP_CONNECT_TIMEOUT_MS", "30000"),
    ("RPC_TIMEOUT_MS", "30000"),
    ("DRAIN_TIMEOUT_MS", "30000"),
    ("HANDLER_TIMEOUT_MS", "60000"),
    ("BROKER_CONSUMER_TIMEOUT_MS", "1800000"),
    ("QUEUE_MAX_RETRIES", "3"),
    ("QUEUE_RETRY_DELAY_MS", "5000"),
    ("QUEUE_RETRY_MAX_DELAY_MS", "300000"),
    ("RPC_MAX_REDELIVERIES", "3"),
    ("QUEUE_TYPE", "quorum"),
    ("MAX_MESSAGE_BYTES", "8388608"),
    ("MAX_DECODED_BYTES", "8388608"),
    ("DECODE_BUDGET_BYTES", "134217728"),
    ("MODE", "production"),
    ("LOG_FORMAT", "json"),
    ("PAUSE_ON_DB_OUTAGE", "queue"),
    ("DB_HEALTH_INTERVAL_MS", "1000"),
    ("DEADLINE_MAX_SKEW_MS", "5000"),
    ("RPC_QUEUE_DURABLE", "auto"),
    ("RPC_REPLY_TO", "replies.*,*.reply"),
    ("RPC_ANONYMOUS", "deny"),
    ("EVENT_PUBLISHERS", "owner"),
    (
        "ROUTE_ALLOW",
        "example.items.delete=ops;example.items.create=greeter,billing-*",
    ),
    ("METRICS_ADDR", "0.0.0.0:9090"),
];

impl Config {
    /// Reads the settings from the process environment, after loading `.env` from the
    /// current directory when there is one (variables already set win).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the first malformed variable, e.g.
    /// `AMQP_PREFETCH="lots": expected a whole number from 1 to 65535, e.g. AMQP_PREFETCH=16`.
    pub fn from_env() -> Result<Self, Error> {
        load_dotenv()?;
        Self::from_vars(std::env::vars())
    }

    /// Reads the settings from the given `(name, value)` pairs (no `.env`, no process
    /// environment): the testable core of [`Config::from_env`].
    ///
    /// # Errors
    ///
    /// As [`Config::from_env`].
    #[expect(
        clippy::too_many_lines,
        reason = "one step per variable (about twenty, each with its own check); a table-driven reader is to replace it"
    )]
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Result<Self, Error> {
        let vars: HashMap<String, String> = vars
            .into_iter()
            .filter(|(k, _)| EXAMPLES.iter().any(|(name, _)| name == k))
            .collect();
        let raw = Raw::read(&vars)?;
        let defaults = Config::default();
        let positive_ms = |name: &str, v: Option<u64>, default: Duration| match v {
            None => Ok(default),
            Some(0) => Err(bad(name, "0", "expected a positive number of milliseconds")),
            Some(ms) => Ok(Duration::from_millis(ms)),
        };
        let positive_bytes = |name: &str, v: Option<usize>, default: usize| match v {
            None => Ok(default),
            Some(0) => Err(bad(name, "0", "expected a positive number of bytes")),
            Some(n) => Ok(n),
        };
        let amqp_url = match raw.amqp_url {
            None => defaults.amqp_url,
            Some(url) => {
                check_amqp_url(&url)?;
                url
            }
        };
        let path = |name: &str, v: Option<String>| match v {
            None => Ok(None),
            Some(v) if v.trim().is_empty() => Err(bad(name, &v, "expected a file path")),
            Some(v) => Ok(Some(PathBuf::from(v))),
        };
        let amqp_tls_ca_file = path("AMQP_TLS_CA_FILE", raw.amqp_tls_ca_file)?;
        let amqp_tls_cert_file = path("AMQP_TLS_CERT_FILE", raw.amqp_tls_cert_file)?;
        let amqp_tls_key_file = path("AMQP_TLS_KEY_FILE", raw.amqp_tls_key_file)?;
        check_tls_files(
            &amqp_url,
            [
                ("AMQP_TLS_CA_FILE", &amqp_tls_ca_file),
                ("AMQP_TLS_CERT_FILE", &amqp_tls_cert_file),
                ("AMQP_TLS_KEY_FILE", &amqp_tls_key_file),
            ],
        )?;
        let (retry_delay, retry_max_delay) = retry_delays(
            raw.queue_retry_delay_ms,
            raw.queue_retry_max_delay_ms,
            (defaults.retry_delay, defaults.retry_max_delay),
        )?;
        Ok(Config {
            amqp_url,
            amqp_tls_ca_file,
            amqp_tls_cert_file,
            amqp_tls_key_file,
            prefetch: match raw.amqp_prefetch {
                None => defaults.prefetch,
                Some(0) => {
                    return Err(bad(
                        "AMQP_PREFETCH",
                        "0",
                        "expected a whole number from 1 to 65535 (0 would mean unbounded)",
                    ));
                }
                Some(n) => n,
            },
            worker_concurrency: match raw.worker_concurrency {
                None => defaults.worker_concurrency,
                Some(0) => {
                    return Err(bad(
                        "WORKER_CONCURRENCY",
                        "0",
                        "expected a whole number from 1 to 65535 (0 would run nothing)",
                    ));
                }
                Some(n) => n,
            },
            connect_timeout: positive_ms(
                "AMQP_CONNECT_TIMEOUT_MS",
                raw.amqp_connect_timeout_ms,
                defaults.connect_timeout,
            )?,
            rpc_timeout: positive_ms("RPC_TIMEOUT_MS", raw.rpc_timeout_ms, defaults.rpc_timeout)?,
            drain_timeout: positive_ms(
                "DRAIN_TIMEOUT_MS",
                raw.drain_timeout_ms,
                defaults.drain_timeout,
            )?,
            handler_timeout: positive_ms(
                "HANDLER_TIMEOUT_MS",
                raw.handler_timeout_ms,
                defaults.handler_timeout,
            )?,
            broker_consumer_timeout: raw
                .broker_consumer_timeout_ms
                .map_or(defaults.broker_consumer_timeout, Duration::from_millis),
            max_retries: raw.queue_max_retries.unwrap_or(defaults.max_retries),
            retry_delay,
            retry_max_delay,
            rpc_max_redeliveries: raw
                .rpc_max_redeliveries
                .unwrap_or(defaults.rpc_max_redeliveries),
            queue_type: match raw
                .queue_type
                .as_deref()
                .map(str::to_ascii_lowercase)
                .as_deref()
            {
                None => defaults.queue_type,
                Some("classic") => QueueType::Classic,
                Some("quorum") => QueueType::Quorum,
                Some(_) => {
                    return Err(bad(
                        "QUEUE_TYPE",
                        raw.queue_type.as_deref().unwrap_or_default(),
                        "expected classic or quorum",
                    ));
                }
            },
            max_message_bytes: positive_bytes(
                "MAX_MESSAGE_BYTES",
                raw.max_message_bytes,
                defaults.max_message_bytes,
            )?,
            max_decoded_bytes: positive_bytes(
                "MAX_DECODED_BYTES",
                raw.max_decoded_bytes,
                defaults.max_decoded_bytes,
            )?,
            decode_budget_bytes: positive_bytes(
                "DECODE_BUDGET_BYTES",
                raw.decode_budget_bytes,
                defaults.decode_budget_bytes,
            )?,
            mode: match raw.mode.as_deref().map(str::to_ascii_lowercase).as_deref() {
                None => defaults.mode,
                Some("development" | "dev") => Mode::Development,
                Some("production" | "prod") => Mode::Production,
                Some(_) => {
                    return Err(bad(
                        "MODE",
                        raw.mode.as_deref().unwrap_or_default(),
                        "expected development or production",
                    ));
                }
            },
            log_format: match raw
                .log_format
                .as_deref()
                .map(str::to_ascii_lowercase)
                .as_deref()
            {
                None => defaults.log_format,
                Some("pretty" | "text") => LogFormat::Pretty,
                Some("json") => LogFormat::Json,
                Some(_) => {
                    return Err(bad(
                        "LOG_FORMAT",
                        raw.log_format.as_deref().unwrap_or_default(),
                        "expected pretty or json",
                    ));
                }
            },
            pause_on_db_outage: match raw
                .pause_on_db_outage
                .as_deref()
                .map(str::to_ascii_lowercase)
                .as_deref()
            {
                None => defaults.pause_on_db_outage,
                Some("off" | "none" | "false") => PausePolicy::Off,
                Some("queue" | "queues") => PausePolicy::Queue,
                Some("all") => PausePolicy::All,
                Some(_) => {
                    return Err(bad(
                        "PAUSE_ON_DB_OUTAGE",
                        raw.pause_on_db_outage.as_deref().unwrap_or_default(),
                        "expected off, queue or all",
                    ));
                }
            },
            db_health_interval: positive_ms(
                "DB_HEALTH_INTERVAL_MS",
                raw.db_health_interval_ms,
                defaults.db_health_interval,
            )?,
            deadline_max_skew: raw
                .deadline_max_skew_ms
                .map_or(defaults.deadline_max_skew, Duration::from_millis),
            rpc_queue_durable: match raw
                .rpc_queue_durable
                .as_deref()
                .map(str::to_ascii_lowercase)
                .as_deref()
            {
                None => defaults.rpc_queue_durable,
                Some("auto") => RpcQueueDurable::Auto,
                Some("false" | "no" | "0") => RpcQueueDurable::False,
                Some("true" | "yes" | "1") => RpcQueueDurable::True,
                Some(_) => {
                    return Err(bad(
                        "RPC_QUEUE_DURABLE",
                        raw.rpc_queue_durable.as_deref().unwrap_or_default(),
                        "expected auto, false or true",
                    ));
                }
            },
            rpc_reply_to: match raw.rpc_reply_to {
                None => defaults.rpc_reply_to,
                Some(v) => reply_to_patterns(&v)?,
            },
            rpc_anonymous: match raw
                .rpc_anonymous
                .as_deref()
                .map(str::to_ascii_lowercase)
                .as_deref()
            {
                None => defaults.rpc_anonymous,
                Some("allow") => Anonymous::Allow,
                Some("deny") => Anonymous::Deny,
                Some(_) => {
                    return Err(bad(
                        "RPC_ANONYMOUS",
                        raw.rpc_anonymous.as_deref().unwrap_or_default(),
                        "expected allow or deny",
                    ));
                }
            },
            event_publishers: match raw
                .event_publishers
                .as_deref()
                .map(str::to_ascii_lowercase)
                .as_deref()
            {
                None => defaults.event_publishers,
                Some("owner") => EventPublishers::Owner,
                Some("any") => EventPublishers::Any,
                Some(_) => {
                    return Err(bad(
                        "EVENT_PUBLISHERS",
                        raw.event_publishers.as_deref().unwrap_or_default(),
                        "expected owner or any",
                    ));
                }
            },
            route_allow: match raw.route_allow {
                None => defaults.route_allow,
                Some(v) => route_allow(&v)?,
            },
            metrics_addr: match raw.metrics_addr.as_deref().map(str::trim) {
                None | Some("") => None,
                Some(v) => Some(v.parse().map_err(|_| {
                    bad(
                        "METRICS_ADDR",
                        v,
                        "expected an IP address and port such as 0.0.0.0:9090 or 127.0.0.1:0",
                    )
                })?),
            },
        })
    }

    /// Whether error replies may carry the error's source chain.
    pub fn is_development(&self) -> bool {
        self.mode == Mode::Development
    }

    /// The body size caps (`MAX_MESSAGE_BYTES`, `MAX_DECODED_BYTES`) every decoder of this
    /// process applies.
    pub fn limits(&self) -> crate::wire::envelope::Limits {
        crate::wire::envelope::Limits {
            max_message_bytes: self.max_message_bytes,
            max_decoded_bytes: self.max_decoded_bytes,
        }
    }
}

/// Loads `.env` when present. A missing file is fine; an unreadable or malformed one is not
/// silently ignored, because the settings in it would be.
fn load_dotenv() -> Result<(), Error> {
    match dotenvy::dotenv() {
        Ok(_) => Ok(()),
        Err(e) if e.not_found() => Ok(()),
        Err(e) => Err(Error::Config(format!(
            ".env: {e} (fix the file or remove it; lines look like AMQP_PREFETCH=16)"
        ))),
    }
}

fn check_amqp_url(url: &str) -> Result<(), Error> {
    use self::amqp_url::{ListError, parse};
    match parse(url) {
        Ok(_) => Ok(()),
        // One URL: the message the single-node user always got.
        Err(ListError::Malformed { shown, problem, .. }) if !url.contains(',') => Err(bad(
            "AMQP_URL",
            &shown,
            &format!("not an AMQP URL ({problem})"),
        )),
        Err(e) => {
            let shown: Vec<String> = url.split(',').map(crate::redact::url).collect();
            Err(bad(
                "AMQP_URL",
                &shown.join(","),
                &format!("{e}; a list is comma-separated AMQP URLs, one per cluster node"),
            ))
        }
    }
}

/// TLS files with no `amqps://` URL to use them would be ignored, and whoever set them
/// would believe the connection protected.
fn check_tls_files(url: &str, files: [(&str, &Option<PathBuf>); 3]) -> Result<(), Error> {
    let any_tls = url
        .split(',')
        .any(|u| u.trim().to_ascii_lowercase().starts_with("amqps://"));
    match files.iter().find(|(_, f)| f.is_some()) {
        Some((name, Some(file))) if !any_tls => Err(bad(
            name,
            &file.display().to_string(),
            "is set but AMQP_URL has no amqps:// URL, so the connection would not use TLS at all; use amqps:// (or unset it)",
        )),
        _ => Ok(()),
    }
}

/// `RPC_REPLY_TO`: comma-separated queue name patterns; empty means none.
/// The largest TTL RabbitMQ accepts, in milliseconds (2³²−1): a larger one is refused.
pub(crate) const MAX_TTL_MS: u64 = 4_294_967_295;

/// `QUEUE_RETRY_DELAY_MS` and `QUEUE_RETRY_MAX_DELAY_MS`: the longest wait may not be
/// below the first, nor above the largest TTL the broker accepts. An unset longest wait
/// grows to a first wait set above its default.
fn retry_delays(
    first_ms: Option<u64>,
    max_ms: Option<u64>,
    (default_first, default_max): (Duration, Duration),
) -> Result<(Duration, Duration), Error> {
    let first = first_ms.map_or(default_first, Duration::from_millis);
    let max = match max_ms {
        Some(ms) => Duration::from_millis(ms),
        None => default_max.max(first),
    };
    if max > Duration::from_millis(MAX_TTL_MS) {
        return Err(bad(
            "QUEUE_RETRY_MAX_DELAY_MS",
            &max.as_millis().to_string(),
            "expected at most 4294967295 milliseconds (the broker's largest TTL)",
        ));
    }
    if first > max {
        let name = if max_ms.is_some() {
            "QUEUE_RETRY_MAX_DELAY_MS"
        } else {
            "QUEUE_RETRY_DELAY_MS"
        };
        let value = if max_ms.is_some() { max } else { first };
        return Err(bad(
            name,
            &value.as_millis().to_string(),
            &format!(
                "the longest retry delay ({} ms) must be at least the first (QUEUE_RETRY_DELAY_MS={} ms)",
                max.as_millis(),
                first.as_millis()
            ),
        ));
    }
    Ok((first, max))
}

fn reply_to_patterns(value: &str) -> Result<Vec<String>, Error> {
    let mut patterns = Vec::new();
    for p in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if p.len() > 255 || p.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad(
                "RPC_REPLY_TO",
                value,
                "expected comma-separated queue name patterns (at most 255 bytes each, no spaces; * matches any run of characters)",
            ));
        }
        if p.chars().all(|c| c == '*') {
            return Err(bad(
                "RPC_REPLY_TO",
                value,
                "a pattern of only * would let any caller direct replies into any queue",
            ));
        }
        patterns.push(p.to_owned());
    }
    Ok(patterns)
}

/// `ROUTE_ALLOW`: `route=caller,caller;route=caller`; spaces around names are ignored,
/// `route=` admits nobody, and a route may be named once.
fn route_allow(value: &str) -> Result<Vec<(String, AllowList)>, Error> {
    let mut lists: Vec<(String, AllowList)> = Vec::new();
    for entry in value.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        let Some((route, callers)) = entry.split_once('=') else {
            return Err(bad(
                "ROUTE_ALLOW",
                value,
                &format!(
                    "entry {entry:?} has no `=`; entries are route=caller,caller separated by `;`"
                ),
            ));
        };
        let route = route.trim();
        if route.is_empty() || route.len() > 255 {
            return Err(bad(
                "ROUTE_ALLOW",
                value,
                &format!(
                    "entry {entry:?} names no route (a route is a queue name of 1 to 255 bytes)"
                ),
            ));
        }
        if lists.iter().any(|(r, _)| r == route) {
            return Err(bad(
                "ROUTE_ALLOW",
                value,
                &format!("route {route} is named twice"),
            ));
        }
        let callers = callers.split(',').map(str::trim).filter(|c| !c.is_empty());
        lists.push((route.to_owned(), AllowList::new(callers)));
    }
    Ok(lists)
}

fn example(name: &str) -> &'static str {
    EXAMPLES
        .iter()
        .find(|(n, _)| *n == name)
        .map_or("", |(_, e)| e)
}

fn bad(name: &str, value: &str, problem: &str) -> Error {
    setting_error(name, value, problem, example(name))
}

/// The one shape of a malformed-setting error, for every group of settings: the variable,
/// its value, what is wrong, and a good value.
pub(crate) fn setting_error(name: &str, value: &str, problem: &str, example: &str) -> Error {
    Error::Config(format!(
        "{name}={value:?}: {problem}, e.g. {name}={example}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn message(pairs: &[(&str, &str)]) -> String {
        Config::from_vars(vars(pairs)).unwrap_err().to_string()
    }

    #[test]
    fn retry_delays() {
        let c = Config::from_vars(vars(&[])).unwrap();
        assert_eq!(
            (c.retry_delay, c.retry_max_delay),
            (Duration::from_secs(5), Duration::from_secs(300))
        );
        let c = Config::from_vars(vars(&[
            ("QUEUE_RETRY_DELAY_MS", "200"),
            ("QUEUE_RETRY_MAX_DELAY_MS", "800"),
        ]))
        .unwrap();
        assert_eq!(
            (c.retry_delay, c.retry_max_delay),
            (Duration::from_millis(200), Duration::from_millis(800))
        );
        let c = Config::from_vars(vars(&[("QUEUE_RETRY_DELAY_MS", "600000")])).unwrap();
        assert_eq!(
            c.retry_max_delay,
            Duration::from_secs(600),
            "an unset longest wait grows to the first"
        );
        assert_eq!(
            Config::from_vars(vars(&[("QUEUE_RETRY_DELAY_MS", "0")]))
                .unwrap()
                .retry_delay,
            Duration::ZERO,
            "0 retries at once"
        );
        assert_eq!(
            message(&[
                ("QUEUE_RETRY_DELAY_MS", "5000"),
                ("QUEUE_RETRY_MAX_DELAY_MS", "1000")
            ]),
            "configuration: QUEUE_RETRY_MAX_DELAY_MS=\"1000\": the longest retry delay (1000 ms) must be at least the first (QUEUE_RETRY_DELAY_MS=5000 ms), e.g. QUEUE_RETRY_MAX_DELAY_MS=300000"
        );
        assert!(message(&[("QUEUE_RETRY_MAX_DELAY_MS", "4294967296")]).contains("largest TTL"));
        assert!(
            message(&[("QUEUE_RETRY_DELAY_MS", "soon")]).contains("whole number of milliseconds")
        );
    }

    #[test]
    fn defaults_without_variables() {
        let c = Config::from_vars(vars(&[])).unwrap();
        assert_eq!(c.amqp_url, DEFAULT_AMQP_URL);
        assert_eq!(c.prefetch, 16);
        assert_eq!(c.worker_concurrency, 64);
        assert_eq!(c.decode_budget_bytes, 128 * 1024 * 1024);
        assert_eq!(c.mode, Mode::Production);
        assert_eq!(c.log_format, LogFormat::Pretty);
    }

    #[test]
    fn reads_every_variable() {
        let c = Config::from_vars(vars(&[
            ("AMQP_URL", "amqp://u:p@rabbit:5672/vh"),
            ("AMQP_PREFETCH", "8"),
            ("AMQP_CONNECT_TIMEOUT_MS", "1500"),
            ("RPC_TIMEOUT_MS", "2000"),
            ("DRAIN_TIMEOUT_MS", "3000"),
            ("HANDLER_TIMEOUT_MS", "4000"),
            ("BROKER_CONSUMER_TIMEOUT_MS", "0"),
            ("QUEUE_MAX_RETRIES", "0"),
            ("RPC_MAX_REDELIVERIES", "1"),
            ("EVENT_PUBLISHERS", "Any"),
            ("QUEUE_TYPE", "Quorum"),
            ("MAX_MESSAGE_BYTES", "1024"),
            ("MAX_DECODED_BYTES", "2048"),
            ("DECODE_BUDGET_BYTES", "4096"),
            ("MODE", "development"),
            ("LOG_FORMAT", "JSON"),
            ("PAUSE_ON_DB_OUTAGE", "all"),
            ("DB_HEALTH_INTERVAL_MS", "250"),
            ("DEADLINE_MAX_SKEW_MS", "0"),
            ("RPC_QUEUE_DURABLE", "True"),
            ("METRICS_ADDR", "127.0.0.1:9464"),
            ("UNRELATED", "whatever"),
        ]))
        .unwrap();
        assert_eq!(c.amqp_url, "amqp://u:p@rabbit:5672/vh");
        assert_eq!(c.prefetch, 8);
        assert_eq!(c.connect_timeout, Duration::from_millis(1500));
        assert_eq!(c.rpc_timeout, Duration::from_secs(2));
        assert_eq!(c.drain_timeout, Duration::from_secs(3));
        assert_eq!(c.handler_timeout, Duration::from_secs(4));
        assert_eq!(
            c.broker_consumer_timeout,
            Duration::ZERO,
            "the broker has none"
        );
        assert_eq!(c.max_retries, 0);
        assert_eq!(c.rpc_max_redeliveries, 1);
        assert_eq!(c.event_publishers, EventPublishers::Any);
        assert_eq!(c.queue_type, QueueType::Quorum);
        assert_eq!(c.max_message_bytes, 1024);
        assert_eq!(c.max_decoded_bytes, 2048);
        assert_eq!(c.decode_budget_bytes, 4096);
        assert!(c.is_development());
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.pause_on_db_outage, PausePolicy::All);
        assert_eq!(c.db_health_interval, Duration::from_millis(250));
        assert_eq!(c.deadline_max_skew, Duration::ZERO);
        assert_eq!(c.rpc_queue_durable, RpcQueueDurable::True);
        assert_eq!(c.metrics_addr, Some("127.0.0.1:9464".parse().unwrap()));
        let bad = message(&[("METRICS_ADDR", "localhost")]);
        assert!(
            bad.contains("METRICS_ADDR") && bad.contains("0.0.0.0:9090"),
            "{bad}"
        );
    }

    #[test]
    fn non_number_names_variable_and_example() {
        let m = message(&[("AMQP_PREFETCH", "lots")]);
        assert_eq!(
            m,
            "configuration: AMQP_PREFETCH=\"lots\": expected a whole number from 1 to 65535, e.g. AMQP_PREFETCH=16"
        );
    }

    #[test]
    fn out_of_range_number() {
        let m = message(&[("AMQP_PREFETCH", "70000")]);
        assert!(m.contains("AMQP_PREFETCH=\"70000\""), "{m}");
    }

    #[test]
    fn each_number_names_its_unit() {
        assert_eq!(
            message(&[("MAX_MESSAGE_BYTES", "8M")]),
            "configuration: MAX_MESSAGE_BYTES=\"8M\": expected a whole number of bytes, e.g. MAX_MESSAGE_BYTES=8388608"
        );
        assert_eq!(
            message(&[("QUEUE_MAX_RETRIES", "-1")]),
            "configuration: QUEUE_MAX_RETRIES=\"-1\": expected a whole number (0 parks at the first failure), e.g. QUEUE_MAX_RETRIES=3"
        );
        assert_eq!(
            message(&[("HANDLER_TIMEOUT_MS", "")]),
            "configuration: HANDLER_TIMEOUT_MS=\"\": expected a whole number of milliseconds, e.g. HANDLER_TIMEOUT_MS=60000"
        );
    }

    #[test]
    fn zero_prefetch_is_refused() {
        let m = message(&[("AMQP_PREFETCH", "0")]);
        assert!(m.contains("unbounded"), "{m}");
        let m = message(&[("WORKER_CONCURRENCY", "0")]);
        assert!(m.contains("WORKER_CONCURRENCY=\"0\""), "{m}");
    }

    #[test]
    fn zero_timeout_is_refused() {
        let m = message(&[("RPC_TIMEOUT_MS", "0")]);
        assert!(
            m.contains("RPC_TIMEOUT_MS=\"0\": expected a positive number"),
            "{m}"
        );
        let m = message(&[("DRAIN_TIMEOUT_MS", "soon")]);
        assert!(m.contains("e.g. DRAIN_TIMEOUT_MS=30000"), "{m}");
    }

    #[test]
    fn bad_mode_and_log_format() {
        let m = message(&[("MODE", "staging")]);
        assert_eq!(
            m,
            "configuration: MODE=\"staging\": expected development or production, e.g. MODE=production"
        );
        let m = message(&[("LOG_FORMAT", "xml")]);
        assert!(m.contains("expected pretty or json"), "{m}");
        let m = message(&[("QUEUE_TYPE", "stream")]);
        assert_eq!(
            m,
            "configuration: QUEUE_TYPE=\"stream\": expected classic or quorum, e.g. QUEUE_TYPE=quorum"
        );
        let m = message(&[("PAUSE_ON_DB_OUTAGE", "sometimes")]);
        assert!(
            m.contains("expected off, queue or all, e.g. PAUSE_ON_DB_OUTAGE=queue"),
            "{m}"
        );
    }

    #[test]
    fn bad_rpc_queue_durable() {
        assert_eq!(
            message(&[("RPC_QUEUE_DURABLE", "sometimes")]),
            "configuration: RPC_QUEUE_DURABLE=\"sometimes\": expected auto, false or true, e.g. RPC_QUEUE_DURABLE=auto"
        );
        let c = Config::from_vars(vars(&[])).unwrap();
        assert_eq!(c.rpc_queue_durable, RpcQueueDurable::Auto);
        assert_eq!(c.deadline_max_skew, Duration::from_secs(5));
    }

    #[test]
    fn url_list_is_accepted() {
        let list = "amqp://u:p@n1:5672/%2f,amqp://u:p@n2:5672/%2f";
        let c = Config::from_vars(vars(&[("AMQP_URL", list)])).unwrap();
        assert_eq!(c.amqp_url, list);
    }

    #[test]
    fn bad_list_entry_is_named_without_passwords() {
        let m = message(&[("AMQP_URL", "amqp://u:pw1@n1/%2f,amqp//u:pw2@n2")]);
        assert!(
            m.starts_with("configuration: AMQP_URL=\"amqp://u:***@n1/%2f,"),
            "{m}"
        );
        assert!(m.contains("entry 2"), "{m}");
        assert!(!m.contains("pw1") && !m.contains("pw2"), "{m}");
        let m = message(&[("AMQP_URL", "amqp://n1/%2f,")]);
        assert!(m.contains("entry 2") && m.contains("empty entry"), "{m}");
    }

    #[test]
    fn tls_files_are_read_and_need_amqps() {
        let c = Config::from_vars(vars(&[
            ("AMQP_URL", "amqps://u:p@rabbit:5671/vh"),
            ("AMQP_TLS_CA_FILE", "/etc/ca.pem"),
            ("AMQP_TLS_CERT_FILE", "/etc/c.pem"),
            ("AMQP_TLS_KEY_FILE", "/etc/c.key"),
        ]))
        .unwrap();
        assert_eq!(c.amqp_tls_ca_file, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(c.amqp_tls().key_file, Some(PathBuf::from("/etc/c.key")));
        assert_eq!(
            message(&[("AMQP_TLS_CA_FILE", "/etc/ca.pem")]),
            "configuration: AMQP_TLS_CA_FILE=\"/etc/ca.pem\": is set but AMQP_URL has no amqps:// URL, so the connection would not use TLS at all; use amqps:// (or unset it), e.g. AMQP_TLS_CA_FILE=/etc/rabbitmq/ca.pem"
        );
    }

    #[test]
    fn reply_to_patterns() {
        let c = Config::from_vars(vars(&[("RPC_REPLY_TO", " replies.*, ,*.reply ")])).unwrap();
        assert_eq!(c.rpc_reply_to, ["replies.*", "*.reply"]);
        let m = message(&[("RPC_REPLY_TO", "a,*")]);
        assert_eq!(
            m,
            "configuration: RPC_REPLY_TO=\"a,*\": a pattern of only * would let any caller direct replies into any queue, e.g. RPC_REPLY_TO=replies.*,*.reply"
        );
        let m = message(&[("RPC_REPLY_TO", "my replies")]);
        assert!(m.contains("no spaces"), "{m}");
    }

    #[test]
    fn anonymous_and_allow_lists() {
        let c = Config::from_vars(vars(&[])).unwrap();
        assert_eq!(c.rpc_anonymous, Anonymous::Allow);
        assert!(c.route_allow.is_empty());
        let c = Config::from_vars(vars(&[
            ("RPC_ANONYMOUS", "Deny"),
            (
                "ROUTE_ALLOW",
                " example.items.delete = ops ; example.items.create=greeter, billing-* ;closed=",
            ),
        ]))
        .unwrap();
        assert_eq!(c.rpc_anonymous, Anonymous::Deny);
        let lists: Vec<(&str, &[String])> = c
            .route_allow
            .iter()
            .map(|(r, l)| (r.as_str(), l.patterns()))
            .collect();
        assert_eq!(
            lists,
            [
                ("example.items.delete", &["ops".to_owned()][..]),
                (
                    "example.items.create",
                    &["greeter".to_owned(), "billing-*".to_owned()][..]
                ),
                ("closed", &[][..]),
            ]
        );
        assert_eq!(
            message(&[("RPC_ANONYMOUS", "maybe")]),
            "configuration: RPC_ANONYMOUS=\"maybe\": expected allow or deny, e.g. RPC_ANONYMOUS=deny"
        );
        assert!(message(&[("ROUTE_ALLOW", "a=x;b")]).contains("entry \"b\" has no `=`"));
        assert!(message(&[("ROUTE_ALLOW", "=x")]).contains("names no route"));
        assert!(message(&[("ROUTE_ALLOW", "a=x;a=y")]).contains("route a is named twice"));
    }

    #[test]
    fn debug_hides_the_amqp_password() {
        let c = Config::from_vars(vars(&[(
            "AMQP_URL",
            "amqp://svc:pw-one@n1/%2f,amqp://svc:pw-two@n2/%2f",
        )]))
        .unwrap();
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("pw-one") && !shown.contains("pw-two"),
            "{shown}"
        );
        assert!(shown.contains("amqp://svc:***@n1/%2f"), "{shown}");
    }

    #[test]
    fn bad_url_is_reported_without_password() {
        let m = message(&[("AMQP_URL", "http://user:hunter2@host/")]);
        assert!(m.starts_with("configuration: AMQP_URL="), "{m}");
        assert!(!m.contains("hunter2"), "{m}");
    }
}
