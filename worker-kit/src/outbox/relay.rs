//! The relay: publishes committed outbox rows to the events exchange.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use lapin::options::BasicPublishOptions;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Confirmation};
use tokio::sync::Notify;
use tracing::{debug, info, warn};
use worker_kit_pg_tls::MakeRustlsConnect;

use super::batch::Batch;
use crate::Error;
use crate::amqp::confirm::{ConfirmChannel, OpenError, Wait};
use crate::backoff::Pauses;
use crate::db::{Client, DbConfig, DbError};
use crate::events::{AGGREGATE_ID_HEADER, EXCHANGE, OCCURRED_AT_HEADER, SEQ_HEADER};
use crate::wire::envelope::{self, Encoding};

use super::OutboxSettings;
use crate::worker::{Runnable, WorkerContext, WorkerKind, sealed};

/// The advisory lock that lets one relay of a database publish at a time (advisory locks
/// are per database, so relays of different services never wait for each other).
const LOCK_KEY: i64 = 0x776b_6f75_7462_6f78; // "wkoutbox"

/// Publishes the outbox's committed events; register it with the Runner like a worker.
///
/// ```no_run
/// # use worker_kit::{Runner, db::{Client, DbConfig}, outbox::Relay};
/// # fn demo(runner: Runner, db: Client, config: &DbConfig) -> Runner {
/// runner.register_worker(Relay::new(&db, config))
/// # }
/// ```
pub struct Relay {
    db: Client,
    listen: tokio_postgres::Config,
    listen_tls: MakeRustlsConnect,
    exchange: String,
    batch_size: i64,
    poll_interval: Duration,
    retention: Duration,
    confirm_timeout: Duration,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("db", &self.db)
            .field("exchange", &self.exchange)
            .field("batch_size", &self.batch_size)
            .field("poll_interval", &self.poll_interval)
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}

impl Relay {
    /// A relay for the outbox in `db`, listening for commits on a connection of its own
    /// to `config`'s DSN. Defaults: exchange `events`, batches of 200, polling every
    /// second, sent rows kept 7 days.
    ///
    /// # Panics
    ///
    /// Never for a DSN `db` was built from (it parsed already); a DSN that does not parse
    /// leaves the relay polling only.
    pub fn new(db: &Client, config: &DbConfig) -> Self {
        // The pool's settings, TLS included: the LISTEN connection is as protected as the
        // rest.
        let (mut listen, tls) = db.connect_settings();
        listen.application_name("worker-kit outbox relay");
        listen.connect_timeout(config.connect_timeout);
        Self {
            db: db.clone(),
            listen,
            listen_tls: tls,
            exchange: EXCHANGE.to_owned(),
            batch_size: 200,
            poll_interval: Duration::from_secs(1),
            retention: Duration::from_secs(7 * 24 * 3600),
            confirm_timeout: Duration::from_secs(30),
        }
    }

    /// Publishes to `exchange` instead of `events`.
    #[must_use]
    pub fn exchange(mut self, exchange: &str) -> Self {
        exchange.clone_into(&mut self.exchange);
        self
    }

    /// Events published per transaction (default 200).
    #[must_use]
    pub fn batch_size(mut self, n: u16) -> Self {
        self.batch_size = i64::from(n.max(1));
        self
    }

    /// How often the relay looks for events when no notification arrives (default 1 s):
    /// the delay of an event whose notification was lost.
    #[must_use]
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.poll_interval = every.max(Duration::from_millis(10));
        self
    }

    /// How long sent rows are kept before they are pruned (default 7 days).
    #[must_use]
    pub fn retention(mut self, keep: Duration) -> Self {
        self.retention = keep;
        self
    }

    /// How long the relay waits for the broker to confirm a batch (default 30 s); a batch
    /// not confirmed in time stays pending and is published again.
    #[must_use]
    pub fn confirm_timeout(mut self, wait: Duration) -> Self {
        self.confirm_timeout = wait.max(Duration::from_millis(100));
        self
    }

    /// Applies a deployment's settings (exchange, batch size, poll interval, confirm
    /// timeout, retention), as [`OutboxSettings::from_env`] reads them.
    #[must_use]
    pub fn settings(self, s: &OutboxSettings) -> Self {
        self.exchange(&s.exchange)
            .batch_size(s.batch_size)
            .poll_interval(s.poll_interval)
            .confirm_timeout(s.confirm_timeout)
            .retention(s.retention)
    }

    /// The relay's channel, with the events exchange declared on each newly opened one.
    async fn channel(&self, out: &ConfirmChannel) -> Result<Channel, RelayError> {
        let ready = out.get().await?;
        if ready.opened_now {
            crate::events::declare_exchange(&ready.channel, &self.exchange).await?;
        }
        Ok(ready.channel)
    }

    /// Publishes one batch in one transaction. The channel is opened first: a wait for
    /// the broker to come back holds no transaction (nor the outbox lock).
    async fn relay_batch(&self, out: &ConfirmChannel) -> Result<Batch, RelayError> {
        let channel = self.channel(out).await?;
        let mut conn = self.db.connection().await?;
        let tx = conn.transaction().await.map_err(DbError::from)?;
        let locked: bool = tx
            .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&LOCK_KEY])
            .await
            .map_err(DbError::from)?
            .get(0);
        if !locked {
            return Ok(Batch::Standby { next_due: None });
        }
        let rows = tx
            .query(
                "SELECT id, event_id, routing_key, aggregate_id, payload, occurred_at \
                 FROM worker_kit_outbox WHERE sent_at IS NULL ORDER BY id LIMIT $1",
                &[&self.batch_size],
            )
            .await
            .map_err(DbError::from)?;
        if rows.is_empty() {
            return Ok(Batch::Drained {
                published: 0,
                next_due: None,
            });
        }
        let mut confirms = Vec::with_capacity(rows.len());
        let mut ids = Vec::with_capacity(rows.len());
        for row in &rows {
            let event = OutboxRow {
                seq: row.get(0),
                event_id: row.get(1),
                routing_key: row.get(2),
                aggregate_id: row.get(3),
                payload: row.get(4),
                occurred_at: row.get(5),
            };
            ids.push(row.get::<_, i64>(0));
            confirms.push(publish(&channel, &self.exchange, out.broker().user_id(), &event).await?);
        }
        // Publishing the whole batch before waiting pipelines the confirms.
        for confirm in confirms {
            match tokio::time::timeout(self.confirm_timeout, confirm).await {
                Ok(Ok(Confirmation::Ack(_) | Confirmation::NotRequested)) => {}
                Ok(Ok(Confirmation::Nack(_))) => return Err(RelayError::Refused),
                Ok(Err(e)) => return Err(RelayError::Broker(e)),
                Err(_) => return Err(RelayError::NoConfirm(self.confirm_timeout)),
            }
        }
        // Killed here, the batch stays pending and is published again: at least once.
        tx.execute(
            "UPDATE worker_kit_outbox SET sent_at = clock_timestamp() WHERE id = ANY($1)",
            &[&ids],
        )
        .await
        .map_err(DbError::from)?;
        tx.commit().await.map_err(DbError::from)?;
        debug!(events = ids.len(), "outbox batch published");
        Ok(if ids.len() as i64 >= self.batch_size {
            Batch::Full
        } else {
            Batch::Drained {
                published: ids.len(),
                next_due: None,
            }
        })
    }

    async fn prune(&self) -> Result<u64, DbError> {
        super::prune::in_batches(
            &self.db,
            "DELETE FROM worker_kit_outbox WHERE id IN (SELECT id FROM worker_kit_outbox \
             WHERE sent_at < now() - make_interval(secs => $1) LIMIT $2)",
            self.retention,
        )
        .await
    }
}

#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("broker: {0}")]
    Broker(#[from] lapin::Error),
    #[error("broker unavailable: {0}")]
    Unavailable(String),
    #[error("the broker refused an event (nack)")]
    Refused,
    #[error("no publisher confirm within {0:?}")]
    NoConfirm(Duration),
}

/// The channel could not be had: the broker is unavailable, in the words of what failed.
impl From<OpenError> for RelayError {
    fn from(e: OpenError) -> Self {
        Self::Unavailable(e.to_string())
    }
}

struct OutboxRow {
    seq: i64,
    event_id: uuid::Uuid,
    routing_key: String,
    aggregate_id: String,
    payload: serde_json::Value,
    occurred_at: chrono::DateTime<chrono::Utc>,
}

/// Publishes one event from the service's own broker user `user_id` (who emitted it is
/// then as certain as who calls a route).
async fn publish(
    channel: &Channel,
    exchange: &str,
    user_id: &lapin::types::ShortString,
    event: &OutboxRow,
) -> Result<lapin::PublisherConfirm, RelayError> {
    // The payload was serialized once already; it serializes again.
    let body = envelope::encode_request(&event.payload, Encoding::Gzip)
        .map_err(|e| RelayError::Unavailable(format!("cannot encode event: {e}")))?;
    let mut headers = FieldTable::default();
    headers.insert(
        AGGREGATE_ID_HEADER.into(),
        AMQPValue::LongString(event.aggregate_id.as_str().into()),
    );
    headers.insert(SEQ_HEADER.into(), AMQPValue::LongLongInt(event.seq));
    headers.insert(
        OCCURRED_AT_HEADER.into(),
        AMQPValue::LongLongInt(event.occurred_at.timestamp_millis()),
    );
    let mut props = BasicProperties::default()
        .with_delivery_mode(2)
        .with_message_id(event.event_id.to_string().into())
        .with_type(event.routing_key.as_str().into())
        .with_timestamp(u64::try_from(event.occurred_at.timestamp()).unwrap_or(0))
        .with_user_id(user_id.clone())
        .with_headers(headers);
    if let Some(ce) = Encoding::Gzip.content_encoding() {
        props = props.with_content_encoding(ce.into());
    }
    // Measured before it goes: properties past a frame would close the connection, and
    // the row would be tried again after every reconnect.
    let props = crate::wire::headers::within_frame(props).map_err(|size| {
        RelayError::Unavailable(format!(
            "event {} has properties of {size} bytes encoded, more than one frame holds ({} bytes): its aggregate id is too long to publish",
            event.event_id,
            crate::wire::headers::MAX_PROPERTIES_BYTES
        ))
    })?;
    Ok(channel
        .basic_publish(
            exchange.into(),
            event.routing_key.as_str().into(),
            BasicPublishOptions::default(),
            &body,
            props,
        )
        .await?)
}

impl sealed::Sealed for Relay {}

#[async_trait]
impl Runnable for Relay {
    fn kind(&self) -> WorkerKind {
        WorkerKind::Outbox
    }

    fn route_names(&self) -> Vec<String> {
        Vec::new()
    }

    async fn run(self: Box<Self>, ctx: WorkerContext) -> Result<(), Error> {
        let out = ConfirmChannel::new(ctx.broker.clone(), Wait::ForReconnect, "the outbox relay");
        if let Err(e) = self.channel(&out).await {
            let _ = ctx.ready.send(Err(Error::Broker {
                message: format!(
                    "outbox relay: declaring exchange `{}` failed: {e}",
                    self.exchange
                ),
                source: None,
            }));
            return Ok(());
        }
        let wake = Arc::new(Notify::new());
        let listener = tokio::spawn(super::listen::wake_on_notify(
            self.listen.clone(),
            self.listen_tls.clone(),
            super::NOTIFY_CHANNEL,
            wake.clone(),
            ctx.shutdown.clone(),
        ));
        let _ = ctx.ready.send(Ok(format!(
            "outbox relay publishing to exchange {}",
            self.exchange
        )));
        let prune_every = super::prune::every(self.retention);
        let mut next_prune = tokio::time::Instant::now();
        // Failed batches in a row wait longer each time (the broker or the database is
        // away), at most the poll interval.
        let failures = Pauses::default();
        while !ctx.shutdown.is_cancelled() {
            // A stop does not wait for a batch held up by the broker: dropping it rolls
            // its transaction back and the events stay pending.
            let batch = tokio::select! {
                biased;
                () = ctx.shutdown.cancelled() => break,
                b = self.relay_batch(&out) => b,
            };
            let wait = match batch {
                Ok(Batch::Full) => {
                    failures.reset();
                    continue;
                }
                Ok(Batch::Drained { published: 1.., .. }) => {
                    // Writers notify at most once per window (see `notify`): events of
                    // the window's other transactions may have committed since this batch
                    // was read, unannounced. Look again once the window has passed.
                    failures.reset();
                    (crate::db::notify::WINDOW * 2).min(self.poll_interval)
                }
                Ok(Batch::Drained { .. } | Batch::Standby { .. }) => {
                    failures.reset();
                    self.poll_interval
                }
                Err(e) => {
                    let delay = failures.next().min(self.poll_interval);
                    warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "outbox relay: batch not published; it stays pending");
                    delay
                }
            };
            if tokio::time::Instant::now() >= next_prune {
                next_prune = tokio::time::Instant::now() + prune_every;
                match self.prune().await {
                    Ok(0) => {}
                    Ok(n) => debug!(pruned = n, "outbox: sent rows pruned"),
                    Err(e) => warn!(error = %e, "outbox: pruning sent rows failed"),
                }
            }
            tokio::select! {
                () = ctx.shutdown.cancelled() => break,
                () = wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
        listener.abort();
        out.close(ctx.config.connect_timeout).await;
        info!("outbox relay stopped");
        Ok(())
    }
}
