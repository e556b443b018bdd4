//! The kit's settings as a struct: its fields, their defaults, and what is derived from
//! them. The variables that set them are [`super::vars`]; the reader is [`super::reader`].

use std::path::PathBuf;
use std::time::Duration;

use super::amqp_url::{AmqpUrl, DEFAULT_AMQP_URL};
use super::choices::{
    AllowList, Anonymous, EventPublishers, LogFormat, Mode, PausePolicy, QueueType, RpcQueueDurable,
};

/// The kit's settings. Build it with [`Config::from_env`]; tests may start from
/// [`Config::default`] and change fields. Its `Debug` shows `amqp_url` with passwords
/// hidden ([`AmqpUrl`] is a [`Secret`](super::Secret)).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// `AMQP_URL`: the broker to connect to, or a comma-separated list of the nodes of one
    /// RabbitMQ cluster (tried in a shuffled order; a reconnect moves on to the next node).
    /// Parsed once, here; shown with passwords hidden. Set it with `"amqp://...".parse()?`.
    pub amqp_url: AmqpUrl,
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
    /// (more for arrays and objects: what it costs parsed as a `serde_json::Value`). A body
    /// that does not fit waits for the others to be done (until its deadline or the
    /// handler's limit), one priced above the whole budget is refused; bodies priced at most
    /// 64 KiB are never held back.
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

impl Default for Config {
    fn default() -> Self {
        Self {
            amqp_url: DEFAULT_AMQP_URL
                .parse()
                .expect("the default AMQP URL parses"),
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

impl Config {
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
