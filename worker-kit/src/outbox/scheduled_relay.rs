//! The scheduled-messages relay: publishes each stored work message to its route when it is
//! due, and sleeps until the next is.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use lapin::options::BasicPublishOptions;
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Confirmation};
use tokio::sync::Notify;
use tracing::{debug, error, info, warn};
use worker_kit_pg_tls::MakeRustlsConnect;

use super::batch::Batch;
use crate::Error;
use crate::amqp::confirm::{ConfirmChannel, OpenError, Wait};
use crate::backoff::Pauses;
use crate::db::{Client, DbError};
use crate::queue::SCHEDULED_NOTIFY_CHANNEL;
use crate::worker::{Runnable, WorkerContext, WorkerKind, sealed};

/// The advisory lock that lets one scheduled-messages relay of a database publish at a
/// time. Not the outbox's: the two relays of one service must not wait for each other.
const LOCK_KEY: i64 = 0x776b_7363_6865_6475; // "wkschedu"

/// The header carrying when a scheduled message was due (milliseconds since the epoch), so
/// a consumer can tell how late it came.
pub const DUE_AT_HEADER: &str = "x-scheduled-due-at";

/// The shortest sleep before a message not yet due: messages due closer together than this
/// go out in one batch instead of one transaction each, which keeps the relay ahead of a
/// steady stream (one due every millisecond would otherwise cost a transaction each). A
/// message is never published before it is due; this is how late one can be for it.
const MIN_SLEEP: Duration = Duration::from_millis(5);

/// How long a message the broker cannot take (no queue for its route, larger than this
/// service's `MAX_MESSAGE_BYTES`) waits before the relay tries it again: it stays pending,
/// never lost, and never blocks the messages due after it.
const POSTPONE: Duration = Duration::from_secs(30);

/// Publishes the scheduled messages ([`QueuePublisher::send_at`](crate::queue::QueuePublisher::send_at),
/// [`Schedule`](crate::queue::Schedule)) of a database when they are due; register it with
/// the Runner like a worker, next to the service's other workers.
///
/// It sleeps until the earliest message is due, and wakes sooner when a transaction
/// schedules one (`LISTEN/NOTIFY`); it looks again at least every poll interval (default
/// 1 s), the delay of a message whose notification was lost. Several replicas may run it:
/// a transaction-level advisory lock lets one publish at a time, and the others take over
/// within a poll interval (or at the next due time) when it stops. A message is published
/// at least once: a relay killed between the broker's confirm and its commit publishes it
/// again, with the same `message_id`.
///
/// ```no_run
/// # use worker_kit::{Runner, db::Client, outbox::ScheduledRelay};
/// # fn demo(runner: Runner, db: Client) -> Runner {
/// runner.register_worker(ScheduledRelay::new(&db))
/// # }
/// ```
pub struct ScheduledRelay {
    db: Client,
    listen: tokio_postgres::Config,
    listen_tls: MakeRustlsConnect,
    batch_size: i64,
    poll_interval: Duration,
    confirm_timeout: Duration,
}

impl std::fmt::Debug for ScheduledRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScheduledRelay")
            .field("db", &self.db)
            .field("batch_size", &self.batch_size)
            .field("poll_interval", &self.poll_interval)
            .finish_non_exhaustive()
    }
}

impl ScheduledRelay {
    /// A relay for the scheduled messages in `db`, listening for new ones on a connection
    /// of its own (with `db`'s settings and TLS). Defaults: batches of 200, a look at least
    /// every second, 30 s for the broker's confirms.
    pub fn new(db: &Client) -> Self {
        let (mut listen, tls) = db.connect_settings();
        listen.application_name("worker-kit scheduled relay");
        Self {
            db: db.clone(),
            listen,
            listen_tls: tls,
            batch_size: 200,
            poll_interval: Duration::from_secs(1),
            confirm_timeout: Duration::from_secs(30),
        }
    }

    /// Messages published per transaction (default 200).
    #[must_use]
    pub fn batch_size(mut self, n: u16) -> Self {
        self.batch_size = i64::from(n.max(1));
        self
    }

    /// The longest the relay sleeps without looking (default 1 s): how late a message can
    /// be whose scheduling transaction did not notify, and how soon a standby replica takes
    /// over from a stopped one.
    #[must_use]
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.poll_interval = every.max(Duration::from_millis(10));
        self
    }

    /// How long the relay waits for the broker to confirm a batch (default 30 s); a batch
    /// not confirmed in time stays pending and is published again.
    #[must_use]
    pub fn confirm_timeout(mut self, wait: Duration) -> Self {
        self.confirm_timeout = wait.max(Duration::from_millis(100));
        self
    }

    /// Publishes the messages due now, one batch in one transaction, and says how long
    /// until the next is due. The channel is opened first: a wait for the broker to come
    /// back holds no transaction (nor the lock).
    async fn relay_batch(
        &self,
        out: &ConfirmChannel,
        max_bytes: usize,
    ) -> Result<Batch, RelayError> {
        let channel = out.channel().await?;
        let mut conn = self.db.connection().await?;
        let tx = conn.transaction().await.map_err(DbError::from)?;
        let locked: bool = tx
            .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&LOCK_KEY])
            .await
            .map_err(DbError::from)?
            .get(0);
        if !locked {
            drop(tx);
            return Ok(Batch::Standby {
                next_due: next_due(&conn).await?,
            });
        }
        // SKIP LOCKED: a row a cancel is deleting is not published; one a cancel has not
        // reached yet is locked here, and that cancel waits for this commit.
        let rows = tx
            .query(
                "SELECT id, route, body, content_encoding, traceparent, due_at \
                 FROM worker_kit_scheduled WHERE due_at <= clock_timestamp() \
                 ORDER BY due_at LIMIT $1 FOR UPDATE SKIP LOCKED",
                &[&self.batch_size],
            )
            .await
            .map_err(DbError::from)?;
        let mut published = Vec::with_capacity(rows.len());
        let mut postponed = Vec::new();
        let mut confirms = Vec::with_capacity(rows.len());
        for row in &rows {
            let msg = DueRow {
                id: row.get(0),
                route: row.get(1),
                body: row.get(2),
                content_encoding: row.get(3),
                traceparent: row.get(4),
                due_at: row.get(5),
            };
            match publish(&channel, out.broker().user_id(), &msg, max_bytes).await? {
                Some(confirm) => confirms.push((msg, confirm)),
                None => postponed.push(msg.id),
            }
        }
        // Publishing the whole batch before waiting pipelines the confirms.
        for (msg, confirm) in confirms {
            match tokio::time::timeout(self.confirm_timeout, confirm).await {
                Ok(Ok(Confirmation::Ack(None) | Confirmation::NotRequested)) => {
                    published.push(msg.id);
                }
                Ok(Ok(Confirmation::Ack(Some(_)) | Confirmation::Nack(Some(_)))) => {
                    error!(id = %msg.id, route = %msg.route, retry_in_s = POSTPONE.as_secs(), "scheduled message not published: no queue for its route (start a worker for it, or declare the queue); it stays pending");
                    postponed.push(msg.id);
                }
                Ok(Ok(Confirmation::Nack(None))) => return Err(RelayError::Refused),
                Ok(Err(e)) => return Err(RelayError::Broker(e)),
                Err(_) => return Err(RelayError::NoConfirm(self.confirm_timeout)),
            }
        }
        // Killed here, the batch stays pending and is published again: at least once.
        tx.execute(
            "DELETE FROM worker_kit_scheduled WHERE id = ANY($1)",
            &[&published],
        )
        .await
        .map_err(DbError::from)?;
        if !postponed.is_empty() {
            tx.execute(
                "UPDATE worker_kit_scheduled \
                 SET due_at = clock_timestamp() + make_interval(secs => $2) WHERE id = ANY($1)",
                &[&postponed, &POSTPONE.as_secs_f64()],
            )
            .await
            .map_err(DbError::from)?;
        }
        tx.commit().await.map_err(DbError::from)?;
        if !published.is_empty() {
            debug!(messages = published.len(), "scheduled messages published");
        }
        if rows.len() as i64 >= self.batch_size {
            return Ok(Batch::Full);
        }
        Ok(Batch::Drained {
            published: published.len(),
            next_due: next_due(&conn).await?,
        })
    }
}

/// How long until the earliest pending message is due, by the database's clock (zero when
/// one is due already); `None` when none is pending.
async fn next_due(conn: &tokio_postgres::Client) -> Result<Option<Duration>, DbError> {
    let row = conn
        .query_one(
            "SELECT EXTRACT(EPOCH FROM (min(due_at) - clock_timestamp()))::float8 \
             FROM worker_kit_scheduled",
            &[],
        )
        .await?;
    let secs: Option<f64> = row.get(0);
    Ok(secs.map(|s| Duration::try_from_secs_f64(s.max(0.0)).unwrap_or(Duration::MAX)))
}

#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("broker: {0}")]
    Broker(#[from] lapin::Error),
    #[error("broker unavailable: {0}")]
    Unavailable(String),
    #[error("the broker refused a scheduled message (nack)")]
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

/// A message due now, as stored.
struct DueRow {
    id: uuid::Uuid,
    route: String,
    body: Vec<u8>,
    content_encoding: Option<String>,
    traceparent: Option<String>,
    due_at: chrono::DateTime<chrono::Utc>,
}

/// Publishes one message to its route (mandatory, persistent) from the service's own broker
/// user `user_id`: the service scheduled it, so it is its sender, as for anything it
/// publishes. `None` when it cannot go out (logged; the row is postponed).
async fn publish(
    channel: &Channel,
    user_id: &ShortString,
    msg: &DueRow,
    max_bytes: usize,
) -> Result<Option<lapin::PublisherConfirm>, RelayError> {
    if msg.body.len() > max_bytes {
        error!(id = %msg.id, route = %msg.route, size = msg.body.len(), limit = max_bytes, retry_in_s = POSTPONE.as_secs(), "scheduled message not published: larger than this service's MAX_MESSAGE_BYTES (raise it, or cancel the message); it stays pending");
        return Ok(None);
    }
    let mut headers = FieldTable::default();
    headers.insert(
        DUE_AT_HEADER.into(),
        AMQPValue::LongLongInt(msg.due_at.timestamp_millis()),
    );
    if let Some(tp) = &msg.traceparent {
        headers.insert(
            "traceparent".into(),
            AMQPValue::LongString(tp.as_str().into()),
        );
    }
    let mut props = BasicProperties::default()
        .with_delivery_mode(2)
        .with_message_id(msg.id.to_string().into())
        .with_timestamp(crate::wire::delivery::now_timestamp())
        .with_user_id(user_id.clone())
        .with_headers(headers);
    if let Some(ce) = &msg.content_encoding {
        props = props.with_content_encoding(ce.as_str().into());
    }
    // Measured before it goes: properties past a frame would close the connection.
    let Ok(props) = crate::wire::headers::within_frame(props) else {
        error!(id = %msg.id, route = %msg.route, "scheduled message not published: its properties are larger than one frame; it stays pending");
        return Ok(None);
    };
    Ok(Some(
        channel
            .basic_publish(
                ShortString::from(""),
                msg.route.as_str().into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                &msg.body,
                props,
            )
            .await?,
    ))
}

impl sealed::Sealed for ScheduledRelay {}

#[async_trait]
impl Runnable for ScheduledRelay {
    fn kind(&self) -> WorkerKind {
        WorkerKind::Scheduled
    }

    fn route_names(&self) -> Vec<String> {
        Vec::new()
    }

    async fn run(self: Box<Self>, ctx: WorkerContext) -> Result<(), Error> {
        let out = ConfirmChannel::new(
            ctx.broker.clone(),
            Wait::ForReconnect,
            "the scheduled relay",
        );
        let wake = Arc::new(Notify::new());
        let listener = tokio::spawn(super::listen::wake_on_notify(
            self.listen.clone(),
            self.listen_tls.clone(),
            SCHEDULED_NOTIFY_CHANNEL,
            wake.clone(),
            ctx.shutdown.clone(),
        ));
        let _ = ctx
            .ready
            .send(Ok("scheduled-messages relay running".to_owned()));
        let max_bytes = ctx.config.max_message_bytes;
        // Failed batches in a row wait longer each time (the broker or the database is
        // away), at most the poll interval.
        let failures = Pauses::default();
        // After a notification, look once more after the notify window: transactions of
        // that window scheduled without notifying.
        let mut recheck = false;
        while !ctx.shutdown.is_cancelled() {
            // A stop does not wait for a batch held up by the broker: dropping it rolls
            // its transaction back and the messages stay pending.
            let batch = tokio::select! {
                biased;
                () = ctx.shutdown.cancelled() => break,
                b = self.relay_batch(&out, max_bytes) => b,
            };
            let mut wait = match batch {
                Ok(Batch::Full) => {
                    failures.reset();
                    continue;
                }
                Ok(Batch::Drained { next_due: next, .. } | Batch::Standby { next_due: next }) => {
                    failures.reset();
                    next.map_or(self.poll_interval, |d| d.max(MIN_SLEEP))
                        .min(self.poll_interval)
                }
                Err(e) => {
                    let delay = failures.next().min(self.poll_interval);
                    warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "scheduled relay: messages not published; they stay pending");
                    delay
                }
            };
            if std::mem::take(&mut recheck) {
                wait = wait.min(crate::db::notify::WINDOW * 2);
            }
            tokio::select! {
                () = ctx.shutdown.cancelled() => break,
                () = wake.notified() => recheck = true,
                () = tokio::time::sleep(wait) => {}
            }
        }
        listener.abort();
        out.close(ctx.config.connect_timeout).await;
        info!("scheduled relay stopped");
        Ok(())
    }
}
