//! Scheduled work messages: a message stored in PostgreSQL with the time it is due, which
//! the [`ScheduledRelay`](crate::outbox::ScheduledRelay) publishes to its route then.
//!
//! Stored, not held in the broker or the process: a restart or a relay's failover loses
//! nothing, a transaction can schedule atomically with its data ([`Schedule::schedule`]),
//! and a message still pending can be cancelled by its id. The message is encoded and its
//! size checked when it is scheduled, so one that could never be published is refused then,
//! to the caller, not found by the relay later.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lapin::types::{AMQPValue, FieldTable};
use serde::Serialize;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::TaskContract;
use crate::db::notify::Throttle;
use crate::db::{DbError, Executor, Tx};
use crate::wire::envelope::{self, Encoding};

use super::{PublishError, QueuePublisher, ScheduleError};

/// The scheduled-messages table (`worker-kit/sql/scheduled.sql`): include it in the
/// scheduling service's `models/<service>/`.
pub const SCHEDULED_SQL: &str = include_str!("../../sql/scheduled.sql");

/// The channel a scheduling transaction notifies on commit, which wakes the relay so that
/// a message due sooner than the one it sleeps for is not late.
pub const SCHEDULED_NOTIFY_CHANNEL: &str = "worker_kit_scheduled";

/// How often this process's schedules notify [`SCHEDULED_NOTIFY_CHANNEL`].
static NOTIFY: Throttle = Throttle::new();

/// A work message ready to be stored: encoded, measured, with the trace context of the
/// code that scheduled it.
pub(crate) struct Encoded<'a> {
    route: &'a str,
    body: Vec<u8>,
    content_encoding: Option<&'static str>,
    traceparent: Option<String>,
}

impl<'a> Encoded<'a> {
    /// Encodes `data` for `route` as the publisher does (`gzip({"data": data})`), refusing a
    /// body larger than `max_bytes` (`MAX_MESSAGE_BYTES`).
    pub(crate) fn new<T: Serialize + ?Sized>(
        route: &'a str,
        data: &T,
        max_bytes: usize,
    ) -> Result<Self, PublishError> {
        let body = envelope::encode_request(data, Encoding::Gzip).map_err(|source| {
            PublishError::Encode {
                route: route.to_owned(),
                source,
            }
        })?;
        if body.len() > max_bytes {
            return Err(PublishError::TooLarge {
                route: route.to_owned(),
                size: body.len(),
                limit: max_bytes,
            });
        }
        let mut headers = FieldTable::default();
        crate::observe::trace::inject(&mut headers);
        let traceparent = match headers.inner().get("traceparent") {
            Some(AMQPValue::LongString(s)) => Some(s.to_string()),
            _ => None,
        };
        Ok(Self {
            route,
            body,
            content_encoding: Encoding::Gzip.content_encoding(),
            traceparent,
        })
    }
}

/// When a message is due.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Due {
    /// At this instant.
    At(DateTime<Utc>),
    /// This long after the insert, by the database's clock (the clock the relay compares
    /// with, so a skewed application clock does not move it).
    After(Duration),
}

/// Stores `msg` due `due` through `exec` (a transaction or a pooled connection); returns
/// its id, which is also its `message_id` when published.
pub(crate) async fn insert(
    exec: &impl Executor,
    msg: &Encoded<'_>,
    due: Due,
) -> Result<Uuid, DbError> {
    let id = Uuid::new_v4();
    let (at, after) = match due {
        Due::At(at) => (Some(at), 0.0),
        Due::After(d) => (None, d.as_secs_f64()),
    };
    let params: [&(dyn ToSql + Sync); 7] = [
        &id,
        &msg.route,
        &msg.body,
        &msg.content_encoding,
        &msg.traceparent,
        &at,
        &after,
    ];
    const INSERT: &str = "INSERT INTO worker_kit_scheduled \
         (id, route, body, content_encoding, traceparent, due_at) \
         VALUES ($1, $2, $3, $4, $5, \
                 COALESCE($6::timestamptz, clock_timestamp() + make_interval(secs => $7::float8)))";
    if NOTIFY.due() {
        // One round trip, as the outbox's emit: the insert and the notification
        // PostgreSQL delivers on commit.
        exec.query_rows(
            &format!(
                "WITH ins AS ({INSERT} RETURNING 1) \
                 SELECT pg_notify('{SCHEDULED_NOTIFY_CHANNEL}', '') FROM ins"
            ),
            &params,
        )
        .await?;
    } else {
        exec.execute(INSERT, &params).await?;
    }
    Ok(id)
}

/// Cancels the scheduled message `id`: `true` when it was still pending (it will never be
/// published), `false` when it was published already, cancelled before, or never existed.
/// A relay publishing it at this very moment has it locked: the cancel waits for that
/// publish to commit and then returns `false`.
///
/// # Errors
///
/// Any [`DbError`] of the delete.
pub async fn cancel(exec: &impl Executor, id: Uuid) -> Result<bool, DbError> {
    Ok(exec
        .execute("DELETE FROM worker_kit_scheduled WHERE id = $1", &[&id])
        .await?
        == 1)
}

/// Scheduling through a publisher (built [`with_database`](QueuePublisher::with_database)).
impl QueuePublisher {
    /// Schedules `task` for `when`: stored in the database now, published to its route by
    /// the relay once due (an instant already past is published at once), at least once.
    /// Returns its id (its `message_id`), for [`QueuePublisher::cancel`].
    ///
    /// # Errors
    ///
    /// [`ScheduleError::NoDatabase`] without [`QueuePublisher::with_database`]; a message
    /// that cannot be encoded or is larger than `MAX_MESSAGE_BYTES`; a database error.
    pub async fn send_at<T: TaskContract>(
        &self,
        when: chrono::DateTime<chrono::Utc>,
        task: &T,
    ) -> Result<uuid::Uuid, ScheduleError> {
        let db = self.database()?;
        let msg = Encoded::new(T::ROUTE, task, self.max_message_bytes())?;
        Ok(insert(db, &msg, Due::At(when)).await?)
    }

    /// Schedules `task` for `delay` from now, by the database's clock; as
    /// [`QueuePublisher::send_at`].
    ///
    /// # Errors
    ///
    /// As [`QueuePublisher::send_at`].
    pub async fn send_after<T: TaskContract>(
        &self,
        delay: Duration,
        task: &T,
    ) -> Result<uuid::Uuid, ScheduleError> {
        let db = self.database()?;
        let msg = Encoded::new(T::ROUTE, task, self.max_message_bytes())?;
        Ok(insert(db, &msg, Due::After(delay)).await?)
    }

    /// Cancels scheduled message `id`: `true` when it was still pending (it will never be
    /// published), `false` when it was published already, cancelled before, or unknown.
    ///
    /// # Errors
    ///
    /// [`ScheduleError::NoDatabase`]; a database error.
    pub async fn cancel(&self, id: uuid::Uuid) -> Result<bool, ScheduleError> {
        Ok(cancel(self.database()?, id).await?)
    }
}

/// Schedules work messages in a transaction: they exist only if it commits.
pub trait Schedule {
    /// Schedules `task` for `when` (an instant already past is published at once); the
    /// relay publishes it to its route once the transaction has committed and the time has
    /// come. Returns the message's id (its `message_id`), for [`Schedule::cancel_scheduled`]
    /// or [`QueuePublisher::cancel`](super::QueuePublisher::cancel).
    ///
    /// # Errors
    ///
    /// [`DbError::Invalid`] when the task cannot be serialized or encodes larger than
    /// `MAX_MESSAGE_BYTES`' default (8 MiB); any [`DbError`] of the insert (a missing
    /// `worker_kit_scheduled` table is a `Query` error naming it).
    fn schedule<T: TaskContract>(
        &self,
        when: DateTime<Utc>,
        task: &T,
    ) -> impl Future<Output = Result<Uuid, DbError>> + Send;

    /// Schedules `task` for `delay` after now, by the database's clock; as
    /// [`Schedule::schedule`].
    ///
    /// # Errors
    ///
    /// As [`Schedule::schedule`].
    fn schedule_after<T: TaskContract>(
        &self,
        delay: Duration,
        task: &T,
    ) -> impl Future<Output = Result<Uuid, DbError>> + Send;

    /// Cancels scheduled message `id` in this transaction (see [`cancel`]).
    ///
    /// # Errors
    ///
    /// Any [`DbError`] of the delete.
    fn cancel_scheduled(&self, id: Uuid) -> impl Future<Output = Result<bool, DbError>> + Send;
}

impl Schedule for Tx<'_> {
    async fn schedule<T: TaskContract>(
        &self,
        when: DateTime<Utc>,
        task: &T,
    ) -> Result<Uuid, DbError> {
        insert(self, &encode_in_tx(task)?, Due::At(when)).await
    }

    async fn schedule_after<T: TaskContract>(
        &self,
        delay: Duration,
        task: &T,
    ) -> Result<Uuid, DbError> {
        insert(self, &encode_in_tx(task)?, Due::After(delay)).await
    }

    async fn cancel_scheduled(&self, id: Uuid) -> Result<bool, DbError> {
        cancel(self, id).await
    }
}

/// A transaction knows no `Config`: its messages are held to `MAX_MESSAGE_BYTES`' default,
/// which the relay's own limit is checked against again when it publishes.
fn encode_in_tx<T: TaskContract>(task: &T) -> Result<Encoded<'static>, DbError> {
    Encoded::new(T::ROUTE, task, crate::Config::default().max_message_bytes)
        .map_err(|e| DbError::Invalid(format!("cannot schedule: {e}")))
}
