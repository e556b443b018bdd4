//! Helpers for the end-to-end tests: unique names, a running Runner in-process, and a raw
//! AMQP peer that sends bytes the kit's own client never would.

pub mod cluster;
pub mod connections;
pub mod handled;
pub mod http;
pub mod pg;
pub mod proxy;
pub mod python;
pub mod read_model;
pub mod skip;
pub mod tls;
pub mod users;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use worker_kit::config::{Config, Mode};
use worker_kit::runner::Running;
use worker_kit::{Broker, Runner};

/// The broker the tests use (`AMQP_URL`, default the local guest account).
pub fn amqp_url() -> String {
    std::env::var("AMQP_URL").unwrap_or_else(|_| worker_kit::config::DEFAULT_AMQP_URL.to_owned())
}

/// A name no other test (or test run) uses.
pub fn unique(prefix: &str) -> String {
    format!(
        "t.{prefix}.{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// Serializes the tests that run the real `example` service (its routes have fixed names,
/// and one test deletes its queue).
pub async fn example_service_lock() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// Settings for tests: development mode, short drain, retries at once (the tests of
/// retries that wait set their delays themselves).
pub fn config() -> Config {
    let mut c = Config::default();
    c.amqp_url = amqp_url().parse().expect("AMQP_URL parses");
    c.mode = Mode::Development;
    c.retry_delay = Duration::ZERO;
    c.drain_timeout = Duration::from_secs(10);
    c.connect_timeout = Duration::from_secs(10);
    // Every test service logs in as the tests' one broker user, which owns no event name;
    // tests of event admission set `owner` themselves.
    c.event_publishers = worker_kit::config::EventPublishers::Any;
    c
}

/// Logs to the test's output when `RUST_LOG` is set.
pub fn init_logs() {
    if std::env::var_os("RUST_LOG").is_some() {
        worker_kit::logging::init(&Config::default());
    }
}

/// A broker connection for a Runner or a client.
///
/// # Panics
///
/// When RabbitMQ cannot be reached.
pub async fn broker(name: &str) -> Broker {
    Broker::connect(&amqp_url(), name, Duration::from_secs(10))
        .await
        .expect("RabbitMQ must be running for the integration tests (scripts/test starts it)")
}

/// Builds a Runner on a fresh broker connection with [`config`].
pub async fn runner(service: &'static str) -> Runner {
    let b = broker(service).await;
    Runner::new(service, Arc::new(config()), b)
}

/// A [`Setup`](worker_kit::Setup) for `service` with [`config`], a fresh broker connection
/// and no settings variables (the environment of the machine running the tests is not
/// read; a test gives what it needs with [`Setup::with_var`](worker_kit::Setup::with_var)).
pub async fn setup(service: &'static str) -> worker_kit::Setup {
    worker_kit::Setup::new(service, Arc::new(config()), broker(service).await).with_vars([])
}

/// The `example` service started in-process on a fresh database of its own (built from
/// models/example), with `tune` applied to its setup (`DB_*` settings and the like). Stop
/// the service, then drop the database.
///
/// # Panics
///
/// When it does not start.
pub async fn start_example(
    tune: impl FnOnce(worker_kit::Setup) -> worker_kit::Setup,
) -> (Running, pg::TestDb) {
    let db = pg::TestDb::with_models("example").await;
    let setup = setup("example").await.with_var("DB_MAIN_DSN", &db.dsn);
    let running = example::build(tune(setup))
        .await
        .expect("example builds")
        .start()
        .await
        .expect("example starts");
    (running, db)
}

/// Starts `runner`.
///
/// # Panics
///
/// When it does not start.
pub async fn start(runner: Runner) -> Running {
    runner.start().await.expect("runner starts")
}

/// Waits until `cond` holds, checking every 20 ms, for at most `limit`.
///
/// # Panics
///
/// With `what` when the deadline passes.
pub async fn wait_until<F, Fut>(limit: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if cond().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A plain lapin peer for sending exact bytes and reading queues directly.
pub struct RawPeer {
    _conn: Connection,
    /// A channel without confirms.
    pub channel: Channel,
    reply_queue: String,
    replies: lapin::Consumer,
}

impl RawPeer {
    /// Connects and declares an exclusive, server-named reply queue (`amq.gen-*`: servers
    /// reply only to reply queues).
    ///
    /// # Panics
    ///
    /// When RabbitMQ cannot be reached.
    pub async fn connect() -> Self {
        Self::connect_to(&amqp_url()).await
    }

    /// As [`RawPeer::connect`], on the broker (and vhost) of `url`.
    ///
    /// # Panics
    ///
    /// When RabbitMQ cannot be reached.
    pub async fn connect_to(url: &str) -> Self {
        let conn = Connection::connect(url, ConnectionProperties::default())
            .await
            .expect("connect");
        let channel = conn.create_channel().await.expect("channel");
        let reply_queue = declare_exclusive(&channel).await;
        let replies = channel
            .basic_consume(
                reply_queue.as_str().into(),
                "raw-peer".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("consume replies");
        Self {
            _conn: conn,
            channel,
            reply_queue,
            replies,
        }
    }

    /// The reply queue's name, to put in `reply_to`.
    pub fn reply_to(&self) -> &str {
        &self.reply_queue
    }

    /// Publishes `body` to `route` with `props`.
    ///
    /// # Panics
    ///
    /// When the publish fails.
    pub async fn publish(&self, route: &str, body: &[u8], props: BasicProperties) {
        self.channel
            .basic_publish(
                "".into(),
                route.into(),
                BasicPublishOptions::default(),
                body,
                props,
            )
            .await
            .expect("publish")
            .await
            .expect("publish confirm");
    }

    /// Sends `body` to `route` with a reply_to and correlation id, and waits (≤ 10 s) for
    /// the reply.
    ///
    /// # Panics
    ///
    /// When no reply comes.
    pub async fn request(&mut self, route: &str, body: &[u8], correlation_id: &str) -> Delivery {
        let props = BasicProperties::default()
            .with_reply_to(self.reply_queue.as_str().into())
            .with_correlation_id(correlation_id.into());
        self.publish(route, body, props).await;
        self.next_reply().await
    }

    /// The next reply (≤ 10 s).
    ///
    /// # Panics
    ///
    /// When no reply comes.
    pub async fn next_reply(&mut self) -> Delivery {
        self.next_reply_within(Duration::from_secs(10)).await
    }

    /// The next reply (≤ `limit`).
    ///
    /// # Panics
    ///
    /// When no reply comes.
    pub async fn next_reply_within(&mut self, limit: Duration) -> Delivery {
        tokio::time::timeout(limit, self.replies.next())
            .await
            .unwrap_or_else(|_| panic!("a reply within {limit:?}"))
            .expect("reply stream open")
            .expect("reply delivery")
    }

    /// Declares `queue` as a work queue (durable, no arguments), so messages published
    /// before a worker starts wait in it.
    ///
    /// # Panics
    ///
    /// When the declaration fails.
    pub async fn declare_work_queue(&self, queue: &str) {
        self.channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    durable: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("declare work queue");
    }

    /// Declares an exclusive, server-named queue bound to `exchange` with `routing_key`, and
    /// returns its name: where the test catches what the exchange routes (dead letters from
    /// `rpc.dlx`, events). It goes away with the peer.
    ///
    /// # Panics
    ///
    /// When the declaration or the binding fails.
    pub async fn catch(&self, exchange: &str, routing_key: &str) -> String {
        let queue = declare_exclusive(&self.channel).await;
        self.channel
            .queue_bind(
                queue.as_str().into(),
                exchange.into(),
                routing_key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap_or_else(|e| panic!("bind a queue to {exchange}: {e}"));
        queue
    }

    /// The broker's refusal of a declaration of `queue` (durable or not) with `args`, or
    /// `None` when it accepts it: how a test asks which type or arguments a queue has (the
    /// broker refuses a declaration that differs from the queue). On a channel of its own,
    /// since a refusal closes the channel it came on.
    ///
    /// # Panics
    ///
    /// When no channel opens.
    pub async fn declare_error(
        &self,
        queue: &str,
        durable: bool,
        args: FieldTable,
    ) -> Option<String> {
        let ch = self._conn.create_channel().await.expect("channel");
        let declared = ch
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    durable,
                    ..QueueDeclareOptions::default()
                },
                args,
            )
            .await;
        if ch.status().connected() {
            let _ = ch.close(200, "ok".into()).await;
        }
        declared.err().map(|e| e.to_string())
    }

    /// Messages ready in `queue`.
    ///
    /// # Panics
    ///
    /// When `queue` does not exist: a vanished queue is not an empty one, and a check for
    /// "nothing left" must not pass because the queue is gone.
    pub async fn ready_count(&self, queue: &str) -> u32 {
        self.counts(queue).await.0
    }

    /// `(ready messages, consumers)` of `queue`.
    ///
    /// # Panics
    ///
    /// When `queue` does not exist (see [`RawPeer::ready_count`]) or no channel opens.
    pub async fn counts(&self, queue: &str) -> (u32, u32) {
        self.try_counts(queue)
            .await
            .unwrap_or_else(|e| panic!("queue {queue} cannot be inspected (deleted?): {e}"))
    }

    /// `(ready messages, consumers)` of `queue`, or the broker's error (`NOT_FOUND` when
    /// the queue does not exist).
    ///
    /// # Errors
    ///
    /// When the passive declaration fails.
    pub async fn try_counts(&self, queue: &str) -> Result<(u32, u32), lapin::Error> {
        // A failed passive declare closes its channel: use a throwaway one.
        let ch = self._conn.create_channel().await?;
        let r = ch
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await;
        let n = r.map(|q| (q.message_count(), q.consumer_count()));
        if ch.status().connected() {
            let _ = ch.close(200, "ok".into()).await;
        }
        n
    }

    /// Whether `queue` exists.
    pub async fn exists(&self, queue: &str) -> bool {
        self.try_counts(queue).await.is_ok()
    }

    /// Takes one message from `queue`, acknowledging it; `None` when the queue is empty.
    ///
    /// # Panics
    ///
    /// When the queue does not exist or the get fails (not reported as "empty").
    pub async fn get(&self, queue: &str) -> Option<lapin::message::BasicGetMessage> {
        let ch = self._conn.create_channel().await.expect("channel");
        let r = ch
            .basic_get(queue.into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap_or_else(|e| panic!("basic.get on {queue} failed (deleted?): {e}"));
        let _ = ch.close(200, "ok".into()).await;
        r
    }

    /// Deletes `queues` (cleanup; errors ignored).
    pub async fn delete(&self, queues: &[&str]) {
        for q in queues {
            let _ = self
                .channel
                .queue_delete((*q).into(), QueueDeleteOptions::default())
                .await;
        }
    }

    /// Deletes each of `routes`' queues on the default vhost: the route's own, its parking
    /// queue, and the delay queues its retries waited in (`ROUTE.retry.MS`, one per wait the
    /// kit used, so they are found by listing the vhost's queues).
    pub async fn delete_routes(&self, routes: &[&str]) {
        let listed = tokio::process::Command::new("rabbitmqctl")
            .args(["-q", "list_queues", "-p", "/", "--no-table-headers", "name"])
            .output()
            .await
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let mut queues = Vec::new();
        for route in routes {
            queues.push((*route).to_owned());
            queues.push(worker_kit::queue::parking_queue(route));
            let delays = format!("{route}.retry.");
            queues.extend(
                listed
                    .lines()
                    .map(str::trim)
                    .filter(|name| name.starts_with(&delays))
                    .map(str::to_owned),
            );
        }
        let names: Vec<&str> = queues.iter().map(String::as_str).collect();
        self.delete(&names).await;
    }
}

/// Declares an exclusive, auto-delete, server-named queue (`amq.gen-*`) on `channel`.
async fn declare_exclusive(channel: &Channel) -> String {
    channel
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
        .expect("declare an exclusive queue")
        .name()
        .as_str()
        .to_owned()
}

/// gzip of `bytes`, as the Python seed sends.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).expect("gzip to memory");
    enc.finish().expect("gzip to memory")
}

/// The reply body as JSON (gunzipped when needed).
///
/// # Panics
///
/// When the body is not a JSON reply.
pub fn reply_json(delivery: &Delivery) -> serde_json::Value {
    let limits = worker_kit::wire::envelope::Limits::default();
    let (text, _) =
        worker_kit::wire::envelope::decode_text(&delivery.data, &limits).expect("decodable reply");
    serde_json::from_str(&text).expect("JSON reply")
}
