//! Settings from the environment (and a `.env` file when present; the environment wins).
//!
//! Every variable has a default that works against a local RabbitMQ, so a service starts
//! with no configuration at all in development. A malformed value is reported as one line
//! that names the variable, says what is wrong and shows a good value. One reader
//! ([`reader`]) reads every group of settings from a table with a row per variable: the
//! kit's ([`vars`]), the databases' and the outbox's.

pub(crate) mod amqp_url;
mod choices;
pub(crate) mod reader;
mod secret;
mod vars;

use std::path::PathBuf;
use std::time::Duration;

use crate::Error;

pub use self::amqp_url::AmqpUrl;
pub use self::choices::{
    AllowList, Anonymous, EventPublishers, LogFormat, Mode, PausePolicy, QueueType, RpcQueueDurable,
};
pub(crate) use self::reader::setting_error;
use self::reader::{Vars, example_of};
pub use self::secret::Secret;
use self::vars::VARS;

/// The kit's settings. Build it with [`Config::from_env`]; tests may start from
/// [`Config::default`] and change fields. Its `Debug` shows `amqp_url` with passwords
/// hidden ([`AmqpUrl`] is a [`Secret`]).
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
    /// `AMQP_PREFETCH`: two bounds per worker. The broker delivers at most this many
    /// unacknowledged messages to each of the worker's routes (`basic.qos` per consumer:
    /// the broker-side buffer), and the worker runs at most this many handlers at once
    /// across all its routes (deliveries beyond that wait in the buffer).
    pub prefetch: u16,
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
            prefetch: 64,
            connect_timeout: Duration::from_secs(30),
            rpc_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(30),
            handler_timeout: Duration::from_secs(60),
            max_retries: 3,
            // Long enough that three retries (5 + 10 + 20 s) outlast a dependency's restart
            // or a database failover, short enough that one failure delays little (README).
            retry_delay: Duration::from_secs(5),
            retry_max_delay: Duration::from_secs(300),
            rpc_max_redeliveries: 3,
            queue_type: QueueType::Classic,
            max_message_bytes: 8 * 1024 * 1024,
            max_decoded_bytes: 8 * 1024 * 1024,
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

impl Config {
    /// Reads the settings from the process environment, after loading `.env` from the
    /// current directory when there is one (variables already set win).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the first malformed variable, e.g.
    /// `AMQP_PREFETCH="lots": expected a whole number from 1 to 65535, e.g. AMQP_PREFETCH=64`.
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
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Result<Self, Error> {
        let vars = Vars::of(VARS, vars);
        let mut config = Config::default();
        vars.apply(VARS, &mut config)?;
        let max_is_set = vars.is_set("QUEUE_RETRY_MAX_DELAY_MS");
        if !max_is_set {
            // Unset, the longest wait grows to a first wait set above its default.
            config.retry_max_delay = config.retry_max_delay.max(config.retry_delay);
        }
        check_tls_files(&config)?;
        check_retry_delays(&config, max_is_set)?;
        Ok(config)
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
            ".env: {e} (fix the file or remove it; lines look like AMQP_PREFETCH=64)"
        ))),
    }
}

/// TLS files with no `amqps://` URL to use them would be ignored, and whoever set them
/// would believe the connection protected.
fn check_tls_files(c: &Config) -> Result<(), Error> {
    let any_tls = c.amqp_url.nodes().iter().any(|n| n.tls);
    let files = [
        ("AMQP_TLS_CA_FILE", &c.amqp_tls_ca_file),
        ("AMQP_TLS_CERT_FILE", &c.amqp_tls_cert_file),
        ("AMQP_TLS_KEY_FILE", &c.amqp_tls_key_file),
    ];
    match files.iter().find(|(_, f)| f.is_some()) {
        Some((name, Some(file))) if !any_tls => Err(bad(
            name,
            &file.display().to_string(),
            "is set but AMQP_URL has no amqps:// URL, so the connection would not use TLS at all; use amqps:// (or unset it)",
        )),
        _ => Ok(()),
    }
}

/// The largest TTL RabbitMQ accepts, in milliseconds (2³²−1): a larger one is refused.
pub(crate) const MAX_TTL_MS: u64 = 4_294_967_295;

/// `QUEUE_RETRY_DELAY_MS` and `QUEUE_RETRY_MAX_DELAY_MS`: the longest wait may not be
/// below the first, nor above the largest TTL the broker accepts.
fn check_retry_delays(c: &Config, max_is_set: bool) -> Result<(), Error> {
    let (first, max) = (c.retry_delay, c.retry_max_delay);
    if max > Duration::from_millis(MAX_TTL_MS) {
        return Err(bad(
            "QUEUE_RETRY_MAX_DELAY_MS",
            &max.as_millis().to_string(),
            "expected at most 4294967295 milliseconds (the broker's largest TTL)",
        ));
    }
    if first > max {
        let (name, value) = if max_is_set {
            ("QUEUE_RETRY_MAX_DELAY_MS", max)
        } else {
            ("QUEUE_RETRY_DELAY_MS", first)
        };
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
    Ok(())
}

fn bad(name: &str, value: &str, problem: &str) -> Error {
    setting_error(name, value, problem, example_of(VARS, name))
}

#[cfg(test)]
mod tests;
